//! What an **emulation failure** was: naming the instruction KVM could not emulate, from the bytes
//! KVM hands back with the exit (KVM_INTERNAL_ERROR_EMULATION with its instruction bytes).
//!
//! A KVM that runs guests on hardware virtualization emulates only a few instructions (MMIO, some
//! mode switches). A nested, emulating KVM — this project's development machines have one —
//! emulates much more of the guest and stops at instructions its emulator lacks: a Linux kernel
//! meets `lock cmpxchg16b` (its per-CPU allocator and SLUB) and `xrstor` (restoring extended FPU
//! state) early. Knowing which instruction it was tells a student it is the host, not the guest.

/// A decoded name for the instruction in `bytes` (legacy prefixes and a REX prefix skipped), for
/// the few instructions an emulating KVM is known to lack; `None` for anything else.
pub fn known_unemulated(bytes: &[u8]) -> Option<&'static str> {
    let mut i = 0;
    let mut lock = false;
    while let Some(&b) = bytes.get(i) {
        match b {
            0xf0 => lock = true,
            0x66 | 0xf2 | 0xf3 | 0x2e | 0x36 | 0x3e | 0x26 | 0x64 | 0x65 | 0x67 => {}
            _ => break,
        }
        i += 1;
    }
    let rex_w = bytes.get(i).is_some_and(|b| b & 0xf8 == 0x48);
    if bytes.get(i).is_some_and(|b| b & 0xf0 == 0x40) {
        i += 1;
    }
    let (op, modrm) = (bytes.get(i..i + 2)?, bytes.get(i + 2)?);
    let reg = (modrm >> 3) & 7;
    let memory = modrm >> 6 != 3;
    match (op, reg) {
        ([0x0f, 0xc7], 1) if memory && rex_w && lock => Some("lock cmpxchg16b"),
        ([0x0f, 0xc7], 1) if memory && rex_w => Some("cmpxchg16b"),
        ([0x0f, 0xae], 5) if memory => Some("xrstor"),
        ([0x0f, 0xae], 4) if memory => Some("xsave"),
        ([0x0f, 0xae], 6) if memory => Some("xsaveopt"),
        ([0x0f, 0xc7], 3) if memory => Some("xrstors"),
        ([0x0f, 0xc7], 5) if memory => Some("xsaves"),
        _ => None,
    }
}

/// Instruction bytes as `f0 48 0f c7 0e`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_instructions_linux_meets_first_are_named() {
        // lock cmpxchg16b (%rsi), as Linux's this_cpu_cmpxchg_double has it.
        assert_eq!(known_unemulated(&[0xf0, 0x48, 0x0f, 0xc7, 0x0e]), Some("lock cmpxchg16b"));
        // lock cmpxchg16b 0x20(%rbp): where Debian's 6.1 kernel stopped on this project's host.
        assert_eq!(known_unemulated(&[0xf0, 0x48, 0x0f, 0xc7, 0x4d, 0x20]), Some("lock cmpxchg16b"));
        assert_eq!(known_unemulated(&[0x48, 0x0f, 0xc7, 0x0f]), Some("cmpxchg16b"));
        // xrstor (%rdi), xrstor64 (%rdi) (REX.W), xsave with a displacement.
        assert_eq!(known_unemulated(&[0x0f, 0xae, 0x2f]), Some("xrstor"));
        assert_eq!(known_unemulated(&[0x48, 0x0f, 0xae, 0x2f]), Some("xrstor"));
        assert_eq!(known_unemulated(&[0x0f, 0xae, 0x67, 0x10]), Some("xsave"));
    }

    #[test]
    fn anything_else_is_not_named() {
        assert_eq!(known_unemulated(&[0x0f, 0xae, 0xe8]), None, "lfence (register form of 0f ae /5)");
        assert_eq!(known_unemulated(&[0x0f, 0xc7, 0x0e]), None, "cmpxchg8b");
        assert_eq!(known_unemulated(&[0x90, 0x90, 0x90]), None);
        assert_eq!(known_unemulated(&[0xf0; 20]), None, "prefixes alone");
        assert_eq!(known_unemulated(&[]), None);
        assert_eq!(hex(&[0xf0, 0x48, 0x0f]), "f0 48 0f");
    }
}
