//! One VM exit as a `-vv` log line, in words and hex, and the extra detail `-vvv` adds.
//!
//! ```text
//! vCPU 0  io-out  0x500  hypercall PUTCHAR 'H'  at 0000:000f
//! ```
//!
//! Ports are hex, as in the docs and the port map ([`crate::devices::ports`]); the device that
//! answers a port is named; a hypercall says which service and, for PUTCHAR, which byte.

use crate::devices::hypercall::{self, Hypercall};
use crate::exit::Exit;
use kvm_bindings::kvm_regs;

/// The device behind a port, as the PC's port map places it.
pub fn port_device(port: u16) -> &'static str {
    match port {
        hypercall::PORT => "hypercall",
        0x3f8..=0x3ff => "COM1",
        0x510..=0x511 => "fw_cfg",
        0xf4..=0xf7 => "debug-exit",
        _ => "no device",
    }
}

/// A byte as a student reads it: `'H'`, `'\n'`, or hex when it is not printable.
fn byte(b: u8) -> String {
    match b {
        b'\n' => "'\\n'".into(),
        b'\r' => "'\\r'".into(),
        0x20..=0x7e => format!("'{}'", b as char),
        _ => format!("{b:#04x}"),
    }
}

/// What an exit did, in words: `io-out  0x500  hypercall PUTCHAR 'H'`.
fn what(exit: &Exit, regs: &kvm_regs) -> String {
    match *exit {
        Exit::IoOut { port: hypercall::PORT, value, .. } => match Hypercall::decode(value as u8) {
            Hypercall::Putchar => format!("io-out  {:#x}  hypercall PUTCHAR {}", hypercall::PORT, byte(regs.rbx as u8)),
            call => format!("io-out  {:#x}  hypercall {} ({:#04x})", hypercall::PORT, call.name(), call.number()),
        },
        Exit::IoOut { port, value, .. } => format!("io-out  {port:#x}  {}  value {value:#x}", port_device(port)),
        Exit::IoIn { port, .. } => format!("io-in   {port:#x}  {}", port_device(port)),
        Exit::MmioRead { addr, len } => format!("mmio-read   {addr:#x}  {len} bytes"),
        Exit::MmioWrite { addr, len, value } => format!("mmio-write  {addr:#x}  {len} bytes  value {value:#x}"),
        Exit::FailEntry { reason } => format!("{}  reason {reason:#x}", exit.name()),
        Exit::InternalError { suberror } => format!("{}  suberror {suberror}", exit.name()),
        Exit::Debug { exception, pc, dr6 } => {
            format!("{}  exception {exception}  pc {pc:#x}  dr6 {dr6:#x}", exit.name())
        }
        _ => exit.name().to_string(),
    }
}

/// The `-vv` line for one exit (without a newline).
pub fn line(vcpu: usize, exit: &Exit, regs: &kvm_regs, cs: u16) -> String {
    format!("vCPU {vcpu}  {}  at {cs:04x}:{:04x}", what(exit, regs), regs.rip)
}

/// What `-vvv` adds below the line: the size and count of a port access (`rep ins`/`outs` move
/// many items in one exit) and the general registers at the exit.
pub fn detail(exit: &Exit, r: &kvm_regs) -> String {
    let access = match *exit {
        Exit::IoIn { size, count, .. } | Exit::IoOut { size, count, .. } => {
            format!("{count} x {size} byte{}, ", if size == 1 { "" } else { "s" })
        }
        _ => String::new(),
    };
    format!(
        "  {access}rax {:#x} rbx {:#x} rcx {:#x} rdx {:#x} rsi {:#x} rdi {:#x} rsp {:#x} rbp {:#x} rflags {:#x}",
        r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rsp, r.rbp, r.rflags
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_putchar_reads_as_words_and_hex() {
        let regs = kvm_regs { rbx: u64::from(b'H'), rip: 0xf, ..Default::default() };
        let exit = Exit::IoOut { port: 0x500, size: 1, count: 1, value: 1 };
        assert_eq!(line(0, &exit, &regs, 0), "vCPU 0  io-out  0x500  hypercall PUTCHAR 'H'  at 0000:000f");
        assert!(detail(&exit, &regs).contains("1 x 1 byte, rax 0x0 rbx 0x48"), "{}", detail(&exit, &regs));
    }

    #[test]
    fn ports_are_named_by_their_device() {
        let regs = kvm_regs::default();
        let exit = Exit::IoOut { port: 0x3f8, size: 1, count: 1, value: 0x41 };
        assert_eq!(line(1, &exit, &regs, 0x10), "vCPU 1  io-out  0x3f8  COM1  value 0x41  at 0010:0000");
        assert_eq!(byte(0x07), "0x07");
    }
}
