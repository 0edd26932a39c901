//! The register file gdb sees while the vCPU runs 64-bit code: gdb's own x86-64 layout.
//!
//! In long mode every general register is 64 bits wide and there are eight more of them (r8 to
//! r15), and sixteen XMM registers: a different `g` packet from the 16/32-bit one of
//! [`super::regs`]. The first part — features `org.gnu.gdb.i386.core` and
//! `org.gnu.gdb.i386.sse` in gdb's 64-bit form — is exactly gdbstub_arch's
//! [`X86_64CoreRegs`], so it is used as it is. After it come `fs_base` and `gs_base` (gdb's
//! feature `org.gnu.gdb.i386.segments`: in 64-bit code they are what `%fs:` and `%gs:` add) and
//! minikvm's `org.minikvm.sys` registers, the same as in the 32-bit layout minus those two.
//!
//! ```text
//!  0 rax rbx rcx rdx rsi rdi rbp rsp  8 r8..r15   16 rip  17 eflags  18 cs ss ds es fs gs
//! 24 st0..st7  32 fctrl..fop  40 xmm0..xmm15  56 mxcsr  57 fs_base gs_base  59 cr0 cr2 cr3 cr4
//! 63 efer  64 cs_base ss_base ds_base es_base  68 gdtr_base gdtr_limit idtr_base idtr_limit
//! ```

#![forbid(unsafe_code)]

use super::regs::{Changed, RegInfo, X86RegId, X86Regs, REGISTERS};
use gdbstub::arch::Registers;
use gdbstub_arch::x86::reg::X86_64CoreRegs;
use kvm_bindings::{kvm_fpu, kvm_regs, kvm_sregs};

/// Bytes of gdb's 64-bit core and SSE registers (gdbstub_arch's [`X86_64CoreRegs`]).
pub const CORE_BYTES: usize = 0x218;

/// The `org.minikvm.sys` registers of the 64-bit layout: those of the 32-bit layout except
/// `fs_base` and `gs_base`, which gdb's own segments feature carries here.
pub fn sys_registers() -> impl Iterator<Item = &'static RegInfo> {
    REGISTERS
        .iter()
        .filter(|r| r.feature == super::regs::Feature::Sys)
        .filter(|r| !matches!(r.id, X86RegId::FsBase | X86RegId::GsBase))
}

/// Total size of the 64-bit `g` packet payload in bytes.
pub fn total_bytes() -> usize {
    CORE_BYTES + 16 + sys_registers().map(RegInfo::bytes).sum::<usize>()
}

/// All registers gdb sees in 64-bit code.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct X86_64Regs {
    /// rax…r15, rip, eflags, segment selectors, x87 and SSE (gdb's 64-bit core and sse).
    pub core: X86_64CoreRegs,
    /// The system registers, segment bases (fs_base and gs_base among them) and the x87
    /// details, kept in the 32-bit view, which already converts them to and from KVM.
    pub sys: X86Regs,
}

/// KVM's general registers in gdb's 64-bit order (rax, rbx, rcx, rdx, rsi, rdi, rbp, rsp, r8…).
fn gprs(regs: &mut kvm_regs) -> [&mut u64; 16] {
    [
        &mut regs.rax,
        &mut regs.rbx,
        &mut regs.rcx,
        &mut regs.rdx,
        &mut regs.rsi,
        &mut regs.rdi,
        &mut regs.rbp,
        &mut regs.rsp,
        &mut regs.r8,
        &mut regs.r9,
        &mut regs.r10,
        &mut regs.r11,
        &mut regs.r12,
        &mut regs.r13,
        &mut regs.r14,
        &mut regs.r15,
    ]
}

impl X86_64Regs {
    /// Gather the 64-bit view from KVM's register sets.
    pub fn from_kvm(regs: &kvm_regs, sregs: &kvm_sregs, fpu: &kvm_fpu) -> X86_64Regs {
        let sys = X86Regs::from_kvm(regs, sregs, fpu);
        let mut copy = *regs;
        let mut core = X86_64CoreRegs { rip: regs.rip, eflags: sys.eflags, mxcsr: sys.mxcsr, ..Default::default() };
        for (dst, src) in core.regs.iter_mut().zip(gprs(&mut copy)) {
            *dst = *src;
        }
        let s = &mut core.segments;
        (s.cs, s.ss, s.ds, s.es, s.fs, s.gs) = (sys.cs, sys.ss, sys.ds, sys.es, sys.fs, sys.gs);
        core.st = sys.st;
        let f = &mut core.fpu;
        (f.fctrl, f.fstat, f.ftag, f.fiseg) = (sys.fctrl, sys.fstat, sys.ftag, sys.fiseg);
        (f.fioff, f.foseg, f.fooff, f.fop) = (sys.fioff, sys.foseg, sys.fooff, sys.fop);
        for (dst, src) in core.xmm.iter_mut().zip(fpu.xmm.iter()) {
            *dst = u128::from_le_bytes(*src);
        }
        X86_64Regs { core, sys }
    }

    /// The 32-bit view with gdb's (possibly edited) values of the registers both views share.
    fn shared_view(&self) -> X86Regs {
        let mut v = self.sys.clone();
        let c = &self.core;
        (v.eflags, v.mxcsr, v.st) = (c.eflags, c.mxcsr, c.st);
        let s = &c.segments;
        (v.cs, v.ss, v.ds, v.es, v.fs, v.gs) = (s.cs, s.ss, s.ds, s.es, s.fs, s.gs);
        let f = &c.fpu;
        (v.fctrl, v.fstat, v.ftag, v.fiseg) = (f.fctrl, f.fstat, f.ftag, f.fiseg);
        (v.fioff, v.foseg, v.fooff, v.fop) = (f.fioff, f.foseg, f.fooff, f.fop);
        v.xmm.copy_from_slice(&c.xmm[..8]);
        // The low halves of the general registers: the 64-bit values are written after.
        (v.eax, v.ebx, v.ecx, v.edx) = (c.regs[0] as u32, c.regs[1] as u32, c.regs[2] as u32, c.regs[3] as u32);
        (v.esi, v.edi, v.ebp, v.esp) = (c.regs[4] as u32, c.regs[5] as u32, c.regs[6] as u32, c.regs[7] as u32);
        v.eip = c.rip as u32;
        v
    }

    /// Write gdb's view back into KVM's register sets (filled by `KVM_GET_*`), changing only
    /// what differs, and say which sets changed.
    pub fn apply_to_kvm(&self, regs: &mut kvm_regs, sregs: &mut kvm_sregs, fpu: &mut kvm_fpu) -> Changed {
        let mut changed = self.shared_view().apply_to_kvm(regs, sregs, fpu);
        if regs.rip != self.core.rip {
            regs.rip = self.core.rip;
            changed.regs = true;
        }
        for (dst, v) in gprs(regs).into_iter().zip(self.core.regs) {
            if *dst != v {
                *dst = v;
                changed.regs = true;
            }
        }
        for (dst, v) in fpu.xmm.iter_mut().zip(self.core.xmm.iter()).skip(8) {
            if *dst != v.to_le_bytes() {
                *dst = v.to_le_bytes();
                changed.fpu = true;
            }
        }
        changed
    }
}

impl Registers for X86_64Regs {
    type ProgramCounter = u64;

    /// gdb's `$pc`: RIP.
    fn pc(&self) -> u64 {
        self.core.rip
    }

    fn gdb_serialize(&self, mut write_byte: impl FnMut(Option<u8>)) {
        self.core.gdb_serialize(&mut write_byte);
        for v in [self.sys.fs_base, self.sys.gs_base] {
            v.to_le_bytes().iter().for_each(|b| write_byte(Some(*b)));
        }
        for info in sys_registers() {
            match self.sys.get(info.id) {
                Some(v) => v.as_slice().iter().for_each(|b| write_byte(Some(*b))),
                None => (0..info.bytes()).for_each(|_| write_byte(None)),
            }
        }
    }

    /// Accepts exactly the full layout (a `G` packet writes every register).
    fn gdb_deserialize(&mut self, bytes: &[u8]) -> Result<(), ()> {
        if bytes.len() != total_bytes() {
            return Err(());
        }
        let (core, rest) = bytes.split_at(CORE_BYTES);
        let (bases, sys) = rest.split_at(16);
        let mut next = self.clone();
        next.core.gdb_deserialize(core)?;
        next.sys.fs_base = u64::from_le_bytes(bases[..8].try_into().map_err(|_| ())?);
        next.sys.gs_base = u64::from_le_bytes(bases[8..].try_into().map_err(|_| ())?);
        let mut off = 0usize;
        for info in sys_registers() {
            let chunk = sys.get(off..off + info.bytes()).ok_or(())?;
            next.sys.set(info.id, chunk).map_err(|_| ())?;
            off += info.bytes();
        }
        *self = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kvm_sample() -> (kvm_regs, kvm_sregs, kvm_fpu) {
        let regs = kvm_regs {
            rax: 0x1122_3344_5566_7788,
            rbx: 2,
            r8: 0x8888_0000_0000_0008,
            r15: 15,
            rip: 0xffff_ffff_8010_0c42,
            rflags: 0x46,
            ..Default::default()
        };
        let mut sregs = kvm_sregs { cr0: 0x8000_0011, efer: 0x500, ..Default::default() };
        sregs.cs.selector = 8;
        sregs.fs.base = 0xffff_8000_0000_1000;
        let mut fpu = kvm_fpu { mxcsr: 0x1f80, ..Default::default() };
        fpu.xmm[15] = [0xab; 16];
        (regs, sregs, fpu)
    }

    #[test]
    fn from_kvm_serializes_in_gdbs_x86_64_order() {
        let (regs, sregs, fpu) = kvm_sample();
        let r = X86_64Regs::from_kvm(&regs, &sregs, &fpu);
        let mut bytes = Vec::new();
        r.gdb_serialize(|b| bytes.push(b.unwrap()));
        assert_eq!(bytes.len(), total_bytes());
        assert_eq!(&bytes[0..8], &0x1122_3344_5566_7788u64.to_le_bytes(), "rax first, 64 bits");
        assert_eq!(&bytes[8..16], &2u64.to_le_bytes(), "then rbx (gdb's order, not KVM's)");
        assert_eq!(&bytes[64..72], &0x8888_0000_0000_0008u64.to_le_bytes(), "r8");
        assert_eq!(&bytes[0x80..0x88], &0xffff_ffff_8010_0c42u64.to_le_bytes(), "rip");
        assert_eq!(&bytes[0x204..0x214], &[0xab; 16], "xmm15");
        assert_eq!(&bytes[0x218..0x220], &0xffff_8000_0000_1000u64.to_le_bytes(), "fs_base");
        assert_eq!(&bytes[0x228..0x230], &0x8000_0011u64.to_le_bytes(), "cr0 after the bases");
        // What gdb reads comes back byte for byte (the 32-bit view's copies of the general
        // registers are not part of the packet).
        let mut back = X86_64Regs::default();
        back.gdb_deserialize(&bytes).unwrap();
        let mut again = Vec::new();
        back.gdb_serialize(|b| again.push(b.unwrap()));
        assert_eq!(again, bytes);
        assert!(back.gdb_deserialize(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn apply_to_kvm_writes_whole_registers_and_only_what_changed() {
        let (mut regs, mut sregs, mut fpu) = kvm_sample();
        let r = X86_64Regs::from_kvm(&regs, &sregs, &fpu);
        let (r0, s0, f0) = (regs, sregs, fpu);
        assert_eq!(r.apply_to_kvm(&mut regs, &mut sregs, &mut fpu), Changed::default());
        assert_eq!((regs, sregs, fpu), (r0, s0, f0));
        let mut e = r.clone();
        e.core.regs[15] = 0xdead_beef_0000_0001;
        e.core.rip = 0xffff_ffff_8010_0000;
        e.core.xmm[9] = 7;
        e.sys.gs_base = 0x1234;
        let c = e.apply_to_kvm(&mut regs, &mut sregs, &mut fpu);
        assert_eq!(c, Changed { regs: true, sregs: true, fpu: true });
        assert_eq!(regs.r15, 0xdead_beef_0000_0001);
        assert_eq!(regs.rip, 0xffff_ffff_8010_0000);
        assert_eq!(regs.rax, 0x1122_3344_5566_7788, "the other registers keep their upper halves");
        assert_eq!(fpu.xmm[9], 7u128.to_le_bytes());
        assert_eq!(sregs.gs.base, 0x1234);
    }
}
