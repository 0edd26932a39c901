//! MMIO as a guest does it, through the real minikvm: loads and stores to guest-physical addresses
//! no RAM backs leave the guest as MMIO exits and go to the MMIO bus (`src/devices/mmio.rs`). No
//! device of minikvm's is memory-mapped, so every such read must give all ones and every write must
//! vanish, for each access size, and `-vv` must say so in words.
//!
//! A flat guest owns 256 KiB of RAM at 0 (the Mini-KVM ABI): 0x40000 is the first address past it.
//! The guests are written with the encoder in `tests/common/x86.rs`.

mod common;

use common::x86::{guest, Bits, Code};
use std::time::Duration;

/// Where the guest keeps what it read: past its code, inside its RAM.
const BUF: u32 = 0x200;

/// Runs `code` (then a dump of `n` bytes at [`BUF`] and `hlt`) with `-vv`: (stdout, stderr).
fn run(mut code: Code, n: u16) -> (Vec<u8>, String) {
    code.dump(BUF, n).hlt().pad_to(BUF as usize).raw(&[0x55; 8]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mmio.bin");
    std::fs::write(&path, &code.bytes).unwrap();
    let out = common::minikvm().timeout(Duration::from_secs(30)).args(["-vv", "--timeout", "10"]).arg(&path).output();
    let out = out.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    (out.stdout, stderr)
}

#[test]
fn a_real_mode_byte_past_ram_reads_0xff_and_a_write_there_is_dropped() {
    let mut c = guest(Bits::B16);
    c.mov_ax(0x4000).mov_es_ax(); // ES:0 is linear 0x40000, the first byte past the guest's RAM
    c.mov_ax(u32::from(b'A')).mov_moffs(true, 1, true, 0); // mov %al, %es:0 (dropped)
    c.mov_moffs(false, 1, true, 0).mov_moffs(true, 1, false, BUF); // mov %es:0, %al; mov %al, BUF
    let (stdout, stderr) = run(c, 1);
    assert_eq!(stdout, [0xff], "{stderr}");
    assert!(stderr.contains("unclaimed MMIO write of 1 bytes at 0x40000: 0x41"), "{stderr}");
    assert!(stderr.contains("unclaimed MMIO read of 1 bytes at 0x40000"), "{stderr}");
}

#[test]
fn real_mode_word_and_dword_reads_past_ram_read_all_ones() {
    let mut c = guest(Bits::B16);
    c.mov_ax(0xffff).mov_es_ax(); // ES:0x10 is linear 0x100000, above the first MiB
    c.mov_moffs(false, 2, true, 0x10).mov_moffs(true, 2, false, BUF);
    c.mov_moffs(false, 4, true, 0x20).mov_moffs(true, 4, false, BUF + 2);
    let (stdout, stderr) = run(c, 6);
    assert_eq!(stdout, [0xff; 6], "{stderr}");
    assert!(stderr.contains("unclaimed MMIO read of 2 bytes at 0x100000"), "{stderr}");
    assert!(stderr.contains("unclaimed MMIO read of 4 bytes at 0x100010"), "{stderr}");
}

#[test]
fn protected_mode_word_and_dword_reads_high_in_the_address_space_read_all_ones() {
    let mut c = guest(Bits::B32);
    c.mov_moffs(false, 2, false, 0xfec0_0000).mov_moffs(true, 2, false, BUF); // where a PC's IOAPIC is
    c.mov_moffs(false, 4, false, 0xfff0_0000).mov_moffs(true, 4, false, BUF + 2);
    c.mov_ax(0x1234_5678).mov_moffs(true, 4, false, 0xfee0_0000); // a store: dropped
    let (stdout, stderr) = run(c, 6);
    assert_eq!(stdout, [0xff; 6], "{stderr}");
    assert!(stderr.contains("unclaimed MMIO read of 2 bytes at 0xfec00000"), "{stderr}");
    assert!(stderr.contains("unclaimed MMIO read of 4 bytes at 0xfff00000"), "{stderr}");
    assert!(stderr.contains("unclaimed MMIO write of 4 bytes at 0xfee00000: 0x12345678"), "{stderr}");
}
