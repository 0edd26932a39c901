//! Guest RAM: anonymous host mappings (vm-memory) registered with KVM as memory slots.
//!
//! All other code reads and writes guest memory through [`GuestRam`], whose accessors are
//! bounds-checked by vm-memory: a bad guest-physical address is an error, never a stray pointer.

use crate::kvm::error::{KvmContext, KvmError};
use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::VmFd;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

/// A guest-physical access outside RAM.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemoryError {
    #[error("{len} bytes at GPA {gpa:#x} do not fit in guest RAM")]
    WriteOutside { gpa: u64, len: usize },
    #[error("{len} bytes at GPA {gpa:#x} are outside guest RAM")]
    ReadOutside { gpa: u64, len: usize },
}

/// The guest's physical memory: one region per slot.
pub struct GuestRam {
    mem: GuestMemoryMmap,
}

impl GuestRam {
    /// Maps `ranges` (guest-physical start, size in bytes) and registers each as its own KVM slot.
    pub fn new(vm: &VmFd, ranges: &[(u64, usize)]) -> Result<Self, KvmError> {
        let gm: Vec<(GuestAddress, usize)> = ranges.iter().map(|&(a, s)| (GuestAddress(a), s)).collect();
        let mem = GuestMemoryMmap::from_ranges(&gm).map_err(KvmError::MapMemory)?;
        for (slot, region) in mem.iter().enumerate() {
            let host = region.get_host_address(vm_memory::MemoryRegionAddress(0)).map_err(KvmError::NoHostAddress)?;
            let desc = kvm_userspace_memory_region {
                slot: slot as u32,
                flags: 0,
                guest_phys_addr: region.start_addr().0,
                memory_size: region.len(),
                userspace_addr: host as u64,
            };
            log::info!(
                "memory slot {slot}: GPA {:#07x}..{:#07x} ({} KiB)",
                desc.guest_phys_addr,
                desc.guest_phys_addr + desc.memory_size,
                desc.memory_size / 1024
            );
            // SAFETY: the region is a live anonymous mapping owned by `mem`, which lives in the
            // returned GuestRam for as long as the VM (the Vmm keeps both and drops the VM first).
            unsafe { vm.set_user_memory_region(desc) }.during("adding a memory slot")?;
        }
        Ok(GuestRam { mem })
    }

    /// Copies `data` to guest-physical `gpa`; fails if any byte falls outside RAM.
    pub fn write(&self, gpa: u64, data: &[u8]) -> Result<(), MemoryError> {
        self.mem.write_slice(data, GuestAddress(gpa)).map_err(|_| MemoryError::WriteOutside { gpa, len: data.len() })
    }

    /// Fills `buf` from guest-physical `gpa`; fails if any byte falls outside RAM.
    pub fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        self.mem.read_slice(buf, GuestAddress(gpa)).map_err(|_| MemoryError::ReadOutside { gpa, len: buf.len() })
    }

    pub fn read_u32(&self, gpa: u64) -> Option<u32> {
        let mut b = [0u8; 4];
        self.read(gpa, &mut b).ok().map(|_| u32::from_le_bytes(b))
    }

    pub fn read_u64(&self, gpa: u64) -> Option<u64> {
        let mut b = [0u8; 8];
        self.read(gpa, &mut b).ok().map(|_| u64::from_le_bytes(b))
    }

    /// Total bytes of RAM.
    pub fn size(&self) -> u64 {
        self.mem.iter().map(|r| r.len()).sum()
    }
}
