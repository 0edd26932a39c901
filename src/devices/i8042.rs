//! The PC keyboard controller (Intel 8042) at ports 0x60 and 0x64 — only the part a kernel uses to
//! **reset the machine**: writing command 0xFE to port 0x64 pulses the CPU's reset line low. That is
//! how Linux reboots a PC (`reboot -f`, and `reboot=k` on its command line makes it the first
//! way it tries). minikvm does not restart the guest: the run ends, status 0, and one line says the
//! guest rebooted.
//!
//! Before each command Linux waits for the controller's input buffer to be empty (status bit 1
//! clear): the status register reads 0x04, "system flag set, both buffers empty". No keyboard is
//! attached: the data port reads 0 and writes to it are dropped. The ACPI tables tell Linux there
//! is no 8042 ([`crate::boot::acpi`]), so it never probes for a keyboard here.

use super::bus::{Caller, Effect, PortDevice, FLOATING};

/// The data port; the status/command port is 4 above it.
pub const PORT: u16 = 0x60;
/// 0x60–0x64: the data port and the command port. (0x61 in between is the PIT's speaker gate,
/// which KVM's in-kernel PIT answers before the bus sees it.)
pub const LEN: u16 = 5;
const COMMAND: u16 = 4;
/// Command 0xFE: pulse output line 0 (the CPU's reset) low.
const PULSE_RESET: u8 = 0xfe;
/// Status: the system flag (bit 2), set once the controller passed its self-test at power-on.
const STATUS_SYSTEM: u8 = 0x04;

/// How a run ended by a reset says so (see [`super::is_power_event`]).
pub const REBOOTED: &str = "rebooted (reset through the keyboard controller, port 0x64)";

pub struct I8042;

impl PortDevice for I8042 {
    fn read(&self, offset: u16, _: &mut dyn Caller) -> u8 {
        match offset {
            0 => 0,
            COMMAND => STATUS_SYSTEM,
            _ => FLOATING,
        }
    }

    fn write(&self, offset: u16, value: u8, _: &mut dyn Caller) -> Effect {
        match (offset, value) {
            (COMMAND, PULSE_RESET) => Effect::End(REBOOTED),
            _ => Effect::Continue,
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
        bus.register(PORT, LEN, Arc::new(I8042)).unwrap();
        bus
    }

    #[test]
    fn the_reset_pulse_ends_the_run_and_other_commands_do_not() {
        let bus = bus();
        assert_eq!(bus.write(0x64, 1, &[0xfe], &mut FakeCpu(0)), Effect::End(REBOOTED));
        for other in [0x20, 0x60, 0xaa, 0xad, 0xff] {
            assert_eq!(bus.write(0x64, 1, &[other], &mut FakeCpu(0)), Effect::Continue, "command {other:#x}");
        }
        assert_eq!(bus.write(0x60, 1, &[0xfe], &mut FakeCpu(0)), Effect::Continue, "0xFE as data is no reset");
    }

    #[test]
    fn the_status_says_ready_so_linux_does_not_wait() {
        let bus = bus();
        let mut status = [0u8; 1];
        bus.read(0x64, 1, &mut status, &mut FakeCpu(0));
        assert_eq!(status[0] & 0x02, 0, "input buffer empty");
        assert_eq!(status[0], 0x04);
        let mut data = [0xaa; 1];
        bus.read(0x60, 1, &mut data, &mut FakeCpu(0));
        assert_eq!(data[0], 0);
    }
}
