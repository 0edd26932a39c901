//! The ACPI sleep registers of a hardware-reduced machine: how a Linux guest **powers off**.
//!
//! `poweroff -f` ends in the kernel's ACPI code, which takes the sleep type of the "soft off"
//! state from the DSDT's `\_S5` package and writes `SLP_TYP << 2 | SLP_EN` (bit 5) to the sleep
//! control register the FADT names ([`crate::boot::acpi`]: port 0x600, the status register at
//! 0x601). With S5's type 5 that byte is 0x34: the run ends, status 0, and one line says the guest
//! powered off. Other sleep states are not offered in the DSDT, so a write with another type, or
//! without SLP_EN, changes nothing. Both registers read 0 (no wake event pending).

use super::bus::{Caller, Effect, PortDevice};
use crate::boot::acpi::S5_SLEEP_TYPE;

/// The control register; the status register follows it.
pub const PORT: u16 = crate::boot::acpi::SLEEP_CONTROL_PORT;
pub const LEN: u16 = 2;
const CONTROL: u16 = 0;
/// SLP_EN: enter the sleep state now.
const SLEEP_ENABLE: u8 = 1 << 5;
/// SLP_TYP, bits 2–4.
const SLEEP_TYPE_SHIFT: u8 = 2;
const SLEEP_TYPE_MASK: u8 = 0x7;

/// How a run ended by a power-off says so (see [`super::is_power_event`]).
pub const POWERED_OFF: &str = "powered off (ACPI S5 through the sleep control register, port 0x600)";

pub struct AcpiSleep;

impl PortDevice for AcpiSleep {
    fn read(&self, _: u16, _: &mut dyn Caller) -> u8 {
        0
    }

    fn write(&self, offset: u16, value: u8, _: &mut dyn Caller) -> Effect {
        let sleep_type = (value >> SLEEP_TYPE_SHIFT) & SLEEP_TYPE_MASK;
        if offset == CONTROL && value & SLEEP_ENABLE != 0 && sleep_type == S5_SLEEP_TYPE {
            return Effect::End(POWERED_OFF);
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
        bus.register(PORT, LEN, Arc::new(AcpiSleep)).unwrap();
        bus
    }

    #[test]
    fn s5_with_sleep_enable_powers_off() {
        assert_eq!(bus().write(0x600, 1, &[0x34], &mut FakeCpu(0)), Effect::End(POWERED_OFF));
    }

    #[test]
    fn other_writes_change_nothing() {
        let bus = bus();
        for (port, value) in [(0x600, 0x14), (0x600, 0x20 | 3 << 2), (0x601, 0x34), (0x601, 0x80), (0x600, 0)] {
            assert_eq!(bus.write(port, 1, &[value], &mut FakeCpu(0)), Effect::Continue, "{value:#x} to {port:#x}");
        }
        let mut regs = [0xff; 2];
        bus.read(0x600, 1, &mut regs, &mut FakeCpu(0));
        assert_eq!(regs, [0, 0]);
    }
}
