//! The 1K OS on x86-64 (`os-1k/arch/x86_64/`), cross-checked like the 32-bit one: every case of
//! `common/os1k.rs` — the same programs, the same typed input, the same expected output — runs
//! under QEMU (`qemu-system-x86_64 -kernel`, a software CPU: the reference) and under minikvm.
//!
//! Under minikvm the sessions that start no program (the boot and the menu, an unknown choice)
//! need only long mode, and run on this project's own machines; every session that runs a
//! program needs ring 3 making system calls in long mode (the `usercall` probe), which those
//! machines' KVM lacks: those run in the nested lane and on real hardware.

mod common;
#[macro_use]
#[path = "common/os1k.rs"]
mod os1k;

use std::path::Path;

os1k_suite!(os1k::X86_64);

#[test]
fn os1k64_kernel_is_multiboot_elf32() {
    os1k::assert_multiboot_elf32(&os1k::X86_64);
}

/// The ELF64 build.rs linked, whose symbols gdb reads: the kernel lives in the top 2 GiB.
#[test]
fn os1k64_symbols_are_an_elf64_in_the_top_2_gib() {
    let exe = Path::new(env!("CARGO_BIN_EXE_minikvm"));
    let elf = exe.parent().expect("target dir").join("guests/kernel64-symbols.elf");
    let image = std::fs::read(&elf).unwrap_or_else(|e| panic!("{}: {e}", elf.display()));
    assert_eq!(&image[..5], b"\x7fELF\x02", "not a 64-bit ELF file");
    assert_eq!(u16::from_le_bytes([image[18], image[19]]), 62, "not EM_X86_64");
    let out = std::process::Command::new("nm").arg(&elf).output().expect("nm runs (GNU binutils)");
    let symbols = String::from_utf8_lossy(&out.stdout);
    let address = |name: &str| {
        let line = symbols.lines().find(|l| l.ends_with(&format!(" {name}"))).unwrap_or_else(|| panic!("no {name}"));
        u64::from_str_radix(line.split_whitespace().next().unwrap(), 16).unwrap()
    };
    assert_eq!(address("kernel_main") >> 31, 0x1_ffff_ffff, "kernel_main is not in the top 2 GiB");
    assert_eq!(address("user_start") >> 22, 1, "the user programs run at 0x400000");
}

/// Where the host runs long mode but not ring-3 system calls (this project's own machines), a
/// program's `int $0x80` faults in ring 3: the kernel must kill that program and carry on, as it
/// does for any faulting program, rather than stop. Skipped where system calls work.
#[test]
fn minikvm_a_program_whose_system_call_faults_is_killed_and_the_shell_lives_on() {
    let test = "minikvm_a_program_whose_system_call_faults_is_killed_and_the_shell_lives_on";
    if common::skip_unless("longmode", test) {
        return;
    }
    if common::host_can("usercall") {
        common::skip(test, "this host's KVM runs ring-3 system calls (the program cases cover it)");
        return;
    }
    let output = common::minikvm()
        .current_dir(std::env::temp_dir())
        .env("MINIKVM_NO_LAB", "1") // this host's fault is the point, even in `.ci/run`'s lab step
        .args(["--eof-grace", "60", "os-1k64"])
        .write_stdin("1\n0\n")
        .output()
        .expect("minikvm runs");
    let out = String::from_utf8_lossy(&output.stdout).replace('\r', "");
    let err = String::from_utf8_lossy(&output.stderr);
    let after = out.split("choice> 1\n").nth(1).unwrap_or_else(|| panic!("no choice 1 in:\n{out}\n{err}"));
    assert!(after.starts_with("\n[killed: "), "the program was not killed:\n{out}");
    assert!(after.contains(", rip=0x004"), "it died in its own code (the user image at 0x400000):\n{out}");
    assert!(after.contains(os1k::MENU) && after.ends_with("choice> 0\n1K OS: power off\n"), "{out}");
    assert!(output.status.success(), "minikvm failed ({})\nstderr: {err}", output.status);
}
