//! What the controller thread waits on, in one poll(2): a mailbox other threads post events to,
//! the signals that stop a run (through a signalfd), and stdin.
//!
//! Waiting in poll rather than on a channel lets the controller read stdin and signals itself, so a
//! run needs no reader or signal thread: one thread per vCPU, plus this one.

use crate::devices::console::{lock, InputWait, REPEATED_POLLS};
use crate::error::{Error, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::os::fd::AsFd;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
pub struct EofWatch {
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

impl EofWatch {
    pub fn new(grace: Duration) -> Self {
        EofWatch { grace, window: None }
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
        let mut w = EofWatch::new(GRACE);
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
        let mut w = EofWatch::new(GRACE);
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
        let mut w = EofWatch::new(GRACE);
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
        let mut w = EofWatch::new(GRACE);
        w.next_look(&signs(ReceiveInterrupt, t0, 5000, 0, 0));
        assert!(!w.expired(&signs(ReceiveInterrupt, at(2500), 500, 0, 0)));
        assert!(!w.expired(&signs(ReceiveInterrupt, at(4000), 2000, 0, 0)));
        assert!(w.expired(&signs(ReceiveInterrupt, at(4500), 2500, 0, 0)));
    }

    #[test]
    fn this_threads_runnable_time_grows_while_it_computes() {
        let tid = nix::unistd::gettid().as_raw();
        let Some(before) = runnable_time(tid) else { return }; // no schedstat in this kernel
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(50) {
            std::hint::black_box(0u64);
        }
        assert!(runnable_time(tid).unwrap() >= before + Duration::from_millis(40));
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
}
