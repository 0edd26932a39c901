//! The CPUID table a guest sees: the host's (as KVM supports it) for kernels and probes, a few
//! leaves for flat guests; both with the hypervisor-present bit and minikvm's signature leaf.

use super::error::{KvmContext, KvmError};
use core::arch::x86_64::{__cpuid, CpuidResult};
use kvm_bindings::{kvm_cpuid_entry2, CpuId, KVM_MAX_CPUID_ENTRIES};
use kvm_ioctls::Kvm;

/// The 12-byte signature minikvm reports in CPUID leaf 0x40000000 (EBX, ECX, EDX).
pub const HYPERVISOR_SIGNATURE: &[u8; 12] = b"minikvm\0\0\0\0\0";

/// KVM's supported CPUID, plus the hypervisor-present bit and our own signature leaf.
pub fn guest_cpuid(kvm: &Kvm, vcpu_id: u8) -> Result<CpuId, KvmError> {
    let mut cpuid = kvm.get_supported_cpuid(KVM_MAX_CPUID_ENTRIES).during("reading the supported CPUID")?;
    for e in cpuid.as_mut_slice() {
        match e.function {
            1 => {
                e.ecx |= 1 << 31; // "running under a hypervisor"
                e.ebx = (e.ebx & 0x00ff_ffff) | ((vcpu_id as u32) << 24); // initial APIC ID
            }
            0x4000_0000 => {
                e.eax = 0x4000_0000;
                e.ebx = signature_word(0);
                e.ecx = signature_word(4);
                e.edx = signature_word(8);
            }
            _ => {}
        }
    }
    if !cpuid.as_slice().iter().any(|e| e.function == 0x4000_0000) {
        let entry = kvm_bindings::kvm_cpuid_entry2 {
            function: 0x4000_0000,
            eax: 0x4000_0000,
            ebx: signature_word(0),
            ecx: signature_word(4),
            edx: signature_word(8),
            ..Default::default()
        };
        cpuid.push(entry).map_err(|_| KvmError::CpuidFull)?;
    }
    Ok(cpuid)
}

/// [`guest_cpuid`] with KVM's own hypervisor leaves (0x40000000 "KVMKVMKVM", 0x40000001 its
/// paravirtual features) instead of minikvm's signature: what a Linux guest gets. KVM itself
/// implements those features (kvmclock above all), and without kvmclock Linux has no way to learn
/// the TSC's frequency on a machine with no PIT interrupt and no HPET: it calibrates against the
/// PIT by timing port reads, which fails under an emulating KVM, and then waits forever for a tick.
pub fn kvm_paravirt_cpuid(kvm: &Kvm, vcpu_id: u8) -> Result<CpuId, KvmError> {
    let supported = kvm.get_supported_cpuid(KVM_MAX_CPUID_ENTRIES).during("reading the supported CPUID")?;
    let mut cpuid = guest_cpuid(kvm, vcpu_id)?;
    if let Some(kvm_leaf) = supported.as_slice().iter().find(|e| e.function == 0x4000_0000) {
        for e in cpuid.as_mut_slice().iter_mut().filter(|e| e.function == 0x4000_0000) {
            *e = *kvm_leaf;
        }
    }
    // The TSC-deadline mode of the local APIC timer, which KVM's in-kernel APIC emulates but leaves
    // to the VMM to announce (as QEMU does). Without it Linux calibrates the APIC timer against the
    // TSC, which an emulating KVM gets wrong by orders of magnitude: ticks come late, boots stall.
    if kvm.check_extension(kvm_ioctls::Cap::TscDeadlineTimer) {
        for e in cpuid.as_mut_slice().iter_mut().filter(|e| e.function == 1) {
            e.ecx |= 1 << 24;
        }
    }
    Ok(cpuid)
}

/// One 4-byte word of [`HYPERVISOR_SIGNATURE`], as CPUID returns it in a register.
fn signature_word(i: usize) -> u32 {
    u32::from_le_bytes(HYPERVISOR_SIGNATURE[i..i + 4].try_into().unwrap_or([0; 4]))
}

/// CPUID.1 EDX bits a flat guest may see: FPU, PSE, TSC, MSR, PAE, CX8, PGE, CMOV, PAT, PSE-36,
/// CLFLUSH, MMX, FXSR, SSE, SSE2 (no APIC: a flat guest has no interrupt controllers).
const LEAF1_EDX: u32 = 1
    | 1 << 3
    | 1 << 4
    | 1 << 5
    | 1 << 6
    | 1 << 8
    | 1 << 13
    | 1 << 15
    | 1 << 16
    | 1 << 17
    | 1 << 19
    | 1 << 23
    | 1 << 24
    | 1 << 25
    | 1 << 26;
/// CPUID.1 ECX: SSE3, SSSE3, CMPXCHG16B, SSE4.1, SSE4.2, POPCNT, XSAVE.
const LEAF1_ECX: u32 = 1 | 1 << 9 | 1 << 13 | 1 << 19 | 1 << 20 | 1 << 23 | 1 << 26;
/// XSAVE state components a flat guest may enable in XCR0: x87 and SSE (leaf 0xD, sub-leaf 0).
/// KVM refuses an `xsetbv` of components the guest's CPUID does not list.
const XSAVE_COMPONENTS: u32 = 0b11;
/// The XSAVE area for x87 + SSE: the 512-byte legacy region and the 64-byte header.
const XSAVE_AREA_BYTES: u32 = 576;
/// CPUID.1 ECX bit 31: "running under a hypervisor".
const HYPERVISOR_PRESENT: u32 = 1 << 31;
/// CPUID.80000001h EDX: SYSCALL, NX, long mode — what KVM checks before it lets a guest set
/// EFER.SCE, EFER.NXE and EFER.LME.
const EXT_EDX: u32 = 1 << 11 | 1 << 20 | 1 << 29;
/// CPUID.80000001h ECX: LAHF/SAHF in long mode.
const EXT_ECX: u32 = 1;

/// CPUID for flat guests: the leaves a guest needs to switch to long mode by itself
/// (guest/modes.S) or to start in it (`--long-mode`) — vendor, family, PAE, long mode, NX,
/// syscall, and XSAVE of x87/SSE state — from the host's own CPUID, masked to features every such host has, plus minikvm's
/// signature leaf. Not KVM's whole supported table: reading it (KVM_GET_SUPPORTED_CPUID runs
/// CPUID for every leaf in the kernel, each an exit on a nested host) and setting its ~56
/// entries took ~0.2 ms here, a tenth of a `minimal` run.
pub fn flat_guest_cpuid(vcpu_id: u8) -> Result<CpuId, KvmError> {
    let (basic, leaf1, ext, ext1) = (__cpuid(0), __cpuid(1), __cpuid(0x8000_0000), __cpuid(0x8000_0001));
    let entry = |function: u32, r: CpuidResult| kvm_cpuid_entry2 {
        function,
        eax: r.eax,
        ebx: r.ebx,
        ecx: r.ecx,
        edx: r.edx,
        ..Default::default()
    };
    let has_xsave = leaf1.ecx & (1 << 26) != 0;
    let xsave = kvm_cpuid_entry2 {
        function: 0xd,
        index: 0,
        flags: kvm_bindings::KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
        eax: if has_xsave { XSAVE_COMPONENTS } else { 0 },
        ebx: XSAVE_AREA_BYTES,
        ecx: XSAVE_AREA_BYTES,
        ..Default::default()
    };
    let entries = [
        // Up to leaf 0xD, XSAVE's (a flat guest may run what Linux runs: guest/probe/linux.S).
        entry(0, CpuidResult { eax: basic.eax.min(0xd), ..basic }),
        entry(
            1,
            CpuidResult {
                eax: leaf1.eax,
                ebx: (leaf1.ebx & 0x0000_ffff) | (u32::from(vcpu_id) << 24),
                ecx: (leaf1.ecx & LEAF1_ECX) | HYPERVISOR_PRESENT,
                edx: leaf1.edx & LEAF1_EDX,
            },
        ),
        entry(
            0x4000_0000,
            CpuidResult { eax: 0x4000_0000, ebx: signature_word(0), ecx: signature_word(4), edx: signature_word(8) },
        ),
        entry(0x8000_0000, CpuidResult { eax: ext.eax.min(0x8000_0001), ..ext }),
        entry(0x8000_0001, CpuidResult { eax: ext1.eax, ebx: 0, ecx: ext1.ecx & EXT_ECX, edx: ext1.edx & EXT_EDX }),
        xsave,
    ];
    CpuId::from_entries(&entries).map_err(|_| KvmError::CpuidFull)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_guests_get_long_mode_their_apic_id_and_the_signature() {
        let cpuid = flat_guest_cpuid(2).expect("a table");
        let leaf = |f: u32| *cpuid.as_slice().iter().find(|e| e.function == f).expect("the leaf");
        // Every host that runs minikvm is x86-64: long mode is there to hand on.
        assert_ne!(leaf(0x8000_0001).edx & (1 << 29), 0, "long mode");
        assert_ne!(leaf(1).edx & (1 << 6), 0, "PAE");
        assert_eq!(leaf(1).ebx >> 24, 2, "initial APIC ID");
        assert_ne!(leaf(1).ecx & HYPERVISOR_PRESENT, 0);
        let sig = leaf(0x4000_0000);
        let bytes: Vec<u8> = [sig.ebx, sig.ecx, sig.edx].iter().flat_map(|w| w.to_le_bytes()).collect();
        assert_eq!(&bytes[..], HYPERVISOR_SIGNATURE);
    }
}
