//! Guest memory at linear addresses, for the debugger: translated by walking the guest's own page
//! tables as they are now, a page at a time.

use super::{RequestError, Vcpu};
use crate::kvm::error::VcpuError;
use crate::kvm::memory::GuestRam;
use crate::x86::paging::{FnMem, Paging};

const PAGE: u64 = 0x1000;

impl Vcpu {
    /// Guest-physical address of a linear address, by walking the guest's page tables as they are
    /// now (KVM_TRANSLATE would do too; `monitor pt` compares both).
    fn walk(paging: &Paging, ram: &GuestRam, linear: u64) -> Result<u64, RequestError> {
        let mem = FnMem(|gpa: u64, buf: &mut [u8]| ram.read(gpa, buf).is_ok());
        Ok(paging.walk(&mem, linear)?.phys)
    }

    fn paging(&self) -> Result<Paging, VcpuError> {
        let s = self.fd().get_sregs().map_err(|source| VcpuError::OnVcpu {
            what: "KVM_GET_SREGS",
            vcpu: self.id,
            source,
        })?;
        Ok(Paging::from_regs(s.cr0, s.cr3, s.cr4, s.efer))
    }

    /// Up to `len` bytes at `linear`; fewer where the mapping ends (none: the first page's error).
    pub(super) fn read_linear(&self, ram: &GuestRam, linear: u64, len: usize) -> Result<Vec<u8>, RequestError> {
        let paging = self.paging()?;
        let mut out = Vec::with_capacity(len);
        let mut addr = linear;
        while out.len() < len {
            let chunk = ((PAGE - addr % PAGE) as usize).min(len - out.len());
            let mut buf = vec![0u8; chunk];
            match Self::walk(&paging, ram, addr).and_then(|gpa| Ok(ram.read(gpa, &mut buf)?)) {
                Ok(()) => out.extend_from_slice(&buf),
                Err(e) if out.is_empty() => return Err(e),
                Err(_) => break,
            }
            addr = addr.wrapping_add(chunk as u64);
        }
        Ok(out)
    }

    /// `data` at `linear`: all of it, or nothing if any page is unmapped.
    pub(super) fn write_linear(&self, ram: &GuestRam, linear: u64, data: &[u8]) -> Result<(), RequestError> {
        let paging = self.paging()?;
        // Translate every page first: a write is all or nothing.
        let mut pieces = Vec::new();
        let (mut addr, mut done) = (linear, 0usize);
        while done < data.len() {
            let chunk = ((PAGE - addr % PAGE) as usize).min(data.len() - done);
            pieces.push((Self::walk(&paging, ram, addr)?, &data[done..done + chunk]));
            done += chunk;
            addr = addr.wrapping_add(chunk as u64);
        }
        for (gpa, bytes) in pieces {
            ram.write(gpa, bytes)?;
        }
        Ok(())
    }
}
