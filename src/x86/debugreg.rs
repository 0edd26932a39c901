//! Hardware breakpoints and watchpoints: the x86 debug registers DR0–DR7.
//!
//! # The hardware
//!
//! An x86 CPU has four *address* registers DR0–DR3, one *control* register
//! DR7 and one *status* register DR6 (DR4/DR5 are old aliases of DR6/DR7).
//! Each address register, together with its fields in DR7, forms one
//! breakpoint "slot":
//!
//! ```text
//! DR7 (Intel SDM Vol. 3B, 17.2.4):
//!  31 30 29 28 27 26 25 24 23 22 21 20 19 18 17 16    13   10  9  8  7  6  5  4  3  2  1  0
//! [LEN3 |R/W3 |LEN2 |R/W2 |LEN1 |R/W1 |LEN0 |R/W0 ] .. GD .. 1  GE LE G3 L3 G2 L2 G1 L1 G0 L0
//! ```
//!
//! * `Ln`/`Gn` (bits 2n, 2n+1): enable slot n ("local" / "global"; the
//!   difference only matters for hardware task switches, which clear L).
//! * `R/Wn` (2 bits at 16 + 4n): what triggers the slot:
//!   `00` instruction fetch, `01` data write, `10` I/O port access (needs
//!   `CR4.DE`), `11` data read *or* write. There is no "read only".
//! * `LENn` (2 bits at 18 + 4n): size of the watched area:
//!   `00` 1 byte, `01` 2 bytes, `11` 4 bytes, `10` 8 bytes. The address in
//!   DRn must be aligned to that size. Instruction breakpoints must use 1.
//! * `LE`/`GE` (bits 8, 9): "exact" breakpoints; Intel recommends setting
//!   them whenever data breakpoints are used.
//! * bit 10 always reads as 1.
//!
//! When a slot triggers, the CPU raises a debug exception (#DB, vector 1)
//! and sets bit `Bn` (bit n) in DR6. Single-stepping with `EFLAGS.TF` also
//! raises #DB and sets `BS` (bit 14). Instruction breakpoints are *faults*
//! (reported before the instruction runs); data breakpoints are *traps*
//! (reported after the access, with RIP past the instruction).
//!
//! Under KVM the debugger does not write DR7 itself: it hands DR0–DR3 and
//! DR7 to `KVM_SET_GUEST_DEBUG` (`kvm_guest_debug_arch::debugreg`, see
//! [`DebugRegs::kvm_debugreg`]) with `KVM_GUESTDBG_USE_HW_BP`, and reads DR6
//! back from `kvm_run.debug.arch.dr6` on a `KVM_EXIT_DEBUG`.

#![forbid(unsafe_code)]

use core::fmt;

/// What a hardware breakpoint slot watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakKind {
    /// Instruction fetch at the address (R/W = `00`, length must be 1).
    Exec,
    /// Data writes (R/W = `01`).
    Write,
    /// Data reads. x86 cannot trap reads alone: this is encoded exactly
    /// like [`BreakKind::ReadWrite`] (R/W = `11`), but remembered as a read
    /// watch so it can be reported to gdb as one (`rwatch`).
    Read,
    /// Data reads or writes (R/W = `11`).
    ReadWrite,
}

impl BreakKind {
    /// The 2-bit R/W field value for DR7.
    pub fn rw_bits(self) -> u64 {
        match self {
            BreakKind::Exec => 0b00,
            BreakKind::Write => 0b01,
            BreakKind::Read | BreakKind::ReadWrite => 0b11,
        }
    }

    fn name(self) -> &'static str {
        match self {
            BreakKind::Exec => "exec",
            BreakKind::Write => "write",
            BreakKind::Read => "read",
            BreakKind::ReadWrite => "read/write",
        }
    }
}

/// One hardware breakpoint or watchpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HwBreakpoint {
    /// Linear address (what goes into DR0–DR3).
    pub addr: u64,
    /// What triggers it.
    pub kind: BreakKind,
    /// Length in bytes: 1, 2, 4 or 8.
    pub len: u8,
}

impl HwBreakpoint {
    /// An instruction breakpoint at `addr`.
    pub fn exec(addr: u64) -> HwBreakpoint {
        HwBreakpoint { addr, kind: BreakKind::Exec, len: 1 }
    }

    /// A data watchpoint of `len` bytes at `addr`.
    pub fn watch(addr: u64, len: u8, kind: BreakKind) -> HwBreakpoint {
        HwBreakpoint { addr, kind, len }
    }

    /// Check the hardware's rules: length 1/2/4/8, address aligned to the
    /// length, instruction breakpoints of length 1.
    pub fn validate(&self) -> Result<(), DebugRegError> {
        if len_bits(self.len).is_none() {
            return Err(DebugRegError::BadLength(u64::from(self.len)));
        }
        if self.kind == BreakKind::Exec && self.len != 1 {
            return Err(DebugRegError::ExecLength(self.len));
        }
        if self.addr % u64::from(self.len) != 0 {
            return Err(DebugRegError::Misaligned { addr: self.addr, len: self.len });
        }
        Ok(())
    }
}

impl fmt::Display for HwBreakpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:#x}", self.kind.name(), self.addr)?;
        if self.kind != BreakKind::Exec {
            write!(f, " len {}", self.len)?;
        }
        Ok(())
    }
}

/// The 2-bit LEN field for a length, or `None` if the length is invalid.
fn len_bits(len: u8) -> Option<u64> {
    match len {
        1 => Some(0b00),
        2 => Some(0b01),
        4 => Some(0b11),
        8 => Some(0b10),
        _ => None,
    }
}

/// Why a breakpoint could not be inserted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DebugRegError {
    /// All four slots are in use.
    Full,
    /// The address is not a multiple of the length.
    Misaligned {
        /// The requested address.
        addr: u64,
        /// The requested length.
        len: u8,
    },
    /// The length is not 1, 2, 4 or 8 (or the region is empty).
    BadLength(u64),
    /// Instruction breakpoints must have length 1.
    ExecLength(u8),
}

impl fmt::Display for DebugRegError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DebugRegError::Full => f.write_str("all 4 hardware breakpoint slots are in use"),
            DebugRegError::Misaligned { addr, len } => {
                write!(f, "address {addr:#x} is not aligned to {len} bytes")
            }
            DebugRegError::BadLength(len) => {
                write!(f, "length {len} is not 1, 2, 4 or 8 bytes")
            }
            DebugRegError::ExecLength(len) => {
                write!(f, "instruction breakpoints must have length 1, not {len}")
            }
        }
    }
}

impl std::error::Error for DebugRegError {}

/// Why the CPU stopped with a debug exception, decoded from DR6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StopCause {
    /// Single-step trap (`DR6.BS`, from `EFLAGS.TF` or KVM's single-step).
    SingleStep,
    /// Instruction breakpoint in this slot.
    Breakpoint(usize),
    /// Data watchpoint in this slot was hit.
    Watch {
        /// The slot number 0–3.
        slot: usize,
        /// The slot's kind (so the hit can be reported as watch/rwatch/awatch).
        kind: BreakKind,
        /// The watched address (the slot's DRn value).
        addr: u64,
    },
    /// None of the above: e.g. an `INT1` instruction, a hit on a slot we
    /// did not program, or a general-detect fault.
    Unknown,
}

/// DR6 bit 14: single step.
pub const DR6_BS: u64 = 1 << 14;
/// DR7 bit 8: local exact breakpoint enable.
pub const DR7_LE: u64 = 1 << 8;
/// DR7 bit 9: global exact breakpoint enable.
pub const DR7_GE: u64 = 1 << 9;
/// DR7 bit 10: reserved, always 1.
pub const DR7_FIXED1: u64 = 1 << 10;

/// The four hardware breakpoint slots (DR0–DR3) and their DR7 encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct DebugRegs {
    /// Slot n is programmed into DRn; `None` = disabled.
    pub slots: [Option<HwBreakpoint>; 4],
}

impl DebugRegs {
    /// No breakpoints.
    pub const fn new() -> DebugRegs {
        DebugRegs { slots: [None; 4] }
    }

    /// Put a breakpoint in the first free slot and return the slot number.
    ///
    /// Inserting a breakpoint that is already present returns its slot
    /// again (gdb may re-insert breakpoints; one `remove` clears it).
    pub fn insert(&mut self, bp: HwBreakpoint) -> Result<usize, DebugRegError> {
        bp.validate()?;
        if let Some(slot) = self.find(&bp) {
            return Ok(slot);
        }
        let slot = self.slots.iter().position(Option::is_none).ok_or(DebugRegError::Full)?;
        self.slots[slot] = Some(bp);
        Ok(slot)
    }

    /// Remove a breakpoint; returns the slot it was in.
    pub fn remove(&mut self, bp: &HwBreakpoint) -> Option<usize> {
        let slot = self.find(bp)?;
        self.slots[slot] = None;
        Some(slot)
    }

    /// Empty one slot; returns what was in it. Out-of-range slots give `None`.
    pub fn remove_slot(&mut self, slot: usize) -> Option<HwBreakpoint> {
        self.slots.get_mut(slot)?.take()
    }

    /// The slot holding exactly this breakpoint.
    pub fn find(&self, bp: &HwBreakpoint) -> Option<usize> {
        self.slots.iter().position(|s| s.as_ref() == Some(bp))
    }

    /// The breakpoint in a slot.
    pub fn get(&self, slot: usize) -> Option<HwBreakpoint> {
        self.slots.get(slot).copied().flatten()
    }

    /// Number of free slots.
    pub fn free_slots(&self) -> usize {
        self.slots.iter().filter(|s| s.is_none()).count()
    }

    /// True if no slot is in use (then `KVM_GUESTDBG_USE_HW_BP` can be left off).
    pub fn is_empty(&self) -> bool {
        self.slots.iter().all(Option::is_none)
    }

    /// Remove every breakpoint.
    pub fn clear(&mut self) {
        self.slots = [None; 4];
    }

    /// Watch an arbitrary region `[addr, addr + len)` by covering it with
    /// naturally aligned 1/2/4/8-byte pieces, one slot each. All or nothing:
    /// if the pieces do not fit in the free slots, nothing is inserted.
    /// (gdb sends `watch` on a whole struct as one request.)
    pub fn insert_region(&mut self, addr: u64, len: u64, kind: BreakKind) -> Result<Vec<usize>, DebugRegError> {
        if kind == BreakKind::Exec {
            return self.insert(HwBreakpoint::exec(addr)).map(|s| vec![s]);
        }
        let pieces = split_region(addr, len)?;
        let new: Vec<HwBreakpoint> =
            pieces.iter().map(|&(a, l)| HwBreakpoint::watch(a, l, kind)).filter(|bp| self.find(bp).is_none()).collect();
        if new.len() > self.free_slots() {
            return Err(DebugRegError::Full);
        }
        let mut slots = Vec::with_capacity(pieces.len());
        for (a, l) in pieces {
            slots.push(self.insert(HwBreakpoint::watch(a, l, kind))?);
        }
        Ok(slots)
    }

    /// Undo [`DebugRegs::insert_region`]; returns the slots that were freed.
    pub fn remove_region(&mut self, addr: u64, len: u64, kind: BreakKind) -> Vec<usize> {
        if kind == BreakKind::Exec {
            return self.remove(&HwBreakpoint::exec(addr)).into_iter().collect();
        }
        match split_region(addr, len) {
            Ok(pieces) => {
                pieces.into_iter().filter_map(|(a, l)| self.remove(&HwBreakpoint::watch(a, l, kind))).collect()
            }
            Err(_) => Vec::new(),
        }
    }

    /// The DR7 value enabling every used slot (local-enable bits L0–L3),
    /// with R/W and LEN fields, LE and GE (Intel's recommendation for data
    /// breakpoints) and the always-one bit 10. With no slot in use this is
    /// the reset value `0x400`.
    pub fn dr7(&self) -> u64 {
        let mut dr7 = DR7_FIXED1;
        for (n, slot) in self.slots.iter().enumerate() {
            let Some(bp) = slot else { continue };
            let n = n as u32; // 0..4
            let len = len_bits(bp.len).unwrap_or(0);
            dr7 |= 1 << (2 * n); // Ln
            dr7 |= bp.kind.rw_bits() << (16 + 4 * n);
            dr7 |= len << (18 + 4 * n);
        }
        if !self.is_empty() {
            dr7 |= DR7_LE | DR7_GE;
        }
        dr7
    }

    /// The values for DR0–DR3 (0 for unused slots).
    pub fn addrs(&self) -> [u64; 4] {
        let mut a = [0u64; 4];
        for (dst, slot) in a.iter_mut().zip(self.slots.iter()) {
            if let Some(bp) = slot {
                *dst = bp.addr;
            }
        }
        a
    }

    /// The array for `kvm_guest_debug_arch::debugreg`: DR0–DR3, two unused
    /// entries (DR4/DR5), DR6 = 0, DR7.
    pub fn kvm_debugreg(&self) -> [u64; 8] {
        let a = self.addrs();
        [a[0], a[1], a[2], a[3], 0, 0, 0, self.dr7()]
    }

    /// Decide why the CPU stopped from the DR6 value of a debug exception.
    ///
    /// Only slots that are in use count (DR6 may also flag matches of
    /// disabled slots). A data watchpoint wins over an instruction
    /// breakpoint, which wins over single-step, so a `step` over an
    /// instruction that writes a watched variable is reported as the watch.
    pub fn decode_dr6(&self, dr6: u64) -> StopCause {
        let hit = |n: usize| dr6 & (1 << n) != 0;
        let mut exec_hit = None;
        for n in 0..4 {
            let Some(bp) = self.get(n) else { continue };
            if !hit(n) {
                continue;
            }
            if bp.kind == BreakKind::Exec {
                exec_hit.get_or_insert(n);
            } else {
                return StopCause::Watch { slot: n, kind: bp.kind, addr: bp.addr };
            }
        }
        if let Some(n) = exec_hit {
            StopCause::Breakpoint(n)
        } else if dr6 & DR6_BS != 0 {
            StopCause::SingleStep
        } else {
            StopCause::Unknown
        }
    }
}

impl fmt::Display for DebugRegs {
    /// One line per slot, e.g. `DR0 write 0x1000 len 4` or `DR1 -`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, slot) in self.slots.iter().enumerate() {
            match slot {
                Some(bp) => writeln!(f, "DR{n} {bp}")?,
                None => writeln!(f, "DR{n} -")?,
            }
        }
        write!(f, "DR7 {:#010x}", self.dr7())
    }
}

/// Cover `[addr, addr + len)` with naturally aligned pieces of 8, 4, 2 or
/// 1 bytes (largest first), as the debug registers need.
pub fn split_region(addr: u64, len: u64) -> Result<Vec<(u64, u8)>, DebugRegError> {
    if len == 0 {
        return Err(DebugRegError::BadLength(0));
    }
    let end = addr.checked_add(len).ok_or(DebugRegError::BadLength(len))?;
    let mut pieces = Vec::new();
    let mut a = addr;
    while a < end {
        let left = end - a;
        let size = [8u8, 4, 2, 1].into_iter().find(|&s| a % u64::from(s) == 0 && u64::from(s) <= left).unwrap_or(1);
        pieces.push((a, size));
        if pieces.len() > 4 {
            // More pieces than the CPU has slots: no point going on.
            return Err(DebugRegError::Full);
        }
        a += u64::from(size);
    }
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn len_encoding_matches_sdm() {
        assert_eq!(len_bits(1), Some(0b00));
        assert_eq!(len_bits(2), Some(0b01));
        assert_eq!(len_bits(4), Some(0b11));
        assert_eq!(len_bits(8), Some(0b10));
        assert_eq!(len_bits(3), None);
        assert_eq!(len_bits(0), None);
        assert_eq!(len_bits(16), None);
    }

    #[test]
    fn rw_encoding_matches_sdm() {
        assert_eq!(BreakKind::Exec.rw_bits(), 0b00);
        assert_eq!(BreakKind::Write.rw_bits(), 0b01);
        assert_eq!(BreakKind::ReadWrite.rw_bits(), 0b11);
        assert_eq!(BreakKind::Read.rw_bits(), 0b11);
    }

    #[test]
    fn empty_dr7_is_reset_value() {
        let d = DebugRegs::new();
        assert_eq!(d.dr7(), 0x400);
        assert_eq!(d.addrs(), [0; 4]);
        assert!(d.is_empty());
    }

    #[test]
    fn exec_breakpoint_slot0() {
        let mut d = DebugRegs::new();
        assert_eq!(d.insert(HwBreakpoint::exec(0x7c00)), Ok(0));
        // L0 (bit 0), R/W0 = 00, LEN0 = 00, LE|GE, bit 10.
        assert_eq!(d.dr7(), 0x1 | 0x100 | 0x200 | 0x400);
        assert_eq!(d.addrs(), [0x7c00, 0, 0, 0]);
        // Exec at an odd address is fine (length 1).
        assert_eq!(d.insert(HwBreakpoint::exec(0x7c03)), Ok(1));
        assert_eq!(d.dr7() & 0xFF, 0b0101);
    }

    #[test]
    fn every_slot_field_position() {
        // Fill all four slots with distinct kinds/lengths and check each
        // field at its SDM position: R/Wn at 16+4n, LENn at 18+4n, Ln at 2n.
        let mut d = DebugRegs::new();
        d.insert(HwBreakpoint::watch(0x1000, 4, BreakKind::Write)).unwrap(); // slot 0
        d.insert(HwBreakpoint::watch(0x2000, 2, BreakKind::ReadWrite)).unwrap(); // slot 1
        d.insert(HwBreakpoint::watch(0x3000, 8, BreakKind::Write)).unwrap(); // slot 2
        d.insert(HwBreakpoint::exec(0x4001)).unwrap(); // slot 3
        let dr7 = d.dr7();
        let field = |shift: u32| (dr7 >> shift) & 0b11;
        // Enables L0..L3, no G bits.
        assert_eq!(dr7 & 0xFF, 0b0101_0101);
        assert_eq!(field(16), 0b01); // R/W0 write
        assert_eq!(field(18), 0b11); // LEN0 4 bytes
        assert_eq!(field(20), 0b11); // R/W1 read/write
        assert_eq!(field(22), 0b01); // LEN1 2 bytes
        assert_eq!(field(24), 0b01); // R/W2 write
        assert_eq!(field(26), 0b10); // LEN2 8 bytes
        assert_eq!(field(28), 0b00); // R/W3 exec
        assert_eq!(field(30), 0b00); // LEN3 1 byte
        assert_eq!(dr7 & 0x700, 0x700); // LE, GE, bit 10
        assert_eq!(dr7, 0x097D_0755);
        assert_eq!(d.addrs(), [0x1000, 0x2000, 0x3000, 0x4001]);
        assert_eq!(d.kvm_debugreg(), [0x1000, 0x2000, 0x3000, 0x4001, 0, 0, 0, dr7]);
        assert_eq!(d.free_slots(), 0);
        // Fifth insert: full.
        assert_eq!(d.insert(HwBreakpoint::exec(0x5000)), Err(DebugRegError::Full));
    }

    #[test]
    fn validation_errors() {
        let mut d = DebugRegs::new();
        assert_eq!(
            d.insert(HwBreakpoint::watch(0x1002, 4, BreakKind::Write)),
            Err(DebugRegError::Misaligned { addr: 0x1002, len: 4 })
        );
        assert_eq!(d.insert(HwBreakpoint::watch(0x1000, 3, BreakKind::Write)), Err(DebugRegError::BadLength(3)));
        assert_eq!(d.insert(HwBreakpoint::watch(0x1000, 4, BreakKind::Exec)), Err(DebugRegError::ExecLength(4)));
        assert!(d.is_empty());
        let msg = DebugRegError::Misaligned { addr: 0x1002, len: 4 }.to_string();
        assert!(msg.contains("0x1002"));
    }

    #[test]
    fn insert_is_idempotent_and_remove_frees() {
        let mut d = DebugRegs::new();
        let bp = HwBreakpoint::watch(0x1000, 4, BreakKind::Write);
        assert_eq!(d.insert(bp), Ok(0));
        assert_eq!(d.insert(bp), Ok(0));
        assert_eq!(d.free_slots(), 3);
        assert_eq!(d.insert(HwBreakpoint::exec(0x10)), Ok(1));
        assert_eq!(d.remove(&bp), Some(0));
        assert_eq!(d.remove(&bp), None);
        // The freed slot 0 is reused first.
        assert_eq!(d.insert(HwBreakpoint::exec(0x20)), Ok(0));
        assert_eq!(d.remove_slot(1), Some(HwBreakpoint::exec(0x10)));
        assert_eq!(d.remove_slot(7), None);
        d.clear();
        assert!(d.is_empty());
    }

    #[test]
    fn decode_dr6_causes() {
        let mut d = DebugRegs::new();
        d.insert(HwBreakpoint::exec(0x7c00)).unwrap(); // slot 0
        d.insert(HwBreakpoint::watch(0x500, 2, BreakKind::Read)).unwrap(); // slot 1
                                                                           // DR6 reads with reserved bits set (0xFFFF0FF0); only B0-B3/BS count.
        let base = 0xFFFF_0FF0;
        assert_eq!(d.decode_dr6(base | 1), StopCause::Breakpoint(0));
        assert_eq!(d.decode_dr6(base | 2), StopCause::Watch { slot: 1, kind: BreakKind::Read, addr: 0x500 });
        assert_eq!(d.decode_dr6(base | DR6_BS), StopCause::SingleStep);
        // Watch beats exec beats single-step.
        assert!(matches!(d.decode_dr6(base | DR6_BS | 3), StopCause::Watch { slot: 1, .. }));
        assert_eq!(d.decode_dr6(base | DR6_BS | 1), StopCause::Breakpoint(0));
        // B2 set but slot 2 is not in use.
        assert_eq!(d.decode_dr6(base | 4), StopCause::Unknown);
        assert_eq!(d.decode_dr6(0), StopCause::Unknown);
    }

    #[test]
    fn regions_split_and_insert_atomically() {
        assert_eq!(split_region(0x1000, 4), Ok(vec![(0x1000, 4)]));
        assert_eq!(split_region(0x1001, 7), Ok(vec![(0x1001, 1), (0x1002, 2), (0x1004, 4)]));
        assert_eq!(split_region(0x1000, 16), Ok(vec![(0x1000, 8), (0x1008, 8)]));
        assert_eq!(split_region(0x1000, 0), Err(DebugRegError::BadLength(0)));
        assert_eq!(split_region(u64::MAX, 2), Err(DebugRegError::BadLength(2)));
        // 0x1001..0x1020 needs too many pieces.
        assert_eq!(split_region(0x1001, 0x1F), Err(DebugRegError::Full));

        let mut d = DebugRegs::new();
        d.insert(HwBreakpoint::exec(0x10)).unwrap();
        d.insert(HwBreakpoint::exec(0x20)).unwrap();
        // Needs 3 slots, only 2 free: nothing inserted.
        assert_eq!(d.insert_region(0x1001, 7, BreakKind::Write), Err(DebugRegError::Full));
        assert_eq!(d.free_slots(), 2);
        assert_eq!(d.insert_region(0x1000, 16, BreakKind::Write), Ok(vec![2, 3]));
        assert_eq!(d.remove_region(0x1000, 16, BreakKind::Write), vec![2, 3]);
        assert_eq!(d.insert_region(0x30, 1, BreakKind::Exec), Ok(vec![2]));
        assert_eq!(d.remove_region(0x30, 1, BreakKind::Exec), vec![2]);
        assert_eq!(d.free_slots(), 2);
    }

    #[test]
    fn display() {
        let mut d = DebugRegs::new();
        d.insert(HwBreakpoint::watch(0x1000, 4, BreakKind::Write)).unwrap();
        let s = d.to_string();
        assert!(s.contains("DR0 write 0x1000 len 4"), "{s}");
        assert!(s.contains("DR1 -"), "{s}");
        assert!(s.contains("DR7 0x"), "{s}");
    }
}
