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
            return Err(Error::usage(format!("`{arg}` is neither a file nor a built-in guest (see `minikvm list`)")));
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
    let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| shown.to_string());
    Ok(Guest { name, source: shown.to_string(), bytes, elf_path: None })
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
