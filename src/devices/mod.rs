//! Devices a guest can talk to: the port bus, the hypercall port, a 16550A UART, and the console
//! behind both.

pub mod bus;
pub mod console;
pub mod hypercall;
pub mod ports;
pub mod serial;
pub mod stdin;
