//! QEMU's firmware configuration device (fw_cfg), the I/O-port interface: how a kernel written for
//! `qemu -kernel` asks the machine how much RAM and how many CPUs it has.
//!
//! A kernel writes a 16-bit key to the selector port 0x510 (`outw`), then reads the item's bytes
//! one at a time from the data port 0x511 (`inb`); integers are little-endian. Each write of the
//! selector starts the item again from its first byte; reading past its end, or any byte of a
//! key minikvm does not know, gives 0 (as QEMU does). The items minikvm offers:
//!
//! | key | item | bytes |
//! |---|---|---|
//! | 0x0000 | signature `"QEMU"` | 4 |
//! | 0x0001 | interface id: 1 = the traditional port interface (no DMA) | 4 |
//! | 0x0003 | RAM size in bytes | 8 |
//! | 0x0005 | number of CPUs | 2 |
//! | 0x000F | maximum number of CPUs | 2 |
//! | 0x0019 | the file directory: a big-endian count of files, here 0 | 4 |
//!
//! The selector is a 16-bit register, so this device takes whole `out` items from the bus: a
//! 2-byte write selects its key; a 1-byte write selects the key in its byte. Writes to the data
//! port are ignored, as QEMU has done since 2.4. A read of the selector port reads 0.

use super::bus::{Caller, Effect, PortDevice};
use std::sync::Mutex;

/// The selector port; the data port is the next one.
pub const PORT: u16 = 0x510;
/// Offset of the data port in the device's two ports.
const DATA: u16 = 1;

pub const KEY_SIGNATURE: u16 = 0x0000;
pub const KEY_ID: u16 = 0x0001;
pub const KEY_RAM_SIZE: u16 = 0x0003;
pub const KEY_NB_CPUS: u16 = 0x0005;
pub const KEY_MAX_CPUS: u16 = 0x000f;
pub const KEY_FILE_DIR: u16 = 0x0019;

/// The item a selector write chose, and how far the kernel has read it.
#[derive(Default)]
struct Cursor {
    item: Vec<u8>,
    next: usize,
}

/// The device: what the machine is, and the item being read.
pub struct FwCfg {
    ram_bytes: u64,
    cpus: u16,
    cursor: Mutex<Cursor>,
}

impl FwCfg {
    pub fn new(ram_bytes: u64, cpus: u16) -> Self {
        FwCfg { ram_bytes, cpus, cursor: Mutex::default() }
    }

    /// The bytes of the item at `key` (empty for a key minikvm does not offer: reads give 0).
    pub fn item(&self, key: u16) -> Vec<u8> {
        match key {
            KEY_SIGNATURE => b"QEMU".to_vec(),
            KEY_ID => 1u32.to_le_bytes().to_vec(),
            KEY_RAM_SIZE => self.ram_bytes.to_le_bytes().to_vec(),
            KEY_NB_CPUS | KEY_MAX_CPUS => self.cpus.to_le_bytes().to_vec(),
            KEY_FILE_DIR => 0u32.to_be_bytes().to_vec(),
            _ => Vec::new(),
        }
    }

    fn select(&self, key: u16) {
        *super::console::lock(&self.cursor) = Cursor { item: self.item(key), next: 0 };
    }
}

impl PortDevice for FwCfg {
    fn read(&self, offset: u16, _: &mut dyn Caller) -> u8 {
        if offset != DATA {
            return 0;
        }
        let mut c = super::console::lock(&self.cursor);
        let byte = c.item.get(c.next).copied().unwrap_or(0);
        c.next = c.next.saturating_add(1).min(c.item.len());
        byte
    }

    fn write(&self, _: u16, _: u8, _: &mut dyn Caller) -> Effect {
        Effect::Continue // not reached: whole items go to write_item
    }

    fn takes_whole_items(&self) -> bool {
        true
    }

    fn write_item(&self, offset: u16, item: &[u8], _: &mut dyn Caller) -> Effect {
        if offset != DATA {
            let key = u16::from_le_bytes([item.first().copied().unwrap_or(0), item.get(1).copied().unwrap_or(0)]);
            self.select(key);
        }
        Effect::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::bus::{FakeCpu, PortBus};
    use std::sync::Arc;

    fn bus() -> PortBus {
        let mut bus = PortBus::default();
        bus.register(PORT, 2, Arc::new(FwCfg::new(32 << 20, 2))).unwrap();
        bus
    }

    /// `outw key, 0x510`, then `n` × `inb 0x511`.
    fn read_item(bus: &PortBus, key: u16, n: usize) -> Vec<u8> {
        bus.write(PORT, 2, &key.to_le_bytes(), &mut FakeCpu(0));
        let mut data = vec![0u8; n];
        bus.read(PORT + 1, 1, &mut data, &mut FakeCpu(0)); // as `rep insb`: one access per byte
        data
    }

    #[test]
    fn every_key_reads_as_qemu_gives_it() {
        let bus = bus();
        assert_eq!(read_item(&bus, KEY_SIGNATURE, 4), b"QEMU");
        assert_eq!(read_item(&bus, KEY_ID, 4), [1, 0, 0, 0]);
        assert_eq!(read_item(&bus, KEY_RAM_SIZE, 8), (32u64 << 20).to_le_bytes());
        assert_eq!(read_item(&bus, KEY_NB_CPUS, 2), [2, 0]);
        assert_eq!(read_item(&bus, KEY_MAX_CPUS, 2), [2, 0]);
        assert_eq!(read_item(&bus, KEY_FILE_DIR, 4), [0; 4]);
    }

    #[test]
    fn unknown_keys_and_bytes_past_the_end_read_zero() {
        let bus = bus();
        assert_eq!(read_item(&bus, 0x4242, 6), [0; 6]);
        assert_eq!(read_item(&bus, 0xffff, 3), [0; 3]);
        assert_eq!(read_item(&bus, KEY_SIGNATURE, 7), [b'Q', b'E', b'M', b'U', 0, 0, 0]);
    }

    #[test]
    fn selecting_again_starts_the_item_over_and_data_writes_are_ignored() {
        let bus = bus();
        assert_eq!(read_item(&bus, KEY_SIGNATURE, 2), b"QE");
        assert_eq!(bus.write(PORT + 1, 1, &[0x05], &mut FakeCpu(0)), Effect::Continue);
        let mut rest = [0u8; 2];
        bus.read(PORT + 1, 1, &mut rest, &mut FakeCpu(0));
        assert_eq!(&rest, b"MU", "a data-port write changes nothing");
        assert_eq!(read_item(&bus, KEY_SIGNATURE, 4), b"QEMU");
        bus.write(PORT, 1, &[KEY_NB_CPUS as u8], &mut FakeCpu(0)); // outb: the key is the byte
        let mut n = [0u8; 2];
        bus.read(PORT + 1, 1, &mut n, &mut FakeCpu(0));
        assert_eq!(n, [2, 0]);
        let mut sel = [0xaau8; 2];
        bus.read(PORT, 1, &mut sel, &mut FakeCpu(0));
        assert_eq!(sel, [0, 0], "the selector port reads 0");
    }

    #[test]
    fn a_wide_read_of_the_data_port_reaches_the_next_port() {
        // ISA splitting: `inw 0x511` reads the data port, then unclaimed 0x512.
        let bus = bus();
        bus.write(PORT, 2, &KEY_SIGNATURE.to_le_bytes(), &mut FakeCpu(0));
        let mut w = [0u8; 2];
        bus.read(PORT + 1, 2, &mut w, &mut FakeCpu(0));
        assert_eq!(w, [b'Q', crate::devices::bus::FLOATING]);
    }
}
