//! A software page-table walker for every x86 paging mode.
//!
//! # What paging does
//!
//! With paging on (`CR0.PG = 1`), every *linear* address the CPU produces
//! (after segmentation) is translated to a *physical* address by walking a
//! tree of page tables in memory. The root of the tree is in CR3. The linear
//! address is cut into fields: the top fields are indices into the tables of
//! each level, the bottom field is the offset inside the final page.
//!
//! ```text
//! 32-bit paging (CR4.PAE = 0), 4 KiB pages:
//!   31        22 21        12 11           0
//!  [ PDE index  | PTE index  |   offset     ]     CR3 -> page directory -> page table -> page
//!
//! PAE paging (CR4.PAE = 1, not long mode):
//!   31 30 29    21 20     12 11           0
//!  [PDPT| PD idx  | PT idx  |   offset     ]     CR3 -> PDPT (4 entries) -> PD -> PT -> page
//!
//! 4-level paging (long mode):
//!   47    39 38    30 29    21 20    12 11         0
//!  [ PML4   | PDPT   |  PD    |  PT    |  offset   ]
//! ```
//!
//! Every entry has a **P** (present) bit: if it is 0 the walk stops and the
//! CPU raises a page fault (#PF) with the linear address in CR2. A debugger
//! reports such an address as "cannot access memory".
//!
//! An entry in a *directory* level (PDE, or PDPTE in long mode) with the
//! **PS** (page size) bit set is not a pointer to a smaller table but maps a
//! *large page* directly: 4 MiB (32-bit paging with `CR4.PSE`), 2 MiB (PAE
//! and long mode PDE) or 1 GiB (long-mode PDPTE).
//!
//! Other entry bits: **RW** (writes allowed), **US** (user-mode access
//! allowed), **PWT/PCD** (caching), **A** (accessed, set by the CPU), **D**
//! (dirty, set by the CPU on a write, leaf entries only), **G** (global: not
//! flushed from the TLB on a CR3 write), **NX** (bit 63, no execute, only
//! when `EFER.NXE = 1`). Access rights are the *combination* of all levels:
//! a page is user-writable only if every level on the way says RW and US.
//!
//! # What this module does not do
//!
//! The walker reads tables like the CPU would but never writes to them: it
//! does not set A/D bits. It does not check permissions either (a debugger
//! may write to read-only code to plant a breakpoint) and ignores most
//! reserved bits, protection keys, SMEP/SMAP and A20 masking. It simply
//! answers "where does this linear address live in guest-physical memory?".

#![forbid(unsafe_code)]

use super::mode::{cr0, cr4, efer};
use core::fmt;
use core::fmt::Write as _;

/// Read access to guest-physical memory, used to fetch page-table entries.
///
/// Only [`PhysMem::read_phys`] must be written; the little-endian helpers
/// have default implementations. For a closure use [`FnMem`]. `[u8]` and
/// `Vec<u8>` implement it (physical address 0 = index 0), which is handy in
/// tests.
pub trait PhysMem {
    /// Fill `buf` with the bytes at guest-physical address `gpa`.
    /// Returns `false` if any byte lies outside guest memory.
    fn read_phys(&self, gpa: u64, buf: &mut [u8]) -> bool;

    /// Read a little-endian 32-bit value (a 32-bit paging entry).
    fn read_u32(&self, gpa: u64) -> Option<u32> {
        let mut b = [0u8; 4];
        self.read_phys(gpa, &mut b).then(|| u32::from_le_bytes(b))
    }

    /// Read a little-endian 64-bit value (a PAE or long-mode entry).
    fn read_u64(&self, gpa: u64) -> Option<u64> {
        let mut b = [0u8; 8];
        self.read_phys(gpa, &mut b).then(|| u64::from_le_bytes(b))
    }
}

impl PhysMem for [u8] {
    fn read_phys(&self, gpa: u64, buf: &mut [u8]) -> bool {
        let Ok(start) = usize::try_from(gpa) else {
            return false;
        };
        let Some(end) = start.checked_add(buf.len()) else {
            return false;
        };
        match self.get(start..end) {
            Some(src) => {
                buf.copy_from_slice(src);
                true
            }
            None => false,
        }
    }
}

impl PhysMem for Vec<u8> {
    fn read_phys(&self, gpa: u64, buf: &mut [u8]) -> bool {
        self.as_slice().read_phys(gpa, buf)
    }
}

/// Adapter turning a closure `|gpa, buf| -> bool` into a [`PhysMem`].
///
/// ```ignore
/// let mem = FnMem(|gpa, buf: &mut [u8]| guest_mem.read_slice(buf, GuestAddress(gpa)).is_ok());
/// ```
pub struct FnMem<F>(pub F);

impl<F: Fn(u64, &mut [u8]) -> bool> PhysMem for FnMem<F> {
    fn read_phys(&self, gpa: u64, buf: &mut [u8]) -> bool {
        (self.0)(gpa, buf)
    }
}

/// Which kind of address translation is active.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PagingMode {
    /// `CR0.PG = 0` (real mode, or protected mode without paging):
    /// linear address = physical address.
    None,
    /// Classic 32-bit paging, two levels of 1024 four-byte entries.
    /// `pse` is `CR4.PSE`: when set, a PDE with PS=1 maps a 4 MiB page.
    Bits32 {
        /// `CR4.PSE`: 4 MiB pages allowed.
        pse: bool,
    },
    /// PAE paging: a 4-entry PDPT, then PD and PT with 512 eight-byte entries.
    Pae,
    /// Long-mode 4-level paging (48-bit linear addresses).
    Level4,
    /// Long-mode 5-level paging (`CR4.LA57`, 57-bit linear addresses).
    Level5,
}

impl PagingMode {
    /// Decide the paging mode from CR0, CR4 and EFER, exactly as the CPU does.
    pub fn from_regs(cr0: u64, cr4: u64, efer: u64) -> PagingMode {
        if cr0 & cr0::PG == 0 {
            PagingMode::None
        } else if cr4 & cr4::PAE == 0 {
            PagingMode::Bits32 { pse: cr4 & cr4::PSE != 0 }
        } else if efer & (efer::LMA | efer::LME) != 0 {
            // With PG=1, LME=1 implies LMA=1 (the CPU sets it).
            if cr4 & cr4::LA57 != 0 {
                PagingMode::Level5
            } else {
                PagingMode::Level4
            }
        } else {
            PagingMode::Pae
        }
    }

    /// A short human-readable name.
    pub fn name(self) -> &'static str {
        match self {
            PagingMode::None => "no paging",
            PagingMode::Bits32 { pse: false } => "32-bit paging",
            PagingMode::Bits32 { pse: true } => "32-bit paging with PSE",
            PagingMode::Pae => "PAE paging",
            PagingMode::Level4 => "4-level paging",
            PagingMode::Level5 => "5-level paging",
        }
    }

    /// Number of table levels walked for a 4 KiB page.
    pub fn levels(self) -> usize {
        self.level_specs().len()
    }

    /// The level layout of this mode, from the root down.
    fn level_specs(self) -> &'static [LevelSpec] {
        match self {
            PagingMode::None => &[],
            PagingMode::Bits32 { .. } => &BITS32_LEVELS,
            PagingMode::Pae => &PAE_LEVELS,
            PagingMode::Level4 => &LEVEL4_LEVELS,
            PagingMode::Level5 => &LEVEL5_LEVELS,
        }
    }

    /// Does this mode use 8-byte entries (with an NX bit)?
    fn wide_entries(self) -> bool {
        matches!(self, PagingMode::Pae | PagingMode::Level4 | PagingMode::Level5)
    }
}

impl fmt::Display for PagingMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The name of one level of the page-table tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Level {
    /// Page-map level-5 entry (5-level paging only).
    Pml5e,
    /// Page-map level-4 entry (long mode).
    Pml4e,
    /// Page-directory-pointer-table entry (PAE and long mode).
    Pdpte,
    /// Page-directory entry.
    Pde,
    /// Page-table entry.
    Pte,
}

impl Level {
    /// The usual abbreviation, e.g. `"PML4E"`.
    pub fn name(self) -> &'static str {
        match self {
            Level::Pml5e => "PML5E",
            Level::Pml4e => "PML4E",
            Level::Pdpte => "PDPTE",
            Level::Pde => "PDE",
            Level::Pte => "PTE",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Size of the page that finally maps an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PageSize {
    /// A normal 4 KiB page.
    Size4K,
    /// 2 MiB large page (PAE or long-mode PDE with PS=1).
    Size2M,
    /// 4 MiB large page (32-bit PDE with PS=1 and `CR4.PSE`).
    Size4M,
    /// 1 GiB huge page (long-mode PDPTE with PS=1).
    Size1G,
    /// No paging: the whole 4 GiB linear space maps 1:1.
    Unpaged,
}

impl PageSize {
    /// The size in bytes.
    pub fn bytes(self) -> u64 {
        match self {
            PageSize::Size4K => 1 << 12,
            PageSize::Size2M => 1 << 21,
            PageSize::Size4M => 1 << 22,
            PageSize::Size1G => 1 << 30,
            PageSize::Unpaged => 1 << 32,
        }
    }

    /// A short label such as `"4 KiB"`.
    pub fn name(self) -> &'static str {
        match self {
            PageSize::Size4K => "4 KiB",
            PageSize::Size2M => "2 MiB",
            PageSize::Size4M => "4 MiB",
            PageSize::Size1G => "1 GiB",
            PageSize::Unpaged => "identity (no paging)",
        }
    }
}

/// The decoded flag bits of one page-table entry.
///
/// Bits that do not exist at a level are reported as `false` (for example
/// `dirty` in a non-leaf entry, or `nx` with `EFER.NXE = 0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct EntryFlags {
    /// Bit 0, P: the entry is valid.
    pub present: bool,
    /// Bit 1, R/W: writes allowed.
    pub writable: bool,
    /// Bit 2, U/S: user-mode (ring 3) accesses allowed.
    pub user: bool,
    /// Bit 3, PWT: page-level write-through.
    pub pwt: bool,
    /// Bit 4, PCD: page-level cache disable.
    pub pcd: bool,
    /// Bit 5, A: accessed (set by the CPU).
    pub accessed: bool,
    /// Bit 6, D: dirty (set by the CPU on a write; leaf entries only).
    pub dirty: bool,
    /// Bit 7 of a PDE/PDPTE, PS: this entry maps a large page.
    pub page_size: bool,
    /// Bit 8, G: global mapping (leaf entries only).
    pub global: bool,
    /// PAT bit: bit 7 of a PTE, bit 12 of a large-page entry.
    pub pat: bool,
    /// Bit 63, XD/NX: instruction fetches not allowed (needs `EFER.NXE`).
    pub nx: bool,
}

impl EntryFlags {
    /// Decode the flag bits of `entry`; `leaf`/`large` tell where bits 7, 8
    /// and 12 mean PAT, PS and G, `nxe` whether bit 63 is the NX bit.
    fn decode(entry: u64, leaf: bool, large: bool, nxe: bool) -> EntryFlags {
        let bit = |n: u32| entry & (1u64 << n) != 0;
        EntryFlags {
            present: bit(0),
            writable: bit(1),
            user: bit(2),
            pwt: bit(3),
            pcd: bit(4),
            accessed: bit(5),
            dirty: leaf && bit(6),
            page_size: large,
            global: leaf && bit(8),
            pat: if large { bit(12) } else { leaf && bit(7) },
            nx: nxe && bit(63),
        }
    }
}

impl fmt::Display for EntryFlags {
    /// Prints the set flags, e.g. `P RW US A D`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (self.present, "P"),
            (self.writable, "RW"),
            (self.user, "US"),
            (self.pwt, "PWT"),
            (self.pcd, "PCD"),
            (self.accessed, "A"),
            (self.dirty, "D"),
            (self.page_size, "PS"),
            (self.global, "G"),
            (self.pat, "PAT"),
            (self.nx, "NX"),
        ];
        let mut first = true;
        for (set, name) in names {
            if set {
                if !first {
                    f.write_char(' ')?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if first {
            f.write_str("-")?;
        }
        Ok(())
    }
}

/// One step of a walk: which entry of which table was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WalkLevel {
    /// Which level this is.
    pub level: Level,
    /// Guest-physical address of the table.
    pub table: u64,
    /// Index of the entry in the table (taken from the linear address).
    pub index: u16,
    /// Guest-physical address of the entry (`table + index * entry size`).
    pub entry_addr: u64,
    /// The raw entry value (zero-extended for 4-byte entries).
    pub entry: u64,
    /// The decoded flag bits.
    pub flags: EntryFlags,
}

/// A successful translation of one linear address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Walk {
    /// The paging mode used.
    pub mode: PagingMode,
    /// The linear address that was translated.
    pub linear: u64,
    /// Every entry read, root first (empty without paging).
    pub levels: Vec<WalkLevel>,
    /// The resulting guest-physical address.
    pub phys: u64,
    /// Guest-physical address of the start of the page.
    pub page_base: u64,
    /// Size of the page that maps `linear`.
    pub page_size: PageSize,
    /// User mode may access the page (U/S set at every level).
    pub user: bool,
    /// Writes are allowed (R/W set at every level). Supervisor code may also
    /// write read-only pages when `CR0.WP = 0`.
    pub writable: bool,
    /// Instruction fetches are allowed (no level has NX).
    pub executable: bool,
}

impl Walk {
    /// Offset of [`Walk::linear`] inside its page.
    pub fn page_offset(&self) -> u64 {
        self.phys.wrapping_sub(self.page_base)
    }

    /// Bytes from [`Walk::linear`] to the end of its page (at least 1).
    pub fn bytes_to_page_end(&self) -> u64 {
        self.page_size.bytes().saturating_sub(self.page_offset()).max(1)
    }
}

/// Why a translation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WalkFault {
    /// The entry at this level has P = 0: the address is not mapped
    /// (the CPU would raise #PF).
    NotPresent(Level),
    /// The table entry at `addr` could not be read (outside guest RAM).
    Unreadable {
        /// The level being read.
        level: Level,
        /// Guest-physical address of the entry.
        addr: u64,
    },
    /// A 64-bit mode linear address that is not canonical (bits above 47,
    /// or 56 with LA57, are not copies of the top implemented bit). The CPU
    /// would raise #GP, not #PF.
    NonCanonical,
    /// A linear address above 4 GiB in a 32-bit mode.
    TooWide,
    /// A bit that must be zero was set (e.g. PS in a PML4E): the CPU would
    /// raise #PF with the RSVD error-code bit.
    Reserved {
        /// The level with the bad entry.
        level: Level,
        /// The bit number.
        bit: u8,
    },
}

/// A failed translation, with the levels that were read before the failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalkError {
    /// The paging mode used.
    pub mode: PagingMode,
    /// The linear address that could not be translated.
    pub linear: u64,
    /// What went wrong.
    pub fault: WalkFault,
    /// Entries read before (and including) the failing one.
    pub levels: Vec<WalkLevel>,
}

impl fmt::Display for WalkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "linear address {:#x}: ", self.linear)?;
        match self.fault {
            WalkFault::NotPresent(level) => {
                write!(f, "not mapped ({level} not present")?;
                if let Some(l) = self.levels.last() {
                    write!(f, ", entry {:#x} at {:#x}", l.entry, l.entry_addr)?;
                }
                f.write_str(")")
            }
            WalkFault::Unreadable { level, addr } => {
                write!(f, "{level} at physical {addr:#x} is outside guest memory")
            }
            WalkFault::NonCanonical => f.write_str("not canonical"),
            WalkFault::TooWide => write!(f, "above 4 GiB in {}", self.mode),
            WalkFault::Reserved { level, bit } => {
                write!(f, "reserved bit {bit} set in {level}")
            }
        }
    }
}

impl std::error::Error for WalkError {}

/// How one level of a mode's tree is laid out.
struct LevelSpec {
    level: Level,
    /// Bit position of the lowest index bit in the linear address.
    shift: u32,
    /// Number of index bits.
    bits: u32,
    /// The large page this level maps when PS = 1 (if PS is allowed here).
    large: Option<PageSize>,
}

const BITS32_LEVELS: [LevelSpec; 2] = [
    LevelSpec { level: Level::Pde, shift: 22, bits: 10, large: Some(PageSize::Size4M) },
    LevelSpec { level: Level::Pte, shift: 12, bits: 10, large: None },
];

const PAE_LEVELS: [LevelSpec; 3] = [
    LevelSpec { level: Level::Pdpte, shift: 30, bits: 2, large: None },
    LevelSpec { level: Level::Pde, shift: 21, bits: 9, large: Some(PageSize::Size2M) },
    LevelSpec { level: Level::Pte, shift: 12, bits: 9, large: None },
];

const LEVEL4_LEVELS: [LevelSpec; 4] = [
    LevelSpec { level: Level::Pml4e, shift: 39, bits: 9, large: None },
    LevelSpec { level: Level::Pdpte, shift: 30, bits: 9, large: Some(PageSize::Size1G) },
    LevelSpec { level: Level::Pde, shift: 21, bits: 9, large: Some(PageSize::Size2M) },
    LevelSpec { level: Level::Pte, shift: 12, bits: 9, large: None },
];

const LEVEL5_LEVELS: [LevelSpec; 5] = [
    LevelSpec { level: Level::Pml5e, shift: 48, bits: 9, large: None },
    LevelSpec { level: Level::Pml4e, shift: 39, bits: 9, large: None },
    LevelSpec { level: Level::Pdpte, shift: 30, bits: 9, large: Some(PageSize::Size1G) },
    LevelSpec { level: Level::Pde, shift: 21, bits: 9, large: Some(PageSize::Size2M) },
    LevelSpec { level: Level::Pte, shift: 12, bits: 9, large: None },
];

/// Physical-address bits 51:12 of a 64-bit entry (the next table or page).
const ADDR_MASK_64: u64 = 0x000F_FFFF_FFFF_F000;
/// Physical-address bits 31:12 of a 32-bit entry.
const ADDR_MASK_32: u64 = 0xFFFF_F000;

/// Everything needed to translate addresses: the paging mode, the root
/// (CR3) and the two switches that change how entries are decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Paging {
    /// The paging mode.
    pub mode: PagingMode,
    /// Control register 3: physical address of the root table (plus
    /// PCID or caching bits in the low 12 bits, which are ignored).
    pub cr3: u64,
    /// `EFER.NXE`: bit 63 of PAE/long-mode entries is the NX bit.
    pub nxe: bool,
}

impl Paging {
    /// Build the translation context from the vCPU's control registers
    /// (with KVM: `kvm_sregs.cr0`, `.cr3`, `.cr4`, `.efer`).
    pub fn from_regs(cr0: u64, cr3: u64, cr4: u64, efer: u64) -> Paging {
        Paging { mode: PagingMode::from_regs(cr0, cr4, efer), cr3, nxe: efer & efer::NXE != 0 }
    }

    /// Physical address of the root table.
    fn root(&self) -> u64 {
        match self.mode {
            PagingMode::None => 0,
            PagingMode::Bits32 { .. } => self.cr3 & ADDR_MASK_32,
            // The PDPT is 32 bytes long and 32-byte aligned: CR3 bits 31:5.
            PagingMode::Pae => self.cr3 & 0xFFFF_FFE0,
            PagingMode::Level4 | PagingMode::Level5 => self.cr3 & ADDR_MASK_64,
        }
    }

    /// Translate one linear address to a guest-physical address.
    ///
    /// Returns every entry read on the way, so that a debugger can show the
    /// walk (see [`format_walk`]). An address that is not mapped gives
    /// `Err` with [`WalkFault::NotPresent`].
    pub fn walk<M: PhysMem + ?Sized>(&self, mem: &M, linear: u64) -> Result<Walk, WalkError> {
        let mode = self.mode;
        let fail = |fault, levels: Vec<WalkLevel>| WalkError { mode, linear, fault, levels };
        if let Some(fault) = self.width_fault(linear) {
            return Err(fail(fault, Vec::new()));
        }
        if mode == PagingMode::None {
            return Ok(unpaged(linear));
        }

        let wide = mode.wide_entries();
        let mut table = self.root();
        let mut levels: Vec<WalkLevel> = Vec::with_capacity(mode.levels());
        let mut user = true;
        let mut writable = true;
        let mut executable = true;

        for spec in mode.level_specs() {
            let index = (linear >> spec.shift) & ((1u64 << spec.bits) - 1);
            let (entry_addr, entry) = match read_entry(mem, table, index, wide) {
                Ok(read) => read,
                Err(addr) => return Err(fail(WalkFault::Unreadable { level: spec.level, addr }, levels)),
            };

            let ps_bit = entry & (1 << 7) != 0;
            let large = match spec.large {
                // 4 MiB pages need CR4.PSE; without it PS is ignored in a PDE.
                Some(PageSize::Size4M) => {
                    (mode == PagingMode::Bits32 { pse: true } && ps_bit).then_some(PageSize::Size4M)
                }
                Some(size) => ps_bit.then_some(size),
                None => None,
            };
            let is_leaf = large.is_some() || spec.level == Level::Pte;
            let flags = EntryFlags::decode(entry, is_leaf, large.is_some(), self.nxe && wide);
            // Index has at most 10 bits, so it always fits in u16.
            let index16 = u16::try_from(index).unwrap_or(u16::MAX);
            levels.push(WalkLevel { level: spec.level, table, index: index16, entry_addr, entry, flags });

            if !flags.present {
                return Err(fail(WalkFault::NotPresent(spec.level), levels));
            }
            if ps_bit && matches!(spec.level, Level::Pml4e | Level::Pml5e) {
                return Err(fail(WalkFault::Reserved { level: spec.level, bit: 7 }, levels));
            }

            // PAE PDPTEs have no R/W, U/S or NX bits: they do not restrict.
            if !(mode == PagingMode::Pae && spec.level == Level::Pdpte) {
                user &= flags.user;
                writable &= flags.writable;
                executable &= !flags.nx;
            }

            if let Some(size) = large {
                let page_base = large_page_base(entry, size);
                return Ok(finish(mode, linear, levels, page_base, size, user, writable, executable));
            }
            if spec.level == Level::Pte {
                let page_base = entry & if wide { ADDR_MASK_64 } else { ADDR_MASK_32 };
                return Ok(finish(mode, linear, levels, page_base, PageSize::Size4K, user, writable, executable));
            }
            table = entry & if wide { ADDR_MASK_64 } else { ADDR_MASK_32 };
        }
        // Every mode's last level is a PTE, which returns above; this is
        // only reachable for a malformed level table.
        Err(fail(WalkFault::NotPresent(Level::Pte), levels))
    }

    /// Why `linear` cannot be translated in this mode at all: wider than 32 bits without long
    /// mode, or not canonical (48 or 57 bits) in it.
    fn width_fault(&self, linear: u64) -> Option<WalkFault> {
        match self.mode {
            PagingMode::None | PagingMode::Bits32 { .. } | PagingMode::Pae => {
                (linear > u64::from(u32::MAX)).then_some(WalkFault::TooWide)
            }
            PagingMode::Level4 => (!is_canonical(linear, 48)).then_some(WalkFault::NonCanonical),
            PagingMode::Level5 => (!is_canonical(linear, 57)).then_some(WalkFault::NonCanonical),
        }
    }

    /// Split the linear range `[linear, linear + len)` into physically
    /// contiguous pieces, one per page touched.
    ///
    /// A read of guest memory through a linear address must be split at
    /// page boundaries because the next page can live anywhere in physical
    /// memory. Fails on the first page that is not mapped; see
    /// [`Paging::translate_range_partial`] to get the mapped prefix.
    pub fn translate_range<M: PhysMem + ?Sized>(
        &self,
        mem: &M,
        linear: u64,
        len: usize,
    ) -> Result<Vec<Chunk>, WalkError> {
        let (chunks, err) = self.translate_range_partial(mem, linear, len);
        match err {
            Some(e) => Err(e),
            None => Ok(chunks),
        }
    }

    /// Like [`Paging::translate_range`], but returns the chunks that could
    /// be translated *before* the first failure, together with that failure.
    /// This suits gdb's memory reads, which may return fewer bytes than asked.
    pub fn translate_range_partial<M: PhysMem + ?Sized>(
        &self,
        mem: &M,
        linear: u64,
        len: usize,
    ) -> (Vec<Chunk>, Option<WalkError>) {
        let mut chunks = Vec::new();
        let mut done: usize = 0;
        while done < len {
            let Some(addr) = u64::try_from(done).ok().and_then(|d| linear.checked_add(d)) else {
                let err = WalkError { mode: self.mode, linear, fault: WalkFault::TooWide, levels: Vec::new() };
                return (chunks, Some(err));
            };
            let walk = match self.walk(mem, addr) {
                Ok(w) => w,
                Err(e) => return (chunks, Some(e)),
            };
            let remaining = len - done;
            let in_page = usize::try_from(walk.bytes_to_page_end()).unwrap_or(usize::MAX);
            let n = remaining.min(in_page);
            chunks.push(Chunk { linear: addr, phys: walk.phys, len: n });
            done += n;
        }
        (chunks, None)
    }
}

/// One physically contiguous piece of a linear range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Chunk {
    /// Linear address of the first byte.
    pub linear: u64,
    /// Guest-physical address of the first byte.
    pub phys: u64,
    /// Number of bytes.
    pub len: usize,
}

#[allow(clippy::too_many_arguments)]
fn finish(
    mode: PagingMode,
    linear: u64,
    levels: Vec<WalkLevel>,
    page_base: u64,
    page_size: PageSize,
    user: bool,
    writable: bool,
    executable: bool,
) -> Walk {
    let offset = linear & (page_size.bytes() - 1);
    Walk {
        mode,
        linear,
        levels,
        // page_base is aligned to page_size, so OR-ing cannot carry.
        phys: page_base | offset,
        page_base,
        page_size,
        user,
        writable,
        executable,
    }
}

/// Paging off: the linear address is the physical one, and nothing restricts access.
fn unpaged(linear: u64) -> Walk {
    Walk {
        mode: PagingMode::None,
        linear,
        levels: Vec::new(),
        phys: linear,
        page_base: 0,
        page_size: PageSize::Unpaged,
        user: true,
        writable: true,
        executable: true,
    }
}

/// Reads entry `index` of the table at `table` (4 or 8 bytes wide): its address and value, or
/// the address that could not be read.
fn read_entry<M: PhysMem + ?Sized>(mem: &M, table: u64, index: u64, wide: bool) -> Result<(u64, u64), u64> {
    let entry_size: u64 = if wide { 8 } else { 4 };
    // index < 1024 and entry_size <= 8, so this cannot overflow in practice; stay checked anyway.
    let entry_addr = index.checked_mul(entry_size).and_then(|off| table.checked_add(off)).ok_or(table)?;
    let entry = if wide { mem.read_u64(entry_addr) } else { mem.read_u32(entry_addr).map(u64::from) };
    entry.map(|e| (entry_addr, e)).ok_or(entry_addr)
}

/// The physical base of a large page from its directory entry.
fn large_page_base(entry: u64, size: PageSize) -> u64 {
    match size {
        // PSE-36: PDE bits 20:13 supply physical bits 39:32.
        PageSize::Size4M => (entry & 0xFFC0_0000) | (((entry >> 13) & 0xFF) << 32),
        _ => entry & ADDR_MASK_64 & !(size.bytes() - 1),
    }
}

/// Is `addr` canonical for a CPU with `bits`-bit linear addresses? All bits
/// from `bits - 1` up to 63 must be equal (sign extension).
fn is_canonical(addr: u64, bits: u32) -> bool {
    let shift = 64 - bits;
    // Arithmetic shift right copies the sign bit back down.
    (((addr << shift) as i64) >> shift) as u64 == addr
}

fn write_levels(out: &mut String, mode: PagingMode, levels: &[WalkLevel]) {
    let wide = mode.wide_entries();
    let _ = writeln!(out, "  {:<6} {:<18} {:>5}  {:<18}  flags", "level", "table", "index", "entry");
    for l in levels {
        let entry = if wide { format!("{:#018x}", l.entry) } else { format!("{:#010x}", l.entry) };
        let _ = writeln!(
            out,
            "  {:<6} {:<18} {:>5}  {:<18}  {}",
            l.level.name(),
            format!("{:#x}", l.table),
            l.index,
            entry,
            l.flags
        );
    }
}

/// A readable multi-line description of a successful walk, for a
/// `monitor pt VADDR` command. Example (32-bit paging):
///
/// ```text
/// linear 0x401234 -> physical 0x5234 (32-bit paging)
///   level  table              index  entry               flags
///   PDE    0x1000                 1  0x00002027          P RW US A
///   PTE    0x2000                 1  0x00005063          P RW A D
///   page: 4 KiB at 0x5000, offset 0x234; kernel-only, writable, executable
/// ```
pub fn format_walk(walk: &Walk) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "linear {:#x} -> physical {:#x} ({})", walk.linear, walk.phys, walk.mode);
    if walk.levels.is_empty() {
        let _ = writeln!(out, "  paging is off: linear address = physical address");
        return out;
    }
    write_levels(&mut out, walk.mode, &walk.levels);
    let _ = writeln!(
        out,
        "  page: {} at {:#x}, offset {:#x}; {}, {}, {}",
        walk.page_size.name(),
        walk.page_base,
        walk.page_offset(),
        if walk.user { "user" } else { "kernel-only" },
        if walk.writable { "writable" } else { "read-only" },
        if walk.executable { "executable" } else { "no-execute" }
    );
    out
}

/// A readable multi-line description of a failed walk: the entries read
/// before the failure and the reason.
pub fn format_walk_error(err: &WalkError) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "linear {:#x}: no translation ({})", err.linear, err.mode);
    if !err.levels.is_empty() {
        write_levels(&mut out, err.mode, &err.levels);
    }
    let _ = writeln!(out, "  {err}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Sparse guest memory: unwritten bytes read as zero inside `size`,
    /// anything at or beyond `size` is "outside guest RAM".
    struct SparseMem {
        bytes: HashMap<u64, u8>,
        size: u64,
    }

    impl SparseMem {
        fn new(size: u64) -> Self {
            SparseMem { bytes: HashMap::new(), size }
        }
        fn put32(&mut self, addr: u64, v: u32) {
            for (i, b) in v.to_le_bytes().iter().enumerate() {
                self.bytes.insert(addr + i as u64, *b);
            }
        }
        fn put64(&mut self, addr: u64, v: u64) {
            for (i, b) in v.to_le_bytes().iter().enumerate() {
                self.bytes.insert(addr + i as u64, *b);
            }
        }
    }

    impl PhysMem for SparseMem {
        fn read_phys(&self, gpa: u64, buf: &mut [u8]) -> bool {
            for (i, b) in buf.iter_mut().enumerate() {
                let a = gpa + i as u64;
                if a >= self.size {
                    return false;
                }
                *b = *self.bytes.get(&a).unwrap_or(&0);
            }
            true
        }
    }

    const P: u64 = 1;
    const RW: u64 = 2;
    const US: u64 = 4;
    const A: u64 = 0x20;
    const D: u64 = 0x40;
    const PS: u64 = 0x80;
    const G: u64 = 0x100;
    const NX: u64 = 1 << 63;

    const PG: u64 = cr0::PG | cr0::PE;

    #[test]
    fn mode_from_regs() {
        assert_eq!(PagingMode::from_regs(0x11, 0, 0), PagingMode::None);
        assert_eq!(PagingMode::from_regs(PG, 0, 0), PagingMode::Bits32 { pse: false });
        assert_eq!(PagingMode::from_regs(PG, cr4::PSE, 0), PagingMode::Bits32 { pse: true });
        assert_eq!(PagingMode::from_regs(PG, cr4::PAE, 0), PagingMode::Pae);
        assert_eq!(PagingMode::from_regs(PG, cr4::PAE, efer::LME | efer::LMA), PagingMode::Level4);
        assert_eq!(PagingMode::from_regs(PG, cr4::PAE | cr4::LA57, efer::LMA), PagingMode::Level5);
        // PAE bit ignored without paging.
        assert_eq!(PagingMode::from_regs(1, cr4::PAE, 0), PagingMode::None);
        assert_eq!(PagingMode::Level4.levels(), 4);
        assert_eq!(PagingMode::Pae.levels(), 3);
        assert_eq!(PagingMode::None.levels(), 0);
    }

    #[test]
    fn no_paging_is_identity() {
        let mem = vec![0u8; 16];
        let p = Paging::from_regs(0x10, 0, 0, 0);
        let w = p.walk(&mem, 0x7c00).unwrap();
        assert_eq!(w.phys, 0x7c00);
        assert!(w.levels.is_empty());
        assert_eq!(w.page_size, PageSize::Unpaged);
        // A 32-bit mode cannot produce linear addresses above 4 GiB.
        let e = p.walk(&mem, 0x1_0000_0000).unwrap_err();
        assert_eq!(e.fault, WalkFault::TooWide);
        // One chunk for a range without paging.
        let chunks = p.translate_range(&mem, 0xFFFF0, 0x20).unwrap();
        assert_eq!(chunks, vec![Chunk { linear: 0xFFFF0, phys: 0xFFFF0, len: 0x20 }]);
        assert!(format_walk(&w).contains("paging is off"));
    }

    /// 32-bit paging: PD at 0x1000, PT at 0x2000.
    fn bits32_mem() -> SparseMem {
        let mut m = SparseMem::new(0x100_0000);
        // Linear 0x0040_0000..: PDE[1] -> PT at 0x2000, user + writable.
        m.put32(0x1000 + 4, (0x2000 | P | RW | US | A) as u32);
        // PTE[1] -> page 0x5000, kernel-only? no: user, read-only, dirty, global.
        m.put32(0x2000 + 4, (0x5000 | P | US | A | D | G) as u32);
        // PTE[2] -> page 0x9000 (not contiguous with 0x5000).
        m.put32(0x2000 + 8, (0x9000 | P | RW | US) as u32);
        // PTE[3] not present.
        // PDE[2]: 4 MiB page at 0x00C0_0000 with PSE-36 high bits = 1
        // (physical 0x1_00C0_0000).
        m.put32(0x1000 + 8, (0x00C0_0000 | (1 << 13) | P | RW | PS | A | D) as u32);
        m
    }

    #[test]
    fn bits32_4k_page() {
        let m = bits32_mem();
        let p = Paging::from_regs(PG, 0x1000, 0, 0);
        let w = p.walk(&m, 0x0040_1234).unwrap();
        assert_eq!(w.phys, 0x5234);
        assert_eq!(w.page_base, 0x5000);
        assert_eq!(w.page_size, PageSize::Size4K);
        assert_eq!(w.levels.len(), 2);
        assert_eq!(w.levels[0].level, Level::Pde);
        assert_eq!(w.levels[0].index, 1);
        assert_eq!(w.levels[0].table, 0x1000);
        assert_eq!(w.levels[0].entry_addr, 0x1004);
        assert_eq!(w.levels[1].level, Level::Pte);
        assert_eq!(w.levels[1].index, 1);
        assert_eq!(w.levels[1].entry_addr, 0x2004);
        let f = w.levels[1].flags;
        assert!(f.present && f.user && f.accessed && f.dirty && f.global);
        assert!(!f.writable && !f.page_size && !f.nx);
        // Dirty/global are not meaningful in a directory entry.
        assert!(!w.levels[0].flags.dirty);
        assert!(w.user);
        assert!(!w.writable);
        assert!(w.executable);
        let text = format_walk(&w);
        assert!(text.contains("PDE"), "{text}");
        assert!(text.contains("PTE"), "{text}");
        assert!(text.contains("0x5234"), "{text}");
        assert!(text.contains("P US A D G"), "{text}");
        assert!(text.contains("read-only"), "{text}");
    }

    #[test]
    fn bits32_4m_page_needs_pse() {
        let m = bits32_mem();
        let with_pse = Paging::from_regs(PG, 0x1000, cr4::PSE, 0);
        let w = with_pse.walk(&m, 0x0080_0000 + 0x12_3456).unwrap();
        assert_eq!(w.page_size, PageSize::Size4M);
        assert_eq!(w.page_base, 0x1_00C0_0000);
        assert_eq!(w.phys, 0x1_00C0_0000 + 0x12_3456);
        assert_eq!(w.levels.len(), 1);
        assert!(w.levels[0].flags.page_size);
        assert!(w.levels[0].flags.dirty);
        assert!(!w.user);
        assert!(format_walk(&w).contains("4 MiB"));

        // Without CR4.PSE the PS bit is ignored and the PDE points to a page
        // table at bits 31:12 of the entry, 0x00C0_2000 (bit 13 is now an
        // address bit), whose entries are all zero here.
        let no_pse = Paging::from_regs(PG, 0x1000, 0, 0);
        let e = no_pse.walk(&m, 0x0080_0000).unwrap_err();
        assert_eq!(e.fault, WalkFault::NotPresent(Level::Pte));
        assert_eq!(e.levels[1].table, 0x00C0_2000);
    }

    #[test]
    fn bits32_not_present_at_each_level() {
        let m = bits32_mem();
        let p = Paging::from_regs(PG, 0x1000, cr4::PSE, 0);
        let e = p.walk(&m, 0).unwrap_err();
        assert_eq!(e.fault, WalkFault::NotPresent(Level::Pde));
        assert_eq!(e.levels.len(), 1);
        let e = p.walk(&m, 0x0040_3000).unwrap_err();
        assert_eq!(e.fault, WalkFault::NotPresent(Level::Pte));
        assert_eq!(e.levels.len(), 2);
        let s = e.to_string();
        assert!(s.contains("PTE not present"), "{s}");
        let t = format_walk_error(&e);
        assert!(t.contains("PDE") && t.contains("not mapped"), "{t}");
        assert_eq!(p.walk(&m, 0x1_0000_0000).unwrap_err().fault, WalkFault::TooWide);
    }

    #[test]
    fn translate_range_across_pages() {
        let m = bits32_mem();
        let p = Paging::from_regs(PG, 0x1000, 0, 0);
        // 0x401ff0 .. 0x402010 crosses from the page at 0x5000 to 0x9000.
        let chunks = p.translate_range(&m, 0x0040_1FF0, 0x20).unwrap();
        assert_eq!(
            chunks,
            vec![
                Chunk { linear: 0x0040_1FF0, phys: 0x5FF0, len: 0x10 },
                Chunk { linear: 0x0040_2000, phys: 0x9000, len: 0x10 },
            ]
        );
        // Exactly one page, page-aligned: one chunk.
        let c = p.translate_range(&m, 0x0040_1000, 0x1000).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].len, 0x1000);
        // Empty range.
        assert!(p.translate_range(&m, 0x1234, 0).unwrap().is_empty());
        // Running into the unmapped page 0x403000.
        let (ok, err) = p.translate_range_partial(&m, 0x0040_2FFE, 4);
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0].len, 2);
        assert_eq!(err.unwrap().fault, WalkFault::NotPresent(Level::Pte));
        assert!(p.translate_range(&m, 0x0040_2FFE, 4).is_err());
        // Wrapping past the top of the 64-bit space is an error, not a panic.
        let (ok, err) = p.translate_range_partial(&m, u64::MAX, 2);
        assert!(ok.is_empty());
        assert!(err.is_some());
    }

    /// PAE: PDPT at 0x1020 (32-byte aligned, not page aligned), PD at 0x3000,
    /// PT at 0x4000.
    fn pae_mem() -> SparseMem {
        let mut m = SparseMem::new(0x1000_0000);
        // PDPTE[3] (linear 0xC000_0000..) -> PD at 0x3000.
        m.put64(0x1020 + 3 * 8, 0x3000 | P);
        // PDE[0] -> PT at 0x4000, user, writable.
        m.put64(0x3000, 0x4000 | P | RW | US | A);
        // PTE[5] -> page 0x0876_5000, NX.
        m.put64(0x4000 + 5 * 8, 0x0876_5000 | P | RW | US | NX);
        // PDE[1] -> 2 MiB page at 0x0060_0000, kernel, global.
        m.put64(0x3000 + 8, 0x0060_0000 | P | RW | PS | G | A | D);
        m
    }

    #[test]
    fn pae_4k_and_2m() {
        let m = pae_mem();
        let efer_nx = efer::NXE;
        let p = Paging::from_regs(PG, 0x1020, cr4::PAE, efer_nx);
        assert_eq!(p.mode, PagingMode::Pae);

        let w = p.walk(&m, 0xC000_5ABC).unwrap();
        assert_eq!(w.phys, 0x0876_5ABC);
        assert_eq!(w.levels.len(), 3);
        assert_eq!(w.levels[0].level, Level::Pdpte);
        assert_eq!(w.levels[0].index, 3);
        assert_eq!(w.levels[0].table, 0x1020);
        assert_eq!(w.levels[2].index, 5);
        assert!(w.levels[2].flags.nx);
        assert!(w.user, "PAE PDPTE has no U/S bit and must not restrict");
        assert!(w.writable);
        assert!(!w.executable);
        assert!(format_walk(&w).contains("no-execute"));

        // Without EFER.NXE bit 63 is not an NX bit.
        let p_nonx = Paging::from_regs(PG, 0x1020, cr4::PAE, 0);
        let w = p_nonx.walk(&m, 0xC000_5ABC).unwrap();
        assert!(!w.levels[2].flags.nx);
        assert!(w.executable);

        // 2 MiB page.
        let w = p.walk(&m, 0xC020_0000 + 0x1_2345).unwrap();
        assert_eq!(w.page_size, PageSize::Size2M);
        assert_eq!(w.page_base, 0x0060_0000);
        assert_eq!(w.phys, 0x0061_2345);
        assert_eq!(w.levels.len(), 2);
        assert!(w.levels[1].flags.global);
        assert!(!w.user);
        assert_eq!(w.bytes_to_page_end(), 0x20_0000 - 0x1_2345);
    }

    #[test]
    fn pae_not_present_at_each_level() {
        let m = pae_mem();
        let p = Paging::from_regs(PG, 0x1020, cr4::PAE, 0);
        let e = p.walk(&m, 0x0000_1000).unwrap_err();
        assert_eq!(e.fault, WalkFault::NotPresent(Level::Pdpte));
        let e = p.walk(&m, 0xC040_0000).unwrap_err();
        assert_eq!(e.fault, WalkFault::NotPresent(Level::Pde));
        let e = p.walk(&m, 0xC000_6000).unwrap_err();
        assert_eq!(e.fault, WalkFault::NotPresent(Level::Pte));
        assert_eq!(e.levels.len(), 3);
    }

    /// 4-level: PML4 at 0x1000, PDPT at 0x2000, PD at 0x3000, PT at 0x4000.
    fn level4_mem() -> SparseMem {
        let mut m = SparseMem::new(0x2_0000_0000);
        // PML4E[511] (linear 0xFFFF_FF80_0000_0000..) -> PDPT 0x2000.
        m.put64(0x1000 + 511 * 8, 0x2000 | P | RW);
        // PML4E[0] -> PDPT 0x2000 as well, user.
        m.put64(0x1000, 0x2000 | P | RW | US);
        // PDPTE[0] -> PD 0x3000.
        m.put64(0x2000, 0x3000 | P | RW | US);
        // PDPTE[1] -> 1 GiB page at 0x1_4000_0000.
        m.put64(0x2000 + 8, 0x1_4000_0000 | P | RW | PS | A | D);
        // PDE[0] -> PT at 0x4000.
        m.put64(0x3000, 0x4000 | P | RW | US);
        // PDE[1] -> 2 MiB page at 0x0020_0000, read-only.
        m.put64(0x3000 + 8, 0x0020_0000 | P | US | PS);
        // PTE[0x10] -> page 0x7000.
        m.put64(0x4000 + 0x10 * 8, 0x7000 | P | RW | US | A);
        m
    }

    const LM: u64 = efer::LME | efer::LMA;

    #[test]
    fn level4_all_page_sizes() {
        let m = level4_mem();
        let p = Paging::from_regs(PG, 0x1000, cr4::PAE, LM | efer::NXE);
        assert_eq!(p.mode, PagingMode::Level4);

        let w = p.walk(&m, 0x10_123).unwrap();
        assert_eq!(w.page_size, PageSize::Size4K);
        assert_eq!(w.phys, 0x7123);
        let names: Vec<_> = w.levels.iter().map(|l| l.level.name()).collect();
        assert_eq!(names, ["PML4E", "PDPTE", "PDE", "PTE"]);
        assert!(w.user && w.writable && w.executable);

        let w = p.walk(&m, 0x20_0000 + 0xABCDE).unwrap();
        assert_eq!(w.page_size, PageSize::Size2M);
        assert_eq!(w.phys, 0x2A_BCDE);
        assert!(!w.writable);

        let w = p.walk(&m, 0x4000_0000 + 0x1234_5678).unwrap();
        assert_eq!(w.page_size, PageSize::Size1G);
        assert_eq!(w.page_base, 0x1_4000_0000);
        assert_eq!(w.phys, 0x1_5234_5678);
        assert_eq!(w.levels.len(), 2);
        assert!(!w.user, "PDPTE lacks US");

        // Higher half: PML4E[511], same PDPT, PDPTE[1] 1 GiB page.
        let w = p.walk(&m, 0xFFFF_FF80_4000_0010).unwrap();
        assert_eq!(w.levels[0].index, 511);
        assert_eq!(w.phys, 0x1_4000_0010);

        let text = format_walk(&w);
        assert!(text.contains("PML4E") && text.contains("1 GiB"), "{text}");
        // The PDPTE: 1 GiB frame 0x1_4000_0000 with P RW A D PS (0xE3).
        assert!(text.contains("0x00000001400000e3"), "{text}");
    }

    #[test]
    fn level4_errors() {
        let m = level4_mem();
        let p = Paging::from_regs(PG, 0x1000, cr4::PAE, LM);
        // Non-canonical (bit 47 set, upper bits clear).
        let e = p.walk(&m, 0x0000_8000_0000_0000).unwrap_err();
        assert_eq!(e.fault, WalkFault::NonCanonical);
        assert!(e.levels.is_empty());
        // Not present at each level.
        assert_eq!(p.walk(&m, 0x0000_0080_0000_0000).unwrap_err().fault, WalkFault::NotPresent(Level::Pml4e));
        assert_eq!(p.walk(&m, 0x8000_0000).unwrap_err().fault, WalkFault::NotPresent(Level::Pdpte));
        assert_eq!(p.walk(&m, 0x40_0000).unwrap_err().fault, WalkFault::NotPresent(Level::Pde));
        assert_eq!(p.walk(&m, 0x11_000).unwrap_err().fault, WalkFault::NotPresent(Level::Pte));
        // A table outside guest memory.
        let mut m2 = level4_mem();
        m2.put64(0x1000 + 2 * 8, 0x5_0000_0000 | P);
        let e = p.walk(&m2, 0x0000_0100_0000_0000).unwrap_err();
        assert_eq!(e.fault, WalkFault::Unreadable { level: Level::Pdpte, addr: 0x5_0000_0000 });
        assert!(e.to_string().contains("outside guest memory"));
        // PS in a PML4E is reserved.
        m2.put64(0x1000 + 3 * 8, 0x8000 | P | PS);
        let e = p.walk(&m2, 0x0000_0180_0000_0000).unwrap_err();
        assert_eq!(e.fault, WalkFault::Reserved { level: Level::Pml4e, bit: 7 });
        // CR3 itself outside memory.
        let bad = Paging::from_regs(PG, 0x4_0000_0000, cr4::PAE, LM);
        assert!(matches!(bad.walk(&m, 0).unwrap_err().fault, WalkFault::Unreadable { level: Level::Pml4e, .. }));
    }

    #[test]
    fn level5_walk() {
        let mut m = level4_mem();
        // PML5 at 0x8000, entry 0 -> the 4-level PML4 at 0x1000.
        m.put64(0x8000, 0x1000 | P | RW | US);
        let p = Paging::from_regs(PG, 0x8000, cr4::PAE | cr4::LA57, LM);
        assert_eq!(p.mode, PagingMode::Level5);
        let w = p.walk(&m, 0x10_123).unwrap();
        assert_eq!(w.phys, 0x7123);
        assert_eq!(w.levels.len(), 5);
        assert_eq!(w.levels[0].level, Level::Pml5e);
        // Bit 56 set but bits 63:57 clear: not canonical for 57 bits.
        let e = p.walk(&m, 0x0100_0000_0000_0000).unwrap_err();
        assert_eq!(e.fault, WalkFault::NonCanonical);
        // Canonical for 57 bits (but would not be for 48 bits).
        let e = p.walk(&m, 0x0001_0000_0000_0000).unwrap_err();
        assert_eq!(e.fault, WalkFault::NotPresent(Level::Pml5e));
        assert_eq!(e.levels[0].index, 1);
    }

    #[test]
    fn slice_and_closure_memories() {
        let mut v = vec![0u8; 0x3000];
        v[0x1000..0x1004].copy_from_slice(&(0x2000u32 | 3).to_le_bytes());
        v[0x2000..0x2004].copy_from_slice(&(0x0ABC_D000u32 | 1).to_le_bytes());
        let p = Paging::from_regs(PG, 0x1000, 0, 0);
        assert_eq!(p.walk(&v, 0x321).unwrap().phys, 0x0ABC_D321);
        assert_eq!(p.walk(v.as_slice(), 0x321).unwrap().phys, 0x0ABC_D321);
        let f = FnMem(|gpa: u64, buf: &mut [u8]| v.as_slice().read_phys(gpa, buf));
        let p = Paging::from_regs(PG, 0x1000, 0, 0);
        assert_eq!(p.walk(&f, 0x321).unwrap().phys, 0x0ABC_D321);
        assert_eq!(p.translate_range(&f, 0xFFE, 2).unwrap()[0].phys, 0x0ABC_DFFE);
        // Reads past the end and at absurd addresses fail cleanly.
        assert!(v.read_u32(0x2FFE).is_none());
        assert!(v.read_u64(u64::MAX).is_none());
        assert!(v.read_u32(u64::MAX - 1).is_none());
    }

    #[test]
    fn flags_display() {
        let f = EntryFlags::decode(P | RW | US | A | D | G | NX, true, false, true);
        assert_eq!(f.to_string(), "P RW US A D G NX");
        assert_eq!(EntryFlags::default().to_string(), "-");
        // A PTE's bit 7 is PAT, not PS.
        let f = EntryFlags::decode(P | 0x80, true, false, false);
        assert!(f.pat && !f.page_size);
        // A large page's PAT is bit 12.
        let f = EntryFlags::decode(P | PS | 0x1000, true, true, false);
        assert!(f.pat && f.page_size);
    }

    #[test]
    fn random_entries_never_panic() {
        // Fill a small memory with pseudo-random bytes and walk random
        // addresses in every mode: any result is fine, a panic is not.
        let mut seed: u64 = 0x1234_5678_9ABC_DEF0;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mem: Vec<u8> = (0..0x4000).map(|_| (next() & 0xFF) as u8).collect();
        for _ in 0..2000 {
            let cr0 = if next() & 1 == 0 { PG } else { 1 };
            let cr4 = next() & (cr4::PAE | cr4::PSE | cr4::LA57);
            let efer = next() & (LM | efer::NXE);
            let cr3 = next() & 0x3FFF;
            let lin = next();
            let p = Paging::from_regs(cr0, cr3, cr4, efer);
            let _ = p.walk(&mem, lin);
            let _ = p.translate_range(&mem, lin, (next() & 0x3FFF) as usize);
        }
    }
}
