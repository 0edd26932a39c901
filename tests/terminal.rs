//! Interactive runs on a real pseudo-terminal: raw mode, the Ctrl-A x escape, and the terminal
//! restored on every way out.

mod common;

use common::pty::{same, Pty};
use std::io::Write;
use std::process::Child;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(30);

fn pty() -> Pty {
    Pty::new()
}

fn spawn_on(p: &Pty, args: &[&str]) -> Child {
    p.spawn(common::minikvm_std().args(args))
}

fn wait(child: &mut Child) -> i32 {
    common::pty::wait(child, LIMIT)
}

fn wait_for_output(p: &Pty, needle: &str) {
    p.wait_for(needle, LIMIT)
}

/// Starts an interactive guest and waits until minikvm has put the terminal in raw mode (it says
/// how to quit right after). Keys typed sooner meet a cooked terminal: Ctrl-C there is a signal
/// and flushes the line (seen in the nested lane, where start-up takes longer than 200 ms).
fn spawn_raw(p: &Pty, args: &[&str]) -> Child {
    let child = spawn_on(p, args);
    wait_for_output(p, "press Ctrl-A then x to quit");
    child
}

#[test]
fn ctrl_a_x_quits_and_restores_the_terminal() {
    let mut p = pty();
    let before = p.settings();
    let mut child = spawn_on(&p, &["spin"]);
    wait_for_output(&p, "spinning");
    let during = p.settings();
    assert!(!same(&before, &during), "stdin should be in raw mode while the guest runs");
    p.master.write_all(b"\x01x").unwrap();
    assert_eq!(wait(&mut child), 6);
    let after = p.settings();
    assert!(same(&before, &after), "terminal not restored after Ctrl-A x");
    wait_for_output(&p, "quit (Ctrl-A x)");
}

#[test]
fn keys_reach_the_guest_raw_and_a_normal_end_restores_the_terminal() {
    let mut p = pty();
    let before = p.settings();
    let mut child = spawn_raw(&p, &["uart-echo"]);
    // Raw mode: Ctrl-C is a byte for the guest, not a signal for minikvm.
    p.master.write_all(b"ab\x03c\r").unwrap();
    wait_for_output(&p, "> AB\x03C");
    p.master.write_all(b"quit\r").unwrap();
    assert_eq!(wait(&mut child), 0);
    assert!(same(&before, &p.settings()), "terminal not restored after a normal end");
}

#[test]
fn a_signal_and_a_guest_fault_restore_the_terminal() {
    let p = pty();
    let before = p.settings();
    let mut child = spawn_on(&p, &["spin"]);
    wait_for_output(&p, "spinning");
    let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    assert_eq!(wait(&mut child), 6);
    assert!(same(&before, &p.settings()), "terminal not restored after SIGTERM");

    let mut child = spawn_on(&p, &["triple-fault"]);
    assert_eq!(wait(&mut child), 1);
    assert!(same(&before, &p.settings()), "terminal not restored after a guest fault");
}

/// SIGQUIT, SIGUSR1/2 and SIGALRM used to kill minikvm outright, leaving the terminal raw.
#[test]
fn every_stop_signal_restores_the_terminal() {
    let p = pty();
    let before = p.settings();
    for signal in ["QUIT", "USR1", "USR2", "ALRM", "HUP", "INT"] {
        let spins = p.text().matches("spinning").count();
        let mut child = spawn_on(&p, &["spin"]);
        let start = Instant::now();
        while p.text().matches("spinning").count() == spins {
            assert!(start.elapsed() < Duration::from_secs(30), "SIG{signal}: never saw the guest run");
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = std::process::Command::new("kill").arg(format!("-{signal}")).arg(child.id().to_string()).status();
        assert_eq!(wait(&mut child), 6, "SIG{signal}");
        assert!(same(&before, &p.settings()), "terminal not restored after SIG{signal}");
    }
}

#[test]
fn a_dead_vcpu_thread_restores_the_terminal() {
    let p = pty();
    let before = p.settings();
    let mut child = p.spawn(common::minikvm_std().env("MINIKVM_FAULT_INJECT", "vcpu-panic:1").args(["spin", "spin"]));
    assert_eq!(wait(&mut child), 7);
    assert!(same(&before, &p.settings()), "terminal not restored after an internal error");
    wait_for_output(&p, "internal error");
}

/// On a terminal, one line on stderr says how to quit (raw mode gives Ctrl-C to the guest).
#[test]
fn a_terminal_run_says_once_how_to_quit() {
    let p = pty();
    let mut child = spawn_on(&p, &["hello"]);
    assert_eq!(wait(&mut child), 0);
    wait_for_output(&p, "Hello, KVM!");
    assert_eq!(p.text().matches("press Ctrl-A then x to quit").count(), 1, "{:?}", p.text());
}

/// At `-vv` on a colour terminal with two guests (one guest alone is never coloured), no log line
/// is painted in a guest's colour: the last colour code before each log line is a reset.
#[test]
fn log_lines_are_not_in_a_guests_colour() {
    let p = pty();
    let mut child = spawn_on(&p, &["-vv", "--color", "always", "hello", "counter"]);
    assert_eq!(wait(&mut child), 0);
    wait_for_output(&p, "ended");
    let text = p.text();
    assert!(text.contains("\x1b[3"), "the guests are coloured: {text:?}");
    for (at, _) in text.match_indices("[DEBUG]") {
        let before = &text[..at];
        if let Some(last_colour) = before.rfind("\x1b[") {
            assert!(before[last_colour..].starts_with("\x1b[0m"), "a log line in a guest's colour: {text:?}");
        }
    }
}

/// On a terminal, hctest waits for a line (it used to print "no input was waiting" at once) and
/// echoes it.
#[test]
fn hctest_waits_for_a_line_typed_on_a_terminal() {
    let mut p = pty();
    let mut child = spawn_on(&p, &["hctest"]);
    wait_for_output(&p, "reading a line with GETCHAR");
    std::thread::sleep(Duration::from_millis(300));
    assert!(child.try_wait().unwrap().is_none(), "hctest ended before a key: {:?}", p.text());
    p.master.write_all(b"hi\r").unwrap();
    assert_eq!(wait(&mut child), 0);
    wait_for_output(&p, "echo: hi");
    assert!(!p.text().contains("no input"), "{:?}", p.text());
}

/// uart-echo echoes each key as it is typed, before Enter (a raw terminal echoes nothing itself).
#[test]
fn uart_echo_echoes_keys_as_typed() {
    let mut p = pty();
    let mut child = spawn_raw(&p, &["uart-echo"]);
    p.master.write_all(b"ab").unwrap();
    wait_for_output(&p, "> AB");
    p.master.write_all(b"\rquit\r").unwrap();
    assert_eq!(wait(&mut child), 0);
    wait_for_output(&p, "> QUIT");
}
