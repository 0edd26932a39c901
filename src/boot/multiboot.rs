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
/// Where the information block goes when no segment of the kernel lies there (below a kernel
/// at 1 MiB, above the real-mode IVT and BIOS data area).
pub const INFO_ADDR: u64 = 0x9000;
/// The page the information block (with its memory map and loader name) takes.
const INFO_SIZE: u64 = 0x1000;
/// Conventional memory ends here; the memory map says 0x9FC00..1 MiB is not RAM.
const LOW_RAM_END: u64 = 0x9f000;
const HIGH_RAM: u64 = 0x100000;

/// True if the bytes start like an ELF file (used to tell kernels from flat binaries).
pub fn looks_like_elf(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x7fELF")
}

/// Multiboot header flags (bits 0-15 are requirements: a loader that cannot meet one must refuse).
const FLAG_ALIGN_MODULES: u32 = 1 << 0; // met trivially: minikvm loads no modules
const FLAG_MEMORY_INFO: u32 = 1 << 1; // met: the information block has mem_* and a memory map
const FLAG_VIDEO_MODE: u32 = 1 << 2; // not met: minikvm has no display
const REQUIRED_BITS: u32 = 0xffff;

/// Why a kernel file cannot boot. Each is one line for the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KernelError {
    #[error("no Multiboot header in the first 8 KiB: not a Multiboot kernel")]
    NoHeader,
    #[error("Multiboot header at offset {0:#x} has a bad checksum")]
    BadChecksum(usize),
    #[error("the Multiboot header requires a video mode (flag bit 2), and minikvm has no display")]
    VideoMode,
    #[error("the Multiboot header requires features minikvm does not know (flag bits {0:#06x})")]
    UnknownRequirement(u32),
    #[error("not a valid ELF file: {0}")]
    Elf(String),
    #[error("a big-endian ELF: x86 Multiboot kernels are little-endian")]
    BigEndian,
    #[error("not a 32-bit x86 ELF (Multiboot kernels are ELF32, EM_386)")]
    NotI386,
    #[error("the ELF file has no program headers")]
    NoProgramHeaders,
    #[error("the ELF file has no loadable segments")]
    NoSegments,
    #[error("a segment's file size exceeds its memory size")]
    FileSizeExceedsMemory,
    #[error("a segment lies beyond the end of the file (truncated ELF?)")]
    BeyondFile,
    #[error("segment at physical {start:#x}..{end:#x} does not fit in {mib} MiB of RAM (use --mem)")]
    BeyondRam { start: u64, end: u64, mib: u64 },
    #[error("segments at physical {0:#x}..{1:#x} and {2:#x}..{3:#x} overlap")]
    Overlap(u64, u64, u64, u64),
    #[error("no free page in RAM for the Multiboot info block: the kernel's segments fill it (use --mem)")]
    NoRoomForInfo,
    #[error("the entry point {0:#x} is not inside any loadable segment")]
    EntryOutside(u64),
}

/// A loadable segment: where it goes, what the file gives it, and how long it is in memory.
struct Segment<'a> {
    start: u64,
    end: u64,
    data: &'a [u8],
}

/// Builds a boot plan for `kernel` in `mem_bytes` of RAM.
///
/// Only a segment's file bytes are copied: the rest of it, its .bss, is already zero because guest
/// RAM is a fresh anonymous mapping. So a kernel's load costs what its file holds, however big
/// its .bss — which is also why segments may not overlap: each lands on untouched, zeroed RAM.
pub fn plan(kernel: &[u8], mem_bytes: u64) -> Result<BootPlan, KernelError> {
    check_requirements(kernel)?;
    let file = ElfBytes::<AnyEndian>::minimal_parse(kernel).map_err(|e| KernelError::Elf(e.to_string()))?;
    if file.ehdr.endianness == AnyEndian::Big {
        return Err(KernelError::BigEndian);
    }
    if file.ehdr.class != Class::ELF32 || file.ehdr.e_machine != EM_386 {
        return Err(KernelError::NotI386);
    }
    let table = file.segments().ok_or(KernelError::NoProgramHeaders)?;
    let mut segments = Vec::new();
    let mut entry = None;
    for ph in table.iter().filter(|p| p.p_type == PT_LOAD && p.p_memsz > 0) {
        let segment = load_segment(kernel, &ph, mem_bytes)?;
        // The entry point is physical; accept a virtual one inside a segment and translate it.
        let e = file.ehdr.e_entry;
        if (segment.start..segment.end).contains(&e) {
            entry = Some(e);
        } else if (ph.p_vaddr..ph.p_vaddr.saturating_add(ph.p_memsz)).contains(&e) {
            entry = Some(e - ph.p_vaddr + ph.p_paddr);
        }
        segments.push(segment);
    }
    if segments.is_empty() {
        return Err(KernelError::NoSegments);
    }
    refuse_overlaps(&mut segments)?;
    let entry = entry.ok_or(KernelError::EntryOutside(file.ehdr.e_entry))?;
    let info = info_place(&segments, mem_bytes).ok_or(KernelError::NoRoomForInfo)?;
    let mut images: Vec<(u64, Vec<u8>)> = segments.iter().map(|s| (s.start, s.data.to_vec())).collect();
    images.push((info, info_block(info, mem_bytes)));
    let cpu = CpuStart {
        regs: kvm_regs { rip: entry, rax: BOOT_MAGIC as u64, rbx: info, rflags: 0x2, ..Default::default() },
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

/// Checks one PT_LOAD program header against RAM and the file.
fn load_segment<'a>(
    kernel: &'a [u8],
    ph: &elf::segment::ProgramHeader,
    mem_bytes: u64,
) -> Result<Segment<'a>, KernelError> {
    let start = ph.p_paddr;
    let end = start.checked_add(ph.p_memsz).filter(|&e| e <= mem_bytes);
    let end =
        end.ok_or(KernelError::BeyondRam { start, end: start.saturating_add(ph.p_memsz), mib: mem_bytes >> 20 })?;
    if ph.p_filesz > ph.p_memsz {
        return Err(KernelError::FileSizeExceedsMemory);
    }
    let data = usize::try_from(ph.p_offset)
        .ok()
        .zip(usize::try_from(ph.p_filesz).ok())
        .and_then(|(off, len)| kernel.get(off..off.checked_add(len)?))
        .ok_or(KernelError::BeyondFile)?;
    Ok(Segment { start, end, data })
}

/// Sorts the segments by address and refuses any two that share a byte.
fn refuse_overlaps(segments: &mut [Segment<'_>]) -> Result<(), KernelError> {
    segments.sort_by_key(|s| s.start);
    for pair in segments.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if b.start < a.end {
            return Err(KernelError::Overlap(a.start, a.end, b.start, b.end));
        }
    }
    Ok(())
}

/// Where the information block goes: a page no segment touches, as a boot loader chooses it —
/// [`INFO_ADDR`] when free (every kernel linked at 1 MiB), else the first free page of
/// conventional memory from 0x1000 up (a kernel linked at 0x8000 gets it just past its end, or at
/// 0x1000), else the first free page past the kernel in high RAM. The segments are sorted.
fn info_place(segments: &[Segment<'_>], mem_bytes: u64) -> Option<u64> {
    let free = |at: u64| {
        let end = at + INFO_SIZE;
        end <= mem_bytes
            && !(LOW_RAM_END..HIGH_RAM).contains(&at)
            && !segments.iter().any(|s| s.start < end && at < s.end)
    };
    let past_each = segments.iter().map(|s| s.end.next_multiple_of(INFO_SIZE));
    let candidates = [INFO_ADDR, 0x1000].into_iter().chain(past_each).chain([HIGH_RAM]);
    let mut candidates: Vec<u64> = candidates.collect();
    candidates.sort_unstable_by_key(|&at| (at != INFO_ADDR, at));
    candidates.into_iter().find(|&at| free(at))
}

/// Finds the Multiboot header — 4-byte aligned within the first 8 KiB, magic + flags + checksum = 0
/// — and refuses a kernel whose required flags minikvm cannot meet, as the specification says.
fn check_requirements(kernel: &[u8]) -> Result<(), KernelError> {
    let offset = find_header(kernel)?;
    let flags = u32::from_le_bytes([kernel[offset + 4], kernel[offset + 5], kernel[offset + 6], kernel[offset + 7]]);
    if flags & FLAG_VIDEO_MODE != 0 {
        return Err(KernelError::VideoMode);
    }
    let unknown = flags & REQUIRED_BITS & !(FLAG_ALIGN_MODULES | FLAG_MEMORY_INFO);
    if unknown != 0 {
        return Err(KernelError::UnknownRequirement(unknown));
    }
    Ok(())
}

/// The offset of the Multiboot header in the file.
fn find_header(kernel: &[u8]) -> Result<usize, KernelError> {
    let window = &kernel[..kernel.len().min(8192)];
    for off in (0..window.len().saturating_sub(11)).step_by(4) {
        let word = |i: usize| u32::from_le_bytes([window[i], window[i + 1], window[i + 2], window[i + 3]]);
        if word(off) == HEADER_MAGIC {
            let sum = word(off).wrapping_add(word(off + 4)).wrapping_add(word(off + 8));
            if sum == 0 {
                return Ok(off);
            }
            return Err(KernelError::BadChecksum(off));
        }
    }
    Err(KernelError::NoHeader)
}

/// The Multiboot information block, to be placed at `at`: memory sizes, a memory map and the
/// loader's name (its pointers are physical addresses inside the block).
fn info_block(at: u64, mem_bytes: u64) -> Vec<u8> {
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
    put32(&mut b, 48, (at as usize + mmap_off) as u32);
    b[name_off..name_off + 8].copy_from_slice(b"minikvm\0");
    put32(&mut b, 64, (at as usize + name_off) as u32);
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
        assert_eq!(p.images[0].1.len(), 0x20, "only the file's bytes: the bss is fresh, zeroed RAM");
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
        assert_eq!(plan(b"\x7fELF garbage", 32 << 20).unwrap_err(), KernelError::NoHeader);
        let too_high = tiny_kernel(0x3000000, 0x3000000);
        assert!(plan(&too_high, 32 << 20).unwrap_err().to_string().contains("--mem"));
        let mut bad_sum = tiny_kernel(0x100000, 0x100000);
        bad_sum[0x88] ^= 1;
        assert_eq!(plan(&bad_sum, 32 << 20).unwrap_err(), KernelError::BadChecksum(0x80));
        let mut truncated = tiny_kernel(0x100000, 0x100000);
        truncated[56] = 0xf0; // segment offset beyond the file
        assert_eq!(plan(&truncated, 32 << 20).unwrap_err(), KernelError::BeyondFile);
        assert_eq!(plan(&tiny_kernel(0x100000, 0x500000), 32 << 20).unwrap_err(), KernelError::EntryOutside(0x500000));
    }

    /// Sets the Multiboot flags word and fixes the checksum to match.
    fn with_flags(mut k: Vec<u8>, flags: u32) -> Vec<u8> {
        k[0x84..0x88].copy_from_slice(&flags.to_le_bytes());
        k[0x88..0x8c].copy_from_slice(&0u32.wrapping_sub(HEADER_MAGIC).wrapping_sub(flags).to_le_bytes());
        k
    }

    #[test]
    fn required_multiboot_flags_are_met_or_refused() {
        let k = || tiny_kernel(0x100000, 0x10000c);
        assert!(plan(&with_flags(k(), 0b11 | (1 << 16)), 32 << 20).is_ok(), "bits 0, 1 and optional 16");
        assert_eq!(plan(&with_flags(k(), 1 << 2), 32 << 20).unwrap_err(), KernelError::VideoMode);
        assert_eq!(
            plan(&with_flags(k(), (1 << 9) | 1), 32 << 20).unwrap_err(),
            KernelError::UnknownRequirement(1 << 9)
        );
    }

    #[test]
    fn overlapping_segments_and_big_endian_files_are_refused() {
        let mut two = tiny_kernel(0x100000, 0x10000c);
        two.copy_within(52..84, 84); // a second program header, a copy of the first...
        two[44] = 2;
        two[96..100].copy_from_slice(&0x100020u32.to_le_bytes()); // ...moved up by 0x20 of its 0x40
        assert_eq!(plan(&two, 32 << 20).unwrap_err(), KernelError::Overlap(0x100000, 0x100040, 0x100020, 0x100060));
        two[96..100].copy_from_slice(&0x100040u32.to_le_bytes()); // end to end is fine
        assert!(plan(&two, 32 << 20).is_ok());
        let mut big = tiny_kernel(0x100000, 0x10000c);
        big[5] = 2;
        assert!(matches!(plan(&big, 32 << 20), Err(KernelError::BigEndian | KernelError::Elf(_))));
    }

    /// The physical address EBX points at, and the loader-name pointer inside the block.
    fn info_of(p: &BootPlan) -> (u64, u32) {
        let (at, info) = p.images.last().unwrap();
        assert_eq!(p.cpus[0].regs.rbx, *at);
        (*at, u32::from_le_bytes(info[64..68].try_into().unwrap()))
    }

    #[test]
    fn the_info_block_moves_out_of_a_kernels_way() {
        let (at, name) = info_of(&plan(&tiny_kernel(0x100000, 0x10000c), 32 << 20).unwrap());
        assert_eq!((at, name), (INFO_ADDR, INFO_ADDR as u32 + 0x200), "a kernel at 1 MiB: the usual place");
        // Linked at 0x8000 (0x40 bytes): 0x9000 is free still.
        assert_eq!(info_of(&plan(&tiny_kernel(0x8000, 0x800c), 32 << 20).unwrap()).0, INFO_ADDR);
        // Linked at 0x9000, as QEMU boots it: the block goes to 0x1000, and its pointers follow.
        let (at, name) = info_of(&plan(&tiny_kernel(0x9000, 0x900c), 32 << 20).unwrap());
        assert_eq!((at, name), (0x1000, 0x1200));
        // A kernel over 0x1000 and 0x9000: just past its end.
        let mut wide = tiny_kernel(0x800, 0x80c);
        wide[72..76].copy_from_slice(&0x9000u32.to_le_bytes()); // memsz: 0x800..0x9800
        assert_eq!(info_of(&plan(&wide, 32 << 20).unwrap()).0, 0xa000);
    }

    #[test]
    fn a_kernel_filling_ram_leaves_no_room_for_the_info_block() {
        let mut whole = tiny_kernel(0x1000, 0x100c);
        whole[72..76].copy_from_slice(&((2u32 << 20) - 0x1000).to_le_bytes()); // up to the end of 2 MiB
        assert_eq!(plan(&whole, 2 << 20).unwrap_err(), KernelError::NoRoomForInfo);
    }
}
