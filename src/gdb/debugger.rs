//! The debugger: what the stub knows of the VM between gdb's packets, and how it reads and writes
//! a paused vCPU's registers and memory.
//!
//! Every vCPU is a gdb thread (vCPU *i* = thread *i* + 1). The debugger never calls KVM: it goes
//! through [`Vcpus`]. How vCPUs are stopped and resumed is [`super::stops`]; what gdb's packets do
//! is in [`super::target`], one file per gdbstub extension.

use super::arch::TdescFlavour;
use super::breakpoints::Breakpoints;
use super::error::DebugError;
use super::refusals::Refusals;
use super::vcpus::Vcpus;
use crate::run_loop::{CpuState, VcpuEnd};
use crate::stats::VcpuStats;
use crate::x86::mode::{efer, CpuMode};
use gdbstub::common::Tid;
use gdbstub::stub::MultiThreadStopReason;
use std::cell::Cell;
use std::collections::VecDeque;
use std::num::NonZeroUsize;
use std::time::Duration;

/// The most bytes one `m` packet may read: half the packet size, which is what gdb asks for at
/// most given `PacketSize` (two hex digits a byte; gdb leaves the framing out of its sum).
pub const MAX_READ: usize = super::conn::MAX_PACKET / 2;
/// int3 breakpoints beyond the four debug registers (one entry per address, planted in each vCPU).
pub const MAX_INT3: usize = 256;
/// Write watchpoints emulated by single-stepping: each costs a comparison on every step.
pub const MAX_SOFT_WATCH: usize = 4;
/// How long an all-stop waits for a vCPU that does not stop before it reports the stop without it.
pub const STOP_PATIENCE: Duration = Duration::from_secs(3);

/// What gdb is told when the target stops (gdbstub's stop reply, `T05thread:…;`, `W00`, …).
pub type StopReply = MultiThreadStopReason<u64>;

/// How a `vCont` packet asks one vCPU to go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResumeAction {
    /// `c`: run until something stops it.
    Continue,
    /// `s`: run one instruction.
    Step,
}

/// Where a vCPU is, as far as the debugger knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Run {
    /// It waits for requests.
    Paused,
    /// It runs (or steps); it reports an event when it stops.
    Running,
    /// Its run is over.
    Ended,
}

/// What the debugger holds of one vCPU.
pub(super) struct VcpuView {
    pub(super) run: Run,
    pub(super) end: Option<VcpuEnd>,
    /// The registers, read once per stop.
    pub(super) cache: Option<CpuState>,
    /// How the next resume treats this vCPU (None: as gdb's default for threads it did not name).
    pub(super) action: Option<ResumeAction>,
    /// Set while write watchpoints are emulated by single-stepping this vCPU.
    pub(super) soft: Option<SoftWatching>,
}

/// A vCPU stepping to emulate write watchpoints: the watched bytes before the step.
pub(super) struct SoftWatching {
    pub(super) old: Vec<Option<Vec<u8>>>,
    /// gdb asked for one step (report it), rather than a continue (step on quietly).
    pub(super) gdb_step: bool,
}

/// What the host's KVM can do for the debugger.
#[derive(Debug, Clone, Copy, Default)]
pub struct Caps {
    /// KVM intercepts int3 (KVM_GUESTDBG_USE_SW_BP), so `break` can plant int3 bytes.
    pub int3: bool,
    /// KVM_GUESTDBG_BLOCKIRQ: single steps do not enter interrupt handlers.
    pub block_irq: bool,
    /// Data breakpoints fire (see [`crate::doctor::probe`]); if not, `watch` steps and compares.
    pub data_breakpoints: bool,
}

pub struct Debugger {
    pub(super) vcpus: Box<dyn Vcpus + Send>,
    pub(super) views: Vec<VcpuView>,
    pub(super) breakpoints: Breakpoints,
    /// Write watchpoints (gdb address, length) emulated by single-stepping, on hosts whose KVM
    /// ignores data breakpoints.
    pub(super) soft_watch: Vec<(u64, u64)>,
    pub(super) caps: Caps,
    pub(super) exec_file: Option<Vec<u8>>,
    /// Threads without a resume action continue (gdb's default) unless the scheduler is locked.
    pub(super) lock_scheduler: bool,
    /// Stops that happened while the debugger was stopping everything, reported later.
    pub(super) pending: VecDeque<(usize, StopReply)>,
    /// A stop to report at once on the next wait (a pending one, or the end of the run).
    pub(super) ready: Option<StopReply>,
    /// Set while [`Debugger::stop_all`] runs: a vCPU that stops then stays stopped.
    pub(super) stopping: bool,
    /// How long [`Debugger::stop_all`] waits for a vCPU ([`STOP_PATIENCE`]).
    pub(super) patience: Duration,
    /// The vCPU of the last stop: what monitor commands look at unless told otherwise.
    pub current: usize,
    /// The target description gdb read last: decides the register layout of `g` and `G`
    /// (see [`super::layout`]). Chosen again each time gdb reads the description.
    pub(super) flavour: Cell<Option<TdescFlavour>>,
    /// What the packet being handled may still read of memory (see [`MAX_READ`]).
    pub(super) read_budget: usize,
    /// Breakpoints accepted but not honoured, and reasons waiting for gdb's screen.
    pub refusals: Refusals,
}

/// gdb's thread id of vCPU `id`.
pub(super) fn tid(id: usize) -> Tid {
    NonZeroUsize::MIN.saturating_add(id)
}

/// The vCPU of gdb's thread id.
pub(super) fn index(tid: Tid) -> usize {
    tid.get() - 1
}

impl Debugger {
    /// A debugger of vCPUs that all wait paused at their first instruction.
    pub fn new(vcpus: Box<dyn Vcpus + Send>, caps: Caps, elf_path: Option<String>) -> Self {
        let views = (0..vcpus.count())
            .map(|_| VcpuView { run: Run::Paused, end: None, cache: None, action: None, soft: None })
            .collect();
        Debugger {
            vcpus,
            views,
            breakpoints: Breakpoints::default(),
            soft_watch: Vec::new(),
            caps,
            exec_file: elf_path.map(String::into_bytes),
            lock_scheduler: false,
            pending: VecDeque::new(),
            ready: None,
            stopping: false,
            patience: STOP_PATIENCE,
            current: 0,
            flavour: Cell::new(None),
            read_budget: MAX_READ,
            refusals: Refusals::default(),
        }
    }

    /// A new byte from gdb, maybe a new request: memory reads start from a full budget again.
    pub fn new_request(&mut self) {
        self.read_budget = MAX_READ;
    }

    // ----- a paused vCPU's registers and memory -----

    /// Ok if vCPU `id` is paused, so that it answers requests.
    fn require_paused(&self, id: usize) -> Result<(), DebugError> {
        match self.views.get(id).map(|v| v.run) {
            None => Err(DebugError::NoSuchVcpu(id)),
            Some(Run::Paused) => Ok(()),
            Some(_) => Err(DebugError::NotStopped(id)),
        }
    }

    /// The registers of a paused vCPU (read once per stop).
    pub fn state(&mut self, id: usize) -> Result<CpuState, DebugError> {
        if let Some(s) = self.views.get(id).and_then(|v| v.cache) {
            return Ok(s);
        }
        self.require_paused(id)?;
        let s = self.vcpus.state(id)?;
        if let Some(v) = self.views.get_mut(id) {
            v.cache = Some(s);
        }
        Ok(s)
    }

    pub(super) fn set_state(&mut self, id: usize, s: CpuState) -> Result<(), DebugError> {
        self.require_paused(id)?;
        self.vcpus.set_state(id, &s)?;
        if let Some(v) = self.views.get_mut(id) {
            v.cache = Some(s);
        }
        Ok(())
    }

    /// The linear address behind gdb address `addr` on vCPU `id`: CS base + `addr` (see the
    /// address convention in [`super`]), cut to 32 bits outside long mode.
    pub fn linear(&mut self, id: usize, addr: u64) -> Result<u64, DebugError> {
        let s = self.state(id)?;
        Ok(s.sregs.cs.base.wrapping_add(addr) & address_mask(&s))
    }

    pub fn read_linear(&self, id: usize, linear: u64, len: usize) -> Result<Vec<u8>, DebugError> {
        self.require_paused(id)?;
        self.vcpus.read(id, linear, len)
    }

    pub(super) fn write_linear(&self, id: usize, linear: u64, data: Vec<u8>) -> Result<(), DebugError> {
        self.require_paused(id)?;
        self.vcpus.write(id, linear, data)
    }

    /// KVM's translation of a linear address on a paused vCPU (a cross-check for `monitor pt`).
    pub fn translate(&self, id: usize, linear: u64) -> Result<Option<u64>, DebugError> {
        self.require_paused(id)?;
        self.vcpus.translate(id, linear)
    }

    /// Guest-physical memory, for the page walker.
    pub fn read_physical(&self, gpa: u64, buf: &mut [u8]) -> bool {
        self.vcpus.read_physical(gpa, buf)
    }

    /// The mode of a paused vCPU, without filling the per-stop cache (for `&self` callers).
    pub(super) fn mode_now(&self, id: usize) -> Option<CpuMode> {
        let cached = self.views.get(id).and_then(|v| v.cache);
        let s = match cached {
            Some(s) => s,
            None => {
                self.require_paused(id).ok()?;
                self.vcpus.state(id).ok()?
            }
        };
        Some(cpu_mode(&s))
    }

    // ----- what monitor commands and gdb's thread list see -----

    pub fn vcpu_count(&self) -> usize {
        self.views.len()
    }

    pub fn vcpu_name(&self, id: usize) -> Option<&str> {
        (id < self.views.len()).then(|| self.vcpus.name(id))
    }

    pub fn is_paused(&self, id: usize) -> bool {
        self.views.get(id).is_some_and(|v| v.run == Run::Paused)
    }

    pub fn stats(&self) -> Vec<(usize, String, VcpuStats)> {
        self.vcpus.stats()
    }

    /// The ids of the vCPUs whose run is not over.
    pub(super) fn live(&self) -> impl Iterator<Item = usize> + '_ {
        self.views.iter().enumerate().filter(|(_, v)| v.run != Run::Ended).map(|(id, _)| id)
    }

    pub(super) fn first_live(&self) -> Option<usize> {
        self.live().next()
    }

    pub fn all_ended(&self) -> bool {
        self.live().next().is_none()
    }
}

/// The CPU mode of a vCPU's registers.
pub fn cpu_mode(s: &CpuState) -> CpuMode {
    CpuMode::from_regs(s.sregs.cr0, s.sregs.cr4, s.sregs.efer, s.sregs.cs.db != 0, s.sregs.cs.l != 0)
}

/// Linear addresses are 32 bits wide outside long mode.
pub(super) fn address_mask(s: &CpuState) -> u64 {
    if s.sregs.efer & efer::LMA != 0 {
        u64::MAX
    } else {
        0xffff_ffff
    }
}
