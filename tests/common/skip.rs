//! A test that cannot run here says so, and is counted as skipped, never as passed.
//!
//! Some tests need a program this machine may lack (QEMU, gdb, strace, …) or something this host's
//! KVM cannot do (32-bit paging, see `minikvm doctor`). Such a test asks [`skip_unless_installed`]
//! or [`crate::common::skip_unless`] first and returns when told to. libtest has no "skipped"
//! result: the test still shows as `ok` in cargo's lines. So every skip goes through [`skip`], which
//! - prints `SKIPPED <test>: <why>` on stderr (the nested lane, `.ci/nested-lane`, counts these);
//! - adds `<test>` and `<why>` to this test binary's skip record in the directory of the current
//!   `cargo test` run (`tests/run-test-binary` names it in `MINIKVM_TEST_RUN`).
//!
//! The last test binary, `tests/zz_summary.rs`, reads the records and ends the output of
//! `cargo test` with how many tests could not run, and why.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Environment variable naming this run's record directory (set by `tests/run-test-binary`).
pub const RUN_DIR_VAR: &str = "MINIKVM_TEST_RUN";

/// The name of a test binary's skip record is `<binary>.skipped`, next to `<binary>.out`, the
/// binary's output that the runner keeps.
pub const RECORD_SUFFIX: &str = ".skipped";

/// Skips the calling test (returns true) when `tool` is not on PATH, saying what to install.
pub fn skip_unless_installed(tool: &str, test: &str) -> bool {
    if find_on_path(tool).is_some() {
        return false;
    }
    skip(test, &format!("`{tool}` is not installed ({})", install_hint(tool)));
    true
}

/// Records that the calling test could not run here, and why. The caller returns right after.
///
/// The test is named by libtest's thread name, which is the test's full name (as in cargo's
/// output); `test` is the fallback when the call comes from another thread. Tests skipped for the
/// same reason are grouped in the summary, so `why` must not name the test.
pub fn skip(test: &str, why: &str) {
    let thread = std::thread::current();
    let name = thread.name().filter(|n| *n != "main").unwrap_or(test);
    eprintln!("SKIPPED {name}: {why}");
    if let Some(dir) = std::env::var_os(RUN_DIR_VAR) {
        let record = own_record(Path::new(&dir));
        let line = format!("{name}\t{why}\n");
        // One write per line, in append mode: lines of concurrent tests never interleave.
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&record)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        // An unrecorded skip would be counted as a pass: fail the test instead.
        if let Err(e) = written {
            panic!("cannot record the skip of {name} in {}: {e}", record.display());
        }
    }
}

/// This test binary's skip record in the run directory `dir`.
fn own_record(dir: &Path) -> PathBuf {
    let exe = std::env::current_exe().ok();
    let binary = exe.as_deref().and_then(Path::file_name).map(|n| n.to_string_lossy().into_owned());
    dir.join(format!("{}{RECORD_SUFFIX}", binary.unwrap_or_default()))
}

/// The first executable file named `tool` in a PATH directory (as a shell would find it).
pub fn find_on_path(tool: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|f| f.metadata().map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false))
}

/// What to install for `tool` on Debian or Ubuntu (the distribution `.ci/install-deps` knows).
fn install_hint(tool: &str) -> String {
    let package = match tool {
        "qemu-system-i386" | "qemu-system-x86_64" => "qemu-system-x86",
        "objdump" => "binutils",
        "setpriv" => "util-linux",
        other => other, // gdb, gdbserver, lldb, strace: the package has the program's name
    };
    format!("Debian/Ubuntu: apt-get install {package}")
}
