//! MMIO exits carried out on the MMIO bus, with a read's answer copied into the buffer KVM keeps in
//! `kvm_run` for the instruction that made it.

use super::Vcpu;
use crate::exit::Exit;

impl Vcpu {
    /// Carries out the MMIO access of the last exit on the MMIO bus. Unclaimed accesses (all ones
    /// read, writes dropped) are logged at -vv.
    pub(super) fn mmio(&mut self, exit: &Exit) {
        match *exit {
            Exit::MmioRead { addr, len } => {
                let mut buf = [0u8; 8];
                let data = &mut buf[..usize::from(len).min(8)];
                if !self.mmio.read(addr, data) {
                    log::debug!("vCPU {}: unclaimed MMIO read of {len} bytes at {addr:#x}", self.id);
                }
                if let Some(answer) = self.cpu.mmio_data().filter(|a| a.len() == data.len()) {
                    answer.copy_from_slice(data);
                }
            }
            Exit::MmioWrite { addr, len, value } => {
                let bytes = value.to_le_bytes();
                if !self.mmio.write(addr, &bytes[..usize::from(len).min(8)]) {
                    log::debug!("vCPU {}: unclaimed MMIO write of {len} bytes at {addr:#x}: {value:#x}", self.id);
                }
            }
            _ => {}
        }
    }
}
