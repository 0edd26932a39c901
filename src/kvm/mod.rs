//! The KVM boundary: opening /dev/kvm, creating the VM and its interrupt controllers, CPUID, and
//! kicking a vCPU out of KVM_RUN. Every `unsafe` block of minikvm lives below this module.

pub(crate) mod cpuid;
pub(crate) mod error;
pub(crate) mod exit;
pub(crate) mod memory;
pub(crate) mod vcpu;

pub use cpuid::{flat_guest_cpuid, guest_cpuid, kvm_paravirt_cpuid, HYPERVISOR_SIGNATURE};
use error::{KvmContext, KvmError};
use kvm_bindings::{kvm_pit_config, KVM_PIT_SPEAKER_DUMMY};
use kvm_ioctls::{Kvm, VcpuFd, VmFd};
use std::cell::Cell;
use std::sync::Once;

/// Opens /dev/kvm (or `$MINIKVM_KVM_DEVICE`, for tests and unusual setups) with a message that
/// says what to do when it fails.
pub fn open() -> Result<Kvm, KvmError> {
    use std::os::unix::ffi::OsStringExt;
    let path = std::env::var_os("MINIKVM_KVM_DEVICE").unwrap_or_else(|| "/dev/kvm".into());
    let device = path.to_string_lossy().into_owned();
    let path = std::ffi::CString::new(path.into_vec()).map_err(|_| KvmError::DevicePath)?;
    let kvm = Kvm::new_with_path(&path)
        .map_err(|e| KvmError::Open { device: device.clone(), error: std::io::Error::from_raw_os_error(e.errno()) })?;
    let version = kvm.get_api_version();
    if version < 0 {
        return Err(KvmError::NotKvm { device });
    }
    if version != 12 {
        return Err(KvmError::ApiVersion { device, version });
    }
    Ok(kvm)
}

/// Adds the in-kernel PIC pair, IOAPIC and PIT: what a PC kernel expects to find.
/// Must run before any vCPU is created.
pub fn add_pc_interrupts(vm: &VmFd) -> Result<(), KvmError> {
    vm.create_irq_chip().during("creating the in-kernel interrupt controllers")?;
    let pit = kvm_pit_config { flags: KVM_PIT_SPEAKER_DUMMY, ..Default::default() };
    vm.create_pit2(pit).during("creating the in-kernel PIT")?;
    Ok(())
}

/// IA32_MISC_ENABLE and its fast-strings bit (0), which a PC's firmware — and QEMU — sets.
const MSR_MISC_ENABLE: u32 = 0x1a0;
const MISC_ENABLE_FAST_STRING: u64 = 1 << 0;

/// The MSRs a kernel finds as a PC's firmware leaves them. KVM's vCPU reset already gives the
/// architectural values of EFER (0), PAT (0x0007040600070406), the APIC base (0xFEE00900 with the
/// BSP bit on vCPU 0) and a running TSC; MISC_ENABLE is the firmware's to set: fast strings on,
/// so a kernel that checks it (Linux does) uses `rep movs`.
pub fn firmware_msrs(vcpu: &VcpuFd) -> Result<(), KvmError> {
    let entry =
        kvm_bindings::kvm_msr_entry { index: MSR_MISC_ENABLE, data: MISC_ENABLE_FAST_STRING, ..Default::default() };
    let msrs = kvm_bindings::Msrs::from_entries(&[entry]).map_err(|_| KvmError::MsrList)?;
    let set = vcpu.set_msrs(&msrs).during("setting MISC_ENABLE")?;
    if set != 1 {
        log::warn!("KVM refused MISC_ENABLE; a kernel reads its own default");
    }
    Ok(())
}

/// Routes the PIC's interrupts into the vCPU's local APIC (LINT0 as ExtINT, LINT1 as NMI), as a
/// PC BIOS leaves it; without this a kernel using the 8259 would never see an interrupt.
pub fn route_pic_to_lapic(vcpu: &VcpuFd) -> Result<(), KvmError> {
    const LVT_LINT0: usize = 0x350;
    const LVT_LINT1: usize = 0x360;
    const EXTINT: u32 = 0x700;
    const NMI: u32 = 0x400;
    let mut lapic = vcpu.get_lapic().during("reading the local APIC")?;
    for (off, mode) in [(LVT_LINT0, EXTINT), (LVT_LINT1, NMI)] {
        let mut bytes = [0u8; 4];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = lapic.regs[off + i] as u8;
        }
        let v = (u32::from_le_bytes(bytes) & !0x0001_0700) | mode; // unmask, set delivery mode
        for (i, b) in v.to_le_bytes().iter().enumerate() {
            lapic.regs[off + i] = *b as _;
        }
    }
    vcpu.set_lapic(&lapic).during("writing the local APIC")?;
    Ok(())
}

// ----- kicking a vCPU out of KVM_RUN ---------------------------------------------------------
//
// A kick is a signal to the vCPU's thread whose handler sets `immediate_exit` in that thread's
// kvm_run. If the signal lands while the guest runs, KVM_RUN returns EINTR; if it lands just
// before KVM_RUN, immediate_exit makes KVM_RUN return at once. Either way no kick is lost, and
// nothing has to poll.

thread_local! {
    static KVM_RUN_PTR: Cell<*mut kvm_bindings::kvm_run> = const { Cell::new(std::ptr::null_mut()) };
}

/// The real-time signal used for kicks.
pub fn kick_signal() -> libc::c_int {
    vmm_sys_util::signal::SIGRTMIN()
}

extern "C" fn on_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    let ptr = KVM_RUN_PTR.with(|p| p.get());
    if !ptr.is_null() {
        // SAFETY: the pointer was set by this same thread to its vCPU's kvm_run mapping, which
        // stays mapped until the thread clears the pointer (see `KickTarget::drop`). A volatile
        // byte store is async-signal-safe.
        unsafe { std::ptr::addr_of_mut!((*ptr).immediate_exit).write_volatile(1) };
    }
}

/// Installs the kick handler once per process.
pub fn install_kick_handler() -> Result<(), KvmError> {
    static ONCE: Once = Once::new();
    let mut res = Ok(());
    ONCE.call_once(|| {
        res = vmm_sys_util::signal::register_signal_handler(kick_signal(), on_kick).map_err(KvmError::KickHandler);
    });
    res
}

/// While alive, kicks delivered to this thread set `immediate_exit` of `vcpu`.
pub struct KickTarget;

impl KickTarget {
    pub fn new(vcpu: &mut VcpuFd) -> Self {
        let run: *mut kvm_bindings::kvm_run = vcpu.get_kvm_run();
        KVM_RUN_PTR.with(|p| p.set(run));
        KickTarget
    }
}

impl Drop for KickTarget {
    fn drop(&mut self) {
        KVM_RUN_PTR.with(|p| p.set(std::ptr::null_mut()));
    }
}

/// Sends a kick to a vCPU thread.
pub fn kick(thread: &std::thread::JoinHandle<impl Send>) {
    use vmm_sys_util::signal::Killable;
    if let Err(e) = thread.kill(kick_signal()) {
        log::debug!("kick failed (thread already gone?): {e}");
    }
}
