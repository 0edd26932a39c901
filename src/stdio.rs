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
use std::io::Write;

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
            to_stderr(format_args!("[{}] {}\n", record.level(), record.args()));
        }
    }

    fn flush(&self) {}
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
