//! The hypercall port (0x500): a guest asks minikvm for a service with `out %al, (%dx)`.
//!
//! | AL | name | guest side | host side |
//! |---|---|---|---|
//! | 0x00 | EXIT | `out` | this vCPU stops (normal end) |
//! | 0x01 | PUTCHAR | BL = byte; `out` | BL goes to the console |
//! | 0x02 | GETCHAR | `out`, then `in (%dx), %al` | the `in` returns the next input byte, or 0xFF |
//!
//! An `out` exit carries only AL, so PUTCHAR's BL comes from the registers KVM copies into
//! `kvm_run` on every exit (sync_regs): no extra KVM_GET_REGS round trip.

pub const PORT: u16 = 0x500;

/// What GETCHAR's `in` returns when no input is waiting.
pub const NO_INPUT: u8 = 0xff;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hypercall {
    Exit,
    Putchar,
    Getchar,
    Unknown(u8),
}

impl Hypercall {
    /// Decodes the number a guest wrote (AL).
    pub fn decode(al: u8) -> Self {
        match al {
            0x00 => Hypercall::Exit,
            0x01 => Hypercall::Putchar,
            0x02 => Hypercall::Getchar,
            n => Hypercall::Unknown(n),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Hypercall::Exit => "EXIT",
            Hypercall::Putchar => "PUTCHAR",
            Hypercall::Getchar => "GETCHAR",
            Hypercall::Unknown(_) => "unknown",
        }
    }

    pub fn number(self) -> u8 {
        match self {
            Hypercall::Exit => 0,
            Hypercall::Putchar => 1,
            Hypercall::Getchar => 2,
            Hypercall::Unknown(n) => n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_abi_numbers() {
        assert_eq!(Hypercall::decode(0), Hypercall::Exit);
        assert_eq!(Hypercall::decode(1), Hypercall::Putchar);
        assert_eq!(Hypercall::decode(2), Hypercall::Getchar);
        assert_eq!(Hypercall::decode(0x7f), Hypercall::Unknown(0x7f));
        assert_eq!(Hypercall::decode(0xff).number(), 0xff);
        assert_eq!(Hypercall::Putchar.name(), "PUTCHAR");
    }
}
