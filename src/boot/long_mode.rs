//! 64-bit flat guests (`--long-mode FILE`), as the C project runs them: the file is copied to
//! GPA 0 and entered at RIP 0 already in 64-bit mode, so its first instruction can be
//! `mov $0x500, %dx` with no mode switch of its own.
//!
//! Long mode cannot run without paging, so minikvm builds page tables for the guest. They go at
//! the **top of RAM**, out of the way of a guest that starts at 0 and grows upwards:
//!
//! ```text
//! top - (3 + n) pages   GDT: null, 0x08 64-bit code (L = 1), 0x10 flat data
//!                       PML4: entry 0 -> the PDPT
//!                       PDPT: entry g -> PD g
//!                       n PDs (one per GiB of RAM): 2 MiB pages identity-mapping all of RAM
//! top                   end of RAM
//! ```
//!
//! With the default 2 MiB of RAM that is the last 16 KiB (0x1fc000..0x200000). RSP starts at the
//! first of those pages, so the stack grows down below the tables. Every page is present, writable
//! and executable, for ring 0; there is no IDT (any exception is a triple fault, which minikvm
//! reports). Like a 16-bit flat guest, a 64-bit one runs without interrupt controllers: `hlt` or
//! the EXIT hypercall ends it.

use super::{flat_segment, BootPlan, CpuStart, MachineKind};
use crate::x86::control_bits::{cr0, cr4, efer};
use kvm_bindings::kvm_regs;

/// RAM when `--mem` is not given: one 2 MiB page's worth.
pub const DEFAULT_MEM: u64 = 2 << 20;
const PAGE: u64 = 0x1000;
const LARGE_PAGE: u64 = 2 << 20;
const GIB: u64 = 1 << 30;

/// Page-table entry bits.
const PRESENT: u64 = 1;
const WRITABLE: u64 = 1 << 1;
/// In a page directory: this entry maps a 2 MiB page, not a page table.
const PAGE_SIZE_2M: u64 = 1 << 7;

/// Selectors of minikvm's GDT.
pub const CODE_SELECTOR: u16 = 0x08;
pub const DATA_SELECTOR: u16 = 0x10;

/// Why a 64-bit guest cannot start.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LongModeError {
    /// The file and minikvm's tables do not both fit.
    #[error(
        "{size} bytes do not fit below minikvm's page tables at {tables:#x} ({mib} MiB of RAM; use --mem for more)"
    )]
    TooBig { size: usize, tables: u64, mib: u64 },
}

/// Where the tables go in `mem_bytes` of RAM: (GDT, PML4, PDPT, first PD, number of PDs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableLayout {
    pub gdt: u64,
    pub pml4: u64,
    pub pdpt: u64,
    pub pd: u64,
    pub pd_count: u64,
}

impl TableLayout {
    pub fn for_ram(mem_bytes: u64) -> TableLayout {
        let pd_count = mem_bytes.div_ceil(GIB).max(1);
        TableLayout::at((mem_bytes & !(PAGE - 1)) - (3 + pd_count) * PAGE, mem_bytes)
    }

    /// The same tables from the page at `gdt` on (Linux guests keep the top of RAM for the
    /// initrd: see [`super::linux`]); they take `3 + pd_count` pages.
    pub fn at(gdt: u64, mem_bytes: u64) -> TableLayout {
        let pd_count = mem_bytes.div_ceil(GIB).max(1);
        TableLayout { gdt, pml4: gdt + PAGE, pdpt: gdt + 2 * PAGE, pd: gdt + 3 * PAGE, pd_count }
    }

    /// The bytes of every table, each with its guest-physical address (the GDT first).
    pub fn images(&self, mem_bytes: u64) -> Vec<(u64, Vec<u8>)> {
        let entries = |values: &mut dyn Iterator<Item = u64>| -> Vec<u8> {
            let mut page = vec![0u8; PAGE as usize];
            for (i, v) in values.enumerate().take(512) {
                page[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
            }
            page
        };
        // Flat descriptors: 0x08 is present ring-0 code with L = 1 (64-bit), 0x10 writable data.
        let gdt = entries(&mut [0, 0x00af_9a00_0000_ffff, 0x00cf_9200_0000_ffff].into_iter());
        let pml4 = entries(&mut std::iter::once(self.pdpt | PRESENT | WRITABLE));
        let pdpt = entries(&mut (0..self.pd_count).map(|g| (self.pd + g * PAGE) | PRESENT | WRITABLE));
        let mut images = vec![(self.gdt, gdt), (self.pml4, pml4), (self.pdpt, pdpt)];
        // 2 MiB pages up to the end of RAM (the last one may reach past it: there is no RAM there).
        let pages = mem_bytes.div_ceil(LARGE_PAGE);
        for g in 0..self.pd_count {
            let first = g * 512;
            let last = pages.min(first + 512);
            let mut it = (first..last).map(|p| (p * LARGE_PAGE) | PRESENT | WRITABLE | PAGE_SIZE_2M);
            images.push((self.pd + g * PAGE, entries(&mut it)));
        }
        images
    }
}

/// A plan for one 64-bit flat binary in `mem_bytes` of RAM.
pub fn plan(binary: &[u8], mem_bytes: u64) -> Result<BootPlan, LongModeError> {
    let tables = TableLayout::for_ram(mem_bytes);
    if binary.len() as u64 > tables.gdt {
        return Err(LongModeError::TooBig { size: binary.len(), tables: tables.gdt, mib: mem_bytes >> 20 });
    }
    let regs = kvm_regs { rip: 0, rsp: tables.gdt, rflags: 0x2, ..Default::default() };
    let cpu = cpu_start(&tables, (CODE_SELECTOR, DATA_SELECTOR), 3, regs);
    let mut images = tables.images(mem_bytes);
    images.push((0, binary.to_vec()));
    Ok(BootPlan {
        kind: MachineKind::Flat,
        memory: vec![(0, mem_bytes as usize)],
        images,
        cpus: vec![cpu],
        uses_paging: false, // long-mode paging, which every KVM that runs long mode runs
    })
}

/// A vCPU in 64-bit mode on `tables`: CS and the data segments are the given (code, data)
/// selectors of a GDT of `gdt_entries` descriptors at `tables.gdt`; no IDT (an exception is a
/// triple fault, reported as such); `regs` as given.
pub fn cpu_start(tables: &TableLayout, (code_sel, data_sel): (u16, u16), gdt_entries: u16, regs: kvm_regs) -> CpuStart {
    let mut code = flat_segment(code_sel, true, 0);
    code.l = 1; // 64-bit code
    code.db = 0; // must be 0 when L = 1
    CpuStart {
        regs,
        code,
        data: flat_segment(data_sel, false, 0),
        cr0: cr0::PG | cr0::ET | cr0::PE,
        cr3: tables.pml4,
        cr4: cr4::PAE,
        efer: efer::LME | efer::LMA,
        gdt: Some((tables.gdt, gdt_entries * 8 - 1)),
        idt: Some((0, 0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(images: &[(u64, Vec<u8>)], table: u64, index: usize) -> u64 {
        let (_, bytes) = images.iter().find(|(gpa, _)| *gpa == table).expect("table present");
        u64::from_le_bytes(bytes[index * 8..index * 8 + 8].try_into().unwrap())
    }

    #[test]
    fn tables_sit_at_the_top_of_the_default_ram() {
        let t = TableLayout::for_ram(DEFAULT_MEM);
        assert_eq!((t.gdt, t.pml4, t.pdpt, t.pd, t.pd_count), (0x1fc000, 0x1fd000, 0x1fe000, 0x1ff000, 1));
        let p = plan(&[0xf4], DEFAULT_MEM).unwrap();
        assert_eq!(entry(&p.images, t.pml4, 0), 0x1fe003);
        assert_eq!(entry(&p.images, t.pdpt, 0), 0x1ff003);
        assert_eq!(entry(&p.images, t.pd, 0), 0x83, "one 2 MiB page at 0");
        assert_eq!(entry(&p.images, t.pd, 1), 0, "nothing past the end of RAM");
        assert_eq!(p.images.last(), Some(&(0, vec![0xf4])));
    }

    #[test]
    fn the_cpu_starts_in_64_bit_mode_at_rip_0() {
        let p = plan(&[0xf4], DEFAULT_MEM).unwrap();
        let c = &p.cpus[0];
        assert_eq!((c.regs.rip, c.regs.rsp), (0, 0x1fc000));
        assert_eq!((c.code.l, c.code.db, c.code.selector), (1, 0, 0x08));
        assert_eq!(c.cr0 & 0x8000_0001, 0x8000_0001, "PG and PE");
        assert_eq!((c.cr3, c.cr4, c.efer), (0x1fd000, 0x20, 0x500));
        assert_eq!(c.gdt, Some((0x1fc000, 23)));
        assert_eq!(p.kind, MachineKind::Flat);
    }

    #[test]
    fn large_ram_gets_one_page_directory_per_gib() {
        let mem = 3 << 30;
        let t = TableLayout::for_ram(mem);
        assert_eq!(t.pd_count, 3);
        let p = plan(&[0xf4], mem).unwrap();
        assert_eq!(entry(&p.images, t.pdpt, 2), (t.pd + 2 * PAGE) | 3);
        let last_pd = t.pd + 2 * PAGE;
        assert_eq!(entry(&p.images, last_pd, 511), (mem - LARGE_PAGE) | 0x83, "the last 2 MiB of RAM");
        // An odd size: 3 MiB needs a second, partial 2 MiB page.
        let odd = TableLayout::for_ram(3 << 20);
        assert_eq!(entry(&plan(&[0xf4], 3 << 20).unwrap().images, odd.pd, 1), (2 << 20) | 0x83);
    }

    #[test]
    fn a_file_that_reaches_the_tables_is_refused() {
        assert!(plan(&vec![0x90; 0x1fc000], DEFAULT_MEM).is_ok());
        let err = plan(&vec![0x90; 0x1fc001], DEFAULT_MEM).unwrap_err();
        assert_eq!(err, LongModeError::TooBig { size: 0x1fc001, tables: 0x1fc000, mib: 2 });
        assert!(err.to_string().contains("use --mem"));
    }
}
