//! Interactive runs on a real pseudo-terminal: raw mode, the Ctrl-A x escape, and the terminal
//! restored on every way out.

mod common;

use nix::pty::openpty;
use nix::sys::termios::{tcgetattr, Termios};
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Pty {
    master: std::fs::File,
    slave: OwnedFd,
    output: Arc<Mutex<Vec<u8>>>,
}

fn pty() -> Pty {
    let p = openpty(None, None).expect("openpty");
    let master = std::fs::File::from(p.master);
    let mut reader = master.try_clone().expect("clone master");
    let output = Arc::new(Mutex::new(Vec::new()));
    let out2 = output.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1024];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            out2.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    Pty { master, slave: p.slave, output }
}

fn spawn_on(p: &Pty, args: &[&str]) -> Child {
    let fd = |p: &Pty| Stdio::from(p.slave.try_clone().expect("clone slave"));
    common::minikvm_std().args(args).stdin(fd(p)).stdout(fd(p)).stderr(fd(p)).spawn().expect("spawn minikvm")
}

fn wait(child: &mut Child) -> i32 {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s.code().unwrap_or(-1);
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("minikvm did not end");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn same(a: &Termios, b: &Termios) -> bool {
    a.input_flags == b.input_flags
        && a.output_flags == b.output_flags
        && a.control_flags == b.control_flags
        && a.local_flags == b.local_flags
        && a.control_chars == b.control_chars
}

fn wait_for_output(p: &Pty, needle: &str) {
    let start = Instant::now();
    while !String::from_utf8_lossy(&p.output.lock().unwrap()).contains(needle) {
        assert!(start.elapsed() < Duration::from_secs(30), "never saw {needle:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn ctrl_a_x_quits_and_restores_the_terminal() {
    let mut p = pty();
    let before = tcgetattr(&p.slave).unwrap();
    let mut child = spawn_on(&p, &["spin"]);
    wait_for_output(&p, "spinning");
    let during = tcgetattr(&p.slave).unwrap();
    assert!(!same(&before, &during), "stdin should be in raw mode while the guest runs");
    p.master.write_all(b"\x01x").unwrap();
    assert_eq!(wait(&mut child), 6);
    let after = tcgetattr(&p.slave).unwrap();
    assert!(same(&before, &after), "terminal not restored after Ctrl-A x");
    wait_for_output(&p, "quit (Ctrl-A x)");
}

#[test]
fn keys_reach_the_guest_raw_and_a_normal_end_restores_the_terminal() {
    let mut p = pty();
    let before = tcgetattr(&p.slave).unwrap();
    let mut child = spawn_on(&p, &["uart-echo"]);
    std::thread::sleep(Duration::from_millis(200));
    // Raw mode: Ctrl-C is a byte for the guest, not a signal for minikvm.
    p.master.write_all(b"ab\x03c\r").unwrap();
    wait_for_output(&p, "> AB\x03C");
    p.master.write_all(b"quit\r").unwrap();
    assert_eq!(wait(&mut child), 0);
    assert!(same(&before, &tcgetattr(&p.slave).unwrap()), "terminal not restored after a normal end");
}

#[test]
fn a_signal_and_a_guest_fault_restore_the_terminal() {
    let p = pty();
    let before = tcgetattr(&p.slave).unwrap();
    let mut child = spawn_on(&p, &["spin"]);
    wait_for_output(&p, "spinning");
    let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    assert_eq!(wait(&mut child), 6);
    assert!(same(&before, &tcgetattr(&p.slave).unwrap()), "terminal not restored after SIGTERM");

    let mut child = spawn_on(&p, &["triple-fault"]);
    assert_eq!(wait(&mut child), 1);
    assert!(same(&before, &tcgetattr(&p.slave).unwrap()), "terminal not restored after a guest fault");
}

/// SIGQUIT, SIGUSR1/2 and SIGALRM used to kill minikvm outright, leaving the terminal raw.
#[test]
fn every_stop_signal_restores_the_terminal() {
    let p = pty();
    let before = tcgetattr(&p.slave).unwrap();
    for signal in ["QUIT", "USR1", "USR2", "ALRM", "HUP", "INT"] {
        let spins = String::from_utf8_lossy(&p.output.lock().unwrap()).matches("spinning").count();
        let mut child = spawn_on(&p, &["spin"]);
        let start = Instant::now();
        while String::from_utf8_lossy(&p.output.lock().unwrap()).matches("spinning").count() == spins {
            assert!(start.elapsed() < Duration::from_secs(30), "SIG{signal}: never saw the guest run");
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = std::process::Command::new("kill").arg(format!("-{signal}")).arg(child.id().to_string()).status();
        assert_eq!(wait(&mut child), 6, "SIG{signal}");
        assert!(same(&before, &tcgetattr(&p.slave).unwrap()), "terminal not restored after SIG{signal}");
    }
}

#[test]
fn a_dead_vcpu_thread_restores_the_terminal() {
    let p = pty();
    let before = tcgetattr(&p.slave).unwrap();
    let fd = |p: &Pty| Stdio::from(p.slave.try_clone().expect("clone slave"));
    let mut child = common::minikvm_std()
        .env("MINIKVM_FAULT_INJECT", "vcpu-panic:1")
        .args(["spin", "spin"])
        .stdin(fd(&p))
        .stdout(fd(&p))
        .stderr(fd(&p))
        .spawn()
        .expect("spawn minikvm");
    assert_eq!(wait(&mut child), 7);
    assert!(same(&before, &tcgetattr(&p.slave).unwrap()), "terminal not restored after an internal error");
    wait_for_output(&p, "internal error");
}
