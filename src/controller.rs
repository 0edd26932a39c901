//! The controller: the one thread of a run that is no vCPU. It waits for what happens — a vCPU
//! ended, a signal, Ctrl-A x or the end of stdin, the gdb session ended, a deadline passed — and
//! decides what the run does about it: stop the vCPUs, say why, and at the end the exit status.
//!
//! It comes in two halves, so that the decisions can be read and tested without any thread, fd or
//! clock:
//! - [`Controller`] is the state (how each vCPU ended, why the run was stopped, the deadline,
//!   whether stdin is still read, whether gdb is attached) and [`Controller::decide`], a pure
//!   function from a [`Wake`] to a list of [`Command`]s. Its tests are a table of rows.
//! - [`Shell`] does the I/O: one poll(2) on a mailbox other threads post [`Event`]s to, the signals
//!   that stop a run (through a signalfd), and stdin; it turns what woke it into [`Wake`]s and
//!   carries out the commands (stop flags, kicks, messages on stderr).
//!
//! Waiting in poll rather than on a channel lets the controller read stdin and signals itself, so a
//! run needs no reader or signal thread: one thread per vCPU, plus this one (and gdb's stub under
//! `--gdb`).

use crate::devices::console::{lock, Console, InputWait, REPEATED_POLLS};
use crate::devices::stdin::{InputEvent, StdinReader};
use crate::error::{Error, ExitStatus, Result};
use crate::exit::Fault;
use crate::gdb::SessionEnd;
use crate::run_loop::{DebugRequest, VcpuControl, VcpuEnd};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::os::fd::AsFd;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

// ----- the controller's state and its decisions -------------------------------------------

/// What other threads post to the controller's [`Mailbox`].
#[derive(Debug)]
pub enum Event {
    /// vCPU N's thread ended (its last act, whatever happened on it).
    Ended(usize, VcpuEnd),
    /// A gdb attached (again, after a detach: the stub takes one session after another).
    GdbAttached,
    /// The gdb session is over.
    Gdb(SessionEnd),
    /// The gdb stub's thread died (a minikvm bug), with what its panic said.
    StubDied(String),
    /// After stdin ended, a guest started waiting for input. It carries no news of its own: it
    /// wakes the controller, which then looks at the wait and times its --eof-grace.
    EndedInputWait,
}

/// One thing that woke the controller, as [`Controller::decide`] sees it. The shell turns a
/// wake-up of poll(2) into these, in this order: stdin, a signal, the mailbox's events oldest
/// first, and last a [`Wake::Look`] at the clock and the guests' wait for input.
#[derive(Debug, Clone)]
pub enum Wake {
    /// vCPU N ended.
    Ended(usize, VcpuEnd),
    /// A gdb attached: time at its prompt counts for nothing, as at the start of a `--gdb` run.
    GdbAttached,
    /// The gdb session ended, at this moment (a detach starts `--timeout` from here).
    GdbEnded(SessionEnd, Instant),
    /// The gdb stub's thread died.
    StubDied(String),
    /// A stop signal arrived (its number).
    Signal(i32),
    /// The user typed Ctrl-A x.
    Quit,
    /// stdin ended (or failed): nothing more will be read from it.
    InputEnded,
    /// A look at the time and at what the guests show of a wait for input (its `now` is the time).
    Look(WaitSigns),
}

/// What the controller does; the shell carries it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Stop every vCPU that has not ended: its stop flag, a kick out of KVM_RUN, a stop request if
    /// it waits paused under gdb; then close the console's input. Repeated on every wake-up while
    /// the run is stopping, for a vCPU that missed the first kick.
    StopAll,
    /// Read stdin no more.
    CloseInput,
    /// Say this on stderr now.
    Say(Notice),
    /// Say how vCPU N ended (a fault's report, a host error, a bug): its end is in the state.
    Report(usize),
}

/// A line the controller prints as something happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    Quit,
    Signal(i32),
    StubDied(String),
}

/// Why the controller stopped the run, if it did. (A guest's fault ends only its own vCPU.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    Timeout,
    EndedInputWait,
    /// Ctrl-A x, a signal, gdb's `kill`.
    User,
    /// A vCPU or stub thread died: nothing about the run can be trusted any more.
    Internal,
}

/// The controller's state: everything its decisions depend on.
#[derive(Debug)]
pub struct Controller {
    /// How each vCPU ended (None: still running).
    ends: Vec<Option<VcpuEnd>>,
    stop: Option<StopReason>,
    /// `--timeout`, and when it runs out (None: never, or not while gdb is attached).
    timeout: Option<Duration>,
    deadline: Option<Instant>,
    /// stdin is still read (its end not seen yet).
    reading: bool,
    gdb_attached: bool,
    eof: EndedInputWait,
}

/// How often a stopping run kicks the vCPUs that have not stopped yet.
pub const REKICK: Duration = Duration::from_millis(50);

impl Controller {
    /// The state at the start of a run of `vcpus` vCPUs, begun at `started`.
    pub fn new(vcpus: usize, timeout: Option<Duration>, eof_grace: Duration, gdb: bool, started: Instant) -> Self {
        Controller {
            ends: vec![None; vcpus],
            stop: None,
            timeout,
            // While gdb is attached, time at its prompt counts for nothing: the timeout starts on detach.
            deadline: timeout.filter(|_| !gdb).map(|t| started + t),
            reading: true,
            gdb_attached: gdb,
            eof: EndedInputWait::new(eof_grace),
        }
    }

    /// The run is over: every vCPU ended and gdb is done. After an internal error the gdb session
    /// is not waited for: the stub may wait on the dead vCPU.
    pub fn finished(&self) -> bool {
        self.ends.iter().all(Option::is_some) && (!self.gdb_attached || self.stop == Some(StopReason::Internal))
    }

    /// Whether a guest may now be waiting for input that will never come: stdin ended and no gdb
    /// is attached (a guest stopped at gdb's prompt waits for nothing).
    pub fn watches_input_end(&self) -> bool {
        !self.reading && !self.gdb_attached
    }

    pub fn ends(&self) -> &[Option<VcpuEnd>] {
        &self.ends
    }

    pub fn stop_reason(&self) -> Option<StopReason> {
        self.stop
    }

    /// How long to sleep at most before looking again (None: until something happens): the
    /// deadline, the end of a guest's wait for input, or soon, to kick again while stopping.
    pub fn sleep_for(&mut self, signs: &WaitSigns) -> Option<Duration> {
        if self.stop.is_some() {
            return Some(REKICK);
        }
        let until_deadline = self.deadline.map(|d| d.saturating_duration_since(signs.now));
        let signs = self.visible(signs);
        let until_wait_ends = self.eof.next_look(&signs);
        until_deadline.into_iter().chain(until_wait_ends).min()
    }

    /// What the run does about `wake`. Pure: everything it needs is in the state and the wake.
    pub fn decide(&mut self, wake: Wake) -> Vec<Command> {
        match wake {
            Wake::Ended(i, end) => self.vcpu_ended(i, end),
            Wake::GdbAttached => {
                self.gdb_attached = true;
                self.deadline = None;
                Vec::new()
            }
            Wake::GdbEnded(end, at) => self.gdb_ended(end, at),
            Wake::StubDied(why) => self.stub_died(why),
            Wake::Signal(sig) => self.stop_by_user(vec![Command::Say(Notice::Signal(sig))]),
            Wake::Quit => {
                self.reading = false;
                self.stop_by_user(vec![Command::CloseInput, Command::Say(Notice::Quit)])
            }
            Wake::InputEnded => {
                self.reading = false;
                vec![Command::CloseInput]
            }
            Wake::Look(signs) => self.look(&signs),
        }
    }

    /// The exit status of the run: the worst of each vCPU's end and of the reason it was stopped.
    pub fn status(&self) -> ExitStatus {
        let stopped = match self.stop {
            Some(StopReason::Timeout) => ExitStatus::Timeout,
            Some(StopReason::EndedInputWait) => ExitStatus::EndedInputWait,
            Some(StopReason::User) => ExitStatus::Stopped,
            Some(StopReason::Internal) => ExitStatus::Internal,
            None => ExitStatus::Ok,
        };
        let ended = self.ends.iter().flatten().map(|end| match end {
            VcpuEnd::Fault { .. } => ExitStatus::GuestFault,
            VcpuEnd::HostError(_) => ExitStatus::Host,
            VcpuEnd::Internal(_) => ExitStatus::Internal,
            VcpuEnd::DebugExit(_) => ExitStatus::DebugExit,
            VcpuEnd::Done(_) | VcpuEnd::Stopped => ExitStatus::Ok,
        });
        ended.chain([stopped]).max_by_key(|s| severity(*s)).unwrap_or(ExitStatus::Ok)
    }

    /// The vCPUs the run's stop cut short (still running, or stopped by the controller).
    pub fn cut_short(&self) -> impl Iterator<Item = usize> + '_ {
        self.ends.iter().enumerate().filter(|(_, e)| matches!(e, Some(VcpuEnd::Stopped) | None)).map(|(i, _)| i)
    }

    /// Guests are independent programs: a fault ends only its own vCPU. A dead thread ends them all.
    fn vcpu_ended(&mut self, i: usize, end: VcpuEnd) -> Vec<Command> {
        let Some(slot) = self.ends.get_mut(i) else { return Vec::new() };
        let news = !matches!(end, VcpuEnd::Done(_) | VcpuEnd::Stopped);
        let internal = matches!(end, VcpuEnd::Internal(_));
        *slot = Some(end);
        let mut commands = if news { vec![Command::Report(i)] } else { Vec::new() };
        if internal {
            self.stop = Some(StopReason::Internal);
            commands.push(Command::StopAll);
        }
        commands
    }

    fn gdb_ended(&mut self, end: SessionEnd, at: Instant) -> Vec<Command> {
        self.gdb_attached = false;
        match end {
            SessionEnd::Killed => self.stop_by_user(Vec::new()),
            // The guest runs on, now with its --timeout.
            SessionEnd::Detached | SessionEnd::Lost(_) => {
                self.deadline = self.timeout.map(|t| at + t);
                Vec::new()
            }
            SessionEnd::RunOver | SessionEnd::NeverConnected => Vec::new(),
            // The stub caught a failure of its own (a panic while serving gdb): a minikvm bug.
            SessionEnd::Failed(why) => self.stub_died(why),
        }
    }

    /// The stub's thread died, or its session failed: the run ends with an internal error.
    fn stub_died(&mut self, why: String) -> Vec<Command> {
        self.gdb_attached = false;
        self.stop = Some(StopReason::Internal);
        vec![Command::Say(Notice::StubDied(why)), Command::StopAll]
    }

    /// A stop the user asked for; the first reason to stop a run is the one that counts.
    fn stop_by_user(&mut self, mut commands: Vec<Command>) -> Vec<Command> {
        self.stop.get_or_insert(StopReason::User);
        commands.push(Command::StopAll);
        commands
    }

    /// After each wake-up: kick again while stopping, else stop on the deadline or on a guest
    /// that waited for ended input through its whole grace.
    fn look(&mut self, signs: &WaitSigns) -> Vec<Command> {
        if self.stop.is_none() {
            if self.deadline.is_some_and(|d| signs.now >= d) {
                self.stop = Some(StopReason::Timeout);
            } else if self.eof.expired(&self.visible(signs)) {
                self.stop = Some(StopReason::EndedInputWait);
            }
        }
        if self.stop.is_some() {
            vec![Command::StopAll]
        } else {
            Vec::new()
        }
    }

    /// The signs of a wait, as far as they count: none while stdin is read or gdb is attached.
    fn visible(&self, signs: &WaitSigns) -> WaitSigns {
        if self.watches_input_end() {
            *signs
        } else {
            WaitSigns { wait: InputWait::No, ..*signs }
        }
    }
}

/// How bad an exit status is, for the run's status with several vCPUs: the worst outcome wins,
/// in the order 7 > 4 > 1 > 9 > 6 > 3 > 5 > 0 (a minikvm bug, then the host, then a guest's
/// fault, then a guest's own verdict "failed" through debug-exit — it ran correctly to its
/// verdict, so it ranks below a fault, and it is the guest's result, so above every reason the
/// run was stopped from outside).
pub fn severity(status: ExitStatus) -> u8 {
    match status {
        ExitStatus::Ok => 0,
        ExitStatus::EndedInputWait => 1,
        ExitStatus::Timeout => 2,
        ExitStatus::Stopped => 3,
        ExitStatus::DebugExit => 4,
        ExitStatus::GuestFault => 5,
        ExitStatus::Usage => 6,
        // The lab failing never comes from a vCPU; it ranks with the host's failures.
        ExitStatus::Host | ExitStatus::LabBroken => 7,
        ExitStatus::Internal => 8,
    }
}

// ----- the shell: what the controller waits on, and how it acts ---------------------------

/// Events that other threads post for the controller.
pub struct Mailbox<E> {
    events: Mutex<Vec<E>>,
    wake: EventFd,
}

impl<E> Mailbox<E> {
    pub fn new() -> Result<Self> {
        let wake = EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)
            .map_err(|e| Error::Host(format!("cannot create an eventfd: {e}")))?;
        Ok(Mailbox { events: Mutex::new(Vec::new()), wake })
    }

    pub fn post(&self, event: E) {
        lock(&self.events).push(event);
        let _ = self.wake.write(1);
    }

    /// Everything posted so far, oldest first.
    pub fn take(&self) -> Vec<E> {
        let _ = self.wake.read();
        std::mem::take(&mut *lock(&self.events))
    }
}

/// Signals that keep their default action: they are never blocked, so never read as a stop.
///
/// - SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS report a fault in minikvm's own code. The
///   kernel delivers a fault's signal even when it is blocked, so blocking would not save the run;
///   it would only silence Rust's stack-overflow message.
/// - SIGTSTP, SIGTTIN, SIGTTOU are job control: a background minikvm stops instead of reading the
///   terminal or switching it to raw mode under the shell's feet (blocked, SIGTTOU would let it).
/// - SIGCHLD, SIGCONT, SIGURG, SIGWINCH are ignored by default (a resized terminal must not stop
///   a run), and SIGPIPE is ignored by Rust's runtime: a write to a closed pipe fails with EPIPE,
///   which [`crate::stdio`] and the console drop.
const LEFT_AT_DEFAULT: [Signal; 14] = [
    Signal::SIGSEGV,
    Signal::SIGBUS,
    Signal::SIGILL,
    Signal::SIGFPE,
    Signal::SIGTRAP,
    Signal::SIGSYS,
    Signal::SIGTSTP,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
    Signal::SIGCHLD,
    Signal::SIGCONT,
    Signal::SIGURG,
    Signal::SIGWINCH,
    Signal::SIGPIPE,
];

/// Blocks every signal that would otherwise end minikvm (SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1,
/// SIGUSR2, SIGALRM, SIGABRT from outside, the CPU-time, file-size and profiling timers, SIGIO,
/// SIGPWR, SIGSTKFLT and the real-time signals) in the calling thread and returns that set.
/// Threads started afterwards inherit the mask; a blocked signal waits, pending, until the
/// controller reads it from its signalfd. Exempt: `LEFT_AT_DEFAULT` (below), and the vCPU kick signal,
/// which must reach the vCPU threads (sent from outside, it at most kicks a vCPU, which runs on).
///
/// `main` calls this first, so that no signal finds minikvm unprotected: blocked before the
/// controller listens, it is read as soon as the controller does.
pub fn block_stop_signals() -> Result<SigSet> {
    let fail = |e: nix::errno::Errno| Error::Host(format!("cannot block signals: {e}"));
    SigSet::all().thread_block().map_err(fail)?;
    LEFT_AT_DEFAULT.iter().copied().collect::<SigSet>().thread_unblock().map_err(fail)?;
    vmm_sys_util::signal::unblock_signal(crate::kvm::kick_signal())
        .map_err(|e| Error::Host(format!("cannot unblock the vCPU kick signal: {e}")))?;
    SigSet::thread_get_mask().map_err(fail)
}

/// Lets the stop signals act by default again: for `list` and `doctor`, which hold no terminal or
/// VM that a signal's default action would leave behind.
pub fn unblock_stop_signals(set: &SigSet) {
    let _ = set.thread_unblock();
}

/// The stop signals (see [`block_stop_signals`]), blocked in every thread and read from a
/// signalfd instead.
pub struct StopSignals {
    fd: SignalFd,
}

impl StopSignals {
    /// Blocks the signals in this thread — call it before starting any other thread, which then
    /// inherits the mask — and opens the signalfd that receives them.
    pub fn block() -> Result<Self> {
        let set = block_stop_signals()?;
        let fd = SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(|e| Error::Host(format!("cannot create a signalfd: {e}")))?;
        Ok(StopSignals { fd })
    }
}

/// What woke the controller.
#[derive(Debug, Default)]
pub struct Wakeup {
    /// stdin has bytes (or its end) to read.
    pub stdin: bool,
    /// A stop signal arrived (its number).
    pub signal: Option<i32>,
}

/// Sleeps until the mailbox has mail, a signal arrives, stdin is readable (when `watch_stdin`) or
/// `timeout` passes (never, if `None`).
pub fn wait<E>(
    mail: &Mailbox<E>,
    signals: &StopSignals,
    watch_stdin: bool,
    timeout: Option<Duration>,
) -> Result<Wakeup> {
    let stdin = std::io::stdin();
    let mut fds =
        vec![PollFd::new(signals.fd.as_fd(), PollFlags::POLLIN), PollFd::new(mail.wake.as_fd(), PollFlags::POLLIN)];
    if watch_stdin {
        fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
    }
    let timeout = match timeout {
        None => PollTimeout::NONE,
        // Round up, so a deadline is never missed by waking a little early and sleeping 0 ms.
        Some(d) => PollTimeout::try_from(d.as_micros().div_ceil(1000).min(60_000) as u32).unwrap_or(PollTimeout::MAX),
    };
    match poll(&mut fds, timeout) {
        Ok(_) | Err(nix::errno::Errno::EINTR) => {}
        Err(e) => return Err(Error::Host(format!("poll failed: {e}"))),
    }
    // Any event on stdin — data, hang-up, an invalid descriptor — is for the reader to look at.
    let mut wakeup = Wakeup { stdin: watch_stdin && fds[2].revents().is_some_and(|r| !r.is_empty()), signal: None };
    if fds[0].revents().is_some_and(|r| r.contains(PollFlags::POLLIN)) {
        if let Ok(Some(info)) = signals.fd.read_signal() {
            wakeup.signal = Some(info.ssi_signo as i32);
        }
    }
    Ok(wakeup)
}

/// One vCPU as the controller holds it: enough to stop it and to name it.
pub struct Seat {
    pub name: String,
    pub ctl: Arc<VcpuControl>,
    pub thread: Arc<JoinHandle<()>>,
    /// Under gdb: its request channel, for a vCPU that waits paused for requests, not for kicks.
    pub stopper: Option<mpsc::Sender<DebugRequest>>,
}

/// The controller's I/O: what it waits on, and the vCPUs, console and stdin it acts on.
pub struct Shell {
    pub mail: Arc<Mailbox<Event>>,
    pub signals: StopSignals,
    pub console: Arc<Console>,
    /// stdin, while it is read.
    pub input: Option<StdinReader>,
    pub seats: Vec<Seat>,
    /// The machine pages (a triple fault's report then says whether this host can page).
    pub paging: bool,
}

impl Shell {
    /// Runs the controller until the run is over: sleep, turn what woke it into [`Wake`]s, let the
    /// controller decide, do what it says.
    pub fn supervise(&mut self, ctl: &mut Controller) -> Result<()> {
        while !ctl.finished() {
            let signs = self.signs(ctl);
            let timeout = ctl.sleep_for(&signs);
            let woke = wait(&self.mail, &self.signals, self.input.is_some(), timeout)?;
            for wake in self.wakes(woke) {
                let commands = ctl.decide(wake);
                self.carry_out(ctl, &commands);
            }
            let commands = ctl.decide(Wake::Look(self.signs(ctl)));
            self.carry_out(ctl, &commands);
        }
        Ok(())
    }

    /// What woke the controller, in the order [`Wake`] gives.
    fn wakes(&mut self, woke: Wakeup) -> Vec<Wake> {
        let mut wakes = Vec::new();
        if woke.stdin {
            match self.input.as_mut().and_then(|r| r.read_once(&self.console)) {
                Some(InputEvent::Eof) => wakes.push(Wake::InputEnded),
                Some(InputEvent::Quit) => wakes.push(Wake::Quit),
                None => {}
            }
        }
        wakes.extend(woke.signal.map(Wake::Signal));
        for event in self.mail.take() {
            match event {
                Event::Ended(i, end) => {
                    let name = self.seats.get(i).map_or("?", |s| s.name.as_str());
                    log::info!("vCPU {i} ({name}) ended: {end:?}");
                    wakes.push(Wake::Ended(i, end));
                }
                Event::GdbAttached => wakes.push(Wake::GdbAttached),
                Event::Gdb(end) => {
                    log::info!("gdb session ended: {end:?}");
                    wakes.push(Wake::GdbEnded(end, Instant::now()));
                }
                Event::StubDied(why) => wakes.push(Wake::StubDied(why)),
                Event::EndedInputWait => {} // the look after these wakes times the wait
            }
        }
        wakes
    }

    fn carry_out(&mut self, ctl: &Controller, commands: &[Command]) {
        for command in commands {
            match command {
                Command::StopAll => self.stop_all(ctl.ends()),
                Command::CloseInput => self.input = None,
                Command::Say(notice) => say(notice),
                Command::Report(i) => {
                    if let (Some(Some(end)), Some(seat)) = (ctl.ends().get(*i), self.seats.get(*i)) {
                        // A report comes now, in no vCPU's colour (the next guest byte sets its colour
                        // again); the other guests' unfinished lines stay pending, as they run on.
                        self.console.colour_off();
                        report_end(*i, &seat.name, end, self.paging);
                    }
                }
            }
        }
    }

    fn stop_all(&self, ends: &[Option<VcpuEnd>]) {
        for (seat, _) in self.seats.iter().zip(ends).filter(|(_, end)| end.is_none()) {
            seat.ctl.stop.store(true, Ordering::Release);
            crate::kvm::kick(&seat.thread);
            if let Some(s) = &seat.stopper {
                let _ = s.send(DebugRequest::Stop);
            }
        }
        // After the flags: a vCPU woken from GETCHAR's wait must find its stop flag set, or it
        // would run its guest on with "no input" for a moment.
        self.console.close();
    }

    /// What the console and the vCPU threads show of a wait for input, read only when the
    /// controller watches for one (/proc is not free). Where /proc has no schedstat, runnable time
    /// reads as zero: a receive interrupt left on then counts as a wait, so a run can never hang on it.
    fn signs(&self, ctl: &Controller) -> WaitSigns {
        let now = Instant::now();
        if !ctl.watches_input_end() {
            return WaitSigns { wait: InputWait::No, quiet: Duration::ZERO, runnable: Duration::ZERO, polls: 0, now };
        }
        let running = self.seats.iter().zip(ctl.ends()).filter(|(_, end)| end.is_none());
        let runnable = running.filter_map(|(s, _)| runnable_time(s.ctl.tid.load(Ordering::Relaxed))).sum();
        let quiet = Duration::from_secs_f64(self.console.quiet_for());
        let c = &self.console;
        WaitSigns { wait: c.input_wait(), quiet, runnable, polls: c.empty_polls(), now }
    }

    /// Says on stderr why the controller stopped the run, if it did and that needs saying.
    pub fn say_why_stopped(&self, ctl: &Controller, elapsed: Duration, eof_grace: Duration) {
        let names: Vec<String> =
            ctl.cut_short().map(|i| format!("`{}` (vCPU {i})", self.seats.get(i).map_or("?", |s| &s.name))).collect();
        match ctl.stop_reason() {
            Some(StopReason::Timeout) => crate::stderrln!(
                "minikvm: timeout after {:.1} s: {} still running, stopped",
                elapsed.as_secs_f64(),
                names.join(", ")
            ),
            Some(StopReason::EndedInputWait) => crate::stderrln!(
                "minikvm: stdin ended and {} kept waiting for input for {:.1} s, stopped",
                names.join(", "),
                eof_grace.as_secs_f64()
            ),
            Some(StopReason::User | StopReason::Internal) | None => {}
        }
    }
}

/// The notices, with `\r` around them: the terminal may be in raw mode.
fn say(notice: &Notice) {
    match notice {
        Notice::Quit => crate::stderrln!("\r\nminikvm: quit (Ctrl-A x)\r"),
        Notice::Signal(sig) => crate::stderrln!("\r\nminikvm: stopped by signal {sig}\r"),
        Notice::StubDied(why) => crate::stderrln!(
            "\r\nminikvm: internal error: the gdb stub failed ({why}); this is a minikvm bug, please report it\r"
        ),
    }
}

/// Says on stderr how vCPU `i` ended, when that is news: a fault's report, a host error, a bug.
fn report_end(i: usize, name: &str, end: &VcpuEnd, paging: bool) {
    match end {
        VcpuEnd::Fault { fault, report, long_mode } => {
            crate::stderrln!("minikvm: {report}");
            if paging && !long_mode && *fault == Fault::TripleFault && crate::doctor::probe("paging") == Ok(false) {
                crate::stderrln!(
                    "minikvm: this host's KVM cannot run 32-bit paging (see `minikvm doctor`), so a kernel \
                     that turns paging on triple-faults here. See the README section \"Hosts whose KVM cannot page\"."
                );
            }
        }
        VcpuEnd::HostError(msg) => crate::stderrln!("minikvm: {msg}"),
        VcpuEnd::DebugExit(v) => crate::stderrln!(
            "minikvm: `{name}` (vCPU {i}) wrote {v:#x} to the ISA debug-exit port 0xf4: the guest reports a failure \
             (exit status 9)"
        ),
        VcpuEnd::Internal(why) => crate::stderrln!(
            "minikvm: internal error: the thread of vCPU {i} (`{name}`) died ({why}); this is a bug in minikvm, \
             please report it with the command line that led to it"
        ),
        VcpuEnd::Done(_) | VcpuEnd::Stopped => {}
    }
}

// ----- end of input ------------------------------------------------------------------------

/// Decides when a guest has waited for input that will never come (stdin ended) for its whole
/// `--eof-grace`, printing nothing: then the controller stops the run (exit status 5).
///
/// A wait is watched over a window of one grace that starts when the console first shows a sign
/// of it and starts again whenever the guest prints or the sign does not hold up:
/// - **polling** ([`InputWait::Polling`]): the guest must keep polling through the window (at
///   least [`REPEATED_POLLS`] more empty polls). Two polls with a silent stretch between them are
///   not a wait: a serial driver reads LSR before each byte, and a guest that computes between two
///   bytes shows exactly that.
/// - **receive interrupt on** ([`InputWait::ReceiveInterrupt`]): a wait only while the guest halts. A
///   kernel waiting for a key sleeps in `hlt`, inside KVM_RUN, so its vCPU thread stops being
///   runnable; one that computes stays runnable. Runnable under [`IDLE_SHARE`] of the window is halted.
#[derive(Debug)]
pub struct EndedInputWait {
    grace: Duration,
    /// The window: when it began, with the runnable time and empty polls counted by then.
    window: Option<(Instant, Duration, u32)>,
}

/// What the controller sees, at one moment, of a guest that may wait on ended input.
#[derive(Debug, Clone, Copy)]
pub struct WaitSigns {
    pub wait: InputWait,
    /// How long the guest has printed nothing.
    pub quiet: Duration,
    /// How long its running vCPU threads have been runnable so far.
    pub runnable: Duration,
    /// Empty polls for input since it last printed.
    pub polls: u32,
    pub now: Instant,
}

/// Runnable for less than this share of a window counts as halted (a halted kernel still wakes
/// for its timer ticks).
pub const IDLE_SHARE: f64 = 0.1;

impl EndedInputWait {
    pub fn new(grace: Duration) -> Self {
        EndedInputWait { grace, window: None }
    }

    /// When to look again (None: no sign of a wait).
    pub fn next_look(&mut self, s: &WaitSigns) -> Option<Duration> {
        let (since, _, _) = self.window(s)?;
        Some((since + self.grace).saturating_duration_since(s.now))
    }

    /// Whether the guest has now waited through a whole window.
    pub fn expired(&mut self, s: &WaitSigns) -> bool {
        let Some((since, ran, polls)) = self.window(s) else { return false };
        let span = s.now.saturating_duration_since(since);
        if span < self.grace {
            return false;
        }
        let waited = match s.wait {
            InputWait::No => false,
            InputWait::Polling => s.polls.saturating_sub(polls) >= REPEATED_POLLS,
            InputWait::ReceiveInterrupt => {
                s.runnable.saturating_sub(ran).as_secs_f64() < IDLE_SHARE * span.as_secs_f64()
            }
        };
        if !waited {
            self.window = Some((s.now, s.runnable, s.polls)); // not a wait so far: watch anew
        }
        waited
    }

    /// The current window, begun now if there is none; none at all without a sign of a wait. Output
    /// since the window began starts a new one.
    fn window(&mut self, s: &WaitSigns) -> Option<(Instant, Duration, u32)> {
        if s.wait == InputWait::No {
            self.window = None;
            return None;
        }
        let fresh = (s.now, s.runnable, s.polls);
        let w = self.window.get_or_insert(fresh);
        if s.quiet < s.now.saturating_duration_since(w.0) || s.polls < w.2 {
            *w = fresh;
        }
        Some(*w)
    }
}

/// How long a thread of this process has been runnable (on a CPU, or waiting for one), from
/// /proc/self/task/TID/schedstat (its first two fields, in nanoseconds). None if /proc says nothing.
pub fn runnable_time(tid: i32) -> Option<Duration> {
    let text = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
    let mut fields = text.split_whitespace().map(|f| f.parse::<u64>().ok());
    let on_cpu = fields.next()??;
    let waiting = fields.next()??;
    Some(Duration::from_nanos(on_cpu.saturating_add(waiting)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mail_wakes_the_waiter_and_is_taken_once() {
        let mail = std::sync::Arc::new(Mailbox::new().unwrap());
        let signals = StopSignals::block().unwrap();
        let m2 = mail.clone();
        let t = std::thread::spawn(move || m2.post(7));
        let w = wait(&mail, &signals, false, Some(Duration::from_secs(10))).unwrap();
        t.join().unwrap();
        assert!(!w.stdin && w.signal.is_none());
        assert_eq!(mail.take(), vec![7]);
        assert!(mail.take().is_empty());
    }

    const GRACE: Duration = Duration::from_secs(2);

    fn signs(wait: InputWait, now: Instant, quiet_ms: u64, runnable_ms: u64, polls: u32) -> WaitSigns {
        let ms = Duration::from_millis;
        WaitSigns { wait, quiet: ms(quiet_ms), runnable: ms(runnable_ms), polls, now }
    }

    #[test]
    fn polling_through_the_whole_grace_is_a_wait() {
        use InputWait::*;
        let mut w = EndedInputWait::new(GRACE);
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        assert_eq!(w.next_look(&signs(No, t0, 0, 0, 0)), None);
        assert_eq!(w.next_look(&signs(Polling, t0, 100, 0, 2)), Some(GRACE));
        assert!(!w.expired(&signs(Polling, at(1000), 1100, 900, 5000)), "not a whole grace yet");
        assert!(w.expired(&signs(Polling, at(2000), 2100, 1900, 9000)), "busy polling is a wait");
    }

    /// The false positive: a driver reads LSR (poll 1), computes silently for 3 s, reads LSR again
    /// before its next byte (poll 2) and is slow to get to the THR write.
    #[test]
    fn two_polls_around_silent_computing_are_not_a_wait() {
        use InputWait::*;
        let mut w = EndedInputWait::new(GRACE);
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        assert_eq!(w.next_look(&signs(No, at(0), 0, 0, 1)), None);
        // Poll 2 at 3 s: quiet for 3 s, yet the window starts now.
        assert_eq!(w.next_look(&signs(Polling, at(3000), 3000, 3000, 2)), Some(GRACE));
        assert!(!w.expired(&signs(Polling, at(3000), 3000, 3000, 2)));
        // Slow to write: still no third poll 2 s later. Not a wait; watched anew.
        assert!(!w.expired(&signs(Polling, at(5000), 5000, 5000, 2)));
        // It printed: polls back to 0, no sign.
        assert!(!w.expired(&signs(No, at(5100), 0, 5100, 0)));
    }

    #[test]
    fn a_receive_interrupt_is_a_wait_only_while_the_vcpus_sleep() {
        use InputWait::*;
        let mut w = EndedInputWait::new(GRACE);
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // Quiet long before the interrupt went on: the grace still counts from the first look.
        assert_eq!(w.next_look(&signs(ReceiveInterrupt, t0, 5000, 0, 0)), Some(GRACE));
        assert!(!w.expired(&signs(ReceiveInterrupt, at(1000), 6000, 100, 0)));
        // Busy computing: runnable 1.9 s of 2 s. Not a wait; a new window starts.
        assert!(!w.expired(&signs(ReceiveInterrupt, at(2000), 7000, 1900, 0)));
        assert_eq!(w.next_look(&signs(ReceiveInterrupt, at(2000), 7000, 1900, 0)), Some(GRACE));
        // Halted: runnable 30 ms of the next 2 s.
        assert!(w.expired(&signs(ReceiveInterrupt, at(4000), 9000, 1930, 0)));
        // Output inside a window starts it again.
        let mut w = EndedInputWait::new(GRACE);
        w.next_look(&signs(ReceiveInterrupt, t0, 5000, 0, 0));
        assert!(!w.expired(&signs(ReceiveInterrupt, at(2500), 500, 0, 0)));
        assert!(!w.expired(&signs(ReceiveInterrupt, at(4000), 2000, 0, 0)));
        assert!(w.expired(&signs(ReceiveInterrupt, at(4500), 2500, 0, 0)));
    }

    /// This thread's CPU time, which the kernel brings up to date as it is read (schedstat's
    /// counter lags by up to a scheduler tick, and wall time includes time the host stole).
    fn thread_cpu_time() -> Duration {
        let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID).unwrap();
        Duration::from(t)
    }

    #[test]
    fn this_threads_runnable_time_grows_while_it_computes() {
        // Compute for 50 ms of this thread's own CPU time, not of wall time: on a loaded or
        // nested machine 50 ms of wall time can hold far less computing (it failed so in CI).
        let tid = nix::unistd::gettid().as_raw();
        let Some(before) = runnable_time(tid) else { return }; // no schedstat in this kernel
        let (start, wall) = (thread_cpu_time(), Instant::now());
        while thread_cpu_time() < start + Duration::from_millis(50) {
            assert!(wall.elapsed() < Duration::from_secs(30), "50 ms of CPU not given in 30 s");
            std::hint::black_box(0u64);
        }
        // Reading the CPU clock just now brought schedstat's counter up to date, too.
        assert!(runnable_time(tid).unwrap() >= before + Duration::from_millis(50));
    }

    #[test]
    fn timeout_returns_with_nothing() {
        let mail: Mailbox<u8> = Mailbox::new().unwrap();
        let signals = StopSignals::block().unwrap();
        let t = std::time::Instant::now();
        let w = wait(&mail, &signals, false, Some(Duration::from_millis(20))).unwrap();
        assert!(t.elapsed() >= Duration::from_millis(20));
        assert!(w.signal.is_none());
    }

    // ----- the controller's decisions, as a table ------------------------------------------

    use Command::{CloseInput, Report, Say, StopAll};

    fn fault() -> VcpuEnd {
        VcpuEnd::Fault { fault: Fault::TripleFault, report: "triple fault".into(), long_mode: false }
    }

    /// What the guests show now: no wait for input, at `ms` after `t0`.
    fn look_at(t0: Instant, ms: u64) -> Wake {
        Wake::Look(signs(InputWait::No, t0 + Duration::from_millis(ms), 0, 0, 0))
    }

    /// A guest polling for input at `ms` (`polls` empty polls so far, quiet since the start).
    fn polling_at(t0: Instant, ms: u64, polls: u32) -> Wake {
        Wake::Look(signs(InputWait::Polling, t0 + Duration::from_millis(ms), ms, ms, polls))
    }

    /// A run's set-up, for a row.
    struct Setup {
        vcpus: usize,
        timeout_ms: Option<u64>,
        gdb: bool,
    }

    const TWO: Setup = Setup { vcpus: 2, timeout_ms: None, gdb: false };
    const TWO_TIMED: Setup = Setup { vcpus: 2, timeout_ms: Some(1000), gdb: false };
    const ONE_GDB_TIMED: Setup = Setup { vcpus: 1, timeout_ms: Some(1000), gdb: true };

    /// One row: a set-up, the wakes before, the wake under test, and what must follow: its
    /// commands, the stop reason, whether the run is over, and the exit status if it ended now.
    struct Row {
        what: &'static str,
        setup: Setup,
        before: Vec<Wake>,
        wake: Wake,
        commands: Vec<Command>,
        stop: Option<StopReason>,
        finished: bool,
        status: ExitStatus,
    }

    /// One row a line, so that the table reads as one.
    #[rustfmt::skip]
    fn rows(t0: Instant) -> Vec<Row> {
        use ExitStatus as S;
        use StopReason as R;
        let row = |what, setup, before: Vec<Wake>, wake, commands: Vec<Command>, stop, finished, status| {
            Row { what, setup, before, wake, commands, stop, finished, status }
        };
        let done = || VcpuEnd::Done("hlt");
        let eof_then_poll = || vec![Wake::InputEnded, polling_at(t0, 0, 1)];
        vec![
            row("a guest that halts is no news", TWO, vec![], Wake::Ended(0, done()), vec![], None, false, S::Ok),
            row("the last halt ends the run", TWO, vec![Wake::Ended(1, done())], Wake::Ended(0, done()), vec![], None, true, S::Ok),
            row("a fault is reported and ends only its vCPU", TWO, vec![], Wake::Ended(1, fault()), vec![Report(1)], None, false, S::GuestFault),
            row("a host error is reported", TWO, vec![], Wake::Ended(0, VcpuEnd::HostError("KVM_RUN".into())), vec![Report(0)], None, false, S::Host),
            row("a dead vCPU thread stops the others", TWO, vec![], Wake::Ended(0, VcpuEnd::Internal("panic".into())), vec![Report(0), StopAll], Some(R::Internal), false, S::Internal),
            row("a vCPU out of range is ignored", TWO, vec![], Wake::Ended(9, fault()), vec![], None, false, S::Ok),
            row("a signal stops the run", TWO, vec![], Wake::Signal(15), vec![Say(Notice::Signal(15)), StopAll], Some(R::User), false, S::Stopped),
            row("Ctrl-A x closes stdin and stops", TWO, vec![], Wake::Quit, vec![CloseInput, Say(Notice::Quit), StopAll], Some(R::User), false, S::Stopped),
            row("stdin's end closes it and stops nothing", TWO, vec![], Wake::InputEnded, vec![CloseInput], None, false, S::Ok),
            row("a signal after a timeout keeps the timeout", TWO_TIMED, vec![look_at(t0, 1000)], Wake::Signal(2), vec![Say(Notice::Signal(2)), StopAll], Some(R::Timeout), false, S::Timeout),
            row("a dead thread outranks a stop by the user", TWO, vec![Wake::Quit], Wake::Ended(1, VcpuEnd::Internal("panic".into())), vec![Report(1), StopAll], Some(R::Internal), false, S::Internal),
            row("before the deadline nothing happens", TWO_TIMED, vec![], look_at(t0, 999), vec![], None, false, S::Ok),
            row("at the deadline the run stops", TWO_TIMED, vec![], look_at(t0, 1000), vec![StopAll], Some(R::Timeout), false, S::Timeout),
            row("while stopping every look kicks again", TWO, vec![Wake::Signal(15)], look_at(t0, 10), vec![StopAll], Some(R::User), false, S::Stopped),
            row("stopped vCPUs end the run, status 6", TWO, vec![Wake::Signal(15), Wake::Ended(0, VcpuEnd::Stopped)], Wake::Ended(1, VcpuEnd::Stopped), vec![], Some(R::User), true, S::Stopped),
            row("a fault outranks the stop (1 > 6)", TWO, vec![Wake::Signal(15), Wake::Ended(0, fault())], Wake::Ended(1, VcpuEnd::Stopped), vec![], Some(R::User), true, S::GuestFault),
            row("a host error outranks a fault (4 > 1)", TWO, vec![Wake::Ended(0, fault())], Wake::Ended(1, VcpuEnd::HostError("x".into())), vec![Report(1)], None, true, S::Host),
            row("a debug-exit verdict is reported and ends only its vCPU", TWO, vec![], Wake::Ended(0, VcpuEnd::DebugExit(3)), vec![Report(0)], None, false, S::DebugExit),
            row("a fault outranks a debug-exit verdict (1 > 9)", TWO, vec![Wake::Ended(0, VcpuEnd::DebugExit(3))], Wake::Ended(1, fault()), vec![Report(1)], None, true, S::GuestFault),
            row("a debug-exit verdict outranks the stop (9 > 6)", TWO, vec![Wake::Signal(15), Wake::Ended(0, VcpuEnd::DebugExit(3))], Wake::Ended(1, VcpuEnd::Stopped), vec![], Some(R::User), true, S::DebugExit),
            row("a fault outranks a timeout (1 > 3)", TWO_TIMED, vec![Wake::Ended(0, fault()), look_at(t0, 1000)], Wake::Ended(1, VcpuEnd::Stopped), vec![], Some(R::Timeout), true, S::GuestFault),
            row("a guest polling ended input through its grace stops the run", TWO, eof_then_poll(), polling_at(t0, 2000, 9000), vec![StopAll], Some(R::EndedInputWait), false, S::EndedInputWait),
            row("polling while stdin is open is no wait", TWO, vec![polling_at(t0, 0, 1)], polling_at(t0, 2000, 9000), vec![], None, false, S::Ok),
            row("a deadline before the grace ends is a timeout", TWO_TIMED, vec![Wake::InputEnded, polling_at(t0, 0, 1), Wake::Ended(0, done())], look_at(t0, 1000), vec![StopAll], Some(R::Timeout), false, S::Timeout),
            row("under gdb the timeout waits", ONE_GDB_TIMED, vec![], look_at(t0, 5000), vec![], None, false, S::Ok),
            row("under gdb ended input is no wait", ONE_GDB_TIMED, vec![Wake::InputEnded, polling_at(t0, 0, 1)], polling_at(t0, 2000, 9000), vec![], None, false, S::Ok),
            row("a vCPU's end waits for gdb's", ONE_GDB_TIMED, vec![], Wake::Ended(0, done()), vec![], None, false, S::Ok),
            row("gdb's end after the vCPUs' ends the run", ONE_GDB_TIMED, vec![Wake::Ended(0, done())], Wake::GdbEnded(SessionEnd::RunOver, t0), vec![], None, true, S::Ok),
            row("gdb's kill stops the run", ONE_GDB_TIMED, vec![], Wake::GdbEnded(SessionEnd::Killed, t0), vec![StopAll], Some(R::User), false, S::Stopped),
            row("a detach starts the timeout", ONE_GDB_TIMED, vec![Wake::GdbEnded(SessionEnd::Detached, t0 + Duration::from_secs(5))], look_at(t0, 5999), vec![], None, false, S::Ok),
            row("the timeout runs out after a detach", ONE_GDB_TIMED, vec![Wake::GdbEnded(SessionEnd::Detached, t0 + Duration::from_secs(5))], look_at(t0, 6000), vec![StopAll], Some(R::Timeout), false, S::Timeout),
            row("a lost connection is a detach", ONE_GDB_TIMED, vec![Wake::GdbEnded(SessionEnd::Lost("reset".into()), t0)], look_at(t0, 1000), vec![StopAll], Some(R::Timeout), false, S::Timeout),
            row("after a detach ended input counts", ONE_GDB_TIMED, vec![Wake::InputEnded, Wake::GdbEnded(SessionEnd::Detached, t0 + Duration::from_secs(10)), polling_at(t0, 0, 1)], polling_at(t0, 2000, 9000), vec![StopAll], Some(R::EndedInputWait), false, S::EndedInputWait),
            row("a reattach stops the timeout again", ONE_GDB_TIMED, vec![Wake::GdbEnded(SessionEnd::Detached, t0), Wake::GdbAttached], look_at(t0, 5000), vec![], None, false, S::Ok),
            row("a vCPU's end waits for a reattached gdb's", ONE_GDB_TIMED, vec![Wake::GdbEnded(SessionEnd::Lost("reset".into()), t0), Wake::GdbAttached], Wake::Ended(0, done()), vec![], None, false, S::Ok),
            row("a failed session is a dead stub", ONE_GDB_TIMED, vec![], Wake::GdbEnded(SessionEnd::Failed("panic".into()), t0), vec![Say(Notice::StubDied("panic".into())), StopAll], Some(R::Internal), false, S::Internal),
            row("a dead stub ends the run at once", ONE_GDB_TIMED, vec![], Wake::StubDied("panic".into()), vec![Say(Notice::StubDied("panic".into())), StopAll], Some(R::Internal), false, S::Internal),
            row("after a dead stub a stopped vCPU ends the run", ONE_GDB_TIMED, vec![Wake::StubDied("panic".into())], Wake::Ended(0, VcpuEnd::Stopped), vec![], Some(R::Internal), true, S::Internal),
            row("a dead vCPU does not wait for gdb", ONE_GDB_TIMED, vec![], Wake::Ended(0, VcpuEnd::Internal("panic".into())), vec![Report(0), StopAll], Some(R::Internal), true, S::Internal),
        ]
    }

    #[test]
    fn the_controllers_decisions() {
        let t0 = Instant::now();
        for r in rows(t0) {
            let timeout = r.setup.timeout_ms.map(Duration::from_millis);
            let mut c = Controller::new(r.setup.vcpus, timeout, GRACE, r.setup.gdb, t0);
            for w in r.before {
                c.decide(w);
            }
            assert_eq!(c.decide(r.wake), r.commands, "{}", r.what);
            assert_eq!(c.stop_reason(), r.stop, "{}", r.what);
            assert_eq!(c.finished(), r.finished, "{}", r.what);
            assert_eq!(c.status(), r.status, "{}", r.what);
        }
    }

    #[test]
    fn the_worst_outcome_wins_in_the_documented_order() {
        use ExitStatus::*;
        // 7 > 4 > 1 > 9 > 6 > 3 > 5 > 0, and the lab's 8 with the host's failures.
        let order = [Internal, Host, GuestFault, DebugExit, Stopped, Timeout, EndedInputWait, Ok];
        for pair in order.windows(2) {
            assert!(severity(pair[0]) > severity(pair[1]), "{:?} must outrank {:?}", pair[0], pair[1]);
        }
        assert_eq!(severity(LabBroken), severity(Host));
    }

    #[test]
    fn the_controller_sleeps_until_the_next_thing_to_look_at() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let quiet = |at: u64| signs(InputWait::No, t0 + ms(at), 0, 0, 0);
        let mut c = Controller::new(1, None, GRACE, false, t0);
        assert_eq!(c.sleep_for(&quiet(0)), None, "nothing to wait for: sleep until woken");
        let mut c = Controller::new(1, Some(ms(1000)), GRACE, false, t0);
        assert_eq!(c.sleep_for(&quiet(300)), Some(ms(700)), "the deadline");
        c.decide(Wake::InputEnded);
        // A wait for ended input begins at 900 ms: its grace (2 s) ends after the deadline.
        assert_eq!(c.sleep_for(&signs(InputWait::Polling, t0 + ms(900), 0, 0, 1)), Some(ms(100)));
        let mut c = Controller::new(1, None, GRACE, false, t0);
        c.decide(Wake::InputEnded);
        assert_eq!(c.sleep_for(&signs(InputWait::Polling, t0, 0, 0, 1)), Some(GRACE), "the grace");
        c.decide(Wake::Signal(15));
        assert_eq!(c.sleep_for(&quiet(0)), Some(REKICK), "stopping: kick again soon");
        let mut c = Controller::new(1, Some(ms(1000)), GRACE, true, t0);
        assert_eq!(c.sleep_for(&quiet(0)), None, "under gdb no deadline");
    }
}
