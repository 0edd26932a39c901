//! `minikvm doctor`: what can this host's KVM run? Each answer comes from running a tiny guest,
//! never from guessing by CPU or kernel names. The tests ask the same probes
//! (`minikvm doctor --probe NAME`) to decide what they can check on a host. The probe guests are
//! assembly, one per probe (guest/probe/NAME.S); each runs through the same run loop as every
//! guest (runner.rs).

mod linux;
mod probes;
mod runner;

use crate::boot::long_mode::LongModeError;
use crate::devices::console::lock;
use crate::error::ExitStatus;
use crate::kvm;
use crate::kvm::error::{KvmError, VcpuError};
use crate::kvm::memory::MemoryError;
use kvm_ioctls::{Cap, Kvm};
use probes::*;
use runner::Seen;
use std::sync::Mutex;

/// One probe: its name, what it checks, and a hint when it fails.
pub struct Probe {
    pub name: &'static str,
    pub what: &'static str,
    pub hint: &'static str,
    run: fn(&Kvm) -> Result<(), NotWorking>,
}

/// Why a probe says "does not work": the reason column of `minikvm doctor`.
#[derive(Debug, thiserror::Error)]
pub enum NotWorking {
    #[error(transparent)]
    Kvm(#[from] KvmError),
    #[error(transparent)]
    Memory(#[from] MemoryError),
    #[error(transparent)]
    Vcpu(#[from] VcpuError),
    #[error(transparent)]
    Plan(#[from] LongModeError),
    /// build.rs built no guest for this probe (guest/probe/NAME.S is missing).
    #[error("no probe guest `{0}`")]
    NoGuest(String),
    #[error("probe thread panicked")]
    Panicked,
    /// The guest stopped in a way the probe did not expect.
    #[error("{0}")]
    Saw(Seen),
    #[error("wrong result: out {value:#x} to port {port:#x}")]
    WrongResult { port: u16, value: u32 },
    #[error("the call arrived from CS {0:#x}, not ring 3's 0x1b")]
    CallFrom(u32),
    #[error("triple fault (the int $0x80 in ring 3 did not reach its gate)")]
    GateNotReached,
    #[error("the handler ran with CS {handler:#x} after a sysret to CS {user:#x}")]
    SyscallRings { handler: u32, user: u32 },
    #[error("triple fault (the syscall handler could not run at ring 0: #GP on its `out`)")]
    SyscallHandlerFault,
    #[error("the write ran without a stop")]
    WriteNotStopped,
    /// The guest named an instruction and did not get past it.
    #[error("stops at `{instruction}`: {why}")]
    StoppedAt { instruction: String, why: String },
}

pub const PROBES: &[Probe] = &[
    Probe { name: "realmode", what: "real mode (16-bit)", hint: "every guest needs this", run: realmode_probe },
    Probe { name: "protected", what: "32-bit protected mode, paging off", hint: "Multiboot kernels start like this", run: protected_probe },
    Probe {
        name: "paging",
        what: "32-bit paging (guest sets CR0.PG)",
        hint: "the 1K OS and --paging need it; nested/emulating KVMs often lack it: minikvm then runs such guests in the lab (see the README)",
        run: paging_probe,
    },
    Probe { name: "longmode", what: "64-bit long mode", hint: "not used by minikvm's guests", run: longmode_probe },
    Probe {
        name: "usercall",
        what: "ring-3 int 0x80 in long mode (DPL-3 gate)",
        hint: "the 64-bit 1K OS's programs need it; some nested KVMs raise #UD instead: minikvm then runs kernels in the lab (see the README)",
        run: usercall_probe,
    },
    Probe {
        name: "syscall",
        what: "ring-3 syscall/sysret in long mode",
        hint: "a 64-bit kernel entered by `syscall` needs it; some nested KVMs run the handler at CPL 3: use the nested lane (.ci/nested-lane) or real hardware",
        run: syscall_probe,
    },
    Probe { name: "singlestep", what: "single-step (KVM_GUESTDBG_SINGLESTEP)", hint: "gdb `stepi` needs it", run: singlestep_probe },
    Probe { name: "hwbreak", what: "hardware breakpoints (DR0-DR3)", hint: "gdb `hbreak`/`watch` need it", run: hwbreak_probe },
    Probe {
        name: "watch",
        what: "data breakpoints (DR0-DR3 on writes)",
        hint: "without them the gdb stub emulates `watch` by single-stepping, and refuses `rwatch`/`awatch`",
        run: watch_probe,
    },
    Probe {
        name: "int3",
        what: "int3 interception (KVM_GUESTDBG_USE_SW_BP)",
        hint: "gdb `break` beyond 4 breakpoints needs it; only hardware KVM offers it",
        run: int3_probe,
    },
    Probe {
        name: "linux",
        what: "booting Linux (cmpxchg16b, xsetbv, xrstor)",
        hint: "Linux runs these at boot; boot it in the nested lane (.ci/nested-lane) or on a host with VT-x/AMD-V",
        run: linux::linux_probe,
    },
];

/// Why a probe could not give an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// No probe has this name (a usage error).
    #[error("unknown probe `{name}` (known: {known})")]
    Unknown { name: String, known: String },
    /// The KVM device cannot be used (a host failure); the message says which device and why.
    #[error("{0}")]
    NoKvm(String),
}

impl ProbeError {
    pub fn status(&self) -> ExitStatus {
        match self {
            ProbeError::Unknown { .. } => ExitStatus::Usage,
            ProbeError::NoKvm(_) => ExitStatus::Host,
        }
    }
}

/// Runs one probe by name: Ok(true) works, Ok(false) does not.
pub fn probe(name: &str) -> std::result::Result<bool, ProbeError> {
    let p = PROBES.iter().find(|p| p.name == name).ok_or_else(|| {
        let names: Vec<_> = PROBES.iter().map(|p| p.name).collect();
        ProbeError::Unknown { name: name.into(), known: names.join(", ") }
    })?;
    if let Some(&(_, works)) = lock(&KNOWN).iter().find(|(n, _)| *n == p.name) {
        return Ok(works);
    }
    let kvm = kvm::open().map_err(|e| ProbeError::NoKvm(e.to_string()))?;
    let works = (p.run)(&kvm).is_ok();
    lock(&KNOWN).push((p.name, works));
    Ok(works)
}

/// The probes already run by this process, and their answers: a run asks each at most once (the
/// host's KVM does not change while minikvm runs).
static KNOWN: Mutex<Vec<(&'static str, bool)>> = Mutex::new(Vec::new());

/// Why this host cannot boot a stock Linux kernel (the `linux` probe's reason), or None if it can.
pub fn linux_blocker() -> Option<String> {
    let kvm = kvm::open().ok()?;
    linux::linux_probe(&kvm).err().map(|e| e.to_string())
}

/// The full `minikvm doctor` report.
pub fn report() -> crate::error::Result<String> {
    let kvm = kvm::open()?;
    let mut s = format!("KVM API version {}\n\nCapabilities:\n", kvm.get_api_version());
    let caps = [
        (Cap::SyncRegs, "sync_regs (registers in kvm_run: hypercalls without KVM_GET_REGS)"),
        (Cap::Irqchip, "in-kernel PIC/IOAPIC/LAPIC"),
        (Cap::Pit2, "in-kernel PIT"),
        (Cap::SetGuestDebug, "guest debugging (single-step, breakpoints)"),
        (Cap::ImmediateExit, "immediate_exit (kicks without races)"),
        (Cap::CoalescedPio, "coalesced port I/O"),
        (Cap::ExtCpuid, "KVM_GET_SUPPORTED_CPUID"),
    ];
    for (cap, what) in caps {
        let ok = kvm.check_extension(cap);
        s += &format!("  {:<4} {what}\n", if ok { "yes" } else { "no" });
    }
    s += &format!("  max vCPUs: {}\n\nProbes (each runs a tiny guest):\n", kvm.get_max_vcpus());
    for p in PROBES {
        match (p.run)(&kvm) {
            Ok(()) => s += &format!("  works          {}\n", p.what),
            Err(why) => s += &format!("  does not work  {:<46} {why}\n                 hint: {}\n", p.what, p.hint),
        }
    }
    Ok(s)
}

/// For a guest that shut down in ring 3 of long mode: when this host's KVM fails the probes of
/// ring 3 making system calls, one line naming them and pointing to where such kernels run.
pub fn ring3_calls_hint() -> Option<String> {
    let failing: Vec<&str> = ["usercall", "syscall"].into_iter().filter(|p| probe(p) == Ok(false)).collect();
    if failing.is_empty() {
        return None;
    }
    Some(format!(
        "this host's KVM cannot run ring 3 making system calls in long mode (`minikvm doctor` probes {} fail: \
         int $0x80 from ring 3 raises #UD, `syscall` enters its handler still at CPL 3), so a 64-bit kernel's \
         programs fault here; run it in the nested lane or the lab (README \"Hosts whose KVM cannot page\")",
        failing.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>().join(" and ")
    ))
}
