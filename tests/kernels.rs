//! Loading Multiboot kernels: bounded and fast, and every bad kernel file or option refused with one
//! clear line and status 2.

mod common;

use common::kernel_elf::{peak_rss_of_children_kib, put16, put32, TinyKernel, FILE_SIZE, PHDR_OFF};
use common::minikvm;
use std::time::{Duration, Instant};

fn kernel_file(bytes: &[u8]) -> tempfile::NamedTempFile {
    let f = tempfile::Builder::new().suffix(".elf").tempfile().expect("temp file");
    std::fs::write(f.path(), bytes).expect("write kernel");
    f
}

/// Runs minikvm on `bytes` with `args` before the path; returns (status, stdout, stderr).
fn boot(bytes: &[u8], args: &[&str]) -> (Option<i32>, String, String) {
    let f = kernel_file(bytes);
    let out = minikvm().args(args).arg("--timeout").arg("20").arg(f.path()).output().expect("run minikvm");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

/// A refusal is status 2 and exactly one line, `minikvm: ...`, containing `needle`.
fn assert_refused(bytes: &[u8], args: &[&str], needle: &str) {
    let (status, out, err) = boot(bytes, args);
    assert_eq!(status, Some(2), "expected a refusal mentioning {needle:?}; stdout {out:?}, stderr {err:?}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("minikvm: ") && err.contains(needle), "{needle:?} not in {err:?}");
    assert!(out.is_empty(), "nothing may run: {out:?}");
}

#[test]
fn the_tiny_kernel_boots_and_prints_zero() {
    let (status, out, err) = boot(&TinyKernel::default().bytes(), &[]);
    assert_eq!((status, out.as_str()), (Some(0), "0"), "{err}");
}

/// A 4 KiB file whose segment has 2.5 GiB of bss: fresh guest RAM is already zero, so loading it
/// copies nothing (it used to take 11.8 s and 5 GiB of RSS before the first instruction).
#[test]
fn bss_costs_nothing() {
    let kernel = TinyKernel { memsz: 0xa000_0000, ..Default::default() };
    let start = Instant::now();
    let (status, out, err) = boot(&kernel.bytes(), &["--mem", "3072"]);
    let took = start.elapsed();
    let rss_mib = peak_rss_of_children_kib() / 1024;
    eprintln!("2.5 GiB of bss: {took:?}, peak RSS of this test's minikvm runs {rss_mib} MiB");
    assert_eq!(status, Some(0), "{err}");
    assert_eq!(out, "0", "the last byte of the bss reads as zero");
    assert!(rss_mib < 64, "peak RSS {rss_mib} MiB: bss must not be copied");
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

#[test]
fn overlapping_segments_are_refused() {
    let mut k = TinyKernel::default().bytes();
    // A second PT_LOAD, a copy of the first moved up by 2 KiB: the two overlap by 2 KiB.
    let (first, second) = (PHDR_OFF, PHDR_OFF + 32);
    k.copy_within(first..first + 32, second);
    put32(&mut k, second + 12, 0x10_0800);
    put16(&mut k, 44, 2);
    assert_refused(&k, &[], "overlap");
}

/// A 10 KiB file whose 280 program headers all load 8 MiB at the same address: refused at once, with
/// nothing allocated for them (it used to allocate each segment's 8 MiB, 2.2 GiB in all).
#[test]
fn many_overlapping_big_segments_cost_nothing() {
    let mut k = TinyKernel::default().bytes();
    k.resize(10 << 10, 0);
    let phoff = 0x400;
    for i in 0..280 {
        k.copy_within(PHDR_OFF..PHDR_OFF + 32, phoff + 32 * i);
        put32(&mut k, phoff + 32 * i + 20, 8 << 20); // p_memsz: 8 MiB
    }
    put32(&mut k, 28, phoff as u32);
    put16(&mut k, 44, 280);
    assert_refused(&k, &["--mem", "64"], "overlap");
    let rss_mib = peak_rss_of_children_kib() / 1024;
    assert!(rss_mib < 64, "peak RSS {rss_mib} MiB");
}

#[test]
fn a_segment_beyond_mem_is_refused() {
    let k = TinyKernel { memsz: 64 << 20, ..Default::default() }.bytes();
    assert_refused(&k, &[], "--mem");
    assert_refused(&k, &["--mem", "32"], "--mem");
}

#[test]
fn big_endian_and_non_i386_elfs_are_refused() {
    assert_refused(&TinyKernel { big_endian: true, ..Default::default() }.bytes(), &[], "big-endian");
    let mut arm = TinyKernel::default().bytes();
    put16(&mut arm, 18, 40); // EM_ARM
    assert_refused(&arm, &[], "EM_386");
    let mut elf64 = TinyKernel::default().bytes();
    elf64[4] = 2; // ELFCLASS64
    let (status, _, err) = boot(&elf64, &[]);
    assert_eq!(status, Some(2), "{err}");
}

/// The Multiboot spec: a boot loader that cannot do what a *required* flag (bits 0-15) asks must
/// refuse the kernel. minikvm does bit 0 (no modules to align) and bit 1 (memory information);
/// bit 2 (a video mode) and the undefined bits 3-15 are refused. Optional bits (16-31) are not.
#[test]
fn unsupported_required_multiboot_flags_are_refused() {
    for flags in [1 << 0, 1 << 1, (1 << 0) | (1 << 1), 1 << 16, 1 << 31] {
        let (status, out, err) = boot(&TinyKernel { multiboot_flags: flags, ..Default::default() }.bytes(), &[]);
        assert_eq!((status, out.as_str()), (Some(0), "0"), "flags {flags:#x}: {err}");
    }
    let video = TinyKernel { multiboot_flags: 1 << 2, ..Default::default() };
    assert_refused(&video.bytes(), &[], "video mode");
    for bit in 3..16 {
        let k = TinyKernel { multiboot_flags: 1 << bit, ..Default::default() };
        assert_refused(&k.bytes(), &[], "Multiboot header");
    }
}

#[test]
fn options_that_do_not_apply_are_usage_errors() {
    let kernel = kernel_file(&TinyKernel::default().bytes());
    let k = kernel.path().to_str().expect("utf-8 temp path");
    let cases: &[(&[&str], &str)] = &[
        (&["--entry", "0x1000", "hello"], "--entry"),
        (&["--load", "0x2000", "hello"], "--load"),
        (&["--mem", "8", "hello"], "--mem"),
        (&["--mem", "8", "hello", "counter"], "--mem"),
        (&["--entry", "0x100200", k], "--entry"),
        (&["--load", "0x100000", k], "--load"),
    ];
    for (args, needle) in cases {
        let out = minikvm().args(*args).output().expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle) && err.lines().count() == 1, "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?} must not run the guest");
    }
}

#[test]
fn mem_has_a_documented_maximum() {
    let k = TinyKernel::default().bytes();
    assert_refused(&k, &["--mem", "3073"], "3072");
    assert_refused(&k, &["--mem", "1"], "3072");
    let (status, out, err) = boot(&k, &["--mem", "3072"]);
    assert_eq!((status, out.as_str()), (Some(0), "0"), "{err}");
}

/// A file shorter than its headers say, cut at every interesting place.
#[test]
fn truncated_kernels_are_refused() {
    let k = TinyKernel::default().bytes();
    for len in [4, 16, 52, 60, PHDR_OFF + 31, 0x104, 0x10b, 0x1ff, 0x210, FILE_SIZE - 1] {
        let (status, _, err) = boot(&k[..len], &[]);
        assert_eq!(status, Some(2), "cut at {len}: {err}");
        assert_eq!(err.lines().count(), 1, "cut at {len}: {err}");
    }
}
