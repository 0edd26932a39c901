//! Devices a guest can talk to: the port bus, the hypercall port, a 16550A UART, the console
//! behind both, QEMU's fw_cfg and debug-exit, and for Linux guests the keyboard controller's
//! reset and the ACPI power-off port.

pub mod acpi_sleep;
pub mod bus;
pub mod console;
pub mod debug_exit;
pub mod fw_cfg;
pub mod hypercall;
pub mod i8042;
pub mod output;
pub mod ports;
pub mod serial;
pub mod stdin;

/// Whether a guest's normal end (the `why` of [`bus::Effect::End`]) is the machine powering off or
/// resetting, which minikvm announces in one line on stderr (a Linux guest's end).
pub fn is_power_event(why: &str) -> bool {
    why == acpi_sleep::POWERED_OFF || why == i8042::REBOOTED
}
