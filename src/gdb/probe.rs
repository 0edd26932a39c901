//! Does this host's KVM trigger data breakpoints? (The debugger's own probe; `minikvm doctor`
//! asks the others.)
//!
//! Some KVMs (the emulating, nested "kvm_pvm" of the development machines) stop on instruction
//! breakpoints but never on data breakpoints: a `watch` would silently never fire. Where that is
//! so, the stub watches writes by single-stepping instead (see [`super::target`]).

use crate::boot::realmode;
use crate::kvm::{self, memory::GuestRam};
use kvm_bindings::{kvm_guest_debug, kvm_regs, KVM_GUESTDBG_ENABLE, KVM_GUESTDBG_USE_HW_BP};
use kvm_ioctls::VcpuExit;

/// Runs `movb $1, 0x100 ; hlt` in real mode with a write watchpoint on 0x100 (DR0, DR7 R/W = 01)
/// and says whether KVM reported the write. The guest cannot loop: at worst it halts.
pub fn data_breakpoints() -> bool {
    match run() {
        Ok(hit) => hit,
        Err(e) => {
            log::info!("gdb: the data breakpoint probe failed: {e}");
            false
        }
    }
}

fn run() -> std::result::Result<bool, String> {
    let kvm = kvm::open().map_err(|e| e.to_string())?;
    let vm = kvm.create_vm().map_err(|e| e.to_string())?;
    let _ = vm.set_tss_address(0xfffb_d000);
    let ram = GuestRam::new(&vm, &[(0, 0x10000)]).map_err(|e| e.to_string())?;
    ram.write(0, &[0xc6, 0x06, 0x00, 0x01, 0x01, 0xf4])?;
    let vcpu = vm.create_vcpu(0).map_err(|e| e.to_string())?;
    let mut sregs = vcpu.get_sregs().map_err(|e| e.to_string())?;
    realmode::cpu_start(0).apply(&mut sregs);
    vcpu.set_sregs(&sregs).map_err(|e| e.to_string())?;
    vcpu.set_regs(&kvm_regs { rflags: 2, ..Default::default() }).map_err(|e| e.to_string())?;
    let mut dbg = kvm_guest_debug { control: KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_HW_BP, ..Default::default() };
    dbg.arch.debugreg[0] = 0x100;
    dbg.arch.debugreg[7] = 0x0001_0701; // L0, R/W0 = write, LEN0 = 1 byte, LE, GE
    vcpu.set_guest_debug(&dbg).map_err(|e| e.to_string())?;
    let mut vcpu = vcpu;
    let hit = matches!(vcpu.run(), Ok(VcpuExit::Debug(d)) if d.exception == 1 && d.dr6 & 1 != 0);
    drop(vcpu);
    drop(vm);
    drop(ram);
    Ok(hit)
}
