//! Fuzzing `--linux`: mutations of a small bzImage (the boot protocol's setup header with every
//! field the loader reads, then a few bytes of "kernel" at the 64-bit entry), with random `--mem`,
//! `--cmdline` lengths and initrd sizes. Each run must end within its timeout with a documented
//! status and no panic, a refusal must be one `minikvm:` line, and no run may grow past a bound:
//! a kernel file must not make minikvm allocate what its header claims.
//!
//! ```sh
//! MINIKVM_FUZZ_CASES=2000 cargo test --release --test fuzz_bzimage -- --nocapture   # a long run
//! MINIKVM_FUZZ_SEED=0x... cargo test --test fuzz_bzimage -- --nocapture            # replay one
//! ```

mod common;

use common::fuzz::{contained, FuzzRun};
use common::kernel_elf::peak_rss_of_children_kib;
use std::collections::BTreeMap;
use std::time::Duration;

/// Each run's `--timeout` (seconds), and how long past it a run may take before it counts as a hang.
const TIMEOUT_SECS: &str = "0.3";
const PATIENCE: Duration = Duration::from_secs(15);
/// Peak resident set allowed above the guest RAM a run may touch (`--mem`).
const RSS_BOUND_MIB: i64 = 64;

/// The setup header's fields the loader reads: (offset, size).
const HEADER_FIELDS: [(usize, usize); 12] = [
    (0x1f1, 1), // setup_sects
    (0x1fe, 2), // boot flag 0xaa55
    (0x202, 4), // "HdrS"
    (0x206, 2), // version
    (0x211, 1), // loadflags
    (0x214, 4), // code32_start
    (0x22c, 4), // initrd_addr_max
    (0x230, 4), // kernel_alignment
    (0x236, 2), // xloadflags
    (0x238, 4), // cmdline_size
    (0x258, 8), // pref_address
    (0x260, 4), // init_size
];

/// A 2.15 bzImage with one setup sector, loaded high, with a 64-bit entry: 0x200 bytes of
/// protected-mode kernel in front of the 64-bit entry, which halts.
fn base() -> Vec<u8> {
    let mut f = vec![0u8; 1024];
    f[0x1f1] = 1;
    f[0x1fe..0x200].copy_from_slice(&0xaa55u16.to_le_bytes());
    f[0x202..0x206].copy_from_slice(b"HdrS");
    f[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
    f[0x211] = 1;
    f[0x22c..0x230].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
    f[0x230..0x234].copy_from_slice(&0x20_0000u32.to_le_bytes());
    f[0x236..0x238].copy_from_slice(&1u16.to_le_bytes());
    f[0x238..0x23c].copy_from_slice(&255u32.to_le_bytes());
    f[0x258..0x260].copy_from_slice(&0x100_0000u64.to_le_bytes());
    f[0x260..0x264].copy_from_slice(&0x100_0000u32.to_le_bytes());
    f.extend_from_slice(&[0xf4; 0x400]);
    f
}

/// One mutation of the file; returns its name for the closing counts.
fn mutate(rng: &mut fastrand::Rng, f: &mut Vec<u8>) -> &'static str {
    match rng.u8(..5) {
        0 => {
            let (at, size) = HEADER_FIELDS[rng.usize(..HEADER_FIELDS.len())];
            let edge = [0u64, 1, 0xff, 0xffff, 0x7fff_ffff, 0xffff_ffff, u64::MAX, rng.u64(..)][rng.usize(..8)];
            f[at..at + size].copy_from_slice(&edge.to_le_bytes()[..size]);
            "header field, edge value"
        }
        1 => {
            let at = rng.usize(0x1f1..0x268);
            f[at] = rng.u8(..);
            "header byte"
        }
        2 => {
            f.truncate(rng.usize(..f.len()));
            "truncated"
        }
        3 => {
            let from = 0x400 + rng.usize(..0x400);
            let end = (from + rng.usize(1..64)).min(f.len());
            rng.fill(&mut f[from..end]);
            "random kernel code"
        }
        _ => {
            f.resize(f.len() + rng.usize(..1 << 20), rng.u8(..));
            "grown"
        }
    }
}

#[test]
fn mutated_bzimages_are_contained() {
    let run = FuzzRun::new("bzimage", 0x627a_696d_6167, 120);
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut by_status, mut by_mutation) = (BTreeMap::<String, usize>::new(), BTreeMap::<&str, usize>::new());
    let mut failures = Vec::new();
    let mut peak_mib = peak_rss_of_children_kib() / 1024;
    for case in 0..run.cases {
        let mut rng = run.case_rng(case);
        let mut kernel = base();
        let mutation = mutate(&mut rng, &mut kernel);
        *by_mutation.entry(mutation).or_default() += 1;
        let kernel_path = dir.path().join(format!("case{case}.bzImage"));
        std::fs::write(&kernel_path, &kernel).expect("write kernel");
        let initrd_path = dir.path().join(format!("case{case}.initrd"));
        std::fs::write(&initrd_path, vec![0u8; rng.usize(..1 << 16)]).expect("write initrd");
        let mem = [32u64, 64, 64, 256][rng.usize(..4)];
        let cmdline = "x".repeat([0, 10, 10, 200, 4096][rng.usize(..5)]);
        let out = common::minikvm()
            .args(["--timeout", TIMEOUT_SECS, "--mem", &mem.to_string(), "--linux"])
            .arg(&kernel_path)
            .arg("--initrd")
            .arg(&initrd_path)
            .args(["--cmdline", &cmdline])
            .timeout(PATIENCE)
            .output()
            .expect("minikvm runs");
        let status = out.status.code().map_or("signal (hang?)".to_string(), |c| c.to_string());
        *by_status.entry(status).or_default() += 1;
        let stderr = String::from_utf8_lossy(&out.stderr);
        let mut verdict = contained(&out.status, &out.stderr);
        if out.status.code() == Some(2) && (stderr.lines().count() != 1 || !stderr.starts_with("minikvm: ")) {
            verdict = Err(format!("a refusal must be one `minikvm:` line: {stderr:?}"));
        }
        let rss = peak_rss_of_children_kib() / 1024;
        if rss > RSS_BOUND_MIB + mem as i64 && rss > peak_mib {
            verdict = verdict.and(Err(format!("peak RSS {rss} MiB")));
        }
        peak_mib = peak_mib.max(rss);
        if let Err(why) = verdict {
            let saved = run.save_failure(case, "bzImage", &kernel);
            failures.push(format!("case {case} ({mutation}, --mem {mem}): {why}; saved {}", saved.display()));
        }
    }
    eprintln!("fuzz bzimage: by status {by_status:?}");
    eprintln!("fuzz bzimage: by mutation {by_mutation:?}");
    eprintln!("fuzz bzimage: peak RSS of any run {peak_mib} MiB (bound {RSS_BOUND_MIB} + --mem)");
    run.finish(run.cases, &failures);
}
