//! Linux guests (`--linux bzImage [--initrd FILE] [--cmdline STRING]`): minikvm as the boot
//! loader of the x86 boot protocol's **64-bit entry**.
//!
//! What a boot loader owes the kernel, and where minikvm puts it (RAM starts at 0, `--mem`
//! [`DEFAULT_MEM_MIB`] MiB by default):
//!
//! ```text
//! 0x7000            the zero page (`boot_params`): the setup header copied from the file, the e820
//!                   memory map, the command line's and the initrd's addresses, the RSDP's address;
//!                   RSI points here at entry. The boot stack grows down below it.
//! 0x9000            GDT (0x10 64-bit code, 0x18 data, as the protocol names them), then the page
//!                   tables of `long_mode.rs`, identity-mapping all of RAM with 2 MiB pages
//! 0x20000           the command line (NUL-terminated, at most the header's cmdline_size)
//! 0x9FC00–0x100000  reserved in the e820 map: EBDA, VGA hole, BIOS area, and at 0xE0000 the ACPI
//!                   tables ([`super::acpi`])
//! pref_address      the protected-mode kernel (16 MiB for Debian's kernels), with init_size bytes
//!                   of room after it where the kernel decompresses itself
//! top of RAM        the initrd, as high as RAM and the header's initrd_addr_max allow, page aligned
//! ```
//!
//! **Why the 64-bit entry** (protected-mode kernel + 0x200): minikvm already builds long-mode
//! state (page tables, a 64-bit code segment, EFER) for `--long-mode`, and entering there means no
//! 32-bit kernel code runs at all; the 32-bit entry would have the kernel build its own tables and
//! switch to long mode itself, a step the 64-bit entry exists to skip (Firecracker and
//! cloud-hypervisor enter there too). The protocol asks for 64-bit mode, paging on with the kernel,
//! the zero page and the command line identity-mapped, a GDT with flat 4 GiB segments at 0x10 and
//! 0x18, interrupts off and RSI = the zero page.
//!
//! The zero page and the command line use rust-vmm's `linux-loader` (`boot_params`, `Cmdline`).
//! Its `BzImage::load` is not used: it writes straight into guest memory, while a minikvm boot plan
//! is plain data checked before any VM exists; and it reports three different problems as one
//! "Invalid bzImage" and does not check for a 64-bit entry point ([`super::bzimage`] does).

use super::acpi;
use super::bzimage::{BzImage, BzImageError};
use super::long_mode::{self, TableLayout};
use super::{BootPlan, MachineKind};
use kvm_bindings::kvm_regs;
use linux_loader::cmdline::Cmdline;
use linux_loader::loader::bootparam::{boot_e820_entry, boot_params};
use vm_memory::ByteValued;

/// RAM when `--mem` is not given: enough for a distribution kernel (it decompresses into ~60 MiB
/// at 16 MiB) and a busybox initramfs, with room for the shell's programs.
pub const DEFAULT_MEM_MIB: u64 = 256;

/// The command line when `--cmdline` is not given: the kernel's console on COM1 (ttyS0, IRQ4), and
/// its earliest messages there too, before the serial driver starts. `reboot=k` resets through the
/// keyboard controller ([`crate::devices::i8042`]) without trying ACPI first.
pub const DEFAULT_CMDLINE: &str = "console=ttyS0 earlyprintk=serial,ttyS0 reboot=k";

/// Added under `--gdb`: the kernel stays at the addresses of its System.map, so a breakpoint at
/// `start_kernel` is where gdb thinks it is.
pub const NO_KASLR: &str = "nokaslr";

const PAGE: u64 = 0x1000;
const ZERO_PAGE: u64 = 0x7000;
const BOOT_TABLES: u64 = 0x9000;
const CMDLINE: u64 = 0x2_0000;
/// The longest command line minikvm passes, whatever the header allows (6.1 takes 2047 bytes).
const MAX_CMDLINE: usize = 0xffff;
/// Conventional memory ends at the EBDA; from there to 1 MiB is not RAM for the kernel.
const EBDA: u64 = 0x9_fc00;
const HIGH_MEMORY: u64 = 0x10_0000;
/// Where the 64-bit entry point is, from the start of the protected-mode kernel.
const ENTRY_64: u64 = 0x200;
/// The boot protocol's selectors: __BOOT_CS and __BOOT_DS.
const BOOT_CS: u16 = 0x10;
const BOOT_DS: u16 = 0x18;
/// `type_of_loader` 0xFF: "undefined" boot loader (minikvm has no ID of its own).
const LOADER_UNDEFINED: u8 = 0xff;
/// e820 entry types.
const E820_RAM: u32 = 1;
const E820_RESERVED: u32 = 2;

/// Why a Linux boot cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinuxError {
    #[error("{0}")]
    BzImage(#[from] BzImageError),
    #[error("--initrd {path}: {why}")]
    Initrd { path: String, why: String },
    #[error("the kernel command line is {len} bytes, and this kernel takes at most {max}")]
    CmdlineTooLong { len: usize, max: usize },
    #[error("the kernel command line cannot be passed: {0}")]
    Cmdline(String),
    #[error("the kernel's preferred load address {0:#x} is below 1 MiB or not page aligned")]
    BadLoadAddress(u64),
    #[error(
        "the kernel needs RAM up to {end:#x} ({} MiB: it decompresses itself after its load address) and the \
         machine has {mib} MiB: use --mem {}", end >> 20, (end >> 20) + 64
    )]
    KernelDoesNotFit { end: u64, mib: u64 },
    #[error(
        "the initrd ({size} bytes) does not fit between the kernel's end ({kernel_end:#x}) and the highest \
         address it may reach ({top:#x}): use a larger --mem"
    )]
    InitrdDoesNotFit { size: usize, kernel_end: u64, top: u64 },
}

/// Reads the initrd file, refusing one larger than the guest's RAM before reading it.
pub fn read_initrd(path: &std::path::Path, mem_bytes: u64) -> Result<Vec<u8>, LinuxError> {
    let shown = path.display().to_string();
    let fail = |e: std::io::Error| LinuxError::Initrd { path: shown.clone(), why: e.to_string() };
    let meta = std::fs::metadata(path).map_err(fail)?;
    if meta.is_dir() {
        return Err(LinuxError::Initrd { path: shown, why: "is a directory, not a cpio archive".into() });
    }
    if meta.len() > mem_bytes {
        let why = format!("{} bytes is more than the guest's {} MiB of RAM", meta.len(), mem_bytes >> 20);
        return Err(LinuxError::Initrd { path: shown, why });
    }
    std::fs::read(path).map_err(fail)
}

/// Put in front of a `--cmdline` that chooses no reboot method: minikvm's PC resets only through
/// the keyboard controller. Left to its default (ACPI first, then the others in turn), Linux
/// printed "Restarting system" and never reached it (measured in the nested lane).
pub const REBOOT_BY_KEYBOARD: &str = "reboot=k";

/// The command line a run passes: `--cmdline` or [`DEFAULT_CMDLINE`], with [`REBOOT_BY_KEYBOARD`]
/// unless it says `reboot=` itself, plus `nokaslr` under gdb (unless it is there already). Both
/// go in front, before any `--` that starts init's arguments.
pub fn command_line(given: Option<&str>, gdb: bool) -> String {
    let mut line = given.unwrap_or(DEFAULT_CMDLINE).to_string();
    let has = |line: &str, f: &dyn Fn(&str) -> bool| line.split_whitespace().take_while(|w| *w != "--").any(f);
    if !has(&line, &|w| w.starts_with("reboot=")) {
        line = format!("{REBOOT_BY_KEYBOARD} {line}");
    }
    if gdb && !has(&line, &|w| w == NO_KASLR) {
        line = format!("{NO_KASLR} {line}");
    }
    line.trim().to_string()
}

/// A plan that boots `file` (a bzImage) with `initrd` and `cmdline` in `mem_bytes` of RAM.
pub fn plan(file: &[u8], initrd: Option<Vec<u8>>, cmdline: &str, mem_bytes: u64) -> Result<BootPlan, LinuxError> {
    let image = BzImage::parse(file)?;
    let hdr = image.header;
    let load = load_address(hdr.pref_address)?;
    // The kernel decompresses itself into init_size bytes from its load address.
    let room = (hdr.init_size as u64).max(image.kernel.len() as u64);
    let kernel_end = load
        .checked_add(room)
        .and_then(|end| end.checked_next_multiple_of(PAGE))
        .filter(|end| *end <= mem_bytes)
        .ok_or(LinuxError::KernelDoesNotFit { end: load.saturating_add(room), mib: mem_bytes >> 20 })?;
    let cmdline = command_line_bytes(cmdline, hdr.cmdline_size)?;
    let initrd_at = match &initrd {
        Some(bytes) => Some(initrd_address(bytes.len(), kernel_end, mem_bytes, hdr.initrd_addr_max)?),
        None => None,
    };

    let mut params = boot_params { hdr, ..Default::default() };
    params.hdr.type_of_loader = LOADER_UNDEFINED;
    params.hdr.code32_start = load as u32;
    params.hdr.cmd_line_ptr = CMDLINE as u32;
    if let (Some(at), Some(bytes)) = (initrd_at, &initrd) {
        params.hdr.ramdisk_image = at as u32;
        params.hdr.ramdisk_size = bytes.len() as u32;
    }
    params.acpi_rsdp_addr = acpi::RSDP_ADDR;
    let map = e820(mem_bytes);
    params.e820_entries = map.len() as u8;
    params.e820_table[..map.len()].copy_from_slice(&map);

    let tables = TableLayout::at(BOOT_TABLES, mem_bytes);
    let mut images: Vec<(u64, Vec<u8>)> =
        tables.images(mem_bytes).into_iter().filter(|(at, _)| *at != tables.gdt).collect();
    images.push((tables.gdt, boot_gdt()));
    images.push((ZERO_PAGE, params.as_slice().to_vec()));
    images.push((CMDLINE, cmdline));
    images.push((acpi::RSDP_ADDR, acpi::tables(1)));
    images.push((load, image.kernel.to_vec()));
    if let (Some(at), Some(bytes)) = (initrd_at, initrd) {
        images.push((at, bytes));
    }
    let regs = kvm_regs { rip: load + ENTRY_64, rsi: ZERO_PAGE, rsp: ZERO_PAGE, rflags: 0x2, ..Default::default() };
    let cpu = long_mode::cpu_start(&tables, (BOOT_CS, BOOT_DS), 4, regs);
    Ok(BootPlan {
        kind: MachineKind::Linux,
        memory: vec![(0, mem_bytes as usize)],
        images,
        cpus: vec![cpu],
        uses_paging: false, // long-mode paging only
    })
}

/// Where the protected-mode kernel goes: the header's preferred address (a relocatable kernel
/// could go elsewhere, but there it decompresses without moving itself), or 1 MiB.
fn load_address(pref_address: u64) -> Result<u64, LinuxError> {
    match pref_address {
        0 => Ok(HIGH_MEMORY),
        a if a < HIGH_MEMORY || a % PAGE != 0 => Err(LinuxError::BadLoadAddress(a)),
        a => Ok(a),
    }
}

/// The command line as the kernel reads it: printable ASCII, NUL-terminated, at most the header's
/// `cmdline_size` bytes (and never more than [`MAX_CMDLINE`]).
fn command_line_bytes(line: &str, cmdline_size: u32) -> Result<Vec<u8>, LinuxError> {
    let max = (cmdline_size as usize).min(MAX_CMDLINE);
    if line.len() > max {
        return Err(LinuxError::CmdlineTooLong { len: line.len(), max });
    }
    if let Some(bad) = line.chars().find(|c| !(' '..='~').contains(c)) {
        return Err(LinuxError::Cmdline(format!("it holds {bad:?}: only printable ASCII and spaces")));
    }
    let c = Cmdline::try_from(line, max + 1).map_err(|e| LinuxError::Cmdline(e.to_string()))?;
    let c = c.as_cstring().map_err(|e| LinuxError::Cmdline(e.to_string()))?;
    Ok(c.as_bytes_with_nul().to_vec())
}

/// The initrd's address: page aligned, ending as high as RAM and `initrd_addr_max` (the highest
/// address its last byte may have) allow, above the kernel's decompression room.
fn initrd_address(size: usize, kernel_end: u64, mem_bytes: u64, initrd_addr_max: u32) -> Result<u64, LinuxError> {
    let top = mem_bytes.min(initrd_addr_max as u64 + 1);
    match top.checked_sub(size as u64).map(|a| a & !(PAGE - 1)) {
        Some(at) if at >= kernel_end => Ok(at),
        _ => Err(LinuxError::InitrdDoesNotFit { size, kernel_end, top }),
    }
}

/// The e820 memory map: conventional memory, the reserved PC hole up to 1 MiB (which holds the ACPI
/// tables), and the rest of RAM.
pub fn e820(mem_bytes: u64) -> Vec<boot_e820_entry> {
    let entry = |addr: u64, end: u64, kind| boot_e820_entry { addr, size: end.saturating_sub(addr), r#type: kind };
    vec![entry(0, EBDA, E820_RAM), entry(EBDA, HIGH_MEMORY, E820_RESERVED), entry(HIGH_MEMORY, mem_bytes, E820_RAM)]
}

/// The boot GDT: null, null, 0x10 64-bit code, 0x18 data (both flat, ring 0).
fn boot_gdt() -> Vec<u8> {
    let descriptors: [u64; 4] = [0, 0, 0x00af_9a00_0000_ffff, 0x00cf_9200_0000_ffff];
    descriptors.iter().flat_map(|d| d.to_le_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::bzimage::tests::fake_bzimage;

    const MIB: u64 = 1 << 20;

    fn image(p: &BootPlan, at: u64) -> &[u8] {
        &p.images.iter().find(|(a, _)| *a == at).expect("an image there").1
    }

    fn zero_page(p: &BootPlan) -> boot_params {
        let mut params = boot_params::default();
        params.as_mut_slice().copy_from_slice(image(p, ZERO_PAGE));
        params
    }

    #[test]
    fn the_kernel_goes_to_its_preferred_address_and_is_entered_at_its_64_bit_entry() {
        let p = plan(&fake_bzimage(&[0x90; 4096]), None, "console=ttyS0", 256 * MIB).unwrap();
        assert_eq!(p.kind, MachineKind::Linux);
        assert_eq!(image(&p, 16 * MIB).len(), 4096);
        let c = &p.cpus[0];
        assert_eq!((c.regs.rip, c.regs.rsi, c.regs.rflags), (16 * MIB + 0x200, ZERO_PAGE, 2));
        assert_eq!((c.code.selector, c.code.l, c.data.selector), (0x10, 1, 0x18));
        assert_eq!((c.cr3, c.efer & 0x500, c.gdt), (BOOT_TABLES + PAGE, 0x500, Some((BOOT_TABLES, 31))));
        assert_eq!(&image(&p, BOOT_TABLES)[16..24], &0x00af_9a00_0000_ffffu64.to_le_bytes());
    }

    #[test]
    fn the_zero_page_holds_the_header_map_command_line_and_rsdp() {
        let p = plan(&fake_bzimage(&[0x90; 64]), Some(vec![7; 5000]), "console=ttyS0 quiet", 256 * MIB).unwrap();
        let z = zero_page(&p);
        let (magic, loader, cmd, rsdp) = (z.hdr.header, z.hdr.type_of_loader, z.hdr.cmd_line_ptr, z.acpi_rsdp_addr);
        assert_eq!((magic, loader, cmd as u64, rsdp), (u32::from_le_bytes(*b"HdrS"), 0xff, CMDLINE, 0xe0000));
        assert_eq!(image(&p, CMDLINE), b"console=ttyS0 quiet\0");
        let (initrd, size) = (z.hdr.ramdisk_image as u64, z.hdr.ramdisk_size);
        assert_eq!((initrd, size), (256 * MIB - 2 * PAGE, 5000), "page aligned, as high as RAM allows");
        assert_eq!(image(&p, initrd), &[7; 5000][..]);
        assert_eq!(z.e820_entries, 3);
        let map: Vec<_> = z.e820_table[..3].iter().map(|e| (e.addr, e.size, e.r#type)).collect();
        assert_eq!(map, vec![(0, 0x9fc00, 1), (0x9fc00, 0x60400, 2), (MIB, 255 * MIB, 1)]);
        assert_eq!(&image(&p, acpi::RSDP_ADDR)[..8], b"RSD PTR ");
    }

    #[test]
    fn the_initrd_stays_below_initrd_addr_max_and_above_the_kernels_room() {
        // RAM to 1 GiB, but this header lets the initrd end at 512 MiB.
        assert_eq!(initrd_address(4096, 48 * MIB, 1024 * MIB, (512 * MIB - 1) as u32), Ok(512 * MIB - PAGE));
        // The kernel at 16 MiB decompresses into 32 MiB: the initrd must not reach below 48 MiB.
        let err = initrd_address(20 * MIB as usize, 48 * MIB, 64 * MIB, u32::MAX).unwrap_err();
        assert_eq!(err, LinuxError::InitrdDoesNotFit { size: 20 << 20, kernel_end: 48 * MIB, top: 64 * MIB });
        assert!(initrd_address(usize::MAX, 0, 64 * MIB, u32::MAX).is_err(), "no underflow");
    }

    #[test]
    fn a_kernel_that_needs_more_ram_than_given_says_how_much() {
        let err = plan(&fake_bzimage(&[0x90; 64]), None, "", 32 * MIB).unwrap_err();
        assert_eq!(err, LinuxError::KernelDoesNotFit { end: 48 * MIB, mib: 32 });
        assert!(err.to_string().contains("use --mem 112"));
        let mut f = fake_bzimage(&[0x90; 64]);
        f[0x258..0x260].copy_from_slice(&u64::MAX.to_le_bytes()); // a wild pref_address
        assert!(matches!(plan(&f, None, "", 256 * MIB), Err(LinuxError::BadLoadAddress(_))));
        f[0x258..0x260].copy_from_slice(&(!0xfffu64).to_le_bytes());
        assert!(plan(&f, None, "", 256 * MIB).is_err(), "no overflow past the end of the address space");
    }

    #[test]
    fn the_command_line_is_bounded_by_the_header() {
        let long = "x".repeat(2048);
        assert_eq!(command_line_bytes(&long, 2047), Err(LinuxError::CmdlineTooLong { len: 2048, max: 2047 }));
        assert_eq!(command_line_bytes(&long[..2047], 2047).unwrap().len(), 2048);
        assert!(matches!(command_line_bytes("a\u{7}b", 2047), Err(LinuxError::Cmdline(_))));
        assert_eq!(command_line_bytes(&long, u32::MAX).unwrap().len(), 2049, "a huge cmdline_size is fine");
        assert!(command_line_bytes(&"y".repeat(MAX_CMDLINE + 1), u32::MAX).is_err(), "but minikvm's own bound holds");
    }

    #[test]
    fn gdb_adds_nokaslr_once_and_the_default_has_the_serial_console() {
        assert_eq!(command_line(None, false), DEFAULT_CMDLINE);
        assert!(DEFAULT_CMDLINE.contains("console=ttyS0") && DEFAULT_CMDLINE.contains("earlyprintk=serial,ttyS0"));
        assert_eq!(command_line(Some("console=ttyS0"), true), "nokaslr reboot=k console=ttyS0");
        assert_eq!(command_line(Some("nokaslr quiet reboot=t"), true), "nokaslr quiet reboot=t");
        assert_eq!(
            command_line(Some("quiet -- sh -c reboot=x"), false),
            "reboot=k quiet -- sh -c reboot=x",
            "init's words are init's"
        );
        assert_eq!(command_line(Some(""), false), "reboot=k");
    }
}
