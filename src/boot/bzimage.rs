//! The header of a Linux **bzImage** (the x86 boot protocol, `Documentation/arch/x86/boot.rst` in
//! the kernel's sources), read and checked before anything is placed in guest RAM.
//!
//! A bzImage is two programs in one file:
//!
//! ```text
//! offset 0              the real-mode setup code: (setup_sects + 1) sectors of 512 bytes,
//!   0x1f1                 with the setup header inside it (sizes, flags, where things may go)
//! (setup_sects + 1)*512 the protected-mode kernel: a small decompressor and the compressed kernel
//! ```
//!
//! minikvm is the boot loader: it never runs the real-mode setup code (a BIOS would be needed); it
//! copies the protected-mode part into RAM and enters it in 64-bit mode (see [`super::linux`]). The
//! header is read with the `setup_header` structure of rust-vmm's `linux-loader`. Every field the
//! file controls is checked or bounded here, each refusal a one-line [`BzImageError`].

use linux_loader::loader::bootparam::setup_header;
use vm_memory::ByteValued;

/// Where the setup header starts in the file.
const HEADER_OFFSET: usize = 0x1f1;
/// `boot_flag`: the old boot-sector signature.
const BOOT_FLAG: u16 = 0xaa55;
/// `header`: "HdrS", the magic of boot protocol 2.00 and later.
const HDRS: u32 = u32::from_le_bytes(*b"HdrS");
/// The oldest protocol minikvm boots: 2.12 (Linux 3.8, 2013) added `xloadflags`, the field that
/// says a kernel has a 64-bit entry point.
pub const MIN_VERSION: u16 = 0x020c;
/// `loadflags` bit 0: the protected-mode part is loaded at 1 MiB or above (a bzImage, not a zImage).
const LOADED_HIGH: u8 = 1 << 0;
/// `xloadflags` bit 0: the kernel has the 64-bit entry point, 0x200 bytes into its
/// protected-mode part.
const XLF_KERNEL_64: u16 = 1 << 0;
/// A sector of the setup code.
const SECTOR: usize = 512;
/// `setup_sects` = 0 means 4, for historical reasons.
const DEFAULT_SETUP_SECTS: usize = 4;

/// Why a file is not a kernel minikvm can boot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BzImageError {
    /// Too short to hold a setup header at all.
    #[error("not a Linux bzImage: {0} bytes is too short for the boot protocol's setup header")]
    TooShort(usize),
    /// No 0xAA55 and "HdrS" where the boot protocol puts them.
    #[error("not a Linux bzImage: no boot protocol header (\"HdrS\" at offset 0x202)")]
    NoHeader,
    /// A protocol older than [`MIN_VERSION`].
    #[error(
        "the kernel's boot protocol {}.{:02} is too old: minikvm needs 2.12 or newer (Linux 3.8 on), which says \
         whether the kernel has a 64-bit entry point", .0 >> 8, .0 & 0xff
    )]
    TooOld(u16),
    /// A zImage (loaded below 1 MiB), which only a BIOS loader boots.
    #[error("not a bzImage: an old zImage kernel (loadflags bit 0 clear), which needs a BIOS to load it")]
    ZImage,
    /// A 32-bit kernel: no 64-bit entry point.
    #[error("the kernel has no 64-bit entry point (a 32-bit kernel?): minikvm boots x86-64 kernels")]
    No64BitEntry,
    /// The setup sectors the header announces are not all in the file.
    #[error("the bzImage is truncated: its setup code takes {setup} bytes, the file has {file}")]
    Truncated { setup: usize, file: usize },
    /// Nothing after the setup code.
    #[error("the bzImage has no kernel after its {0} bytes of setup code")]
    NoKernel(usize),
}

/// A checked bzImage: its header and the protected-mode kernel.
#[derive(Debug)]
pub struct BzImage<'a> {
    pub header: setup_header,
    /// The protected-mode part, to be copied to the load address as it is.
    pub kernel: &'a [u8],
}

impl<'a> BzImage<'a> {
    /// Reads and checks the header of `file`.
    pub fn parse(file: &'a [u8]) -> Result<BzImage<'a>, BzImageError> {
        let end = HEADER_OFFSET + std::mem::size_of::<setup_header>();
        let mut header = setup_header::default();
        let bytes = file.get(HEADER_OFFSET..end).ok_or(BzImageError::TooShort(file.len()))?;
        header.as_mut_slice().copy_from_slice(bytes);
        let (flag, magic, version) = (header.boot_flag, header.header, header.version);
        if flag != BOOT_FLAG || magic != HDRS {
            return Err(BzImageError::NoHeader);
        }
        if version < MIN_VERSION {
            return Err(BzImageError::TooOld(version));
        }
        if header.loadflags & LOADED_HIGH == 0 {
            return Err(BzImageError::ZImage);
        }
        if header.xloadflags & XLF_KERNEL_64 == 0 {
            return Err(BzImageError::No64BitEntry);
        }
        let sects = match header.setup_sects as usize {
            0 => DEFAULT_SETUP_SECTS,
            n => n,
        };
        // At most 256 sectors: the u8 field bounds what the file can claim.
        let setup = (sects + 1) * SECTOR;
        if setup > file.len() {
            return Err(BzImageError::Truncated { setup, file: file.len() });
        }
        if setup == file.len() {
            return Err(BzImageError::NoKernel(setup));
        }
        Ok(BzImage { header, kernel: &file[setup..] })
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A minimal bzImage header as a 2.15 kernel has it: 1 setup sector + `kernel` bytes.
    pub fn fake_bzimage(kernel: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 2 * SECTOR];
        f[0x1f1] = 1; // setup_sects
        f[0x1fe..0x200].copy_from_slice(&BOOT_FLAG.to_le_bytes());
        f[0x202..0x206].copy_from_slice(b"HdrS");
        f[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
        f[0x211] = LOADED_HIGH;
        f[0x214..0x218].copy_from_slice(&0x10_0000u32.to_le_bytes()); // code32_start
        f[0x22c..0x230].copy_from_slice(&0x7fff_ffffu32.to_le_bytes()); // initrd_addr_max
        f[0x230..0x234].copy_from_slice(&0x20_0000u32.to_le_bytes()); // kernel_alignment
        f[0x234] = 1; // relocatable
        f[0x236..0x238].copy_from_slice(&3u16.to_le_bytes()); // xloadflags: 64-bit entry, above 4G
        f[0x238..0x23c].copy_from_slice(&2047u32.to_le_bytes()); // cmdline_size
        f[0x258..0x260].copy_from_slice(&0x100_0000u64.to_le_bytes()); // pref_address
        f[0x260..0x264].copy_from_slice(&0x200_0000u32.to_le_bytes()); // init_size: 32 MiB
        f.extend_from_slice(kernel);
        f
    }

    #[test]
    fn a_good_header_is_read_field_by_field() {
        let f = fake_bzimage(&[0x90; 100]);
        let b = BzImage::parse(&f).unwrap();
        assert_eq!(b.kernel.len(), 100);
        let (v, init, pref, max) = (b.header.version, b.header.init_size, b.header.pref_address, b.header.cmdline_size);
        assert_eq!((v, init, pref, max), (0x020f, 0x200_0000, 0x100_0000, 2047));
    }

    #[test]
    fn what_is_not_a_bzimage_is_named() {
        assert_eq!(BzImage::parse(&[0; 100]).unwrap_err(), BzImageError::TooShort(100));
        assert_eq!(BzImage::parse(&[0; 4096]).unwrap_err(), BzImageError::NoHeader);
        let elf = [&b"\x7fELF"[..], &[0; 4092]].concat();
        assert_eq!(BzImage::parse(&elf).unwrap_err(), BzImageError::NoHeader);
        assert!(BzImageError::NoHeader.to_string().starts_with("not a Linux bzImage"));
    }

    #[test]
    fn old_protocols_zimages_and_32_bit_kernels_are_refused() {
        let mut f = fake_bzimage(&[0x90; 16]);
        f[0x206..0x208].copy_from_slice(&0x020bu16.to_le_bytes());
        assert_eq!(BzImage::parse(&f).unwrap_err(), BzImageError::TooOld(0x020b));
        assert!(BzImageError::TooOld(0x020b).to_string().contains("protocol 2.11 is too old"));
        let mut f = fake_bzimage(&[0x90; 16]);
        f[0x211] = 0;
        assert_eq!(BzImage::parse(&f).unwrap_err(), BzImageError::ZImage);
        let mut f = fake_bzimage(&[0x90; 16]);
        f[0x236] = 0;
        assert_eq!(BzImage::parse(&f).unwrap_err(), BzImageError::No64BitEntry);
    }

    #[test]
    fn setup_sectors_beyond_the_file_are_refused() {
        let mut f = fake_bzimage(&[0x90; 16]);
        f[0x1f1] = 255;
        assert_eq!(BzImage::parse(&f).unwrap_err(), BzImageError::Truncated { setup: 256 * 512, file: 1040 });
        let f = fake_bzimage(&[]);
        assert_eq!(BzImage::parse(&f).unwrap_err(), BzImageError::NoKernel(1024));
        // setup_sects = 0 means 4 sectors.
        let mut f = fake_bzimage(&[0x90; 4 * 512]);
        f[0x1f1] = 0;
        assert_eq!(BzImage::parse(&f).unwrap().kernel.len(), 1024 + 4 * 512 - 5 * 512);
    }
}
