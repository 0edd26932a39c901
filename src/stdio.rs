//! Writing to stdout and stderr without ever panicking.
//!
//! `println!` and `eprintln!` panic when the write fails: a reader that left the pipe (EPIPE, as in
//! `minikvm list | head -1`), a full disk or `/dev/full` (ENOSPC), a closed descriptor (EBADF).
//! minikvm's messages go through the macros below instead, which drop a failed write: when the
//! stream we report on is gone there is nowhere left to report that, and the exit status still
//! says how the run ended. The log (`-v`) goes through the same path ([`init_log`]).
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

/// The log (`-v`): simplelog's `WriteLogger` formats each record as `[LEVEL] message` (no time,
/// thread or target: a student reads these lines next to the guest's output) into [`LogLines`],
/// which writes whole lines through [`to_stderr`], so logging can never panic either.
pub fn init_log(level: log::LevelFilter, quiet: &[&'static str]) {
    let mut config = simplelog::ConfigBuilder::new();
    config
        .set_time_level(log::LevelFilter::Off)
        .set_thread_level(log::LevelFilter::Off)
        .set_target_level(log::LevelFilter::Off)
        .set_location_level(log::LevelFilter::Off);
    for target in quiet {
        config.add_filter_ignore_str(target);
    }
    // An error means a logger is already installed (a second call): it stays.
    let _ = simplelog::WriteLogger::init(level, config.build(), LogLines::default());
}

/// simplelog writes a record in several pieces; this collects them and writes each finished line
/// to stderr at once (one `write(2)`, so lines from several threads never mix), starting with what
/// `break_in_on_guest_output` says it needs.
#[derive(Default)]
pub struct LogLines {
    line: Vec<u8>,
}

impl Write for LogLines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for piece in buf.split_inclusive(|&b| b == b'\n') {
            self.line.extend_from_slice(piece);
            if piece.ends_with(b"\n") {
                let lead = break_in_on_guest_output();
                to_stderr(format_args!("{lead}{}", String::from_utf8_lossy(&self.line)));
                self.line.clear();
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
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

    #[test]
    fn log_pieces_become_whole_lines() {
        let mut lines = LogLines::default();
        lines.write_all(b"[DEBUG] ").unwrap();
        lines.write_all(b"half").unwrap();
        assert_eq!(lines.line, b"[DEBUG] half", "nothing written before the newline");
        lines.write_all(b" done\n[INFO] next").unwrap();
        assert_eq!(lines.line, b"[INFO] next", "the finished line went out, the next one waits");
    }
}
