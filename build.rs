//! Builds every guest with the system toolchain, so that `cargo build` builds everything.
//!
//! * `guest/*.S` — real-mode flat guests. Each is assembled with `as --32`, linked at address 0 with
//!   `guest/guest.ld` into an ELF (kept, with symbols, for gdb) and cut to a flat binary with
//!   `objcopy -O binary`. The first line of each file is `# minikvm-guest: <one-line description>`.
//!   A second line `# minikvm-mode: long` marks a 64-bit guest (`--long-mode`): `as --64`, linked
//!   with `guest/guest64.ld`.
//! * `guest/seed/*.S` — flat 32-bit kernels for `--paging` (seed compatibility mode).
//! * `guest/probe/*.S` — the tiny guests of `minikvm doctor`'s probes, one per probe, named by it;
//!   built like the flat guests (`# minikvm-probe: <what it checks>` first) into
//!   `target/<profile>/guests/probe/`, and embedded through `$OUT_DIR/probe_guests.rs`.
//! * `guest/test-kernels/*.S` — small Multiboot kernels for the tests only (not built-in guests),
//!   linked at 1 MiB (or where a `# link-address:` line says) into `$OUT_DIR/test-kernels/NAME.elf`,
//!   which the tests embed.
//! * `os-1k/` — the 1K OS, in two flavours from the same shared C code: every `.c` and `.S` below
//!   `os-1k/` except `os-1k/arch/`, plus those of one `os-1k/arch/<arch>/`, compiled with
//!   `gcc -ffreestanding` and linked with that directory's `kernel.ld`. i386 (`-m32`): one
//!   Multiboot ELF32 kernel, `kernel.elf`. x86_64 (`-m64`): an ELF64, `kernel64-symbols.elf` (for
//!   gdb), whose loadable bytes `objcopy` puts into the Multiboot ELF32 file `kernel64.elf`.
//!
//! The outputs land in `target/<profile>/guests/` (stable paths a student can hand to gdb or QEMU) and a table
//! of them is generated into `$OUT_DIR/builtin_guests.rs`, which `src/guests.rs` includes. The
//! binaries are also embedded, so `minikvm hello` works wherever the binary is copied.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{exit, Command};

// The real-mode window (src/boot/window.rs): a flat guest must fit in it.
#[path = "src/boot/window.rs"]
mod window;
const MAX_FLAT: u64 = window::WINDOW as u64;

fn main() {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    // OUT_DIR is target/<profile>/build/minikvm-<hash>/out; the guests go to target/<profile>/guests.
    let dest = out_dir.ancestors().nth(3).unwrap_or(&out_dir).join("guests");
    fs::create_dir_all(&dest).unwrap_or_else(|e| fail(&format!("cannot create {}: {e}", dest.display())));

    for tool in ["as", "ld", "objcopy", "gcc"] {
        if Command::new(tool).arg("--version").output().is_err() {
            fail(&format!(
                "`{tool}` not found: minikvm builds its guests with GNU binutils and gcc \
                 (Debian/Ubuntu: apt-get install binutils gcc gcc-multilib)"
            ));
        }
    }

    println!("cargo:rerun-if-changed=guest");
    println!("cargo:rerun-if-changed=os-1k");
    println!("cargo:rerun-if-changed=build.rs");

    let mut table = String::from("&[\n");
    for g in flat_guests(&root, &dest) {
        writeln!(
            table,
            "    BuiltinGuest {{ name: {:?}, description: {:?}, kind: GuestKind::{}, image: include_bytes!({:?}), bin_path: {:?}, elf_path: {:?} }},",
            g.name, g.description, if g.long_mode {"LongMode"} else {"Flat"}, g.bin, g.bin, g.elf
        )
        .ok();
    }
    seed_kernels(&root, &dest);
    probe_guests(&root, &dest, &out_dir);
    test_kernels(&root, &out_dir);
    if let Some(elf) = os_1k(&root, &dest, &OS_1K_I386, "kernel.elf") {
        writeln!(
            table,
            "    BuiltinGuest {{ name: \"os-1k32\", description: \"the 1K OS on i386: 32-bit protected mode, paging, ring-3 programs, timer and console interrupts\", kind: GuestKind::Multiboot, image: include_bytes!({elf:?}), bin_path: {elf:?}, elf_path: {elf:?} }},"
        )
        .ok();
    }
    if let Some(symbols) = os_1k(&root, &dest, &OS_1K_X86_64, "kernel64-symbols.elf") {
        let elf = multiboot_elf32(&symbols, &dest.join("kernel64.elf"));
        writeln!(
            table,
            "    BuiltinGuest {{ name: \"os-1k64\", description: \"the 1K OS on x86-64: long mode, 4-level paging, ring-3 programs, timer and console interrupts\", kind: GuestKind::Multiboot, image: include_bytes!({elf:?}), bin_path: {elf:?}, elf_path: {symbols:?} }},"
        )
        .ok();
    }
    table.push_str("]\n");
    fs::write(out_dir.join("builtin_guests.rs"), table)
        .unwrap_or_else(|e| fail(&format!("cannot write the guest table: {e}")));
}

struct Flat {
    name: String,
    description: String,
    bin: String,
    elf: String,
    long_mode: bool,
}

fn flat_guests(root: &Path, dest: &Path) -> Vec<Flat> {
    let dir = root.join("guest");
    let script = dir.join("guest.ld");
    let script64 = dir.join("guest64.ld");
    let mut sources: Vec<PathBuf> = match fs::read_dir(&dir) {
        Ok(rd) => {
            rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "S")).collect()
        }
        Err(_) => return Vec::new(),
    };
    sources.sort();
    let mut guests = Vec::new();
    for src in sources {
        let name = src.file_stem().unwrap_or_default().to_string_lossy().into_owned();
        let text = fs::read_to_string(&src).unwrap_or_default();
        let description = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# minikvm-guest:"))
            .map(|d| d.trim().to_string())
            .unwrap_or_else(|| {
                fail(&format!("{}: first line must be `# minikvm-guest: <description>`", src.display()))
            });
        let long_mode = text.lines().nth(1).is_some_and(|l| l.trim() == "# minikvm-mode: long");
        let (as_flag, emulation, script) =
            if long_mode { ("--64", "elf_x86_64", &script64) } else { ("--32", "elf_i386", &script) };
        let obj = dest.join(format!("{name}.o"));
        let elf = dest.join(format!("{name}.elf"));
        let bin = dest.join(format!("{name}.bin"));
        run(Command::new("as").args([as_flag, "-g", "-o"]).arg(&obj).arg(&src));
        run(Command::new("ld").args(["-m", emulation, "-T"]).arg(script).arg("-o").arg(&elf).arg(&obj));
        run(Command::new("objcopy").args(["-O", "binary"]).arg(&elf).arg(&bin));
        let size = fs::metadata(&bin).map(|m| m.len()).unwrap_or(0);
        if size == 0 || size > MAX_FLAT {
            fail(&format!("guest {name}: flat binary is {size} bytes (must be 1 to {MAX_FLAT})"));
        }
        guests.push(Flat {
            name,
            description,
            bin: bin.to_string_lossy().into_owned(),
            elf: elf.to_string_lossy().into_owned(),
            long_mode,
        });
    }
    guests
}

/// `guest/probe/*.S`: the probe guests, as flat binaries linked at 0 (each places its code and
/// tables with `.org`), and a table `(name, image)` of them in `$OUT_DIR/probe_guests.rs`.
fn probe_guests(root: &Path, dest: &Path, out_dir: &Path) {
    let dir = root.join("guest/probe");
    let dest = dest.join("probe");
    fs::create_dir_all(&dest).unwrap_or_else(|e| fail(&format!("cannot create {}: {e}", dest.display())));
    let mut sources: Vec<PathBuf> = match fs::read_dir(&dir) {
        Ok(rd) => {
            rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "S")).collect()
        }
        Err(_) => Vec::new(),
    };
    sources.sort();
    let mut table = String::from("&[\n");
    for src in sources {
        let name = src.file_stem().unwrap_or_default().to_string_lossy().into_owned();
        let text = fs::read_to_string(&src).unwrap_or_default();
        if !text.starts_with("# minikvm-probe:") {
            fail(&format!("{}: first line must be `# minikvm-probe: <what it checks>`", src.display()));
        }
        let long_mode = text.lines().nth(1).is_some_and(|l| l.trim() == "# minikvm-mode: long");
        let (as_flag, emulation, script) =
            if long_mode { ("--64", "elf_x86_64", "guest64.ld") } else { ("--32", "elf_i386", "guest.ld") };
        let (obj, elf, bin) =
            (dest.join(format!("{name}.o")), dest.join(format!("{name}.elf")), dest.join(format!("{name}.bin")));
        run(Command::new("as").args([as_flag, "-g", "-I"]).arg(&dir).arg("-o").arg(&obj).arg(&src));
        run(Command::new("ld")
            .args(["-m", emulation, "-T"])
            .arg(root.join("guest").join(script))
            .arg("-o")
            .arg(&elf)
            .arg(&obj));
        run(Command::new("objcopy").args(["-O", "binary"]).arg(&elf).arg(&bin));
        writeln!(table, "    ({name:?}, include_bytes!({:?})),", bin.to_string_lossy()).ok();
    }
    table.push_str("]\n");
    fs::write(out_dir.join("probe_guests.rs"), table)
        .unwrap_or_else(|e| fail(&format!("cannot write the probe table: {e}")));
}

/// `guest/seed/*.S`: flat 32-bit kernels for the seed compatibility mode (`--paging FILE`), linked
/// at its default entry 0x80001000 and left as `target/<profile>/guests/seed/NAME.bin`.
fn seed_kernels(root: &Path, dest: &Path) {
    let Ok(rd) = fs::read_dir(root.join("guest/seed")) else { return };
    let out = dest.join("seed");
    fs::create_dir_all(&out).unwrap_or_else(|e| fail(&format!("cannot create {}: {e}", out.display())));
    for src in rd.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "S")) {
        let name = src.file_stem().unwrap_or_default().to_string_lossy().into_owned();
        let obj = out.join(format!("{name}.o"));
        run(Command::new("as").args(["--32", "-o"]).arg(&obj).arg(&src));
        run(Command::new("ld")
            .args(["-m", "elf_i386", "-Ttext", "0x80001000", "--oformat", "binary", "-o"])
            .arg(out.join(format!("{name}.bin")))
            .arg(&obj));
    }
}

/// `guest/test-kernels/*.S`: Multiboot kernels that the tests run (`lib.inc` holds their shared parts).
fn test_kernels(root: &Path, out_dir: &Path) {
    let dir = root.join("guest/test-kernels");
    let Ok(rd) = fs::read_dir(&dir) else { return };
    let out = out_dir.join("test-kernels");
    fs::create_dir_all(&out).unwrap_or_else(|e| fail(&format!("cannot create {}: {e}", out.display())));
    for src in rd.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "S")) {
        let name = src.file_stem().unwrap_or_default().to_string_lossy().into_owned();
        let obj = out.join(format!("{name}.o"));
        run(Command::new("as").args(["--32", "-I"]).arg(&dir).arg("-o").arg(&obj).arg(&src));
        // A kernel may ask for another place with a line `# link-address: 0x8000`.
        let text = fs::read_to_string(&src).unwrap_or_default();
        let at = text.lines().find_map(|l| l.strip_prefix("# link-address: ")).unwrap_or("0x100000").trim();
        run(Command::new("ld")
            .args(["-m", "elf_i386", "-Ttext", at, "-e", "_start", "-o"])
            .arg(out.join(format!("{name}.elf")))
            .arg(&obj));
    }
}

/// One flavour of the 1K OS: the shared code in `os-1k/` plus the files of `os-1k/arch/<arch>/`.
struct Flavour {
    arch: &'static str,
    /// Where its objects go, under `target/<profile>/guests/`; its linker script finds the user
    /// programs' objects by this name (`*/os-1k/user_*.o`).
    objdir: &'static str,
    /// gcc flags of this flavour (on top of the common ones), for kernel files and user files.
    kernel_cflags: &'static [&'static str],
    user_cflags: &'static [&'static str],
    ld_emulation: &'static str,
}

const OS_1K_I386: Flavour = Flavour {
    arch: "i386",
    objdir: "os-1k",
    kernel_cflags: &["-m32"],
    user_cflags: &["-m32"],
    ld_emulation: "elf_i386",
};

/// The x86-64 kernel runs in the top 2 GiB of the address space (`-mcmodel=kernel`, where a
/// symbol's address is a sign-extended 32-bit number) and must not use the 128-byte "red zone"
/// below its stack pointer, which an interrupt in ring 0 would overwrite. The user programs run
/// at 0x400000, in the low 2 GiB: the ordinary small model.
const OS_1K_X86_64: Flavour = Flavour {
    arch: "x86_64",
    objdir: "os-1k64",
    kernel_cflags: &["-m64", "-mcmodel=kernel", "-mno-red-zone"],
    user_cflags: &["-m64", "-mcmodel=small", "-mno-red-zone"],
    ld_emulation: "elf_x86_64",
};

/// Compiles and links one flavour of the 1K OS; returns the ELF (with symbols) it linked.
fn os_1k(root: &Path, dest: &Path, flavour: &Flavour, elf_name: &str) -> Option<PathBuf> {
    let dir = root.join("os-1k");
    let arch_dir = dir.join("arch").join(flavour.arch);
    let script = arch_dir.join("kernel.ld");
    if !script.exists() {
        return None;
    }
    let mut sources = Vec::new();
    collect(&dir, &mut sources);
    // The shared files, and this flavour's own: never another architecture's.
    sources.retain(|p| !p.starts_with(dir.join("arch")) || p.starts_with(&arch_dir));
    sources.sort();
    let objdir = dest.join(flavour.objdir);
    fs::create_dir_all(&objdir).unwrap_or_else(|e| fail(&format!("cannot create {}: {e}", objdir.display())));
    let mut objects = Vec::new();
    for src in &sources {
        let rel = src.strip_prefix(&dir).unwrap_or(src);
        let obj = objdir.join(rel.to_string_lossy().replace('/', "_") + ".o");
        let arch_flags = if rel.starts_with("user") { flavour.user_cflags } else { flavour.kernel_cflags };
        run(Command::new("gcc")
            .args(arch_flags)
            .args([
                "-ffreestanding",
                "-fno-pie",
                "-fno-pic",
                "-fno-stack-protector",
                "-fno-asynchronous-unwind-tables",
                "-mno-sse",
                "-mno-mmx",
                "-mno-80387",
                "-nostdlib",
                "-O1",
                "-g",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-std=gnu11",
            ])
            .arg("-I")
            .arg(dir.join("include"))
            .arg("-I")
            .arg(arch_dir.join("include"))
            .arg("-c")
            .arg(src)
            .arg("-o")
            .arg(&obj));
        objects.push(obj);
    }
    let elf = dest.join(elf_name);
    run(Command::new("ld")
        .args(["-m", flavour.ld_emulation, "-nostdlib", "-T"])
        .arg(&script)
        .arg("-o")
        .arg(&elf)
        .args(&objects));
    Some(elf)
}

/// The 64-bit kernel as a Multiboot loader takes it: an ELF32 file. Loaders (QEMU's -kernel,
/// minikvm, GRUB's `multiboot`) use only the program headers' physical addresses and the
/// (physical) entry point, which objcopy carries over from the ELF64 file unchanged; the virtual
/// addresses, which need 64 bits, would be cut to 32, so the symbols and debug sections are left
/// out (gdb reads them from the ELF64 file).
fn multiboot_elf32(elf64: &Path, out: &Path) -> PathBuf {
    run(Command::new("objcopy").args(["-O", "elf32-i386", "--strip-all"]).arg(elf64).arg(out));
    out.to_path_buf()
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for entry in rd.flatten() {
        let p = entry.path();
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|x| x == "c" || x == "S") {
            out.push(p);
        }
    }
}

fn run(cmd: &mut Command) {
    let shown = format!("{cmd:?}");
    match cmd.output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            eprintln!("{}", String::from_utf8_lossy(&o.stderr));
            fail(&format!("guest build step failed: {shown}"));
        }
        Err(e) => fail(&format!("cannot run {shown}: {e}")),
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    exit(1)
}
