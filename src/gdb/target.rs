//! The gdbstub `Target`: what gdb sees of the VM, and how its requests reach the vCPUs.
//!
//! Every vCPU is a gdb thread (vCPU *i* = thread *i* + 1). The debugger never calls KVM: it sends
//! a paused vCPU a [`DebugRequest`] and waits for the answer, and it learns that a running vCPU
//! stopped from a [`DebugEvent`]. All-stop: when one vCPU stops, [`Debugger::stop_all`] pauses
//! the others (pause flag + kick) and waits until each one has said so.

use super::arch::{serve_target_xml, TdescFlavour, X86Guest};
use super::breakpoints::{Breakpoints, Hit, Origin, Planted};
use super::layout::GuestRegs;
use super::monitor;
use super::refusals::{Refusals, Request};
use super::regs::X86Regs;
use super::regs64::X86_64Regs;
use crate::devices::console::lock;
use crate::exit::Fault;
use crate::kvm::memory::GuestRam;
use crate::kvm::vcpu::{CpuState, DebugEvent, DebugRequest, Reply, ResumeWith, VcpuControl, VcpuEnd};
use crate::stats::VcpuStats;
use crate::x86::mode::{efer, CpuMode};
use gdbstub::common::{Signal, Tid};
use gdbstub::stub::MultiThreadStopReason;
use gdbstub::target::ext::base::multithread::{
    MultiThreadBase, MultiThreadResume, MultiThreadResumeOps, MultiThreadSchedulerLocking,
    MultiThreadSchedulerLockingOps, MultiThreadSingleStep, MultiThreadSingleStepOps,
};
use gdbstub::target::ext::base::BaseOps;
use gdbstub::target::ext::breakpoints::{
    Breakpoints as BreakpointsExt, BreakpointsOps, HwBreakpoint, HwBreakpointOps, HwWatchpoint, HwWatchpointOps,
    SwBreakpoint, SwBreakpointOps, WatchKind,
};
use gdbstub::target::ext::exec_file::{ExecFile, ExecFileOps};
use gdbstub::target::ext::monitor_cmd::{ConsoleOutput, MonitorCmd, MonitorCmdOps};
use gdbstub::target::ext::target_description_xml_override::{
    TargetDescriptionXmlOverride, TargetDescriptionXmlOverrideOps,
};
use gdbstub::target::ext::thread_extra_info::{ThreadExtraInfo, ThreadExtraInfoOps};
use gdbstub::target::{Target, TargetError, TargetResult};
use nix::sys::eventfd::EventFd;
use std::cell::Cell;
use std::collections::VecDeque;
use std::num::NonZeroUsize;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// The stop reasons this target reports.
pub type StopReason = MultiThreadStopReason<u64>;

/// EFAULT: what gdb gets for memory that is not mapped ("Cannot access memory at address …").
const EFAULT: u8 = 14;
/// EINVAL: what gdb gets for a request beyond the stub's limits.
const EINVAL: u8 = 22;

/// The most bytes one `m` packet may read: half the packet size, which is what gdb asks for at
/// most given `PacketSize` (two hex digits a byte; gdb leaves the framing out of its sum).
pub const MAX_READ: usize = super::conn::MAX_PACKET / 2;
/// int3 breakpoints beyond the four debug registers (one entry per address, planted in each vCPU).
pub const MAX_INT3: usize = 256;
/// Write watchpoints emulated by single-stepping: each costs a comparison on every step.
pub const MAX_SOFT_WATCH: usize = 4;
/// How long an all-stop waits for a vCPU that does not stop before it reports the stop without it.
const STOP_PATIENCE: Duration = Duration::from_secs(3);

/// What the debugger holds of one vCPU.
pub struct VcpuHandle {
    pub id: usize,
    pub name: String,
    pub requests: mpsc::Sender<DebugRequest>,
    pub ctl: Arc<VcpuControl>,
    /// The vCPU's thread, to kick it out of KVM_RUN.
    pub thread: Arc<JoinHandle<()>>,
    pub stats: Arc<Mutex<VcpuStats>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Run {
    Paused,
    Running,
    Ended,
}

struct VcpuView {
    h: VcpuHandle,
    run: Run,
    end: Option<VcpuEnd>,
    /// The registers, read once per stop.
    cache: Option<CpuState>,
    /// How the next resume treats this vCPU: step, continue, or (None) stay paused.
    action: Option<bool>,
    /// Set while write watchpoints are emulated by single-stepping this vCPU.
    soft: Option<SoftWatching>,
}

/// A vCPU stepping to emulate write watchpoints: the watched bytes before the step.
struct SoftWatching {
    old: Vec<Option<Vec<u8>>>,
    /// gdb asked for one step (report it), rather than a continue (step on quietly).
    gdb_step: bool,
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
    vcpus: Vec<VcpuView>,
    events: mpsc::Receiver<(usize, DebugEvent)>,
    pub(super) wake: Arc<EventFd>,
    pub(super) ram: Arc<GuestRam>,
    pub(super) breakpoints: Breakpoints,
    /// Write watchpoints (gdb address, length) emulated by single-stepping, on hosts whose KVM
    /// ignores data breakpoints.
    soft_watch: Vec<(u64, u64)>,
    caps: Caps,
    exec_file: Option<Vec<u8>>,
    /// Threads without a resume action continue (gdb's default) unless the scheduler is locked.
    lock_scheduler: bool,
    /// Stops that happened while the debugger was stopping everything, reported later.
    pending: VecDeque<(usize, StopReason)>,
    /// A stop to report at once on the next wait (a pending one, or the end of the run).
    ready: Option<StopReason>,
    /// Set while [`Debugger::stop_all`] runs: a vCPU that stops then stays stopped.
    stopping: bool,
    /// The vCPU of the last stop: what monitor commands look at unless told otherwise.
    pub(super) current: usize,
    /// The target description gdb read last: decides the register layout of `g` and `G`
    /// (see [`super::layout`]). Chosen again each time gdb reads the description.
    flavour: Cell<Option<TdescFlavour>>,
    /// What the packet being handled may still read of memory (see [`MAX_READ`]).
    read_budget: usize,
    /// Breakpoints accepted but not honoured, and reasons waiting for gdb's screen.
    pub(super) refusals: Refusals,
}

fn tid(id: usize) -> Tid {
    NonZeroUsize::MIN.saturating_add(id)
}

fn index(tid: Tid) -> usize {
    tid.get() - 1
}

fn nonfatal<T>(msg: String) -> TargetResult<T, Debugger> {
    log::info!("gdb: {msg}");
    Err(TargetError::NonFatal)
}

impl Debugger {
    pub fn new(
        vcpus: Vec<VcpuHandle>,
        events: mpsc::Receiver<(usize, DebugEvent)>,
        wake: Arc<EventFd>,
        ram: Arc<GuestRam>,
        caps: Caps,
        elf_path: Option<String>,
    ) -> Self {
        let vcpus = vcpus
            .into_iter()
            .map(|h| VcpuView { h, run: Run::Paused, end: None, cache: None, action: None, soft: None })
            .collect();
        Debugger {
            vcpus,
            events,
            wake,
            ram,
            breakpoints: Breakpoints::default(),
            soft_watch: Vec::new(),
            caps,
            exec_file: elf_path.map(String::into_bytes),
            lock_scheduler: false,
            pending: VecDeque::new(),
            ready: None,
            stopping: false,
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

    // ----- talking to the vCPUs -----

    /// Sends a request to a paused vCPU and waits for its answer.
    pub(super) fn ask<T>(&self, id: usize, make: impl FnOnce(Reply<T>) -> DebugRequest) -> Result<T, String> {
        let v = self.vcpus.get(id).ok_or_else(|| format!("there is no vCPU {id}"))?;
        if v.run != Run::Paused {
            return Err(format!("vCPU {id} is not stopped"));
        }
        let (tx, rx) = mpsc::channel();
        let gone = || format!("vCPU {id} has ended");
        v.h.requests.send(make(tx)).map_err(|_| gone())?;
        rx.recv().map_err(|_| gone())?
    }

    /// The registers of a paused vCPU (read once per stop).
    pub(super) fn state(&mut self, id: usize) -> Result<CpuState, String> {
        if let Some(s) = self.vcpus.get(id).and_then(|v| v.cache) {
            return Ok(s);
        }
        let s = self.ask(id, DebugRequest::GetState)?;
        if let Some(v) = self.vcpus.get_mut(id) {
            v.cache = Some(s);
        }
        Ok(s)
    }

    fn set_state(&mut self, id: usize, s: CpuState) -> Result<(), String> {
        self.ask(id, |r| DebugRequest::SetState(Box::new(s), r))?;
        if let Some(v) = self.vcpus.get_mut(id) {
            v.cache = Some(s);
        }
        Ok(())
    }

    /// The linear address behind gdb address `addr` on vCPU `id`: CS base + `addr` (see the
    /// address convention in [`super`]), cut to 32 bits outside long mode.
    pub(super) fn linear(&mut self, id: usize, addr: u64) -> Result<u64, String> {
        let s = self.state(id)?;
        Ok(s.sregs.cs.base.wrapping_add(addr) & address_mask(&s))
    }

    pub(super) fn read_linear(&self, id: usize, linear: u64, len: usize) -> Result<Vec<u8>, String> {
        self.ask(id, |reply| DebugRequest::ReadMem { linear, len, reply })
    }

    fn write_linear(&self, id: usize, linear: u64, data: Vec<u8>) -> Result<(), String> {
        self.ask(id, |reply| DebugRequest::WriteMem { linear, data, reply })
    }

    /// Every vCPU's control flags (the connection watches their stop flags).
    pub(super) fn controls(&self) -> Vec<Arc<VcpuControl>> {
        self.vcpus.iter().map(|v| v.h.ctl.clone()).collect()
    }

    pub(super) fn vcpu_count(&self) -> usize {
        self.vcpus.len()
    }

    pub(super) fn vcpu_name(&self, id: usize) -> Option<&str> {
        self.vcpus.get(id).map(|v| v.h.name.as_str())
    }

    pub(super) fn is_paused(&self, id: usize) -> bool {
        self.vcpus.get(id).is_some_and(|v| v.run == Run::Paused)
    }

    pub(super) fn stats(&self) -> Vec<(usize, String, VcpuStats)> {
        self.vcpus.iter().map(|v| (v.h.id, v.h.name.clone(), lock(&v.h.stats).clone())).collect()
    }

    fn live(&self) -> impl Iterator<Item = &VcpuView> {
        self.vcpus.iter().filter(|v| v.run != Run::Ended)
    }

    fn first_live(&self) -> Option<usize> {
        self.live().next().map(|v| v.h.id)
    }

    pub fn all_ended(&self) -> bool {
        self.live().next().is_none()
    }

    /// The exit code gdb is told when every vCPU has ended: minikvm's own exit status.
    fn exit_code(&self) -> u8 {
        let ends = || self.vcpus.iter().filter_map(|v| v.end.as_ref());
        if ends().any(|e| matches!(e, VcpuEnd::Fault { .. })) {
            1
        } else if ends().any(|e| matches!(e, VcpuEnd::HostError(_))) {
            4
        } else if ends().any(|e| matches!(e, VcpuEnd::DebugExit(_))) {
            9
        } else if ends().any(|e| matches!(e, VcpuEnd::Stopped)) {
            6
        } else {
            0
        }
    }

    // ----- stopping and resuming -----

    /// Takes in what the vCPUs reported; returns the stop to tell gdb, if there is one (the
    /// other vCPUs are then stopped too).
    pub fn take_events(&mut self) -> Option<StopReason> {
        if let Some(r) = self.ready.take() {
            return Some(r);
        }
        while let Ok((id, ev)) = self.events.try_recv() {
            if let Some(reason) = self.on_event(id, ev) {
                self.stop_all();
                self.current = id;
                return Some(reason);
            }
        }
        if self.all_ended() {
            return Some(StopReason::Exited(self.exit_code()));
        }
        None
    }

    /// Takes in what the vCPUs reported while gdb is not waiting for a stop.
    pub fn note_events(&mut self) {
        while let Ok((id, ev)) = self.events.try_recv() {
            let _ = self.on_event(id, ev);
        }
    }

    /// Books one event; returns the stop it means for gdb, if any.
    fn on_event(&mut self, id: usize, ev: DebugEvent) -> Option<StopReason> {
        let v = self.vcpus.get_mut(id)?;
        v.cache = None;
        match ev {
            DebugEvent::Ended(end) => {
                log::info!("gdb: vCPU {id} ended: {end:?}");
                v.run = Run::Ended;
                v.end = Some(end);
                if self.all_ended() {
                    return Some(StopReason::Exited(self.exit_code()));
                }
                None
            }
            DebugEvent::Paused => {
                v.run = Run::Paused;
                Some(StopReason::SignalWithThread { tid: tid(id), signal: Signal::SIGINT })
            }
            DebugEvent::Faulted(fault) => {
                v.run = Run::Paused;
                let why = format!("minikvm: guest `{}` (vCPU {id}) stopped: {fault}", v.h.name);
                note!("\r\n{why}\r\nminikvm: gdb shows where; `continue` ends the run");
                self.refusals.say(format!("{why}\nminikvm: gdb shows where; `continue` ends the run\n"));
                Some(StopReason::SignalWithThread { tid: tid(id), signal: fault_signal(&fault) })
            }
            DebugEvent::Debug { exception, pc, dr6 } => {
                v.run = Run::Paused;
                let soft = v.soft.take();
                let t = tid(id);
                Some(match exception {
                    3 => StopReason::SwBreak(t),
                    _ => match self.breakpoints.decode(dr6) {
                        Hit::Step => match soft {
                            Some(soft) => return self.soft_watch_step(id, soft),
                            None => StopReason::SignalWithThread { tid: t, signal: Signal::SIGTRAP },
                        },
                        Hit::Unknown => StopReason::SignalWithThread { tid: t, signal: Signal::SIGTRAP },
                        Hit::Break(Origin::Break) => StopReason::SwBreak(t),
                        Hit::Break(_) => StopReason::HwBreak(t),
                        Hit::Watch { kind, addr } => {
                            log::debug!("gdb: vCPU {id} watchpoint at {addr:#x} (pc {pc:#x})");
                            StopReason::Watch { tid: t, kind, addr }
                        }
                    },
                })
            }
        }
    }

    /// All-stop: pauses every running vCPU and waits until each has stopped. Stops that happen
    /// meanwhile are kept for later. A vCPU that has not stopped after a few seconds (a
    /// minikvm that cannot interrupt what the vCPU waits for) is left running, so that gdb still
    /// gets its answer; it reports its stop when it gets to it.
    pub fn stop_all(&mut self) {
        self.stopping = true;
        for v in self.vcpus.iter().filter(|v| v.run == Run::Running) {
            v.h.ctl.pause.store(true, Ordering::Release);
            crate::kvm::kick(&v.h.thread);
        }
        let give_up = std::time::Instant::now() + STOP_PATIENCE;
        while self.vcpus.iter().any(|v| v.run == Run::Running) {
            if std::time::Instant::now() > give_up {
                for v in self.vcpus.iter().filter(|v| v.run == Run::Running) {
                    note!("\r\nminikvm: gdb: vCPU {} ({}) does not stop; gdb is answered without it", v.h.id, v.h.name);
                }
                break;
            }
            match self.events.recv_timeout(Duration::from_millis(100)) {
                Ok((id, ev)) => {
                    if let Some(reason) = self.on_event(id, ev) {
                        let keep = !matches!(reason, StopReason::SignalWithThread { signal: Signal::SIGINT, .. })
                            && !matches!(reason, StopReason::Exited(_));
                        if keep {
                            self.pending.push_back((id, reason));
                        }
                    }
                }
                // A kick that landed just before KVM_RUN is never lost (immediate_exit), but a
                // vCPU busy in minikvm's own exit handling may need another.
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    for v in self.vcpus.iter().filter(|v| v.run == Run::Running) {
                        crate::kvm::kick(&v.h.thread);
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    for v in &mut self.vcpus {
                        v.run = Run::Ended;
                    }
                }
            }
        }
        self.stopping = false;
    }

    /// Ctrl-C from gdb.
    pub fn interrupt(&mut self) -> StopReason {
        self.stop_all();
        if let Some((id, r)) = self.pending.pop_front() {
            self.current = id;
            return r;
        }
        let paused = self.live().find(|v| v.run == Run::Paused).map(|v| v.h.id);
        match paused.or_else(|| self.first_live()) {
            Some(id) => {
                self.current = id;
                StopReason::SignalWithThread { tid: tid(id), signal: Signal::SIGINT }
            }
            None => StopReason::Exited(self.exit_code()),
        }
    }

    fn resume_all(&mut self) -> Result<(), String> {
        let lock = self.lock_scheduler;
        let go: Vec<(usize, bool)> = self
            .vcpus
            .iter()
            .filter(|v| v.run == Run::Paused)
            .filter_map(|v| match v.action {
                Some(step) => Some((v.h.id, step)),
                None if !lock => Some((v.h.id, false)),
                None => None,
            })
            .collect();
        // A breakpoint accepted but not honoured: say why, run nothing (see super::refusals).
        if self.refusals.explain_at_resume() {
            let id = if self.is_paused(self.current) { self.current } else { self.first_live().unwrap_or(0) };
            self.ready = Some(StopReason::SignalWithThread { tid: tid(id), signal: Signal::SIGTRAP });
            return Ok(());
        }
        // A stop that happened while gdb looked at another one is reported now, nothing runs.
        if let Some(pos) = self.pending.iter().position(|(id, _)| go.iter().any(|(g, _)| g == id)) {
            if let Some((id, r)) = self.pending.remove(pos) {
                self.current = id;
                self.ready = Some(r);
                return Ok(());
            }
        }
        if go.is_empty() {
            self.ready = Some(match self.first_live() {
                Some(id) => StopReason::SignalWithThread { tid: tid(id), signal: Signal::SIGTRAP },
                None => StopReason::Exited(self.exit_code()),
            });
            return Ok(());
        }
        for (id, step) in go {
            let soft = if self.soft_watch.is_empty() {
                None
            } else {
                Some(SoftWatching { old: self.watched_values(id), gdb_step: step })
            };
            self.resume_one(id, step, soft)?;
        }
        Ok(())
    }

    /// Lets one paused vCPU run (or step) with the current breakpoints loaded.
    fn resume_one(&mut self, id: usize, step: bool, soft: Option<SoftWatching>) -> Result<(), String> {
        let s = self.state(id)?;
        let with = ResumeWith {
            // Watching writes without data breakpoints means stepping and comparing.
            step: step || soft.is_some(),
            // Hold interrupts back for gdb's own steps only: a whole `continue` made of steps
            // must still see the timer.
            block_irq: self.caps.block_irq && step,
            debugreg: self.breakpoints.debugreg(s.sregs.cs.base, address_mask(&s)),
            int3: self.breakpoints.int3_linear(id),
        };
        let Some(v) = self.vcpus.get_mut(id) else { return Ok(()) };
        v.h.ctl.pause.store(false, Ordering::Release);
        v.cache = None;
        v.soft = soft;
        if v.h.requests.send(DebugRequest::Resume(with)).is_ok() {
            v.run = Run::Running;
        } else {
            v.run = Run::Ended;
        }
        Ok(())
    }

    /// The current bytes of every stepping-emulated watchpoint, as vCPU `id` sees them.
    fn watched_values(&mut self, id: usize) -> Vec<Option<Vec<u8>>> {
        let regions: Vec<(u64, u64)> = self.soft_watch.clone();
        regions
            .into_iter()
            .map(|(addr, len)| {
                let linear = self.linear(id, addr).ok()?;
                self.read_linear(id, linear, usize::try_from(len).ok()?).ok()
            })
            .collect()
    }

    /// After one emulation step of vCPU `id`: the watch that changed, or None (then it steps on).
    fn soft_watch_step(&mut self, id: usize, soft: SoftWatching) -> Option<StopReason> {
        let now = self.watched_values(id);
        let changed = now.iter().zip(&soft.old).position(|(new, old)| new != old);
        if let Some(i) = changed {
            let addr = self.soft_watch.get(i).map(|w| w.0).unwrap_or_default();
            return Some(StopReason::Watch { tid: tid(id), kind: WatchKind::Write, addr });
        }
        if soft.gdb_step {
            return Some(StopReason::SignalWithThread { tid: tid(id), signal: Signal::SIGTRAP });
        }
        if self.stopping {
            return None; // it stays paused: everything is being stopped
        }
        match self.resume_one(id, false, Some(soft)) {
            Ok(()) => None,
            Err(e) => {
                log::warn!("gdb: vCPU {id}: {e}");
                Some(StopReason::SignalWithThread { tid: tid(id), signal: Signal::SIGTRAP })
            }
        }
    }

    /// The end of the session: every breakpoint out, every vCPU told to `Detach` (run on to its
    /// normal end) or to `Stop`.
    pub fn finish(&mut self, stop_guest: bool) {
        self.stop_all();
        for p in self.breakpoints.take_all_int3() {
            if let Err(e) = self.write_linear(p.vcpu, p.linear, vec![p.saved]) {
                log::warn!("gdb: cannot remove the int3 at {:#x}: {e}", p.linear);
            }
        }
        self.breakpoints.clear_slots();
        self.refusals.clear();
        for v in self.vcpus.iter().filter(|v| v.run != Run::Ended) {
            let req = if stop_guest { DebugRequest::Stop } else { DebugRequest::Detach };
            let _ = v.h.requests.send(req);
        }
    }

    /// The mode of a paused vCPU, without filling the per-stop cache (for `&self` callers).
    fn mode_now(&self, id: usize) -> Option<CpuMode> {
        let cached = self.vcpus.get(id).and_then(|v| v.cache);
        let s = cached.or_else(|| self.ask(id, DebugRequest::GetState).ok())?;
        Some(cpu_mode(&s))
    }

    fn mode(&mut self, id: usize) -> Option<CpuMode> {
        let s = self.state(id).ok()?;
        Some(cpu_mode(&s))
    }
}

pub(super) fn cpu_mode(s: &CpuState) -> CpuMode {
    CpuMode::from_regs(s.sregs.cr0, s.sregs.cr4, s.sregs.efer, s.sregs.cs.db != 0, s.sregs.cs.l != 0)
}

/// Linear addresses are 32 bits wide outside long mode.
fn address_mask(s: &CpuState) -> u64 {
    if s.sregs.efer & efer::LMA != 0 {
        u64::MAX
    } else {
        0xffff_ffff
    }
}

fn watch_request(kind: WatchKind) -> Request {
    match kind {
        WatchKind::Write => Request::Watch,
        WatchKind::Read => Request::RWatch,
        WatchKind::ReadWrite => Request::AWatch,
    }
}

fn fault_signal(f: &Fault) -> Signal {
    match f {
        Fault::TripleFault => Signal::SIGSEGV,
        Fault::UnknownHypercall(_) => Signal::SIGSYS,
        Fault::InternalError(_) | Fault::FailedEntry(_) => Signal::SIGILL,
        Fault::Unhandled(_) | Fault::SystemEvent(_) => Signal::SIGABRT,
    }
}

// ----- gdbstub's traits -----

impl Target for Debugger {
    type Arch = X86Guest;
    type Error = String;

    fn base_ops(&mut self) -> BaseOps<'_, Self::Arch, Self::Error> {
        BaseOps::MultiThread(self)
    }

    fn support_breakpoints(&mut self) -> Option<BreakpointsOps<'_, Self>> {
        Some(self)
    }

    fn support_monitor_cmd(&mut self) -> Option<MonitorCmdOps<'_, Self>> {
        Some(self)
    }

    /// Offered to protected-mode guests only: gdb takes the architecture of an executable over
    /// the target description, and an ELF32 file says "i386" even for 16-bit code. Real-mode
    /// guests' symbols are loaded with `symbol-file`, which leaves the architecture alone.
    fn support_exec_file(&mut self) -> Option<ExecFileOps<'_, Self>> {
        self.exec_file.as_ref()?;
        if !matches!(self.flavour.get(), Some(TdescFlavour::I386 | TdescFlavour::X86_64)) {
            return None;
        }
        Some(self)
    }

    fn support_target_description_xml_override(&mut self) -> Option<TargetDescriptionXmlOverrideOps<'_, Self>> {
        Some(self)
    }
}

impl MultiThreadBase for Debugger {
    /// In the layout of the description gdb read last, whatever the vCPU's mode is now.
    fn read_registers(&mut self, regs: &mut GuestRegs, tid: Tid) -> TargetResult<(), Self> {
        let wide = self.flavour.get().is_some_and(TdescFlavour::is_64_bit);
        match self.state(index(tid)) {
            Ok(s) if wide => *regs = GuestRegs::Bits64(X86_64Regs::from_kvm(&s.regs, &s.sregs, &s.fpu)),
            Ok(s) => *regs = GuestRegs::Bits32(X86Regs::from_kvm(&s.regs, &s.sregs, &s.fpu)),
            Err(e) => return nonfatal(e),
        }
        Ok(())
    }

    /// A `G` packet in the other layout than the description gdb read last is refused.
    fn write_registers(&mut self, regs: &GuestRegs, tid: Tid) -> TargetResult<(), Self> {
        let id = index(tid);
        let wide = self.flavour.get().is_some_and(TdescFlavour::is_64_bit);
        let mut s = match self.state(id) {
            Ok(s) => s,
            Err(e) => return nonfatal(e),
        };
        let changed = match regs {
            GuestRegs::Bits64(r) if wide => r.apply_to_kvm(&mut s.regs, &mut s.sregs, &mut s.fpu),
            GuestRegs::Bits32(r) if !wide => r.apply_to_kvm(&mut s.regs, &mut s.sregs, &mut s.fpu),
            _ => return nonfatal("a G packet in a register layout gdb was not given".into()),
        };
        if changed.regs || changed.sregs || changed.fpu {
            if let Err(e) = self.set_state(id, s) {
                return nonfatal(e);
            }
        }
        Ok(())
    }

    fn read_addrs(&mut self, start: u64, data: &mut [u8], tid: Tid) -> TargetResult<usize, Self> {
        // gdbstub reads an `m` packet's length in pieces of the packet buffer and sends each
        // piece as it comes: a length beyond the budget is refused before anything is sent.
        if data.len() > self.read_budget {
            log::info!("gdb: a memory read of more than {MAX_READ} bytes refused");
            self.read_budget = 0;
            return Err(TargetError::Errno(EINVAL));
        }
        self.read_budget -= data.len();
        let id = index(tid);
        let linear = match self.linear(id, start) {
            Ok(l) => l,
            Err(e) => return nonfatal(e),
        };
        match self.read_linear(id, linear, data.len()) {
            Ok(bytes) => {
                let n = bytes.len().min(data.len());
                data[..n].copy_from_slice(&bytes[..n]);
                self.breakpoints.hide_int3(id, linear, &mut data[..n]);
                Ok(n)
            }
            Err(e) => {
                log::debug!("gdb: read at {start:#x} (linear {linear:#x}): {e}");
                Err(TargetError::Errno(EFAULT))
            }
        }
    }

    fn write_addrs(&mut self, start: u64, data: &[u8], tid: Tid) -> TargetResult<(), Self> {
        let id = index(tid);
        let linear = match self.linear(id, start) {
            Ok(l) => l,
            Err(e) => return nonfatal(e),
        };
        match self.write_linear(id, linear, data.to_vec()) {
            Ok(()) => Ok(()),
            Err(e) => {
                log::debug!("gdb: write at {start:#x} (linear {linear:#x}): {e}");
                Err(TargetError::Errno(EFAULT))
            }
        }
    }

    fn list_active_threads(&mut self, thread_is_active: &mut dyn FnMut(Tid)) -> Result<(), Self::Error> {
        for v in self.live() {
            thread_is_active(tid(v.h.id));
        }
        Ok(())
    }

    fn support_resume(&mut self) -> Option<MultiThreadResumeOps<'_, Self>> {
        Some(self)
    }

    fn support_thread_extra_info(&mut self) -> Option<ThreadExtraInfoOps<'_, Self>> {
        Some(self)
    }
}

impl ThreadExtraInfo for Debugger {
    fn thread_extra_info(&self, tid: Tid, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let id = index(tid);
        let name = self.vcpu_name(id).unwrap_or("?");
        let text = format!("vCPU {id}: {name}");
        let n = text.len().min(buf.len());
        buf[..n].copy_from_slice(&text.as_bytes()[..n]);
        Ok(n)
    }
}

impl MultiThreadResume for Debugger {
    fn resume(&mut self) -> Result<(), Self::Error> {
        self.resume_all()
    }

    fn clear_resume_actions(&mut self) -> Result<(), Self::Error> {
        for v in &mut self.vcpus {
            v.action = None;
        }
        self.lock_scheduler = false;
        Ok(())
    }

    fn set_resume_action_continue(&mut self, tid: Tid, _signal: Option<Signal>) -> Result<(), Self::Error> {
        if let Some(v) = self.vcpus.get_mut(index(tid)) {
            v.action = Some(false);
        }
        Ok(())
    }

    fn support_single_step(&mut self) -> Option<MultiThreadSingleStepOps<'_, Self>> {
        Some(self)
    }

    fn support_scheduler_locking(&mut self) -> Option<MultiThreadSchedulerLockingOps<'_, Self>> {
        Some(self)
    }
}

impl MultiThreadSingleStep for Debugger {
    fn set_resume_action_step(&mut self, tid: Tid, _signal: Option<Signal>) -> Result<(), Self::Error> {
        if let Some(v) = self.vcpus.get_mut(index(tid)) {
            v.action = Some(true);
        }
        Ok(())
    }
}

impl MultiThreadSchedulerLocking for Debugger {
    fn set_resume_action_scheduler_lock(&mut self) -> Result<(), Self::Error> {
        self.lock_scheduler = true;
        Ok(())
    }
}

impl BreakpointsExt for Debugger {
    fn support_sw_breakpoint(&mut self) -> Option<SwBreakpointOps<'_, Self>> {
        Some(self)
    }

    fn support_hw_breakpoint(&mut self) -> Option<HwBreakpointOps<'_, Self>> {
        Some(self)
    }

    fn support_hw_watchpoint(&mut self) -> Option<HwWatchpointOps<'_, Self>> {
        Some(self)
    }
}

impl SwBreakpoint for Debugger {
    fn add_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        if self.breakpoints.free_slots() > 0 {
            return Ok(self.breakpoints.add_exec(addr, Origin::Break).is_ok());
        }
        if !self.caps.int3 {
            let why = "the 4 debug registers are in use and this host's KVM does not intercept int3 \
                       (see `minikvm doctor`)";
            note!("\r\nminikvm: gdb: cannot set a breakpoint at {addr:#x}: {why}; delete a breakpoint or watchpoint");
            return Ok(self.refusals.refuse(Request::Break, addr, 1, why.into()));
        }
        if self.breakpoints.has_int3(addr) {
            return Ok(true);
        }
        if self.breakpoints.int3_count() >= MAX_INT3 {
            let why = format!("minikvm plants at most {MAX_INT3} int3 breakpoints");
            return Ok(self.refusals.refuse(Request::Break, addr, 1, why));
        }
        let mut planted: Vec<Planted> = Vec::new();
        let ids: Vec<usize> = self.live().map(|v| v.h.id).collect();
        for id in ids {
            let Ok(linear) = self.linear(id, addr) else { continue };
            if planted.iter().any(|p| p.linear == linear) {
                continue;
            }
            let saved = match self.read_linear(id, linear, 1) {
                Ok(b) if b.len() == 1 => b[0],
                _ => continue,
            };
            if self.write_linear(id, linear, vec![0xcc]).is_ok() {
                planted.push(Planted { vcpu: id, linear, saved });
            }
        }
        if planted.is_empty() {
            return Err(TargetError::Errno(EFAULT));
        }
        self.breakpoints.insert_int3(addr, planted);
        Ok(true)
    }

    fn remove_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        if self.refusals.remove(Request::Break, addr, 1) || self.breakpoints.remove_exec(addr, Origin::Break) {
            return Ok(true);
        }
        match self.breakpoints.take_int3(addr) {
            Some(planted) => {
                for p in planted {
                    if let Err(e) = self.write_linear(p.vcpu, p.linear, vec![p.saved]) {
                        log::warn!("gdb: cannot remove the int3 at {:#x}: {e}", p.linear);
                    }
                }
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

impl HwBreakpoint for Debugger {
    fn add_hw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        if self.breakpoints.add_exec(addr, Origin::HBreak).is_ok() {
            return Ok(true);
        }
        let why = "the 4 debug registers DR0-DR3 are in use (`monitor breakpoints` shows by what)";
        Ok(self.refusals.refuse(Request::HBreak, addr, 1, why.into()))
    }

    fn remove_hw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        Ok(self.refusals.remove(Request::HBreak, addr, 1) || self.breakpoints.remove_exec(addr, Origin::HBreak))
    }
}

impl HwWatchpoint for Debugger {
    fn add_hw_watchpoint(&mut self, addr: u64, len: u64, kind: WatchKind) -> TargetResult<bool, Self> {
        let request = watch_request(kind);
        if self.caps.data_breakpoints {
            if self.breakpoints.add_watch(addr, len, kind).is_ok() {
                return Ok(true);
            }
            let why = "the 4 debug registers DR0-DR3 cannot hold it (in use, or more than 4 aligned pieces)";
            return Ok(self.refusals.refuse(request, addr, len, why.into()));
        }
        if kind != WatchKind::Write || !(1..=8).contains(&len) {
            let why = "this host's KVM ignores data breakpoints, so minikvm watches writes by \
                       single-stepping: `watch` on up to 8 bytes works, `rwatch` and `awatch` cannot";
            note!("\r\nminikvm: gdb: {why}");
            return Ok(self.refusals.refuse(request, addr, len, why.into()));
        }
        if !self.soft_watch.contains(&(addr, len)) {
            if self.soft_watch.len() >= MAX_SOFT_WATCH {
                let why = format!("minikvm single-steps for at most {MAX_SOFT_WATCH} watchpoints");
                return Ok(self.refusals.refuse(request, addr, len, why));
            }
            self.soft_watch.push((addr, len));
        }
        Ok(true)
    }

    fn remove_hw_watchpoint(&mut self, addr: u64, len: u64, kind: WatchKind) -> TargetResult<bool, Self> {
        if self.refusals.remove(watch_request(kind), addr, len) {
            return Ok(true);
        }
        if let Some(pos) = self.soft_watch.iter().position(|&w| w == (addr, len)) {
            self.soft_watch.remove(pos);
            return Ok(true);
        }
        Ok(self.breakpoints.remove_watch(addr, len, kind))
    }
}

impl MonitorCmd for Debugger {
    fn handle_monitor_cmd(&mut self, cmd: &[u8], mut out: ConsoleOutput<'_>) -> Result<(), Self::Error> {
        let text = monitor::run(self, &String::from_utf8_lossy(cmd));
        for line in text.lines() {
            out.write_raw(line.as_bytes());
            out.write_raw(b"\n");
        }
        Ok(())
    }
}

impl ExecFile for Debugger {
    fn get_exec_file(
        &self,
        _pid: Option<gdbstub::common::Pid>,
        offset: u64,
        length: usize,
        buf: &mut [u8],
    ) -> TargetResult<usize, Self> {
        let path = self.exec_file.as_deref().unwrap_or_default();
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(path.len());
        let n = (path.len() - start).min(length).min(buf.len());
        buf[..n].copy_from_slice(&path[start..start + n]);
        Ok(n)
    }
}

impl TargetDescriptionXmlOverride for Debugger {
    fn target_description_xml(
        &self,
        annex: &[u8],
        offset: u64,
        length: usize,
        buf: &mut [u8],
    ) -> TargetResult<usize, Self> {
        // gdb reads the description from offset 0 on: that is when it may change.
        if offset == 0 {
            if let Some(mode) = self.mode_now(self.current) {
                self.flavour.set(Some(TdescFlavour::for_mode(mode)));
            }
        }
        let flavour = self.flavour.get().unwrap_or(TdescFlavour::I386);
        serve_target_xml(flavour, annex, offset, length, buf).ok_or(TargetError::NonFatal)
    }
}

impl Debugger {
    /// Decides the target description from vCPU 0's mode when gdb connects (gdb reads it once).
    pub fn choose_description(&mut self) {
        let mode = self.mode(0).unwrap_or(CpuMode::Protected32);
        self.flavour.set(Some(TdescFlavour::for_mode(mode)));
        log::info!(
            "gdb: vCPU 0 is in {mode}: describing the target as {}",
            TdescFlavour::for_mode(mode).architecture()
        );
    }
}
