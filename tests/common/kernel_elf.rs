//! A tiny Multiboot ELF32 kernel, built byte by byte, for the kernel-loading tests and the kernel
//! fuzzer: one PT_LOAD segment holding the ELF header, the Multiboot header and a few instructions.
//!
//! Its code prints the byte at the last address of its segment plus `'0'` (so `0` when that
//! address is zero-filled bss) with the PUTCHAR hypercall, then ends with EXIT.
#![allow(dead_code)]

/// Where the segment is loaded (physical), as a PC kernel would be: at 1 MiB.
pub const LOAD: u32 = 0x10_0000;
/// Offsets in the file (the segment starts at offset 0, so file offset = address - LOAD).
pub const PHDR_OFF: usize = 52;
pub const MULTIBOOT_OFF: usize = 0x100;
pub const CODE_OFF: usize = 0x200;
pub const FILE_SIZE: usize = 0x1000;

/// The fields a test wants to choose.
#[derive(Debug, Clone)]
pub struct TinyKernel {
    /// Bytes the segment takes in memory (`FILE_SIZE` of them come from the file, the rest is bss).
    pub memsz: u32,
    /// The Multiboot header's flags word (the checksum is computed to match).
    pub multiboot_flags: u32,
    /// Write the ELF header and program header big-endian (EI_DATA = 2), as a big-endian machine's
    /// linker would; the Multiboot header and the code stay x86's little-endian.
    pub big_endian: bool,
}

impl Default for TinyKernel {
    fn default() -> Self {
        TinyKernel { memsz: FILE_SIZE as u32, multiboot_flags: 0, big_endian: false }
    }
}

impl TinyKernel {
    pub fn bytes(&self) -> Vec<u8> {
        let mut f = vec![0u8; FILE_SIZE];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 1; // ELFCLASS32
        f[5] = if self.big_endian { 2 } else { 1 };
        f[6] = 1; // EV_CURRENT
        let be = self.big_endian;
        let h16 = |f: &mut [u8], off: usize, v: u16| put16(f, off, if be { v.swap_bytes() } else { v });
        let h32 = |f: &mut [u8], off: usize, v: u32| put32(f, off, if be { v.swap_bytes() } else { v });
        h16(&mut f, 16, 2); // ET_EXEC
        h16(&mut f, 18, 3); // EM_386
        h32(&mut f, 20, 1);
        h32(&mut f, 24, LOAD + CODE_OFF as u32); // entry
        h32(&mut f, 28, PHDR_OFF as u32);
        h16(&mut f, 40, 52); // e_ehsize
        h16(&mut f, 42, 32); // e_phentsize
        h16(&mut f, 44, 1); // e_phnum
        let ph = PHDR_OFF;
        h32(&mut f, ph, 1); // PT_LOAD
        h32(&mut f, ph + 4, 0); // p_offset
        h32(&mut f, ph + 8, LOAD); // p_vaddr
        h32(&mut f, ph + 12, LOAD); // p_paddr
        h32(&mut f, ph + 16, FILE_SIZE as u32); // p_filesz
        h32(&mut f, ph + 20, self.memsz); // p_memsz
        h32(&mut f, ph + 24, 7); // RWX
        h32(&mut f, ph + 28, 0x1000);
        let magic = 0x1bad_b002u32;
        put32(&mut f, MULTIBOOT_OFF, magic);
        put32(&mut f, MULTIBOOT_OFF + 4, self.multiboot_flags);
        put32(&mut f, MULTIBOOT_OFF + 8, 0u32.wrapping_sub(magic).wrapping_sub(self.multiboot_flags));
        let last = LOAD.wrapping_add(self.memsz).wrapping_sub(1);
        let mut code = vec![0x8a, 0x1d]; // mov last, %bl
        code.extend_from_slice(&last.to_le_bytes());
        code.extend_from_slice(&[
            0x80, 0xc3, 0x30, // add $'0', %bl
            0xba, 0x00, 0x05, 0x00, 0x00, // mov $0x500, %edx
            0xb0, 0x01, // mov $1, %al (PUTCHAR)
            0xee, // out %al, (%dx)
            0x30, 0xc0, // xor %al, %al (EXIT)
            0xee, // out %al, (%dx)
            0xf4, // hlt
        ]);
        f[CODE_OFF..CODE_OFF + code.len()].copy_from_slice(&code);
        f
    }
}

pub fn put16(f: &mut [u8], off: usize, v: u16) {
    f[off..off + 2].copy_from_slice(&v.to_le_bytes());
}

pub fn put32(f: &mut [u8], off: usize, v: u32) {
    f[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

pub fn get32(f: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(f[off..off + 4].try_into().expect("4 bytes"))
}

/// The largest resident set (KiB) of any child this test process has waited for so far.
pub fn peak_rss_of_children_kib() -> i64 {
    nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN).map(|u| u.max_rss()).unwrap_or(0)
}
