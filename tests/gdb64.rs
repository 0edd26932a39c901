//! gdb on 64-bit code, and one gdb session across every mode switch: the real gdb, in batch
//! mode, against `minikvm --gdb 0` running `modes` (a flat guest that goes real → protected →
//! long mode by itself) and the 64-bit 1K OS (`os-1k64`, booted by Multiboot in 32-bit mode).
//!
//! gdb is given gdb/realmode.gdb, whose stop hook switches the decoder between i8086 and i386
//! and has gdb re-read minikvm's target description (x86-64 registers) on entering 64-bit code
//! (gdb/README.md, "One session across every mode switch"). Every wait is for an event; limits
//! only keep a bug from hanging the run.

mod common;

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// No process of a test may live longer than this.
const LIMIT: Duration = Duration::from_secs(120);

/// Skips (true) unless gdb is installed and the host's KVM runs long mode and can single-step
/// and break.
fn skip(test: &str) -> bool {
    common::skip_unless_installed("gdb", test)
        || ["longmode", "singlestep", "hwbreak"].iter().any(|p| common::skip_unless(p, test))
}

fn script(name: &str) -> String {
    format!("{}/gdb/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A minikvm waiting for gdb, and the port it listens on.
struct Vm {
    child: Child,
    port: u16,
}

impl Vm {
    fn start(args: &[&str]) -> Vm {
        let mut child = common::minikvm_std()
            .args(["--gdb", "0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start minikvm");
        let mut stderr = child.stderr.take().unwrap();
        let mut seen = Vec::new();
        let mut byte = [0u8; 1];
        let marker = "(in gdb: target remote :";
        while !String::from_utf8_lossy(&seen).contains(marker) || !seen.ends_with(b")") {
            assert_eq!(
                stderr.read(&mut byte).expect("minikvm's stderr"),
                1,
                "no port: {}",
                String::from_utf8_lossy(&seen)
            );
            seen.push(byte[0]);
        }
        let text = String::from_utf8_lossy(&seen).into_owned();
        let port = text.rsplit(marker).next().and_then(|p| p.trim_end_matches(')').parse().ok()).expect("a port");
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        Vm { child, port }
    }

    /// Waits for minikvm to end: (exit status, stdout).
    fn finish(mut self) -> (i32, String) {
        let status = wait(&mut self.child, "minikvm");
        let mut out = String::new();
        self.child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        (status, out)
    }
}

fn wait(child: &mut Child, what: &str) -> i32 {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            panic!("{what} did not end within {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs gdb with realmode.gdb and the commands of `commands` (a script file: `while` loops need
/// one) against `vm`; returns the transcript (stdout then stderr), also printed.
fn gdb(vm: &Vm, commands: &str) -> String {
    let file = std::env::temp_dir().join(format!("minikvm-gdb64-{}-{}.gdb", std::process::id(), vm.port));
    std::fs::write(&file, commands).unwrap();
    let mut child = Command::new("gdb")
        .args(["-nx", "-batch", "-ex", "set pagination off", "-ex", "set confirm off"])
        .args(["-ex", &format!("source {}", script("realmode.gdb"))])
        .args(["-ex", &format!("target remote :{}", vm.port)])
        .arg("-x")
        .arg(&file)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start gdb");
    let (mut out, mut err) = (String::new(), String::new());
    let (mut so, mut se) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let reader = std::thread::spawn(move || {
        let mut e = String::new();
        let _ = se.read_to_string(&mut e);
        e
    });
    let _ = so.read_to_string(&mut out);
    wait(&mut child, "gdb");
    err += &reader.join().unwrap();
    let _ = std::fs::remove_file(&file);
    let t = format!("{out}\n--- gdb stderr ---\n{err}");
    eprintln!("--- gdb\n{t}");
    t
}

/// The index of the first line containing `what`, after line `from` (panics with the transcript).
fn line_after(t: &str, from: usize, what: &str) -> usize {
    t.lines().enumerate().skip(from).find(|(_, l)| l.contains(what)).map(|(i, _)| i).unwrap_or_else(|| {
        panic!("no line with {what:?} after line {from} in:\n{t}");
    })
}

/// The item-5 session: from the first (16-bit) instruction, `stepi` one instruction at a time
/// until gdb shows 64-bit code, then on to the guest's end — one gdb, no reconnect.
#[test]
fn one_session_steps_from_real_mode_through_protected_into_long_mode() {
    if skip("one gdb session across every mode switch") {
        return;
    }
    let vm = Vm::start(&["modes"]);
    let elf = format!("{}/guests/modes.elf", common::minikvm_bin().parent().unwrap().display());
    let commands = format!(
        "symbol-file {elf}\nshow architecture\nset $n = 0\nwhile $minikvm_bits != 64 && $n < 60\n  stepi\n  set $n = $n + 1\nend\n\
         show architecture\ninfo registers rip rsi cr0 cr4 efer\nx/2i $pc\nhbreak print64\ncontinue\n\
         info registers rsi\nbt 1\ndelete\ncontinue\n"
    );
    let t = gdb(&vm, &commands);
    // Real mode: gdb decodes 16-bit code.
    let real = line_after(&t, 0, "(currently \"i8086\")");
    let first = line_after(&t, 0, "CS:IP 0000:0000  linear 0");
    assert!(t.lines().nth(first + 1).is_some_and(|l| l.contains("cli")), "{t}");
    line_after(&t, real, "mov    %cs,%ax");
    // Protected mode: i386, after the far jump.
    let pm = line_after(&t, real, "(the vCPU is in protected mode now: gdb decodes i386)");
    line_after(&t, pm, "CS:EIP 0008:");
    line_after(&t, pm, "mov    $0x10,%ax");
    // CR0.PG with EFER.LME: compatibility mode, still 32-bit code (and the same description).
    let compat = line_after(&t, pm, "ljmp   *0x");
    // The far jump into the L = 1 segment: gdb re-reads the description, x86-64 from here on.
    let long =
        line_after(&t, compat, "(the vCPU is in long mode now: gdb re-read the target description: i386:x86-64)");
    line_after(&t, long, "CS:RIP 0018:");
    line_after(&t, long, "<lm64>:\tmov    $0x500,%dx");
    line_after(&t, long, "(currently \"i386:x86-64\")");
    line_after(&t, long, "efer           0x500               [ LME LMA ]");
    // (A flat guest starts with CR0 at its reset value: caches off, NW and CD.)
    line_after(&t, long, "cr0            0xe0000011          [ PE ET NW CD PG ]");
    line_after(&t, long, "lea    0x");
    // The 64-bit registers are live: at print64 RSI points at the message (a 64-bit lea).
    let bp = line_after(&t, long, "Breakpoint 1, ");
    line_after(&t, bp, "rsi            0x");
    assert!(!t.contains("Remote 'g' packet reply is too long"), "{t}");
    assert!(!t.contains("Error while running hook_stop"), "{t}");
    assert!(!t.contains("internal problem"), "{t}");
    line_after(&t, bp, "[Inferior 1 (process 1) exited normally]");
    let (status, out) = vm.finish();
    assert_eq!(out, "Hello from long mode!\n");
    assert_eq!(status, 0);
}

/// The address of a symbol of the 64-bit 1K OS (`nm` of kernel64-symbols.elf).
fn os1k64_symbol(name: &str) -> u64 {
    let elf = common::minikvm_bin().parent().unwrap().join("guests/kernel64-symbols.elf");
    let out = Command::new("nm").arg(&elf).output().expect("nm runs (GNU binutils)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text.lines().find(|l| l.ends_with(&format!(" {name}"))).unwrap_or_else(|| panic!("no {name}"));
    u64::from_str_radix(line.split_whitespace().next().unwrap(), 16).unwrap()
}

/// The 64-bit kernel from its first instruction (32-bit Multiboot entry), across the
/// EFER.LME/CR0.PG switch with the registers before and after, to `kernel_main` in 64-bit code:
/// `break kernel_main`, `bt`, 64-bit registers, `monitor pt` through four levels, `monitor gdt`.
#[test]
fn os1k64_steps_across_the_switch_to_long_mode_into_kernel_main() {
    if skip("gdb on the 64-bit 1K OS") {
        return;
    }
    // boot.S runs at physical addresses before the switch: symbol - KERNEL_BASE.
    let enable_paging = os1k64_symbol("enable_paging") - 0xffff_ffff_8000_0000;
    let vm = Vm::start(&["os-1k64"]);
    let commands = format!(
        "info registers eip\nhbreak *{enable_paging:#x}\ncontinue\ninfo registers cr0 efer\nstepi\n\
         info registers cr0 efer\nstepi\nshow architecture\nbreak kernel_main\ncontinue\n\
         info registers rip rdi\nbt\nmonitor regs\neval \"monitor pt %#lx\", $pc\nmonitor gdt\nmonitor idt\nkill\n"
    );
    let t = gdb(&vm, &commands);
    line_after(&t, 0, "CS:EIP 0008:0010000c  linear 0x10000c (protected mode)");
    let before = line_after(&t, 0, &format!("=> {enable_paging:#x}:\tmov    %eax,%cr0"));
    let b = line_after(&t, before, "cr0            0x11                [ PE ET ]");
    line_after(&t, b, "efer           0x100               [ LME ]");
    let after = line_after(&t, b, "cr0            0x80000011          [ PE ET PG ]");
    line_after(&t, after, "efer           0x500               [ LME LMA ]");
    let long = line_after(&t, after, "(the vCPU is in long mode now: gdb re-read the target description: i386:x86-64)");
    line_after(&t, long, "(currently \"i386:x86-64\")");
    let main = line_after(&t, long, "Breakpoint 2, kernel_main (magic=732803074");
    line_after(&t, main, "rip            0xffffffff80100");
    line_after(&t, main, "rdi            0x2badb002");
    line_after(&t, main, "#1  0xffffffff801");
    line_after(&t, main, "in higher_half ()");
    line_after(&t, main, "64-bit long mode");
    line_after(&t, main, "rax 0x");
    line_after(&t, main, "PML4E");
    line_after(&t, main, "PDPTE");
    line_after(&t, main, "PDE");
    line_after(&t, main, "PTE");
    line_after(&t, main, "code 64-bit exec/read");
    assert!(!t.contains("Error while running hook_stop"), "{t}");
    assert_eq!(vm.finish().0, 6, "kill ends minikvm with status 6");
}
