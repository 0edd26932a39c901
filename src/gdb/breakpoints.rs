//! gdb's breakpoints and watchpoints as minikvm keeps them: which debug-register slot holds what,
//! and where int3 bytes were planted.
//!
//! * `hbreak` (gdb packet Z1) takes one of the four slots DR0–DR3.
//! * `break` (Z0) also takes a slot while one is free, so it works on code that is not loaded yet
//!   and on hosts whose KVM does not intercept int3; beyond that it plants an int3 byte, but only
//!   where the host's KVM intercepts int3 (`minikvm doctor`).
//! * `watch`/`rwatch`/`awatch` (Z2/Z3/Z4) take one slot per aligned 1, 2, 4 or 8-byte piece.
//!
//! Addresses here are gdb addresses (see [`super`] for the convention). Each vCPU adds its own CS
//! base when its debug registers are loaded ([`Breakpoints::debugreg`]): real-mode guests on
//! different vCPUs have different segment bases, and one gdb breakpoint must stop all of them.

use crate::x86::debugreg::{BreakKind, DebugRegError, DebugRegs, HwBreakpoint, StopCause};
use gdbstub::target::ext::breakpoints::WatchKind;
use std::collections::BTreeMap;

/// Which kind of gdb request put a debug-register slot in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `break` (Z0) that found a free slot.
    Break,
    /// `hbreak` (Z1).
    HBreak,
    /// `watch`, `rwatch`, `awatch` (Z2–Z4).
    Watch,
}

/// An int3 byte written into guest memory for a `break`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Planted {
    pub vcpu: usize,
    pub linear: u64,
    /// The byte the int3 replaced.
    pub saved: u8,
}

/// Why a debug exception stopped a vCPU, in gdb's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hit {
    Step,
    Break(Origin),
    Watch {
        kind: WatchKind,
        addr: u64,
    },
    /// A debug exception none of ours explains (e.g. the guest's own `int1`).
    Unknown,
}

#[derive(Debug, Default)]
pub struct Breakpoints {
    /// DR0–DR3 holding gdb addresses.
    regs: DebugRegs,
    origin: [Option<Origin>; 4],
    int3: BTreeMap<u64, Vec<Planted>>,
}

fn break_kind(kind: WatchKind) -> BreakKind {
    match kind {
        WatchKind::Write => BreakKind::Write,
        WatchKind::Read => BreakKind::Read,
        WatchKind::ReadWrite => BreakKind::ReadWrite,
    }
}

fn watch_kind(kind: BreakKind) -> WatchKind {
    match kind {
        BreakKind::Write => WatchKind::Write,
        BreakKind::Read => WatchKind::Read,
        BreakKind::ReadWrite | BreakKind::Exec => WatchKind::ReadWrite,
    }
}

impl Breakpoints {
    /// An instruction breakpoint in a free slot.
    pub fn add_exec(&mut self, addr: u64, origin: Origin) -> Result<usize, DebugRegError> {
        let slot = self.regs.insert(HwBreakpoint::exec(addr))?;
        self.origin[slot] = Some(origin);
        Ok(slot)
    }

    /// Removes the instruction breakpoint that `origin` put at `addr`.
    pub fn remove_exec(&mut self, addr: u64, origin: Origin) -> bool {
        match self.regs.find(&HwBreakpoint::exec(addr)) {
            Some(slot) if self.origin[slot] == Some(origin) => {
                self.regs.remove_slot(slot);
                self.origin[slot] = None;
                true
            }
            _ => false,
        }
    }

    pub fn add_watch(&mut self, addr: u64, len: u64, kind: WatchKind) -> Result<(), DebugRegError> {
        for slot in self.regs.insert_region(addr, len, break_kind(kind))? {
            self.origin[slot] = Some(Origin::Watch);
        }
        Ok(())
    }

    pub fn remove_watch(&mut self, addr: u64, len: u64, kind: WatchKind) -> bool {
        let freed = self.regs.remove_region(addr, len, break_kind(kind));
        for &slot in &freed {
            if let Some(o) = self.origin.get_mut(slot) {
                *o = None;
            }
        }
        !freed.is_empty()
    }

    /// How many addresses hold int3 breakpoints.
    pub fn int3_count(&self) -> usize {
        self.int3.len()
    }

    pub fn free_slots(&self) -> usize {
        self.regs.free_slots()
    }

    /// DR0–DR3 and DR7 for a vCPU whose gdb address 0 is linear `base`; `mask` cuts linear
    /// addresses to the mode's width. A gdb address above 4 GiB cannot be meant for 16/32-bit
    /// code: it is a 64-bit linear address (long mode ignores the CS base), kept whole, so
    /// `break kernel_main` set while a 64-bit kernel still boots in 32-bit mode fires later.
    pub fn debugreg(&self, base: u64, mask: u64) -> [u64; 8] {
        let mut d = self.regs.kvm_debugreg();
        for (n, dr) in d.iter_mut().take(4).enumerate() {
            if self.regs.get(n).is_some() && *dr <= u64::from(u32::MAX) {
                *dr = base.wrapping_add(*dr) & mask;
            }
        }
        d
    }

    /// What a #DB with this DR6 means.
    pub fn decode(&self, dr6: u64) -> Hit {
        match self.regs.decode_dr6(dr6) {
            StopCause::SingleStep => Hit::Step,
            StopCause::Breakpoint(slot) => {
                Hit::Break(self.origin.get(slot).copied().flatten().unwrap_or(Origin::HBreak))
            }
            StopCause::Watch { kind, addr, .. } => Hit::Watch { kind: watch_kind(kind), addr },
            StopCause::Unknown => Hit::Unknown,
        }
    }

    /// Forgets every debug-register breakpoint and watchpoint.
    pub fn clear_slots(&mut self) {
        self.regs.clear();
        self.origin = [None; 4];
    }

    /// The slots, for `monitor breakpoints`.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        for n in 0..4 {
            match (self.regs.get(n), self.origin[n]) {
                (Some(bp), Some(o)) => s += &format!("DR{n}: {bp} (from gdb `{}`)\n", origin_name(o)),
                _ => s += &format!("DR{n}: free\n"),
            }
        }
        for (addr, planted) in &self.int3 {
            s += &format!("int3 at {addr:#x} ({} vCPU(s))\n", planted.len());
        }
        s
    }

    // ----- int3 breakpoints -----

    pub fn has_int3(&self, addr: u64) -> bool {
        self.int3.contains_key(&addr)
    }

    pub fn insert_int3(&mut self, addr: u64, planted: Vec<Planted>) {
        self.int3.insert(addr, planted);
    }

    pub fn take_int3(&mut self, addr: u64) -> Option<Vec<Planted>> {
        self.int3.remove(&addr)
    }

    pub fn take_all_int3(&mut self) -> Vec<Planted> {
        std::mem::take(&mut self.int3).into_values().flatten().collect()
    }

    /// Linear addresses of the int3 bytes planted in `vcpu`'s memory.
    pub fn int3_linear(&self, vcpu: usize) -> Vec<u64> {
        self.int3.values().flatten().filter(|p| p.vcpu == vcpu).map(|p| p.linear).collect()
    }

    /// Shows the saved bytes instead of planted int3s in `buf`, read at `linear` for `vcpu`.
    pub fn hide_int3(&self, vcpu: usize, linear: u64, buf: &mut [u8]) {
        for p in self.int3.values().flatten().filter(|p| p.vcpu == vcpu) {
            let off = p.linear.wrapping_sub(linear);
            if let Some(b) = usize::try_from(off).ok().and_then(|i| buf.get_mut(i)) {
                *b = p.saved;
            }
        }
    }

    /// Whether any breakpoint or watchpoint is set (tests check that a detach clears them).
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.regs.is_empty() && self.int3.is_empty()
    }
}

fn origin_name(o: Origin) -> &'static str {
    match o {
        Origin::Break => "break",
        Origin::HBreak => "hbreak",
        Origin::Watch => "watch",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_gdb_requests() {
        let mut b = Breakpoints::default();
        assert_eq!(b.add_exec(0x10, Origin::Break), Ok(0));
        assert_eq!(b.add_exec(0x20, Origin::HBreak), Ok(1));
        b.add_watch(0x40, 1, WatchKind::Write).unwrap();
        b.add_watch(0x44, 4, WatchKind::ReadWrite).unwrap();
        assert_eq!(b.free_slots(), 0);
        assert_eq!(b.add_exec(0x30, Origin::Break), Err(DebugRegError::Full));
        // A `break` does not remove an `hbreak` at the same place.
        assert!(!b.remove_exec(0x20, Origin::Break));
        assert!(b.remove_exec(0x20, Origin::HBreak));
        assert_eq!(b.free_slots(), 1);
        assert!(b.remove_watch(0x40, 1, WatchKind::Write));
        assert!(!b.remove_watch(0x40, 1, WatchKind::Write));
        assert_eq!(b.free_slots(), 2);
    }

    #[test]
    fn each_vcpu_adds_its_segment_base() {
        let mut b = Breakpoints::default();
        b.add_exec(0x10, Origin::HBreak).unwrap();
        b.add_watch(0x2c, 1, WatchKind::Write).unwrap();
        let d = b.debugreg(0x40000, 0xffff_ffff);
        assert_eq!(d[0], 0x40010);
        assert_eq!(d[1], 0x4002c);
        assert_eq!(d[2], 0);
        assert_eq!(d[7] & 0xf, 0b0101, "L0 and L1 enabled");
        assert_eq!(b.debugreg(0, 0xffff_ffff)[0], 0x10);
    }

    /// `break kernel_main` of a 64-bit kernel, set while the vCPU still runs its 32-bit boot
    /// code: the address must reach DR0 whole, or the breakpoint never fires in long mode.
    #[test]
    fn a_64_bit_address_set_in_32_bit_mode_stays_whole() {
        let mut b = Breakpoints::default();
        b.add_exec(0xffff_ffff_8010_0c42, Origin::HBreak).unwrap();
        b.add_exec(0x10, Origin::HBreak).unwrap();
        let d = b.debugreg(0x1000, 0xffff_ffff);
        assert_eq!(d[0], 0xffff_ffff_8010_0c42);
        assert_eq!(d[1], 0x1010, "a 32-bit address still adds the segment base");
        assert_eq!(b.debugreg(0, u64::MAX)[0], 0xffff_ffff_8010_0c42);
    }

    #[test]
    fn dr6_decodes_to_gdb_stops() {
        let mut b = Breakpoints::default();
        b.add_exec(0x10, Origin::Break).unwrap();
        b.add_watch(0x2c, 1, WatchKind::Write).unwrap();
        b.add_exec(0x18, Origin::HBreak).unwrap();
        assert_eq!(b.decode(0xffff_4ff0), Hit::Step);
        assert_eq!(b.decode(0xffff_0ff1), Hit::Break(Origin::Break));
        assert_eq!(b.decode(0xffff_0ff4), Hit::Break(Origin::HBreak));
        assert_eq!(b.decode(0xffff_0ff2), Hit::Watch { kind: WatchKind::Write, addr: 0x2c });
        assert_eq!(b.decode(0xffff_0ff0), Hit::Unknown);
    }

    #[test]
    fn planted_int3_bytes_are_hidden_from_reads() {
        let mut b = Breakpoints::default();
        b.insert_int3(0x10, vec![Planted { vcpu: 0, linear: 0x10, saved: 0xb0 }]);
        b.insert_int3(0x12, vec![Planted { vcpu: 1, linear: 0x40012, saved: 0x90 }]);
        let mut buf = [0xcc, 0xcc, 0xcc];
        b.hide_int3(0, 0xf, &mut buf);
        assert_eq!(buf, [0xcc, 0xb0, 0xcc]);
        assert_eq!(b.int3_linear(1), vec![0x40012]);
        assert_eq!(b.take_all_int3().len(), 2);
        assert!(b.is_empty());
    }
}
