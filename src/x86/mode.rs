//! Which execution mode is the x86 CPU in?
//!
//! An x86 CPU does not have one "mode" bit. The mode emerges from several
//! independent switches that system software flips one after another while
//! it boots:
//!
//! | switch            | where              | meaning                                        |
//! |-------------------|--------------------|------------------------------------------------|
//! | `CR0.PE` (bit 0)  | control register 0 | protection enable: leave real mode             |
//! | `CR0.PG` (bit 31) | control register 0 | paging enable: linear addresses are translated |
//! | `CR4.PAE` (bit 5) | control register 4 | 64-bit page-table entries (3 or more levels)   |
//! | `EFER.LME` (bit 8)| MSR `0xC000_0080`  | long mode enable (takes effect with `CR0.PG`)  |
//! | `EFER.LMA` (bit 10)| MSR `0xC000_0080` | long mode *active*: set by the CPU itself      |
//! | `CS.D` (bit 54 of the descriptor) | code segment | default operand size 32 (1) or 16 (0) |
//! | `CS.L` (bit 53 of the descriptor) | code segment | 64-bit code segment (long mode only)  |
//!
//! A typical boot goes: real mode → 32-bit protected mode (set `CR0.PE`, far
//! jump to a 32-bit code segment) → optionally paging (`CR0.PG`) → long mode
//! (`CR4.PAE`, `EFER.LME`, then `CR0.PG`, then a far jump to a code segment
//! with `L=1`). [`CpuMode::from_regs`] recognises each of these stages.
//!
//! The bit constants for CR0, CR4 and EFER ([`cr0`], [`cr4`], [`efer`]) come
//! from the one table of their names in [`super::control_bits`], which also
//! feeds gdb's target description and `monitor regs`.

#![forbid(unsafe_code)]

use core::fmt;

/// The CR0, CR4 and EFER bits, from the one table in [`super::control_bits`].
pub use super::control_bits::{cr0, cr4, efer};

/// The execution mode of an x86 CPU, as far as a debugger cares about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CpuMode {
    /// Real mode (`CR0.PE = 0`): 16-bit code, `segment * 16 + offset`
    /// addressing, no protection. Every x86 CPU starts here.
    Real,
    /// Protected mode running a 16-bit code segment (`CS.D = 0`), as found in
    /// 286-style code or during the first instructions after setting `CR0.PE`.
    Protected16,
    /// 32-bit protected mode without paging: linear address = physical address.
    Protected32,
    /// 32-bit protected mode with classic two-level paging (4 KiB / 4 MiB pages).
    Protected32Paging,
    /// 32-bit protected mode with PAE paging (three levels, 64-bit entries).
    Pae,
    /// 64-bit long mode (`EFER.LMA = 1`, `CS.L = 1`).
    Long64,
    /// Compatibility mode: long mode is active, but the current code segment
    /// is a 32-bit (or 16-bit) one (`CS.L = 0`), e.g. a 32-bit program on a
    /// 64-bit kernel.
    Compat,
}

impl CpuMode {
    /// Work out the mode from the control registers and the current code
    /// segment's `D/B` (`cs_db`) and `L` (`cs_l`) attribute bits.
    ///
    /// With KVM these come straight from `kvm_sregs`: `cr0`, `cr4`, `efer`,
    /// `cs.db != 0` and `cs.l != 0`.
    pub fn from_regs(cr0: u64, cr4: u64, efer: u64, cs_db: bool, cs_l: bool) -> CpuMode {
        use self::cr0::{PE, PG};
        if cr0 & PE == 0 {
            return CpuMode::Real;
        }
        // LMA is what the CPU reports; LME together with PG means the same
        // thing (LMA = LME && PG), in case a caller only tracks LME.
        let long_active = efer & efer::LMA != 0 || (efer & efer::LME != 0 && cr0 & PG != 0);
        if long_active {
            return if cs_l { CpuMode::Long64 } else { CpuMode::Compat };
        }
        if !cs_db {
            return CpuMode::Protected16;
        }
        if cr0 & PG == 0 {
            CpuMode::Protected32
        } else if cr4 & self::cr4::PAE == 0 {
            CpuMode::Protected32Paging
        } else {
            CpuMode::Pae
        }
    }

    /// The default operand/address size of code in this mode, in bits.
    ///
    /// Compatibility mode is reported as 32 (a 16-bit segment in
    /// compatibility mode is rare enough to ignore here).
    pub fn code_bits(self) -> u32 {
        match self {
            CpuMode::Real | CpuMode::Protected16 => 16,
            CpuMode::Protected32 | CpuMode::Protected32Paging | CpuMode::Pae | CpuMode::Compat => 32,
            CpuMode::Long64 => 64,
        }
    }

    /// The name gdb uses for the matching `set architecture` value.
    pub fn gdb_architecture(self) -> &'static str {
        match self.code_bits() {
            16 => "i8086",
            32 => "i386",
            _ => "i386:x86-64",
        }
    }
}

impl fmt::Display for CpuMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            CpuMode::Real => "real mode (16-bit)",
            CpuMode::Protected16 => "16-bit protected mode",
            CpuMode::Protected32 => "32-bit protected mode, paging off",
            CpuMode::Protected32Paging => "32-bit protected mode, 2-level paging",
            CpuMode::Pae => "32-bit protected mode, PAE paging",
            CpuMode::Long64 => "64-bit long mode",
            CpuMode::Compat => "compatibility mode (32-bit code under a 64-bit kernel)",
        };
        f.write_str(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PE: u64 = cr0::PE;
    const PG: u64 = cr0::PG;
    const PAE: u64 = cr4::PAE;

    #[test]
    fn reset_state_is_real_mode() {
        // CR0 after reset is 0x6000_0010 (CD, NW, ET).
        assert_eq!(CpuMode::from_regs(0x6000_0010, 0, 0, false, false), CpuMode::Real);
        // Even a D=1 code segment (unreal-mode tricks) stays real mode.
        assert_eq!(CpuMode::from_regs(0x10, 0, 0, true, false), CpuMode::Real);
    }

    #[test]
    fn protected_modes() {
        assert_eq!(CpuMode::from_regs(PE, 0, 0, false, false), CpuMode::Protected16);
        assert_eq!(CpuMode::from_regs(PE, 0, 0, true, false), CpuMode::Protected32);
        assert_eq!(CpuMode::from_regs(PE | PG, 0, 0, true, false), CpuMode::Protected32Paging);
        assert_eq!(CpuMode::from_regs(PE | PG, PAE, 0, true, false), CpuMode::Pae);
        // PAE set but paging off: still no paging.
        assert_eq!(CpuMode::from_regs(PE, PAE, 0, true, false), CpuMode::Protected32);
    }

    #[test]
    fn long_modes() {
        let e = efer::LME | efer::LMA;
        assert_eq!(CpuMode::from_regs(PE | PG, PAE, e, false, true), CpuMode::Long64);
        assert_eq!(CpuMode::from_regs(PE | PG, PAE, e, true, false), CpuMode::Compat);
        // LME + PG without LMA reported: the CPU would have set LMA.
        assert_eq!(CpuMode::from_regs(PE | PG, PAE, efer::LME, false, true), CpuMode::Long64);
        // LME without PG: long mode is not active yet.
        assert_eq!(CpuMode::from_regs(PE, PAE, efer::LME, true, false), CpuMode::Protected32);
    }

    #[test]
    fn display_and_helpers() {
        assert_eq!(CpuMode::Real.to_string(), "real mode (16-bit)");
        assert_eq!(CpuMode::Long64.to_string(), "64-bit long mode");
        assert_eq!(CpuMode::Real.code_bits(), 16);
        assert_eq!(CpuMode::Pae.code_bits(), 32);
        assert_eq!(CpuMode::Long64.code_bits(), 64);
        assert_eq!(CpuMode::Real.gdb_architecture(), "i8086");
        assert_eq!(CpuMode::Protected32.gdb_architecture(), "i386");
        assert_eq!(CpuMode::Long64.gdb_architecture(), "i386:x86-64");
    }
}
