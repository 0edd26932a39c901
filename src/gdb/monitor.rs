//! `monitor …` commands: what gdb itself cannot show about an x86 guest.
//!
//! They look at one vCPU: the one of the last stop, or the one chosen with `monitor vcpu N`.

use super::debugger::{cpu_mode, Debugger};
use super::error::MonitorError;
use crate::run_loop::CpuState;
use crate::x86::control_bits;
use crate::x86::descriptors::{describe_segment, format_gdt, format_idt, IdtFormat};
use crate::x86::mode::CpuMode;
use crate::x86::paging::{format_walk, format_walk_error, FnMem, Paging, PagingMode};
use std::fmt::Write as _;

const HELP: &str = "\
minikvm monitor commands (they look at the vCPU of the last stop; `monitor vcpu N` picks another):
  regs         segment registers as descriptors, control registers, GDTR/IDTR, CPU mode
  mode         the CPU mode and paging mode
  gdt          the global descriptor table, one line per descriptor
  idt          the interrupt table (real-mode IVT or protected-mode IDT), one line per vector
  pt ADDR      the page walk of a gdb address, every level (ADDR: e.g. 0xc0100000 or 4096)
  exits        VM exit statistics so far (as --stats prints at the end)
  breakpoints  the debug-register slots DR0-DR3 and int3 breakpoints in use
  vcpu [N]     show or choose the vCPU these commands look at
  help         this text
gdb addresses are offsets in the code segment: linear = CS base + address (see gdb/README.md).";

/// Runs one monitor command and returns its output.
pub fn run(dbg: &mut Debugger, line: &str) -> String {
    let mut words = line.split_whitespace();
    let cmd = words.next().unwrap_or("help");
    let arg = words.next();
    let id = dbg.current;
    let result = match cmd {
        "help" | "?" => Ok(HELP.to_string()),
        "vcpu" => vcpu(dbg, arg),
        "exits" | "stats" => Ok(crate::stats::table(&dbg.stats())),
        "breakpoints" | "bp" => Ok(dbg.breakpoints.describe()),
        "regs" => dbg.state(id).map(|s| regs(dbg, id, &s)).map_err(MonitorError::from),
        "mode" => dbg.state(id).map(|s| mode(&s)).map_err(MonitorError::from),
        "gdt" => gdt(dbg, id),
        "idt" => idt(dbg, id),
        "pt" => match arg.map(|a| (a, parse_addr(a))) {
            Some((_, Some(a))) => pt(dbg, id, a),
            Some((text, None)) if text.starts_with('$') => Err(MonitorError::NotEvaluated(text.into())),
            _ => Err(MonitorError::Usage("monitor pt ADDR (e.g. monitor pt 0xc0100000)")),
        },
        other => Err(MonitorError::Unknown(other.into())),
    };
    result.unwrap_or_else(|e| format!("error: {e}"))
}

fn parse_addr(s: &str) -> Option<u64> {
    crate::cli::parse_u64(s).ok()
}

fn vcpu(dbg: &mut Debugger, arg: Option<&str>) -> Result<String, MonitorError> {
    if let Some(a) = arg {
        let n = a.parse::<usize>().map_err(|_| MonitorError::NotAVcpuNumber(a.into()))?;
        if n >= dbg.vcpu_count() {
            return Err(MonitorError::NoSuchVcpu(dbg.vcpu_count()));
        }
        dbg.current = n;
    }
    let id = dbg.current;
    let state = if dbg.is_paused(id) { "stopped" } else { "not stopped" };
    Ok(format!("monitor commands look at vCPU {id} ({}), {state}", dbg.vcpu_name(id).unwrap_or("?")))
}

fn regs(dbg: &Debugger, id: usize, s: &CpuState) -> String {
    let r = &s.regs;
    let sr = &s.sregs;
    let mut out = String::new();
    let _ = writeln!(out, "vCPU {id} ({}): {}", dbg.vcpu_name(id).unwrap_or("?"), cpu_mode(s));
    if cpu_mode(s) == CpuMode::Long64 {
        // 64-bit code: CS's base is not used, and gdb's own `info registers` is x86-64 too.
        let _ = writeln!(out, "  CS:RIP {:04x}:{:016x}  (long mode: linear pc = RIP)", sr.cs.selector, r.rip);
        out += &general_registers_64(r);
    } else {
        let linear = sr.cs.base.wrapping_add(r.rip);
        let _ = writeln!(out, "  CS:IP {:04x}:{:08x}  linear pc {linear:#x}", sr.cs.selector, r.rip);
    }
    let real = cpu_mode(s) == CpuMode::Real;
    for (name, seg) in [("cs", &sr.cs), ("ds", &sr.ds), ("es", &sr.es), ("fs", &sr.fs), ("gs", &sr.gs), ("ss", &sr.ss)]
    {
        let line = if real { real_mode_segment(name, seg) } else { describe_segment(name, seg) };
        let _ = writeln!(out, "  {line}");
    }
    if real {
        let _ = writeln!(out, "  tr, ldtr: not used in real mode");
    } else {
        let _ = writeln!(out, "  {}", describe_segment("tr", &sr.tr));
        let _ = writeln!(out, "  {}", describe_segment("ldtr", &sr.ldt));
    }
    let _ = writeln!(out, "  gdtr base {:#x} limit {:#x}", sr.gdt.base, sr.gdt.limit);
    let _ = writeln!(out, "  idtr base {:#x} limit {:#x}", sr.idt.base, sr.idt.limit);
    let _ = writeln!(out, "  cr0 {:#010x}  {}", sr.cr0, cr0_bits(sr.cr0));
    let _ = writeln!(out, "  cr2 {:#010x}  cr3 {:#010x}  cr4 {:#010x}  efer {:#x}", sr.cr2, sr.cr3, sr.cr4, sr.efer);
    let _ = writeln!(out, "  eflags {:#010x}  apic_base {:#x}", r.rflags, sr.apic_base);
    out
}

/// A segment register in real mode: a paragraph number, not a selector (no GDT, no RPL); the
/// base is `segment * 16` unless the guest left protected mode with another one cached.
fn real_mode_segment(name: &str, seg: &kvm_bindings::kvm_segment) -> String {
    let (sel, usual) = (seg.selector, u64::from(seg.selector) << 4);
    let how = if seg.base == usual {
        format!("= {sel:#06x} * 16")
    } else {
        format!("cached by the CPU, not {sel:#06x} * 16 = {usual:#x}")
    };
    format!("{name}: {sel:#06x}  base {:#07x} {how}, limit {:#x}", seg.base, seg.limit)
}

/// rax…r15, four to a line: what 64-bit code works with.
fn general_registers_64(r: &kvm_bindings::kvm_regs) -> String {
    let regs = [
        ("rax", r.rax),
        ("rbx", r.rbx),
        ("rcx", r.rcx),
        ("rdx", r.rdx),
        ("rsi", r.rsi),
        ("rdi", r.rdi),
        ("rbp", r.rbp),
        ("rsp", r.rsp),
        ("r8", r.r8),
        ("r9", r.r9),
        ("r10", r.r10),
        ("r11", r.r11),
        ("r12", r.r12),
        ("r13", r.r13),
        ("r14", r.r14),
        ("r15", r.r15),
    ];
    let mut out = String::new();
    for line in regs.chunks(4) {
        let cells: Vec<String> = line.iter().map(|(n, v)| format!("{n:>3} {v:#018x}")).collect();
        let _ = writeln!(out, "  {}", cells.join("  "));
    }
    out
}

fn cr0_bits(cr0: u64) -> String {
    control_bits::names(control_bits::CR0, cr0)
}

fn mode(s: &CpuState) -> String {
    let sr = &s.sregs;
    let m = cpu_mode(s);
    let paging = PagingMode::from_regs(sr.cr0, sr.cr4, sr.efer);
    format!(
        "{m}\n  code: {}-bit (gdb architecture {})\n  address translation: {paging}\n  \
         gdb address A means linear CS base ({:#x}) + A",
        m.code_bits(),
        m.gdb_architecture(),
        sr.cs.base
    )
}

fn table_bytes(dbg: &mut Debugger, id: usize, base: u64, limit: u16) -> Result<Vec<u8>, MonitorError> {
    let len = usize::from(limit) + 1;
    let bytes = dbg.read_linear(id, base, len)?;
    if bytes.len() < len {
        return Err(MonitorError::PartlyMapped { mapped: bytes.len(), len, base });
    }
    Ok(bytes)
}

fn gdt(dbg: &mut Debugger, id: usize) -> Result<String, MonitorError> {
    let s = dbg.state(id)?;
    if cpu_mode(&s) == CpuMode::Real && s.sregs.gdt.base == 0 && s.sregs.gdt.limit == 0xffff {
        return Ok("real mode: no GDT loaded (GDTR still has its reset value)".into());
    }
    let bytes = table_bytes(dbg, id, s.sregs.gdt.base, s.sregs.gdt.limit)?;
    let long = matches!(cpu_mode(&s), CpuMode::Long64 | CpuMode::Compat);
    Ok(format!("GDTR base {:#x} limit {:#x}\n{}", s.sregs.gdt.base, s.sregs.gdt.limit, format_gdt(&bytes, long)))
}

fn idt(dbg: &mut Debugger, id: usize) -> Result<String, MonitorError> {
    let s = dbg.state(id)?;
    let format = IdtFormat::for_mode(cpu_mode(&s));
    let bytes = table_bytes(dbg, id, s.sregs.idt.base, s.sregs.idt.limit)?;
    let mut out =
        format!("IDTR base {:#x} limit {:#x}\n{}", s.sregs.idt.base, s.sregs.idt.limit, format_idt(&bytes, format));
    if format == IdtFormat::RealModeIvt {
        out += &ivt_note(dbg, s.sregs.idt.base);
    }
    Ok(out)
}

/// What a real-mode IVT holds here. The CPU reads it at linear 0 (after reset), and that is where
/// minikvm loads vCPU 0's flat guest: until a guest stores handlers there, its "vectors" are its
/// own code read as segment:offset pairs, which is worth saying next to the table.
fn ivt_note(dbg: &Debugger, base: u64) -> String {
    let window = crate::boot::realmode::WINDOW as u64;
    let owner = usize::try_from(base / window).unwrap_or(usize::MAX);
    match dbg.vcpu_name(owner) {
        Some(name) => format!(
            "  note: linear {base:#x} is in vCPU {owner}'s window, where minikvm loaded `{name}`: unless that \
             guest stored handlers there, these vectors are its code and data read as segment:offset\n"
        ),
        None => String::new(),
    }
}

fn pt(dbg: &mut Debugger, id: usize, addr: u64) -> Result<String, MonitorError> {
    let s = dbg.state(id)?;
    let linear = dbg.linear(id, addr)?;
    let sr = &s.sregs;
    let paging = Paging::from_regs(sr.cr0, sr.cr3, sr.cr4, sr.efer);
    let mem = FnMem(|gpa: u64, buf: &mut [u8]| dbg.read_physical(gpa, buf));
    let mut out = format!("gdb address {addr:#x} = linear {linear:#x} (CS base {:#x})\n", sr.cs.base);
    match paging.walk(&mem, linear) {
        Ok(walk) => out += &format_walk(&walk),
        Err(err) => out += &format_walk_error(&err),
    }
    // KVM's own translation, as a cross-check of the walker.
    match dbg.translate(id, linear) {
        Ok(Some(gpa)) => out += &format!("  KVM_TRANSLATE: physical {gpa:#x}\n"),
        Ok(None) => out += "  KVM_TRANSLATE: not mapped\n",
        Err(e) => out += &format!("  KVM_TRANSLATE: {e}\n"),
    }
    Ok(out)
}
