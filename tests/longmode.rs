//! 64-bit flat guests (`--long-mode`, shared ABI §1b): entered at RIP 0 in long mode with
//! minikvm's identity-mapped page tables. Long mode runs on this host's KVM and in the nested
//! lane, so these tests run on both (each asks the `longmode` probe first).

mod common;

use std::path::PathBuf;

/// The 64-bit guest build.rs assembled from guest/hello64.S.
fn hello64_bin() -> PathBuf {
    let bin = common::minikvm_bin().parent().expect("target dir").join("guests/hello64.bin");
    assert!(bin.exists(), "{} is missing: `cargo build` assembles guest/hello64.S", bin.display());
    bin
}

/// Runs minikvm with `args` and returns (status, stdout, stderr).
fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let out = common::minikvm().args(args).output().expect("minikvm runs");
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// Writes `bytes` to a file named NAME.bin in a fresh directory (kept alive by the guard).
fn guest_file(name: &str, bytes: &[u8]) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join(format!("{name}.bin"));
    std::fs::write(&path, bytes).expect("write the guest");
    (dir, path.to_string_lossy().into_owned())
}

#[test]
fn builtin_hello64_prints_its_line_and_exits_0() {
    if common::skip_unless("longmode", "builtin_hello64_prints_its_line_and_exits_0") {
        return;
    }
    // By name: minikvm knows the built-in guest is a 64-bit one.
    let (status, out, err) = run(&["hello64"]);
    assert_eq!(out, "Hello from 64-bit!\n", "stderr: {err}");
    assert_eq!(status, Some(0), "stderr: {err}");
    // And as the C project runs it: --long-mode with the built-in name.
    let (status, out, err) = run(&["--long-mode", "hello64"]);
    assert_eq!((status, out.as_str()), (Some(0), "Hello from 64-bit!\n"), "stderr: {err}");
}

#[test]
fn hello64_given_as_a_file_runs_the_same() {
    if common::skip_unless("longmode", "hello64_given_as_a_file_runs_the_same") {
        return;
    }
    let bin = hello64_bin();
    let (status, out, err) = run(&["--long-mode", bin.to_str().unwrap()]);
    assert_eq!((status, out.as_str()), (Some(0), "Hello from 64-bit!\n"), "stderr: {err}");
}

/// A hand-assembled guest that checks its own starting state and reports through both output
/// paths: the UART (COM1) and the PUTCHAR hypercall, then ends with `hlt`.
#[test]
fn a_file_guest_sees_64_bit_registers_the_uart_and_hlt() {
    if common::skip_unless("longmode", "a_file_guest_sees_64_bit_registers_the_uart_and_hlt") {
        return;
    }
    #[rustfmt::skip]
    let code = [
        0x48, 0xb8, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, // movabs $0x1122334455667788,%rax
        0x48, 0xc1, 0xe8, 0x38,                                     // shr $56,%rax: only a 64-bit register keeps 0x11
        0x3c, 0x11,                                                 // cmp $0x11,%al
        0x75, 0x14,                                                 // jne bad
        0xb0, 0x55,                                                 // mov $'U',%al
        0x66, 0xba, 0xf8, 0x03,                                     // mov $0x3f8,%dx
        0xee,                                                       // out %al,(%dx): the UART
        0x66, 0xba, 0x00, 0x05,                                     // mov $0x500,%dx
        0xb3, 0x48,                                                 // mov $'H',%bl
        0xb0, 0x01,                                                 // mov $1,%al: PUTCHAR
        0xee,                                                       // out %al,(%dx)
        0xb3, 0x0a,                                                 // mov $'\n',%bl
        0xee,                                                       // out %al,(%dx)
        0xf4,                                                       // hlt: the end
        // bad:
        0x0f, 0x0b,                                                 // ud2
    ];
    let (_dir, path) = guest_file("wide", &code);
    let (status, out, err) = run(&["--long-mode", &path]);
    assert_eq!((status, out.as_str()), (Some(0), "UH\n"), "stderr: {err}");
}

#[test]
fn a_fault_is_reported_with_64_bit_registers() {
    if common::skip_unless("longmode", "a_fault_is_reported_with_64_bit_registers") {
        return;
    }
    // movabs $0xdeadbeefcafe,%r15 ; ud2 — there is no IDT, so the #UD ends in a triple fault.
    let code = [0x49, 0xbf, 0xfe, 0xca, 0xef, 0xbe, 0xad, 0xde, 0x00, 0x00, 0x0f, 0x0b];
    let (_dir, path) = guest_file("undefined", &code);
    let (status, out, err) = run(&["--long-mode", &path]);
    assert_eq!(status, Some(1), "a triple fault is a guest fault: {err}");
    assert_eq!(out, "");
    assert!(err.contains("guest `undefined` (vCPU 0) stopped: triple fault"), "{err}");
    if !err.contains("power-on values") {
        // KVM on Intel VT-x (and this host's) keeps the state the CPU faulted in.
        assert!(err.contains("at CS:RIP 0008:000000000000000a"), "{err}");
        assert!(err.contains("R15=0000deadbeefcafe"), "{err}");
        assert!(err.contains("CR3=00000000001fd000"), "minikvm's PML4 for 2 MiB of RAM: {err}");
        assert!(err.contains("EFER=500"), "LME and LMA: {err}");
    }
}

#[test]
fn the_stack_and_tables_follow_mem() {
    if common::skip_unless("longmode", "the_stack_and_tables_follow_mem") {
        return;
    }
    // Pushes a value and reads it back from where RSP said: the stack lies right below the
    // tables, which sit at the top of RAM (with --mem 8: 8 MiB - 16 KiB = 0x7fc000).
    #[rustfmt::skip]
    let code = [
        0x48, 0x89, 0xe0,                               // mov %rsp,%rax
        0x48, 0x3d, 0x00, 0xc0, 0x7f, 0x00,             // cmp $0x7fc000,%rax
        0x75, 0x12,                                     // jne bad
        0x6a, 0x42,                                     // push $0x42
        0x48, 0x8b, 0x1c, 0x25, 0xf8, 0xbf, 0x7f, 0x00, // mov 0x7fbff8,%rbx: read it back, by address
        0x66, 0xba, 0x00, 0x05,                         // mov $0x500,%dx
        0xb0, 0x01,                                     // mov $1,%al: PUTCHAR of BL
        0xee,                                           // out %al,(%dx)
        0xf4,                                           // hlt
        0x0f, 0x0b,                                     // bad: ud2
    ];
    let (_dir, path) = guest_file("stack", &code);
    let (status, out, err) = run(&["--mem", "8", "--long-mode", &path]);
    assert_eq!((status, out.as_str()), (Some(0), "B"), "RSP or the identity map is not where the README says: {err}");
}

#[test]
fn bad_input_gets_one_line_and_status_2() {
    let (_empty_dir, empty) = guest_file("empty", b"");
    let (_big_dir, big) = guest_file("big", &vec![0x90; (2 << 20) - 0x3000]);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--long-mode", &empty], "the file is empty"),
        (vec!["--long-mode", &big], "do not fit below minikvm's page tables at 0x1fc000 (2 MiB of RAM; use --mem"),
        (vec!["--long-mode", "/nonexistent/guest.bin"], "no such file"),
        (vec!["--long-mode", "hello64", "hello"], "cannot be used with"),
        (vec!["--mem", "1", "--long-mode", "hello64"], "--mem must be between"),
        (vec!["hello", "hello64"], "`hello64` is a 64-bit guest: it runs alone"),
    ];
    for (args, want) in cases {
        let (status, out, err) = run(&args);
        assert_eq!(status, Some(2), "{args:?}: {err}");
        assert_eq!(out, "", "{args:?}");
        assert_eq!(err.lines().count(), 1, "{args:?}: one line, not {err}");
        assert!(err.starts_with("minikvm: ") && err.contains(want), "{args:?}: {err}");
    }
}

#[test]
fn more_ram_makes_room_for_a_bigger_file() {
    if common::skip_unless("longmode", "more_ram_makes_room_for_a_bigger_file") {
        return;
    }
    // 2 MiB of `nop`s, then hello64's code: too big for 2 MiB of RAM, fine in 4 MiB.
    let hello = std::fs::read(hello64_bin()).expect("hello64.bin");
    let mut image = vec![0x90u8; 2 << 20];
    // hello64 finds its message RIP-relative, so it runs wherever it lands.
    image.extend_from_slice(&hello);
    let (_dir, path) = guest_file("big-hello", &image);
    let (status, _, err) = run(&["--long-mode", &path]);
    assert_eq!(status, Some(2), "{err}");
    let (status, out, err) = run(&["--mem", "4", "--long-mode", &path]);
    assert_eq!((status, out.as_str()), (Some(0), "Hello from 64-bit!\n"), "stderr: {err}");
}
