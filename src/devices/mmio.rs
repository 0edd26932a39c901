//! The MMIO bus: which device answers a guest-physical address outside RAM, and how an access
//! reaches it.
//!
//! A load or store to an address that no memory slot backs leaves the guest as a `KVM_EXIT_MMIO`
//! of 1, 2, 4 or 8 bytes. The vCPU loop hands it to [`MmioBus::read`] or [`MmioBus::write`]:
//!
//! - **Whole accesses**: unlike the byte-wide ISA ports of [`super::bus`], a memory-mapped register
//!   gets the access whole, at its offset in the device's range, as a CPU's bus cycle would.
//! - **Unclaimed addresses** read as all ones and drop writes, like a PC's empty bus. So does an
//!   access that starts in a device's range but runs past its end.
//!
//! No device of minikvm's is memory-mapped yet: the guests' PC devices are I/O ports, and with an
//! in-kernel irqchip KVM itself answers the local APIC and IOAPIC pages. A device that is (an HPET,
//! virtio-mmio) registers here and the loop does not change. Nothing here knows about KVM.

use std::sync::Arc;

/// What an unclaimed address reads as, in every byte.
pub const FLOATING: u8 = 0xff;

/// A device on the MMIO bus.
pub trait MmioDevice: Send + Sync {
    /// A read of `data.len()` bytes (1, 2, 4 or 8) at `offset` from the start of the device's
    /// range, little-endian: the device fills every byte of `data`.
    fn read(&self, offset: u64, data: &mut [u8]);
    /// A write of `data` at `offset`.
    fn write(&self, offset: u64, data: &[u8]);
}

/// A range of guest-physical addresses and its device.
struct Slot {
    base: u64,
    len: u64,
    device: Arc<dyn MmioDevice>,
}

/// The memory-mapped devices of one machine. Shared by its vCPUs; devices lock their own state.
#[derive(Default)]
pub struct MmioBus {
    slots: Vec<Slot>,
}

/// A range that overlaps another device's, wraps around the address space or is empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("MMIO range {base:#x}+{len:#x} is empty, wraps or overlaps a device already on the bus")]
pub struct Overlap {
    pub base: u64,
    pub len: u64,
}

impl MmioBus {
    /// Puts `device` at guest-physical addresses `base .. base + len`.
    pub fn register(&mut self, base: u64, len: u64, device: Arc<dyn MmioDevice>) -> Result<(), Overlap> {
        let end = base.checked_add(len).ok_or(Overlap { base, len })?;
        let overlaps = |s: &Slot| base < s.base + s.len && s.base < end;
        if len == 0 || self.slots.iter().any(overlaps) {
            return Err(Overlap { base, len });
        }
        self.slots.push(Slot { base, len, device });
        Ok(())
    }

    /// The device whose range holds all `len` bytes at `addr`, and the offset of `addr` in it.
    fn find(&self, addr: u64, len: usize) -> Option<(&dyn MmioDevice, u64)> {
        let s = self.slots.iter().find(|s| addr.wrapping_sub(s.base) < s.len)?;
        let offset = addr - s.base;
        (offset.checked_add(len as u64)? <= s.len).then_some((s.device.as_ref(), offset))
    }

    /// A read at `addr` into `data`; every byte is filled. Returns whether a device answered.
    pub fn read(&self, addr: u64, data: &mut [u8]) -> bool {
        match self.find(addr, data.len()) {
            Some((dev, offset)) => {
                dev.read(offset, data);
                true
            }
            None => {
                data.fill(FLOATING);
                false
            }
        }
    }

    /// A write of `data` at `addr`. Returns whether a device took it (else it is dropped).
    pub fn write(&self, addr: u64, data: &[u8]) -> bool {
        match self.find(addr, data.len()) {
            Some((dev, offset)) => {
                dev.write(offset, data);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Eight bytes of registers that remember what was written, and each access as seen.
    #[derive(Default)]
    struct Scratch {
        bytes: Mutex<[u8; 8]>,
        seen: Mutex<Vec<(&'static str, u64, usize)>>,
    }

    impl MmioDevice for Scratch {
        fn read(&self, offset: u64, data: &mut [u8]) {
            self.seen.lock().unwrap().push(("read", offset, data.len()));
            let bytes = self.bytes.lock().unwrap();
            for (i, b) in data.iter_mut().enumerate() {
                *b = bytes[(offset as usize + i) % 8];
            }
        }
        fn write(&self, offset: u64, data: &[u8]) {
            self.seen.lock().unwrap().push(("write", offset, data.len()));
            let mut bytes = self.bytes.lock().unwrap();
            for (i, b) in data.iter().enumerate() {
                bytes[(offset as usize + i) % 8] = *b;
            }
        }
    }

    fn bus_with_scratch_at(base: u64) -> (MmioBus, Arc<Scratch>) {
        let dev = Arc::new(Scratch::default());
        let mut bus = MmioBus::default();
        bus.register(base, 8, dev.clone()).unwrap();
        (bus, dev)
    }

    #[test]
    fn a_device_gets_each_access_whole_at_its_offset() {
        let (bus, dev) = bus_with_scratch_at(0xfed0_0000);
        assert!(bus.write(0xfed0_0004, &0x1234_5678u32.to_le_bytes()));
        let mut word = [0u8; 2];
        assert!(bus.read(0xfed0_0006, &mut word));
        assert_eq!(u16::from_le_bytes(word), 0x1234);
        let mut quad = [0u8; 8];
        assert!(bus.read(0xfed0_0000, &mut quad));
        assert_eq!(u64::from_le_bytes(quad), 0x1234_5678_0000_0000);
        assert_eq!(*dev.seen.lock().unwrap(), vec![("write", 4, 4), ("read", 6, 2), ("read", 0, 8)]);
    }

    #[test]
    fn unclaimed_addresses_read_all_ones_and_drop_writes() {
        let (bus, dev) = bus_with_scratch_at(0x1000);
        let mut data = [0u8; 4];
        assert!(!bus.read(0x0ffc, &mut data), "just below the device");
        assert_eq!(data, [FLOATING; 4]);
        assert!(!bus.write(0x1008, &[1]), "just past its end");
        assert!(!bus.read(u64::MAX, &mut data[..1]));
        assert!(dev.seen.lock().unwrap().is_empty(), "the device saw none of it");
    }

    #[test]
    fn an_access_running_past_the_devices_end_is_unclaimed() {
        let (bus, dev) = bus_with_scratch_at(0x1000);
        let mut data = [0u8; 4];
        assert!(!bus.read(0x1006, &mut data));
        assert_eq!(data, [FLOATING; 4]);
        assert!(!bus.write(0x1007, &[1, 2]));
        assert!(dev.seen.lock().unwrap().is_empty());
    }

    #[test]
    fn overlapping_wrapping_and_empty_ranges_are_refused() {
        let (mut bus, _) = bus_with_scratch_at(0x1000);
        let dev = Arc::new(Scratch::default());
        assert!(bus.register(0x1004, 8, dev.clone()).is_err(), "overlaps");
        assert!(bus.register(0x0ffc, 8, dev.clone()).is_err(), "overlaps from below");
        assert!(bus.register(u64::MAX - 3, 8, dev.clone()).is_err(), "wraps");
        assert!(bus.register(0x2000, 0, dev.clone()).is_err(), "empty");
        assert!(bus.register(0x1008, 8, dev).is_ok(), "right after it");
    }
}
