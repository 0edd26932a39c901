//! Segment descriptors, system descriptors and interrupt gates.
//!
//! # The hardware
//!
//! In protected mode a segment register does not hold an address. It holds
//! a *selector*, an index into a table of 8-byte *descriptors*:
//!
//! ```text
//! selector:  15                3   2   1 0
//!           [ index             | TI | RPL ]   TI = 0: GDT, 1: LDT; RPL = requested privilege
//! ```
//!
//! The Global Descriptor Table (GDT) lives in memory at the address in the
//! GDTR register (loaded with `LGDT`); descriptor `n` is at `GDTR.base + 8n`
//! and entry 0 must be the *null descriptor*. Each descriptor packs a base
//! address, a limit and attributes in a famously scrambled layout (to stay
//! compatible with the 80286):
//!
//! ```text
//!  63      56 55 54 53 52 51    48 47 46 45 44 43  40 39          16 15          0
//! [base 31:24| G|DB| L|AVL|lim 19:16| P| DPL | S| type |  base 23:0   | limit 15:0  ]
//! ```
//!
//! * **base**: where the segment starts (linear address).
//! * **limit**: the last valid offset. With **G** = 1 it counts 4 KiB units,
//!   so a limit field of `0xFFFFF` means `0xFFFF_FFFF` (4 GiB).
//! * **S**: 1 = code or data segment, 0 = *system* descriptor (TSS, LDT, gate).
//! * **type**: for code: execute-only/readable, conforming; for data:
//!   read-only/writable, expand-down; bit 0 is "accessed" (set by the CPU).
//! * **DPL**: descriptor privilege level, 0 (kernel) … 3 (user).
//! * **P**: present; loading a non-present segment raises #NP.
//! * **D/B**: 1 = 32-bit code/stack, 0 = 16-bit.
//! * **L**: 64-bit code segment (long mode).
//!
//! The Interrupt Descriptor Table (IDT, register IDTR, `LIDT`) holds one
//! *gate* per interrupt vector, telling the CPU where the handler is:
//!
//! ```text
//! 32-bit gate:
//!  63            48 47 46 45 44 43  40 39    32 31            16 15           0
//! [ offset 31:16   | P| DPL | 0| type | (zero)  |   selector     | offset 15:0  ]
//! ```
//!
//! In long mode gates and system descriptors grow to 16 bytes (the second
//! half carries bits 63:32 of the offset or base). In real mode the "IDT"
//! is the Interrupt Vector Table: 4 bytes per vector, `offset:segment`.
//!
//! This module only decodes bytes; the caller reads the tables from guest
//! memory (`GDTR.base`, `GDTR.limit + 1` bytes) and passes them in.

#![forbid(unsafe_code)]

use super::mode::CpuMode;
use core::fmt;
use core::fmt::Write as _;
use kvm_bindings::kvm_segment;

/// A segment selector: the value in CS, DS, ... in protected mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Selector(pub u16);

impl Selector {
    /// Descriptor index (bits 15:3).
    pub fn index(self) -> u16 {
        self.0 >> 3
    }
    /// Table indicator (bit 2): `true` = LDT, `false` = GDT.
    pub fn ldt(self) -> bool {
        self.0 & 4 != 0
    }
    /// Requested privilege level (bits 1:0).
    pub fn rpl(self) -> u8 {
        (self.0 & 3) as u8
    }
}

impl fmt::Display for Selector {
    /// E.g. `0x0008 (GDT[1], RPL 0)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#06x} ({}[{}], RPL {})", self.0, if self.ldt() { "LDT" } else { "GDT" }, self.index(), self.rpl())
    }
}

/// Extract bits `lo..=hi` of `v`.
fn bits(v: u64, lo: u32, hi: u32) -> u64 {
    (v >> lo) & ((1u64 << (hi - lo + 1)) - 1)
}

fn bit(v: u64, n: u32) -> bool {
    v & (1u64 << n) != 0
}

/// A code or data segment descriptor (S = 1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SegmentDescriptor {
    /// Segment base (linear address).
    pub base: u32,
    /// The 20-bit limit field as stored.
    pub raw_limit: u32,
    /// The effective limit in bytes (last valid offset), after G scaling.
    pub limit: u32,
    /// The 4-bit type field.
    pub typ: u8,
    /// Descriptor privilege level.
    pub dpl: u8,
    /// P: present.
    pub present: bool,
    /// AVL: free for the OS.
    pub avl: bool,
    /// L: 64-bit code segment.
    pub long: bool,
    /// D/B: 32-bit default size.
    pub db: bool,
    /// G: limit in 4 KiB units.
    pub granularity: bool,
}

impl SegmentDescriptor {
    /// Decode an 8-byte descriptor given as a little-endian `u64`.
    /// Returns `None` for system descriptors (S = 0).
    pub fn decode(raw: u64) -> Option<SegmentDescriptor> {
        if !bit(raw, 44) {
            return None;
        }
        let raw_limit = (bits(raw, 0, 15) | (bits(raw, 48, 51) << 16)) as u32;
        let granularity = bit(raw, 55);
        Some(SegmentDescriptor {
            base: (bits(raw, 16, 39) | (bits(raw, 56, 63) << 24)) as u32,
            raw_limit,
            limit: effective_limit(raw_limit, granularity),
            typ: bits(raw, 40, 43) as u8,
            dpl: bits(raw, 45, 46) as u8,
            present: bit(raw, 47),
            avl: bit(raw, 52),
            long: bit(raw, 53),
            db: bit(raw, 54),
            granularity,
        })
    }

    /// Type bit 3: a code segment (otherwise data).
    pub fn is_code(&self) -> bool {
        self.typ & 8 != 0
    }
    /// Type bit 0: the CPU has loaded this descriptor at least once.
    pub fn accessed(&self) -> bool {
        self.typ & 1 != 0
    }
    /// Code: readable (type bit 1). Data segments are always readable.
    pub fn readable(&self) -> bool {
        !self.is_code() || self.typ & 2 != 0
    }
    /// Data: writable (type bit 1). Code segments are never writable.
    pub fn writable(&self) -> bool {
        !self.is_code() && self.typ & 2 != 0
    }
    /// Code: conforming (type bit 2): callable from less privileged code.
    pub fn conforming(&self) -> bool {
        self.is_code() && self.typ & 4 != 0
    }
    /// Data: expand-down (type bit 2): valid offsets are *above* the limit.
    pub fn expand_down(&self) -> bool {
        !self.is_code() && self.typ & 4 != 0
    }

    /// Operand size of a code segment: 64 (L), 32 (D) or 16.
    pub fn code_bits(&self) -> u32 {
        if self.long {
            64
        } else if self.db {
            32
        } else {
            16
        }
    }
}

fn effective_limit(raw_limit: u32, granularity: bool) -> u32 {
    if granularity {
        (raw_limit << 12) | 0xFFF
    } else {
        raw_limit
    }
}

/// Short description of a code/data type field, e.g. `code 32-bit exec/read`, from the
/// descriptor's own accessors (the one place the type bits are decoded).
fn code_data_kind(typ: u8, db: bool, long: bool) -> String {
    let d = SegmentDescriptor { typ, db, long, ..SegmentDescriptor::default() };
    let mut s = String::new();
    if d.is_code() {
        let access = if d.readable() { "exec/read" } else { "exec-only" };
        let _ = write!(s, "code {}-bit {access}", d.code_bits());
        if d.conforming() {
            s.push_str(" conforming");
        }
    } else {
        let access = if d.writable() { "read/write" } else { "read-only" };
        let _ = write!(s, "data {access}{}", if db { " (32-bit stack)" } else { "" });
        if d.expand_down() {
            s.push_str(" expand-down");
        }
    }
    if d.accessed() {
        s.push_str(", accessed");
    }
    s
}

impl fmt::Display for SegmentDescriptor {
    /// E.g. `code 32-bit exec/read, base 0x00000000, limit 0xffffffff, DPL 0, present`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}, base {:#010x}, limit {:#010x}{}, DPL {}, {}",
            code_data_kind(self.typ, self.db, self.long),
            self.base,
            self.limit,
            if self.granularity { " (G: 4 KiB units)" } else { "" },
            self.dpl,
            if self.present { "present" } else { "NOT present" }
        )
    }
}

/// The kinds of system descriptor (S = 0) that describe a memory area.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SystemKind {
    /// 16-bit TSS (type 1 available, 3 busy).
    Tss16 {
        /// Busy: the task is running (or nested).
        busy: bool,
    },
    /// Local Descriptor Table (type 2).
    Ldt,
    /// 32-bit TSS (type 9 available, 11 busy); 64-bit TSS in long mode.
    Tss32 {
        /// Busy: the task is running.
        busy: bool,
    },
    /// 64-bit TSS (type 9/11 in long mode).
    Tss64 {
        /// Busy: loaded in TR.
        busy: bool,
    },
}

impl fmt::Display for SystemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, busy) = match *self {
            SystemKind::Tss16 { busy } => ("16-bit TSS", Some(busy)),
            SystemKind::Ldt => ("LDT", None),
            SystemKind::Tss32 { busy } => ("32-bit TSS", Some(busy)),
            SystemKind::Tss64 { busy } => ("64-bit TSS", Some(busy)),
        };
        f.write_str(name)?;
        match busy {
            Some(true) => f.write_str(" (busy)"),
            Some(false) => f.write_str(" (available)"),
            None => Ok(()),
        }
    }
}

/// A TSS or LDT descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SystemDescriptor {
    /// Which kind.
    pub kind: SystemKind,
    /// Base address (64-bit in long mode).
    pub base: u64,
    /// Effective limit in bytes.
    pub limit: u32,
    /// Descriptor privilege level.
    pub dpl: u8,
    /// P: present.
    pub present: bool,
    /// G: limit in 4 KiB units.
    pub granularity: bool,
}

impl SystemDescriptor {
    /// Decode a TSS/LDT descriptor. `high` is the second 8 bytes of a
    /// 16-byte long-mode descriptor (`None` for legacy 8-byte ones).
    /// Returns `None` for code/data descriptors, gates and reserved types.
    pub fn decode(raw: u64, high: Option<u64>) -> Option<SystemDescriptor> {
        if bit(raw, 44) {
            return None;
        }
        let typ = bits(raw, 40, 43);
        let long = high.is_some();
        let kind = match (typ, long) {
            (1, false) => SystemKind::Tss16 { busy: false },
            (3, false) => SystemKind::Tss16 { busy: true },
            (2, _) => SystemKind::Ldt,
            (9, false) => SystemKind::Tss32 { busy: false },
            (11, false) => SystemKind::Tss32 { busy: true },
            (9, true) => SystemKind::Tss64 { busy: false },
            (11, true) => SystemKind::Tss64 { busy: true },
            _ => return None,
        };
        let raw_limit = (bits(raw, 0, 15) | (bits(raw, 48, 51) << 16)) as u32;
        let granularity = bit(raw, 55);
        let base_lo = bits(raw, 16, 39) | (bits(raw, 56, 63) << 24);
        let base_hi = high.map_or(0, |h| h & 0xFFFF_FFFF);
        Some(SystemDescriptor {
            kind,
            base: base_lo | (base_hi << 32),
            limit: effective_limit(raw_limit, granularity),
            dpl: bits(raw, 45, 46) as u8,
            present: bit(raw, 47),
            granularity,
        })
    }
}

impl fmt::Display for SystemDescriptor {
    /// E.g. `32-bit TSS (available), base 0x00105000, limit 0x00000067, DPL 0, present`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let base = if self.base > u64::from(u32::MAX) {
            format!("{:#018x}", self.base)
        } else {
            format!("{:#010x}", self.base)
        };
        write!(
            f,
            "{}, base {}, limit {:#010x}, DPL {}, {}",
            self.kind,
            base,
            self.limit,
            self.dpl,
            if self.present { "present" } else { "NOT present" }
        )
    }
}

/// The kind of a gate descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GateKind {
    /// Task gate (type 5): switches to the task whose TSS the selector names.
    Task,
    /// 16-bit call gate (type 4).
    Call16,
    /// 16-bit interrupt gate (type 6): clears IF on entry.
    Interrupt16,
    /// 16-bit trap gate (type 7): leaves IF alone.
    Trap16,
    /// 32-bit call gate (type 12).
    Call32,
    /// 32-bit interrupt gate (type 14): clears IF on entry.
    Interrupt32,
    /// 32-bit trap gate (type 15): leaves IF alone.
    Trap32,
    /// 64-bit call gate (type 12 in long mode).
    Call64,
    /// 64-bit interrupt gate (type 14 in long mode).
    Interrupt64,
    /// 64-bit trap gate (type 15 in long mode).
    Trap64,
}

impl GateKind {
    fn name(self) -> &'static str {
        match self {
            GateKind::Task => "task gate",
            GateKind::Call16 => "16-bit call gate",
            GateKind::Interrupt16 => "16-bit interrupt gate",
            GateKind::Trap16 => "16-bit trap gate",
            GateKind::Call32 => "32-bit call gate",
            GateKind::Interrupt32 => "32-bit interrupt gate",
            GateKind::Trap32 => "32-bit trap gate",
            GateKind::Call64 => "64-bit call gate",
            GateKind::Interrupt64 => "64-bit interrupt gate",
            GateKind::Trap64 => "64-bit trap gate",
        }
    }
}

/// An interrupt, trap, task or call gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Gate {
    /// Which kind of gate.
    pub kind: GateKind,
    /// Code segment selector of the handler (for a task gate: the TSS selector).
    pub selector: u16,
    /// Handler offset inside that segment (0 for task gates).
    pub offset: u64,
    /// Descriptor privilege level: the lowest privilege allowed to use the
    /// gate with `INT n` / `CALL FAR`.
    pub dpl: u8,
    /// P: present. A not-present IDT gate raises #NP when used.
    pub present: bool,
    /// Interrupt Stack Table index (long-mode interrupt/trap gates), 0 = none.
    pub ist: u8,
    /// Number of stack parameters copied (call gates).
    pub param_count: u8,
}

impl Gate {
    /// Decode a legacy 8-byte gate. `None` if the type is not a gate.
    pub fn decode32(raw: u64) -> Option<Gate> {
        if bit(raw, 44) {
            return None;
        }
        let kind = match bits(raw, 40, 43) {
            4 => GateKind::Call16,
            5 => GateKind::Task,
            6 => GateKind::Interrupt16,
            7 => GateKind::Trap16,
            12 => GateKind::Call32,
            14 => GateKind::Interrupt32,
            15 => GateKind::Trap32,
            _ => return None,
        };
        let offset = if kind == GateKind::Task { 0 } else { bits(raw, 0, 15) | (bits(raw, 48, 63) << 16) };
        Some(Gate {
            kind,
            selector: bits(raw, 16, 31) as u16,
            offset,
            dpl: bits(raw, 45, 46) as u8,
            present: bit(raw, 47),
            ist: 0,
            param_count: if matches!(kind, GateKind::Call16 | GateKind::Call32) { bits(raw, 32, 36) as u8 } else { 0 },
        })
    }

    /// Decode a 16-byte long-mode gate (`lo` = first 8 bytes, `hi` = second).
    /// `None` if the type is not a 64-bit gate.
    pub fn decode64(lo: u64, hi: u64) -> Option<Gate> {
        if bit(lo, 44) {
            return None;
        }
        let kind = match bits(lo, 40, 43) {
            12 => GateKind::Call64,
            14 => GateKind::Interrupt64,
            15 => GateKind::Trap64,
            _ => return None,
        };
        Some(Gate {
            kind,
            selector: bits(lo, 16, 31) as u16,
            offset: bits(lo, 0, 15) | (bits(lo, 48, 63) << 16) | ((hi & 0xFFFF_FFFF) << 32),
            dpl: bits(lo, 45, 46) as u8,
            present: bit(lo, 47),
            ist: if kind == GateKind::Call64 { 0 } else { bits(lo, 32, 34) as u8 },
            param_count: 0,
        })
    }
}

impl fmt::Display for Gate {
    /// E.g. `32-bit interrupt gate -> 0x0008:0x00101234, DPL 0, present`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.name())?;
        if self.kind == GateKind::Task {
            write!(f, " -> TSS selector {:#06x}", self.selector)?;
        } else if matches!(self.kind, GateKind::Call64 | GateKind::Interrupt64 | GateKind::Trap64) {
            write!(f, " -> {:#06x}:{:#018x}", self.selector, self.offset)?;
        } else {
            write!(f, " -> {:#06x}:{:#010x}", self.selector, self.offset)?;
        }
        if self.ist != 0 {
            write!(f, ", IST {}", self.ist)?;
        }
        if self.param_count != 0 {
            write!(f, ", {} params", self.param_count)?;
        }
        write!(f, ", DPL {}, {}", self.dpl, if self.present { "present" } else { "NOT present" })
    }
}

/// One decoded GDT (or LDT) entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GdtEntry {
    /// All-zero entry (entry 0 must be this).
    Null,
    /// A code or data segment.
    Segment(SegmentDescriptor),
    /// A TSS or LDT descriptor.
    System(SystemDescriptor),
    /// A call or task gate.
    Gate(Gate),
    /// A system descriptor with a reserved type: the raw value.
    Invalid(u64),
}

impl GdtEntry {
    /// Decode one legacy (8-byte) GDT entry.
    pub fn decode(raw: u64) -> GdtEntry {
        if raw == 0 {
            GdtEntry::Null
        } else if let Some(s) = SegmentDescriptor::decode(raw) {
            GdtEntry::Segment(s)
        } else if let Some(s) = SystemDescriptor::decode(raw, None) {
            GdtEntry::System(s)
        } else if let Some(g) = Gate::decode32(raw) {
            GdtEntry::Gate(g)
        } else {
            GdtEntry::Invalid(raw)
        }
    }
}

impl fmt::Display for GdtEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GdtEntry::Null => f.write_str("null descriptor"),
            GdtEntry::Segment(s) => s.fmt(f),
            GdtEntry::System(s) => s.fmt(f),
            GdtEntry::Gate(g) => g.fmt(f),
            GdtEntry::Invalid(raw) => write!(f, "invalid/reserved descriptor {raw:#018x}"),
        }
    }
}

/// A GDT entry with its position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GdtSlot {
    /// Entry index (selector = index * 8).
    pub index: usize,
    /// The raw first 8 bytes.
    pub raw: u64,
    /// The decoded entry.
    pub entry: GdtEntry,
}

impl GdtSlot {
    /// The selector that names this entry with RPL 0.
    pub fn selector(&self) -> u32 {
        // Index is at most 8191 in a valid table; larger tables cannot be
        // addressed by a selector but are still listed.
        u32::try_from(self.index).unwrap_or(u32::MAX).saturating_mul(8)
    }
}

fn read_u64(bytes: &[u8], off: usize) -> Option<u64> {
    let end = off.checked_add(8)?;
    let b: [u8; 8] = bytes.get(off..end)?.try_into().ok()?;
    Some(u64::from_le_bytes(b))
}

/// Decode a whole GDT or LDT image (`GDTR.limit + 1` bytes from `GDTR.base`).
///
/// With `long_mode`, system descriptors and gates are 16 bytes long and
/// take two slots. A trailing partial entry is ignored.
pub fn parse_gdt(bytes: &[u8], long_mode: bool) -> Vec<GdtSlot> {
    let mut out = Vec::new();
    let mut off = 0usize;
    while let Some(raw) = read_u64(bytes, off) {
        let index = off / 8;
        let is_system = raw != 0 && !bit(raw, 44);
        if long_mode && is_system {
            let hi = read_u64(bytes, off + 8);
            let entry = match hi {
                Some(hi) => {
                    if let Some(s) = SystemDescriptor::decode(raw, Some(hi)) {
                        GdtEntry::System(s)
                    } else if let Some(g) = Gate::decode64(raw, hi) {
                        GdtEntry::Gate(g)
                    } else {
                        GdtEntry::Invalid(raw)
                    }
                }
                None => GdtEntry::Invalid(raw),
            };
            out.push(GdtSlot { index, raw, entry });
            off += 16;
        } else {
            out.push(GdtSlot { index, raw, entry: GdtEntry::decode(raw) });
            off += 8;
        }
    }
    out
}

/// A readable listing of a GDT, one line per entry, for `monitor gdt`.
/// Null entries other than entry 0 are left out.
pub fn format_gdt(bytes: &[u8], long_mode: bool) -> String {
    let mut out = String::new();
    let slots = parse_gdt(bytes, long_mode);
    let _ = writeln!(out, "GDT: {} bytes, {} entries", bytes.len(), bytes.len() / 8);
    for s in slots {
        if s.entry == GdtEntry::Null && s.index != 0 {
            continue;
        }
        let _ = writeln!(out, "  [{:>4}] sel {:#06x}  {:#018x}  {}", s.index, s.selector(), s.raw, s.entry);
    }
    out
}

/// How to interpret the interrupt table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdtFormat {
    /// Real mode Interrupt Vector Table: 4 bytes per vector (offset, segment).
    RealModeIvt,
    /// Protected-mode IDT: 8-byte gates.
    Protected,
    /// Long-mode IDT: 16-byte gates.
    Long,
}

impl IdtFormat {
    /// The table format the CPU uses in `mode`.
    pub fn for_mode(mode: CpuMode) -> IdtFormat {
        match mode {
            CpuMode::Real => IdtFormat::RealModeIvt,
            CpuMode::Long64 | CpuMode::Compat => IdtFormat::Long,
            _ => IdtFormat::Protected,
        }
    }

    /// Bytes per vector.
    pub fn entry_size(self) -> usize {
        match self {
            IdtFormat::RealModeIvt => 4,
            IdtFormat::Protected => 8,
            IdtFormat::Long => 16,
        }
    }
}

/// One decoded interrupt-table entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdtEntry {
    /// A protected/long-mode gate.
    Gate(Gate),
    /// A real-mode vector: the handler is at `segment:offset`.
    RealMode {
        /// Handler segment.
        segment: u16,
        /// Handler offset.
        offset: u16,
    },
    /// An all-zero entry (nothing installed).
    Empty,
    /// Not a valid gate for this table: the raw low 8 bytes.
    Invalid(u64),
}

impl fmt::Display for IdtEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdtEntry::Gate(g) => g.fmt(f),
            IdtEntry::RealMode { segment, offset } => {
                let linear = u32::from(*segment) * 16 + u32::from(*offset);
                write!(f, "handler at {segment:04x}:{offset:04x} (linear {linear:#07x})")
            }
            IdtEntry::Empty => f.write_str("empty"),
            IdtEntry::Invalid(raw) => write!(f, "invalid gate {raw:#018x}"),
        }
    }
}

/// An interrupt-table entry with its vector number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdtSlot {
    /// Interrupt vector (0–255; a longer table is cut at 256).
    pub vector: u8,
    /// The decoded entry.
    pub entry: IdtEntry,
}

/// Decode an interrupt table image (`IDTR.limit + 1` bytes from `IDTR.base`).
/// At most 256 vectors; a trailing partial entry is ignored.
pub fn parse_idt(bytes: &[u8], format: IdtFormat) -> Vec<IdtSlot> {
    let size = format.entry_size();
    bytes
        .chunks_exact(size)
        .take(256)
        .enumerate()
        .map(|(i, chunk)| {
            let vector = u8::try_from(i).unwrap_or(u8::MAX);
            let entry = decode_idt_entry(chunk, format);
            IdtSlot { vector, entry }
        })
        .collect()
}

fn decode_idt_entry(chunk: &[u8], format: IdtFormat) -> IdtEntry {
    if chunk.iter().all(|&b| b == 0) {
        return IdtEntry::Empty;
    }
    match format {
        IdtFormat::RealModeIvt => match chunk {
            [o0, o1, s0, s1] => {
                IdtEntry::RealMode { offset: u16::from_le_bytes([*o0, *o1]), segment: u16::from_le_bytes([*s0, *s1]) }
            }
            _ => IdtEntry::Empty,
        },
        IdtFormat::Protected => {
            let raw = read_u64(chunk, 0).unwrap_or(0);
            match Gate::decode32(raw) {
                // Call gates are not allowed in the IDT.
                Some(g) if !matches!(g.kind, GateKind::Call16 | GateKind::Call32) => IdtEntry::Gate(g),
                _ => IdtEntry::Invalid(raw),
            }
        }
        IdtFormat::Long => {
            let lo = read_u64(chunk, 0).unwrap_or(0);
            let hi = read_u64(chunk, 8).unwrap_or(0);
            match Gate::decode64(lo, hi) {
                Some(g) if g.kind != GateKind::Call64 => IdtEntry::Gate(g),
                _ => IdtEntry::Invalid(lo),
            }
        }
    }
}

/// The usual name of the first 32 (CPU exception) vectors.
pub fn exception_name(vector: u8) -> Option<&'static str> {
    const NAMES: [&str; 32] = [
        "#DE divide error",
        "#DB debug",
        "NMI",
        "#BP breakpoint",
        "#OF overflow",
        "#BR bound range",
        "#UD invalid opcode",
        "#NM device not available",
        "#DF double fault",
        "coprocessor segment overrun",
        "#TS invalid TSS",
        "#NP segment not present",
        "#SS stack fault",
        "#GP general protection",
        "#PF page fault",
        "reserved",
        "#MF x87 error",
        "#AC alignment check",
        "#MC machine check",
        "#XM SIMD error",
        "#VE virtualization",
        "#CP control protection",
        "reserved",
        "reserved",
        "reserved",
        "reserved",
        "reserved",
        "reserved",
        "#HV hypervisor injection",
        "#VC VMM communication",
        "#SX security",
        "reserved",
    ];
    NAMES.get(usize::from(vector)).copied()
}

/// A readable listing of an interrupt table for `monitor idt`. Empty
/// entries are counted but not listed.
pub fn format_idt(bytes: &[u8], format: IdtFormat) -> String {
    let mut out = String::new();
    let slots = parse_idt(bytes, format);
    let what = match format {
        IdtFormat::RealModeIvt => "IVT (real mode)",
        IdtFormat::Protected => "IDT (protected mode)",
        IdtFormat::Long => "IDT (long mode)",
    };
    let _ = writeln!(out, "{what}: {} bytes, {} vectors", bytes.len(), slots.len());
    let mut empty = 0usize;
    for s in &slots {
        if s.entry == IdtEntry::Empty {
            empty += 1;
            continue;
        }
        let _ = write!(out, "  [{:>3}] {}", s.vector, s.entry);
        if let Some(name) = exception_name(s.vector) {
            let _ = write!(out, "  ({name})");
        }
        out.push('\n');
    }
    if empty > 0 {
        let _ = writeln!(out, "  ({empty} empty entries not shown)");
    }
    out
}

/// A readable view of a segment register as KVM reports it
/// (`kvm_sregs.cs`, `.ds`, ...). KVM's `limit` is already in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SegmentView {
    /// The visible selector value.
    pub selector: u16,
    /// The hidden base.
    pub base: u64,
    /// The hidden limit, in bytes.
    pub limit: u32,
    /// Type field (code/data or system type).
    pub typ: u8,
    /// S: code/data (true) or system (false).
    pub code_data: bool,
    /// Descriptor privilege level.
    pub dpl: u8,
    /// Present.
    pub present: bool,
    /// D/B.
    pub db: bool,
    /// L.
    pub long: bool,
    /// G.
    pub granularity: bool,
    /// Unusable (KVM/VMX: a null selector was loaded).
    pub unusable: bool,
}

impl SegmentView {
    /// Copy the fields out of a `kvm_segment`.
    pub fn from_kvm(seg: &kvm_segment) -> SegmentView {
        SegmentView {
            selector: seg.selector,
            base: seg.base,
            limit: seg.limit,
            typ: seg.type_ & 0xF,
            code_data: seg.s != 0,
            dpl: seg.dpl & 3,
            present: seg.present != 0,
            db: seg.db != 0,
            long: seg.l != 0,
            granularity: seg.g != 0,
            unusable: seg.unusable != 0,
        }
    }
}

impl From<&kvm_segment> for SegmentView {
    fn from(seg: &kvm_segment) -> SegmentView {
        SegmentView::from_kvm(seg)
    }
}

impl fmt::Display for SegmentView {
    /// E.g. `0x0008 (GDT[1], RPL 0) base 0x00000000 limit 0xffffffff code 32-bit exec/read, accessed, DPL 0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} base {:#010x} limit {:#010x} ", Selector(self.selector), self.base, self.limit)?;
        if self.unusable {
            return f.write_str("unusable (null selector)");
        }
        if self.code_data {
            f.write_str(&code_data_kind(self.typ, self.db, self.long))?;
        } else {
            let kind = match self.typ {
                1 => "16-bit TSS (available)",
                2 => "LDT",
                3 => "16-bit TSS (busy)",
                9 => "TSS (available)",
                11 => "TSS (busy)",
                _ => "system segment",
            };
            f.write_str(kind)?;
        }
        write!(f, ", DPL {}", self.dpl)?;
        if !self.present {
            f.write_str(", NOT present")?;
        }
        Ok(())
    }
}

/// One line describing a KVM segment register, e.g. `cs: 0x0008 (...) ...`.
pub fn describe_segment(name: &str, seg: &kvm_segment) -> String {
    format!("{name}: {}", SegmentView::from_kvm(seg))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLAT_CODE32: u64 = 0x00CF_9A00_0000_FFFF;
    const FLAT_DATA32: u64 = 0x00CF_9200_0000_FFFF;
    const CODE64: u64 = 0x00AF_9A00_0000_FFFF;
    const CODE16: u64 = 0x0000_9A0F_0000_FFFF; // base 0xF0000, 64 KiB, 16-bit
    const USER_DATA32: u64 = 0x00CF_F200_0000_FFFF;

    #[test]
    fn flat_code_segment() {
        let d = SegmentDescriptor::decode(FLAT_CODE32).unwrap();
        assert_eq!(d.base, 0);
        assert_eq!(d.raw_limit, 0xFFFFF);
        assert_eq!(d.limit, 0xFFFF_FFFF);
        assert_eq!(d.typ, 0xA);
        assert!(d.is_code() && d.readable() && !d.writable() && !d.conforming());
        assert!(!d.accessed());
        assert_eq!(d.dpl, 0);
        assert!(d.present && d.db && d.granularity && !d.long && !d.avl);
        assert_eq!(d.code_bits(), 32);
        assert_eq!(
            d.to_string(),
            "code 32-bit exec/read, base 0x00000000, limit 0xffffffff (G: 4 KiB units), DPL 0, present"
        );
    }

    #[test]
    fn data_and_other_segments() {
        let d = SegmentDescriptor::decode(FLAT_DATA32).unwrap();
        assert!(!d.is_code() && d.writable() && d.readable() && !d.expand_down());
        assert!(d.to_string().starts_with("data read/write"));
        let u = SegmentDescriptor::decode(USER_DATA32).unwrap();
        assert_eq!(u.dpl, 3);
        let c = SegmentDescriptor::decode(CODE64).unwrap();
        assert!(c.long && !c.db);
        assert_eq!(c.code_bits(), 64);
        assert!(c.to_string().starts_with("code 64-bit"));
        let c16 = SegmentDescriptor::decode(CODE16).unwrap();
        assert_eq!(c16.base, 0xF0000);
        assert_eq!(c16.limit, 0xFFFF);
        assert_eq!(c16.code_bits(), 16);
        // Base and limit bits scattered over the whole descriptor.
        // base 31:24 = 0x12, flags G/DB/L/AVL = 0b0101, limit 19:16 = 5,
        // access 0x93 (P, DPL 0, S, data read/write accessed),
        // base 23:0 = 0x345678, limit 15:0 = 0xABCD.
        let d = SegmentDescriptor::decode(0x1255_9334_5678_ABCD).unwrap();
        assert_eq!(d.base, 0x1234_5678);
        assert_eq!(d.raw_limit, 0x5ABCD);
        assert_eq!(d.limit, 0x5ABCD);
        assert!(d.accessed() && d.writable());
        assert!(d.avl && d.db && !d.granularity && !d.long);
        // A system descriptor is not a segment.
        assert_eq!(SegmentDescriptor::decode(0x0000_8900_0000_0067), None);
    }

    #[test]
    fn a_decoded_descriptor_and_kvms_segment_show_alike() {
        let d = SegmentDescriptor::decode(FLAT_CODE32).unwrap();
        assert_eq!(
            (d.limit, d.typ, d.present, d.db, d.granularity, d.long),
            (0xFFFF_FFFF, 0xA, true, true, true, false)
        );
        // The same segment as KVM_GET_SREGS gives it, after `ljmp $0x08`.
        let k = kvm_segment {
            limit: 0xFFFF_FFFF,
            selector: 0x08,
            type_: 0xA,
            present: 1,
            db: 1,
            s: 1,
            g: 1,
            ..Default::default()
        };
        let v = SegmentView::from_kvm(&k);
        assert_eq!(
            v.to_string(),
            "0x0008 (GDT[1], RPL 0) base 0x00000000 limit 0xffffffff code 32-bit exec/read, DPL 0"
        );
        // Real-mode CS after reset as KVM reports it.
        let reset_cs = kvm_segment {
            base: 0xFFFF_0000,
            limit: 0xFFFF,
            selector: 0xF000,
            type_: 0xB,
            present: 1,
            s: 1,
            ..Default::default()
        };
        let line = describe_segment("cs", &reset_cs);
        assert!(line.starts_with("cs: 0xf000"), "{line}");
        assert!(line.contains("base 0xffff0000 limit 0x0000ffff code 16-bit exec/read, accessed"));
        let null = kvm_segment { unusable: 1, ..Default::default() };
        assert!(SegmentView::from(&null).to_string().contains("unusable"));
        let tr = kvm_segment { base: 0x5000, limit: 0x67, selector: 0x28, type_: 11, present: 1, ..Default::default() };
        assert!(SegmentView::from_kvm(&tr).to_string().contains("TSS (busy)"));
    }

    #[test]
    fn selectors() {
        let s = Selector(0x2B);
        assert_eq!(s.index(), 5);
        assert!(!s.ldt() && s.rpl() == 3);
        assert_eq!(s.to_string(), "0x002b (GDT[5], RPL 3)");
        assert!(Selector(0x0C).ldt());
    }

    #[test]
    fn tss_descriptors() {
        // 32-bit TSS, base 0x00105000, limit 0x67, available.
        let raw = 0x0000_8910_5000_0067;
        let t = SystemDescriptor::decode(raw, None).unwrap();
        assert_eq!(t.kind, SystemKind::Tss32 { busy: false });
        assert_eq!(t.base, 0x0010_5000);
        assert_eq!(t.limit, 0x67);
        assert!(t.present);
        assert_eq!(t.to_string(), "32-bit TSS (available), base 0x00105000, limit 0x00000067, DPL 0, present");
        // 64-bit busy TSS with base 0xFFFF_8000_0010_5000.
        let lo = 0x0000_8B10_5000_0067;
        let hi = 0xFFFF_8000;
        let t = SystemDescriptor::decode(lo, Some(hi)).unwrap();
        assert_eq!(t.kind, SystemKind::Tss64 { busy: true });
        assert_eq!(t.base, 0xFFFF_8000_0010_5000);
        assert!(t.to_string().contains("0xffff800000105000"));
        // LDT.
        let l = SystemDescriptor::decode(0x0000_8200_1000_00FF, None).unwrap();
        assert_eq!(l.kind, SystemKind::Ldt);
        // Reserved system types.
        assert_eq!(SystemDescriptor::decode(0x0000_8800_0000_0000, None), None);
        assert_eq!(SystemDescriptor::decode(0x0000_8100_0000_0000, Some(0)), None);
    }

    #[test]
    fn interrupt_gates_32() {
        // Interrupt gate: selector 0x08, offset 0x00101234, DPL 0, present.
        let raw = 0x0010_8E00_0008_1234;
        let g = Gate::decode32(raw).unwrap();
        assert_eq!(g.kind, GateKind::Interrupt32);
        assert_eq!(g.selector, 8);
        assert_eq!(g.offset, 0x0010_1234);
        assert_eq!(g.dpl, 0);
        assert!(g.present);
        assert_eq!(g.to_string(), "32-bit interrupt gate -> 0x0008:0x00101234, DPL 0, present");
        // Trap gate with DPL 3 (like int 0x80).
        let t = Gate::decode32(0x0010_EF00_0008_5678).unwrap();
        assert_eq!(t.kind, GateKind::Trap32);
        assert_eq!(t.dpl, 3);
        // Task gate: selector is a TSS, offset unused.
        let tg = Gate::decode32(0xFFFF_8500_0028_FFFF).unwrap();
        assert_eq!(tg.kind, GateKind::Task);
        assert_eq!(tg.selector, 0x28);
        assert_eq!(tg.offset, 0);
        assert!(tg.to_string().starts_with("task gate -> TSS selector 0x0028"));
        // Call gate with 2 parameters.
        let c = Gate::decode32(0x0000_EC02_0008_1000).unwrap();
        assert_eq!(c.kind, GateKind::Call32);
        assert_eq!(c.param_count, 2);
        // Not a gate.
        assert_eq!(Gate::decode32(FLAT_CODE32), None);
        assert_eq!(Gate::decode32(0x0000_8900_0000_0067), None);
    }

    #[test]
    fn interrupt_gates_64() {
        // Handler 0xFFFF_FFFF_8010_1234, selector 0x10, IST 2.
        let lo = 0x8010_8E02_0010_1234;
        let hi = 0xFFFF_FFFF;
        let g = Gate::decode64(lo, hi).unwrap();
        assert_eq!(g.kind, GateKind::Interrupt64);
        assert_eq!(g.offset, 0xFFFF_FFFF_8010_1234);
        assert_eq!(g.ist, 2);
        assert_eq!(g.selector, 0x10);
        assert!(g.to_string().contains("0x0010:0xffffffff80101234, IST 2"));
        // 16-bit and task gates do not exist in long mode.
        assert_eq!(Gate::decode64(0x0000_8500_0028_0000, 0), None);
    }

    fn table(entries: &[u64]) -> Vec<u8> {
        entries.iter().flat_map(|e| e.to_le_bytes()).collect()
    }

    #[test]
    fn parse_gdt_legacy_and_long() {
        let bytes = table(&[0, FLAT_CODE32, FLAT_DATA32, 0x0000_8910_5000_0067, 0, 0x0000_8800_0000_0001]);
        let g = parse_gdt(&bytes, false);
        assert_eq!(g.len(), 6);
        assert_eq!(g[0].entry, GdtEntry::Null);
        assert!(matches!(g[1].entry, GdtEntry::Segment(s) if s.is_code()));
        assert_eq!(g[1].selector(), 8);
        assert!(matches!(g[3].entry, GdtEntry::System(_)));
        assert!(matches!(g[5].entry, GdtEntry::Invalid(_)));
        let text = format_gdt(&bytes, false);
        assert!(text.contains("[   1] sel 0x0008"), "{text}");
        assert!(text.contains("32-bit TSS"), "{text}");
        assert!(!text.contains("[   4]"), "null entries after 0 are hidden: {text}");

        // Long mode: TSS takes entries 3 and 4.
        let bytes = table(&[0, CODE64, FLAT_DATA32, 0x0000_8B10_5000_0067, 0xFFFF_8000, FLAT_DATA32]);
        let g = parse_gdt(&bytes, true);
        assert_eq!(g.len(), 5);
        assert!(matches!(g[3].entry, GdtEntry::System(s) if s.base == 0xFFFF_8000_0010_5000));
        assert_eq!(g[4].index, 5);
        // Truncated 16-byte entry and odd lengths do not panic.
        let g = parse_gdt(&bytes[..32], true);
        assert!(matches!(g.last().unwrap().entry, GdtEntry::Invalid(_)));
        assert!(parse_gdt(&[1, 2, 3], false).is_empty());
        // The GDT limit is usually 8n-1: LGDT limit 0x17 gives 0x18 bytes.
        assert_eq!(parse_gdt(&table(&[0, FLAT_CODE32, FLAT_DATA32]), false).len(), 3);
    }

    #[test]
    fn parse_idt_formats() {
        // Real-mode IVT: int 0 -> f000:ff53, int 1 empty.
        let ivt = [0x53, 0xFF, 0x00, 0xF0, 0, 0, 0, 0];
        let v = parse_idt(&ivt, IdtFormat::RealModeIvt);
        assert_eq!(v[0].entry, IdtEntry::RealMode { segment: 0xF000, offset: 0xFF53 });
        assert_eq!(v[1].entry, IdtEntry::Empty);
        assert!(v[0].entry.to_string().contains("f000:ff53 (linear 0xfff53)"));

        let idt = table(&[0x0010_8E00_0008_1234, 0, 0x0000_EC02_0008_1000, 0x0010_8F00_0008_2000]);
        let v = parse_idt(&idt, IdtFormat::Protected);
        assert!(matches!(v[0].entry, IdtEntry::Gate(g) if g.kind == GateKind::Interrupt32));
        assert_eq!(v[1].entry, IdtEntry::Empty);
        assert!(matches!(v[2].entry, IdtEntry::Invalid(_)), "call gates are not IDT gates");
        let text = format_idt(&idt, IdtFormat::Protected);
        assert!(text.contains("[  0] 32-bit interrupt gate"), "{text}");
        assert!(text.contains("#DE divide error"), "{text}");
        assert!(text.contains("(1 empty entries not shown)"), "{text}");

        let idt64 = table(&[0x8010_8E02_0010_1234, 0xFFFF_FFFF]);
        let v = parse_idt(&idt64, IdtFormat::Long);
        assert_eq!(v.len(), 1);
        assert!(matches!(v[0].entry, IdtEntry::Gate(g) if g.ist == 2));

        // More than 256 vectors are cut off.
        let big = vec![0u8; 300 * 8];
        assert_eq!(parse_idt(&big, IdtFormat::Protected).len(), 256);
        assert_eq!(IdtFormat::for_mode(CpuMode::Real), IdtFormat::RealModeIvt);
        assert_eq!(IdtFormat::for_mode(CpuMode::Long64).entry_size(), 16);
        assert_eq!(exception_name(14), Some("#PF page fault"));
        assert_eq!(exception_name(32), None);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut seed: u32 = 0xDEAD_BEEF;
        let bytes: Vec<u8> = (0..4099)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                seed as u8
            })
            .collect();
        for long in [false, true] {
            let _ = format_gdt(&bytes, long);
        }
        for f in [IdtFormat::RealModeIvt, IdtFormat::Protected, IdtFormat::Long] {
            let _ = format_idt(&bytes, f);
        }
        for c in bytes.chunks_exact(8) {
            let raw = u64::from_le_bytes(c.try_into().unwrap());
            let _ = GdtEntry::decode(raw).to_string();
        }
    }
}
