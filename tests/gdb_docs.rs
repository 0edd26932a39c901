//! The transcripts in gdb/README.md are real: `gdb/transcripts.sh` runs the sessions against the
//! minikvm under test, and each session's output must appear in the README as it is (issue 10:
//! "the README and gdb/README.md transcripts are regenerated from real sessions").
//!
//! Only sessions whose transcript is the same on every host are compared: the monitor's times, the
//! interleaving of two guests' output and `rwatch` (refused only where data breakpoints are
//! ignored) vary. Paths are compared with the release build's, which the docs use.

mod common;

use std::process::Command;

/// One session of `gdb/transcripts.sh`: its text after the `=== NAME: …` line.
fn session(name: &str) -> String {
    let script = format!("{}/gdb/transcripts.sh", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("bash").arg(script).arg(name).env("MINIKVM", common::minikvm_bin()).output();
    let out = out.expect("bash runs gdb/transcripts.sh");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}\n{text}", String::from_utf8_lossy(&out.stderr));
    let body = text.split_once('\n').map(|(head, body)| (head.starts_with(&format!("=== {name}:")), body));
    match body {
        Some((true, body)) => body.trim_end().replace("target/debug/", "target/release/"),
        _ => panic!("no session {name} in:\n{text}"),
    }
}

fn readme() -> String {
    std::fs::read_to_string(format!("{}/gdb/README.md", env!("CARGO_MANIFEST_DIR"))).expect("gdb/README.md")
}

#[test]
fn gdb_readme_transcripts_are_what_the_sessions_print() {
    let test = "gdb/README.md transcripts";
    if common::skip_unless_installed("gdb", test)
        || common::skip_unless("singlestep", test)
        || common::skip_unless("hwbreak", test)
    {
        return;
    }
    if common::in_nested_lane() {
        common::skip(test, "the nested lane's minikvm lives outside the source tree the docs name");
        return;
    }
    let readme = readme();
    for name in ["counter", "triple-fault", "realmode.gdb-end"] {
        let transcript = session(name);
        assert!(
            readme.contains(&transcript),
            "gdb/README.md does not show the session `{name}` as it runs now: paste the output of \
             `gdb/transcripts.sh {name}`:\n{transcript}"
        );
    }
}
