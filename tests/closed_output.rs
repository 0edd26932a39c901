//! stdout or stderr closed (a pipe whose reader left) or full (`/dev/full`): minikvm still ends with
//! the status it documents, never a panic (status 101).

mod common;

use common::minikvm_std;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where a test sends one of minikvm's output streams.
#[derive(Debug, Clone, Copy)]
enum Sink {
    /// A pipe whose read end is closed before minikvm starts: every write fails with EPIPE.
    Closed,
    /// `/dev/full`: every write fails with ENOSPC.
    Full,
    /// Discarded (the stream is not under test).
    Null,
}

fn stdio(sink: Sink) -> Stdio {
    match sink {
        Sink::Closed => {
            let (read, write): (OwnedFd, OwnedFd) = nix::unistd::pipe().expect("pipe");
            drop(read);
            Stdio::from(write)
        }
        Sink::Full => Stdio::from(std::fs::OpenOptions::new().write(true).open("/dev/full").expect("/dev/full")),
        Sink::Null => Stdio::null(),
    }
}

fn status_with(args: &[&str], stdout: Sink, stderr: Sink) -> Option<i32> {
    let mut cmd = minikvm_std();
    cmd.args(args).stdin(Stdio::null()).stdout(stdio(stdout)).stderr(stdio(stderr));
    wait_bounded(&mut cmd)
}

fn wait_bounded(cmd: &mut Command) -> Option<i32> {
    let mut child = cmd.spawn().expect("spawn minikvm");
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().expect("wait") {
            return s.code();
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("minikvm did not end");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn every_message_survives_a_closed_or_full_stream() {
    use Sink::*;
    let cases: &[(&[&str], Sink, Sink, i32)] = &[
        (&["list"], Closed, Null, 0),
        (&["list"], Full, Null, 0),
        (&["doctor"], Full, Null, 0),
        (&["doctor", "--probe", "teleport"], Null, Full, 2),
        (&["--no-such-option"], Null, Full, 2),
        (&["--no-such-option"], Null, Closed, 2),
        (&["no-such-guest"], Null, Closed, 2),
        (&["triple-fault"], Null, Full, 1),
        (&["triple-fault"], Null, Closed, 1),
        (&["bad-hypercall"], Null, Full, 1),
        (&["--timeout", "0.3", "spin"], Closed, Closed, 3),
        (&["--timeout", "0.3", "spin"], Full, Full, 3),
        (&["--output=raw", "hello", "counter"], Closed, Full, 0), // the legend
        (&["hello", "counter"], Full, Closed, 0),                 // tagged lines
        (&["--stats", "hello"], Null, Full, 0),
        (&["--stats", "hello"], Full, Closed, 0),
        (&["-vvv", "hello"], Null, Full, 0), // the log
        (&["--help"], Full, Null, 0),
    ];
    let mut failures = Vec::new();
    for &(args, out, err, want) in cases {
        let got = status_with(args, out, err);
        if got != Some(want) {
            failures.push(format!("{args:?} stdout {out:?} stderr {err:?}: status {got:?}, want {want}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `minikvm --timeout 1 spin 2>&1 | head -c 1`: the reader leaves after one byte of the guest's
/// output; the timeout report then goes to a closed pipe.
#[test]
fn a_reader_that_leaves_mid_run_does_not_change_the_status() {
    let (read, write): (OwnedFd, OwnedFd) = nix::unistd::pipe().expect("pipe");
    let (mut read, write) = (std::fs::File::from(read), std::fs::File::from(write));
    let mut child = minikvm_std()
        .args(["--timeout", "1", "spin"])
        .stdin(Stdio::null())
        .stdout(write.try_clone().expect("clone"))
        .stderr(write)
        .spawn()
        .expect("spawn");
    let mut one = [0u8; 1];
    read.read_exact(&mut one).expect("one byte");
    drop(read);
    assert_eq!(one, *b"s");
    assert_eq!(child.wait().expect("wait").code(), Some(3));
}

/// A stop signal's report goes to a closed stderr.
#[test]
fn a_signal_report_to_a_closed_stderr_keeps_status_6() {
    let mut child = minikvm_std()
        .arg("spin")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stdio(Sink::Closed))
        .spawn()
        .expect("spawn");
    let mut first = [0u8; 8];
    child.stdout.as_mut().expect("stdout").read_exact(&mut first).expect("spinning");
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    assert_eq!(child.wait().expect("wait").code(), Some(6));
}
