//! Guest RAM: anonymous host mappings (vm-memory) registered with KVM as memory slots.
//!
//! All other code reads and writes guest memory through [`GuestRam`], whose accessors are
//! bounds-checked by vm-memory: a bad guest-physical address is an error, never a stray pointer.

use crate::error::{Error, Result};
use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::VmFd;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

/// The guest's physical memory: one region per slot.
pub struct GuestRam {
    mem: GuestMemoryMmap,
}

impl GuestRam {
    /// Maps `ranges` (guest-physical start, size in bytes) and registers each as its own KVM slot.
    pub fn new(vm: &VmFd, ranges: &[(u64, usize)]) -> Result<Self> {
        let gm: Vec<(GuestAddress, usize)> = ranges.iter().map(|&(a, s)| (GuestAddress(a), s)).collect();
        let mem =
            GuestMemoryMmap::from_ranges(&gm).map_err(|e| Error::Host(format!("cannot map guest memory: {e}")))?;
        for (slot, region) in mem.iter().enumerate() {
            let host = region
                .get_host_address(vm_memory::MemoryRegionAddress(0))
                .map_err(|e| Error::Host(format!("guest memory region has no host address: {e}")))?;
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
            unsafe { vm.set_user_memory_region(desc) }.map_err(|e| Error::Kvm("adding a memory slot", e))?;
        }
        Ok(GuestRam { mem })
    }

    /// Copies `data` to guest-physical `gpa`; fails if any byte falls outside RAM.
    pub fn write(&self, gpa: u64, data: &[u8]) -> std::result::Result<(), String> {
        self.mem
            .write_slice(data, GuestAddress(gpa))
            .map_err(|_| format!("{} bytes at GPA {gpa:#x} do not fit in guest RAM", data.len()))
    }

    /// Fills `buf` from guest-physical `gpa`; fails if any byte falls outside RAM.
    pub fn read(&self, gpa: u64, buf: &mut [u8]) -> std::result::Result<(), String> {
        self.mem
            .read_slice(buf, GuestAddress(gpa))
            .map_err(|_| format!("{} bytes at GPA {gpa:#x} are outside guest RAM", buf.len()))
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
