//! Guest memory at linear addresses, for the debugger: translated by walking the guest's own page
//! tables as they are now ([`Paging::translate_range_partial`] splits a range at page ends, since
//! the next page can live anywhere in guest RAM).

use super::{RequestError, Vcpu};
use crate::kvm::error::VcpuError;
use crate::kvm::memory::GuestRam;
use crate::x86::paging::{FnMem, Paging};

impl Vcpu {
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
        let mem = FnMem(|gpa: u64, buf: &mut [u8]| ram.read(gpa, buf).is_ok());
        let (chunks, unmapped) = self.paging()?.translate_range_partial(&mem, linear, len);
        if let (true, Some(e)) = (chunks.is_empty(), unmapped) {
            return Err(e.into());
        }
        let mut out = Vec::with_capacity(len);
        for chunk in chunks {
            let mut buf = vec![0u8; chunk.len];
            match ram.read(chunk.phys, &mut buf) {
                Ok(()) => out.extend_from_slice(&buf),
                Err(e) if out.is_empty() => return Err(e.into()),
                Err(_) => break,
            }
        }
        Ok(out)
    }

    /// `data` at `linear`: all of it, or nothing if any page is unmapped.
    pub(super) fn write_linear(&self, ram: &GuestRam, linear: u64, data: &[u8]) -> Result<(), RequestError> {
        let mem = FnMem(|gpa: u64, buf: &mut [u8]| ram.read(gpa, buf).is_ok());
        // Every page is translated first: a write is all or nothing.
        let chunks = self.paging()?.translate_range(&mem, linear, data.len())?;
        let mut done = 0;
        for chunk in chunks {
            ram.write(chunk.phys, &data[done..done + chunk.len])?;
            done += chunk.len;
        }
        Ok(())
    }
}
