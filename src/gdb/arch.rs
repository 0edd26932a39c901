//! The gdbstub `Arch` for x86 guests, and its target description XML.
//!
//! # Target descriptions
//!
//! When gdb connects it asks the stub for `target.xml` (packet
//! `qXfer:features:read:target.xml`). The file tells gdb:
//!
//! * the **architecture** (`<architecture>i386</architecture>`): which
//!   disassembler and calling conventions to use. `i8086` makes gdb
//!   disassemble 16-bit code, which is what a CPU in real mode runs;
//! * the **registers**, grouped in *features*, in the order in which they
//!   appear in the `g` packet, with their size and type. gdb recognises the
//!   standard features `org.gnu.gdb.i386.core` and `org.gnu.gdb.i386.sse`
//!   by name; any other feature (ours is `org.minikvm.sys`) is shown
//!   as-is, so `info registers cr0` and `p/x $cr3` just work.
//!
//! The XML here is generated from [`super::regs::REGISTERS`], the same
//! table the register serializer walks, so the two cannot disagree.
//!
//! # Switching between i8086 and i386 at run time
//!
//! `Arch::target_description_xml` is a static function: it cannot know
//! whether the vCPU is in real mode. gdbstub therefore offers the target
//! extension `TargetDescriptionXmlOverride`; a target that implements it
//! serves the XML itself. Both flavours here have the *same* registers and
//! differ only in `<architecture>`, so one `Arch` type and one register
//! layout serve both. Implement the extension with [`serve_target_xml`]
//! and [`TdescFlavour::for_mode`].
//!
//! gdb reads `target.xml` when it connects, and again when told to
//! (`unset tdesc filename`). Between i8086 and i386 `set architecture` is
//! enough (same registers). 64-bit code has other registers: the
//! [`TdescFlavour::X86_64`] description ([`super::tdesc64`]), served when gdb
//! re-reads while the vCPU runs 64-bit code; see [`super::layout`].

#![forbid(unsafe_code)]

use super::layout::GuestRegs;
use super::regs::{Feature, X86RegId, REGISTERS};
use super::tdesc_types::{sys_types, CORE_TYPES, SSE_TYPES};
use crate::x86::mode::CpuMode;
use core::fmt::Write as _;
use gdbstub::arch::Arch;
use std::sync::OnceLock;

/// gdbstub architecture for an x86 guest, with control registers and segment
/// bases visible to gdb: 16/32-bit registers, or x86-64 ones in 64-bit code.
///
/// `Usize` is `u64` so that addresses above 4 GiB (e.g. from a watchpoint
/// request) are not rejected by gdbstub's packet parser; gdb connected to
/// an i386 description only ever sends 32-bit addresses.
pub enum X86Guest {}

impl Arch for X86Guest {
    type Usize = u64;
    type Registers = GuestRegs;
    type BreakpointKind = usize;
    type RegId = X86RegId;

    /// The default (protected-mode) description. A target that implements
    /// `TargetDescriptionXmlOverride` decides at run time instead.
    fn target_description_xml() -> Option<&'static str> {
        Some(TdescFlavour::I386.xml())
    }
}

/// Which `<architecture>` the target description announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TdescFlavour {
    /// `i8086`: gdb disassembles 16-bit code (real mode).
    I8086,
    /// `i386`: gdb disassembles 32-bit code (protected mode).
    I386,
    /// `i386:x86-64`: 64-bit code (long mode), with gdb's x86-64 registers.
    X86_64,
}

impl TdescFlavour {
    /// The flavour matching the code the CPU runs: 16-bit code gets `i8086`,
    /// 64-bit code `i386:x86-64`. Compatibility mode (long mode, 32-bit code
    /// segment) gets `i386`: its code cannot reach r8–r15 anyway.
    pub fn for_mode(mode: CpuMode) -> TdescFlavour {
        match mode.code_bits() {
            16 => TdescFlavour::I8086,
            32 => TdescFlavour::I386,
            _ => TdescFlavour::X86_64,
        }
    }

    /// Does this description have the 64-bit register layout?
    pub fn is_64_bit(self) -> bool {
        self == TdescFlavour::X86_64
    }

    /// The architecture name written in the XML.
    pub fn architecture(self) -> &'static str {
        match self {
            TdescFlavour::I8086 => "i8086",
            TdescFlavour::I386 => "i386",
            TdescFlavour::X86_64 => "i386:x86-64",
        }
    }

    /// The complete `target.xml` for this flavour (built once, then cached).
    pub fn xml(self) -> &'static str {
        static I8086: OnceLock<String> = OnceLock::new();
        static I386: OnceLock<String> = OnceLock::new();
        static X86_64: OnceLock<String> = OnceLock::new();
        match self {
            TdescFlavour::I8086 => I8086.get_or_init(|| build_xml(self.architecture())),
            TdescFlavour::I386 => I386.get_or_init(|| build_xml(self.architecture())),
            TdescFlavour::X86_64 => X86_64.get_or_init(super::tdesc64::build_xml),
        }
    }
}

/// Build the full target description for one architecture name.
fn build_xml(architecture: &str) -> String {
    let mut xml = String::with_capacity(12 * 1024);
    xml.push_str("<?xml version=\"1.0\"?>\n");
    xml.push_str("<!DOCTYPE target SYSTEM \"gdb-target.dtd\">\n");
    xml.push_str("<target version=\"1.0\">\n");
    let _ = writeln!(xml, "  <architecture>{architecture}</architecture>");
    // A guest kernel is not a Linux process: without this gdb assumes the
    // host's OS ABI (GNU/Linux), which it does not even have for i8086.
    xml.push_str("  <osabi>none</osabi>\n");
    for feature in [Feature::Core, Feature::Sse, Feature::Sys] {
        let _ = writeln!(xml, "  <feature name=\"{}\">", feature.name());
        match feature {
            Feature::Core => xml.push_str(CORE_TYPES),
            Feature::Sse => xml.push_str(SSE_TYPES),
            Feature::Sys => xml.push_str(&sys_types()),
        }
        for (regnum, info) in REGISTERS.iter().enumerate() {
            if info.feature != feature {
                continue;
            }
            let _ = write!(
                xml,
                "    <reg name=\"{}\" bitsize=\"{}\" type=\"{}\" regnum=\"{}\"",
                info.name, info.bits, info.ty, regnum
            );
            if let Some(group) = info.group {
                let _ = write!(xml, " group=\"{group}\"");
            }
            xml.push_str("/>\n");
        }
        xml.push_str("  </feature>\n");
    }
    xml.push_str("</target>\n");
    xml
}

/// Copy the part `[offset, offset + length)` of `xml` into `buf` and return
/// the number of bytes copied (0 once `offset` is past the end, which tells
/// gdb the transfer is complete). This is the contract of gdbstub's
/// `TargetDescriptionXmlOverride::target_description_xml`.
pub fn copy_xml_chunk(xml: &str, offset: u64, length: usize, buf: &mut [u8]) -> usize {
    let data = xml.as_bytes();
    let start = usize::try_from(offset).unwrap_or(usize::MAX).min(data.len());
    let end = start.saturating_add(length).min(data.len());
    let chunk = data.get(start..end).unwrap_or(&[]);
    let n = chunk.len().min(buf.len());
    buf[..n].copy_from_slice(&chunk[..n]);
    n
}

/// Serve a `qXfer:features:read` request for the given flavour.
/// Returns `None` for any annex other than `target.xml` (we do not split
/// the description into several files); the target should then return an
/// error.
///
/// ```ignore
/// impl TargetDescriptionXmlOverride for MyVm {
///     fn target_description_xml(&self, annex: &[u8], offset: u64, length: usize,
///                               buf: &mut [u8]) -> TargetResult<usize, Self> {
///         let flavour = TdescFlavour::for_mode(self.cpu_mode());
///         serve_target_xml(flavour, annex, offset, length, buf)
///             .ok_or(TargetError::NonFatal)
///     }
/// }
/// ```
pub fn serve_target_xml(
    flavour: TdescFlavour,
    annex: &[u8],
    offset: u64,
    length: usize,
    buf: &mut [u8],
) -> Option<usize> {
    if annex != b"target.xml" {
        return None;
    }
    Some(copy_xml_chunk(flavour.xml(), offset, length, buf))
}

#[cfg(test)]
mod tests {
    use super::super::regs::{total_bytes, X86Regs};
    use super::*;
    use gdbstub::arch::Registers;
    use std::collections::HashMap;

    /// A tiny XML reader, enough to check our own output: returns every
    /// element as (name, attributes) in document order, and fails the test
    /// where the XML is not well formed (stray `>`, bad nesting, …).
    type Element = (String, HashMap<String, String>);

    fn parse_xml(xml: &str) -> Vec<Element> {
        let mut elements = Vec::new();
        let mut stack: Vec<String> = Vec::new();
        let mut rest = xml;
        while let Some(lt) = rest.find('<') {
            let text = &rest[..lt];
            assert!(!text.contains('>'), "stray '>' in text {text:?}");
            let after = &rest[lt + 1..];
            let gt = after.find('>').expect("unclosed tag");
            let tag = &after[..gt];
            rest = &after[gt + 1..];
            if tag.starts_with('?') || tag.starts_with('!') {
                continue; // XML declaration, DOCTYPE
            }
            if let Some(name) = tag.strip_prefix('/') {
                let open = stack.pop().unwrap_or_else(|| panic!("unexpected </{name}>"));
                assert_eq!(open, name.trim(), "<{open}> closed by </{name}>");
                continue;
            }
            let self_closing = tag.ends_with('/');
            let tag = tag.trim_end_matches('/');
            let mut parts = tag.splitn(2, char::is_whitespace);
            let name = parts.next().expect("empty tag").to_string();
            let mut attrs = HashMap::new();
            let mut a = parts.next().unwrap_or("").trim();
            while !a.is_empty() {
                let eq = a.find('=').unwrap_or_else(|| panic!("bad attribute in {tag}"));
                let key = a[..eq].trim().to_string();
                let v = a[eq + 1..].trim_start();
                let v = v.strip_prefix('"').unwrap_or_else(|| panic!("unquoted value in {tag}"));
                let close = v.find('"').expect("unterminated value");
                let old = attrs.insert(key.clone(), v[..close].to_string());
                assert!(old.is_none(), "duplicate attribute {key}");
                a = v[close + 1..].trim_start();
            }
            if !self_closing {
                stack.push(name.clone());
            }
            elements.push((name, attrs));
        }
        assert!(stack.is_empty(), "unclosed elements {stack:?}");
        elements
    }

    #[test]
    fn xml_is_well_formed_and_matches_serializer() {
        for flavour in [TdescFlavour::I8086, TdescFlavour::I386] {
            let xml = flavour.xml();
            let elements = parse_xml(xml);
            let regs: Vec<_> = elements.iter().filter(|(n, _)| n == "reg").collect();
            assert_eq!(regs.len(), REGISTERS.len());

            // Register order, names, sizes and regnums agree with the table,
            // and the sizes add up to exactly what gdb_serialize writes.
            let mut xml_bytes = 0usize;
            for (i, (_, attrs)) in regs.iter().enumerate() {
                let bits: usize = attrs["bitsize"].parse().unwrap();
                assert_eq!(attrs["name"], REGISTERS[i].name);
                assert_eq!(bits, REGISTERS[i].bits);
                assert_eq!(attrs["regnum"], i.to_string());
                assert_eq!(bits % 8, 0);
                xml_bytes += bits / 8;
            }
            let mut serialized = 0usize;
            X86Regs::default().gdb_serialize(|_| serialized += 1);
            assert_eq!(xml_bytes, serialized);
            assert_eq!(xml_bytes, total_bytes());

            // Every type a register uses is predefined by gdb or defined here.
            let predefined = ["int", "int32", "uint32", "uint64", "data_ptr", "code_ptr", "i387_ext"];
            let defined: Vec<&String> = elements
                .iter()
                .filter(|(n, _)| matches!(n.as_str(), "flags" | "vector" | "union"))
                .map(|(_, a)| &a["id"])
                .collect();
            for (_, attrs) in &regs {
                let ty = &attrs["type"];
                assert!(predefined.contains(&ty.as_str()) || defined.contains(&ty), "type {ty} undefined");
            }
            // Flag fields fit in their flags type.
            let mut size = 0usize;
            for (name, attrs) in &elements {
                if name == "flags" {
                    size = attrs["size"].parse().unwrap();
                } else if name == "field" && attrs.contains_key("start") {
                    let end: usize = attrs["end"].parse().unwrap();
                    assert!(end < size * 8);
                }
            }
            // Three features, in the order core, sse, sys.
            let features: Vec<&String> =
                elements.iter().filter(|(n, _)| n == "feature").map(|(_, a)| &a["name"]).collect();
            assert_eq!(features, ["org.gnu.gdb.i386.core", "org.gnu.gdb.i386.sse", "org.minikvm.sys"]);
        }
    }

    #[test]
    fn flavours_differ_only_in_architecture() {
        let a = TdescFlavour::I8086.xml();
        let b = TdescFlavour::I386.xml();
        assert!(a.contains("<architecture>i8086</architecture>"));
        assert!(b.contains("<architecture>i386</architecture>"));
        assert_eq!(
            a.replace("<architecture>i8086</architecture>", ""),
            b.replace("<architecture>i386</architecture>", "")
        );
        assert_eq!(X86Guest::target_description_xml(), Some(b));
        assert!(b.contains(r#"<reg name="cr0" bitsize="64" type="minikvm_cr0" regnum="41" group="system"/>"#));
    }

    #[test]
    fn flavour_for_mode() {
        assert_eq!(TdescFlavour::for_mode(CpuMode::Real), TdescFlavour::I8086);
        assert_eq!(TdescFlavour::for_mode(CpuMode::Protected16), TdescFlavour::I8086);
        assert_eq!(TdescFlavour::for_mode(CpuMode::Protected32), TdescFlavour::I386);
        assert_eq!(TdescFlavour::for_mode(CpuMode::Pae), TdescFlavour::I386);
        assert_eq!(TdescFlavour::for_mode(CpuMode::Compat), TdescFlavour::I386);
        assert_eq!(TdescFlavour::for_mode(CpuMode::Long64), TdescFlavour::X86_64);
    }

    #[test]
    fn xml_chunks_reassemble() {
        let xml = TdescFlavour::I8086.xml();
        let mut out = Vec::new();
        let mut buf = [0u8; 100];
        let mut offset = 0u64;
        loop {
            let n = serve_target_xml(TdescFlavour::I8086, b"target.xml", offset, 77, &mut buf).unwrap();
            if n == 0 {
                break;
            }
            assert!(n <= 77);
            out.extend_from_slice(&buf[..n]);
            offset += n as u64;
        }
        assert_eq!(out, xml.as_bytes());
        // Small buffer, huge offset, other annex.
        assert_eq!(copy_xml_chunk(xml, 0, 1000, &mut [0u8; 5]), 5);
        assert_eq!(copy_xml_chunk(xml, u64::MAX, 10, &mut buf), 0);
        assert_eq!(copy_xml_chunk(xml, 3, usize::MAX, &mut buf), 100);
        assert_eq!(serve_target_xml(TdescFlavour::I386, b"other.xml", 0, 10, &mut buf), None);
    }
}
