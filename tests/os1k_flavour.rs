//! `minikvm os-1k` boots the flavour of the 1K OS this host's KVM can run, decided by doctor's
//! probes (src/os1k_flavour.rs has the rule), and says which in one line on stderr; `os-1k32` and
//! `os-1k64` boot one flavour and say nothing. Where a kernel goes to the lab, `os-1k` is handed
//! over as typed and the minikvm inside chooses by the lab's KVM.

mod common;

use std::time::Duration;

/// Boots NAME on this host (never the lab) with `-v` and "0" (power off) as input: (status,
/// stdout, stderr).
fn boot(name: &str) -> (Option<i32>, String, String) {
    let out = common::minikvm()
        .env("MINIKVM_NO_LAB", "1")
        .args(["-v", "--eof-grace", "10", name])
        .write_stdin("0\n")
        .timeout(Duration::from_secs(60))
        .output()
        .expect("minikvm runs");
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn os_1k_boots_the_probed_flavour_and_says_which() {
    let expected = if common::host_can("paging") {
        "os-1k32"
    } else if common::host_can("longmode") {
        "os-1k64"
    } else {
        common::skip("os_1k_boots_the_probed_flavour_and_says_which", "this host's KVM runs neither flavour");
        return;
    };
    let (status, out, err) = boot("os-1k");
    let said: Vec<&str> = err.lines().filter(|l| l.starts_with("minikvm: os-1k:")).collect();
    assert_eq!(said.len(), 1, "one line: {err}");
    assert!(said[0].starts_with(&format!("minikvm: os-1k: booting {expected}, ")), "{err}");
    assert!(err.contains(&format!("vCPU 0 ({expected})")), "the kernel booted is the one named: {err}");
    if expected == "os-1k64" && !common::host_can("usercall") {
        assert!(said[0].contains("the nested lane or the lab"), "{err}");
    }
    assert!(out.contains("1K OS menu:") && out.ends_with("1K OS: power off\r\n"), "stdout: {out}\nstderr: {err}");
    assert_eq!(status, Some(0), "stderr: {err}");
}

#[test]
fn an_explicit_flavour_is_booted_without_a_word() {
    for (name, probe) in [("os-1k32", "paging"), ("os-1k64", "longmode")] {
        if common::skip_unless(probe, name) {
            continue;
        }
        let (status, out, err) = boot(name);
        assert!(!err.contains("minikvm: os-1k:"), "{err}");
        assert!(err.contains(&format!("vCPU 0 ({name})")), "{err}");
        assert!(out.contains("1K OS menu:"), "stdout: {out}");
        assert_eq!(status, Some(0), "stderr: {err}");
    }
}

#[test]
fn list_names_both_flavours_and_the_probed_one() {
    let out = common::minikvm().arg("list").output().expect("minikvm runs");
    let text = String::from_utf8_lossy(&out.stdout);
    for name in ["os-1k32 ", "os-1k64 ", "os-1k "] {
        assert!(text.lines().any(|l| l.starts_with(name)), "`{name}` in:\n{text}");
    }
}

#[test]
fn through_the_lab_the_minikvm_inside_chooses() {
    let test = "through_the_lab_the_minikvm_inside_chooses";
    if common::host_can("paging") {
        common::skip(test, "this host's KVM pages, so `os-1k` never goes to the lab");
        return;
    }
    if !common::through_lab() {
        common::skip(test, "boots the lab; set MINIKVM_TEST_THROUGH_LAB=1 (`.ci/run` does)");
        return;
    }
    let out = common::minikvm()
        .env_remove("MINIKVM_NO_LAB")
        .args(["--eof-grace", "10", "os-1k"])
        .write_stdin("0\n")
        .timeout(Duration::from_secs(180))
        .output()
        .expect("minikvm runs");
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("minikvm:")).collect();
    // Here: the lab's hand-over names what was typed; inside (a real KVM): the choice, once.
    assert!(lines.first().is_some_and(|l| l.contains("a kernel such as os-1k may need")), "{err}");
    let chosen: Vec<&&str> = lines.iter().filter(|l| l.starts_with("minikvm: os-1k: booting ")).collect();
    assert_eq!(chosen.len(), 1, "{err}");
    assert!(chosen[0].starts_with("minikvm: os-1k: booting os-1k32, "), "the lab's KVM pages: {err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("1K OS menu:"), "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
}
