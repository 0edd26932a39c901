//! The fuzzing harness's shared parts: seeds, case counts, saving a failing input, the closing count.
//!
//! Every harness (`tests/fuzz_guests.rs`, `tests/fuzz_kernels.rs`, `tests/fuzz_gdb.rs`) is seeded and
//! reproducible: a run prints its seed, a failure prints the seed and the case number and saves the
//! input under `target/fuzz-failures/`. `cargo test` runs a bounded number of cases; a long run is
//!
//! ```sh
//! MINIKVM_FUZZ_CASES=100000 cargo test --release --test fuzz_guests -- --nocapture
//! ```
//!
//! and `MINIKVM_FUZZ_SEED=N` replays one run.
#![allow(dead_code)]

use std::path::PathBuf;

/// The exit statuses minikvm documents (README, "Exit status"). A fuzz case that ends with any other
/// status, or by a signal, or with "panicked" on stderr, is a failure.
pub const DOCUMENTED_STATUSES: &[i32] = &[0, 1, 2, 3, 4, 5, 6, 7, 9];

/// One harness's run: its name, seed and the number of cases to try.
pub struct FuzzRun {
    pub name: &'static str,
    pub seed: u64,
    pub cases: usize,
    pub rng: fastrand::Rng,
}

impl FuzzRun {
    /// `MINIKVM_FUZZ_SEED` and `MINIKVM_FUZZ_CASES` override the harness's defaults.
    pub fn new(name: &'static str, default_seed: u64, default_cases: usize) -> FuzzRun {
        let seed = env_number("MINIKVM_FUZZ_SEED").unwrap_or(default_seed);
        let cases = env_number("MINIKVM_FUZZ_CASES").map(|n| n as usize).unwrap_or(default_cases);
        eprintln!("fuzz {name}: seed {seed:#x}, {cases} cases (MINIKVM_FUZZ_SEED / MINIKVM_FUZZ_CASES to change)");
        FuzzRun { name, seed, cases, rng: fastrand::Rng::with_seed(seed) }
    }

    /// A generator for case `i` alone, so any case can be replayed without the ones before it.
    pub fn case_rng(&self, i: usize) -> fastrand::Rng {
        fastrand::Rng::with_seed(self.seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    /// Saves a failing input and returns its path, for the failure message.
    pub fn save_failure(&self, case: usize, ext: &str, bytes: &[u8]) -> PathBuf {
        let dir = failures_dir();
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join(format!("{}-seed{:x}-case{case}.{ext}", self.name, self.seed));
        let _ = std::fs::write(&path, bytes);
        path
    }

    /// The closing line: how many cases ran, and how many failed. Panics (fails the test) on failures,
    /// listing each.
    pub fn finish(&self, ran: usize, failures: &[String]) {
        eprintln!("fuzz {}: {ran} cases run, {} failures, seed {:#x}", self.name, failures.len(), self.seed);
        assert!(
            failures.is_empty(),
            "fuzz {}: {} of {ran} cases failed (seed {:#x}):\n{}",
            self.name,
            failures.len(),
            self.seed,
            failures.join("\n")
        );
    }
}

/// Whether a finished minikvm process ended the way the containment promise allows.
pub fn contained(status: &std::process::ExitStatus, stderr: &[u8]) -> Result<(), String> {
    let stderr = String::from_utf8_lossy(stderr);
    if stderr.contains("panicked") {
        return Err(format!("panicked: {}", stderr.trim_end()));
    }
    match status.code() {
        Some(code) if DOCUMENTED_STATUSES.contains(&code) => Ok(()),
        Some(code) => Err(format!("undocumented status {code}: {}", stderr.trim_end())),
        None => Err(format!("killed by a signal ({status}): {}", stderr.trim_end())),
    }
}

fn failures_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("fuzz-failures")
}

fn env_number(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}
