//! QEMU's ISA debug-exit device at port 0xF4: how a test kernel written for `qemu -kernel` ends
//! the machine with its own verdict (`-device isa-debug-exit,iobase=0xf4,iosize=4`).
//!
//! A write of value v (`outb`, `outw` or `outl`, the whole value) ends the run. v = 0 is a normal
//! end (status 0), the way test suites say "passed". Any other v is the guest's own "failed":
//! minikvm ends with [`crate::error::ExitStatus::DebugExit`] (9) and one line naming v. (QEMU
//! itself exits with (v << 1) | 1, which can never be 0; minikvm keeps 0 for success and one
//! status for every failure, so scripts can tell a guest's verdict from a crash.)
//! Reads float high (0xFF), as on QEMU.

use super::bus::{Caller, Effect, PortDevice, FLOATING};

/// The port (QEMU's usual `iobase=0xf4`).
pub const PORT: u16 = 0xf4;
/// Its width: an `outl` reaches it whole.
pub const LEN: u16 = 4;

pub struct DebugExit;

impl PortDevice for DebugExit {
    fn read(&self, _: u16, _: &mut dyn Caller) -> u8 {
        FLOATING
    }

    fn write(&self, _: u16, _: u8, _: &mut dyn Caller) -> Effect {
        Effect::Continue // not reached: whole items go to write_item
    }

    fn takes_whole_items(&self) -> bool {
        true
    }

    fn write_item(&self, _: u16, item: &[u8], _: &mut dyn Caller) -> Effect {
        let mut bytes = [0u8; 4];
        for (b, v) in bytes.iter_mut().zip(item) {
            *b = *v;
        }
        match u32::from_le_bytes(bytes) {
            0 => Effect::End("debug-exit 0"),
            v => Effect::DebugExit(v),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::bus::{FakeCpu, PortBus};
    use std::sync::Arc;

    fn bus() -> PortBus {
        let mut bus = PortBus::default();
        bus.register(PORT, LEN, Arc::new(DebugExit)).unwrap();
        bus
    }

    #[test]
    fn zero_ends_normally_and_any_other_value_is_the_guests_failure() {
        let bus = bus();
        assert_eq!(bus.write(PORT, 1, &[0], &mut FakeCpu(0)), Effect::End("debug-exit 0"));
        assert_eq!(bus.write(PORT, 4, &[0, 0, 0, 0], &mut FakeCpu(0)), Effect::End("debug-exit 0"));
        assert_eq!(bus.write(PORT, 1, &[0x31], &mut FakeCpu(0)), Effect::DebugExit(0x31));
        assert_eq!(bus.write(PORT, 2, &[0x34, 0x12], &mut FakeCpu(0)), Effect::DebugExit(0x1234));
    }

    #[test]
    fn a_wide_write_is_one_value_not_its_low_byte() {
        // Byte-wise, `outl 0x100` would be a 0 first: a false "passed".
        let bus = bus();
        assert_eq!(bus.write(PORT, 4, &0x100u32.to_le_bytes(), &mut FakeCpu(0)), Effect::DebugExit(0x100));
        assert_eq!(bus.write(PORT + 2, 2, &[0, 1], &mut FakeCpu(0)), Effect::DebugExit(0x100), "at any offset");
    }

    #[test]
    fn a_string_write_ends_at_its_first_item_and_reads_float() {
        let bus = bus();
        assert_eq!(bus.write(PORT, 1, &[7, 0], &mut FakeCpu(0)), Effect::DebugExit(7));
        let mut data = [0u8; 4];
        bus.read(PORT, 4, &mut data, &mut FakeCpu(0));
        assert_eq!(data, [FLOATING; 4]);
    }
}
