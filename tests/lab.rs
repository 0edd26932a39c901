//! The lab (`lab/minikvm-lab`): minikvm inside a PC that QEMU emulates, with a real KVM inside.
//!
//! A lab boots a Linux under QEMU's software CPU: a few seconds a run, and the first use fetches
//! ~45 MB. So the tests that boot one run only when MINIKVM_TEST_THROUGH_LAB is set — `.ci/run`
//! does, in its own step, which also runs the 1K OS and kernel-gdb tests of `tests/os1k.rs` and
//! `tests/gdb.rs` through the lab — and print SKIPPED otherwise. The missing set-up test always runs.

mod common;

use nix::pty::openpty;
use nix::sys::termios::{tcgetattr, Termios};
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a lab may take to boot to the 1K OS menu on a busy host.
const BOOT_LIMIT: Duration = Duration::from_secs(120);

fn skip_without_lab(test: &str) -> bool {
    if common::through_lab() {
        return false;
    }
    eprintln!("SKIPPED {test}: boots the lab; set MINIKVM_TEST_THROUGH_LAB=1 (`.ci/run` does)");
    true
}

/// A pseudo-terminal whose master side collects everything written to it.
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

impl Pty {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }

    fn wait_for(&self, needle: &str) {
        let start = Instant::now();
        while !self.text().contains(needle) {
            assert!(start.elapsed() < BOOT_LIMIT, "never saw {needle:?}; the terminal shows:\n{}", self.text());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts `minikvm --lab ARGS` with this terminal as stdin, stdout and stderr.
    fn spawn(&self, args: &[&str]) -> Child {
        let fd = || Stdio::from(self.slave.try_clone().expect("clone slave"));
        common::minikvm_std()
            .arg("--lab")
            .args(args)
            .current_dir(std::env::temp_dir())
            .stdin(fd())
            .stdout(fd())
            .stderr(fd())
            .spawn()
            .expect("spawn minikvm")
    }
}

fn wait(child: &mut Child) -> i32 {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s.code().unwrap_or(-1);
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("the lab did not end");
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

#[test]
fn lab_typed_keys_reach_the_1k_os_and_ctrl_a_x_quits_with_the_terminal_restored() {
    if skip_without_lab("lab_typed_keys_reach_the_1k_os_and_ctrl_a_x_quits_with_the_terminal_restored") {
        return;
    }
    let mut p = pty();
    let before = tcgetattr(&p.slave).unwrap();
    let mut child = p.spawn(&["os-1k"]);
    p.wait_for("choice> ");
    assert!(!same(&before, &tcgetattr(&p.slave).unwrap()), "the terminal should be raw while the lab runs");
    // Typed keys, Enter as a terminal sends it (a carriage return), reach the kernel's UART.
    p.master.write_all(b"4\r").unwrap();
    p.wait_for("233 377");
    p.master.write_all(b"\x01x").unwrap();
    assert_eq!(wait(&mut child), 6, "Ctrl-A x ends minikvm in the lab with status 6:\n{}", p.text());
    assert!(same(&before, &tcgetattr(&p.slave).unwrap()), "terminal not restored after Ctrl-A x");
    assert!(p.text().contains("quit (Ctrl-A x)"), "minikvm's own message is missing:\n{}", p.text());
}

#[test]
fn lab_a_signal_ends_it_with_the_terminal_restored() {
    if skip_without_lab("lab_a_signal_ends_it_with_the_terminal_restored") {
        return;
    }
    let p = pty();
    let before = tcgetattr(&p.slave).unwrap();
    let mut child = p.spawn(&["os-1k"]);
    p.wait_for("choice> ");
    let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    assert_eq!(wait(&mut child), 6, "SIGTERM ends the lab with status 6:\n{}", p.text());
    assert!(same(&before, &tcgetattr(&p.slave).unwrap()), "terminal not restored after SIGTERM");
}

#[test]
fn lab_piped_output_is_the_guest_bytes_only_and_the_status_comes_back() {
    if skip_without_lab("lab_piped_output_is_the_guest_bytes_only_and_the_status_comes_back") {
        return;
    }
    // A real-mode guest runs on both KVMs: the lab's bytes and status must equal the host's.
    let host = common::minikvm().arg("multiplication").output().unwrap();
    let lab = common::minikvm().args(["--lab", "multiplication"]).output().unwrap();
    assert_eq!(lab.stdout, host.stdout, "stdout differs from the host's run");
    assert_eq!(lab.status.code(), Some(0));
    let fault = common::minikvm().args(["--lab", "triple-fault"]).output().unwrap();
    assert_eq!(fault.status.code(), Some(1), "a guest fault in the lab is status 1");
    let err = String::from_utf8_lossy(&fault.stderr);
    assert!(err.contains("triple fault"), "the fault report reaches stderr: {err}");
}

#[test]
fn a_missing_set_up_is_one_line_and_status_8() {
    // An empty cache and a mirror nobody answers at: the first use cannot fetch anything.
    let cache = tempfile::tempdir().unwrap();
    let out = common::minikvm()
        .args(["--lab", "hello"])
        .env("MINIKVM_LAB_CACHE", cache.path())
        .env("MINIKVM_LAB_MIRROR", "http://127.0.0.1:9/debian")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(8), "status 8 for a lab that cannot be set up; stderr:\n{err}");
    let errors: Vec<_> = err.lines().filter(|l| l.starts_with("minikvm: error:")).collect();
    assert_eq!(errors.len(), 1, "exactly one error line:\n{err}");
    assert!(errors[0].contains("the lab cannot run"), "{}", errors[0]);
    assert!(out.stdout.is_empty(), "nothing on stdout");
}

#[test]
fn no_lab_and_its_variable_keep_a_kernel_on_this_host() {
    if common::host_can("paging") {
        eprintln!("SKIPPED no_lab_and_its_variable_keep_a_kernel_on_this_host: this host's KVM pages, so no run goes to the lab");
        return;
    }
    // Without the lab, the 1K OS triple-faults here (status 1) and minikvm says why; nothing
    // mentions the lab's hand-over.
    let flag = common::minikvm().env_remove("MINIKVM_NO_LAB").args(["--no-lab", "os-1k"]).output().unwrap();
    let variable = common::minikvm().env("MINIKVM_NO_LAB", "1").arg("os-1k").output().unwrap();
    for out in [flag, variable] {
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "stderr:\n{err}");
        assert!(err.contains("cannot run 32-bit paging"), "{err}");
        assert!(!err.contains("running it in the lab"), "{err}");
    }
}

#[test]
fn lab_and_no_lab_together_are_a_usage_error() {
    let out = common::minikvm().args(["--lab", "--no-lab", "hello"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("minikvm: ") && err.lines().count() == 1, "{err}");
}
