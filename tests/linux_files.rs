//! `--linux`: every kernel file or option minikvm cannot boot is refused before any VM exists, with
//! one line and status 2 — so these run on any host. (Booting a real kernel to a shell is
//! tests/linux.rs, in the nested lane.)

mod common;

use common::minikvm;

/// A bzImage header as a 2.15 kernel has it (1 setup sector), then `kernel` bytes.
fn bzimage(version: u16, kernel: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 1024];
    f[0x1f1] = 1; // setup_sects
    f[0x1fe..0x200].copy_from_slice(&0xaa55u16.to_le_bytes());
    f[0x202..0x206].copy_from_slice(b"HdrS");
    f[0x206..0x208].copy_from_slice(&version.to_le_bytes());
    f[0x211] = 1; // loadflags: loaded high
    f[0x22c..0x230].copy_from_slice(&0x7fff_ffffu32.to_le_bytes()); // initrd_addr_max
    f[0x236..0x238].copy_from_slice(&1u16.to_le_bytes()); // xloadflags: 64-bit entry
    f[0x238..0x23c].copy_from_slice(&255u32.to_le_bytes()); // cmdline_size
    f[0x258..0x260].copy_from_slice(&0x100_0000u64.to_le_bytes()); // pref_address: 16 MiB
    f[0x260..0x264].copy_from_slice(&0x300_0000u32.to_le_bytes()); // init_size: 48 MiB
    f.extend_from_slice(kernel);
    f
}

fn file(bytes: &[u8]) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(f.path(), bytes).expect("write");
    f
}

/// Runs `minikvm --linux FILE ARGS`: a refusal is status 2 and one line `minikvm: ...` with `needle`.
fn assert_refused(kernel: &[u8], args: &[&str], needle: &str) {
    let k = file(kernel);
    let out = minikvm().arg("--linux").arg(k.path()).args(args).arg("--timeout").arg("20").output().expect("run");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(2), "expected a refusal with {needle:?}; stderr {stderr:?}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("minikvm: ") && stderr.contains(needle), "{needle:?} not in {stderr:?}");
    assert!(stdout.is_empty(), "nothing may run: {stdout:?}");
}

#[test]
fn a_file_that_is_not_a_bzimage_is_refused() {
    assert_refused(&[0x90; 4096], &[], "not a Linux bzImage: no boot protocol header");
    let mut elf = b"\x7fELF\x02\x01\x01".to_vec();
    elf.resize(8192, 0);
    assert_refused(&elf, &[], "not a Linux bzImage");
    assert_refused(&[0xf4; 100], &[], "too short for the boot protocol's setup header");
}

#[test]
fn an_old_boot_protocol_is_refused() {
    assert_refused(&bzimage(0x020b, &[0x90; 64]), &[], "boot protocol 2.11 is too old: minikvm needs 2.12");
    assert_refused(&bzimage(0x0200, &[0x90; 64]), &[], "boot protocol 2.00 is too old");
}

#[test]
fn a_truncated_or_32_bit_kernel_is_refused() {
    let mut k = bzimage(0x020f, &[0x90; 64]);
    k[0x1f1] = 200;
    assert_refused(&k, &[], "truncated");
    let mut k = bzimage(0x020f, &[0x90; 64]);
    k[0x236] = 0;
    assert_refused(&k, &[], "no 64-bit entry point");
}

#[test]
fn too_little_ram_a_long_command_line_and_a_bad_initrd_are_refused() {
    let k = bzimage(0x020f, &[0x90; 64]);
    assert_refused(&k, &["--mem", "32"], "needs RAM up to 0x4000000 (64 MiB");
    // 256 bytes that choose their reboot method, so minikvm adds nothing (see boot::linux::command_line).
    let long = format!("reboot=k {}", "x".repeat(247));
    assert_refused(&k, &["--cmdline", &long], "256 bytes, and this kernel takes at most 255");
    let dir = tempfile::tempdir().expect("dir");
    assert_refused(&k, &["--initrd", &dir.path().to_string_lossy()], "is a directory");
    let big = file(&vec![0u8; 3 << 20]);
    assert_refused(&k, &["--mem", "2", "--initrd", &big.path().to_string_lossy()], "more than the guest's 2 MiB");
    // Sparse: its size is what matters, and the nested lane's RAM disk has no room for 200 MiB.
    let initrd = tempfile::NamedTempFile::new().expect("temp file");
    initrd.as_file().set_len(200 << 20).expect("set_len");
    assert_refused(&k, &["--initrd", &initrd.path().to_string_lossy()], "the initrd (209715200 bytes) does not fit");
}

#[test]
fn linux_options_need_linux() {
    for args in [&["--initrd", "x", "hello"][..], &["--cmdline", "quiet", "hello"]] {
        let out = minikvm().args(args).output().expect("run");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("--linux"), "{args:?}");
    }
    let out = minikvm().args(["--linux", "x", "hello"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2), "--linux runs alone");
}
