//! The bits of CR0, CR4 and EFER: one table, named once, that everything else reads.
//!
//! Each bit appears here a single time, with its number and what it means. From that one list
//! come the constants code tests bits with ([`cr0::PE`], [`efer::LMA`], …; mode decoding in
//! [`super::mode`], the page walker), the tables [`CR0`], [`CR4`] and [`EFER`] that name the bits
//! of a value ([`names`]: `monitor regs` shows `[PE ET PG]`), and the `<flags>` types of gdb's
//! target description (so `info registers cr0` shows the same names).
//!
//! Intel SDM Vol. 3A, section 2.5 (control registers) and 2.2.1 (EFER).

#![forbid(unsafe_code)]

/// One named bit of a control register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlBit {
    pub name: &'static str,
    /// Its number: the bit is `1 << bit`.
    pub bit: u32,
}

/// Declares a register's bits once: a module of constants (with their docs) and a table of
/// (name, bit number), so that the two cannot disagree.
macro_rules! control_bits {
    ($(#[$mod_doc:meta])* $module:ident, $table:ident: $($(#[$doc:meta])* $name:ident = $bit:literal,)*) => {
        $(#[$mod_doc])*
        // The whole register is named, as the SDM names it, so a reader finds every bit here; code
        // tests only the bits minikvm cares about, hence `dead_code` is expected for the rest.
        #[allow(dead_code)]
        pub mod $module {
            $($(#[$doc])* pub const $name: u64 = 1 << $bit;)*
        }
        $(#[$mod_doc])*
        pub const $table: &[ControlBit] = &[$(ControlBit { name: stringify!($name), bit: $bit },)*];
    };
}

control_bits! {
    /// Bits of control register CR0.
    cr0, CR0:
    /// Protection Enable: 0 = real mode, 1 = protected mode.
    PE = 0,
    /// Monitor Coprocessor: makes `WAIT`/`FWAIT` honour `TS`.
    MP = 1,
    /// Emulation: x87 instructions raise #NM (no FPU present).
    EM = 2,
    /// Task Switched: the next x87/SSE instruction raises #NM (lazy FPU switching).
    TS = 3,
    /// Extension Type: hard-wired to 1 on every CPU since the 486.
    ET = 4,
    /// Numeric Error: report x87 errors with #MF instead of the legacy IRQ 13.
    NE = 5,
    /// Write Protect: supervisor code may not write to read-only pages either.
    WP = 16,
    /// Alignment Mask: allow `EFLAGS.AC` alignment checks in ring 3.
    AM = 18,
    /// Not Write-through (cache control).
    NW = 29,
    /// Cache Disable.
    CD = 30,
    /// Paging: linear addresses go through the page tables rooted at CR3.
    PG = 31,
}

control_bits! {
    /// Bits of control register CR4.
    cr4, CR4:
    /// Virtual-8086 Mode Extensions.
    VME = 0,
    /// Protected-mode Virtual Interrupts.
    PVI = 1,
    /// Time Stamp Disable: `RDTSC` only in ring 0.
    TSD = 2,
    /// Debugging Extensions: DR4/DR5 are reserved, I/O breakpoints allowed.
    DE = 3,
    /// Page Size Extensions: 4 MiB pages in 32-bit (two-level) paging.
    PSE = 4,
    /// Physical Address Extension: 64-bit page-table entries.
    PAE = 5,
    /// Machine Check Enable.
    MCE = 6,
    /// Page Global Enable: honour the G bit of page-table entries.
    PGE = 7,
    /// Performance-monitoring Counter Enable: `RDPMC` in ring 3.
    PCE = 8,
    /// OS supports `FXSAVE`/`FXRSTOR` (enables SSE).
    OSFXSR = 9,
    /// OS handles unmasked SSE exceptions (#XM).
    OSXMMEXCPT = 10,
    /// User-Mode Instruction Prevention.
    UMIP = 11,
    /// 57-bit linear addresses: five-level paging in long mode.
    LA57 = 12,
    /// VMX (Intel virtualisation) enable.
    VMXE = 13,
    /// `RDFSBASE`/`WRFSBASE` and friends allowed.
    FSGSBASE = 16,
    /// Process-context identifiers (low 12 bits of CR3 are a PCID).
    PCIDE = 17,
    /// OS supports `XSAVE` and extended states (AVX, ...).
    OSXSAVE = 18,
    /// Supervisor-Mode Execution Prevention.
    SMEP = 20,
    /// Supervisor-Mode Access Prevention.
    SMAP = 21,
    /// Protection keys for user pages.
    PKE = 22,
}

control_bits! {
    /// Bits of the Extended Feature Enable Register, MSR `0xC000_0080`.
    efer, EFER:
    /// System Call Extensions: `SYSCALL`/`SYSRET` allowed.
    SCE = 0,
    /// Long Mode Enable: written by software.
    LME = 8,
    /// Long Mode Active: set by the CPU when `LME` and `CR0.PG` are both 1.
    LMA = 10,
    /// No-Execute Enable: bit 63 of PAE/long-mode entries means "no execute".
    NXE = 11,
    /// Secure Virtual Machine Enable (AMD SVM).
    SVME = 12,
    /// Fast `FXSAVE`/`FXRSTOR` (AMD).
    FFXSR = 14,
}

/// The names of the bits set in `value`, as `[PE ET PG]` (bits without a name are left out).
pub fn names(table: &[ControlBit], value: u64) -> String {
    let set: Vec<&str> = table.iter().filter(|b| value & (1 << b.bit) != 0).map(|b| b.name).collect();
    format!("[{}]", set.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_and_tables_agree() {
        assert_eq!(cr0::PE, 1);
        assert_eq!(cr0::PG, 1 << 31);
        assert_eq!(cr4::PAE, 1 << 5);
        assert_eq!(efer::LMA, 1 << 10);
        for table in [CR0, CR4, EFER] {
            let mut bits: Vec<u32> = table.iter().map(|b| b.bit).collect();
            bits.dedup();
            assert_eq!(bits.len(), table.len(), "each bit named once");
            assert!(bits.windows(2).all(|w| w[0] < w[1]), "in bit order, as gdb lists them");
        }
    }

    #[test]
    fn names_of_a_value() {
        assert_eq!(names(CR0, 0x6000_0010), "[ET NW CD]");
        assert_eq!(names(CR0, 0xe000_0011), "[PE ET NW CD PG]");
        assert_eq!(names(EFER, 0x500), "[LME LMA]");
        assert_eq!(names(CR4, 0), "[]");
    }
}
