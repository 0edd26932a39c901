//! minikvm: a small, complete, educational x86 hypervisor on the Linux KVM API.
//!
//! The flow of one run: the command line becomes a [`vmm::Config`] (with a [`boot::BootPlan`]),
//! [`vmm::Machine::build`] creates the VM, its memory, devices and vCPUs, and [`vmm::run`] runs each
//! vCPU on its own thread; the [`controller`] decides when the run is over and its exit status.

// `print!`/`eprint!` panic on a closed or full stream; minikvm writes through crate::stdio instead.
#![deny(clippy::print_stdout, clippy::print_stderr)]
// A function a reader holds in their head: at most 60 lines (clippy.toml), checked by CI's clippy.
#![deny(clippy::too_many_lines)]
// Modules are `pub` only where `main.rs` or the tests use them, so rustc reports dead code in the
// others. The documentation is read with every module in it (`cargo doc --document-private-items`,
// as CI builds it), so links into crate-private modules are fine there.
#![allow(rustdoc::private_intra_doc_links)]

pub(crate) mod boot;
pub mod cli;
pub mod controller;
pub mod devices;
pub mod doctor;
pub mod error;
pub(crate) mod exit;
pub(crate) mod exit_log;
// The gdb stub's own messages move to crate::stdio with its containment work (issue 7, item 8).
#[allow(clippy::print_stderr)]
pub(crate) mod gdb;
pub mod guests;
pub mod kvm;
pub mod lab;
pub mod os1k_flavour;
pub(crate) mod run_loop;
pub(crate) mod stats;
pub mod stdio;
pub mod vmm;
pub(crate) mod x86;
