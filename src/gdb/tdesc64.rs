//! The x86-64 target description: what gdb is told while the vCPU runs 64-bit code.
//!
//! Same idea as the 16/32-bit description of [`super::arch`], with gdb's 64-bit register
//! names and sizes in the order of [`super::regs64`]: `<architecture>i386:x86-64</architecture>`
//! makes gdb decode 64-bit instructions and unwind 64-bit frames (`bt`), and the registers are
//! listed in exactly the order [`super::regs64::X86_64Regs`] writes them.

#![forbid(unsafe_code)]

use super::regs64::sys_registers;
use super::tdesc_types::{sys_types, CORE_TYPES, SSE_TYPES};
use core::fmt::Write as _;

/// One `<reg>` line: name, bits, gdb type, group.
type Reg = (String, usize, &'static str, Option<&'static str>);

/// gdb's 64-bit core registers, in `g` packet order.
fn core_registers() -> Vec<Reg> {
    let mut regs: Vec<Reg> = Vec::with_capacity(40);
    for name in ["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp"] {
        let ty = if matches!(name, "rbp" | "rsp") { "data_ptr" } else { "int64" };
        regs.push((name.into(), 64, ty, None));
    }
    regs.extend((8..16).map(|n| (format!("r{n}"), 64, "int64", None)));
    regs.push(("rip".into(), 64, "code_ptr", None));
    regs.push(("eflags".into(), 32, "i386_eflags", None));
    regs.extend(["cs", "ss", "ds", "es", "fs", "gs"].map(|n| (n.into(), 32, "int32", None)));
    regs.extend((0..8).map(|n| (format!("st{n}"), 80, "i387_ext", None)));
    for name in ["fctrl", "fstat", "ftag", "fiseg", "fioff", "foseg", "fooff", "fop"] {
        regs.push((name.into(), 32, "int", Some("float")));
    }
    regs
}

/// The registers of each feature, in order.
fn features() -> [(&'static str, String, Vec<Reg>); 4] {
    let mut sse: Vec<Reg> = (0..16).map(|n| (format!("xmm{n}"), 128, "vec128", None)).collect();
    sse.push(("mxcsr".into(), 32, "i386_mxcsr", Some("vector")));
    let segments = vec![("fs_base".into(), 64, "int", None), ("gs_base".into(), 64, "int", None)];
    let sys = sys_registers().map(|r| (r.name.to_string(), r.bits, r.ty, r.group)).collect();
    [
        ("org.gnu.gdb.i386.core", CORE_TYPES.into(), core_registers()),
        ("org.gnu.gdb.i386.sse", SSE_TYPES.into(), sse),
        ("org.gnu.gdb.i386.segments", String::new(), segments),
        ("org.minikvm.sys", sys_types(), sys),
    ]
}

/// The complete x86-64 `target.xml`.
pub fn build_xml() -> String {
    let mut xml = String::with_capacity(12 * 1024);
    xml.push_str("<?xml version=\"1.0\"?>\n<!DOCTYPE target SYSTEM \"gdb-target.dtd\">\n");
    xml.push_str("<target version=\"1.0\">\n  <architecture>i386:x86-64</architecture>\n");
    xml.push_str("  <osabi>none</osabi>\n");
    let mut regnum = 0usize;
    for (name, types, regs) in features() {
        let _ = writeln!(xml, "  <feature name=\"{name}\">");
        xml.push_str(&types);
        for (reg, bits, ty, group) in regs {
            let _ = write!(xml, "    <reg name=\"{reg}\" bitsize=\"{bits}\" type=\"{ty}\" regnum=\"{regnum}\"");
            if let Some(group) = group {
                let _ = write!(xml, " group=\"{group}\"");
            }
            xml.push_str("/>\n");
            regnum += 1;
        }
        xml.push_str("  </feature>\n");
    }
    xml.push_str("</target>\n");
    xml
}

#[cfg(test)]
mod tests {
    use super::super::regs64::{total_bytes, X86_64Regs};
    use super::*;
    use gdbstub::arch::Registers;

    /// The bits the XML lists add up to what the serializer writes, register by register.
    #[test]
    fn xml_sizes_match_the_serializer() {
        let bits: usize = features().iter().flat_map(|(_, _, r)| r.iter().map(|r| r.1)).sum();
        let mut written = 0usize;
        X86_64Regs::default().gdb_serialize(|_| written += 1);
        assert_eq!(bits / 8, written);
        assert_eq!(written, total_bytes());
        let xml = build_xml();
        assert!(xml.contains(r#"<reg name="rip" bitsize="64" type="code_ptr" regnum="16"/>"#), "{xml}");
        assert!(xml.contains(r#"<reg name="fs_base" bitsize="64" type="int" regnum="57"/>"#), "{xml}");
        assert!(xml.contains(r#"<reg name="cr0" bitsize="64" type="minikvm_cr0" regnum="59" group="system"/>"#));
        assert_eq!(xml.matches("name=\"fs_base\"").count(), 1, "fs_base once only");
    }
}
