//! Boot plans: one file per way a guest starts.
//!
//! A plan is plain data — memory ranges, bytes to place, and each vCPU's first register state —
//! so it can be unit-tested without KVM. [`crate::vmm`] turns it into a running VM.

pub mod acpi;
pub mod bzimage;
pub mod linux;
pub mod long_mode;
pub mod multiboot;
pub mod realmode;
pub mod seed_paging;
mod window;

use kvm_bindings::{kvm_regs, kvm_segment, kvm_sregs};

/// Why a guest cannot boot the way the command line asks: one enum per way of starting.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BootError {
    #[error(transparent)]
    Seed(#[from] seed_paging::SeedError),
    #[error(transparent)]
    LongMode(#[from] long_mode::LongModeError),
    #[error(transparent)]
    Kernel(#[from] multiboot::KernelError),
}

/// The state a vCPU starts in, applied on top of KVM's reset state.
#[derive(Debug, Clone)]
pub struct CpuStart {
    pub regs: kvm_regs,
    /// Segment registers CS, DS, ES, FS, GS, SS (all the same for our guests' starts).
    pub code: kvm_segment,
    pub data: kvm_segment,
    pub cr0: u64,
    pub cr3: u64,
    pub cr4: u64,
    /// EFER (LME/LMA for long mode); 0 everywhere else.
    pub efer: u64,
    /// GDT and IDT as (base, limit); `None` leaves KVM's reset values.
    pub gdt: Option<(u64, u16)>,
    pub idt: Option<(u64, u16)>,
}

impl CpuStart {
    /// Writes this start state into `sregs` (which holds KVM's reset state).
    pub fn apply(&self, sregs: &mut kvm_sregs) {
        sregs.cs = self.code;
        sregs.ds = self.data;
        sregs.es = self.data;
        sregs.fs = self.data;
        sregs.gs = self.data;
        sregs.ss = self.data;
        sregs.cr0 = self.cr0;
        sregs.cr3 = self.cr3;
        sregs.cr4 = self.cr4;
        sregs.efer = self.efer;
        if let Some((base, limit)) = self.gdt {
            sregs.gdt.base = base;
            sregs.gdt.limit = limit;
        }
        if let Some((base, limit)) = self.idt {
            sregs.idt.base = base;
            sregs.idt.limit = limit;
        }
    }
}

/// The RAM `--mem` may give a kernel, in MiB. The top keeps all of RAM below 3 GiB, out of the way
/// of what a PC has near 4 GiB: the IOAPIC (0xfec00000), the local APIC (0xfee00000) and the pages
/// KVM needs for Intel's real-mode TSS (0xfffbd000).
pub const MEM_MIB: std::ops::RangeInclusive<u64> = 2..=3072;

/// What kind of machine a plan needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MachineKind {
    /// Real-mode flat guests: no interrupt controller; `hlt` ends a vCPU.
    Flat,
    /// Protected-mode kernels: in-kernel PIC pair + PIT + LAPIC, UART on IRQ4; `hlt` waits.
    Kernel,
    /// Linux (`--linux`): a kernel's machine whose interrupts go through the IOAPIC (the local
    /// APIC's LINT0 stays masked: the ACPI tables say there is no PIC), with the keyboard
    /// controller's reset and the ACPI power-off port ([`linux`]).
    Linux,
}

/// Everything needed to start a VM.
#[derive(Debug, Clone)]
pub struct BootPlan {
    pub kind: MachineKind,
    /// Guest RAM as (guest-physical start, size); each range becomes its own KVM slot.
    pub memory: Vec<(u64, usize)>,
    /// Bytes to copy into guest RAM before the first instruction.
    pub images: Vec<(u64, Vec<u8>)>,
    /// One entry per vCPU.
    pub cpus: Vec<CpuStart>,
    /// True when the first instructions turn 32-bit paging on (or paging starts on): used to
    /// explain a triple fault on a host whose KVM cannot page.
    pub uses_paging: bool,
}

/// A flat 4 GiB segment for protected mode (type 0xb code or 0x3 data).
pub fn flat_segment(selector: u16, code: bool, dpl: u8) -> kvm_segment {
    kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector,
        type_: if code { 0xb } else { 0x3 },
        present: 1,
        dpl,
        db: 1,
        s: 1,
        l: 0,
        g: 1,
        avl: 0,
        unusable: 0,
        padding: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_sets_every_segment_and_control_register() {
        let start = realmode::cpu_start(2);
        let mut s = kvm_sregs::default();
        start.apply(&mut s);
        for seg in [s.cs, s.ds, s.es, s.fs, s.gs, s.ss] {
            assert_eq!(seg.selector, 0x8000);
            assert_eq!(seg.base, 0x80000);
        }
        assert_eq!(s.cr0 & 1, 0);
    }
}
