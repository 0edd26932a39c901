//! Seed compatibility mode (`--paging FILE`): a flat 32-bit binary entered with paging already on,
//! exactly as the C project set it up, so kernels written for it boot unchanged.
//!
//! GDT at 0x500 (null; 0x08/0x10 ring-0 code/data; 0x18/0x20 ring-3 code/data, all flat 4 GiB),
//! a zeroed 256-entry IDT at 0x528, a page directory at 0x100000 mapping VA 0–4 MiB and
//! VA 0x80000000–0x803FFFFF both to PA 0–4 MiB with 4 KiB pages, CR0 = 0x80000011, CR3 = 0x100000.

use super::{flat_segment, BootPlan, CpuStart, MachineKind};
use kvm_bindings::kvm_regs;

pub const GDT_ADDR: u64 = 0x500;
pub const IDT_ADDR: u64 = 0x528;
pub const PAGE_DIR: u64 = 0x100000;
const PAGE_TABLE: u64 = 0x101000;
pub const DEFAULT_LOAD: u64 = 0x1000;
pub const DEFAULT_ENTRY: u64 = 0x8000_1000;
pub const DEFAULT_MEM: u64 = 4 << 20;

/// Why a `--paging` binary cannot start where the command line puts it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeedError {
    #[error("--paging needs at least 4 MiB of RAM")]
    TooLittleRam,
    #[error("load address overflows")]
    LoadOverflows,
    #[error(
        "the binary at {load:#x}..{end:#x} would overlap the GDT/IDT (0x500..0xd28), the page \
         tables (0x100000..0x102000) or the end of RAM"
    )]
    Overlap { load: u64, end: u64 },
}

/// The seed's machine with `binary` at `load`, entered at `entry` with paging on.
pub fn plan(binary: &[u8], load: u64, entry: u64, mem_bytes: u64) -> Result<BootPlan, SeedError> {
    if mem_bytes < DEFAULT_MEM {
        return Err(SeedError::TooLittleRam);
    }
    let end = load.checked_add(binary.len() as u64).ok_or(SeedError::LoadOverflows)?;
    let tables = PAGE_DIR..PAGE_TABLE + 0x1000;
    let low = GDT_ADDR..IDT_ADDR + 256 * 8;
    if load < low.end || (load < tables.end && end > tables.start) || end > mem_bytes {
        return Err(SeedError::Overlap { load, end });
    }
    let mut gdt = Vec::new();
    for d in [0u64, 0x00cf_9a00_0000_ffff, 0x00cf_9200_0000_ffff, 0x00cf_fa00_0000_ffff, 0x00cf_f200_0000_ffff] {
        gdt.extend_from_slice(&d.to_le_bytes());
    }
    let mut dir = vec![0u8; 0x1000];
    let pde = (PAGE_TABLE as u32 | 0x7).to_le_bytes();
    dir[0..4].copy_from_slice(&pde); // VA 0..4 MiB
    dir[512 * 4..512 * 4 + 4].copy_from_slice(&pde); // VA 0x80000000..
    let mut table = vec![0u8; 0x1000];
    for i in 0..1024u32 {
        table[i as usize * 4..i as usize * 4 + 4].copy_from_slice(&((i << 12) | 0x7).to_le_bytes());
    }
    let cpu = CpuStart {
        regs: kvm_regs { rip: entry, rflags: 0x2, ..Default::default() },
        code: flat_segment(0x08, true, 0),
        data: flat_segment(0x10, false, 0),
        cr0: 0x8000_0011,
        cr3: PAGE_DIR,
        cr4: 0,
        efer: 0,
        gdt: Some((GDT_ADDR, (gdt.len() - 1) as u16)),
        idt: Some((IDT_ADDR, 256 * 8 - 1)),
    };
    Ok(BootPlan {
        kind: MachineKind::Kernel,
        memory: vec![(0, mem_bytes as usize)],
        images: vec![
            (GDT_ADDR, gdt),
            (IDT_ADDR, vec![0; 256 * 8]),
            (PAGE_DIR, dir),
            (PAGE_TABLE, table),
            (load, binary.to_vec()),
        ],
        cpus: vec![cpu],
        uses_paging: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_the_seed_abi() {
        let p = plan(&[0xf4], DEFAULT_LOAD, DEFAULT_ENTRY, DEFAULT_MEM).unwrap();
        let c = &p.cpus[0];
        assert_eq!((c.cr0, c.cr3, c.cr4), (0x8000_0011, 0x100000, 0));
        assert_eq!(c.regs.rip, 0x8000_1000);
        assert_eq!(c.gdt, Some((0x500, 39)));
        assert_eq!(c.idt, Some((0x528, 0x7ff)));
        let dir = &p.images[2].1;
        assert_eq!(&dir[0..4], &dir[2048..2052], "both halves map the same table");
        let table = &p.images[3].1;
        assert_eq!(u32::from_le_bytes(table[4..8].try_into().unwrap()) & !0xfff, 0x1000);
        assert_eq!(p.images[4], (0x1000, vec![0xf4]));
    }

    #[test]
    fn refuses_overlaps() {
        assert!(plan(&vec![0; 0x100000], DEFAULT_LOAD, DEFAULT_ENTRY, DEFAULT_MEM).is_err());
        assert!(plan(&[0xf4], 0x600, DEFAULT_ENTRY, DEFAULT_MEM).is_err());
    }
}
