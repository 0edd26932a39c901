//! The debugger's view of the vCPUs: a trait, so that the stop/resume state machine
//! ([`super::stops`]) does not care whether real vCPU threads or a test's fake answer it.
//!
//! The real ones ([`VcpuThreads`]) are threads with a request channel each: a paused vCPU answers
//! requests (registers, memory, resume), a running one is paused with a flag and a kick, and each
//! reports what happened to it as a [`DebugEvent`] on one shared channel (and writes an eventfd,
//! which the stub's poll(2) watches; see [`super::conn`]).

use super::error::DebugError;
use crate::devices::console::lock;
use crate::kvm::memory::GuestRam;
use crate::run_loop::{CpuState, DebugEvent, DebugRequest, Reply, ResumeWith, VcpuControl};
use crate::stats::VcpuStats;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// What [`Vcpus::next_event`] found.
#[derive(Debug)]
pub enum Next {
    /// vCPU N reported this.
    Event(usize, DebugEvent),
    /// Nothing (yet).
    Nothing,
    /// No vCPU can report anything any more (every thread is gone).
    Gone,
}

/// How the debugger lets go of a paused vCPU at the end of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// Run on without breakpoints, until the guest ends or a new gdb pauses it.
    Detach,
    /// End the vCPU now (gdb's `kill`).
    Stop,
}

/// Everything the debugger does to vCPUs. Requests for registers and memory go to paused vCPUs
/// only (the debugger checks that first).
pub trait Vcpus {
    fn count(&self) -> usize;
    fn name(&self, id: usize) -> &str;
    /// Every vCPU's exit statistics so far (`monitor exits`).
    fn stats(&self) -> Vec<(usize, String, VcpuStats)>;
    fn state(&self, id: usize) -> Result<CpuState, DebugError>;
    fn set_state(&self, id: usize, state: &CpuState) -> Result<(), DebugError>;
    /// Up to `len` bytes at a linear address (fewer where the mapping ends).
    fn read(&self, id: usize, linear: u64, len: usize) -> Result<Vec<u8>, DebugError>;
    /// All the bytes at a linear address, or none.
    fn write(&self, id: usize, linear: u64, data: Vec<u8>) -> Result<(), DebugError>;
    /// KVM's own translation of a linear address (None: not mapped).
    fn translate(&self, id: usize, linear: u64) -> Result<Option<u64>, DebugError>;
    /// Guest-physical memory, for the page walker; false if it is not RAM.
    fn read_physical(&self, gpa: u64, buf: &mut [u8]) -> bool;
    /// Lets a paused vCPU run; false if its thread is gone.
    fn resume(&mut self, id: usize, with: ResumeWith) -> bool;
    /// Asks a running vCPU to pause: it reports [`DebugEvent::Paused`] when it has.
    fn pause(&mut self, id: usize);
    /// Lets go of a paused vCPU.
    fn release(&mut self, id: usize, how: Release);
    /// The next event of any vCPU, waiting at most `wait` (None: not at all).
    fn next_event(&mut self, wait: Option<Duration>) -> Next;
}

/// What the stub holds of one vCPU thread.
pub struct VcpuHandle {
    pub id: usize,
    pub name: String,
    pub requests: mpsc::Sender<DebugRequest>,
    pub ctl: Arc<VcpuControl>,
    /// The vCPU's thread, to kick it out of KVM_RUN.
    pub thread: Arc<JoinHandle<()>>,
    pub stats: Arc<Mutex<VcpuStats>>,
}

/// The real vCPUs: threads that serve requests while paused (see `run_debug` in src/kvm/vcpu.rs).
pub struct VcpuThreads {
    handles: Vec<VcpuHandle>,
    events: mpsc::Receiver<(usize, DebugEvent)>,
    ram: Arc<GuestRam>,
}

impl VcpuThreads {
    pub fn new(handles: Vec<VcpuHandle>, events: mpsc::Receiver<(usize, DebugEvent)>, ram: Arc<GuestRam>) -> Self {
        VcpuThreads { handles, events, ram }
    }

    /// Every vCPU's control flags (the connection watches their stop flags).
    pub fn controls(&self) -> Vec<Arc<VcpuControl>> {
        self.handles.iter().map(|h| h.ctl.clone()).collect()
    }

    /// Sends a request to a paused vCPU and waits for its answer.
    fn ask<T>(&self, id: usize, make: impl FnOnce(Reply<T>) -> DebugRequest) -> Result<T, DebugError> {
        let h = self.handles.get(id).ok_or(DebugError::NoSuchVcpu(id))?;
        let (tx, rx) = mpsc::channel();
        h.requests.send(make(tx)).map_err(|_| DebugError::Ended(id))?;
        rx.recv().map_err(|_| DebugError::Ended(id))?.map_err(|e| DebugError::Vcpu(e.to_string()))
    }
}

impl Vcpus for VcpuThreads {
    fn count(&self) -> usize {
        self.handles.len()
    }

    fn name(&self, id: usize) -> &str {
        self.handles.get(id).map_or("?", |h| h.name.as_str())
    }

    fn stats(&self) -> Vec<(usize, String, VcpuStats)> {
        self.handles.iter().map(|h| (h.id, h.name.clone(), lock(&h.stats).clone())).collect()
    }

    fn state(&self, id: usize) -> Result<CpuState, DebugError> {
        self.ask(id, DebugRequest::GetState)
    }

    fn set_state(&self, id: usize, state: &CpuState) -> Result<(), DebugError> {
        self.ask(id, |r| DebugRequest::SetState(Box::new(*state), r))
    }

    fn read(&self, id: usize, linear: u64, len: usize) -> Result<Vec<u8>, DebugError> {
        self.ask(id, |reply| DebugRequest::ReadMem { linear, len, reply })
    }

    fn write(&self, id: usize, linear: u64, data: Vec<u8>) -> Result<(), DebugError> {
        self.ask(id, |reply| DebugRequest::WriteMem { linear, data, reply })
    }

    fn translate(&self, id: usize, linear: u64) -> Result<Option<u64>, DebugError> {
        self.ask(id, |reply| DebugRequest::Translate { linear, reply })
    }

    fn read_physical(&self, gpa: u64, buf: &mut [u8]) -> bool {
        self.ram.read(gpa, buf).is_ok()
    }

    fn resume(&mut self, id: usize, with: ResumeWith) -> bool {
        let Some(h) = self.handles.get(id) else { return false };
        h.ctl.pause.store(false, Ordering::Release);
        h.requests.send(DebugRequest::Resume(with)).is_ok()
    }

    fn pause(&mut self, id: usize) {
        if let Some(h) = self.handles.get(id) {
            h.ctl.pause.store(true, Ordering::Release);
            crate::kvm::kick(&h.thread);
        }
    }

    fn release(&mut self, id: usize, how: Release) {
        if let Some(h) = self.handles.get(id) {
            let req = match how {
                Release::Detach => DebugRequest::Detach,
                Release::Stop => DebugRequest::Stop,
            };
            let _ = h.requests.send(req);
        }
    }

    fn next_event(&mut self, wait: Option<Duration>) -> Next {
        let got = match wait {
            None => self.events.try_recv().map_err(|e| e == mpsc::TryRecvError::Disconnected),
            Some(d) => self.events.recv_timeout(d).map_err(|e| e == mpsc::RecvTimeoutError::Disconnected),
        };
        match got {
            Ok((id, ev)) => Next::Event(id, ev),
            Err(false) => Next::Nothing,
            Err(true) => Next::Gone,
        }
    }
}
