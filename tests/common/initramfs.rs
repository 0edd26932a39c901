//! The busybox initramfs that the Linux tests build, and where they find busybox and the kernel.
//!
//! The archive is a "newc" cpio (the format the kernel unpacks into its rootfs), written with the
//! `cpio` crate. It holds Debian's static busybox as `/bin/busybox` with a symlink per applet,
//! a `/dev/console` node (the kernel opens it for init's stdin/stdout before `/init` runs) and
//! `/init`, a short shell script ([`INIT`]) that:
//!
//! - mounts proc, sysfs and devtmpfs, and prints [`INIT_UP`] with the uptime;
//! - **with a command** — the init arguments, everything after `--` on the kernel command line
//!   (Linux hands those to init as its argv; [`cmdline_running`] writes such a command line) —
//!   silences kernel messages on the console, turns off output post-processing (so `\n` stays
//!   `\n`), runs the command with `sh -c`, and prints its output between the line [`RUN_BEGIN`]
//!   and a line `@@minikvm-init: end status=N` that starts with a newline of its own
//!   ([`run_output`] takes the bytes in between back out), then `poweroff -f`;
//! - **without one**, starts an interactive shell (prompt [`PROMPT`]) with the console as its
//!   controlling terminal, and powers off when the shell exits.
//!
//! The kernel splits its command line at spaces except inside double quotes, so a command with
//! spaces goes in one pair of quotes and cannot contain a `"` itself.
//!
//! Where things come from: busybox is `MINIKVM_TEST_BUSYBOX`, else the lab's cache
//! (`lab/lib.sh` extracts Debian's busybox-static to `<cache>/root/bin/busybox`); the kernel is
//! `MINIKVM_TEST_LINUX_KERNEL`, else the lab cache's `linux-image-cloud-amd64`
//! (`<cache>/root/boot/vmlinuz-<version>`). The nested lane sets both variables (`/bin/busybox`
//! and the vmlinuz it copies into its image).
#![allow(dead_code)]

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

/// `/init`'s first line on the console, followed by the uptime in seconds.
pub const INIT_UP: &str = "@@minikvm-init: up at ";
/// The line before a command's output.
pub const RUN_BEGIN: &str = "@@minikvm-init: begin\n";
/// What follows a command's output: a newline of its own, then this and the status.
pub const RUN_END: &str = "\n@@minikvm-init: end status=";
/// The interactive shell's prompt.
pub const PROMPT: &str = "minikvm-linux# ";

/// `/init` (busybox ash as PID 1): `tests/common/linux-init.sh`, shared with the benchmark.
pub const INIT: &str = include_str!("linux-init.sh");

/// Builds the initramfs from the static busybox at `busybox`: the cpio archive's bytes.
pub fn build(busybox: &Path) -> io::Result<Vec<u8>> {
    let binary = std::fs::read(busybox)?;
    let mut out = Vec::with_capacity(binary.len() + 64 * 1024);
    let mut ino = 0;
    let mut entry = |name: &str, mode: u32, data: &[u8], out: &mut Vec<u8>| -> io::Result<()> {
        ino += 1;
        let builder = cpio::newc::Builder::new(name).ino(ino).mode(mode).nlink(1);
        let mut writer = builder.write(out, data.len() as u32);
        writer.write_all(data)?;
        writer.finish().map(drop)
    };
    for dir in ["bin", "dev", "proc", "sys", "tmp", "root"] {
        entry(dir, 0o040_755, b"", &mut out)?;
    }
    entry("bin/busybox", 0o100_755, &binary, &mut out)?;
    for applet in applets(busybox)? {
        entry(&format!("bin/{applet}"), 0o120_777, b"busybox", &mut out)?;
    }
    entry("init", 0o100_755, INIT.as_bytes(), &mut out)?;
    // The console, character device 5:1.
    let console =
        cpio::newc::Builder::new("dev/console").ino(9999).mode(0o020_600).nlink(1).rdev_major(5).rdev_minor(1);
    console.write(&mut out, 0).finish()?;
    cpio::newc::trailer(&mut out)?;
    Ok(out)
}

/// Builds the initramfs into the file `path`.
pub fn write(busybox: &Path, path: &Path) -> io::Result<()> {
    std::fs::write(path, build(busybox)?)
}

/// The applets this busybox has (`busybox --list`), each to be a symlink in /bin.
fn applets(busybox: &Path) -> io::Result<Vec<String>> {
    let out = Command::new(busybox).arg("--list").output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!("{} --list failed", busybox.display())));
    }
    let names = String::from_utf8_lossy(&out.stdout);
    Ok(names.lines().filter(|n| !n.is_empty() && *n != "busybox" && !n.contains('/')).map(String::from).collect())
}

/// A kernel command line whose init runs `command` (console on ttyS0, kernel messages quiet).
pub fn cmdline_running(command: &str) -> String {
    assert!(!command.contains('"'), "a command on the kernel command line cannot hold a double quote");
    format!("console=ttyS0 quiet -- \"{command}\"")
}

/// The bytes a command printed and its exit status, from the console output `console` of a run
/// of this initramfs; None when the markers are not both there.
pub fn run_output(console: &[u8]) -> Option<(Vec<u8>, i32)> {
    let start = find(console, RUN_BEGIN.as_bytes())? + RUN_BEGIN.len();
    let end = start + find(&console[start..], RUN_END.as_bytes())?;
    let rest = &console[end + RUN_END.len()..];
    let digits: Vec<u8> = rest.iter().copied().take_while(u8::is_ascii_digit).collect();
    let status = std::str::from_utf8(&digits).ok()?.parse().ok()?;
    Some((console[start..end].to_vec(), status))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Why the kernel or busybox is not there: the reason a test skips with.
#[derive(Debug)]
pub struct Missing(pub String);

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The lab's cache root (`lab/lib.sh`): where busybox and the kernel are extracted.
fn lab_root() -> PathBuf {
    let cache = std::env::var_os("MINIKVM_LAB_CACHE").map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"));
        home.join(".cache/minikvm/lab")
    });
    cache.join("root")
}

/// Debian's static busybox: `MINIKVM_TEST_BUSYBOX`, else the lab's cache. Err says why not.
pub fn busybox() -> Result<PathBuf, Missing> {
    if let Some(path) = std::env::var_os("MINIKVM_TEST_BUSYBOX") {
        return existing(PathBuf::from(path), "MINIKVM_TEST_BUSYBOX");
    }
    existing(lab_root().join("bin/busybox"), "the lab's cache (`lab/minikvm-lab --setup` fetches it)")
}

/// The stock Debian kernel: `MINIKVM_TEST_LINUX_KERNEL`, else the lab cache's
/// `boot/vmlinuz-<KVER>` (KVER from `root/.lane`). Err says why not (also when
/// `MINIKVM_TEST_LINUX_OFF` gives a reason: the nested lanes that do not boot Linux set it).
pub fn kernel() -> Result<PathBuf, Missing> {
    // The nested lane boots Linux in its Linux lane only (.ci/nested-lane --cpu linux).
    if let Some(why) = std::env::var_os("MINIKVM_TEST_LINUX_OFF") {
        return Err(Missing(why.to_string_lossy().into_owned()));
    }
    if let Some(path) = std::env::var_os("MINIKVM_TEST_LINUX_KERNEL") {
        return existing(PathBuf::from(path), "MINIKVM_TEST_LINUX_KERNEL");
    }
    let root = lab_root();
    let lane = std::fs::read_to_string(root.join(".lane")).unwrap_or_default();
    let kver = lane.lines().find_map(|l| l.strip_prefix("KVER=")).unwrap_or("");
    existing(root.join(format!("boot/vmlinuz-{kver}")), "the lab's cache (`lab/minikvm-lab --setup` fetches it)")
}

fn existing(path: PathBuf, from: &str) -> Result<PathBuf, Missing> {
    if path.is_file() {
        Ok(path)
    } else {
        Err(Missing(format!(
            "no {} (from {from}); set MINIKVM_TEST_LINUX_KERNEL / MINIKVM_TEST_BUSYBOX",
            path.display()
        )))
    }
}
