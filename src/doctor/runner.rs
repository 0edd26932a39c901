//! Running one probe guest: a small VM with one vCPU, driven by the same run loop as every guest
//! ([`crate::run_loop`]), for at most two seconds; what it did first is the probe's evidence.

use super::NotWorking;
use crate::boot::{CpuStart, MachineKind};
use crate::devices::bus::{Caller, Effect, PortBus, PortDevice, FLOATING};
use crate::devices::console::{lock, Console};
use crate::devices::ports;
use crate::exit::Fault;
use crate::kvm::error::KvmContext;
use crate::kvm::vcpu::HostCaps;
use crate::kvm::{self, memory::GuestRam};
use crate::run_loop::{DebugEvent, Halt, Mode, ResumeWith, Vcpu, VcpuEnd};
use kvm_ioctls::Kvm;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// RAM of a probe VM.
pub const PROBE_RAM: u64 = 2 << 20;

/// A probe VM: what goes into its RAM, how its vCPU starts, and how it is watched.
pub struct ProbeSetup {
    /// (guest-physical address, bytes): the probe guest (and, for a 64-bit flat guest, the page
    /// tables minikvm's boot builds for it).
    pub images: Vec<(u64, Vec<u8>)>,
    pub start: CpuStart,
    /// KVM's supported CPUID (long mode, syscall, XSAVE), with minikvm's leaf: what a kernel gets.
    pub cpuid: bool,
    /// How the debugger would resume it (single step, breakpoints): the probe runs debugged.
    pub debug: ResumeWith,
    /// The guest talks through minikvm's PC ports (PUTCHAR, EXIT); else its first `out` to any
    /// port is its result.
    pub pc_ports: bool,
}

/// What a probe VM did first (the interesting exits only).
#[derive(Debug)]
pub enum Seen {
    Out(u16, u32),
    Hlt,
    Debug { exception: u32, pc: u64 },
    Other(String),
}

impl std::fmt::Display for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Seen::Other(s) => write!(f, "{s}"),
            other => write!(f, "unexpected {other:?}"),
        }
    }
}

/// How a probe run ended, and what its guest printed (PUTCHAR, with [`ProbeSetup::pc_ports`]).
pub struct ProbeRun {
    pub halt: Halt,
    pub first_out: Option<(u16, u32)>,
    pub printed: String,
}

impl ProbeRun {
    /// The run's first interesting exit.
    pub fn seen(self) -> Seen {
        match self.halt {
            Halt::End(VcpuEnd::Done("probe")) => {
                self.first_out.map_or(Seen::Other("no result".into()), |(p, v)| Seen::Out(p, v))
            }
            Halt::End(VcpuEnd::Done(_)) => Seen::Hlt,
            Halt::Debugger(DebugEvent::Debug { exception, pc, .. }) => Seen::Debug { exception, pc },
            Halt::End(VcpuEnd::Fault { fault, .. }) => fault_seen(&fault),
            Halt::End(VcpuEnd::Stopped) => Seen::Other("timed out".into()),
            Halt::End(VcpuEnd::HostError(msg)) => Seen::Other(msg),
            other => Seen::Other(format!("unexpected exit {other:?}")),
        }
    }
}

/// A fault, in the words of a probe's report.
fn fault_seen(fault: &Fault) -> Seen {
    Seen::Other(match fault {
        Fault::TripleFault => "triple fault".into(),
        Fault::InternalError(_) => "KVM internal error".into(),
        Fault::FailedEntry(r) => format!("VM entry failed ({r:#x})"),
        other => format!("unexpected exit {other:?}"),
    })
}

/// The probe guest's first `out`, to any port: it ends the probe.
#[derive(Default)]
struct FirstOut(Mutex<Option<(u16, u32)>>);

impl PortDevice for FirstOut {
    fn read(&self, _: u16, _: &mut dyn Caller) -> u8 {
        FLOATING
    }
    fn write(&self, offset: u16, value: u8, caller: &mut dyn Caller) -> Effect {
        self.write_item(offset, &[value], caller)
    }
    fn takes_whole_items(&self) -> bool {
        true
    }
    fn write_item(&self, offset: u16, item: &[u8], _: &mut dyn Caller) -> Effect {
        let mut v = [0u8; 4];
        let n = item.len().min(4);
        v[..n].copy_from_slice(&item[..n]);
        *lock(&self.0) = Some((offset, u32::from_le_bytes(v)));
        Effect::End("probe")
    }
}

/// What a probe guest prints, kept up to a bound (the guest decides how much it prints).
#[derive(Clone, Default)]
struct Printed(Arc<Mutex<Vec<u8>>>);

const MAX_PRINTED: usize = 4096;

impl std::io::Write for Printed {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut kept = lock(&self.0);
        let room = MAX_PRINTED.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..buf.len().min(room)]);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs a probe guest for at most two seconds and says how it ended.
pub fn run_probe(kvm: &Kvm, setup: ProbeSetup) -> Result<ProbeRun, NotWorking> {
    let vm = kvm.create_vm().during("creating a probe VM")?;
    let _ = vm.set_tss_address(0xfffb_d000);
    let ram = GuestRam::new(&vm, &[(0, PROBE_RAM as usize)])?;
    for (gpa, bytes) in &setup.images {
        ram.write(*gpa, bytes)?;
    }
    let fd = vm.create_vcpu(0).during("creating a probe vCPU")?;
    if setup.cpuid {
        fd.set_cpuid2(&kvm::guest_cpuid(kvm, 0)?).during("setting probe CPUID")?;
    }
    let printed = Printed::default();
    let console = Console::new(Box::new(printed.clone()), false, false);
    let first_out = Arc::new(FirstOut::default());
    let bus = probe_bus(&console, &first_out, setup.pc_ports);
    let host = HostCaps::of(kvm)?;
    let mut vcpu = Vcpu::new(0, "probe".into(), fd, MachineKind::Flat, console.clone(), Arc::new(bus), host);
    vcpu.fault_hints = false;
    vcpu.set_start(&setup.start)?;
    vcpu.set_debug(&setup.debug)?;
    let halt = drive_for_two_seconds(vcpu, setup.debug)?;
    console.finish();
    let printed = String::from_utf8_lossy(&lock(&printed.0)).into_owned();
    let first_out = lock(&first_out.0).take();
    drop(ram);
    Ok(ProbeRun { halt, first_out, printed })
}

/// The ports a probe guest reaches: minikvm's PC ports, or one device that ends the run at the
/// first `out` to any port.
fn probe_bus(console: &Arc<Console>, first_out: &Arc<FirstOut>, pc_ports: bool) -> PortBus {
    if pc_ports {
        return ports::pc_ports(console, PROBE_RAM, 1);
    }
    let mut bus = PortBus::default();
    // The first registration on an empty bus has nothing to overlap.
    let _ = bus.register(0, u16::MAX, first_out.clone());
    bus
}

/// Drives the vCPU on its own thread; a probe that has not answered in two seconds is stopped
/// and counts as not working.
fn drive_for_two_seconds(mut vcpu: Vcpu, debug: ResumeWith) -> Result<Halt, NotWorking> {
    kvm::install_kick_handler()?;
    let ctl = vcpu.ctl.clone();
    let handle = std::thread::spawn(move || {
        let _kick = vcpu.cpu.kick_target();
        vcpu.drive(Mode::Debugged(&debug))
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while !handle.is_finished() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    while !handle.is_finished() {
        ctl.stop.store(true, Ordering::Release);
        kvm::kick(&handle);
        std::thread::sleep(Duration::from_millis(5));
    }
    handle.join().map_err(|_| NotWorking::Panicked)
}
