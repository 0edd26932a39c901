//! The lab (`lab/minikvm-lab`): minikvm inside a PC that QEMU emulates, with a real KVM inside.
//!
//! A lab boots a Linux under QEMU's software CPU: a few seconds a run, and the first use fetches
//! ~45 MB. So the tests that boot one run only when MINIKVM_TEST_THROUGH_LAB is set — `.ci/run`
//! does, in its own step, which also runs the 1K OS and kernel-gdb tests of `tests/os1k.rs` and
//! `tests/gdb.rs` through the lab — and print SKIPPED otherwise. The missing set-up test always runs.

mod common;

use common::pty::{same, Pty};
use std::io::Write;
use std::process::Child;
use std::time::Duration;

/// How long a lab may take to boot to the 1K OS menu on a busy host.
const BOOT_LIMIT: Duration = Duration::from_secs(120);

fn skip_without_lab(test: &str) -> bool {
    if common::through_lab() {
        return false;
    }
    common::skip(test, "boots the lab; set MINIKVM_TEST_THROUGH_LAB=1 (`.ci/run` does)");
    true
}

/// Starts `minikvm --lab ARGS` with the terminal `p` as stdin, stdout and stderr.
fn spawn_in_lab(p: &Pty, args: &[&str]) -> Child {
    p.spawn(common::minikvm_std().arg("--lab").args(args).current_dir(std::env::temp_dir()))
}

fn wait(child: &mut Child) -> i32 {
    common::pty::wait(child, Duration::from_secs(60))
}

#[test]
fn lab_typed_keys_reach_the_1k_os_and_ctrl_a_x_quits_with_the_terminal_restored() {
    if skip_without_lab("lab_typed_keys_reach_the_1k_os_and_ctrl_a_x_quits_with_the_terminal_restored") {
        return;
    }
    let mut p = Pty::new();
    let before = p.settings();
    let mut child = spawn_in_lab(&p, &["os-1k"]);
    p.wait_for("choice> ", BOOT_LIMIT);
    assert!(!same(&before, &p.settings()), "the terminal should be raw while the lab runs");
    // Typed keys, Enter as a terminal sends it (a carriage return), reach the kernel's UART.
    p.master.write_all(b"4\r").unwrap();
    p.wait_for("233 377", BOOT_LIMIT);
    p.master.write_all(b"\x01x").unwrap();
    assert_eq!(wait(&mut child), 6, "Ctrl-A x ends minikvm in the lab with status 6:\n{}", p.text());
    assert!(same(&before, &p.settings()), "terminal not restored after Ctrl-A x");
    assert!(p.text().contains("quit (Ctrl-A x)"), "minikvm's own message is missing:\n{}", p.text());
}

#[test]
fn lab_a_signal_ends_it_with_the_terminal_restored() {
    if skip_without_lab("lab_a_signal_ends_it_with_the_terminal_restored") {
        return;
    }
    let p = Pty::new();
    let before = p.settings();
    let mut child = spawn_in_lab(&p, &["os-1k"]);
    p.wait_for("choice> ", BOOT_LIMIT);
    let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    assert_eq!(wait(&mut child), 6, "SIGTERM ends the lab with status 6:\n{}", p.text());
    assert!(same(&before, &p.settings()), "terminal not restored after SIGTERM");
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
        common::skip(
            "no_lab_and_its_variable_keep_a_kernel_on_this_host",
            "this host's KVM pages, so no run goes to the lab",
        );
        return;
    }
    // Without the lab, the 1K OS triple-faults here (status 1) and minikvm says why; nothing
    // mentions the lab's hand-over.
    let flag = common::minikvm().env_remove("MINIKVM_NO_LAB").args(["--no-lab", "os-1k32"]).output().unwrap();
    let variable = common::minikvm().env("MINIKVM_NO_LAB", "1").arg("os-1k32").output().unwrap();
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
