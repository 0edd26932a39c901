//! The report of a guest fault: which guest, why, where, and the registers, in words a student
//! can read, with a hint where this host's KVM may be the cause.

use super::{Vcpu, VcpuEnd};
use crate::boot::MachineKind;
use crate::exit::Fault;
use kvm_bindings::{kvm_regs, kvm_sregs};

impl Vcpu {
    /// How a fault ends this vCPU: its report, and whether it happened in long mode.
    pub(super) fn fault_end(&self, fault: Fault) -> VcpuEnd {
        let report = self.fault_report(&fault);
        // Linux on a KVM whose emulator lacks one of its instructions: the host failed (status 4).
        if self.kind == MachineKind::Linux && fault == Fault::InternalError(kvm_bindings::KVM_INTERNAL_ERROR_EMULATION)
        {
            return VcpuEnd::HostError(report);
        }
        let long_mode = self.registers().is_some_and(|(_, sr)| sr.efer & EFER_LMA != 0);
        VcpuEnd::Fault { fault, report, long_mode }
    }

    /// A readable report of a fault: which guest, why, where, and the registers.
    pub fn fault_report(&self, fault: &Fault) -> String {
        let mut s = format!("guest `{}` (vCPU {}) stopped: {fault}", self.name, self.id);
        if let Some((r, sr)) = self.registers() {
            // KVM moves IP past an `out` before the exit; a hypercall's is `out %al,(%dx)`, one
            // byte (port 0x500 rules out the imm8 form), so the hypercall is one byte back.
            let ip = match fault {
                Fault::UnknownHypercall(_) => r.rip.wrapping_sub(1),
                _ => r.rip,
            };
            let linear = sr.cs.base.wrapping_add(ip);
            if sr.efer & EFER_LMA != 0 {
                s += &long_mode_registers(ip, &r, &sr);
            } else {
                s += &format!(
                    "\n  at CS:IP {:04x}:{:04x} (linear {linear:#x})\n  \
                 EAX={:08x} EBX={:08x} ECX={:08x} EDX={:08x}\n  \
                 ESI={:08x} EDI={:08x} EBP={:08x} ESP={:08x} EFLAGS={:08x}\n  \
                 CR0={:08x} CR3={:08x} CR4={:08x}",
                    sr.cs.selector,
                    ip,
                    r.rax,
                    r.rbx,
                    r.rcx,
                    r.rdx,
                    r.rsi,
                    r.rdi,
                    r.rbp,
                    r.rsp,
                    r.rflags,
                    sr.cr0,
                    sr.cr3,
                    sr.cr4
                );
            }
            if self.fault_hints && *fault == Fault::TripleFault && sr.efer & EFER_LMA != 0 && sr.cs.selector & 3 == 3 {
                // Ring 3 of long mode when the CPU shut down: where this host may be the cause.
                if let Some(hint) = crate::doctor::ring3_calls_hint() {
                    s += &format!("\n  {hint}");
                }
            }
            if *fault == Fault::InternalError(kvm_bindings::KVM_INTERNAL_ERROR_EMULATION)
                && self.kind == MachineKind::Linux
            {
                s += &emulation_failure_hint(self.cpu.emulation_insn());
            }
            if *fault == Fault::TripleFault && looks_like_reset(&r, &sr) {
                s += "\n  (these are the CPU's power-on values, not where it faulted: this host's KVM \
                      resets the vCPU when it shuts down, as KVM on AMD SVM does; step up to the fault \
                      with `--gdb` to see it)";
            }
        }
        s
    }
}

/// The lines that say which instruction KVM could not emulate and what that means for a Linux
/// guest: a kernel that boots on every KVM with hardware virtualization.
fn emulation_failure_hint(insn: Option<&[u8]>) -> String {
    use crate::x86::emulation::{hex, known_unemulated};
    let bytes = match insn {
        Some(insn) => {
            let name = known_unemulated(insn).map(|n| format!(" ({n})")).unwrap_or_default();
            format!("\n  the instruction at RIP: {}{name}", hex(insn))
        }
        None => "\n  (this KVM did not hand back the instruction's bytes)".into(),
    };
    format!(
        "{bytes}\n  this host's KVM emulates the guest's instructions in software and its emulator lacks this \
         one: the guest is not at fault, this host cannot run it. Run it where KVM has hardware \
         virtualization: in the lab (`minikvm --lab ...`, see README \"The lab\") or the nested lane \
         (.ci/nested-lane)"
    )
}

/// EFER.LMA: the vCPU is in long mode, so its registers are 64 bits wide.
const EFER_LMA: u64 = 1 << 10;

/// A fault report's register lines for a vCPU in long mode (64-bit registers, RIP, EFER).
fn long_mode_registers(ip: u64, r: &kvm_regs, sr: &kvm_sregs) -> String {
    format!(
        "\n  at CS:RIP {:04x}:{ip:016x}\n  \
         RAX={:016x} RBX={:016x} RCX={:016x} RDX={:016x}\n  \
         RSI={:016x} RDI={:016x} RBP={:016x} RSP={:016x}\n  \
         R8 ={:016x} R9 ={:016x} R10={:016x} R11={:016x}\n  \
         R12={:016x} R13={:016x} R14={:016x} R15={:016x}\n  \
         RFLAGS={:08x} CR0={:08x} CR2={:016x} CR3={:016x} CR4={:08x} EFER={:x}",
        sr.cs.selector,
        r.rax,
        r.rbx,
        r.rcx,
        r.rdx,
        r.rsi,
        r.rdi,
        r.rbp,
        r.rsp,
        r.r8,
        r.r9,
        r.r10,
        r.r11,
        r.r12,
        r.r13,
        r.r14,
        r.r15,
        r.rflags,
        sr.cr0,
        sr.cr2,
        sr.cr3,
        sr.cr4,
        sr.efer
    )
}

/// Whether registers hold the x86 power-on state (CS:IP F000:FFF0, CR0 with PE clear), which is
/// all KVM on AMD SVM leaves after a triple fault.
fn looks_like_reset(r: &kvm_regs, sr: &kvm_sregs) -> bool {
    sr.cs.selector == 0xf000 && r.rip == 0xfff0 && sr.cr0 & 1 == 0
}
