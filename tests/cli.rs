//! The command line around the guests: verbosity, statistics, doctor, list, host errors, signals.

mod common;

use common::{minikvm, minikvm_std};
use std::process::Stdio;
use std::time::{Duration, Instant};

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn verbose_shows_setup_and_very_verbose_every_exit() {
    let out = minikvm().args(["-v", "hello"]).output().unwrap();
    assert!(out.status.success());
    let err = stderr_of(&out);
    assert!(err.contains("memory slot 0: GPA 0x00000..0x40000"), "{err}");
    assert!(err.contains("vCPU 0 (hello): CS=0x0000"), "{err}");
    assert!(!err.contains("io-out"), "-v must not list exits: {err}");

    let out = minikvm().args(["-vv", "hello"]).output().unwrap();
    assert_eq!(out.stdout, b"Hello, KVM!\n", "guest output stays on stdout alone");
    let err = stderr_of(&out);
    let io_exits = err.lines().filter(|l| l.contains("  io-out  0x500  hypercall PUTCHAR ")).count();
    assert_eq!(io_exits, 12, "one exit per PUTCHAR: {err}");
    assert_eq!(err.lines().filter(|l| l.contains("  hlt  at 0000:")).count(), 1, "{err}");
}

/// `-vv` reads in words and hex (issue 10: it printed `IoOut { port: 1280, size: 1, value: 1 }`).
#[test]
fn very_verbose_exits_read_in_words_and_hex() {
    let out = minikvm().args(["-vv", "hello"]).output().unwrap();
    let err = stderr_of(&out);
    let first = err.lines().find(|l| l.contains("io-out")).unwrap_or_default();
    assert!(
        first.starts_with("[DEBUG] vCPU 0  io-out  0x500  hypercall PUTCHAR 'H'  at 0000:00"),
        "the first exit in words: {err}"
    );
    assert!(err.contains("hypercall PUTCHAR '\\n'"), "a newline is written as \\n: {err}");
    assert!(!err.contains("IoOut") && !err.contains("1280"), "no Rust debug syntax, no decimal ports: {err}");
}

/// `-vvv` adds the registers and the size and count of each port access; `-vv` does not.
#[test]
fn trace_adds_registers_and_access_sizes() {
    let vv = stderr_of(&minikvm().args(["-vv", "hello"]).output().unwrap());
    let vvv = stderr_of(&minikvm().args(["-vvv", "hello"]).output().unwrap());
    let detail = |err: &str| err.lines().filter(|l| l.contains("1 x 1 byte, rax 0x1 rbx 0x48 ")).count();
    assert_eq!(detail(&vvv), 1, "the registers of the PUTCHAR 'H' exit: {vvv}");
    assert_eq!(detail(&vv), 0, "{vv}");
    assert!(vvv.lines().count() > vv.lines().count() + 12, "-vvv says more than -vv");
}

/// With stdout and stderr in one file (`2>&1`), no log line shares a line with guest output.
#[test]
fn log_lines_never_share_a_line_with_guest_output() {
    let path = std::env::temp_dir().join(format!("minikvm-vv-{}.txt", std::process::id()));
    let file = std::fs::File::create(&path).unwrap();
    let status = minikvm_std()
        .args(["-vv", "hello"])
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .status()
        .unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    for line in text.lines() {
        assert!(!line.contains('[') || line.starts_with('['), "a log line glued to guest output: {line:?}\n{text}");
    }
    let guest: String = text.lines().filter(|l| !l.starts_with('[')).collect();
    assert_eq!(guest, "Hello, KVM!", "guest output intact between the log lines:\n{text}");
}

/// `minikvm helo`: one line that names the closest built-in guest, status 2.
#[test]
fn a_mistyped_guest_name_suggests_the_closest() {
    let out = minikvm().arg("helo").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("did you mean hello?"), "{err}");
    let far = stderr_of(&minikvm().arg("zzzzzzzzzz").output().unwrap());
    assert!(!far.contains("did you mean"), "no suggestion for a name close to nothing: {far}");
}

/// `minikvm guest/hello.S` ran the source text as code and blamed "the built-in hello".
#[test]
fn a_source_file_is_refused_as_text() {
    let source = concat!(env!("CARGO_MANIFEST_DIR"), "/guest/hello.S");
    let out = minikvm().arg(source).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("hello.S: this looks like text"), "{err}");
    assert!(!err.contains("built-in hello"), "a file is not the built-in guest: {err}");
}

/// A guest file whose stem is a built-in's name is named by its path in reports, never as the
/// built-in guest.
#[test]
fn a_file_guest_is_reported_by_its_path() {
    let dir = std::env::temp_dir().join(format!("minikvm-named-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("hello");
    // mov $0x7f,%al; mov $0x500,%dx; out %al,(%dx): an unknown hypercall, a fault on every KVM (a
    // `ud2` would loop through the guest's own IVT on a KVM that delivers #UD to real mode).
    std::fs::write(&file, [0xb0, 0x7f, 0xba, 0x00, 0x05, 0xee]).unwrap();
    let out = minikvm().arg(&file).output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("guest `{}` (vCPU 0)", file.display())), "{err}");
    assert!(!err.contains("guest `hello`"), "{err}");
}

/// `--paging` as the C project writes it (`--paging --verbose FILE`) and as `--paging FILE`.
#[test]
fn paging_takes_its_file_after_it_or_last() {
    for args in [&["--paging", "--verbose", "/nonexistent/kernel.bin"][..], &["--paging", "/nonexistent/kernel.bin"]] {
        let out = minikvm().args(args).output().unwrap();
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("/nonexistent/kernel.bin: no such file"), "{args:?} reached the file: {err}");
    }
    let out = minikvm().args(["--paging", "a.bin", "b.bin"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).contains("--paging boots exactly one file"), "{}", stderr_of(&out));
}

#[test]
fn stats_table_counts_exits_hypercalls_and_ports() {
    let out = minikvm().args(["--stats", "hello"]).output().unwrap();
    assert!(out.status.success());
    let err = stderr_of(&out);
    assert!(err.contains("vCPU 0 (hello): 13 exits"), "{err}");
    let row = |prefix: &str| err.lines().find(|l| l.trim_start().starts_with(prefix)).unwrap_or_default().to_string();
    assert!(row("0x01 PUTCHAR").ends_with(" 12"), "{err}");
    assert!(row("0x0500 out").ends_with(" 12"), "{err}");
    assert!(row("hlt").ends_with(" 1"), "{err}");
    assert!(err.contains("in the guest (KVM_RUN"), "{err}");

    let out = minikvm().args(["--stats", "counter"]).output().unwrap();
    let err = stderr_of(&out);
    assert!(row_of(&err, "0x03f8 out").ends_with(" 20"), "twenty THR writes (digit + newline): {err}");
    assert!(row_of(&err, "0x03fd in").split_whitespace().last().unwrap().parse::<u32>().unwrap() >= 20, "{err}");
}

fn row_of(text: &str, prefix: &str) -> String {
    text.lines().find(|l| l.trim_start().starts_with(prefix)).unwrap_or_default().to_string()
}

#[test]
fn doctor_lists_every_probe_and_answers_single_probes() {
    let out = minikvm().arg("doctor").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("KVM API version 12"), "{text}");
    let rows = [
        ("realmode", "real mode (16-bit)"),
        ("protected", "32-bit protected mode, paging off"),
        ("paging", "32-bit paging"),
        ("longmode", "64-bit long mode"),
        ("usercall", "ring-3 int 0x80 in long mode"),
        ("syscall", "ring-3 syscall/sysret in long mode"),
        ("singlestep", "single-step"),
        ("hwbreak", "hardware breakpoints"),
        ("watch", "data breakpoints"),
        ("int3", "int3 interception"),
    ];
    for (probe, what) in rows {
        let probes = text.split("Probes").nth(1).unwrap_or_default();
        let line = probes.lines().find(|l| l.contains(what)).unwrap_or_else(|| panic!("no row for {what}: {text}"));
        let works = line.trim_start().starts_with("works");
        assert!(works || line.trim_start().starts_with("does not work"), "{line}");
        // The table and the single probe must agree.
        let single = minikvm().args(["doctor", "--probe", probe]).output().unwrap();
        assert_eq!(single.status.success(), works, "probe {probe} disagrees with the table: {line}");
    }
    // Every real KVM runs real mode, so that probe must pass here and in the nested lane.
    minikvm().args(["doctor", "--probe", "realmode"]).assert().code(0);
    minikvm().args(["doctor", "--probe", "protected"]).assert().code(0);
    let out = minikvm().args(["doctor", "--probe", "teleport"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).contains("unknown probe `teleport`"));
}

#[test]
fn list_names_every_builtin_guest_with_paths() {
    let out = minikvm().arg("list").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for g in minikvm::guests::BUILTIN {
        let line = text.lines().find(|l| l.split_whitespace().next() == Some(g.name)).expect("guest listed");
        assert!(line.contains(g.description));
    }
    assert_eq!(text.matches("  binary: ").count(), minikvm::guests::BUILTIN.len());
    assert_eq!(text.matches("  elf:    ").count(), minikvm::guests::BUILTIN.len());
}

#[test]
fn missing_kvm_device_says_what_to_do() {
    let out = minikvm().env("MINIKVM_KVM_DEVICE", "/nonexistent/kvm").arg("hello").output().unwrap();
    assert_eq!(out.status.code(), Some(4));
    let err = stderr_of(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("modprobe"), "{err}");
}

#[test]
fn no_permission_on_kvm_says_what_to_do() {
    // Only root can drop to another user to see a permission error; others already see it or not.
    let root = std::fs::read_to_string("/proc/self/status")
        .map(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false);
    let test = "no_permission_on_kvm_says_what_to_do";
    if !root {
        common::skip(test, "needs root, to run minikvm as another user");
        return;
    }
    if common::skip_unless_installed("setpriv", test) {
        return;
    }
    let as_nobody = || {
        let mut cmd = std::process::Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"]);
        cmd
    };
    // busybox's setpriv (the nested lane's) has no --reuid: it cannot drop to another user.
    if !as_nobody().arg("true").stderr(Stdio::null()).status().is_ok_and(|s| s.success()) {
        common::skip(test, "this setpriv cannot drop to another user (util-linux's setpriv can)");
        return;
    }
    let out = as_nobody().arg(common::minikvm_bin()).arg("hello").stdin(Stdio::null()).output().unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("kvm` group"), "{err}");
}

#[test]
fn fault_report_names_guest_reason_place_and_registers() {
    let out = minikvm().arg("bad-hypercall").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    for needle in [
        "guest `bad-hypercall` (vCPU 0)",
        "0x7f",
        "CS:IP 0000:",
        "EAX=0000007f",
        "EDX=00000500",
        "CR0=",
        "CR3=",
        "CR4=",
    ] {
        assert!(err.contains(needle), "missing {needle}: {err}");
    }
}

#[test]
fn sigterm_stops_a_running_guest_with_status_6() {
    let mut child =
        minikvm_std().arg("spin").stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert_eq!(status.code(), Some(6));
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "minikvm did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.stdout, b"spinning\n");
    assert!(stderr_of(&out).contains("stopped by signal 15"));
}

#[test]
fn a_kernel_runs_alone() {
    let Some(os) = minikvm::guests::builtin("os-1k32") else {
        common::skip("a_kernel_runs_alone", "the 1K OS is not built into this minikvm");
        return;
    };
    let out = minikvm().args([os.name, "hello"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).contains("runs alone"));
}

/// A hypercall costs one KVM_RUN round trip: BL comes from sync_regs, never from KVM_GET_REGS.
#[test]
fn putchar_reads_registers_without_extra_ioctls() {
    if common::skip_unless_installed("strace", "putchar_reads_registers_without_extra_ioctls") {
        return;
    }
    let out = std::process::Command::new("strace")
        .args(["-f", "-e", "trace=ioctl", "-o", "/dev/stderr"])
        .arg(common::minikvm_bin())
        .arg("hello")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let trace = stderr_of(&out);
    assert_eq!(out.stdout, b"Hello, KVM!\n");
    let runs = trace.lines().filter(|l| l.contains("KVM_RUN")).count();
    let get_regs = trace.lines().filter(|l| l.contains("KVM_GET_REGS")).count();
    assert_eq!(runs, 13, "12 PUTCHAR exits + hlt: {trace}");
    assert_eq!(get_regs, 0, "PUTCHAR must not call KVM_GET_REGS: {trace}");
}

/// Without a usable KVM device, `doctor --probe` is a host failure (4), like every other command,
/// and every message names the device actually tried (`MINIKVM_KVM_DEVICE` chooses another).
#[test]
fn doctor_without_kvm_exits_4_and_names_the_device() {
    let device = "/nonexistent/kvm-for-doctor";
    for args in [&["doctor", "--probe", "realmode"][..], &["doctor"], &["hello"]] {
        let out = minikvm().env("MINIKVM_KVM_DEVICE", device).args(args).output().unwrap();
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(4), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(device), "{args:?} must name {device}: {err}");
        assert!(!err.contains("/dev/kvm"), "{args:?} names a device it did not use: {err}");
    }
    // A file that is not a KVM device is named too.
    let out =
        minikvm().env("MINIKVM_KVM_DEVICE", "/dev/null").args(["doctor", "--probe", "realmode"]).output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("/dev/null"), "{}", stderr_of(&out));
    // A probe that does not exist is still a usage error, with or without KVM.
    let out = minikvm().env("MINIKVM_KVM_DEVICE", device).args(["doctor", "--probe", "teleport"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
}
