//! The few ACPI tables a Linux guest needs to power off, built with rust-vmm's `acpi_tables`.
//!
//! Without ACPI, `poweroff` has no way to turn a PC off: the kernel halts and the machine stays on.
//! With it, Linux evaluates the DSDT's `\_S5` package (the "soft off" sleep state) and writes its
//! value to the FADT's sleep control register — a port on minikvm's bus
//! ([`crate::devices::acpi_sleep`]), which ends the run. The tables describe a **hardware-reduced**
//! ACPI machine (ACPI 5.0 on; Firecracker and cloud-hypervisor do the same): no PM1 event and
//! control blocks, no SCI, no legacy PIC, just
//!
//! ```text
//! RSDP "RSD PTR "  at 0xE0000 (where Linux also finds it by scanning 0xE0000–0xFFFFF; the zero
//!   │                page's acpi_rsdp_addr points there too)
//!   └─ XSDT ─┬─ FADT (revision 6): HW_REDUCED_ACPI, sleep control/status registers on ports
//!            │    0x600/0x601, boot flags "no VGA, no CMOS RTC, no 8042" ─── DSDT: Name(_S5, {5,0,0,0}),
//!            │                                                      and COM1 (PNP0501, 0x3F8, GSI 4)
//!            └─ MADT: the local APIC of each vCPU, the IOAPIC at 0xFEC00000 (GSIs 0–23)
//! ```
//!
//! With a hardware-reduced FADT Linux does not use the 8259 PIC: every interrupt, the UART's IRQ4
//! included, goes through the IOAPIC, whose ISA pins KVM's default routing wires 1:1 (`set_irq_line(4)`
//! raises pin 4); the DSDT's COM1 device tells Linux that pin. The "no 8042" boot flag keeps Linux
//! from probing a keyboard controller, which saves seconds of time-outs; its reboot path still
//! pulses port 0x64 ([`crate::devices::i8042`]).

use acpi_tables::fadt::{FADTBuilder, Flags};
use acpi_tables::gas::{AccessSize, AddressSpace, GAS};
use acpi_tables::madt::{EnabledStatus, IoApic, LocalInterruptController, ProcessorLocalApic, MADT};
use acpi_tables::rsdp::Rsdp;
use acpi_tables::sdt::Sdt;
use acpi_tables::xsdt::XSDT;
use acpi_tables::{aml, Aml};

/// Where the tables go: the BIOS area a PC's firmware leaves them in (reserved in the e820 map).
pub const RSDP_ADDR: u64 = 0xe_0000;
/// The sleep control register (a write of SLP_TYP << 2 | SLP_EN) and the status register after it.
pub const SLEEP_CONTROL_PORT: u16 = 0x600;
pub const SLEEP_STATUS_PORT: u16 = 0x601;
/// The `\_S5` sleep type value: what Linux writes to the control register (shifted) to power off.
pub const S5_SLEEP_TYPE: u8 = 5;
/// COM1's ports and interrupt (see [`dsdt`]).
const COM1: u16 = crate::devices::serial::COM1;
const COM1_GSI: u32 = crate::devices::serial::COM1_IRQ;
/// The local APIC and IOAPIC addresses: where KVM's in-kernel ones sit.
const LOCAL_APIC: u32 = 0xfee0_0000;
const IOAPIC: u32 = 0xfec0_0000;

const OEM_ID: [u8; 6] = *b"MINKVM";
const OEM_TABLE: [u8; 8] = *b"MINIKVM ";

/// IA-PC boot architecture flags (FADT offset 109).
const BOOT_NO_VGA: u16 = 1 << 2;
const BOOT_NO_CMOS_RTC: u16 = 1 << 5;

/// The ACPI tables for `cpus` vCPUs, as one block of bytes to copy to [`RSDP_ADDR`].
pub fn tables(cpus: u8) -> Vec<u8> {
    let dsdt = dsdt();
    let madt = madt(cpus);
    // Offsets inside the block, each table 16-byte aligned: RSDP, XSDT, FADT, MADT, DSDT.
    let align = |n: usize| n.next_multiple_of(16);
    let xsdt_at = align(Rsdp::len());
    let fadt_at = xsdt_at + align(36 + 2 * 8);
    let madt_at = fadt_at + align(acpi_tables::fadt::FADT::len());
    let dsdt_at = madt_at + align(madt.len());
    let addr = |off: usize| RSDP_ADDR + off as u64;

    let mut xsdt = XSDT::new(OEM_ID, OEM_TABLE, 1);
    xsdt.add_entry(addr(fadt_at));
    xsdt.add_entry(addr(madt_at));
    let mut block = Vec::new();
    let mut put = |at: usize, table: &dyn Aml| {
        block.resize(at, 0);
        table.to_aml_bytes(&mut block);
    };
    put(0, &Rsdp::new(OEM_ID, addr(xsdt_at)));
    put(xsdt_at, &xsdt);
    put(fadt_at, &fadt(addr(dsdt_at)));
    block.resize(madt_at, 0);
    block.extend_from_slice(&madt);
    block.resize(dsdt_at, 0);
    block.extend_from_slice(dsdt.as_slice());
    block
}

/// A hardware-reduced FADT: its sleep registers and the DSDT's address.
fn fadt(dsdt: u64) -> acpi_tables::fadt::FADT {
    let port = |p: u16| GAS::new(AddressSpace::SystemIo, 8, 0, AccessSize::ByteAccess, p.into());
    let mut f = FADTBuilder::new(OEM_ID, OEM_TABLE, 1).dsdt_64(dsdt).flag(Flags::HwReducedAcpi);
    // No fixed power or sleep button either (these flags say "absent").
    f = f.flag(Flags::PwrButton).flag(Flags::SlpButton);
    f.iapc_boot_arch = (BOOT_NO_VGA | BOOT_NO_CMOS_RTC).into();
    f.sleep_control_reg = port(SLEEP_CONTROL_PORT);
    f.sleep_status_reg = port(SLEEP_STATUS_PORT);
    f.finalize()
}

/// The MADT: one enabled local APIC per vCPU (APIC ID = vCPU index) and the IOAPIC.
fn madt(cpus: u8) -> Vec<u8> {
    let mut m = MADT::new(OEM_ID, OEM_TABLE, 1, LocalInterruptController::Address(LOCAL_APIC));
    for i in 0..cpus {
        m.add_structure(ProcessorLocalApic::new(i, i, EnabledStatus::Enabled));
    }
    m.add_structure(IoApic::new(0, IOAPIC, 0));
    let mut bytes = Vec::new();
    m.to_aml_bytes(&mut bytes);
    bytes
}

/// The DSDT: `Name (_S5, Package () { 5, 0, 0, 0 })`, the soft-off sleep state, and COM1.
///
/// COM1 is described as a PNP0501 device (a 16550A) with its ports and **GSI 4**: on a
/// hardware-reduced machine Linux has no legacy PIC, so it maps no ISA IRQ by itself, and the
/// serial driver's IRQ4 would lead nowhere — output through the tty layer (a shell's) never leaves
/// its buffer. With the device, Linux's PNP layer registers the port with IOAPIC pin 4 (edge,
/// active high), where KVM's `set_irq_line(4)` lands.
fn dsdt() -> Sdt {
    let mut dsdt = Sdt::new(*b"DSDT", 36, 6, OEM_ID, OEM_TABLE, 1);
    let s5 =
        aml::Name::new("_S5_".into(), &aml::Package::new(vec![&S5_SLEEP_TYPE, &aml::ZERO, &aml::ZERO, &aml::ZERO]));
    let (io, irq) = (aml::IO::new(COM1, COM1, 0, 8), aml::Interrupt::new(true, true, false, false, COM1_GSI));
    let resources = aml::ResourceTemplate::new(vec![&io, &irq]);
    let (hid, uid, crs) = (
        aml::Name::new("_HID".into(), &aml::EISAName::new("PNP0501")),
        aml::Name::new("_UID".into(), &aml::ZERO),
        aml::Name::new("_CRS".into(), &resources),
    );
    let com1 = aml::Device::new("COM1".into(), vec![&hid, &uid, &crs]);
    let bus = aml::Scope::new("\\_SB_".into(), vec![&com1]);
    let mut body = Vec::new();
    s5.to_aml_bytes(&mut body);
    bus.to_aml_bytes(&mut body);
    dsdt.append_slice(&body);
    dsdt
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(bytes: &[u8]) -> u8 {
        bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b))
    }

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }

    fn u64_at(b: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
    }

    /// The table a physical address points to, as a slice of the block (by its own length field).
    fn table(block: &[u8], addr: u64) -> &[u8] {
        let at = (addr - RSDP_ADDR) as usize;
        let len = u32_at(block, at + 4) as usize;
        &block[at..at + len]
    }

    #[test]
    fn every_table_is_found_from_the_rsdp_with_good_checksums() {
        let block = tables(1);
        assert_eq!(&block[..8], b"RSD PTR ");
        assert_eq!((sum(&block[..20]), sum(&block[..36])), (0, 0), "RSDP checksums");
        let xsdt = table(&block, u64_at(&block, 24));
        assert_eq!((&xsdt[..4], sum(xsdt), xsdt.len()), (&b"XSDT"[..], 0, 52));
        let fadt = table(&block, u64_at(xsdt, 36));
        let madt = table(&block, u64_at(xsdt, 44));
        assert_eq!((&fadt[..4], sum(fadt), fadt.len(), fadt[8]), (&b"FACP"[..], 0, 276, 6));
        assert_eq!((&madt[..4], sum(madt)), (&b"APIC"[..], 0));
        let dsdt = table(&block, u64_at(fadt, 140));
        assert_eq!((&dsdt[..4], sum(dsdt)), (&b"DSDT"[..], 0));
    }

    #[test]
    fn the_fadt_is_hardware_reduced_with_sleep_registers_on_ports() {
        let block = tables(1);
        let xsdt = table(&block, u64_at(&block, 24));
        let fadt = table(&block, u64_at(xsdt, 36));
        assert_ne!(u32_at(fadt, 112) & (1 << 20), 0, "HW_REDUCED_ACPI");
        // Sleep control (offset 244) and status (256): system I/O, 8 bits, at our ports.
        assert_eq!(&fadt[244..248], &[1, 8, 0, 1]);
        assert_eq!(u64_at(fadt, 248), SLEEP_CONTROL_PORT as u64);
        assert_eq!(u64_at(fadt, 260), SLEEP_STATUS_PORT as u64);
        assert_eq!(u16::from_le_bytes([fadt[109], fadt[110]]), 0x24, "no VGA, no CMOS RTC, no 8042");
    }

    #[test]
    fn the_dsdt_holds_the_s5_package_and_the_madt_each_apic() {
        let block = tables(2);
        let xsdt = table(&block, u64_at(&block, 24));
        let fadt = table(&block, u64_at(xsdt, 36));
        let dsdt = table(&block, u64_at(fadt, 140));
        // NameOp "_S5_" PackageOp len=7 4 elements: BytePrefix 5, Zero, Zero, Zero.
        assert_eq!(&dsdt[36..49], &[0x08, b'_', b'S', b'5', b'_', 0x12, 0x07, 0x04, 0x0a, 0x05, 0, 0, 0]);
        let has = |needle: &[u8]| dsdt.windows(needle.len()).any(|w| w == needle);
        assert!(has(b"COM1") && has(b"_HID") && has(&[0x41, 0xd0, 0x05, 0x01]), "COM1, EISA id PNP0501");
        assert!(has(&[0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x00, 0x08]), "IO 0x3F8, 8 ports");
        assert!(has(&[0x89, 0x06, 0x00, 0x03, 0x01, 0x04, 0, 0, 0]), "GSI 4, edge, active high, consumer");
        let madt = table(&block, u64_at(xsdt, 44));
        assert_eq!(u32_at(madt, 36), LOCAL_APIC);
        // Two local APICs (type 0, length 8, uid i, APIC id i, enabled), then the IOAPIC (type 1).
        assert_eq!(&madt[44..52], &[0, 8, 0, 0, 1, 0, 0, 0]);
        assert_eq!(&madt[52..60], &[0, 8, 1, 1, 1, 0, 0, 0]);
        assert_eq!((madt[60], madt[61], u32_at(madt, 64), u32_at(madt, 68)), (1, 12, IOAPIC, 0));
    }
}
