//! The 1K OS's scripted sessions, shared by its two flavours: `tests/os1k.rs` (i386) and
//! `tests/os1k64.rs` (x86-64) run every case below twice, once under QEMU (`qemu_<case>`, a PC
//! emulated in software: the reference) and once under minikvm (`minikvm_<case>`), with the same
//! typed input and the same expected output. Both flavours run the same programs, so nearly
//! every expectation is the same text; the few that differ (where the kernel lives, the name of
//! the page-table root, eip/rip) come from the [`Flavour`].
//!
//! The QEMU tests need `qemu-system-i386` and `qemu-system-x86_64` (Debian/Ubuntu: `apt-get
//! install qemu-system-x86`); where it is not installed (the nested real-KVM lane has none) they
//! are skipped and counted as such (`tests/common/skip.rs`). The minikvm tests ask `minikvm doctor`
//! whether this host's KVM can run what the case needs and skip themselves elsewhere.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// One flavour of the 1K OS and how to run it.
pub struct Flavour {
    /// minikvm's built-in name.
    pub builtin: &'static str,
    /// The Multiboot ELF32 file build.rs leaves in `target/<profile>/guests/`.
    pub kernel_file: &'static str,
    pub qemu: &'static str,
    /// What minikvm needs of the host's KVM to boot the kernel to its menu, and to run programs.
    pub kernel_probe: &'static str,
    pub user_probe: &'static str,
    /// The kernel's first address, as the kernel and the `f` program print it.
    pub kernel_text: &'static str,
    pub paging_root: &'static str,
    pub pc: &'static str,
    pub mode: &'static str,
}

pub const I386: Flavour = Flavour {
    builtin: "os-1k32",
    kernel_file: "kernel.elf",
    qemu: "qemu-system-i386",
    kernel_probe: "paging",
    user_probe: "paging",
    kernel_text: "0xc0100000",
    paging_root: "page directory",
    pc: "eip",
    mode: "32-bit protected mode with paging",
};

/// Long mode with paging runs on more KVMs than ring-3 system calls in it do (this project's own
/// machines run the first, not the second): the kernel's own boot and menu ask only `longmode`.
pub const X86_64: Flavour = Flavour {
    builtin: "os-1k64",
    kernel_file: "kernel64.elf",
    qemu: "qemu-system-x86_64",
    kernel_probe: "longmode",
    user_probe: "usercall",
    kernel_text: "0xffffffff80100000",
    paging_root: "PML4",
    pc: "rip",
    mode: "64-bit long mode with 4-level paging",
};

/// One scripted session at the 1K OS console.
pub struct Case {
    /// What is typed, all of it at once; it must end by choosing `0` (power off).
    pub input: &'static str,
    /// Substrings the console output must contain, in this order (line ends as "\n").
    pub expect: Vec<String>,
    /// Substrings expected, in this order, only under minikvm (e.g. its CPUID signature).
    pub expect_minikvm: Vec<String>,
    /// A check that needs more than substrings (numbers that must grow, text that must be absent).
    pub check: fn(&str),
    /// False when the session runs no program in ring 3 (only the kernel and its shell).
    pub user_programs: bool,
}

/// The menu, as the shell prints it before every prompt.
pub const MENU: &str = "1K OS menu:
  1  multiplication table
  2  counter
  3  echo
  4  Fibonacci numbers
  5  prime numbers
  6  calculator
  7  factorials
  8  greatest common divisor
  9  about 1K OS
  0  power off
choice> ";

/// Defines each case once, as a function of the flavour (named by the first token) returning it.
macro_rules! os1k_cases {
    ($f:ident; $($case:ident {
        input: $input:expr,
        expect: [$($expect:expr),* $(,)?]
        $(, expect_minikvm: [$($extra:expr),* $(,)?])?
        $(, check: $check:expr)?
        $(, user_programs: $user:expr)?
        $(,)?
    })*) => {
        $(
            #[allow(unused_variables)]
            pub fn $case($f: &Flavour) -> Case {
                Case {
                    input: $input,
                    expect: vec![$(String::from($expect)),*],
                    expect_minikvm: vec![$($(String::from($extra)),*)?],
                    check: os1k_cases!(@check $($check)?),
                    user_programs: os1k_cases!(@user $($user)?),
                }
            }
        )*
    };
    (@check) => { |_: &str| {} };
    (@check $check:expr) => { $check };
    (@user) => { true };
    (@user $user:expr) => { $user };
}

os1k_cases! { f;
    boot {
        input: "0\n",
        expect: [
            "1K OS booting\n",
            "paging on (CR0=0x8",
            format!("kernel at {}, {} at physical 0x", f.kernel_text, f.paging_root),
            MENU,
            "0\n1K OS: power off\n",
        ],
        user_programs: false,
    }

    multiplication_table {
        input: "1\n0\n",
        expect: [
            "choice> 1\nmultiplication table:\n2 x 1 = 2\n2 x 2 = 4\n",
            "2 x 9 = 18\n3 x 1 = 3\n",
            "7 x 8 = 56\n",
            "9 x 9 = 81\n",
            MENU,
            "1K OS: power off",
        ],
    }

    counter {
        input: "2\n0\n",
        expect: [
            "counting from 0 to 9, one number every 10 ticks:\n0\n1\n2\n3\n4\n5\n6\n7\n8\n9\ndone, that took ",
            MENU,
            "1K OS: power off",
        ],
        check: |out| {
            let took = number_after(out, "done, that took ");
            assert!(took >= 100, "10 sleeps of 10 ticks took only {took} ticks");
        },
    }

    echo {
        input: "3\nhello world\nhelo\x08\x08llo\nab\x7fc\n\nquit\n0\n",
        expect: [
            "echo: type a line and I repeat it; \"quit\" ends\n",
            "echo> hello world\nyou typed: hello world\n",
            // backspace (0x08) and delete (0x7F) each erase one character on screen and in the line
            "echo> helo\x08 \x08\x08 \x08llo\nyou typed: hello\n",
            "echo> ab\x08 \x08c\nyou typed: ac\n",
            "echo> \nyou typed: \n",
            "echo> quit\n",
            MENU,
            "1K OS: power off",
        ],
    }

    line_ends {
        // Terminals send "\r" for Enter; "\r\n" must count as one line end, "\r\r" as two.
        input: "3\r\nab\r\rquit\r\n0\r\n",
        expect: [
            "\"quit\" ends\necho> ab\nyou typed: ab\necho> \nyou typed: \necho> quit\n",
            MENU,
            "0\n1K OS: power off",
        ],
    }

    fibonacci {
        input: "4\n0\n",
        expect: [
            "the first 15 Fibonacci numbers:\n0 1 1 2 3 5 8 13 21 34 55 89 144 233 377\n",
            MENU,
            "1K OS: power off",
        ],
    }

    primes {
        input: "5\n0\n",
        expect: [
            "prime numbers up to 100:\n2 3 5 7 11 13 17 19 23 29 31 37 41 43 47 53 59 61 67 71 73 79 83 89 97\n",
            "that is 25 primes\n",
            MENU,
            "1K OS: power off",
        ],
    }

    calculator {
        input: "6\n12 * -3\n100 / 7\n-5 - 10\n  2+2  \n-7 / 2\nq\n0\n",
        expect: [
            "calculator: type <number> <op> <number>",
            "calc> 12 * -3\n= -36\n",
            "calc> 100 / 7\n= 14\n",
            "calc> -5 - 10\n= -15\n",
            "calc>   2+2  \n= 4\n",
            "calc> -7 / 2\n= -3\n",
            "calc> q\n",
            MENU,
            "1K OS: power off",
        ],
    }

    calculator_errors {
        input: "6\n7 / 0\n-2147483648 / -1\n2147483647 + 1\n-2147483648 - 1\n65536 * 65536\n\
                -2147483648 + 0\n99999999999 + 1\nhello\n3 ^ 4\n1 +\n1 + 2 3\n\nq\n4\n0\n",
        expect: [
            "calc> 7 / 0\nerror: division by zero\n",
            "calc> -2147483648 / -1\nerror: overflow, the result does not fit in 32 bits\n",
            "calc> 2147483647 + 1\nerror: overflow",
            "calc> -2147483648 - 1\nerror: overflow",
            "calc> 65536 * 65536\nerror: overflow",
            "calc> -2147483648 + 0\n= -2147483648\n",
            "calc> 99999999999 + 1\nerror: number too big for 32 bits",
            "calc> hello\nerror: I understand <number> <op> <number>",
            "calc> 3 ^ 4\nerror: unknown operator '^'",
            "calc> 1 +\nerror: I understand",
            "calc> 1 + 2 3\nerror: I understand",
            "calc> \ncalc> q\n",
            MENU,
            // the kernel survived all of that: another program still runs
            "0 1 1 2 3 5 8 13 21 34 55 89 144 233 377\n",
            "1K OS: power off",
        ],
    }

    factorials {
        input: "7\n0\n",
        expect: [
            "factorials:\n0! = 1\n1! = 1\n2! = 2\n3! = 6\n",
            "10! = 3628800\n11! = 39916800\n12! = 479001600\n",
            "13! does not fit in 32 bits",
            MENU,
            "1K OS: power off",
        ],
    }

    gcd {
        input: "8\nfoo\n84 36\n0\n",
        expect: [
            "greatest common divisor, by Euclid's algorithm:\n",
            "gcd(48, 18):\n  48 = 2 x 18 + 12\n  18 = 1 x 12 + 6\n  12 = 2 x 6 + 0\n  so gcd(48, 18) = 6\n",
            "so gcd(1071, 462) = 21\n",
            "so gcd(17, 5) = 1\n",
            "your turn, two numbers (0 or more): foo\nerror: I need two numbers",
            "your turn, two numbers (0 or more): 84 36\ngcd(84, 36):\n  84 = 2 x 36 + 12\n  36 = 3 x 12 + 0\n  so gcd(84, 36) = 12\n",
            MENU,
            "1K OS: power off",
        ],
    }

    about {
        input: "9\n0\n",
        expect: [
            format!("choice> 9\n1K OS: a small teaching operating system. {}; each\n", f.mode),
            "\nuptime: ",
            "\ninterrupts: irq0=",
            "\nCR0=0x8",
            "(PE=1 PG=1)",
            "\nCR3=0x",
            format!(": this program's {}", f.paging_root),
            "\nrunning in ring 3 (CS=0x1b)\n",
            "hypervisor: ",
            MENU,
            "1K OS: power off",
        ],
        expect_minikvm: ["hypervisor: minikvm\n"],
        check: |out| {
            let cr3 = hex_after(out, "\nCR3=0x");
            assert!(cr3 != 0 && cr3 % 4096 == 0, "CR3=0x{cr3:08x} is no page directory address");
        },
    }

    user_fault {
        // A ring-3 program reads kernel memory: it dies, the kernel and the shell live on.
        input: "f\n4\n0\n",
        expect: [
            format!("choice> f\nreading kernel memory at {} from ring 3...\n", f.kernel_text),
            format!("[killed: page fault at {}, {}=0x004", f.kernel_text, f.pc),
            MENU,
            "0 1 1 2 3 5 8 13 21 34 55 89 144 233 377\n",
            "1K OS: power off",
        ],
        check: |out| {
            assert!(!out.contains("not protected"), "a ring-3 program read kernel memory");
        },
    }

    unknown_choice {
        input: "x\n\n42\n0\n",
        expect: [
            "choice> x\nunknown choice \"x\": type one of the numbers in the menu\n",
            "choice> \n",
            "choice> 42\nunknown choice \"42\"",
            "1K OS: power off",
        ],
        user_programs: false,
    }

    timer_and_interrupts {
        // All input is there at once, so the first `about` may come before the first tick; the
        // counter in between sleeps 100 ticks, which the second must show.
        input: "9\n2\n9\n0\n",
        expect: ["uptime: ", "done, that took ", "uptime: ", "1K OS: power off"],
        check: |out| {
            let first = number_after(out, "uptime: ");
            let later = &out[out.find("done, that took ").unwrap()..];
            let second = number_after(later, "uptime: ");
            assert!(second >= first + 100, "uptime went from {first} to only {second} ticks");
            let irq0 = number_after(later, "irq0=");
            let irq4 = number_after(later, "irq4=");
            assert!(irq0 >= 100, "only {irq0} timer interrupts (IRQ 0) arrived");
            assert!(irq4 > 0, "no console interrupt (IRQ 4) arrived, yet the input was read");
        },
    }
}

/// The tests of one flavour: `qemu_<case>` and `minikvm_<case>` for every case above.
#[macro_export]
macro_rules! os1k_suite {
    ($flavour:expr; $($case:ident ($qemu:ident, $minikvm:ident)),* $(,)?) => {
        $(
            #[test]
            fn $qemu() {
                os1k::run_qemu(&$flavour, stringify!($qemu), &os1k::$case(&$flavour));
            }

            #[test]
            fn $minikvm() {
                os1k::run_minikvm(&$flavour, stringify!($minikvm), &os1k::$case(&$flavour));
            }
        )*
    };
    ($flavour:expr) => {
        os1k_suite!($flavour; boot (qemu_boot, minikvm_boot),
            multiplication_table (qemu_multiplication_table, minikvm_multiplication_table),
            counter (qemu_counter, minikvm_counter),
            echo (qemu_echo, minikvm_echo),
            line_ends (qemu_line_ends, minikvm_line_ends),
            fibonacci (qemu_fibonacci, minikvm_fibonacci),
            primes (qemu_primes, minikvm_primes),
            calculator (qemu_calculator, minikvm_calculator),
            calculator_errors (qemu_calculator_errors, minikvm_calculator_errors),
            factorials (qemu_factorials, minikvm_factorials),
            gcd (qemu_gcd, minikvm_gcd),
            about (qemu_about, minikvm_about),
            user_fault (qemu_user_fault, minikvm_user_fault),
            unknown_choice (qemu_unknown_choice, minikvm_unknown_choice),
            timer_and_interrupts (qemu_timer_and_interrupts, minikvm_timer_and_interrupts));
    };
}

/// The kernel that `cargo build` made from os-1k/, beside the minikvm binary under test.
pub fn kernel_elf(flavour: &Flavour) -> PathBuf {
    let exe = Path::new(env!("CARGO_BIN_EXE_minikvm"));
    let elf = exe.parent().expect("the binary has a directory").join("guests").join(flavour.kernel_file);
    assert!(elf.exists(), "{} is missing: `cargo build` builds it from os-1k/", elf.display());
    elf
}

pub fn run_qemu(flavour: &Flavour, test: &str, case: &Case) {
    if crate::common::skip_unless_installed(flavour.qemu, test) {
        return; // e.g. in the nested lane, which has no QEMU
    }
    let qemu_name = flavour.qemu;
    // -display none, not -nographic: with -nographic the firmware (SeaBIOS) also reads the serial
    // port, and eats input meant for the OS. isa-debug-exit at 0x500 turns the EXIT hypercall
    // into QEMU's exit, with status (0 << 1) | 1 = 1.
    let mut qemu = Command::new(qemu_name);
    qemu.arg("-kernel")
        .arg(kernel_elf(flavour))
        .args(["-display", "none", "-nodefaults", "-no-reboot", "-m", "32"])
        .args(["-device", "isa-debug-exit,iobase=0x500,iosize=1"])
        .args(["-monitor", "none", "-serial", "stdio"]);
    let (status, out, err) = match run_with_timeout(qemu, case.input, Duration::from_secs(60)) {
        Ok(done) => done,
        Err(e) => panic!("{test}: cannot run {qemu_name}: {e}"),
    };
    let Some(status) = status else {
        panic!("{test}: QEMU did not power off within 60 s\n--- output ---\n{out}\n--- stderr ---\n{err}");
    };
    check_output(test, case, &out, false);
    assert_eq!(status.code(), Some(1), "{test}: QEMU's exit status is not the power-off one\nstderr: {err}");
}

pub fn run_minikvm(flavour: &Flavour, test: &str, case: &Case) {
    let probe = if case.user_programs { flavour.user_probe } else { flavour.kernel_probe };
    if crate::common::skip_unless(probe, test) {
        return;
    }
    // From a directory without an `os-1k/` in it: a path there would be taken for the guest.
    let output = crate::common::minikvm()
        .current_dir(std::env::temp_dir())
        // Every script ends with `0` (power off); a generous end-of-input grace keeps a slow
        // emulated host (the nested lane) from ending a quiet program, e.g. the sleeping counter.
        .args(["--eof-grace", "60", flavour.builtin])
        .write_stdin(case.input)
        .output()
        .expect("minikvm runs");
    let out = String::from_utf8_lossy(&output.stdout).replace('\r', "");
    let err = String::from_utf8_lossy(&output.stderr);
    // Shown by libtest when a check below fails: how minikvm ended says why output may be missing.
    println!("{test}: minikvm ended with {}; its stderr:\n{err}", output.status);
    check_output(test, case, &out, true);
    assert!(output.status.success(), "{test}: minikvm failed ({})\nstderr: {err}", output.status);
}

/// Runs `cmd` with `input` on stdin; returns its status (None if it had to be killed after
/// `limit`), stdout with "\r" removed, and stderr.
fn run_with_timeout(
    mut cmd: Command,
    input: &str,
    limit: Duration,
) -> std::io::Result<(Option<std::process::ExitStatus>, String, String)> {
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    // The scripts are far smaller than a pipe buffer, so this cannot block. Dropping stdin closes it.
    child.stdin.take().expect("piped").write_all(input.as_bytes())?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });

    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(20));
    };
    let out = String::from_utf8_lossy(&out_reader.join().unwrap_or_default()).replace('\r', "");
    let err = String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).into_owned();
    Ok((status, out, err))
}

fn check_output(test: &str, case: &Case, out: &str, minikvm: bool) {
    expect_in_order(test, &case.expect, out);
    if minikvm {
        expect_in_order(test, &case.expect_minikvm, out);
    }
    (case.check)(out);
}

fn expect_in_order(test: &str, expected: &[String], out: &str) {
    let mut rest = out;
    for want in expected {
        match rest.find(want) {
            Some(at) => rest = &rest[at + want.len()..],
            None => panic!("{test}: expected {want:?} (after the previous expectations) in the console output:\n{out}"),
        }
    }
}

/// The decimal number right after the first `label` in `text`.
pub fn number_after(text: &str, label: &str) -> u64 {
    let at = text.find(label).unwrap_or_else(|| panic!("no {label:?} in the output:\n{text}")) + label.len();
    let digits: String = text[at..].chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().unwrap_or_else(|_| panic!("no number after {label:?}:\n{text}"))
}

/// The hexadecimal number right after the first `label` in `text`.
pub fn hex_after(text: &str, label: &str) -> u64 {
    let at = text.find(label).unwrap_or_else(|| panic!("no {label:?} in the output:\n{text}")) + label.len();
    let digits: String = text[at..].chars().take_while(|c| c.is_ascii_hexdigit()).collect();
    u64::from_str_radix(&digits, 16).unwrap_or_else(|_| panic!("no hex number after {label:?}:\n{text}"))
}

/// The kernel file itself, as a Multiboot loader (minikvm, QEMU, GRUB) needs it: an ELF32 file for
/// EM_386 with a Multiboot header and physical load and entry addresses.
pub fn assert_multiboot_elf32(flavour: &Flavour) {
    let image = std::fs::read(kernel_elf(flavour)).expect("the kernel file is readable");
    assert_eq!(&image[..5], b"\x7fELF\x01", "not a 32-bit ELF file");
    assert_eq!(u16::from_le_bytes([image[18], image[19]]), 3, "not EM_386, which Multiboot loaders want");
    let word = |at: usize| u32::from_le_bytes(image[at..at + 4].try_into().unwrap());
    let half = |at: usize| u16::from_le_bytes(image[at..at + 2].try_into().unwrap()) as usize;

    // The Multiboot header: magic, flags, checksum, 4-byte aligned, within the first 8 KiB.
    let header = (0..8192.min(image.len()) - 12)
        .step_by(4)
        .find(|&at| word(at) == 0x1BAD_B002)
        .expect("no Multiboot header in the first 8 KiB");
    let sum = word(header).wrapping_add(word(header + 4)).wrapping_add(word(header + 8));
    assert_eq!(sum, 0, "Multiboot header checksum is wrong");
    assert_eq!(word(header + 4) & 0x0001_0000, 0, "the loader should use the ELF headers (flag 16 clear)");

    // The entry point and every loaded segment's physical address lie in low memory: the loader
    // runs the kernel with paging off, though the kernel is linked high.
    let entry = word(24);
    assert!((0x10_0000..0x40_0000).contains(&entry), "entry 0x{entry:x} is not a physical address");
    let (phoff, phentsize, phnum) = (word(28) as usize, half(42), half(44));
    let mut loads = 0;
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        if word(ph) == 1 {
            let paddr = word(ph + 12);
            assert!((0x10_0000..0x40_0000).contains(&paddr), "a segment loads at 0x{paddr:x}");
            loads += 1;
        }
    }
    assert!(loads > 0, "no PT_LOAD segment");
}
