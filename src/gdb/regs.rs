//! The register file that the GDB stub shows for an x86 guest.
//!
//! # How gdb sees registers
//!
//! gdb reads all registers at once with the `g` packet: the stub answers
//! with one long hex string, the registers' bytes back to back, each in
//! target (little-endian) byte order. gdb cuts the string into registers
//! using the *target description* (`target.xml`, see [`super::arch`]),
//! which lists every register with its name and size **in order**. So the
//! order and sizes in [`REGISTERS`] are the contract: the XML is generated
//! from this table, and [`X86Regs::gdb_serialize`] walks the same table.
//!
//! The layout starts exactly like gdb's own 32-bit x86 layout (features
//! `org.gnu.gdb.i386.core` and `org.gnu.gdb.i386.sse`), so gdb's register
//! numbers 0–40 mean what gdb expects (eax is 0, eip is 8, ...). After those
//! comes our own feature `org.minikvm.sys` with the system registers that a
//! normal user-space debugger never sees: control registers, EFER, the
//! hidden segment bases and the descriptor-table registers.
//!
//! ```text
//! nr  name          bits   nr  name        bits   nr  name         bits
//!  0  eax            32    16  st0..st7     80    41  cr0           64
//!  1  ecx            32    24  fctrl        32    42  cr2           64
//!  2  edx            32    25  fstat        32    43  cr3           64
//!  3  ebx            32    26  ftag         32    44  cr4           64
//!  4  esp            32    27  fiseg        32    45  efer          64
//!  5  ebp            32    28  fioff        32    46  cs_base..     64
//!  6  esi            32    29  foseg        32    51  gs_base       64
//!  7  edi            32    30  fooff        32    52  gdtr_base     64
//!  8  eip            32    31  fop          32    53  gdtr_limit    32
//!  9  eflags         32    32  xmm0..xmm7  128    54  idtr_base     64
//! 10  cs ss ds es fs gs 32 40  mxcsr        32    55  idtr_limit    32
//! ```

#![forbid(unsafe_code)]

use core::num::NonZeroUsize;
use gdbstub::arch::{RegId, Registers};
use kvm_bindings::{kvm_fpu, kvm_regs, kvm_segment, kvm_sregs};

/// Identifies one register of [`X86Regs`] (gdb's register number is its
/// position in [`REGISTERS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum X86RegId {
    /// Accumulator.
    Eax,
    /// Counter.
    Ecx,
    /// Data.
    Edx,
    /// Base.
    Ebx,
    /// Stack pointer.
    Esp,
    /// Frame (base) pointer.
    Ebp,
    /// Source index.
    Esi,
    /// Destination index.
    Edi,
    /// Instruction pointer (offset inside CS).
    Eip,
    /// Flags.
    Eflags,
    /// Code segment selector.
    Cs,
    /// Stack segment selector.
    Ss,
    /// Data segment selector.
    Ds,
    /// Extra segment selector.
    Es,
    /// FS selector.
    Fs,
    /// GS selector.
    Gs,
    /// x87 stack register ST(n), n = 0..7, 80-bit extended precision.
    St(u8),
    /// x87 control word.
    Fctrl,
    /// x87 status word.
    Fstat,
    /// x87 tag word (full 16-bit form, 2 bits per physical register).
    Ftag,
    /// x87 last instruction pointer: segment.
    Fiseg,
    /// x87 last instruction pointer: offset.
    Fioff,
    /// x87 last operand pointer: segment.
    Foseg,
    /// x87 last operand pointer: offset.
    Fooff,
    /// x87 last opcode (11 bits).
    Fop,
    /// SSE register XMMn, n = 0..7.
    Xmm(u8),
    /// SSE control/status.
    Mxcsr,
    /// Control register 0 (mode bits: PE, PG, ...).
    Cr0,
    /// Control register 2 (last page-fault address).
    Cr2,
    /// Control register 3 (page-table root).
    Cr3,
    /// Control register 4 (feature enables: PSE, PAE, ...).
    Cr4,
    /// Extended Feature Enable Register (MSR 0xC0000080).
    Efer,
    /// Hidden base of CS.
    CsBase,
    /// Hidden base of SS.
    SsBase,
    /// Hidden base of DS.
    DsBase,
    /// Hidden base of ES.
    EsBase,
    /// Hidden base of FS.
    FsBase,
    /// Hidden base of GS.
    GsBase,
    /// GDTR base (linear address of the GDT).
    GdtrBase,
    /// GDTR limit (size of the GDT minus one).
    GdtrLimit,
    /// IDTR base (linear address of the IDT).
    IdtrBase,
    /// IDTR limit (size of the IDT minus one).
    IdtrLimit,
}

/// The target-description feature a register belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Feature {
    /// `org.gnu.gdb.i386.core`: general, segment and x87 registers.
    Core,
    /// `org.gnu.gdb.i386.sse`: XMM registers and MXCSR.
    Sse,
    /// `org.minikvm.sys`: our system registers.
    Sys,
}

impl Feature {
    /// The feature name used in the XML.
    pub fn name(self) -> &'static str {
        match self {
            Feature::Core => "org.gnu.gdb.i386.core",
            Feature::Sse => "org.gnu.gdb.i386.sse",
            Feature::Sys => "org.minikvm.sys",
        }
    }
}

/// Static description of one register: what the XML says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegInfo {
    /// Which register.
    pub id: X86RegId,
    /// gdb's name for it (`$eax`, `$cr0`, ...).
    pub name: &'static str,
    /// Size in bits.
    pub bits: usize,
    /// gdb type name (predefined like `int32`, or defined in our XML).
    pub ty: &'static str,
    /// gdb register group, if not the default.
    pub group: Option<&'static str>,
    /// Feature it is listed under.
    pub feature: Feature,
}

impl RegInfo {
    /// Size in bytes.
    pub fn bytes(&self) -> usize {
        self.bits / 8
    }
}

macro_rules! reg {
    ($id:expr, $name:expr, $bits:expr, $ty:expr, $group:expr, $feat:ident) => {
        RegInfo { id: $id, name: $name, bits: $bits, ty: $ty, group: $group, feature: Feature::$feat }
    };
}

use X86RegId as R;

/// Every register, in gdb register-number order. The `g` packet and the
/// target description both follow this order.
pub const REGISTERS: [RegInfo; 56] = [
    reg!(R::Eax, "eax", 32, "int32", None, Core),
    reg!(R::Ecx, "ecx", 32, "int32", None, Core),
    reg!(R::Edx, "edx", 32, "int32", None, Core),
    reg!(R::Ebx, "ebx", 32, "int32", None, Core),
    reg!(R::Esp, "esp", 32, "data_ptr", None, Core),
    reg!(R::Ebp, "ebp", 32, "data_ptr", None, Core),
    reg!(R::Esi, "esi", 32, "int32", None, Core),
    reg!(R::Edi, "edi", 32, "int32", None, Core),
    reg!(R::Eip, "eip", 32, "code_ptr", None, Core),
    reg!(R::Eflags, "eflags", 32, "i386_eflags", None, Core),
    reg!(R::Cs, "cs", 32, "int32", None, Core),
    reg!(R::Ss, "ss", 32, "int32", None, Core),
    reg!(R::Ds, "ds", 32, "int32", None, Core),
    reg!(R::Es, "es", 32, "int32", None, Core),
    reg!(R::Fs, "fs", 32, "int32", None, Core),
    reg!(R::Gs, "gs", 32, "int32", None, Core),
    reg!(R::St(0), "st0", 80, "i387_ext", None, Core),
    reg!(R::St(1), "st1", 80, "i387_ext", None, Core),
    reg!(R::St(2), "st2", 80, "i387_ext", None, Core),
    reg!(R::St(3), "st3", 80, "i387_ext", None, Core),
    reg!(R::St(4), "st4", 80, "i387_ext", None, Core),
    reg!(R::St(5), "st5", 80, "i387_ext", None, Core),
    reg!(R::St(6), "st6", 80, "i387_ext", None, Core),
    reg!(R::St(7), "st7", 80, "i387_ext", None, Core),
    reg!(R::Fctrl, "fctrl", 32, "int", Some("float"), Core),
    reg!(R::Fstat, "fstat", 32, "int", Some("float"), Core),
    reg!(R::Ftag, "ftag", 32, "int", Some("float"), Core),
    reg!(R::Fiseg, "fiseg", 32, "int", Some("float"), Core),
    reg!(R::Fioff, "fioff", 32, "int", Some("float"), Core),
    reg!(R::Foseg, "foseg", 32, "int", Some("float"), Core),
    reg!(R::Fooff, "fooff", 32, "int", Some("float"), Core),
    reg!(R::Fop, "fop", 32, "int", Some("float"), Core),
    reg!(R::Xmm(0), "xmm0", 128, "vec128", None, Sse),
    reg!(R::Xmm(1), "xmm1", 128, "vec128", None, Sse),
    reg!(R::Xmm(2), "xmm2", 128, "vec128", None, Sse),
    reg!(R::Xmm(3), "xmm3", 128, "vec128", None, Sse),
    reg!(R::Xmm(4), "xmm4", 128, "vec128", None, Sse),
    reg!(R::Xmm(5), "xmm5", 128, "vec128", None, Sse),
    reg!(R::Xmm(6), "xmm6", 128, "vec128", None, Sse),
    reg!(R::Xmm(7), "xmm7", 128, "vec128", None, Sse),
    reg!(R::Mxcsr, "mxcsr", 32, "i386_mxcsr", Some("vector"), Sse),
    reg!(R::Cr0, "cr0", 64, "minikvm_cr0", Some("system"), Sys),
    reg!(R::Cr2, "cr2", 64, "uint64", Some("system"), Sys),
    reg!(R::Cr3, "cr3", 64, "uint64", Some("system"), Sys),
    reg!(R::Cr4, "cr4", 64, "minikvm_cr4", Some("system"), Sys),
    reg!(R::Efer, "efer", 64, "minikvm_efer", Some("system"), Sys),
    reg!(R::CsBase, "cs_base", 64, "uint64", Some("system"), Sys),
    reg!(R::SsBase, "ss_base", 64, "uint64", Some("system"), Sys),
    reg!(R::DsBase, "ds_base", 64, "uint64", Some("system"), Sys),
    reg!(R::EsBase, "es_base", 64, "uint64", Some("system"), Sys),
    reg!(R::FsBase, "fs_base", 64, "uint64", Some("system"), Sys),
    reg!(R::GsBase, "gs_base", 64, "uint64", Some("system"), Sys),
    reg!(R::GdtrBase, "gdtr_base", 64, "uint64", Some("system"), Sys),
    reg!(R::GdtrLimit, "gdtr_limit", 32, "uint32", Some("system"), Sys),
    reg!(R::IdtrBase, "idtr_base", 64, "uint64", Some("system"), Sys),
    reg!(R::IdtrLimit, "idtr_limit", 32, "uint32", Some("system"), Sys),
];

/// Total size of the `g` packet payload in bytes.
pub fn total_bytes() -> usize {
    REGISTERS.iter().map(RegInfo::bytes).sum()
}

impl X86RegId {
    /// gdb's register number for this register.
    pub fn index(self) -> Option<usize> {
        REGISTERS.iter().position(|r| r.id == self)
    }

    /// The table entry describing this register.
    pub fn info(self) -> Option<&'static RegInfo> {
        REGISTERS.iter().find(|r| r.id == self)
    }
}

impl RegId for X86RegId {
    fn from_raw_id(id: usize) -> Option<(Self, Option<NonZeroUsize>)> {
        let info = REGISTERS.get(id)?;
        Some((info.id, NonZeroUsize::new(info.bytes())))
    }

    fn to_raw_id(&self) -> Option<usize> {
        self.index()
    }
}

/// Why a single-register write was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegError {
    /// No such register (e.g. `St(9)`).
    NoSuchRegister,
    /// The value has the wrong number of bytes.
    WrongSize {
        /// Bytes the register has.
        expected: usize,
        /// Bytes supplied.
        got: usize,
    },
}

impl core::fmt::Display for RegError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RegError::NoSuchRegister => f.write_str("no such register"),
            RegError::WrongSize { expected, got } => {
                write!(f, "register has {expected} bytes, got {got}")
            }
        }
    }
}

impl std::error::Error for RegError {}

/// All registers gdb sees, in the layout of [`REGISTERS`].
///
/// Segment registers hold the 16-bit selector zero-extended to 32 bits, as
/// gdb expects. The "hidden" parts of the segment registers (base, limit,
/// attributes) are what the CPU really uses for addressing; only the bases
/// are shown (`cs_base`, ...), e.g. to compute a real-mode linear address
/// as `$cs_base + $eip`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct X86Regs {
    /// Accumulator.
    pub eax: u32,
    /// Counter.
    pub ecx: u32,
    /// Data.
    pub edx: u32,
    /// Base.
    pub ebx: u32,
    /// Stack pointer.
    pub esp: u32,
    /// Frame pointer.
    pub ebp: u32,
    /// Source index.
    pub esi: u32,
    /// Destination index.
    pub edi: u32,
    /// Instruction pointer.
    pub eip: u32,
    /// Flags.
    pub eflags: u32,
    /// CS selector.
    pub cs: u32,
    /// SS selector.
    pub ss: u32,
    /// DS selector.
    pub ds: u32,
    /// ES selector.
    pub es: u32,
    /// FS selector.
    pub fs: u32,
    /// GS selector.
    pub gs: u32,
    /// x87 registers ST(0)..ST(7) (stack order, ST(0) = top), 80 bits each.
    pub st: [[u8; 10]; 8],
    /// x87 control word.
    pub fctrl: u32,
    /// x87 status word.
    pub fstat: u32,
    /// x87 full tag word.
    pub ftag: u32,
    /// x87 instruction pointer segment.
    pub fiseg: u32,
    /// x87 instruction pointer offset.
    pub fioff: u32,
    /// x87 operand pointer segment.
    pub foseg: u32,
    /// x87 operand pointer offset.
    pub fooff: u32,
    /// x87 last opcode.
    pub fop: u32,
    /// XMM0..XMM7.
    pub xmm: [u128; 8],
    /// SSE control/status.
    pub mxcsr: u32,
    /// CR0.
    pub cr0: u64,
    /// CR2.
    pub cr2: u64,
    /// CR3.
    pub cr3: u64,
    /// CR4.
    pub cr4: u64,
    /// EFER.
    pub efer: u64,
    /// CS base.
    pub cs_base: u64,
    /// SS base.
    pub ss_base: u64,
    /// DS base.
    pub ds_base: u64,
    /// ES base.
    pub es_base: u64,
    /// FS base.
    pub fs_base: u64,
    /// GS base.
    pub gs_base: u64,
    /// GDTR base.
    pub gdtr_base: u64,
    /// GDTR limit.
    pub gdtr_limit: u32,
    /// IDTR base.
    pub idtr_base: u64,
    /// IDTR limit.
    pub idtr_limit: u32,
}

/// The little-endian bytes of one register value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegBytes {
    buf: [u8; 16],
    len: usize,
}

impl RegBytes {
    fn from_slice(src: &[u8]) -> RegBytes {
        let mut buf = [0u8; 16];
        let len = src.len().min(16);
        buf[..len].copy_from_slice(&src[..len]);
        RegBytes { buf, len }
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

fn le<const N: usize>(bytes: &[u8]) -> Option<[u8; N]> {
    bytes.try_into().ok()
}

/// Generates by-reference and by-mutable-reference accessors for the
/// plain integer fields, so `get` and `set` share one list.
macro_rules! field_accessors {
    ($ref32:ident, $mut32:ident: $($id32:ident => $f32:ident),* ;
     $ref64:ident, $mut64:ident: $($id64:ident => $f64:ident),*) => {
        fn $ref32(&self, id: X86RegId) -> Option<&u32> {
            match id { $(R::$id32 => Some(&self.$f32),)* _ => None }
        }
        fn $mut32(&mut self, id: X86RegId) -> Option<&mut u32> {
            match id { $(R::$id32 => Some(&mut self.$f32),)* _ => None }
        }
        fn $ref64(&self, id: X86RegId) -> Option<&u64> {
            match id { $(R::$id64 => Some(&self.$f64),)* _ => None }
        }
        fn $mut64(&mut self, id: X86RegId) -> Option<&mut u64> {
            match id { $(R::$id64 => Some(&mut self.$f64),)* _ => None }
        }
    };
}

impl X86Regs {
    field_accessors!(
        u32_ref, u32_mut:
        Eax => eax, Ecx => ecx, Edx => edx, Ebx => ebx, Esp => esp, Ebp => ebp,
        Esi => esi, Edi => edi, Eip => eip, Eflags => eflags,
        Cs => cs, Ss => ss, Ds => ds, Es => es, Fs => fs, Gs => gs,
        Fctrl => fctrl, Fstat => fstat, Ftag => ftag, Fiseg => fiseg,
        Fioff => fioff, Foseg => foseg, Fooff => fooff, Fop => fop,
        Mxcsr => mxcsr, GdtrLimit => gdtr_limit, IdtrLimit => idtr_limit;
        u64_ref, u64_mut:
        Cr0 => cr0, Cr2 => cr2, Cr3 => cr3, Cr4 => cr4, Efer => efer,
        CsBase => cs_base, SsBase => ss_base, DsBase => ds_base,
        EsBase => es_base, FsBase => fs_base, GsBase => gs_base,
        GdtrBase => gdtr_base, IdtrBase => idtr_base
    );

    /// The value of one register as little-endian bytes (gdb's format),
    /// or `None` for an id that does not exist (e.g. `St(8)`).
    pub fn get(&self, id: X86RegId) -> Option<RegBytes> {
        if let Some(v) = self.u32_ref(id) {
            return Some(RegBytes::from_slice(&v.to_le_bytes()));
        }
        if let Some(v) = self.u64_ref(id) {
            return Some(RegBytes::from_slice(&v.to_le_bytes()));
        }
        match id {
            R::St(n) => self.st.get(usize::from(n)).map(|v| RegBytes::from_slice(v)),
            R::Xmm(n) => self.xmm.get(usize::from(n)).map(|v| RegBytes::from_slice(&v.to_le_bytes())),
            _ => None,
        }
    }

    /// Set one register from little-endian bytes; the length must match
    /// the register's size.
    pub fn set(&mut self, id: X86RegId, bytes: &[u8]) -> Result<(), RegError> {
        let info = id.info().ok_or(RegError::NoSuchRegister)?;
        if bytes.len() != info.bytes() {
            return Err(RegError::WrongSize { expected: info.bytes(), got: bytes.len() });
        }
        let size_err = RegError::WrongSize { expected: info.bytes(), got: bytes.len() };
        if let Some(v) = self.u32_mut(id) {
            *v = u32::from_le_bytes(le(bytes).ok_or(size_err)?);
            return Ok(());
        }
        if let Some(v) = self.u64_mut(id) {
            *v = u64::from_le_bytes(le(bytes).ok_or(size_err)?);
            return Ok(());
        }
        match id {
            R::St(n) => {
                let slot = self.st.get_mut(usize::from(n)).ok_or(RegError::NoSuchRegister)?;
                *slot = le(bytes).ok_or(size_err)?;
                Ok(())
            }
            R::Xmm(n) => {
                let slot = self.xmm.get_mut(usize::from(n)).ok_or(RegError::NoSuchRegister)?;
                *slot = u128::from_le_bytes(le(bytes).ok_or(size_err)?);
                Ok(())
            }
            _ => Err(RegError::NoSuchRegister),
        }
    }
}

impl Registers for X86Regs {
    type ProgramCounter = u64;

    /// gdb's `$pc`: EIP (an offset inside CS, not a linear address).
    fn pc(&self) -> u64 {
        u64::from(self.eip)
    }

    fn gdb_serialize(&self, mut write_byte: impl FnMut(Option<u8>)) {
        for info in &REGISTERS {
            match self.get(info.id) {
                Some(v) => v.as_slice().iter().for_each(|b| write_byte(Some(*b))),
                // Cannot happen for ids from the table; report "unavailable".
                None => (0..info.bytes()).for_each(|_| write_byte(None)),
            }
        }
    }

    /// Accepts exactly the full layout. (gdbstub writes *every* register
    /// from a `G` packet, so a short packet must not silently zero CR0.)
    fn gdb_deserialize(&mut self, bytes: &[u8]) -> Result<(), ()> {
        if bytes.len() != total_bytes() {
            return Err(());
        }
        let mut off = 0usize;
        for info in &REGISTERS {
            let end = off.checked_add(info.bytes()).ok_or(())?;
            let chunk = bytes.get(off..end).ok_or(())?;
            self.set(info.id, chunk).map_err(|_| ())?;
            off = end;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------
// x87 tag word conversion
// ---------------------------------------------------------------------

/// Classify an 80-bit x87 value into the 2-bit tag the full tag word uses:
/// `00` valid, `01` zero, `10` special (NaN, infinity, denormal, unnormal).
fn x87_tag(value: &[u8; 10]) -> u32 {
    let exponent = u16::from_le_bytes([value[8], value[9]]) & 0x7FFF;
    let mantissa = u64::from_le_bytes([value[0], value[1], value[2], value[3], value[4], value[5], value[6], value[7]]);
    let integer_bit = mantissa >> 63 != 0;
    match exponent {
        0x7FFF => 0b10,
        0 if mantissa == 0 => 0b01,
        0 => 0b10,
        _ if integer_bit => 0b00,
        _ => 0b10,
    }
}

/// Expand the *abridged* tag byte that `FXSAVE` (and so KVM's
/// `kvm_fpu.ftwx`) stores — one bit per physical register, 1 = in use —
/// into the full 16-bit tag word gdb shows as `ftag`, 2 bits per physical
/// register R0..R7: `00` valid, `01` zero, `10` special, `11` empty.
///
/// The registers in `st` are in *stack* order (ST(0) = top of stack), the
/// tag bits in *physical* order, related by TOP = `fsw` bits 13..11:
/// physical register `i` is ST((i − TOP) mod 8).
pub fn ftag_from_abridged(ftwx: u8, fsw: u16, st: &[[u8; 10]; 8]) -> u32 {
    let top = usize::from((fsw >> 11) & 7);
    let mut ftag = 0u32;
    for phys in 0..8usize {
        let tag = if ftwx & (1 << phys) == 0 {
            0b11
        } else {
            let st_index = (phys + 8 - top) % 8;
            x87_tag(&st[st_index])
        };
        ftag |= tag << (2 * phys);
    }
    ftag
}

/// Compress a full tag word back to the abridged `FXSAVE` form: bit `i` is
/// 1 unless physical register `i` is tagged empty (`11`).
pub fn abridged_from_ftag(ftag: u32) -> u8 {
    let mut ftwx = 0u8;
    for phys in 0..8 {
        if (ftag >> (2 * phys)) & 0b11 != 0b11 {
            ftwx |= 1 << phys;
        }
    }
    ftwx
}

// ---------------------------------------------------------------------
// KVM conversion
// ---------------------------------------------------------------------

/// Which KVM register sets [`X86Regs::apply_to_kvm`] changed, so the
/// caller only issues the `KVM_SET_*` ioctls that are needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Changed {
    /// `kvm_regs` changed: call `set_regs`.
    pub regs: bool,
    /// `kvm_sregs` changed: call `set_sregs`.
    pub sregs: bool,
    /// `kvm_fpu` changed: call `set_fpu`.
    pub fpu: bool,
}

fn low32(v: u64) -> u32 {
    (v & 0xFFFF_FFFF) as u32
}

fn with_low32(old: u64, new: u32) -> u64 {
    (old & !0xFFFF_FFFF) | u64::from(new)
}

impl X86Regs {
    /// Gather the gdb view from KVM's `KVM_GET_REGS`, `KVM_GET_SREGS` and
    /// `KVM_GET_FPU` results. 64-bit registers are cut to their low 32 bits.
    pub fn from_kvm(regs: &kvm_regs, sregs: &kvm_sregs, fpu: &kvm_fpu) -> X86Regs {
        let mut st = [[0u8; 10]; 8];
        for (dst, src) in st.iter_mut().zip(fpu.fpr.iter()) {
            dst.copy_from_slice(&src[..10]);
        }
        let mut xmm = [0u128; 8];
        for (dst, src) in xmm.iter_mut().zip(fpu.xmm.iter()) {
            *dst = u128::from_le_bytes(*src);
        }
        X86Regs {
            eax: low32(regs.rax),
            ecx: low32(regs.rcx),
            edx: low32(regs.rdx),
            ebx: low32(regs.rbx),
            esp: low32(regs.rsp),
            ebp: low32(regs.rbp),
            esi: low32(regs.rsi),
            edi: low32(regs.rdi),
            eip: low32(regs.rip),
            eflags: low32(regs.rflags),
            cs: u32::from(sregs.cs.selector),
            ss: u32::from(sregs.ss.selector),
            ds: u32::from(sregs.ds.selector),
            es: u32::from(sregs.es.selector),
            fs: u32::from(sregs.fs.selector),
            gs: u32::from(sregs.gs.selector),
            ftag: ftag_from_abridged(fpu.ftwx, fpu.fsw, &st),
            st,
            fctrl: u32::from(fpu.fcw),
            fstat: u32::from(fpu.fsw),
            // KVM's FXSAVE image is the 64-bit format: no segment parts.
            fiseg: 0,
            fioff: low32(fpu.last_ip),
            foseg: 0,
            fooff: low32(fpu.last_dp),
            fop: u32::from(fpu.last_opcode & 0x7FF),
            xmm,
            mxcsr: fpu.mxcsr,
            cr0: sregs.cr0,
            cr2: sregs.cr2,
            cr3: sregs.cr3,
            cr4: sregs.cr4,
            efer: sregs.efer,
            cs_base: sregs.cs.base,
            ss_base: sregs.ss.base,
            ds_base: sregs.ds.base,
            es_base: sregs.es.base,
            fs_base: sregs.fs.base,
            gs_base: sregs.gs.base,
            gdtr_base: sregs.gdt.base,
            gdtr_limit: u32::from(sregs.gdt.limit),
            idtr_base: sregs.idt.base,
            idtr_limit: u32::from(sregs.idt.limit),
        }
    }

    /// Write gdb's (possibly edited) view back into KVM structures that
    /// were filled by the `KVM_GET_*` ioctls, changing only what differs,
    /// and report which sets changed.
    ///
    /// * The upper halves of 64-bit registers are kept.
    /// * A changed segment selector in **real mode** also sets the base to
    ///   `selector * 16`, like a real-mode `MOV seg` does (unless the base
    ///   was edited explicitly too). In protected mode only the selector
    ///   changes: the hidden part (base, limit, type) stays as it was, since
    ///   the CPU loads it from the GDT only when code loads the selector.
    pub fn apply_to_kvm(&self, regs: &mut kvm_regs, sregs: &mut kvm_sregs, fpu: &mut kvm_fpu) -> Changed {
        let segments = self.apply_segments(sregs);
        let system = self.apply_system(sregs);
        Changed { regs: self.apply_general(regs), sregs: segments || system, fpu: self.apply_fpu(fpu) }
    }

    /// The general registers, EIP and EFLAGS (their upper halves kept); true if any changed.
    fn apply_general(&self, regs: &mut kvm_regs) -> bool {
        let gprs: [(&mut u64, u32); 10] = [
            (&mut regs.rax, self.eax),
            (&mut regs.rcx, self.ecx),
            (&mut regs.rdx, self.edx),
            (&mut regs.rbx, self.ebx),
            (&mut regs.rsp, self.esp),
            (&mut regs.rbp, self.ebp),
            (&mut regs.rsi, self.esi),
            (&mut regs.rdi, self.edi),
            (&mut regs.rip, self.eip),
            (&mut regs.rflags, self.eflags),
        ];
        let mut changed = false;
        for (dst, v) in gprs {
            if low32(*dst) != v {
                *dst = with_low32(*dst, v);
                changed = true;
            }
        }
        changed
    }

    /// The segment selectors and bases (a real-mode selector moves its base along); true if
    /// any changed.
    fn apply_segments(&self, sregs: &mut kvm_sregs) -> bool {
        let real_mode = sregs.cr0 & crate::x86::mode::cr0::PE == 0;
        let segs: [(&mut kvm_segment, u32, u64); 6] = [
            (&mut sregs.cs, self.cs, self.cs_base),
            (&mut sregs.ss, self.ss, self.ss_base),
            (&mut sregs.ds, self.ds, self.ds_base),
            (&mut sregs.es, self.es, self.es_base),
            (&mut sregs.fs, self.fs, self.fs_base),
            (&mut sregs.gs, self.gs, self.gs_base),
        ];
        let mut changed = false;
        for (seg, sel, base) in segs {
            let sel = (sel & 0xFFFF) as u16;
            let base_edited = base != seg.base;
            if sel != seg.selector {
                seg.selector = sel;
                if real_mode && !base_edited {
                    seg.base = u64::from(sel) << 4;
                }
                changed = true;
            }
            if base_edited {
                seg.base = base;
                changed = true;
            }
        }
        changed
    }

    /// CR0–CR4, EFER, GDTR and IDTR; true if any changed.
    fn apply_system(&self, sregs: &mut kvm_sregs) -> bool {
        let sys: [(&mut u64, u64); 7] = [
            (&mut sregs.cr0, self.cr0),
            (&mut sregs.cr2, self.cr2),
            (&mut sregs.cr3, self.cr3),
            (&mut sregs.cr4, self.cr4),
            (&mut sregs.efer, self.efer),
            (&mut sregs.gdt.base, self.gdtr_base),
            (&mut sregs.idt.base, self.idtr_base),
        ];
        let mut changed = false;
        for (dst, v) in sys {
            if *dst != v {
                *dst = v;
                changed = true;
            }
        }
        for (dst, v) in [(&mut sregs.gdt.limit, self.gdtr_limit), (&mut sregs.idt.limit, self.idtr_limit)] {
            let v = (v & 0xFFFF) as u16;
            if *dst != v {
                *dst = v;
                changed = true;
            }
        }
        changed
    }

    /// The x87 and SSE registers; true if any changed.
    fn apply_fpu(&self, fpu: &mut kvm_fpu) -> bool {
        let before = *fpu;
        for (dst, src) in fpu.fpr.iter_mut().zip(self.st.iter()) {
            dst[..10].copy_from_slice(src);
        }
        for (dst, src) in fpu.xmm.iter_mut().zip(self.xmm.iter()) {
            *dst = src.to_le_bytes();
        }
        fpu.fcw = (self.fctrl & 0xFFFF) as u16;
        fpu.fsw = (self.fstat & 0xFFFF) as u16;
        fpu.ftwx = abridged_from_ftag(self.ftag);
        fpu.last_opcode = (self.fop & 0x7FF) as u16;
        fpu.last_ip = with_low32(fpu.last_ip, self.fioff);
        fpu.last_dp = with_low32(fpu.last_dp, self.fooff);
        fpu.mxcsr = self.mxcsr;
        fpu_differs(&before, fpu)
    }
}

fn fpu_differs(a: &kvm_fpu, b: &kvm_fpu) -> bool {
    a.fpr != b.fpr
        || a.xmm != b.xmm
        || a.fcw != b.fcw
        || a.fsw != b.fsw
        || a.ftwx != b.ftwx
        || a.last_opcode != b.last_opcode
        || a.last_ip != b.last_ip
        || a.last_dp != b.last_dp
        || a.mxcsr != b.mxcsr
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> X86Regs {
        let mut r = X86Regs {
            eax: 0x1111_1111,
            ecx: 2,
            edx: 3,
            ebx: 4,
            esp: 0x7000,
            ebp: 6,
            esi: 7,
            edi: 8,
            eip: 0x7c00,
            eflags: 0x202,
            cs: 0x08,
            ss: 0x10,
            ds: 0x10,
            es: 0x10,
            fs: 0x18,
            gs: 0x20,
            fctrl: 0x37F,
            fstat: 0x3800,
            ftag: 0xFFFF,
            fiseg: 0,
            fioff: 0x1234,
            foseg: 0,
            fooff: 0x5678,
            fop: 0x7FF,
            mxcsr: 0x1F80,
            cr0: 0x8000_0011,
            cr2: 0xDEAD_B000,
            cr3: 0x1000,
            cr4: 0x20,
            efer: 0x500,
            cs_base: 0,
            ss_base: 0x1_0000,
            ds_base: 0x2_0000,
            es_base: 0x3_0000,
            fs_base: 0xFFFF_8000_0000_0000,
            gs_base: 0x5_0000,
            gdtr_base: 0x500,
            gdtr_limit: 0x27,
            idtr_base: 0x1_0000_0000,
            idtr_limit: 0x7FF,
            ..Default::default()
        };
        for (i, s) in r.st.iter_mut().enumerate() {
            *s = [i as u8 + 1; 10];
        }
        for (i, x) in r.xmm.iter_mut().enumerate() {
            *x = 0x0102_0304_0506_0708_090A_0B0C_0D0E_0F10u128 << i;
        }
        r
    }

    fn serialize(r: &X86Regs) -> Vec<u8> {
        let mut v = Vec::new();
        r.gdb_serialize(|b| v.push(b.expect("every register is available")));
        v
    }

    #[test]
    fn layout_is_consistent() {
        // gdb's i386 numbers: eip 8, eflags 9, cs 10, st0 16, fctrl 24,
        // xmm0 32, mxcsr 40.
        assert_eq!(X86RegId::Eip.index(), Some(8));
        assert_eq!(X86RegId::Eflags.index(), Some(9));
        assert_eq!(X86RegId::Cs.index(), Some(10));
        assert_eq!(X86RegId::St(0).index(), Some(16));
        assert_eq!(X86RegId::Fctrl.index(), Some(24));
        assert_eq!(X86RegId::Xmm(0).index(), Some(32));
        assert_eq!(X86RegId::Mxcsr.index(), Some(40));
        assert_eq!(X86RegId::Cr0.index(), Some(41));
        // gdbstub_arch's X86CoreRegs ends at 0x134 bytes after mxcsr.
        let core_sse: usize = REGISTERS[..41].iter().map(RegInfo::bytes).sum();
        assert_eq!(core_sse, 0x134);
        // Every id in the table is unique and found again by name.
        for (i, r) in REGISTERS.iter().enumerate() {
            assert_eq!(r.id.index(), Some(i), "{}", r.name);
            assert_eq!(REGISTERS.iter().filter(|o| o.name == r.name).count(), 1, "{} named once", r.name);
            assert_eq!(r.bits % 8, 0);
            let (id, size) = X86RegId::from_raw_id(i).unwrap();
            assert_eq!(id, r.id);
            assert_eq!(size.unwrap().get(), r.bytes());
            assert_eq!(id.to_raw_id(), Some(i));
        }
        assert!(X86RegId::from_raw_id(REGISTERS.len()).is_none());
        assert_eq!(serialize(&X86Regs::default()).len(), total_bytes());
    }

    #[test]
    fn serialize_round_trip() {
        let r = sample();
        let bytes = serialize(&r);
        assert_eq!(bytes.len(), total_bytes());
        let mut back = X86Regs::default();
        back.gdb_deserialize(&bytes).unwrap();
        assert_eq!(back, r);
        // Spot-check byte positions: eax first, little-endian.
        assert_eq!(&bytes[0..4], &0x1111_1111u32.to_le_bytes());
        // eip at offset 8*4.
        assert_eq!(&bytes[32..36], &0x7c00u32.to_le_bytes());
        // cr0 right after mxcsr (0x134).
        assert_eq!(&bytes[0x134..0x13C], &0x8000_0011u64.to_le_bytes());
        // Wrong lengths are refused.
        assert!(back.gdb_deserialize(&bytes[..bytes.len() - 1]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(back.gdb_deserialize(&longer).is_err());
        assert!(back.gdb_deserialize(&[]).is_err());
        assert_eq!(back, r, "a failed deserialize of a bad length changes nothing");
    }

    #[test]
    fn single_register_access() {
        let mut r = sample();
        let bytes = |r: &X86Regs, id| r.get(id).map(|b| b.as_slice().to_vec());
        assert_eq!(bytes(&r, X86RegId::Cr0), Some(0x8000_0011u64.to_le_bytes().to_vec()));
        assert_eq!(bytes(&r, X86RegId::St(3)), Some(vec![4u8; 10]));
        assert_eq!(bytes(&r, X86RegId::Xmm(1)).map(|b| b.len()), Some(16));
        assert_eq!(bytes(&r, X86RegId::Xmm(8)), None);

        r.set(X86RegId::Eax, &5u32.to_le_bytes()).unwrap();
        assert_eq!(r.eax, 5);
        r.set(X86RegId::Cr3, &0x2000u64.to_le_bytes()).unwrap();
        assert_eq!(r.cr3, 0x2000);
        r.set(X86RegId::St(7), &[9u8; 10]).unwrap();
        assert_eq!(r.st[7], [9u8; 10]);
        r.set(X86RegId::Xmm(7), &[1u8; 16]).unwrap();
        assert_eq!(r.xmm[7], u128::from_le_bytes([1u8; 16]));
        assert_eq!(r.set(X86RegId::Eax, &[1, 2]), Err(RegError::WrongSize { expected: 4, got: 2 }));
        assert_eq!(r.set(X86RegId::St(8), &[0; 10]), Err(RegError::NoSuchRegister));
        assert_eq!(r.pc(), 0x7c00);
    }

    #[test]
    fn pc_is_the_offset_in_cs_not_the_linear_address() {
        let r = X86Regs { cs: 0xF000, cs_base: 0xF_0000, eip: 0xFFF0, ..Default::default() };
        assert_eq!(r.pc(), 0xFFF0);
    }

    #[test]
    fn x87_tags() {
        let mut st = [[0u8; 10]; 8];
        // ST(0) = 1.0: exponent 0x3FFF, integer bit set.
        st[0] = [0, 0, 0, 0, 0, 0, 0, 0x80, 0xFF, 0x3F];
        // ST(1) = +0.0.
        st[1] = [0; 10];
        // ST(2) = infinity (special).
        st[2] = [0, 0, 0, 0, 0, 0, 0, 0x80, 0xFF, 0x7F];
        // TOP = 5: ST(0) is physical R5, ST(1) R6, ST(2) R7.
        let fsw = 5 << 11;
        let ftwx = 0b1110_0000;
        let ftag = ftag_from_abridged(ftwx, fsw, &st);
        // R0..R4 empty (11), R5 valid (00), R6 zero (01), R7 special (10).
        assert_eq!(ftag, 0b10_01_00_11_11_11_11_11);
        assert_eq!(abridged_from_ftag(ftag), ftwx);
        assert_eq!(ftag_from_abridged(0, 0, &st), 0xFFFF);
        assert_eq!(abridged_from_ftag(0xFFFF), 0);
        // Denormal (exponent 0, mantissa non-zero) and unnormal are special.
        assert_eq!(x87_tag(&[1, 0, 0, 0, 0, 0, 0, 0, 0, 0]), 0b10);
        assert_eq!(x87_tag(&[0, 0, 0, 0, 0, 0, 0, 0x40, 0xFF, 0x3F]), 0b10);
    }

    fn kvm_sample() -> (kvm_regs, kvm_sregs, kvm_fpu) {
        let regs = kvm_regs {
            rax: 0xAAAA_BBBB_0000_0001,
            rbx: 2,
            rcx: 3,
            rdx: 4,
            rsi: 5,
            rdi: 6,
            rsp: 0x7BF0,
            rbp: 8,
            rip: 0x7C00,
            rflags: 0x2,
            ..Default::default()
        };
        let mut sregs = kvm_sregs::default();
        sregs.cs.selector = 0x07C0;
        sregs.cs.base = 0x7C00;
        sregs.ds.selector = 0x1000;
        sregs.ds.base = 0x1_0000;
        sregs.cr0 = 0x6000_0010;
        sregs.gdt.base = 0x500;
        sregs.gdt.limit = 0x17;
        sregs.idt.limit = 0x3FF;
        let mut fpu = kvm_fpu {
            fcw: 0x37F,
            fsw: 7 << 11,
            ftwx: 0x80,
            last_opcode: 0x1D9,
            last_ip: 0x7C10,
            mxcsr: 0x1F80,
            ..Default::default()
        };
        // ST(0) = 1.0 in physical R7.
        fpu.fpr[0][..10].copy_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0x80, 0xFF, 0x3F]);
        fpu.xmm[0] = [0xAB; 16];
        fpu.xmm[9] = [0xCD; 16]; // xmm8+ are not shown (32-bit layout)
        (regs, sregs, fpu)
    }

    #[test]
    fn from_kvm_maps_fields() {
        let (regs, sregs, fpu) = kvm_sample();
        let r = X86Regs::from_kvm(&regs, &sregs, &fpu);
        assert_eq!(r.eax, 1);
        assert_eq!(r.ebx, 2);
        assert_eq!(r.ecx, 3);
        assert_eq!(r.esp, 0x7BF0);
        assert_eq!(r.eip, 0x7C00);
        assert_eq!(r.cs, 0x07C0);
        assert_eq!(r.cs_base, 0x7C00);
        assert_eq!(r.ds_base, 0x1_0000);
        assert_eq!(r.cr0, 0x6000_0010);
        assert_eq!(r.gdtr_limit, 0x17);
        assert_eq!(r.idtr_limit, 0x3FF);
        assert_eq!(r.fctrl, 0x37F);
        assert_eq!(r.ftag, 0x3FFF, "R7 valid, the rest empty");
        assert_eq!(r.fop, 0x1D9);
        assert_eq!(r.fioff, 0x7C10);
        assert_eq!(r.xmm[0], u128::from_le_bytes([0xAB; 16]));
        assert_eq!(r.mxcsr, 0x1F80);
        assert_eq!(r.st[0][9], 0x3F);
    }

    #[test]
    fn apply_to_kvm_only_changes_what_differs() {
        let (mut regs, mut sregs, mut fpu) = kvm_sample();
        let r = X86Regs::from_kvm(&regs, &sregs, &fpu);
        let (r0, s0, f0) = (regs, sregs, fpu);
        // No edits: nothing changes, nothing is reported.
        let c = r.apply_to_kvm(&mut regs, &mut sregs, &mut fpu);
        assert_eq!(c, Changed::default());
        assert_eq!(regs, r0);
        assert_eq!(sregs, s0);
        assert_eq!(fpu, f0);

        // Edit eax: upper half of rax is kept.
        let mut e = r.clone();
        e.eax = 0x1234_5678;
        let c = e.apply_to_kvm(&mut regs, &mut sregs, &mut fpu);
        assert_eq!(c, Changed { regs: true, sregs: false, fpu: false });
        assert_eq!(regs.rax, 0xAAAA_BBBB_1234_5678);

        // Real mode: editing DS also moves its base to DS*16.
        let mut e = X86Regs::from_kvm(&regs, &sregs, &fpu);
        e.ds = 0x2000;
        let c = e.apply_to_kvm(&mut regs, &mut sregs, &mut fpu);
        assert!(c.sregs && !c.regs && !c.fpu);
        assert_eq!(sregs.ds.selector, 0x2000);
        assert_eq!(sregs.ds.base, 0x2_0000);

        // An explicit base edit wins.
        let mut e = X86Regs::from_kvm(&regs, &sregs, &fpu);
        e.es = 0x3000;
        e.es_base = 0x12345;
        e.apply_to_kvm(&mut regs, &mut sregs, &mut fpu);
        assert_eq!(sregs.es.base, 0x12345);

        // Protected mode: a selector edit leaves the base alone.
        sregs.cr0 |= 1;
        let mut e = X86Regs::from_kvm(&regs, &sregs, &fpu);
        e.fs = 0x18;
        e.apply_to_kvm(&mut regs, &mut sregs, &mut fpu);
        assert_eq!(sregs.fs.selector, 0x18);
        assert_eq!(sregs.fs.base, 0);

        // CR3 and the FPU.
        let mut e = X86Regs::from_kvm(&regs, &sregs, &fpu);
        e.cr3 = 0x9000;
        e.xmm[1] = 7;
        e.ftag = 0xFFFF;
        let c = e.apply_to_kvm(&mut regs, &mut sregs, &mut fpu);
        assert!(c.sregs && c.fpu);
        assert_eq!(sregs.cr3, 0x9000);
        assert_eq!(fpu.xmm[1], 7u128.to_le_bytes());
        assert_eq!(fpu.ftwx, 0);
        // xmm8..15 untouched.
        assert_eq!(fpu.xmm[9], [0xCD; 16]);
    }
}
