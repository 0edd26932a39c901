//! Writing to stdout and stderr without ever panicking.
//!
//! `println!` and `eprintln!` panic when the write fails: a reader that left the pipe (EPIPE, as in
//! `minikvm list | head -1`), a full disk or `/dev/full` (ENOSPC), a closed descriptor (EBADF).
//! minikvm's messages go through the macros below instead, which drop a failed write: when the
//! stream we report on is gone there is nowhere left to report that, and the exit status still
//! says how the run ended. The log (`-v`) goes through the same path ([`StderrLog`]).
//!
//! ```
//! minikvm::stderrln!("minikvm: {} guests", 2);
//! minikvm::stdout!("{}", "printed without a newline\n");
//! ```
//!
//! Guest output does not come here: the console writes it byte by byte to its own copy of fd 1,
//! and drops failed writes the same way (see [`crate::devices::console`]).

use std::fmt;
use std::io::{IsTerminal, Write};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

/// Writes to stdout and flushes; a failure is dropped (see the module comment).
pub fn to_stdout(args: fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_fmt(args);
    let _ = out.flush();
}

/// Writes to stderr; a failure is dropped (see the module comment). The message is formatted first
/// and written in one `write(2)`: stderr is unbuffered, and a log line at `-vv` (one per VM exit)
/// would otherwise cost a system call per piece of its format.
pub fn to_stderr(args: fmt::Arguments<'_>) {
    let _ = std::io::stderr().lock().write_all(fmt::format(args).as_bytes());
}

/// Like `print!`, but a failed write is dropped instead of panicking.
#[macro_export]
macro_rules! stdout {
    ($($arg:tt)*) => { $crate::stdio::to_stdout(format_args!($($arg)*)) };
}

/// Like `println!`, but a failed write is dropped instead of panicking.
#[macro_export]
macro_rules! stdoutln {
    ($($arg:tt)*) => { $crate::stdio::to_stdout(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Like `eprint!`, but a failed write is dropped instead of panicking.
#[macro_export]
macro_rules! stderr {
    ($($arg:tt)*) => { $crate::stdio::to_stderr(format_args!($($arg)*)) };
}

/// Like `eprintln!`, but a failed write is dropped instead of panicking.
#[macro_export]
macro_rules! stderrln {
    ($($arg:tt)*) => { $crate::stdio::to_stderr(format_args!("{}\n", format_args!($($arg)*))) };
}

/// The `log` sink: `[LEVEL] message` lines on stderr, through [`to_stderr`], so logging can never
/// panic either.
pub struct StderrLog {
    level: log::LevelFilter,
    /// Targets (crates) whose records are dropped: gdbstub reports every packet it does not know
    /// at info level, which is noise below `-vvv`.
    quiet: &'static [&'static str],
}

impl StderrLog {
    /// Installs the sink for the whole process (once; later calls change nothing).
    pub fn init(level: log::LevelFilter, quiet: &'static [&'static str]) {
        if log::set_logger(Box::leak(Box::new(StderrLog { level, quiet }))).is_ok() {
            log::set_max_level(level);
        }
    }
}

impl log::Log for StderrLog {
    fn enabled(&self, meta: &log::Metadata<'_>) -> bool {
        meta.level() <= self.level && !self.quiet.iter().any(|q| meta.target().starts_with(q))
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let lead = break_in_on_guest_output();
            to_stderr(format_args!("{lead}[{}] {}\n", record.level(), record.args()));
        }
    }

    fn flush(&self) {}
}

// ----- log lines between guest output -----------------------------------------------------------
//
// At `-vv` a log line comes between two bytes of guest output. When stdout and stderr go to the
// same place (a terminal, `2>&1`), that line must not be glued to a guest's unfinished line nor
// painted in the guest's colour. The console tells us where the guest's output stands; a log line
// then starts with a newline and a colour reset, and tells the console to send its colour again.

/// The last guest byte was not a newline: the guest is in the middle of a line.
static GUEST_MID_LINE: AtomicBool = AtomicBool::new(false);
/// The last guest byte was written in a vCPU's colour (which is still on).
static GUEST_COLOURED: AtomicBool = AtomicBool::new(false);
/// A log line reset the colour since: the console must send its colour again.
static COLOUR_RESET_BY_LOG: AtomicBool = AtomicBool::new(false);

/// Called by the console after each byte of guest output.
pub fn guest_wrote(byte: u8, coloured: bool) {
    GUEST_MID_LINE.store(byte != b'\n', Ordering::Relaxed);
    GUEST_COLOURED.store(coloured, Ordering::Relaxed);
}

/// Called by the console before a byte of guest output: true when a log line reset the colour,
/// so the console's idea of the colour in force is stale.
pub fn colour_reset_by_log() -> bool {
    COLOUR_RESET_BY_LOG.swap(false, Ordering::Relaxed)
}

/// True when fds 1 and 2 are the same file, pipe or terminal (`2>&1`, an interactive shell).
fn stdout_is_stderr() -> bool {
    static SAME: OnceLock<bool> = OnceLock::new();
    *SAME.get_or_init(|| {
        let stat = |fd: std::os::fd::BorrowedFd<'_>| nix::sys::stat::fstat(fd).map(|s| (s.st_dev, s.st_ino));
        match (stat(std::io::stdout().as_fd()), stat(std::io::stderr().as_fd())) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        }
    })
}

/// What a log line starts with: a newline if the guest's line is unfinished, a colour reset if
/// the guest's colour is on (both only when the log shares the guest's stream).
fn break_in_on_guest_output() -> &'static str {
    if !stdout_is_stderr() {
        return "";
    }
    let mid_line = GUEST_MID_LINE.swap(false, Ordering::Relaxed);
    let coloured = GUEST_COLOURED.swap(false, Ordering::Relaxed) && std::io::stderr().is_terminal();
    if coloured {
        COLOUR_RESET_BY_LOG.store(true, Ordering::Relaxed);
    }
    match (mid_line, coloured) {
        (true, true) => "\x1b[0m\n",
        (false, true) => "\x1b[0m",
        (true, false) => "\n",
        (false, false) => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use log::Log;

    fn meta(level: log::Level, target: &str) -> log::Metadata<'_> {
        log::Metadata::builder().level(level).target(target).build()
    }

    #[test]
    fn the_log_keeps_its_level_and_drops_quiet_targets() {
        let log = StderrLog { level: log::LevelFilter::Info, quiet: &["gdbstub"] };
        assert!(log.enabled(&meta(log::Level::Info, "minikvm::vmm")));
        assert!(!log.enabled(&meta(log::Level::Debug, "minikvm::vmm")), "below the level");
        assert!(!log.enabled(&meta(log::Level::Warn, "gdbstub::protocol")), "a quiet target");
    }
}
