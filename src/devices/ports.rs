//! The machine's port map: which device answers which I/O ports. Every boot — real-mode flat
//! guests, `--paging`, `--long-mode` and kernels — gets the same map, one PC:
//!
//! | ports | device |
//! |---|---|
//! | 0xF4–0xF7 | QEMU's ISA debug-exit ([`super::debug_exit`]): a write ends the run |
//! | 0x3F8–0x3FF | COM1, the 16550A UART ([`super::serial`]) wired to the console |
//! | 0x500 | the hypercall port ([`super::hypercall`]) |
//! | 0x510–0x511 | QEMU's fw_cfg ([`super::fw_cfg`]): signature, RAM size, CPU count |
//! | 0x60–0x64 | Linux guests only: the keyboard controller's reset ([`super::i8042`]) |
//! | 0x600–0x601 | Linux guests only: the ACPI sleep registers, power-off ([`super::acpi_sleep`]) |
//!
//! The two QEMU devices are there so that kernels written for `qemu -kernel` run unchanged; a
//! real-mode guest of the C project never touches those ports. COM1 and the hypercall port are thin
//! adapters from the bus's byte accesses to the console, which owns the UART's registers and the
//! input queue under one lock.

use super::acpi_sleep::{self, AcpiSleep};
use super::bus::{Caller, Effect, PortBus, PortDevice};
use super::console::Console;
use super::debug_exit::{self, DebugExit};
use super::fw_cfg::{self, FwCfg};
use super::hypercall::{self, Hypercall, NO_INPUT};
use super::i8042::{self, I8042};
use super::serial::COM1;
use crate::exit::Fault;
use std::sync::Arc;

/// The bus with every device a guest can reach, for a machine of `ram_bytes` and `cpus` vCPUs.
pub fn pc_ports(console: &Arc<Console>, ram_bytes: u64, cpus: u16) -> PortBus {
    let mut bus = PortBus::default();
    let placed = bus
        .register(COM1, 8, Arc::new(Com1(console.clone())))
        .and_then(|()| bus.register(hypercall::PORT, 1, Arc::new(HypercallPort(console.clone()))))
        .and_then(|()| bus.register(fw_cfg::PORT, 2, Arc::new(FwCfg::new(ram_bytes, cpus))))
        .and_then(|()| bus.register(debug_exit::PORT, debug_exit::LEN, Arc::new(DebugExit)));
    debug_assert!(placed.is_ok(), "the PC's port map has an overlap");
    bus
}

/// What a Linux guest's PC has besides: the keyboard controller's reset (0x60–0x64) and the ACPI
/// sleep registers (0x600–0x601) that power it off. Only Linux guests get them, so that no other
/// guest ends by touching those ports.
pub fn add_linux_ports(bus: &mut PortBus) {
    let placed = bus
        .register(i8042::PORT, i8042::LEN, Arc::new(I8042))
        .and_then(|()| bus.register(acpi_sleep::PORT, acpi_sleep::LEN, Arc::new(AcpiSleep)));
    debug_assert!(placed.is_ok(), "the Linux ports overlap the PC's");
}

/// COM1: register accesses go to the console's UART model.
struct Com1(Arc<Console>);

impl PortDevice for Com1 {
    fn read(&self, offset: u16, _: &mut dyn Caller) -> u8 {
        self.0.serial_read(offset)
    }

    fn write(&self, offset: u16, value: u8, caller: &mut dyn Caller) -> Effect {
        self.0.serial_write(caller.vcpu(), offset, value);
        Effect::Continue
    }
}

/// The hypercall port: `out` asks for a service (AL), `in` is GETCHAR's answer.
struct HypercallPort(Arc<Console>);

impl PortDevice for HypercallPort {
    fn read(&self, _: u16, _: &mut dyn Caller) -> u8 {
        self.0.getchar().unwrap_or(NO_INPUT)
    }

    fn write(&self, _: u16, al: u8, caller: &mut dyn Caller) -> Effect {
        match Hypercall::decode(al) {
            Hypercall::Exit => Effect::End("EXIT hypercall"),
            Hypercall::Putchar => match caller.rbx() {
                Ok(rbx) => {
                    self.0.put(caller.vcpu(), rbx as u8);
                    Effect::Continue
                }
                Err(e) => Effect::HostError(e),
            },
            // The `in` that follows answers; on a pipe, the vCPU first waits for a byte or the end.
            Hypercall::Getchar => Effect::AwaitInput,
            Hypercall::Unknown(n) => Effect::Fault(Fault::UnknownHypercall(n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::bus::FakeCpu;
    use crate::devices::console::lock;

    use crate::devices::output::Shared;

    fn machine(input: &[u8]) -> (PortBus, Shared) {
        let out = Shared::default();
        let console = Console::new(Box::new(out.clone()), false, false);
        console.push_input(input);
        (pc_ports(&console, 32 << 20, 1), out)
    }

    #[test]
    fn hypercalls_decode_from_al() {
        let (bus, out) = machine(b"");
        let cpu = &mut FakeCpu(b'Z' as u64);
        assert_eq!(bus.write(0x500, 1, &[1], cpu), Effect::Continue);
        assert_eq!(*lock(&out.0), b"Z");
        assert_eq!(bus.write(0x500, 1, &[2], cpu), Effect::AwaitInput);
        assert_eq!(bus.write(0x500, 1, &[0], cpu), Effect::End("EXIT hypercall"));
        assert_eq!(bus.write(0x500, 1, &[0x7f], cpu), Effect::Fault(Fault::UnknownHypercall(0x7f)));
    }

    #[test]
    fn getchar_string_reads_give_input_bytes_in_order_then_no_input() {
        let (bus, _) = machine(b"AB");
        let mut data = [0u8; 3];
        bus.read(0x500, 1, &mut data, &mut FakeCpu(0));
        assert_eq!(data, [b'A', b'B', NO_INPUT]);
    }

    #[test]
    fn uart_string_io_reads_rbr_and_sends_every_byte() {
        let (bus, out) = machine(b"xyz");
        let mut data = [0u8; 3];
        bus.read(0x3f8, 1, &mut data, &mut FakeCpu(0));
        assert_eq!(&data, b"xyz");
        assert_eq!(bus.write(0x3f8, 1, b"hello", &mut FakeCpu(0)), Effect::Continue);
        assert_eq!(*lock(&out.0), b"hello");
    }

    #[test]
    fn the_qemu_devices_are_on_the_map() {
        let (bus, _) = machine(b"");
        bus.write(0x510, 2, &[0, 0], &mut FakeCpu(0));
        let mut sig = [0u8; 4];
        bus.read(0x511, 1, &mut sig, &mut FakeCpu(0));
        assert_eq!(&sig, b"QEMU");
        assert_eq!(bus.write(0xf4, 4, &[3, 0, 0, 0], &mut FakeCpu(0)), Effect::DebugExit(3));
    }

    #[test]
    fn only_linux_guests_reset_and_power_off_through_ports() {
        let (mut bus, _) = machine(b"");
        assert_eq!(bus.write(0x64, 1, &[0xfe], &mut FakeCpu(0)), Effect::Continue, "no 8042 by default");
        assert_eq!(bus.write(0x600, 1, &[0x34], &mut FakeCpu(0)), Effect::Continue, "no ACPI port by default");
        add_linux_ports(&mut bus);
        assert_eq!(bus.write(0x64, 1, &[0xfe], &mut FakeCpu(0)), Effect::End(i8042::REBOOTED));
        assert_eq!(bus.write(0x600, 1, &[0x34], &mut FakeCpu(0)), Effect::End(acpi_sleep::POWERED_OFF));
        assert!(crate::devices::is_power_event(i8042::REBOOTED) && !crate::devices::is_power_event("hlt"));
    }
}
