//! The port-I/O bus: which device answers which I/O port, and how an access reaches it.
//!
//! A device is a plain struct behind [`PortDevice`]: it reads and writes one byte at an offset of
//! the range it was registered for, as rust-vmm's vm-superio devices do. The vCPU loop hands every
//! port exit to [`PortBus::read`] or [`PortBus::write`], and the bus turns it into device accesses:
//!
//! - **String I/O** (`rep insb`, `rep outsw`, ...): KVM reports a whole `rep ins`/`rep outs` as one
//!   exit whose buffer holds count × size bytes. Each item is one access, in order.
//! - **Access sizes**: devices are byte-wide, like the PC's ISA devices. A 2- or 4-byte access is
//!   split into byte accesses at consecutive ports, as the ISA bus does: `out %ax` to 0x3F8 writes
//!   AL to THR and AH to IER.
//! - **Wide registers**: a device whose register is wider than a byte (fw_cfg's 16-bit selector,
//!   the value written to debug-exit) says so, and gets each `out` item whole instead.
//! - **Unclaimed ports** read as 0xFF and ignore writes, like an empty ISA bus.
//!
//! Nothing here knows about KVM, so the bus and each device are unit-tested alone.

use crate::exit::Fault;
use crate::kvm::error::VcpuError;
use std::sync::Arc;

/// The vCPU that makes an access, as a device sees it.
pub trait Caller {
    /// Its index (console output is coloured per vCPU).
    fn vcpu(&self) -> usize;
    /// Its RBX register now (PUTCHAR's byte is BL).
    fn rbx(&mut self) -> Result<u64, VcpuError>;
}

/// What a device access asks of the vCPU that made it, beyond the device's own state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Run on.
    Continue,
    /// Run on once console input is ready or has ended (GETCHAR's `out`, stdin a pipe).
    AwaitInput,
    /// The guest ended normally (the EXIT hypercall).
    End(&'static str),
    /// The guest faulted (an unknown hypercall).
    Fault(Fault),
    /// The host failed while serving the access (registers could not be read).
    HostError(VcpuError),
    /// The guest wrote a non-zero value to the ISA debug-exit port: its own verdict "failed".
    DebugExit(u32),
}

/// A device on the port bus.
pub trait PortDevice: Send + Sync {
    /// One byte read at `offset` from the start of the device's range.
    fn read(&self, offset: u16, caller: &mut dyn Caller) -> u8;
    /// One byte written at `offset`.
    fn write(&self, offset: u16, value: u8, caller: &mut dyn Caller) -> Effect;
    /// Whether an `out` reaches this device whole (through [`PortDevice::write_item`]) instead of
    /// byte by byte. Only for registers wider than a byte whose meaning needs the whole value:
    /// fw_cfg's 16-bit selector, the value written to debug-exit.
    fn takes_whole_items(&self) -> bool {
        false
    }
    /// One whole `out` item of 1, 2 or 4 bytes (little-endian) at `offset`, for devices that
    /// [take whole items](PortDevice::takes_whole_items).
    fn write_item(&self, offset: u16, item: &[u8], caller: &mut dyn Caller) -> Effect {
        let _ = (offset, item, caller);
        Effect::Continue
    }
}

/// What unclaimed ports read as.
pub const FLOATING: u8 = 0xff;

/// A range of ports and its device.
struct Slot {
    base: u16,
    len: u16,
    device: Arc<dyn PortDevice>,
}

/// The ports of one machine. Shared by its vCPUs; devices lock their own state.
#[derive(Default)]
pub struct PortBus {
    slots: Vec<Slot>,
}

/// Two devices registered for the same port.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("port range {base:#x}+{len} overlaps a device already on the bus")]
pub struct Overlap {
    pub base: u16,
    pub len: u16,
}

impl PortBus {
    /// Puts `device` at ports `base .. base + len`.
    pub fn register(&mut self, base: u16, len: u16, device: Arc<dyn PortDevice>) -> Result<(), Overlap> {
        let end = base as u32 + len as u32;
        let overlaps = |s: &Slot| (base as u32) < s.base as u32 + s.len as u32 && (s.base as u32) < end;
        if len == 0 || end > 0x1_0000 || self.slots.iter().any(overlaps) {
            return Err(Overlap { base, len });
        }
        self.slots.push(Slot { base, len, device });
        Ok(())
    }

    /// The device at `port` and the port's offset in its range.
    fn find(&self, port: u16) -> Option<(&dyn PortDevice, u16)> {
        let s = self.slots.iter().find(|s| port.wrapping_sub(s.base) < s.len)?;
        Some((s.device.as_ref(), port - s.base))
    }

    /// An `in` (or `rep ins`) at `port`: `data` holds whole items of `size` bytes; fills every byte.
    pub fn read(&self, port: u16, size: u8, data: &mut [u8], caller: &mut dyn Caller) {
        let size = size.max(1) as usize;
        for (i, byte) in data.iter_mut().enumerate() {
            let port = port.wrapping_add((i % size) as u16);
            *byte = match self.find(port) {
                Some((dev, offset)) => dev.read(offset, caller),
                None => FLOATING,
            };
        }
    }

    /// An `out` (or `rep outs`) at `port` of the items in `data`. Items after one that ends or
    /// faults the guest are not sent: the guest is gone. A GETCHAR request anywhere in the string
    /// still asks the vCPU to wait for input.
    pub fn write(&self, port: u16, size: u8, data: &[u8], caller: &mut dyn Caller) -> Effect {
        let size = size.max(1) as usize;
        let mut effect = Effect::Continue;
        for item in data.chunks(size) {
            match self.write_item(port, item, caller) {
                Effect::Continue => {}
                Effect::AwaitInput => effect = Effect::AwaitInput,
                end => return end,
            }
        }
        effect
    }

    /// One item of an `out`: whole to a device that takes whole items, else one byte per port.
    fn write_item(&self, port: u16, item: &[u8], caller: &mut dyn Caller) -> Effect {
        if let Some((dev, offset)) = self.find(port).filter(|(dev, _)| dev.takes_whole_items()) {
            return dev.write_item(offset, item, caller);
        }
        let mut effect = Effect::Continue;
        for (i, &byte) in item.iter().enumerate() {
            let Some((dev, offset)) = self.find(port.wrapping_add(i as u16)) else { continue };
            match dev.write(offset, byte, caller) {
                Effect::Continue => {}
                Effect::AwaitInput => effect = Effect::AwaitInput,
                end => return end,
            }
        }
        effect
    }
}

/// A vCPU for the devices' unit tests: vCPU 0, with the RBX it is given.
#[cfg(test)]
pub(crate) struct FakeCpu(pub u64);

#[cfg(test)]
impl Caller for FakeCpu {
    fn vcpu(&self) -> usize {
        0
    }
    fn rbx(&mut self) -> Result<u64, VcpuError> {
        Ok(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Records every access; reads return 0x10 + offset; a write of 0xEE ends the guest.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<(char, u16, u8)>>);

    impl PortDevice for Recorder {
        fn read(&self, offset: u16, _: &mut dyn Caller) -> u8 {
            let v = 0x10 + offset as u8;
            self.0.lock().unwrap().push(('r', offset, v));
            v
        }
        fn write(&self, offset: u16, value: u8, _: &mut dyn Caller) -> Effect {
            self.0.lock().unwrap().push(('w', offset, value));
            match value {
                0xee => Effect::End("test end"),
                0xaa => Effect::AwaitInput,
                _ => Effect::Continue,
            }
        }
    }

    fn bus() -> (PortBus, Arc<Recorder>) {
        let dev = Arc::new(Recorder::default());
        let mut bus = PortBus::default();
        bus.register(0x3f8, 8, dev.clone()).unwrap();
        (bus, dev)
    }

    fn log(dev: &Recorder) -> Vec<(char, u16, u8)> {
        std::mem::take(&mut dev.0.lock().unwrap())
    }

    #[test]
    fn a_string_read_is_one_access_per_item() {
        let (bus, dev) = bus();
        let mut data = [0u8; 8];
        bus.read(0x3f8, 1, &mut data, &mut FakeCpu(0));
        assert_eq!(data, [0x10; 8]);
        assert_eq!(log(&dev).len(), 8);
    }

    #[test]
    fn wide_accesses_reach_the_following_ports() {
        let (bus, dev) = bus();
        let mut data = [0u8; 8];
        bus.read(0x3f8, 4, &mut data, &mut FakeCpu(0)); // rep insl, 2 items
        assert_eq!(data, [0x10, 0x11, 0x12, 0x13, 0x10, 0x11, 0x12, 0x13]);
        bus.write(0x3fe, 2, &[1, 2], &mut FakeCpu(0)); // 0x3fe and 0x3ff
        assert_eq!(log(&dev)[8..], [('w', 6, 1), ('w', 7, 2)]);
    }

    #[test]
    fn unclaimed_ports_float_high_and_drop_writes() {
        let (bus, dev) = bus();
        let mut data = [0u8; 6];
        bus.read(0x3fe, 2, &mut data, &mut FakeCpu(0)); // 0x3fe, 0x3ff claimed; then 0x3fe again
        assert_eq!(data, [0x16, 0x17, 0x16, 0x17, 0x16, 0x17]);
        bus.read(0x3ff, 2, &mut data[..2], &mut FakeCpu(0)); // 0x3ff claimed, 0x400 not
        assert_eq!(data[..2], [0x17, FLOATING]);
        let mut word = [0u8; 2];
        bus.read(0xffff, 2, &mut word, &mut FakeCpu(0)); // wraps to port 0
        assert_eq!(word, [FLOATING; 2]);
        log(&dev);
        assert_eq!(bus.write(0x60, 1, &[1, 2, 3], &mut FakeCpu(0)), Effect::Continue);
        assert!(log(&dev).is_empty());
    }

    #[test]
    fn a_string_write_stops_at_the_end_of_its_guest() {
        let (bus, dev) = bus();
        assert_eq!(bus.write(0x3f8, 1, &[1, 0xaa, 2], &mut FakeCpu(0)), Effect::AwaitInput);
        assert_eq!(bus.write(0x3f8, 1, &[3, 0xee, 4], &mut FakeCpu(0)), Effect::End("test end"));
        let values: Vec<u8> = log(&dev).iter().map(|a| a.2).collect();
        assert_eq!(values, [1, 0xaa, 2, 3, 0xee]);
    }

    #[test]
    fn overlapping_ranges_are_refused() {
        let (mut bus, dev) = bus();
        assert!(bus.register(0x3ff, 1, dev.clone()).is_err());
        assert!(bus.register(0x3f0, 9, dev.clone()).is_err());
        assert!(bus.register(0x3f0, 8, dev.clone()).is_ok());
        assert!(bus.register(0x500, 0, dev).is_err());
    }
}
