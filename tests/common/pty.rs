//! A pseudo-terminal for tests of interactive runs: minikvm gets the slave side as its terminal,
//! the test types on the master side and reads what minikvm shows.
#![allow(dead_code)]

use nix::pty::openpty;
use nix::sys::termios::{tcgetattr, Termios};
use std::io::Read;
use std::os::fd::OwnedFd;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A pseudo-terminal whose master side collects everything written to it.
pub struct Pty {
    pub master: std::fs::File,
    pub slave: OwnedFd,
    output: Arc<Mutex<Vec<u8>>>,
}

impl Pty {
    pub fn new() -> Pty {
        let p = openpty(None, None).expect("openpty");
        let master = std::fs::File::from(p.master);
        let mut reader = master.try_clone().expect("clone master");
        let output = Arc::new(Mutex::new(Vec::new()));
        let sink = output.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Pty { master, slave: p.slave, output }
    }

    /// Everything shown on the terminal so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }

    /// Waits until the terminal shows `needle`; fails the test after `limit`.
    pub fn wait_for(&self, needle: &str, limit: Duration) {
        let start = Instant::now();
        while !self.text().contains(needle) {
            assert!(start.elapsed() < limit, "never saw {needle:?}; the terminal shows:\n{}", self.text());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The terminal's settings now (to compare before, during and after a run).
    pub fn settings(&self) -> Termios {
        tcgetattr(&self.slave).expect("tcgetattr")
    }

    /// Starts `cmd` with this terminal as its stdin, stdout and stderr.
    pub fn spawn(&self, cmd: &mut Command) -> Child {
        let fd = || Stdio::from(self.slave.try_clone().expect("clone slave"));
        cmd.stdin(fd()).stdout(fd()).stderr(fd()).spawn().expect("spawn minikvm")
    }
}

/// Waits for `child` to end and returns its status (-1 for a signal); kills it and fails the test
/// after `limit`.
pub fn wait(child: &mut Child, limit: Duration) -> i32 {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s.code().unwrap_or(-1);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("minikvm did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether two terminal settings are the same in every field raw mode changes.
pub fn same(a: &Termios, b: &Termios) -> bool {
    a.input_flags == b.input_flags
        && a.output_flags == b.output_flags
        && a.control_flags == b.control_flags
        && a.local_flags == b.local_flags
        && a.control_chars == b.control_chars
}
