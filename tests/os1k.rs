//! The 1K OS (`os-1k/`), its 32-bit flavour, cross-checked: every case of `common/os1k.rs` runs
//! twice with the same typed input and the same expected output, once under QEMU
//! (`qemu-system-i386`: the reference) and once under minikvm. When both pass, minikvm runs a real
//! 32-bit paging kernel with interrupts the way a PC does. The minikvm tests need a KVM that can
//! run 32-bit paging and skip themselves elsewhere (see `minikvm doctor`).

mod common;
#[macro_use]
#[path = "common/os1k.rs"]
mod os1k;

use std::path::{Path, PathBuf};

os1k_suite!(os1k::I386);

/// The kernel file itself, as a Multiboot loader (minikvm, QEMU, GRUB) needs it: runs everywhere.
#[test]
fn os1k_kernel_is_multiboot_elf32() {
    os1k::assert_multiboot_elf32(&os1k::I386);
}

/// The seed-compatibility guest: build.rs assembles guest/seed/flat-hello.S, linked at 0x80001000,
/// into a flat binary beside the other guests.
fn seed_binary() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_minikvm")).parent().expect("target dir").join("guests/seed/flat-hello.bin")
}

/// `minikvm --paging --verbose FILE`, as the C project's usage text writes it.
#[test]
fn minikvm_seed_paging_as_a_flag() {
    if common::skip_unless("paging", "minikvm_seed_paging_as_a_flag") {
        return;
    }
    let output = common::minikvm().args(["--paging", "--verbose"]).arg(seed_binary()).output().expect("minikvm runs");
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(String::from_utf8_lossy(&output.stdout).contains("seed ok"), "stderr: {err}");
    assert!(output.status.success(), "minikvm failed ({})\nstderr: {err}", output.status);
}

/// `minikvm --paging FILE`, the seed's compatibility mode (shared ABI §4): a flat binary entered
/// at 0x80001000 with paging already on.
#[test]
fn minikvm_seed_paging() {
    if common::skip_unless("paging", "minikvm_seed_paging") {
        return;
    }
    let output = common::minikvm().arg("--paging").arg(seed_binary()).output().expect("minikvm runs");
    let out = String::from_utf8_lossy(&output.stdout);
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(out.contains("seed ok"), "no \"seed ok\" in:\n{out}\nstderr: {err}");
    assert!(output.status.success(), "minikvm failed ({})\nstderr: {err}", output.status);
}
