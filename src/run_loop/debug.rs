//! The debugger's side of the link to a vCPU: what it asks of a paused vCPU ([`DebugRequest`]),
//! how the vCPU goes on ([`ResumeWith`]), and what it reports each time it stops ([`DebugEvent`]).
//!
//! The stub (src/gdb/) never touches KVM: it sends a paused vCPU requests and waits for events.
//! A paused vCPU blocks on its request channel; a running one runs KVM_RUN until a debug exit, a
//! pause request (the [`super::VcpuControl::pause`] flag + a kick), or the end of its guest, and
//! then reports one event.

use super::VcpuEnd;
use crate::exit::Fault;
use crate::kvm::error::VcpuError;
use crate::kvm::memory::{GuestRam, MemoryError};
use crate::x86::paging::WalkError;
use kvm_bindings::{kvm_fpu, kvm_regs, kvm_sregs};
use nix::sys::eventfd::EventFd;
use std::sync::{mpsc, Arc};

/// Everything a debugger sees of a vCPU, as KVM keeps it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuState {
    pub regs: kvm_regs,
    pub sregs: kvm_sregs,
    pub fpu: kvm_fpu,
}

/// How a paused vCPU goes on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResumeWith {
    /// Run one instruction, then stop (KVM_GUESTDBG_SINGLESTEP).
    pub step: bool,
    /// While stepping, hold interrupts back (KVM_GUESTDBG_BLOCKIRQ) so that a step never lands
    /// in an interrupt handler. Only where the host's KVM offers it.
    pub block_irq: bool,
    /// DR0–DR3 (linear addresses) and DR7 for KVM_GUESTDBG_USE_HW_BP; all zero = none.
    pub debugreg: [u64; 8],
    /// Linear addresses of the int3 bytes the debugger planted (KVM_GUESTDBG_USE_SW_BP).
    pub int3: Vec<u64>,
    /// No debugger is attached (it detached or was lost): run as without one — a fault ends the
    /// vCPU — but stop for a pause request, which the next debugger to attach sends.
    pub detached: bool,
}

/// Why a paused vCPU could not do what the debugger asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error(transparent)]
    Vcpu(#[from] VcpuError),
    #[error(transparent)]
    Memory(#[from] MemoryError),
    /// A linear address the guest's page tables do not map.
    #[error(transparent)]
    Walk(#[from] WalkError),
}

/// Where a request's answer goes.
pub type Reply<T> = mpsc::Sender<std::result::Result<T, RequestError>>;

/// What the debugger asks of a paused vCPU.
pub enum DebugRequest {
    GetState(Reply<CpuState>),
    SetState(Box<CpuState>, Reply<()>),
    /// Up to `len` bytes at a linear address; the answer is shorter where the mapping ends.
    ReadMem {
        linear: u64,
        len: usize,
        reply: Reply<Vec<u8>>,
    },
    /// Bytes at a linear address: all of them, or none if any page is unmapped.
    WriteMem {
        linear: u64,
        data: Vec<u8>,
        reply: Reply<()>,
    },
    /// The guest-physical address of a linear address, by KVM_TRANSLATE (a cross-check).
    Translate {
        linear: u64,
        reply: Reply<Option<u64>>,
    },
    Resume(ResumeWith),
    /// The debugger is gone: no more stops, run on until the guest ends or a new debugger
    /// pauses the vCPU (pause flag + kick, reported as [`DebugEvent::Paused`]).
    Detach,
    /// End the run now.
    Stop,
}

/// What a vCPU tells the debugger each time it stops running.
#[derive(Debug, Clone)]
pub enum DebugEvent {
    /// It stopped because the debugger asked it to (pause flag + kick).
    Paused,
    /// A debug exit: single step, hardware breakpoint or watchpoint, or the debugger's int3.
    Debug { exception: u32, pc: u64, dr6: u64 },
    /// The guest faulted. The vCPU stays paused so its state can be looked at; resuming ends it.
    Faulted(Fault),
    /// The vCPU's run is over and its thread ends.
    Ended(VcpuEnd),
}

/// A vCPU's end of the link to the debugger.
pub struct DebugLink {
    pub requests: mpsc::Receiver<DebugRequest>,
    pub events: mpsc::Sender<(usize, DebugEvent)>,
    /// Written after every event so that the stub's poll(2) wakes up.
    pub wake: Arc<EventFd>,
    pub ram: Arc<GuestRam>,
}

impl DebugLink {
    pub(super) fn report(&self, id: usize, event: DebugEvent) {
        // A stub that is gone no longer cares; that is not an error of this vCPU.
        if self.events.send((id, event)).is_ok() {
            if let Err(e) = self.wake.write(1) {
                log::warn!("vCPU {id}: cannot wake the gdb stub: {e}");
            }
        }
    }
}
