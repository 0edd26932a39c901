//! What the controller thread waits on, in one poll(2): a mailbox other threads post events to,
//! the signals that stop a run (through a signalfd), and stdin.
//!
//! Waiting in poll rather than on a channel lets the controller read stdin and signals itself, so a
//! run needs no reader or signal thread: one thread per vCPU, plus this one.

use crate::devices::console::lock;
use crate::error::{Error, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::os::fd::AsFd;
use std::sync::Mutex;
use std::time::Duration;

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
