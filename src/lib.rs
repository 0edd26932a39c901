//! minikvm: a small, complete, educational x86 hypervisor on the Linux KVM API.
//!
//! The flow of one run: the command line becomes a [`vmm::Config`] (with a [`boot::BootPlan`]),
//! [`vmm::Machine::build`] creates the VM, its memory, devices and vCPUs, and [`vmm::run`] runs each
//! vCPU on its own thread until every guest has ended.

pub mod boot;
pub mod cli;
pub mod controller;
pub mod devices;
pub mod doctor;
pub mod error;
pub mod exit;
pub mod gdb;
pub mod guests;
pub mod kvm;
pub mod stats;
pub mod vmm;
pub mod x86;
