//! Multiboot (version 1) ELF32 kernels, such as the 1K OS.
//!
//! minikvm does what a Multiboot boot loader does: it checks the Multiboot header, copies each
//! loadable segment to its *physical* address, writes a Multiboot information block, and enters
//! the kernel in 32-bit protected mode with flat segments, paging off, EAX = 0x2BADB002 and
//! EBX = the address of the information block. The kernel builds everything else itself.

use super::{flat_segment, BootPlan, CpuStart, MachineKind};
use elf::abi::{EM_386, PT_LOAD};
use elf::endian::AnyEndian;
use elf::file::Class;
use elf::ElfBytes;
use kvm_bindings::kvm_regs;

pub const HEADER_MAGIC: u32 = 0x1bad_b002;
pub const BOOT_MAGIC: u32 = 0x2bad_b002;
/// Where the information block goes (below the kernel, above the real-mode IVT and BIOS area).
pub const INFO_ADDR: u64 = 0x9000;
const INFO_PAGE: std::ops::Range<u64> = INFO_ADDR..INFO_ADDR + 0x1000;

/// True if the bytes start like an ELF file (used to tell kernels from flat binaries).
pub fn looks_like_elf(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x7fELF")
}

/// Builds a boot plan for `kernel` in `mem_bytes` of RAM. Errors are one readable line.
pub fn plan(kernel: &[u8], mem_bytes: u64) -> Result<BootPlan, String> {
    find_header(kernel)?;
    let file = ElfBytes::<AnyEndian>::minimal_parse(kernel).map_err(|e| format!("not a valid ELF file: {e}"))?;
    if file.ehdr.class != Class::ELF32 || file.ehdr.e_machine != EM_386 {
        return Err("not a 32-bit x86 ELF (Multiboot kernels are ELF32, EM_386)".into());
    }
    let segments = file.segments().ok_or("the ELF file has no program headers")?;
    let mut images = Vec::new();
    let mut entry = None;
    for ph in segments.iter().filter(|p| p.p_type == PT_LOAD && p.p_memsz > 0) {
        let end = ph.p_paddr.checked_add(ph.p_memsz).ok_or("a segment's address overflows")?;
        if end > mem_bytes {
            return Err(format!(
                "segment at physical {:#x}..{end:#x} does not fit in {} MiB of RAM (use --mem)",
                ph.p_paddr,
                mem_bytes >> 20
            ));
        }
        if ph.p_paddr < INFO_PAGE.end && end > INFO_PAGE.start {
            return Err(format!(
                "segment at physical {:#x} overlaps the Multiboot info block at {INFO_ADDR:#x}",
                ph.p_paddr
            ));
        }
        if ph.p_filesz > ph.p_memsz {
            return Err("a segment's file size exceeds its memory size".into());
        }
        let start = usize::try_from(ph.p_offset).map_err(|_| "segment offset too large")?;
        let len = usize::try_from(ph.p_filesz).map_err(|_| "segment too large")?;
        let data = start
            .checked_add(len)
            .and_then(|e| kernel.get(start..e))
            .ok_or("a segment lies beyond the end of the file (truncated ELF?)")?;
        let mut bytes = data.to_vec();
        bytes.resize(ph.p_memsz as usize, 0); // .bss is zeroed
        images.push((ph.p_paddr, bytes));
        // The entry point is physical; accept a virtual one inside a segment and translate it.
        let e = file.ehdr.e_entry;
        if (ph.p_paddr..end).contains(&e) {
            entry = Some(e);
        } else if (ph.p_vaddr..ph.p_vaddr + ph.p_memsz).contains(&e) {
            entry = Some(e - ph.p_vaddr + ph.p_paddr);
        }
    }
    if images.is_empty() {
        return Err("the ELF file has no loadable segments".into());
    }
    let entry = entry.ok_or("the entry point is not inside any loadable segment")?;
    images.push((INFO_ADDR, info_block(mem_bytes)));
    let cpu = CpuStart {
        regs: kvm_regs { rip: entry, rax: BOOT_MAGIC as u64, rbx: INFO_ADDR, rflags: 0x2, ..Default::default() },
        code: flat_segment(0x08, true, 0),
        data: flat_segment(0x10, false, 0),
        cr0: 0x11, // PE and ET: protected mode, paging off
        cr3: 0,
        cr4: 0,
        efer: 0,
        gdt: None,
        idt: None,
    };
    Ok(BootPlan {
        kind: MachineKind::Kernel,
        memory: vec![(0, mem_bytes as usize)],
        images,
        cpus: vec![cpu],
        uses_paging: true,
    })
}

/// Finds the Multiboot header: 4-byte aligned within the first 8 KiB, magic + flags + checksum = 0.
fn find_header(kernel: &[u8]) -> Result<usize, String> {
    let window = &kernel[..kernel.len().min(8192)];
    for off in (0..window.len().saturating_sub(11)).step_by(4) {
        let word = |i: usize| u32::from_le_bytes([window[i], window[i + 1], window[i + 2], window[i + 3]]);
        if word(off) == HEADER_MAGIC {
            let sum = word(off).wrapping_add(word(off + 4)).wrapping_add(word(off + 8));
            if sum == 0 {
                return Ok(off);
            }
            return Err(format!("Multiboot header at offset {off:#x} has a bad checksum"));
        }
    }
    Err("no Multiboot header in the first 8 KiB: not a Multiboot kernel".into())
}

/// The Multiboot information block: memory sizes, a memory map and the loader's name.
fn info_block(mem_bytes: u64) -> Vec<u8> {
    let mut b = vec![0u8; 0x400];
    let put32 = |b: &mut Vec<u8>, off: usize, v: u32| b[off..off + 4].copy_from_slice(&v.to_le_bytes());
    let mmap_off = 0x100usize;
    let name_off = 0x200usize;
    // flags: mem_* (bit 0), mmap_* (bit 6), boot_loader_name (bit 9)
    put32(&mut b, 0, (1 << 0) | (1 << 6) | (1 << 9));
    put32(&mut b, 4, 639);
    put32(&mut b, 8, ((mem_bytes.saturating_sub(0x100000)) >> 10) as u32);
    let regions = [(0u64, 0x9fc00u64), (0x100000, mem_bytes.saturating_sub(0x100000))];
    for (i, (base, len)) in regions.iter().enumerate() {
        let e = mmap_off + i * 24;
        put32(&mut b, e, 20); // size of the rest of the entry
        b[e + 4..e + 12].copy_from_slice(&base.to_le_bytes());
        b[e + 12..e + 20].copy_from_slice(&len.to_le_bytes());
        put32(&mut b, e + 20, 1); // available RAM
    }
    put32(&mut b, 44, (regions.len() * 24) as u32);
    put32(&mut b, 48, (INFO_ADDR as usize + mmap_off) as u32);
    b[name_off..name_off + 8].copy_from_slice(b"minikvm\0");
    put32(&mut b, 64, (INFO_ADDR as usize + name_off) as u32);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF32 with one PT_LOAD segment at physical 0x100000 holding a Multiboot header.
    fn tiny_kernel(paddr: u32, entry: u32) -> Vec<u8> {
        let mut f = vec![0u8; 0x100];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 1; // ELF32
        f[5] = 1; // little endian
        f[6] = 1;
        let w16 = |f: &mut Vec<u8>, o: usize, v: u16| f[o..o + 2].copy_from_slice(&v.to_le_bytes());
        let w32 = |f: &mut Vec<u8>, o: usize, v: u32| f[o..o + 4].copy_from_slice(&v.to_le_bytes());
        w16(&mut f, 16, 2); // ET_EXEC
        w16(&mut f, 18, 3); // EM_386
        w32(&mut f, 20, 1);
        w32(&mut f, 24, entry);
        w32(&mut f, 28, 52); // phoff
        w16(&mut f, 40, 52); // ehsize
        w16(&mut f, 42, 32); // phentsize
        w16(&mut f, 44, 1); // phnum
        w16(&mut f, 46, 40);
        // program header at 52
        w32(&mut f, 52, 1); // PT_LOAD
        w32(&mut f, 56, 0x80); // offset
        w32(&mut f, 60, paddr);
        w32(&mut f, 64, paddr);
        w32(&mut f, 68, 0x20); // filesz
        w32(&mut f, 72, 0x40); // memsz
        w32(&mut f, 76, 5);
        w32(&mut f, 0x80, HEADER_MAGIC);
        w32(&mut f, 0x84, 0);
        w32(&mut f, 0x88, 0u32.wrapping_sub(HEADER_MAGIC));
        f[0x8c] = 0xf4; // hlt
        f
    }

    #[test]
    fn loads_segments_and_enters_as_multiboot_says() {
        let p = plan(&tiny_kernel(0x100000, 0x10000c), 32 << 20).unwrap();
        assert_eq!(p.images[0].0, 0x100000);
        assert_eq!(p.images[0].1.len(), 0x40, "bss is zero-filled up to memsz");
        assert_eq!(p.images[0].1[0xc], 0xf4);
        let c = &p.cpus[0];
        assert_eq!(c.regs.rip, 0x10000c);
        assert_eq!(c.regs.rax, 0x2bad_b002);
        assert_eq!(c.regs.rbx, INFO_ADDR);
        assert_eq!(c.cr0 & 0x8000_0001, 1, "protected mode, paging off");
        assert_eq!(c.code.db, 1);
        let info = &p.images[1].1;
        assert_eq!(u32::from_le_bytes(info[8..12].try_into().unwrap()), (31 << 20) >> 10);
    }

    #[test]
    fn rejects_bad_kernels_with_a_reason() {
        assert!(plan(b"\x7fELF garbage", 32 << 20).unwrap_err().contains("Multiboot"));
        let too_high = tiny_kernel(0x3000000, 0x3000000);
        assert!(plan(&too_high, 32 << 20).unwrap_err().contains("--mem"));
        let mut bad_sum = tiny_kernel(0x100000, 0x100000);
        bad_sum[0x88] ^= 1;
        assert!(plan(&bad_sum, 32 << 20).unwrap_err().contains("checksum"));
        let mut truncated = tiny_kernel(0x100000, 0x100000);
        truncated[56] = 0xf0; // segment offset beyond the file
        assert!(plan(&truncated, 32 << 20).is_err());
        assert!(plan(&tiny_kernel(0x100000, 0x500000), 32 << 20).unwrap_err().contains("entry"));
    }
}
