//! Devices a guest can talk to: the hypercall port, a 16550A UART, and the console behind both.

pub mod console;
pub mod hypercall;
pub mod serial;
pub mod stdin;
