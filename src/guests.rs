//! The built-in guests (assembled and compiled by build.rs) and how a guest argument is resolved.

use crate::boot::realmode::WINDOW;
use crate::error::{Error, Result};
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestKind {
    /// A real-mode flat binary (the Mini-KVM ABI).
    Flat,
    /// A Multiboot ELF32 kernel.
    Multiboot,
    /// A 64-bit flat binary, entered in long mode (`--long-mode`).
    LongMode,
}

/// A guest built into minikvm.
#[derive(Debug)]
pub struct BuiltinGuest {
    pub name: &'static str,
    pub description: &'static str,
    pub kind: GuestKind,
    pub image: &'static [u8],
    /// Where build.rs left the binary and the ELF with symbols (for gdb).
    pub bin_path: &'static str,
    pub elf_path: &'static str,
}

pub static BUILTIN: &[BuiltinGuest] = include!(concat!(env!("OUT_DIR"), "/builtin_guests.rs"));

/// `os-1k` names no file of its own: a run probes which flavour to boot
/// ([`crate::os1k_flavour`]). As a name to look up, it stands for `os-1k32`.
pub const OS_1K: &str = "os-1k";

pub fn builtin(name: &str) -> Option<&'static BuiltinGuest> {
    let name = if name == OS_1K { "os-1k32" } else { name };
    BUILTIN.iter().find(|g| g.name == name)
}

/// A guest ready to boot: its display name, bytes and (if known) ELF with symbols.
#[derive(Debug, Clone)]
pub struct Guest {
    pub name: String,
    /// The argument it came from (a built-in name or a path), for messages.
    pub source: String,
    pub bytes: Vec<u8>,
    pub elf_path: Option<String>,
}

/// Biggest kernel file accepted (a Multiboot kernel must fit in guest RAM anyway).
const MAX_KERNEL_FILE: u64 = 64 << 20;

/// Resolves a GUEST argument. A built-in name wins over a file of the same name in the current
/// directory (write `./hello` for the file); anything else is a path.
pub fn resolve(arg: &str) -> Result<Guest> {
    if arg == OS_1K {
        return resolve(crate::os1k_flavour::choose()?);
    }
    if !arg.contains('/') {
        if let Some(g) = builtin(arg) {
            return Ok(Guest {
                name: g.name.into(),
                source: arg.into(),
                bytes: g.image.to_vec(),
                elf_path: Some(g.elf_path.into()),
            });
        }
        if !Path::new(arg).exists() {
            let hint = match closest_name(arg) {
                Some(name) => format!("did you mean {name}?"),
                None => "see `minikvm list`".into(),
            };
            return Err(Error::usage(format!("`{arg}` is neither a file nor a built-in guest: {hint}")));
        }
    }
    load_file(Path::new(arg))
}

fn load_file(path: &Path) -> Result<Guest> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::usage(format!("{shown}: no such file")),
        _ => Error::usage(format!("{shown}: {e}")),
    })?;
    if meta.is_dir() {
        return Err(Error::usage(format!("{shown}: is a directory, not a guest binary")));
    }
    if meta.len() == 0 {
        return Err(Error::usage(format!("{shown}: the file is empty")));
    }
    if meta.len() > MAX_KERNEL_FILE {
        return Err(Error::usage(format!("{shown}: {} bytes is too large for a guest", meta.len())));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::usage(format!("{shown}: {e}")))?;
    if looks_like_text(&bytes) {
        return Err(Error::usage(format!(
            "{shown}: this looks like text (source code?), not a guest binary: assemble it first, \
             or run a built-in guest by name (see `minikvm list`)"
        )));
    }
    // Named by its stem, unless that is a built-in's name: a file `x/hello.bin` is not the
    // built-in `hello`, and a report that said "guest `hello`" would send the student to the
    // wrong code. Then the path as given names it.
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
    let name = match stem {
        Some(stem) if builtin(&stem).is_none() => stem,
        _ => shown.to_string(),
    };
    Ok(Guest { name, source: shown.to_string(), bytes, elf_path: None })
}

/// The built-in name closest to a mistyped one, if it is close enough to be what was meant: at
/// most 2 edits away (a typo or two), and fewer edits than the name has letters.
fn closest_name(typed: &str) -> Option<&'static str> {
    let names = BUILTIN.iter().map(|g| g.name).chain(std::iter::once(OS_1K));
    let (distance, name) = names.map(|n| (strsim::levenshtein(typed, n), n)).min()?;
    (distance <= 2 && distance < typed.len()).then_some(name)
}

/// True when a file's first bytes are all printable text (letters, digits, punctuation, tabs and
/// newlines): assembly source, a README, a hex dump. Machine code has control bytes and bytes
/// above 0x7e within its first few hundred bytes; a text file run as code only ends in a fault
/// that says nothing about the real mistake.
fn looks_like_text(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(512)];
    head.len() >= 16 && head.iter().all(|&b| matches!(b, b'\t' | b'\n' | b'\r' | 0x20..=0x7e))
}

/// Checks that a flat guest fits its 256 KiB window.
pub fn check_flat_size(g: &Guest) -> Result<()> {
    if g.bytes.len() > WINDOW {
        return Err(Error::usage(format!(
            "{}: {} bytes is larger than a real-mode guest's 256 KiB ({WINDOW} bytes) window",
            g.source,
            g.bytes.len()
        )));
    }
    Ok(())
}

/// `minikvm list`.
pub fn list() -> String {
    let mut s = String::new();
    for g in BUILTIN {
        s += &format!("{:<15} {}\n  binary: {}\n  elf:    {}\n", g.name, g.description, g.bin_path, g.elf_path);
    }
    if builtin("os-1k32").is_some() && builtin("os-1k64").is_some() {
        s += &format!(
            "{OS_1K:<15} the 1K OS in the flavour this host's KVM runs: os-1k32 or os-1k64, probed at each run\n"
        );
    }
    s
}
