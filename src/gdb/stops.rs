//! The debugger's stop/resume state machine: what the vCPUs report, what gdb is told.
//!
//! gdb runs all-stop: when one vCPU stops (a breakpoint, a step, a fault, Ctrl-C), every other one
//! is paused too before gdb hears of it ([`Debugger::stop_all`]), and a `continue` or `stepi` lets
//! them all go again, each as its [`ResumeAction`] says. Two vCPUs may stop at nearly the same
//! moment: gdb is told of one, the other's stop waits in `pending` and is reported at the next
//! resume instead of running anything.
//!
//! Per vCPU the states are those of `Run` (in [`super::debugger`]): `Paused` (answers requests)
//! → `Running` (on a resume) → `Paused` again on a [`DebugEvent`], or `Ended`. Between sessions
//! ([`Debugger::finish`], [`Debugger::attach`]) the vCPUs run detached, still `Running` here: the
//! next gdb pauses them as an all-stop does. The vCPUs are reached through the
//! [`Vcpus`](super::vcpus::Vcpus) trait, so the table test at the end drives this machine with a
//! fake: a sequence of events in, the stop replies gdb would get out.

use super::breakpoints::{Hit, Origin};
use super::debugger::{address_mask, tid, Debugger, ResumeAction, Run, SoftWatching, StopReply};
use super::error::DebugError;
use super::vcpus::{Next, Release};
use crate::exit::Fault;
use crate::run_loop::{DebugEvent, ResumeWith, VcpuEnd};
use gdbstub::common::Signal;
use gdbstub::target::ext::breakpoints::WatchKind;
use std::time::{Duration, Instant};

/// How often an all-stop kicks again the vCPUs that have not stopped yet.
const REKICK: Duration = Duration::from_millis(100);

fn signal(id: usize, signal: Signal) -> StopReply {
    StopReply::SignalWithThread { tid: tid(id), signal }
}

impl Debugger {
    // ----- events in -----

    /// Takes in what the vCPUs reported; returns the stop to tell gdb, if there is one (the
    /// other vCPUs are then stopped too).
    pub fn take_events(&mut self) -> Option<StopReply> {
        if let Some(r) = self.ready.take() {
            return Some(r);
        }
        while let Next::Event(id, ev) = self.vcpus.next_event(None) {
            if let Some(reason) = self.on_event(id, ev) {
                self.stop_all();
                self.current = id;
                return Some(reason);
            }
        }
        if self.all_ended() {
            return Some(StopReply::Exited(self.exit_code()));
        }
        None
    }

    /// Takes in what the vCPUs reported while gdb is not waiting for a stop (or no gdb is there).
    pub fn note_events(&mut self) {
        while let Next::Event(id, ev) = self.vcpus.next_event(None) {
            let _ = self.on_event(id, ev);
        }
    }

    /// Books one event; returns the stop it means for gdb, if any.
    fn on_event(&mut self, id: usize, ev: DebugEvent) -> Option<StopReply> {
        let v = self.views.get_mut(id)?;
        v.cache = None;
        match ev {
            DebugEvent::Ended(end) => {
                log::info!("gdb: vCPU {id} ended: {end:?}");
                v.run = Run::Ended;
                v.end = Some(end);
                self.all_ended().then(|| StopReply::Exited(self.exit_code()))
            }
            DebugEvent::Paused => {
                v.run = Run::Paused;
                Some(signal(id, Signal::SIGINT))
            }
            DebugEvent::Faulted(fault) => {
                v.run = Run::Paused;
                self.explain_fault(id, &fault);
                Some(signal(id, fault_signal(&fault)))
            }
            DebugEvent::Debug { exception, pc, dr6 } => {
                v.run = Run::Paused;
                let soft = v.soft.take();
                let t = tid(id);
                Some(match (exception, self.breakpoints.decode(dr6)) {
                    (3, _) => StopReply::SwBreak(t),
                    (_, Hit::Step) => match soft {
                        Some(soft) => return self.soft_watch_step(id, soft),
                        None => signal(id, Signal::SIGTRAP),
                    },
                    (_, Hit::Unknown) => signal(id, Signal::SIGTRAP),
                    (_, Hit::Break(Origin::Break)) => StopReply::SwBreak(t),
                    (_, Hit::Break(_)) => StopReply::HwBreak(t),
                    (_, Hit::Watch { kind, addr }) => {
                        log::debug!("gdb: vCPU {id} watchpoint at {addr:#x} (pc {pc:#x})");
                        StopReply::Watch { tid: t, kind, addr }
                    }
                })
            }
        }
    }

    /// A guest fault, in words on minikvm's terminal and on gdb's screen.
    fn explain_fault(&mut self, id: usize, fault: &Fault) {
        let why = format!("minikvm: guest `{}` (vCPU {id}) stopped: {fault}", self.vcpus.name(id));
        note!("\r\n{why}\r\nminikvm: gdb shows where; `continue` ends the run");
        self.refusals.say(format!("{why}\nminikvm: gdb shows where; `continue` ends the run\n"));
    }

    /// The exit code gdb is told when every vCPU has ended: minikvm's own exit status.
    pub(super) fn exit_code(&self) -> u8 {
        let ends = || self.views.iter().filter_map(|v| v.end.as_ref());
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

    // ----- stopping -----

    /// All-stop: pauses every running vCPU and waits until each has stopped. Stops that happen
    /// meanwhile are kept for later. A vCPU that has not stopped after a few seconds (a
    /// minikvm that cannot interrupt what the vCPU waits for) is left running, so that gdb still
    /// gets its answer; it reports its stop when it gets to it.
    pub fn stop_all(&mut self) {
        self.stopping = true;
        self.pause_running();
        let give_up = Instant::now() + self.patience;
        while self.views.iter().any(|v| v.run == Run::Running) {
            if Instant::now() > give_up {
                for id in self.running() {
                    let name = self.vcpus.name(id);
                    note!("\r\nminikvm: gdb: vCPU {id} ({name}) does not stop; gdb is answered without it");
                }
                break;
            }
            match self.vcpus.next_event(Some(REKICK.min(self.patience))) {
                Next::Event(id, ev) => {
                    if let Some(reason) = self.on_event(id, ev) {
                        let keep = !matches!(reason, StopReply::SignalWithThread { signal: Signal::SIGINT, .. })
                            && !matches!(reason, StopReply::Exited(_));
                        if keep {
                            self.pending.push_back((id, reason));
                        }
                    }
                }
                // A kick that landed just before KVM_RUN is never lost (immediate_exit), but a
                // vCPU busy in minikvm's own exit handling may need another.
                Next::Nothing => self.pause_running(),
                Next::Gone => self.views.iter_mut().for_each(|v| v.run = Run::Ended),
            }
        }
        self.stopping = false;
    }

    fn running(&self) -> Vec<usize> {
        self.views.iter().enumerate().filter(|(_, v)| v.run == Run::Running).map(|(id, _)| id).collect()
    }

    fn pause_running(&mut self) {
        for id in self.running() {
            self.vcpus.pause(id);
        }
    }

    /// Ctrl-C from gdb.
    pub fn interrupt(&mut self) -> StopReply {
        self.stop_all();
        if let Some((id, r)) = self.pending.pop_front() {
            self.current = id;
            return r;
        }
        let paused = self.live().find(|&id| self.is_paused(id));
        match paused.or_else(|| self.first_live()) {
            Some(id) => {
                self.current = id;
                signal(id, Signal::SIGINT)
            }
            None => StopReply::Exited(self.exit_code()),
        }
    }

    // ----- resuming -----

    /// `vCont`'s action for one thread (gdbstub calls this once per thread the packet names).
    pub fn set_action(&mut self, id: usize, action: ResumeAction) {
        if let Some(v) = self.views.get_mut(id) {
            v.action = Some(action);
        }
    }

    /// Before a `vCont`: no thread has an action, the scheduler is not locked.
    pub fn clear_actions(&mut self) {
        for v in &mut self.views {
            v.action = None;
        }
        self.lock_scheduler = false;
    }

    /// The paused vCPUs that go on, and how: threads gdb did not name continue, unless the
    /// scheduler is locked (`set scheduler-locking step`).
    fn to_resume(&self) -> Vec<(usize, ResumeAction)> {
        let lock = self.lock_scheduler;
        let paused = self.views.iter().enumerate().filter(|(_, v)| v.run == Run::Paused);
        paused
            .filter_map(|(id, v)| match v.action {
                Some(a) => Some((id, a)),
                None if !lock => Some((id, ResumeAction::Continue)),
                None => None,
            })
            .collect()
    }

    /// Resumes as the actions say; or, when there is a stop to report first, resumes nothing and
    /// makes that stop the one the next wait reports.
    pub fn resume_all(&mut self) -> Result<(), DebugError> {
        let go = self.to_resume();
        if let Some(stop) = self.stop_instead(&go) {
            self.ready = Some(stop);
            return Ok(());
        }
        for (id, action) in go {
            let step = action == ResumeAction::Step;
            let soft =
                (!self.soft_watch.is_empty()).then(|| SoftWatching { old: self.watched_values(id), gdb_step: step });
            self.resume_one(id, step, soft)?;
        }
        Ok(())
    }

    /// Why nothing runs at this resume, as the stop to report: a breakpoint accepted but not
    /// honoured (see [`super::refusals`]), a stop that happened while gdb looked at another one,
    /// or no vCPU to run.
    fn stop_instead(&mut self, go: &[(usize, ResumeAction)]) -> Option<StopReply> {
        if self.refusals.explain_at_resume() {
            let id = if self.is_paused(self.current) { self.current } else { self.first_live().unwrap_or(0) };
            return Some(signal(id, Signal::SIGTRAP));
        }
        if let Some(pos) = self.pending.iter().position(|(id, _)| go.iter().any(|(g, _)| g == id)) {
            let (id, r) = self.pending.remove(pos)?;
            self.current = id;
            return Some(r);
        }
        if go.is_empty() {
            return Some(match self.first_live() {
                Some(id) => signal(id, Signal::SIGTRAP),
                None => StopReply::Exited(self.exit_code()),
            });
        }
        None
    }

    /// Lets one paused vCPU run (or step) with the current breakpoints loaded.
    fn resume_one(&mut self, id: usize, step: bool, soft: Option<SoftWatching>) -> Result<(), DebugError> {
        let s = self.state(id)?;
        let with = ResumeWith {
            // Watching writes without data breakpoints means stepping and comparing.
            step: step || soft.is_some(),
            // Hold interrupts back for gdb's own steps only: a whole `continue` made of steps
            // must still see the timer.
            block_irq: self.caps.block_irq && step,
            debugreg: self.breakpoints.debugreg(s.sregs.cs.base, address_mask(&s)),
            int3: self.breakpoints.int3_linear(id),
            detached: false,
        };
        let sent = self.vcpus.resume(id, with);
        let Some(v) = self.views.get_mut(id) else { return Ok(()) };
        v.cache = None;
        v.soft = soft;
        v.run = if sent { Run::Running } else { Run::Ended };
        Ok(())
    }

    // ----- write watchpoints by single-stepping -----

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
    fn soft_watch_step(&mut self, id: usize, soft: SoftWatching) -> Option<StopReply> {
        let now = self.watched_values(id);
        let changed = now.iter().zip(&soft.old).position(|(new, old)| new != old);
        if let Some(i) = changed {
            let addr = self.soft_watch.get(i).map(|w| w.0).unwrap_or_default();
            return Some(StopReply::Watch { tid: tid(id), kind: WatchKind::Write, addr });
        }
        if soft.gdb_step {
            return Some(signal(id, Signal::SIGTRAP));
        }
        if self.stopping {
            return None; // it stays paused: everything is being stopped
        }
        match self.resume_one(id, false, Some(soft)) {
            Ok(()) => None,
            Err(e) => {
                log::warn!("gdb: vCPU {id}: {e}");
                Some(signal(id, Signal::SIGTRAP))
            }
        }
    }

    // ----- sessions -----

    /// The end of a session: every breakpoint out, every vCPU told to `Detach` (run on, until
    /// the guest ends or the next gdb pauses it) or to `Stop`.
    pub fn finish(&mut self, stop_guest: bool) {
        self.stop_all();
        for p in self.breakpoints.take_all_int3() {
            if let Err(e) = self.write_linear(p.vcpu, p.linear, vec![p.saved]) {
                log::warn!("gdb: cannot remove the int3 at {:#x}: {e}", p.linear);
            }
        }
        self.breakpoints.clear_slots();
        self.soft_watch.clear();
        self.refusals.clear();
        self.pending.clear();
        self.ready = None;
        self.release_paused(if stop_guest { Release::Stop } else { Release::Detach });
    }

    /// Lets go of every paused vCPU. One that did not stop in time is left alone: it pauses when
    /// it gets to it, and is released then ([`Debugger::release_paused`] again, while no gdb is
    /// attached), so each pause gets exactly one release.
    pub fn release_paused(&mut self, how: Release) {
        for id in 0..self.views.len() {
            if !self.is_paused(id) {
                continue;
            }
            self.vcpus.release(id, how);
            if let Some(v) = self.views.get_mut(id) {
                v.run = Run::Running;
                v.cache = None;
                v.action = None;
                v.soft = None;
            }
        }
    }

    /// A new gdb connected: every vCPU that runs on from the last session is paused (all-stop),
    /// and gdb is told about the first one.
    pub fn attach(&mut self) {
        self.note_events();
        self.stop_all();
        self.pending.clear();
        self.lock_scheduler = false;
        let first = self.live().find(|&id| self.is_paused(id));
        self.current = first.unwrap_or(0);
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

#[cfg(test)]
mod tests {
    //! The state machine as a table: what the vCPUs report (and what gdb asks) in, the stop
    //! replies gdb gets and what the vCPUs were told out. The vCPUs are a fake
    //! ([`crate::gdb::fake_vcpus`]): a running fake vCPU that is asked to pause reports `Paused`
    //! at once, unless the row makes it stuck.

    use super::*;
    use crate::gdb::breakpoints::Origin;
    use crate::gdb::debugger::Caps;
    use crate::gdb::fake_vcpus::{FakeVcpus, Shared};
    use crate::gdb::refusals::Request;
    use crate::x86::debugreg::DR6_BS;
    use std::sync::{Arc, Mutex};
    use ResumeAction::{Continue, Step as StepOnce};

    /// One step of a row.
    enum Step {
        /// gdb's `vCont`: these vCPUs go on so (the others continue, as gdb's default).
        Go(&'static [(usize, ResumeAction)]),
        /// `set scheduler-locking step`, then a `vCont` that names these vCPUs only.
        GoLocked(&'static [(usize, ResumeAction)]),
        /// vCPU N reports this.
        Report(usize, DebugEvent),
        /// gdb waits for a stop: the reply it gets now (None: none yet, gdb keeps waiting).
        Wait(Option<StopReply>),
        /// Ctrl-C: the reply.
        CtrlC(StopReply),
        /// `hbreak` at this address (debug register slot 0 first).
        HBreak(u64),
        /// `watch` on one byte here, by a debug register.
        Watch(u64),
        /// `watch` on one byte here, where KVM ignores data breakpoints: by single-stepping.
        SoftWatch(u64),
        /// The guest writes this byte to memory.
        Poke(u64, u8),
        /// A breakpoint accepted but not honoured (see `refusals`).
        Refused,
        /// vCPU N does not stop when asked.
        Stuck(usize),
        /// The session ends: `detach` (false) or `kill` (true).
        Finish(bool),
        /// A new gdb attaches.
        Attach,
        /// What gdb's screen showed before the stops so far includes this.
        Says(&'static str),
        /// `break` at this address, in a debug register.
        Break(u64),
    }
    use Step::*;

    struct Row {
        name: &'static str,
        vcpus: usize,
        steps: Vec<Step>,
        /// What the vCPUs were told, in order.
        told: &'static [&'static str],
    }

    fn t(id: usize) -> gdbstub::common::Tid {
        tid(id)
    }
    fn trap(id: usize) -> StopReply {
        signal(id, Signal::SIGTRAP)
    }
    fn hw(id: usize) -> StopReply {
        StopReply::HwBreak(t(id))
    }
    fn sigint(id: usize) -> StopReply {
        signal(id, Signal::SIGINT)
    }
    /// A debug exit: 1 is #DB (with DR6), 3 is #BP (int3).
    fn db(exception: u32, dr6: u64) -> DebugEvent {
        DebugEvent::Debug { exception, pc: 0, dr6 }
    }
    const B0: u64 = 1;
    fn ended() -> DebugEvent {
        DebugEvent::Ended(VcpuEnd::Done("hlt"))
    }
    fn faulted_end() -> DebugEvent {
        DebugEvent::Ended(VcpuEnd::Fault { fault: Fault::TripleFault, report: String::new(), long_mode: false })
    }

    /// One row per line: its name, how many vCPUs, the steps, what the vCPUs were told.
    #[rustfmt::skip]
    fn rows() -> Vec<Row> {
        let row = |name, vcpus, steps, told| Row { name, vcpus, steps, told };
        let watch = |addr| StopReply::Watch { tid: t(0), kind: WatchKind::Write, addr };
        vec![
            row("continue, then a breakpoint", 1, vec![HBreak(0x10), Go(&[(0, Continue)]), Wait(None), Report(0, db(1, B0)), Wait(Some(hw(0)))], &["resume 0 continue dr0=0x10"]),
            row("a step", 1, vec![Go(&[(0, StepOnce)]), Report(0, db(1, DR6_BS)), Wait(Some(trap(0)))], &["resume 0 step"]),
            row("a #DB none of ours explains (the guest's own) is a SIGTRAP", 1, vec![Go(&[]), Report(0, db(1, B0)), Wait(Some(trap(0)))], &["resume 0 continue"]),
            row("`break` in a debug register is reported as a software breakpoint", 1, vec![Break(0x10), Go(&[]), Report(0, db(1, B0)), Wait(Some(StopReply::SwBreak(t(0))))], &["resume 0 continue dr0=0x10"]),
            row("an int3 of the debugger's", 1, vec![Go(&[]), Report(0, db(3, 0)), Wait(Some(StopReply::SwBreak(t(0))))], &["resume 0 continue"]),
            row("Ctrl-C while running", 1, vec![Go(&[(0, Continue)]), CtrlC(sigint(0))], &["resume 0 continue", "pause 0"]),
            row("Ctrl-C while vCPU 0 waits for input and vCPU 1 runs; then input comes and both end", 2, vec![Go(&[]), CtrlC(sigint(0)), Go(&[]), Report(0, ended()), Wait(None), Report(1, ended()), Wait(Some(StopReply::Exited(0)))], &["resume 0 continue", "resume 1 continue", "pause 0", "pause 1", "resume 0 continue", "resume 1 continue"]),
            row("a guest fault stops with its signal and says why; continue ends the run", 1, vec![Go(&[]), Report(0, DebugEvent::Faulted(Fault::TripleFault)), Wait(Some(signal(0, Signal::SIGSEGV))), Says("triple fault"), Go(&[]), Report(0, faulted_end()), Wait(Some(StopReply::Exited(1)))], &["resume 0 continue", "resume 0 continue"]),
            row("the guest ends", 1, vec![Go(&[]), Report(0, ended()), Wait(Some(StopReply::Exited(0)))], &["resume 0 continue"]),
            row("a watchpoint in a debug register", 1, vec![Watch(0x2a), Go(&[]), Report(0, db(1, B0)), Wait(Some(watch(0x2a)))], &["resume 0 continue dr0=0x2a"]),
            row("a watchpoint by single-stepping: quiet steps until the byte changes", 1, vec![SoftWatch(0x2a), Go(&[]), Report(0, db(1, DR6_BS)), Wait(None), Poke(0x2a, 1), Report(0, db(1, DR6_BS)), Wait(Some(watch(0x2a)))], &["resume 0 step", "resume 0 step"]),
            row("gdb's own step while single-stepping for a watchpoint is reported", 1, vec![SoftWatch(0x2a), Go(&[(0, StepOnce)]), Report(0, db(1, DR6_BS)), Wait(Some(trap(0)))], &["resume 0 step"]),
            row("vCPU 1 stops: vCPU 0 is paused too (all-stop)", 2, vec![HBreak(0x10), Go(&[]), Report(1, db(1, B0)), Wait(Some(hw(1)))], &["resume 0 continue dr0=0x10", "resume 1 continue dr0=0x10", "pause 0"]),
            row("two vCPUs stop at once: the second stop comes at the next continue, nothing runs", 2, vec![HBreak(0x10), Go(&[]), Report(0, db(1, B0)), Report(1, db(1, B0)), Wait(Some(hw(0))), Go(&[]), Wait(Some(hw(1)))], &["resume 0 continue dr0=0x10", "resume 1 continue dr0=0x10", "pause 1"]),
            row("a vCPU that does not stop: gdb is answered without it", 2, vec![Stuck(1), Go(&[]), Report(0, db(1, DR6_BS)), Wait(Some(trap(0)))], &["resume 0 continue", "resume 1 continue", "pause 1"]),
            row("scheduler locking: only the named vCPU steps", 2, vec![GoLocked(&[(1, StepOnce)]), Report(1, db(1, DR6_BS)), Wait(Some(trap(1)))], &["resume 1 step"]),
            row("a refused breakpoint: nothing runs, gdb hears why", 1, vec![Refused, Go(&[]), Wait(Some(trap(0))), Says("cannot honour")], &[]),
            row("detach: breakpoints out, every vCPU runs on", 2, vec![HBreak(0x10), Go(&[]), Report(0, db(1, B0)), Wait(Some(hw(0))), Finish(false)], &["resume 0 continue dr0=0x10", "resume 1 continue dr0=0x10", "pause 1", "detach 0", "detach 1"]),
            row("detach, then a new gdb attaches: all-stop again, then continue without the old breakpoints", 1, vec![HBreak(0x10), Finish(false), Attach, Go(&[]), Report(0, ended()), Wait(Some(StopReply::Exited(0)))], &["detach 0", "pause 0", "resume 0 continue"]),
            row("kill: every vCPU is stopped", 2, vec![Finish(true)], &["stop 0", "stop 1"]),
            row("a vCPU that ends while another stops is no stop of its own", 2, vec![Go(&[]), Report(0, ended()), Report(1, db(1, DR6_BS)), Wait(Some(trap(1))), Go(&[]), Wait(None)], &["resume 0 continue", "resume 1 continue", "resume 1 continue"]),
        ]
    }

    fn run(row: &Row) {
        let fake = FakeVcpus::new(row.vcpus);
        let shared: Arc<Mutex<Shared>> = fake.shared.clone();
        let caps = Caps { int3: false, block_irq: false, data_breakpoints: true };
        let mut dbg = Debugger::new(Box::new(fake), caps, None);
        dbg.patience = Duration::from_millis(20);
        let mut said = String::new();
        for (n, step) in row.steps.iter().enumerate() {
            let at = format!("row `{}`, step {n}", row.name);
            match step {
                Go(actions) | GoLocked(actions) => {
                    dbg.clear_actions();
                    dbg.lock_scheduler = matches!(step, GoLocked(_));
                    actions.iter().for_each(|&(id, a)| dbg.set_action(id, a));
                    dbg.resume_all().unwrap_or_else(|e| panic!("{at}: {e}"));
                }
                Report(id, ev) => shared.lock().unwrap().report(*id, ev.clone()),
                Wait(want) => {
                    assert_eq!(dbg.take_events(), *want, "{at}");
                    said += &dbg.refusals.take_messages().concat();
                }
                CtrlC(want) => assert_eq!(dbg.interrupt(), *want, "{at}"),
                HBreak(addr) => assert!(dbg.breakpoints.add_exec(*addr, Origin::HBreak).is_ok(), "{at}"),
                Watch(addr) => assert!(dbg.breakpoints.add_watch(*addr, 1, WatchKind::Write).is_ok(), "{at}"),
                SoftWatch(addr) => dbg.soft_watch.push((*addr, 1)),
                Poke(addr, b) => shared.lock().unwrap().ram[*addr as usize] = *b,
                Refused => assert!(dbg.refusals.refuse(Request::RWatch, 0x2a, 1, "cannot honour".into())),
                Stuck(id) => shared.lock().unwrap().stuck[*id] = true,
                Finish(kill) => dbg.finish(*kill),
                Attach => dbg.attach(),
                Says(text) => assert!(said.contains(text), "{at}: gdb's screen lacks `{text}`: {said}"),
                Break(addr) => assert!(dbg.breakpoints.add_exec(*addr, Origin::Break).is_ok(), "{at}"),
            }
        }
        assert_eq!(shared.lock().unwrap().log, row.told, "row `{}`: what the vCPUs were told", row.name);
    }

    #[test]
    fn event_sequences_give_the_stop_replies_gdb_expects() {
        let rows = rows();
        assert!(rows.len() >= 12);
        for row in &rows {
            run(row);
        }
    }

    #[test]
    fn after_detach_the_breakpoints_are_gone_and_a_reattach_starts_clean() {
        let fake = FakeVcpus::new(1);
        let shared = fake.shared.clone();
        let mut dbg = Debugger::new(Box::new(fake), Caps::default(), None);
        dbg.breakpoints.add_exec(0x10, Origin::HBreak).unwrap();
        dbg.finish(false);
        assert!(dbg.breakpoints.is_empty());
        assert!(!dbg.is_paused(0), "a detached vCPU runs");
        dbg.attach();
        assert!(dbg.is_paused(0), "a new gdb pauses it");
        assert_eq!(dbg.current, 0);
        assert_eq!(shared.lock().unwrap().log, ["detach 0", "pause 0"]);
    }
}
