//! Devices a guest can talk to: the port bus and the MMIO bus, the hypercall port, a 16550A UART, the console
//! behind both, QEMU's fw_cfg and debug-exit, and for Linux guests the keyboard controller's
//! reset and the ACPI power-off port.

pub(crate) mod acpi_sleep;
pub(crate) mod bus;
pub mod console;
pub(crate) mod debug_exit;
pub(crate) mod fw_cfg;
pub(crate) mod hypercall;
pub(crate) mod i8042;
pub(crate) mod mmio;
pub mod output;
pub(crate) mod ports;
pub(crate) mod serial;
pub(crate) mod stdin;

/// Whether a guest's normal end (the `why` of [`bus::Effect::End`]) is the machine powering off or
/// resetting, which minikvm announces in one line on stderr (a Linux guest's end).
pub fn is_power_event(why: &str) -> bool {
    why == acpi_sleep::POWERED_OFF || why == i8042::REBOOTED
}
