//! The last lines of `cargo test`: how many tests passed, failed, and could not run here, and why.
//!
//! libtest knows only "passed", "failed" and "ignored", so a test that returns early because this
//! machine lacks QEMU or gdb, or because this host's KVM cannot page, is counted as passed in
//! cargo's lines. Such a test says so through `tests/common/skip.rs`, which records it; this
//! program runs last and counts it as skipped, not passed.
//!
//! How it fits together:
//! - `.cargo/config.toml` makes cargo start every test binary through `tests/run-test-binary`,
//!   which keeps a copy of the binary's output as `<binary>.out` in this run's directory (named in
//!   `MINIKVM_TEST_RUN`);
//! - `tests/common/skip.rs` adds `<binary>.skipped` there: one `NAME<tab>why` line per skipped test;
//! - cargo runs the test binaries in the order of their names (hence `zz_`). This one is not a
//!   libtest binary (`harness = false` in Cargo.toml), so what it prints is not captured. Doc-tests
//!   would run after it: they are off (`doctest = false`).
//!
//! It reads the records, prints the summary, and removes this run's directory and those of runs
//! that ended without reaching it (a failing test binary stops `cargo test` before this one).

mod common;

use common::skip::{RECORD_SUFFIX, RUN_DIR_VAR};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What one test binary recorded.
#[derive(Default)]
struct BinaryRecord {
    /// libtest's last `test result:` line, e.g. `test result: ok. 11 passed; 0 failed; 0 ignored; …`.
    result: Option<String>,
    /// Why, by test name, for the tests that could not run here.
    skipped: BTreeMap<String, String>,
}

/// The whole run's counts; a skipped test is counted once, as skipped, never as passed.
#[derive(Default)]
struct Counts {
    passed: u64,
    failed: u64,
    ignored: u64,
    /// `binary: test` names, by reason.
    skipped: BTreeMap<String, Vec<String>>,
    /// Test binaries that printed no `test result:` line (they crashed or were stopped).
    no_result: Vec<String>,
}

fn main() {
    let Some(run_dir) = std::env::var_os(RUN_DIR_VAR).map(PathBuf::from) else {
        println!(
            "no summary: this binary was not started by `cargo test` through tests/run-test-binary \
             (.cargo/config.toml), so nothing recorded which tests ran (the nested lane counts on its own)"
        );
        return;
    };
    let mut records = read_run(&run_dir);
    records.remove(&own_name()); // this program's own output, still being written
    print!("{}", report(&count(&records)));
    remove_finished_runs(&run_dir);
}

/// Every test binary's record in `dir`, by file name (`gdb-8fe6689da8619cfc`).
fn read_run(dir: &Path) -> BTreeMap<String, BinaryRecord> {
    let mut records: BTreeMap<String, BinaryRecord> = BTreeMap::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let text = String::from_utf8_lossy(&std::fs::read(entry.path()).unwrap_or_default()).into_owned();
        if let Some(binary) = file.strip_suffix(".out") {
            // On a terminal the word `ok` or `FAILED` is coloured; the counts never are.
            let last = text.lines().rfind(|l| l.starts_with("test result: ")).map(str::to_string);
            records.entry(binary.to_string()).or_default().result = last;
        } else if let Some(binary) = file.strip_suffix(RECORD_SUFFIX) {
            let skipped = &mut records.entry(binary.to_string()).or_default().skipped;
            for (test, why) in text.lines().filter_map(|l| l.split_once('\t')) {
                skipped.insert(test.to_string(), why.to_string());
            }
        }
    }
    records
}

/// The number before `what` in libtest's result line: `count_of(line, "passed")` → 11.
/// (libtest has printed `test result: ok. 11 passed; 0 failed; 0 ignored; …` for years; the
/// nested lane reads the same line.)
fn count_of(result: &str, what: &str) -> u64 {
    let before = result.split(&format!(" {what}")).next().unwrap_or_default();
    before.rsplit(' ').next().and_then(|n| n.parse().ok()).unwrap_or(0)
}

fn count(records: &BTreeMap<String, BinaryRecord>) -> Counts {
    let mut counts = Counts::default();
    for (binary, record) in records {
        let target = target_name(binary);
        let Some(result) = &record.result else {
            counts.no_result.push(target.to_string());
            continue;
        };
        // A test that skipped returned normally: libtest counted it among the passed.
        let skipped = record.skipped.len() as u64;
        counts.passed += count_of(result, "passed").saturating_sub(skipped);
        counts.failed += count_of(result, "failed");
        counts.ignored += count_of(result, "ignored");
        for (test, why) in &record.skipped {
            counts.skipped.entry(why.clone()).or_default().push(format!("{target}: {test}"));
        }
    }
    counts
}

/// `gdb-8fe6689da8619cfc` → `gdb`: the test target's name, without cargo's hash.
fn target_name(binary: &str) -> &str {
    binary.rsplit_once('-').map_or(binary, |(name, _hash)| name)
}

/// The file name of this program, as the runner named its output.
fn own_name() -> String {
    let exe = std::env::current_exe().unwrap_or_default();
    exe.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// The summary's lines: the skipped tests grouped by reason, then the counts.
fn report(counts: &Counts) -> String {
    let skipped: usize = counts.skipped.values().map(Vec::len).sum();
    let mut out = String::from("\n");
    if skipped == 0 {
        out += "skipped: none, every test ran here\n";
    } else {
        out += &format!("skipped: {skipped} tests could not run here (cargo's lines above count them as passed):\n");
        for (why, tests) in &counts.skipped {
            out += &format!("  {} in {}: {why}\n", tests.len(), where_they_are(tests));
        }
        out += "  which ones: cargo test -- --show-output 2>&1 | grep ^SKIPPED\n";
    }
    if !counts.no_result.is_empty() {
        out += &format!("no result from: {} (crashed or stopped)\n", counts.no_result.join(", "));
    }
    let ignored = if counts.ignored > 0 { format!(", {} ignored", counts.ignored) } else { String::new() };
    out += &format!("{} passed, {} failed, {skipped} skipped{ignored}\n", counts.passed, counts.failed);
    out
}

/// Where the tests of one group are: `os1k`, `gdb (2), os1k (16)`, or the test itself when it is alone
/// (`cli (putchar_reads_registers_without_extra_ioctls)`).
fn where_they_are(tests: &[String]) -> String {
    if let [only] = tests {
        let (binary, test) = only.split_once(": ").unwrap_or(("", only));
        return format!("{binary} ({test})");
    }
    let mut per_binary: BTreeMap<&str, usize> = BTreeMap::new();
    for binary in tests.iter().filter_map(|t| t.split_once(": ")).map(|(binary, _)| binary) {
        *per_binary.entry(binary).or_default() += 1;
    }
    if per_binary.len() == 1 {
        return per_binary.into_keys().collect();
    }
    per_binary.iter().map(|(binary, n)| format!("{binary} ({n})")).collect::<Vec<_>>().join(", ")
}

/// Removes this run's records, and those of earlier runs whose `cargo` process has ended. Only
/// directories named as the runner names them (`test-runs/cargo-<pid>-<start time>`) are removed,
/// whatever `MINIKVM_TEST_RUN` says: this must never delete anything else.
fn remove_finished_runs(run_dir: &Path) {
    let Some(all_runs) = run_dir.parent().filter(|p| p.file_name().is_some_and(|n| n == "test-runs")) else {
        return;
    };
    if run_dir.file_name().and_then(|n| run_id(&n.to_string_lossy())).is_some() {
        let _ = std::fs::remove_dir_all(run_dir);
    }
    for entry in std::fs::read_dir(all_runs).into_iter().flatten().flatten() {
        let Some((pid, start)) = run_id(&entry.file_name().to_string_lossy()) else { continue };
        if !process_runs(pid, start) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// `cargo-<pid>-<start time>` → (pid, start time); None for any other name.
fn run_id(dir_name: &str) -> Option<(u32, u64)> {
    let (pid, start) = dir_name.strip_prefix("cargo-")?.split_once('-')?;
    Some((pid.parse().ok()?, start.parse().ok()?))
}

/// Whether process `pid` runs and started at `start` (field 22 of /proc/<pid>/stat, in clock ticks
/// since boot), as the runner saw it: the cargo of that run is still at work.
fn process_runs(pid: u32, start: u64) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.split(' ').nth(21).and_then(|s| s.parse().ok()) == Some(start)
}
