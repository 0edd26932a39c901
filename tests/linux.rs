//! Booting Linux: `minikvm --linux bzImage --initrd FILE --cmdline STRING` with a stock Debian
//! kernel (the cloud kernel the lab and the nested lane fetch) and a busybox initramfs the tests
//! build (`tests/common/initramfs.rs`: its `/init` runs the command after `--` on the kernel
//! command line, prints its output between markers and powers off).
//!
//! A stock kernel needs instructions an emulating KVM lacks (`lock cmpxchg16b`, `xrstor`): such a
//! host's `minikvm doctor --probe linux` fails and the boot tests skip; the nested lane
//! (`.ci/nested-lane`, a real KVM) runs them. There the lane hands the kernel and busybox over in
//! `MINIKVM_TEST_LINUX_KERNEL` and `MINIKVM_TEST_BUSYBOX`; elsewhere they come from the lab's
//! cache (`lab/minikvm-lab --setup` fills it), and without them the tests skip and say so.

mod common;

use common::initramfs;
use common::pty::Pty;
use std::io::Write;
use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

/// A boot under the nested lane's KVM (inside QEMU's software CPU) takes about a minute (QEMU's PC
/// there: 60 s to power-off); three boots one after another stay inside the lane's 600 s per test
/// binary.
const BOOT_LIMIT: Duration = Duration::from_secs(180);

/// One boot at a time: in the nested lane every vCPU of every VM shares one emulated CPU thread, so
/// boots in parallel would only make each of them slower than its limit.
static ONE_BOOT: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_boot() -> std::sync::MutexGuard<'static, ()> {
    ONE_BOOT.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The doctor probe that says whether this host's KVM can boot Linux. Until `doctor` has its
/// `linux` probe, `usercall` stands in: it fails on exactly the emulating KVMs (this project's
/// machines) that also fail a Linux boot, and works on real KVMs.
fn linux_probe() -> &'static str {
    let out = common::minikvm_std().args(["doctor", "--probe", "linux"]).output();
    let unknown = out.map(|o| String::from_utf8_lossy(&o.stderr).contains("unknown probe")).unwrap_or(true);
    if unknown {
        "usercall"
    } else {
        "linux"
    }
}

/// The kernel and a freshly built initramfs (in `dir`), or None when the test skipped.
fn kernel_and_initramfs(test: &str, dir: &tempfile::TempDir) -> Option<(PathBuf, PathBuf)> {
    let found = initramfs::kernel().and_then(|k| initramfs::busybox().map(|b| (k, b)));
    let (kernel, busybox) = match found {
        Ok(pair) => pair,
        Err(why) => {
            common::skip(test, &format!("needs a Linux kernel and busybox: {why}"));
            return None;
        }
    };
    let image = dir.path().join("initramfs.cpio");
    initramfs::write(&busybox, &image).expect("build the initramfs");
    Some((kernel, image))
}

/// Skips unless this host can boot Linux and the kernel is there; else the kernel and initramfs.
fn ready(test: &str, dir: &tempfile::TempDir) -> Option<(PathBuf, PathBuf)> {
    if common::skip_unless(linux_probe(), test) {
        return None;
    }
    kernel_and_initramfs(test, dir)
}

/// `minikvm --linux KERNEL --initrd IMAGE --cmdline CMDLINE`, stdin empty.
fn boot(kernel: &PathBuf, image: &PathBuf, cmdline: &str) -> Output {
    let _one = one_boot();
    let mut cmd = common::minikvm();
    cmd.arg("--linux").arg(kernel).arg("--initrd").arg(image).args(["--cmdline", cmdline]);
    cmd.timeout(BOOT_LIMIT);
    cmd.output().expect("run minikvm")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn linux_boots_to_busybox_runs_a_command_and_powers_off() {
    let test = "linux_boots_to_busybox_runs_a_command_and_powers_off";
    let dir = tempfile::tempdir().unwrap();
    let Some((kernel, image)) = ready(test, &dir) else { return };
    let out = boot(&kernel, &image, &initramfs::cmdline_running("echo hello from busybox; uname -s; echo $((6 * 7))"));
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains(initramfs::INIT_UP), "/init never ran; the console shows:\n{stdout}");
    let run = initramfs::run_output(&out.stdout);
    assert_eq!(
        run,
        Some((b"hello from busybox\nLinux\n42\n".to_vec(), 0)),
        "the command's output and status between /init's markers; the console shows:\n{stdout}"
    );
    assert!(stderr.contains("powered off"), "no line saying the guest powered off:\n{stderr}");
}

#[test]
fn linux_reboot_ends_minikvm_with_status_0_and_says_the_guest_rebooted() {
    let test = "linux_reboot_ends_minikvm_with_status_0_and_says_the_guest_rebooted";
    let dir = tempfile::tempdir().unwrap();
    let Some((kernel, image)) = ready(test, &dir) else { return };
    let out = boot(&kernel, &image, &initramfs::cmdline_running("echo rebooting; reboot -f"));
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains(&format!("{}rebooting\n", initramfs::RUN_BEGIN)), "the command never ran:\n{stdout}");
    assert!(stderr.contains("rebooted"), "no line saying the guest rebooted:\n{stderr}");
    assert!(!stderr.contains("powered off"), "a reboot is not a power-off:\n{stderr}");
}

#[test]
fn linux_typed_input_reaches_the_busybox_shell_through_irq4() {
    let test = "linux_typed_input_reaches_the_busybox_shell_through_irq4";
    let dir = tempfile::tempdir().unwrap();
    let Some((kernel, image)) = ready(test, &dir) else { return };
    let _one = one_boot();
    let mut p = Pty::new();
    let mut cmd = common::minikvm_std();
    cmd.arg("--linux").arg(&kernel).arg("--initrd").arg(&image).args(["--cmdline", "console=ttyS0 quiet"]);
    let mut child = p.spawn(&mut cmd);
    wait_for_prompt(&p, &mut child);
    // The shell computes the answer, so seeing it proves the keys reached it (not just an echo).
    p.master.write_all(b"echo typed-$((6 * 7))\r").unwrap();
    p.wait_for("typed-42", Duration::from_secs(60));
    p.master.write_all(b"poweroff -f\r").unwrap();
    let status = common::pty::wait(&mut child, Duration::from_secs(60));
    assert_eq!(status, 0, "poweroff from the shell ends minikvm with 0:\n{}", p.text());
    assert!(p.text().contains("powered off"), "no line saying the guest powered off:\n{}", p.text());
}

/// Waits for the shell's prompt on `p`; fails at once when minikvm ends first, or after BOOT_LIMIT.
fn wait_for_prompt(p: &Pty, child: &mut std::process::Child) {
    let start = std::time::Instant::now();
    while !p.text().contains(initramfs::PROMPT) {
        if let Some(status) = child.try_wait().unwrap() {
            std::thread::sleep(Duration::from_millis(200)); // the last bytes on the terminal
            panic!("minikvm ended ({status}) before the shell's prompt; the terminal shows:\n{}", p.text());
        }
        if start.elapsed() > BOOT_LIMIT {
            let _ = child.kill();
            panic!("no prompt within {BOOT_LIMIT:?}; the terminal shows:\n{}", p.text());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The very same initramfs and command line under QEMU: the reference PC for what the guest shows
/// (QEMU's software CPU on a host whose KVM cannot boot Linux, its KVM elsewhere).
#[test]
fn linux_the_test_initramfs_runs_its_command_on_qemu() {
    let test = "linux_the_test_initramfs_runs_its_command_on_qemu";
    if common::skip_unless_installed("qemu-system-x86_64", test) {
        return;
    }
    if common::in_nested_lane() {
        // Measured: QEMU's PC (SeaBIOS, PCI) under the lane's nested KVM needs minutes to boot.
        let why = "QEMU's PC boots Linux in minutes under the lane's nested KVM; this reference runs on the host";
        return common::skip(test, why);
    }
    let dir = tempfile::tempdir().unwrap();
    let Some((kernel, image)) = kernel_and_initramfs(test, &dir) else { return };
    let accel = if common::host_can(linux_probe()) { "kvm" } else { "tcg" };
    let _one = one_boot();
    let out = assert_cmd::Command::new("qemu-system-x86_64")
        .args(["-accel", accel, "-m", "256", "-display", "none", "-nodefaults", "-no-reboot", "-serial", "stdio"])
        .arg("-kernel")
        .arg(&kernel)
        .arg("-initrd")
        .arg(&image)
        .args(["-append", &initramfs::cmdline_running("echo hello from busybox; uname -s; exit 5")])
        .timeout(BOOT_LIMIT)
        .output()
        .expect("run qemu");
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "QEMU:\n{stdout}\n{}", text(&out.stderr));
    assert_eq!(
        initramfs::run_output(&out.stdout),
        Some((b"hello from busybox\nLinux\n".to_vec(), 5)),
        "console:\n{stdout}"
    );
}

/// The markers' parser on its own: what a console shows around them does not matter.
#[test]
fn linux_run_output_takes_the_bytes_between_the_markers() {
    let console =
        b"[ 1.0] boot\r\n@@minikvm-init: up at 1.23\r\n@@minikvm-init: begin\na\nb\n\n@@minikvm-init: end status=17\n";
    assert_eq!(
        initramfs::run_output(console),
        Some((b"a\nb\n".to_vec(), 17)),
        "output ends before the end marker's own newline"
    );
    assert_eq!(initramfs::run_output(b"@@minikvm-init: begin\nhalf"), None);
    let no_newline = b"@@minikvm-init: begin\nx\n@@minikvm-init: end status=0\n";
    assert_eq!(initramfs::run_output(no_newline), Some((b"x".to_vec(), 0)));
}

/// The archive holds what `/init` needs, in a form the kernel unpacks (read back with the crate).
#[test]
fn linux_the_initramfs_holds_busybox_its_applets_init_and_the_console() {
    let test = "linux_the_initramfs_holds_busybox_its_applets_init_and_the_console";
    let busybox = match initramfs::busybox() {
        Ok(b) => b,
        Err(why) => return common::skip(test, &format!("needs busybox: {why}")),
    };
    let bytes = initramfs::build(&busybox).expect("build");
    let mut rest: &[u8] = &bytes;
    let mut seen = std::collections::HashMap::new();
    loop {
        let reader = cpio::newc::Reader::new(rest).expect("a newc entry");
        if reader.entry().is_trailer() {
            break;
        }
        let e = reader.entry();
        seen.insert(e.name().to_string(), (e.mode(), e.file_size(), e.rdev_major(), e.rdev_minor()));
        rest = reader.finish().expect("entry end");
    }
    let size = std::fs::metadata(&busybox).unwrap().len() as u32;
    assert_eq!(seen["bin/busybox"], (0o100_755, size, 0, 0));
    assert_eq!(seen["init"], (0o100_755, initramfs::INIT.len() as u32, 0, 0));
    assert_eq!(seen["dev/console"], (0o020_600, 0, 5, 1));
    for applet in ["sh", "mount", "poweroff", "reboot", "stty", "setsid", "cttyhack"] {
        assert_eq!(seen[&format!("bin/{applet}")], (0o120_777, 7, 0, 0), "bin/{applet} -> busybox");
    }
}

/// `minikvm --gdb 0 --linux …` with gdb: the kernel waits at its first instruction (the 64-bit
/// entry, RSI at the zero page, whose command line has `nokaslr` added), a hardware breakpoint on
/// `start_kernel` is hit and `stepi` moves on. A distribution kernel has no symbols: the address
/// comes from `/proc/kallsyms` of the same kernel running this test (the nested lane boots the
/// very kernel it hands to minikvm), moved from its KASLR slide to the `nokaslr` address.
#[test]
fn linux_gdb_stops_at_the_entry_then_at_start_kernel_and_steps() {
    use common::gdb_session::{gdb_batch, run_client, Vm};
    let test = "linux_gdb_stops_at_the_entry_then_at_start_kernel_and_steps";
    if common::skip_unless_installed("gdb", test) || common::skip_unless("hwbreak", test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some((kernel, image)) = ready(test, &dir) else { return };
    let bz = std::fs::read(&kernel).expect("read the kernel");
    let Some(start_kernel) = start_kernel_without_kaslr(&bz) else {
        let why = "needs /proc/kallsyms of the same kernel as the one booted (the nested lane has it)";
        return common::skip(test, why);
    };
    let entry = u64::from_le_bytes(bz[0x258..0x260].try_into().unwrap()) + 0x200; // pref_address + 64-bit entry
    let _one = one_boot();
    let (k, i) = (kernel.to_str().unwrap(), image.to_str().unwrap());
    let vm = Vm::start(&["--linux", k, "--initrd", i, "--cmdline", "console=ttyS0 quiet"]);
    let t = run_client(gdb_batch(
        &vm,
        &[],
        &[
            "p/x $pc",
            "x/s *(unsigned int *)($rsi + 0x228)", // the zero page's cmd_line_ptr
            &format!("hbreak *{start_kernel:#x}"),
            "continue",
            "p/x $pc",
            "stepi",
            "p $pc != $2",
            "kill",
        ],
    ))
    .1;
    assert!(t.contains(&format!("$1 = {entry:#x}")), "the first stop is the 64-bit entry {entry:#x}:\n{t}");
    assert!(t.contains("nokaslr"), "--gdb adds nokaslr to the command line:\n{t}");
    assert!(t.contains(&format!("Breakpoint 1, {start_kernel:#018x} in ?? ()")), "start_kernel was not hit:\n{t}");
    assert!(t.contains(&format!("$2 = {start_kernel:#x}")), "{t}");
    assert!(t.contains("$3 = 1"), "stepi moved the pc:\n{t}");
    let (status, _, stderr) = vm.finish();
    assert_eq!(status, 6, "gdb's kill stops the run (status 6):\n{stderr}");
}

/// The address of `start_kernel` in this bzImage when booted with `nokaslr`, from `/proc/kallsyms`
/// of the running kernel, if that is the same kernel (same version string) and shows addresses.
fn start_kernel_without_kaslr(bz: &[u8]) -> Option<u64> {
    // The setup header's kernel_version (offset 0x20e) points at "VERSION (builder) #1 SMP …".
    let at = 0x200 + usize::from(u16::from_le_bytes(bz.get(0x20e..0x210)?.try_into().ok()?));
    let version = bz.get(at..)?.split(|&b| b == b' ' || b == 0).next()?;
    let running = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    if running.trim().as_bytes() != version {
        return None;
    }
    let syms = std::fs::read_to_string("/proc/kallsyms").ok()?;
    let find = |name: &str| {
        syms.lines().find_map(|l| {
            let mut f = l.split_whitespace();
            let (addr, _, sym) = (f.next()?, f.next()?, f.next()?);
            (sym == name).then(|| u64::from_str_radix(addr, 16).ok()).flatten()
        })
    };
    let (text, start) = (find("_text")?, find("start_kernel")?);
    // With nokaslr the kernel runs at its link address: _text at __START_KERNEL_map + 16 MiB.
    (text != 0).then(|| 0xffff_ffff_8100_0000 + (start - text))
}
