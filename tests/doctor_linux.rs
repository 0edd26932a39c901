//! The `linux` probe (`minikvm doctor --probe linux`) says whether this host's KVM runs what a
//! stock Linux kernel runs at boot, and if not, which instruction stops it. Its verdict is checked
//! against what its guest prints when run as an ordinary 64-bit guest: the guest names each
//! instruction before running it and says "ok" after, so the instruction it stops at is the one
//! named last without an "ok" — on this project's machines `lock cmpxchg16b`, on a laptop none.

mod common;

/// The instructions the probe guest runs, in order (guest/probe/linux.S).
const INSTRUCTIONS: [&str; 3] = ["lock cmpxchg16b", "xsetbv", "xrstor"];

fn probe_guest() -> std::path::PathBuf {
    let bin = common::minikvm_bin().parent().expect("target dir").join("guests/probe/linux.bin");
    assert!(bin.exists(), "{} is missing: `cargo build` assembles guest/probe/linux.S", bin.display());
    bin
}

#[test]
fn the_linux_probe_agrees_with_what_its_guest_prints() {
    if common::skip_unless("longmode", "the_linux_probe_agrees_with_what_its_guest_prints") {
        return;
    }
    let guest = common::minikvm().arg("--long-mode").arg(probe_guest()).output().expect("minikvm runs");
    let printed = String::from_utf8_lossy(&guest.stdout).into_owned();
    // Every line the guest printed names one of its instructions, in order, from the first.
    let named: Vec<&str> = printed.lines().map(|l| l.split_once(": ").map_or(l, |(name, _)| name)).collect();
    assert!(!named.is_empty(), "the probe guest printed nothing: {}", String::from_utf8_lossy(&guest.stderr));
    assert_eq!(named, INSTRUCTIONS[..named.len()], "{printed:?}");
    let stopped_at = printed.lines().find(|l| !l.ends_with(": ok")).map(|l| l.trim_end().trim_end_matches(':'));

    let single = common::minikvm().args(["doctor", "--probe", "linux"]).output().expect("minikvm runs");
    let report = common::minikvm().arg("doctor").output().expect("minikvm runs");
    let report = String::from_utf8_lossy(&report.stdout).into_owned();
    let line =
        report.lines().find(|l| l.contains("booting Linux")).unwrap_or_else(|| panic!("no linux line: {report}"));
    match stopped_at {
        None => {
            assert_eq!(guest.status.code(), Some(0), "every instruction ran, so the guest ends normally");
            assert!(single.status.success(), "the guest ran every instruction, so the probe must say it works");
            assert!(line.trim_start().starts_with("works"), "{line}");
        }
        Some(instruction) => {
            assert_eq!(guest.status.code(), Some(1), "the guest stopped after `{instruction}`: a fault");
            assert!(!single.status.success(), "the guest stopped at `{instruction}`: the probe must say no");
            assert!(line.contains("does not work"), "{line}");
            assert!(
                line.contains(&format!("stops at `{instruction}`")),
                "the report must name `{instruction}`: {line}"
            );
        }
    }
}
