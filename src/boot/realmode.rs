//! Real-mode flat guests (the Mini-KVM ABI): vCPU *i* owns 256 KiB at GPA `i * 0x40000`, its
//! segments all have selector `i * 0x4000` (so base `i * 0x40000`), IP = SP = 0.

use super::{BootPlan, CpuStart, MachineKind};
use kvm_bindings::{kvm_regs, kvm_segment};

pub use super::window::WINDOW;
/// At most this many guests at once.
pub const MAX_GUESTS: usize = 4;

/// The first state of vCPU `i`.
pub fn cpu_start(i: usize) -> CpuStart {
    let selector = (i * (WINDOW >> 4)) as u16;
    let seg = |code: bool| kvm_segment {
        base: (i * WINDOW) as u64,
        limit: 0xffff,
        selector,
        type_: if code { 0xb } else { 0x3 },
        present: 1,
        dpl: 0,
        db: 0,
        s: 1,
        l: 0,
        g: 0,
        avl: 0,
        unusable: 0,
        padding: 0,
    };
    CpuStart {
        regs: kvm_regs { rflags: 0x2, ..Default::default() },
        code: seg(true),
        data: seg(false),
        cr0: 0x60000010, // KVM's reset value: PE = 0, ET = 1, CD and NW set
        cr3: 0,
        cr4: 0,
        efer: 0,
        gdt: None,
        idt: Some((0, 0x3ff)), // the real-mode interrupt vector table at 0
    }
}

/// A plan for 1 to 4 flat binaries. Sizes are checked by the caller (it knows the file names).
pub fn plan(images: Vec<Vec<u8>>) -> BootPlan {
    let n = images.len();
    BootPlan {
        kind: MachineKind::Flat,
        memory: (0..n).map(|i| ((i * WINDOW) as u64, WINDOW)).collect(),
        images: images.into_iter().enumerate().map(|(i, img)| ((i * WINDOW) as u64, img)).collect(),
        cpus: (0..n).map(cpu_start).collect(),
        uses_paging: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_and_segments_follow_the_abi() {
        let p = plan(vec![vec![0xf4], vec![0xf4], vec![0xf4], vec![0xf4]]);
        assert_eq!(p.memory, vec![(0, WINDOW), (0x40000, WINDOW), (0x80000, WINDOW), (0xc0000, WINDOW)]);
        assert_eq!(p.images[3].0, 0xc0000);
        let c = &p.cpus[3];
        assert_eq!(c.code.selector, 0xc000);
        assert_eq!(c.code.base, 0xc0000);
        assert_eq!(c.data.limit, 0xffff);
        assert_eq!(c.regs.rip, 0);
        assert_eq!(c.regs.rsp, 0);
        assert_eq!(c.regs.rflags, 2);
    }
}
