//! What can go wrong at the KVM boundary: opening the device and setting up the VM
//! ([`KvmError`]), and a vCPU's own ioctls ([`VcpuError`]). Each variant's message is what the
//! user reads; [`crate::error::Error::status`] maps them to exit statuses.

/// The KVM device or a VM-wide set-up step failed.
#[derive(Debug, thiserror::Error)]
pub enum KvmError {
    /// The KVM device could not be opened: the message says what to do about it.
    #[error("{}", open_advice(device, error))]
    Open { device: String, error: std::io::Error },
    /// `$MINIKVM_KVM_DEVICE` cannot be a path (a usage error).
    #[error("MINIKVM_KVM_DEVICE contains a NUL byte")]
    DevicePath,
    #[error("{device} is not a KVM device (KVM_GET_API_VERSION failed)")]
    NotKvm { device: String },
    #[error("{device}: unsupported KVM API version {version} (minikvm needs 12)")]
    ApiVersion { device: String, version: i32 },
    /// A KVM ioctl failed: what we were doing, and the error.
    #[error("KVM failed while {what}: {source}")]
    Ioctl { what: &'static str, source: kvm_ioctls::Error },
    #[error("CPUID table is full")]
    CpuidFull,
    #[error("cannot build an MSR list")]
    MsrList,
    #[error("cannot install the vCPU kick signal handler: {0}")]
    KickHandler(vmm_sys_util::errno::Error),
    #[error("cannot map guest memory: {0}")]
    MapMemory(vm_memory::mmap::FromRangesError),
    #[error("guest memory region has no host address: {0}")]
    NoHostAddress(vm_memory::GuestMemoryError),
}

/// Why the KVM device could not be opened, in words that say what to do.
fn open_advice(device: &str, error: &std::io::Error) -> String {
    match error.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ENODEV) | Some(libc::ENXIO) => format!(
            "{device} does not exist: load the KVM module (`modprobe kvm_intel` or `modprobe kvm_amd`) \
             and enable virtualization in the firmware"
        ),
        Some(libc::EACCES) | Some(libc::EPERM) => format!(
            "no permission to open {device}: add yourself to the `kvm` group \
             (`sudo usermod -aG kvm $USER`, then log in again)"
        ),
        _ => format!("cannot open {device}: {error}"),
    }
}

/// Shorthand for mapping a kvm-ioctls error with what we were doing.
pub trait KvmContext<T> {
    fn during(self, what: &'static str) -> Result<T, KvmError>;
}

impl<T> KvmContext<T> for Result<T, kvm_ioctls::Error> {
    fn during(self, what: &'static str) -> Result<T, KvmError> {
        self.map_err(|source| KvmError::Ioctl { what, source })
    }
}

/// A vCPU ioctl failed while the vCPU ran or was looked at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VcpuError {
    /// An ioctl on a known vCPU: its name (`KVM_GET_REGS`), the vCPU, the error.
    #[error("{what} failed on vCPU {vcpu}: {source}")]
    OnVcpu { what: &'static str, vcpu: usize, source: kvm_ioctls::Error },
    /// An ioctl, by its name.
    #[error("{what} failed: {source}")]
    Ioctl { what: &'static str, source: kvm_ioctls::Error },
    /// KVM_TRANSLATE found no mapping.
    #[error("linear address {0:#x} is not mapped")]
    Unmapped(u64),
}
