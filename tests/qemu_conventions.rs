//! Kernels written for `qemu -kernel` run unchanged (README "QEMU conventions"): a Multiboot kernel
//! that switches to long mode itself, reads CPUID, the MSRs such kernels touch and fw_cfg, and ends
//! through the ISA debug-exit port; debug-exit's status and how it ranks among several vCPUs; a
//! kernel linked over the Multiboot info block's usual page. The kernels are
//! `guest/test-kernels/*.S`. Long mode runs on this host's KVM and in the nested lane.

mod common;

use std::process::Command;

const LONG_MODE_QEMU: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/test-kernels/long-mode-qemu.elf"));
const DEBUG_EXIT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/test-kernels/debug-exit.elf"));
const LOW_LINK: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/test-kernels/low-link.elf"));

/// What `long-mode-qemu` prints after its hypervisor line, on a machine of `ram` bytes and 1 CPU.
fn long_mode_report(ram: u64) -> String {
    format!(
        "long mode, EFER 0000000000000500\nPAT 0007040600070406\nAPIC base 00000000fee00900\n\
         MISC_ENABLE 0000000000000001\nTSC runs\nfw_cfg signature QEMU\nfw_cfg CPUs 0000000000000001\n\
         fw_cfg RAM {ram:016x}\n"
    )
}

/// Writes `bytes` to NAME in a fresh directory (kept alive by the guard).
fn file(name: &str, bytes: &[u8]) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).expect("write the file");
    (dir, path.to_string_lossy().into_owned())
}

/// Runs minikvm with `args` and returns (status, stdout, stderr).
fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let out = common::minikvm().args(args).timeout(std::time::Duration::from_secs(30)).output().expect("minikvm runs");
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn a_kernel_entering_long_mode_itself_finds_cpuid_msrs_and_fw_cfg() {
    if common::skip_unless("longmode", "a_kernel_entering_long_mode_itself_finds_cpuid_msrs_and_fw_cfg") {
        return;
    }
    let (_d, kernel) = file("long-mode-qemu.elf", LONG_MODE_QEMU);
    let (status, out, err) = run(&[&kernel]);
    assert_eq!(out, format!("hypervisor: minikvm\n{}", long_mode_report(32 << 20)), "stderr: {err}");
    assert_eq!(status, Some(0), "every check passed: debug-exit 0; stderr: {err}");
    // fw_cfg's RAM size follows --mem.
    let (status, out, err) = run(&["--mem", "200", &kernel]);
    assert_eq!(out, format!("hypervisor: minikvm\n{}", long_mode_report(200 << 20)), "stderr: {err}");
    assert_eq!(status, Some(0), "stderr: {err}");
}

#[test]
fn the_same_kernel_reads_the_same_on_qemu() {
    if common::in_nested_lane() {
        common::skip("the_same_kernel_reads_the_same_on_qemu", "there is no QEMU inside the nested lane");
        return;
    }
    if common::skip_unless_installed("qemu-system-x86_64", "the_same_kernel_reads_the_same_on_qemu") {
        return;
    }
    let (_d, kernel) = file("long-mode-qemu.elf", LONG_MODE_QEMU);
    let out = Command::new("qemu-system-x86_64")
        .args(["-kernel", &kernel, "-display", "none", "-nodefaults", "-no-reboot", "-m", "32"])
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=4", "-monitor", "none", "-serial", "stdio"])
        .output()
        .expect("qemu-system-x86_64 runs (Debian: apt-get install qemu-system-x86)");
    let text = String::from_utf8_lossy(&out.stdout);
    let (first, rest) = text.split_once('\n').unwrap_or_default();
    assert!(first.starts_with("hypervisor: ") && first != "hypervisor: minikvm", "QEMU's own signature: {first}");
    assert_eq!(rest, long_mode_report(32 << 20), "fw_cfg and the MSRs read as on minikvm");
    // Only the signature check failed (mask 1): QEMU exits with (1 << 1) | 1.
    assert_eq!(out.status.code(), Some(3), "stderr: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_non_zero_debug_exit_ends_with_status_9_naming_the_whole_value() {
    let (_d, kernel) = file("debug-exit.elf", DEBUG_EXIT);
    let (status, out, err) = run(&[&kernel]);
    assert_eq!(out, "failing on purpose\n", "the write ended the run: stderr: {err}");
    assert_eq!(status, Some(9), "stderr: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {err}");
    assert!(
        lines[0].starts_with("minikvm: ") && lines[0].contains("wrote 0x100 to the ISA debug-exit port 0xf4"),
        "{err}"
    );
}

/// A real-mode flat guest: `mov $v, %ax; out %ax, $0xf4` (the devices are on every machine's bus).
fn flat_debug_exit(v: u16) -> Vec<u8> {
    let [lo, hi] = v.to_le_bytes();
    vec![0xb8, lo, hi, 0xe7, 0xf4, 0xf4] // mov ax, v; out 0xf4, ax; hlt
}

#[test]
fn debug_exit_ranks_below_a_fault_and_above_a_stop() {
    let (_d1, zero) = file("zero.bin", &flat_debug_exit(0));
    let (_d2, five) = file("five.bin", &flat_debug_exit(0x105));
    let (status, _, err) = run(&[&zero]);
    assert_eq!(status, Some(0), "debug-exit 0 is a normal end: {err}");
    let (status, out, err) = run(&[&five, "hello"]);
    // Two guests: their output is tagged lines (README, "Several guests").
    assert_eq!((status, out.as_str()), (Some(9), "hello | Hello, KVM!\n"), "the other guest runs to its end: {err}");
    assert!(err.contains("`five` (vCPU 0) wrote 0x105"), "{err}");
    let (status, _, err) = run(&[&five, "bad-hypercall"]);
    assert_eq!(status, Some(1), "a fault ranks above the guest's own verdict: {err}");
    let (status, _, err) = run(&["--timeout", "0.5", &five, "spin"]);
    assert_eq!(status, Some(9), "the verdict ranks above a timeout: {err}");
}

#[test]
fn a_kernel_linked_over_0x9000_gets_its_info_block_elsewhere() {
    let (_d, kernel) = file("low-link.elf", LOW_LINK);
    let (status, out, err) = run(&[&kernel]);
    // (QEMU boots this kernel too, but puts its info block at 0x9000 regardless, where the kernel's
    // data lands: the kernel reads a garbage loader name there.)
    assert_eq!(out, "minikvm\ninfo block outside the kernel\n", "stderr: {err}");
    assert_eq!(status, Some(0), "stderr: {err}");
}

const RING3_SYSCALL: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/test-kernels/ring3-syscall.elf"));

#[test]
fn ring3_syscall_runs_where_the_probe_says_and_is_explained_where_not() {
    let (_d, kernel) = file("ring3-syscall.elf", RING3_SYSCALL);
    let (status, out, err) = run(&[&kernel]);
    if common::host_can("syscall") {
        assert_eq!(out, "syscall reached ring 0 twice, sysret returned to ring 3\n", "stderr: {err}");
        assert_eq!(status, Some(0), "stderr: {err}");
    } else {
        // This host: a report that names the probes instead of a bare triple fault (and no word
        // about 32-bit paging, which a 64-bit kernel does not use).
        assert_eq!((status, out.as_str()), (Some(1), ""), "stderr: {err}");
        assert!(err.contains("triple fault") && err.contains("at CS:RIP 0023:"), "a fault in ring 3: {err}");
        assert!(err.contains("`minikvm doctor` probes") && err.contains("`syscall`"), "names the probe: {err}");
        assert!(!err.contains("32-bit paging"), "{err}");
    }
}

#[test]
fn ring3_syscall_runs_on_qemu() {
    if common::in_nested_lane() {
        common::skip("ring3_syscall_runs_on_qemu", "there is no QEMU inside the nested lane");
        return;
    }
    if common::skip_unless_installed("qemu-system-x86_64", "ring3_syscall_runs_on_qemu") {
        return;
    }
    let (_d, kernel) = file("ring3-syscall.elf", RING3_SYSCALL);
    let out = Command::new("qemu-system-x86_64")
        .args(["-kernel", &kernel, "-display", "none", "-nodefaults", "-no-reboot", "-m", "32"])
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=4", "-monitor", "none", "-serial", "stdio"])
        .output()
        .expect("qemu-system-x86_64 runs");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "syscall reached ring 0 twice, sysret returned to ring 3\n");
    assert_eq!(out.status.code(), Some(1), "debug-exit 0 is QEMU's status (0 << 1) | 1");
}
