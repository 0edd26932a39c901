//! Errors and the exit status each one maps to.
//!
//! Every way a run can end has one documented exit status (see the README's table), so scripts and
//! tests can tell a guest fault from a timeout from a bad command line.

use std::fmt;

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
    InputEnded = 5,
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

/// Errors before or around a run (the guest's own faults are reported by [`crate::vmm`]).
#[derive(Debug)]
pub enum Error {
    /// A usage or input problem: the message says what is wrong.
    Usage(String),
    /// The KVM device (`/dev/kvm`, or `$MINIKVM_KVM_DEVICE`) could not be opened.
    NoKvm { device: String, error: std::io::Error },
    /// A KVM ioctl failed: what we were doing, and the error.
    Kvm(&'static str, kvm_ioctls::Error),
    /// Any other host failure (threads, terminal, memory mapping).
    Host(String),
}

impl Error {
    pub fn status(&self) -> ExitStatus {
        match self {
            Error::Usage(_) => ExitStatus::Usage,
            Error::NoKvm { .. } | Error::Kvm(..) | Error::Host(_) => ExitStatus::Host,
        }
    }

    pub fn usage(msg: impl Into<String>) -> Self {
        Error::Usage(msg.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(m) => write!(f, "{m}"),
            Error::NoKvm { device, error } => match error.raw_os_error() {
                Some(libc::ENOENT) | Some(libc::ENODEV) | Some(libc::ENXIO) => write!(
                    f,
                    "{device} does not exist: load the KVM module (`modprobe kvm_intel` or `modprobe kvm_amd`) \
                     and enable virtualization in the firmware"
                ),
                Some(libc::EACCES) | Some(libc::EPERM) => write!(
                    f,
                    "no permission to open {device}: add yourself to the `kvm` group \
                     (`sudo usermod -aG kvm $USER`, then log in again)"
                ),
                _ => write!(f, "cannot open {device}: {error}"),
            },
            Error::Kvm(what, e) => write!(f, "KVM failed while {what}: {e}"),
            Error::Host(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// Shorthand for mapping a kvm-ioctls error with what we were doing.
pub trait KvmContext<T> {
    fn during(self, what: &'static str) -> Result<T>;
}

impl<T> KvmContext<T> for std::result::Result<T, kvm_ioctls::Error> {
    fn during(self, what: &'static str) -> Result<T> {
        self.map_err(|e| Error::Kvm(what, e))
    }
}
