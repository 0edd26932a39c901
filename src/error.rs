//! Errors and the exit status each one maps to.
//!
//! Every way a run can end has one documented exit status (see the README's table), so scripts and
//! tests can tell a guest fault from a timeout from a bad command line.

use crate::boot::BootError;
use crate::kvm::error::KvmError;
use crate::kvm::memory::MemoryError;

/// The process exit statuses of minikvm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Every guest ended normally (`hlt` or the EXIT hypercall).
    Ok = 0,
    /// A guest faulted: triple fault, unknown hypercall, KVM internal error, failed VM entry.
    GuestFault = 1,
    /// The command line or an input file was wrong.
    Usage = 2,
    /// `--timeout` expired before every guest ended.
    Timeout = 3,
    /// The host's KVM failed or is missing.
    Host = 4,
    /// Standard input ended while a guest kept waiting for more.
    EndedInputWait = 5,
    /// Stopped on purpose: the escape keys, SIGINT/SIGTERM, or `kill` in gdb.
    Stopped = 6,
    /// minikvm itself failed (a bug: a vCPU or stub thread died); the message asks for a report.
    Internal = 7,
    /// The lab (an emulated PC with a real KVM, for hosts whose KVM cannot run the guest) could
    /// not be set up or failed; one line says why.
    LabBroken = 8,
    /// The guest wrote a non-zero value to QEMU's ISA debug-exit port (0xF4): its own "failed".
    DebugExit = 9,
}

impl ExitStatus {
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// Errors before or around a run (the guest's own faults are reported by [`crate::vmm`]). Each
/// concern has its own enum, converted here with `?`; [`Error::status`] is the one place that
/// maps them to exit statuses.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A usage or input problem: the message says what is wrong.
    #[error("{0}")]
    Usage(String),
    /// The KVM device, or setting up the VM on it.
    #[error(transparent)]
    Kvm(#[from] KvmError),
    /// A guest image does not fit in guest RAM (an input problem).
    #[error(transparent)]
    Memory(#[from] MemoryError),
    /// A boot plan could not be made from the guest (named first) and the command line (an
    /// input problem).
    #[error("{guest}: {error}")]
    Boot { guest: String, error: BootError },
    /// Any other host failure (threads, terminal, signals).
    #[error("{0}")]
    Host(String),
}

impl Error {
    pub fn status(&self) -> ExitStatus {
        match self {
            Error::Usage(_) | Error::Memory(_) | Error::Boot { .. } | Error::Kvm(KvmError::DevicePath) => {
                ExitStatus::Usage
            }
            Error::Kvm(_) | Error::Host(_) => ExitStatus::Host,
        }
    }

    pub fn usage(msg: impl Into<String>) -> Self {
        Error::Usage(msg.into())
    }
}

pub type Result<T> = std::result::Result<T, Error>;
