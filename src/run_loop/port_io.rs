//! Port I/O exits carried out on the bus: every item of an access, with the data copied between
//! the bus and the buffer KVM keeps in `kvm_run`.

use super::Vcpu;
use crate::devices::bus::{Caller, Effect};
use crate::exit::Exit;
use crate::kvm::error::VcpuError;
use crate::kvm::vcpu::KvmVcpu;

impl Vcpu {
    /// Carries out the port access of the last exit on the bus, every item of it, and hands an
    /// `in`'s bytes back to KVM.
    pub(super) fn port_io(&mut self, exit: &Exit) -> Effect {
        let (port, size, count, out) = match *exit {
            Exit::IoIn { port, size, count } => (port, size, count, false),
            Exit::IoOut { port, size, count, .. } => (port, size, count, true),
            _ => return Effect::Continue,
        };
        // The data is copied out of kvm_run, so the devices can ask for registers meanwhile. Single
        // accesses fit on the stack; only `rep ins`/`rep outs` strings (at most a page) allocate.
        let len = size as usize * count as usize;
        let mut small = [0u8; 8];
        let mut string = Vec::new();
        let buf: &mut [u8] = if len <= small.len() {
            &mut small[..len]
        } else {
            string.resize(len, 0);
            &mut string
        };
        if out {
            if let Some(data) = self.cpu.pio_data() {
                buf.copy_from_slice(data);
            }
        }
        let Vcpu { bus, cpu, id, .. } = self;
        let mut caller = VcpuCaller { id: *id, cpu };
        if out {
            return bus.write(port, size, buf, &mut caller);
        }
        bus.read(port, size, buf, &mut caller);
        if let Some(data) = self.cpu.pio_data() {
            data.copy_from_slice(buf);
        }
        Effect::Continue
    }
}

/// The vCPU as the devices on its bus see it.
struct VcpuCaller<'a> {
    id: usize,
    cpu: &'a mut KvmVcpu,
}

impl Caller for VcpuCaller<'_> {
    fn vcpu(&self) -> usize {
        self.id
    }

    fn rbx(&mut self) -> Result<u64, VcpuError> {
        self.cpu.rbx().map_err(|source| VcpuError::Ioctl { what: "KVM_GET_REGS", source })
    }
}
