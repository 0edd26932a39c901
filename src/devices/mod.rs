//! Devices a guest can talk to: the port bus, the hypercall port, a 16550A UART, the console
//! behind both, and QEMU's fw_cfg and debug-exit.

pub mod bus;
pub mod console;
pub mod debug_exit;
pub mod fw_cfg;
pub mod hypercall;
pub mod output;
pub mod ports;
pub mod serial;
pub mod stdin;
