//! VM exits and what minikvm does about each: a pure mapping, unit-tested with synthetic exits.
//!
//! The KVM boundary copies what KVM reported into an [`Exit`] (owned, no borrow of `kvm_run`); the
//! run loop ([`crate::run_loop`]) asks
//! [`decide`] for an [`Action`], and carries the action out. Keeping the decision pure means every
//! exit reason's handling can be tested without a VM.

use crate::boot::MachineKind;

pub use crate::kvm::exit::{Exit, ExitKind};

/// Why a guest's run ended badly, in words a student can read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::enum_variant_names)] // `TripleFault` is the name the SDM and every course use
pub enum Fault {
    TripleFault,
    FailedEntry(u64),
    InternalError(u32),
    UnknownHypercall(u8),
    Unhandled(String),
    SystemEvent(u32),
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::TripleFault => {
                write!(f, "triple fault (the CPU shut down: an exception occurred while handling a double fault)")
            }
            Fault::FailedEntry(r) => write!(f, "VM entry failed (hardware reason {r:#x}): the vCPU state is invalid"),
            Fault::InternalError(s) => {
                write!(f, "KVM internal error (suberror {s}): KVM could not emulate an instruction")
            }
            Fault::UnknownHypercall(n) => {
                write!(f, "unknown hypercall {n:#04x} (known: 0x00 EXIT, 0x01 PUTCHAR, 0x02 GETCHAR)")
            }
            Fault::Unhandled(r) => write!(f, "unhandled VM exit: {r}"),
            Fault::SystemEvent(k) => write!(f, "system event {k} (reset or shutdown request)"),
        }
    }
}

/// What to do about an exit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing to do: run the vCPU again.
    Resume,
    /// Port I/O: the port bus carries it out (see [`crate::devices::bus`]).
    PortIo,
    /// An MMIO access: the MMIO bus carries it out (see [`crate::devices::mmio`]).
    Mmio,
    /// This vCPU has finished normally.
    Done,
    /// This vCPU faulted.
    Fault(Fault),
    /// A debug stop, for the gdb stub.
    DebugStop,
    /// A kick: the run loop checks its control flags.
    Kicked,
}

/// The decision for one exit on a machine of `kind`.
pub fn decide(exit: &Exit, kind: MachineKind) -> Action {
    match *exit {
        Exit::IoIn { .. } | Exit::IoOut { .. } => Action::PortIo,
        Exit::MmioRead { .. } | Exit::MmioWrite { .. } => Action::Mmio,
        // Without an interrupt controller nothing could ever wake a halted vCPU: hlt ends it.
        // With one, KVM handles hlt itself; an exit here would be spurious.
        Exit::Hlt => match kind {
            MachineKind::Flat => Action::Done,
            MachineKind::Kernel | MachineKind::Linux => Action::Resume,
        },
        Exit::Shutdown => Action::Fault(Fault::TripleFault),
        Exit::FailEntry { reason } => Action::Fault(Fault::FailedEntry(reason)),
        Exit::InternalError { suberror } => Action::Fault(Fault::InternalError(suberror)),
        Exit::Debug { .. } => Action::DebugStop,
        Exit::Interrupted => Action::Kicked,
        Exit::SystemEvent { kind } => Action::Fault(Fault::SystemEvent(kind)),
        Exit::Other { ref reason } => Action::Fault(Fault::Unhandled(reason.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use MachineKind::*;

    #[test]
    fn port_io_and_mmio_go_to_their_buses() {
        let out = Exit::IoOut { port: 0x500, size: 1, count: 1, value: 0x7f };
        assert_eq!(decide(&out, Flat), Action::PortIo);
        assert_eq!(decide(&Exit::IoIn { port: 0x3f8, size: 1, count: 8 }, Kernel), Action::PortIo);
        assert_eq!(decide(&Exit::MmioRead { addr: 0xfee0_0000, len: 4 }, Kernel), Action::Mmio);
        assert_eq!(decide(&Exit::MmioWrite { addr: 0xb8000, len: 2, value: 7 }, Kernel), Action::Mmio);
    }

    #[test]
    fn hlt_ends_flat_guests_only() {
        assert_eq!(decide(&Exit::Hlt, Flat), Action::Done);
        assert_eq!(decide(&Exit::Hlt, Kernel), Action::Resume);
    }

    #[test]
    fn faults_are_named() {
        assert_eq!(decide(&Exit::Shutdown, Flat), Action::Fault(Fault::TripleFault));
        assert_eq!(decide(&Exit::FailEntry { reason: 7 }, Flat), Action::Fault(Fault::FailedEntry(7)));
        assert_eq!(decide(&Exit::InternalError { suberror: 1 }, Kernel), Action::Fault(Fault::InternalError(1)));
        assert!(Fault::TripleFault.to_string().contains("triple fault"));
        assert!(Fault::UnknownHypercall(0x7f).to_string().contains("0x7f"));
    }

    #[test]
    fn debug_and_kicks() {
        assert_eq!(decide(&Exit::Debug { exception: 1, pc: 0, dr6: 0x4000 }, Flat), Action::DebugStop);
        assert_eq!(decide(&Exit::Interrupted, Flat), Action::Kicked);
    }
}
