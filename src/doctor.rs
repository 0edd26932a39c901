//! `minikvm doctor`: what can this host's KVM run? Each answer comes from running a tiny guest,
//! never from guessing by CPU or kernel names. The tests ask the same probes
//! (`minikvm doctor --probe NAME`) to decide what they can check on a host.

use crate::boot::MachineKind;
use crate::boot::{flat_segment, realmode};
use crate::devices::bus::{Caller, Effect, PortBus, PortDevice, FLOATING};
use crate::devices::console::{lock, Console};
use crate::error::{ExitStatus, KvmContext, Result};
use crate::exit::Fault;
use crate::kvm::vcpu::HostCaps;
use crate::kvm::{self, memory::GuestRam};
use crate::run_loop::{DebugEvent, Halt, Mode, ResumeWith, Vcpu, VcpuEnd};
use kvm_bindings::{kvm_regs, kvm_segment};
use kvm_ioctls::{Cap, Kvm, VcpuFd};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One probe: its name, what it checks, and a hint when it fails.
pub struct Probe {
    pub name: &'static str,
    pub what: &'static str,
    pub hint: &'static str,
    run: fn(&Kvm) -> std::result::Result<(), String>,
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
    let kvm = kvm::open().map_err(|e| ProbeError::NoKvm(e.to_string()))?;
    Ok((p.run)(&kvm).is_ok())
}

/// The full `minikvm doctor` report.
pub fn report() -> Result<String> {
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

// ----- the probe guests ------------------------------------------------------------------------

const CODE: u64 = 0x1000;
const PROBE_PORT: u16 = 0x10;

/// What a probe VM did first (the interesting exits only).
#[derive(Debug)]
enum Seen {
    Out(u16, u32),
    Hlt,
    Debug { exception: u32, pc: u64 },
    Other(String),
}

#[derive(Default)]
struct ProbeSetup {
    code: Vec<u8>,
    extra: Vec<(u64, Vec<u8>)>,
    protected: bool,
    long: bool,
    cr0: u64,
    cr3: u64,
    cr4: u64,
    efer: u64,
    /// How the debugger would resume it (single step, breakpoints): the probe runs debugged.
    debug: ResumeWith,
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
        v[..item.len().min(4)].copy_from_slice(&item[..item.len().min(4)]);
        *lock(&self.0) = Some((offset, u32::from_le_bytes(v)));
        Effect::End("probe")
    }
}

/// Runs a probe guest for at most two seconds through the run loop ([`crate::run_loop`]) and
/// returns its first interesting exit.
fn run_probe(kvm: &Kvm, setup: ProbeSetup) -> std::result::Result<Seen, String> {
    let err = |e: crate::error::Error| e.to_string();
    let vm = kvm.create_vm().during("creating a probe VM").map_err(err)?;
    let _ = vm.set_tss_address(0xfffb_d000);
    let ram = GuestRam::new(&vm, &[(0, 2 << 20)]).map_err(err)?;
    let start = if setup.protected { CODE } else { 0 };
    ram.write(start, &setup.code)?;
    for (gpa, bytes) in &setup.extra {
        ram.write(*gpa, bytes)?;
    }
    let fd = vm.create_vcpu(0).during("creating a probe vCPU").map_err(err)?;
    if setup.long {
        // What a kernel gets: KVM's supported CPUID (long mode, syscall) with minikvm's leaf.
        let cpuid = kvm::guest_cpuid(kvm, 0).map_err(err)?;
        fd.set_cpuid2(&cpuid).during("setting probe CPUID").map_err(err)?;
    }
    let first_out = Arc::new(FirstOut::default());
    let mut bus = PortBus::default();
    bus.register(0, u16::MAX, first_out.clone()).map_err(|_| "the probe's port bus".to_string())?;
    let console = Console::new(Box::new(std::io::sink()), false, false);
    let host = HostCaps::of(kvm).map_err(err)?;
    let mut vcpu = Vcpu::new(0, "probe".into(), fd, MachineKind::Flat, console, Arc::new(bus), host);
    vcpu.fault_hints = false;
    set_probe_registers(vcpu.fd(), &setup, start)?;
    vcpu.set_debug(&setup.debug)?;
    kvm::install_kick_handler().map_err(err)?;
    let ctl = vcpu.ctl.clone();
    let handle = std::thread::spawn(move || {
        let _kick = vcpu.cpu.kick_target();
        vcpu.drive(Mode::Debugged(&setup.debug))
    });
    // A probe that has not answered in two seconds is kicked out and counts as not working.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while !handle.is_finished() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    while !handle.is_finished() {
        ctl.stop.store(true, Ordering::Release);
        kvm::kick(&handle);
        std::thread::sleep(Duration::from_millis(5));
    }
    let halt = handle.join().map_err(|_| "probe thread panicked".to_string())?;
    let out = lock(&first_out.0).take();
    Ok(seen(halt, out))
}

/// The probe's first interesting exit, from how the run loop stopped.
fn seen(halt: Halt, out: Option<(u16, u32)>) -> Seen {
    match halt {
        Halt::End(VcpuEnd::Done("probe")) => out.map_or(Seen::Other("no result".into()), |(p, v)| Seen::Out(p, v)),
        Halt::End(VcpuEnd::Done(_)) => Seen::Hlt,
        Halt::Debugger(DebugEvent::Debug { exception, pc, .. }) => Seen::Debug { exception, pc },
        Halt::End(VcpuEnd::Fault { fault: Fault::TripleFault, .. }) => Seen::Other("triple fault".into()),
        Halt::End(VcpuEnd::Fault { fault: Fault::InternalError(_), .. }) => Seen::Other("KVM internal error".into()),
        Halt::End(VcpuEnd::Fault { fault: Fault::FailedEntry(r), .. }) => {
            Seen::Other(format!("VM entry failed ({r:#x})"))
        }
        Halt::End(VcpuEnd::Stopped) => Seen::Other("timed out".into()),
        Halt::End(VcpuEnd::HostError(msg)) => Seen::Other(msg),
        other => Seen::Other(format!("unexpected exit {other:?}")),
    }
}

/// The probe's first state: real mode at 0, or flat protected (or long) mode at [`CODE`].
fn set_probe_registers(fd: &VcpuFd, setup: &ProbeSetup, start: u64) -> std::result::Result<(), String> {
    let err = |e: crate::error::Error| e.to_string();
    let mut sregs = fd.get_sregs().during("reading probe sregs").map_err(err)?;
    if setup.protected {
        let mut code: kvm_segment = flat_segment(0x08, true, 0);
        if setup.long {
            code.l = 1;
            code.db = 0;
        }
        let data = flat_segment(0x10, false, 0);
        sregs.cs = code;
        (sregs.ds, sregs.es, sregs.fs, sregs.gs, sregs.ss) = (data, data, data, data, data);
        sregs.cr0 = setup.cr0;
        sregs.cr3 = setup.cr3;
        sregs.cr4 = setup.cr4;
        sregs.efer = setup.efer;
    } else {
        realmode::cpu_start(0).apply(&mut sregs);
    }
    fd.set_sregs(&sregs).during("setting probe sregs").map_err(err)?;
    let regs = kvm_regs { rip: start, rflags: 2, rsp: 0x8000, ..Default::default() };
    fd.set_regs(&regs).during("setting probe regs").map_err(err)?;
    Ok(())
}

fn expect_out(seen: Seen, value: u32) -> std::result::Result<(), String> {
    match seen {
        Seen::Out(PROBE_PORT, v) if v == value => Ok(()),
        Seen::Out(p, v) => Err(format!("wrong result: out {v:#x} to port {p:#x}")),
        other => Err(describe(other)),
    }
}

fn describe(seen: Seen) -> String {
    match seen {
        Seen::Other(s) => s,
        other => format!("unexpected {other:?}"),
    }
}

fn realmode_probe(kvm: &Kvm) -> std::result::Result<(), String> {
    // mov $0x1234,%ax ; out %ax,$0x10 ; hlt
    let seen = run_probe(kvm, ProbeSetup { code: vec![0xb8, 0x34, 0x12, 0xe7, 0x10, 0xf4], ..Default::default() })?;
    expect_out(seen, 0x1234)
}

fn protected_probe(kvm: &Kvm) -> std::result::Result<(), String> {
    // mov $0x12345678,%eax ; out %eax,$0x10 ; hlt
    let code = vec![0xb8, 0x78, 0x56, 0x34, 0x12, 0xe7, 0x10, 0xf4];
    let seen = run_probe(kvm, ProbeSetup { code, protected: true, cr0: 0x11, ..Default::default() })?;
    expect_out(seen, 0x1234_5678)
}

fn paging_probe(kvm: &Kvm) -> std::result::Result<(), String> {
    // The guest turns paging on itself, then reads PA 0x1800 through the alias VA 0x401800.
    let mut dir = vec![0u8; 0x1000];
    dir[0..4].copy_from_slice(&0x3003u32.to_le_bytes());
    dir[4..8].copy_from_slice(&0x3003u32.to_le_bytes());
    let table: Vec<u8> = (0..1024u32).flat_map(|i| ((i << 12) | 3).to_le_bytes()).collect();
    #[rustfmt::skip]
    let code = vec![
        0xb8, 0x00, 0x20, 0x00, 0x00, // mov $0x2000,%eax
        0x0f, 0x22, 0xd8,             // mov %eax,%cr3
        0x0f, 0x20, 0xc0,             // mov %cr0,%eax
        0x0d, 0x00, 0x00, 0x00, 0x80, // or $0x80000000,%eax
        0x0f, 0x22, 0xc0,             // mov %eax,%cr0
        0xeb, 0x00,                   // jmp .+2
        0xa1, 0x00, 0x18, 0x40, 0x00, // mov 0x401800,%eax
        0xe7, 0x10,                   // out %eax,$0x10
        0xf4,
    ];
    let extra = vec![(0x2000, dir), (0x3000, table), (0x1800, 0xc0ff_ee11u32.to_le_bytes().to_vec())];
    let seen = run_probe(kvm, ProbeSetup { code, extra, protected: true, cr0: 0x11, ..Default::default() })?;
    expect_out(seen, 0xc0ff_ee11)
}

fn longmode_probe(kvm: &Kvm) -> std::result::Result<(), String> {
    let pml4 = 0x5003u64.to_le_bytes().to_vec();
    let pdpt = 0x6003u64.to_le_bytes().to_vec();
    let pd = 0x83u64.to_le_bytes().to_vec(); // one 2 MiB page at 0
                                             // mov $0x11223344,%eax ; out %eax,$0x10 ; hlt
    let code = vec![0xb8, 0x44, 0x33, 0x22, 0x11, 0xe7, 0x10, 0xf4];
    let setup = ProbeSetup {
        code,
        extra: vec![(0x4000, pml4), (0x5000, pdpt), (0x6000, pd)],
        protected: true,
        long: true,
        cr0: 0x8000_0011,
        cr3: 0x4000,
        cr4: 0x20,
        efer: 0x500, // LME | LMA
        debug: ResumeWith::default(),
    };
    expect_out(run_probe(kvm, setup)?, 0x1122_3344)
}

/// A long-mode guest drops to ring 3 with `iretq` and makes a system call through a DPL-3 gate:
/// the handler (ring 0) reports the CS it interrupted, which must be ring 3's (0x1b). The 64-bit
/// 1K OS does exactly this for every program. (The same bytes, started in long mode by a small
/// Multiboot harness under `qemu-system-x86_64`, report 0x1b through isa-debug-exit.)
fn usercall_probe(kvm: &Kvm) -> std::result::Result<(), String> {
    let mut code = vec![0u8; 0x190];
    #[rustfmt::skip]
    let kernel = [
        0x0f, 0x01, 0x14, 0x25, 0x00, 0x21, 0x00, 0x00, // lgdt 0x2100
        0x0f, 0x01, 0x1c, 0x25, 0x10, 0x21, 0x00, 0x00, // lidt 0x2110
        0x66, 0xb8, 0x28, 0x00, 0x0f, 0x00, 0xd8,       // mov $0x28,%ax ; ltr %ax (the TSS: RSP0)
        0x6a, 0x23, 0x68, 0x00, 0x80, 0x00, 0x00,       // push $0x23 (SS) ; push $0x8000 (RSP)
        0x6a, 0x02, 0x6a, 0x1b,                         // push $2 (RFLAGS) ; push $0x1b (CS, ring 3)
        0x68, 0x00, 0x11, 0x00, 0x00,                   // push $0x1100 (RIP)
        0x48, 0xcf,                                     // iretq: to ring 3
    ];
    code[..kernel.len()].copy_from_slice(&kernel);
    // Ring 3: int $0x80 ; ud2
    code[0x100..0x104].copy_from_slice(&[0xcd, 0x80, 0x0f, 0x0b]);
    // The gate's handler, ring 0: movzwl 8(%rsp),%eax (the interrupted CS, above RIP) ; out %eax,$0x10 ; hlt
    code[0x180..0x188].copy_from_slice(&[0x0f, 0xb7, 0x44, 0x24, 0x08, 0xe7, 0x10, 0xf4]);

    // null; 0x08 ring-0 code (L = 1); 0x10 ring-0 data; 0x18 ring-3 code (L = 1); 0x20 ring-3
    // data; 0x28 a 16-byte TSS descriptor (base 0x3000, limit 0x67).
    let gdt = [0, 0x00af_9a00_0000_ffff, 0x00cf_9200_0000_ffff, 0x00af_fa00_0000_ffff, 0x00cf_f200_0000_ffff];
    let handler = CODE + 0x180;
    let gate = quads(&[(handler & 0xffff) | (0x08 << 16) | (0xee << 40) | ((handler >> 16) << 48), 0]);
    let mut setup = ring3_setup(code, &gdt, 0);
    setup.extra.push((0x4000 + 0x80 * 16, gate));
    match run_probe(kvm, setup)? {
        Seen::Out(PROBE_PORT, 0x1b) => Ok(()),
        Seen::Out(PROBE_PORT, cs) => Err(format!("the call arrived from CS {cs:#x}, not ring 3's 0x1b")),
        Seen::Other(s) if s == "triple fault" => {
            Err("triple fault (the int $0x80 in ring 3 did not reach its gate)".into())
        }
        other => Err(describe(other)),
    }
}

fn quads(q: &[u64]) -> Vec<u8> {
    q.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// A long-mode probe machine whose code at [`CODE`] can drop to ring 3: `gdt`'s five descriptors
/// plus a TSS (0x28, base 0x3000, RSP0 = 0x9000), the GDT and IDT pointers at 0x2100 and 0x2110
/// (an IDT of 0x81 gates at 0x4000, all absent unless added), and page tables with the user bit
/// at every level mapping one 2 MiB page at 0. `sce` is EFER.SCE (syscall/sysret on).
fn ring3_setup(code: Vec<u8>, gdt: &[u64; 5], sce: u64) -> ProbeSetup {
    let mut descriptors = gdt.to_vec();
    descriptors.extend([0x0000_8900_3000_0067, 0]);
    let mut pointers = vec![0u8; 0x20]; // at 0x2100: the GDT's, then at 0x2110 the IDT's
    pointers[..2].copy_from_slice(&((7 * 8 - 1) as u16).to_le_bytes());
    pointers[2..10].copy_from_slice(&0x2000u64.to_le_bytes());
    pointers[0x10..0x12].copy_from_slice(&((0x81 * 16 - 1) as u16).to_le_bytes());
    pointers[0x12..0x1a].copy_from_slice(&0x4000u64.to_le_bytes());
    let mut tss = vec![0u8; 0x68];
    tss[4..12].copy_from_slice(&0x9000u64.to_le_bytes()); // RSP0: the ring-0 stack for the call
    let extra = vec![
        (0x2000, quads(&descriptors)),
        (0x2100, pointers),
        (0x3000, tss),
        (0x5000, 0x6007u64.to_le_bytes().to_vec()), // PS | U | W | P at every level
        (0x6000, 0x7007u64.to_le_bytes().to_vec()),
        (0x7000, 0x87u64.to_le_bytes().to_vec()),
    ];
    ProbeSetup {
        code,
        extra,
        protected: true,
        long: true,
        cr0: 0x8000_0011,
        cr3: 0x5000,
        cr4: 0x20,
        efer: 0x500 | sce,
        debug: ResumeWith::default(),
    }
}

/// A long-mode guest drops to ring 3 and makes two system calls with `syscall`, returning from
/// the first with `sysretq`: the handler at LSTAR must run at ring 0 (CS 0x08, from STAR) and
/// `sysretq` must land in ring 3 (CS 0x23). The second call reports both: (ring-3 CS << 16) | the
/// handler's CS. The 64-bit 1K OS could enter its kernel this way; some nested KVMs run the
/// handler still at CPL 3, where its first `out` raises #GP.
fn syscall_probe(kvm: &Kvm) -> std::result::Result<(), String> {
    let mut code = vec![0u8; 0x1a0];
    #[rustfmt::skip]
    let kernel = [
        0x0f, 0x01, 0x14, 0x25, 0x00, 0x21, 0x00, 0x00, // lgdt 0x2100
        0x0f, 0x01, 0x1c, 0x25, 0x10, 0x21, 0x00, 0x00, // lidt 0x2110
        0x66, 0xb8, 0x28, 0x00, 0x0f, 0x00, 0xd8,       // mov $0x28,%ax ; ltr %ax
        0xb9, 0x81, 0x00, 0x00, 0xc0, 0x31, 0xc0,       // mov $STAR,%ecx ; xor %eax,%eax
        0xba, 0x08, 0x00, 0x10, 0x00, 0x0f, 0x30,       // mov $0x00100008,%edx ; wrmsr: syscall CS 0x08, sysret base 0x10
        0xb9, 0x82, 0x00, 0x00, 0xc0,                   // mov $LSTAR,%ecx
        0xb8, 0x80, 0x11, 0x00, 0x00, 0x31, 0xd2,       // mov $0x1180,%eax ; xor %edx,%edx
        0x0f, 0x30, 0x45, 0x31, 0xed,                   // wrmsr ; xor %r13d,%r13d (calls made)
        0x6a, 0x1b, 0x68, 0x00, 0x80, 0x00, 0x00,       // push $0x1b (SS) ; push $0x8000 (RSP)
        0x6a, 0x02, 0x6a, 0x23,                         // push $2 (RFLAGS) ; push $0x23 (CS, ring 3)
        0x68, 0x00, 0x11, 0x00, 0x00, 0x48, 0xcf,       // push $0x1100 (RIP) ; iretq: to ring 3
    ];
    code[..kernel.len()].copy_from_slice(&kernel);
    // Ring 3: syscall ; mov %cs,%r14d ; syscall ; ud2
    code[0x100..0x109].copy_from_slice(&[0x0f, 0x05, 0x41, 0x8c, 0xce, 0x0f, 0x05, 0x0f, 0x0b]);
    #[rustfmt::skip]
    let handler = [
        0x41, 0xff, 0xc5, 0x41, 0x83, 0xfd, 0x01,       // inc %r13d ; cmp $1,%r13d
        0x75, 0x03, 0x48, 0x0f, 0x07,                   // jne 1f ; sysretq (the first call returns)
        0x66, 0x8c, 0xc8, 0x0f, 0xb7, 0xc0,             // 1: mov %cs,%ax ; movzwl %ax,%eax
        0x41, 0xc1, 0xe6, 0x10, 0x44, 0x09, 0xf0,       // shl $16,%r14d ; or %r14d,%eax
        0xe7, 0x10, 0xf4,                               // out %eax,$0x10 ; hlt
    ];
    code[0x180..0x180 + handler.len()].copy_from_slice(&handler);
    // sysretq takes CS = base + 16 and SS = base + 8: so ring-3 data (0x18) comes before ring-3 code (0x20).
    let gdt = [0, 0x00af_9a00_0000_ffff, 0x00cf_9200_0000_ffff, 0x00cf_f200_0000_ffff, 0x00af_fa00_0000_ffff];
    match run_probe(kvm, ring3_setup(code, &gdt, 1))? {
        Seen::Out(PROBE_PORT, 0x0023_0008) => Ok(()),
        Seen::Out(PROBE_PORT, v) => {
            Err(format!("the handler ran with CS {:#x} after a sysret to CS {:#x}", v & 0xffff, v >> 16))
        }
        Seen::Other(s) if s == "triple fault" => {
            Err("triple fault (the syscall handler could not run at ring 0: #GP on its `out`)".into())
        }
        other => Err(describe(other)),
    }
}

/// Breakpoints as the debugger would set them: DR0 and DR7.
fn hw_breakpoint(dr0: u64, dr7: u64) -> ResumeWith {
    let mut debugreg = [0; 8];
    debugreg[0] = dr0;
    debugreg[7] = dr7;
    ResumeWith { debugreg, ..Default::default() }
}

fn singlestep_probe(kvm: &Kvm) -> std::result::Result<(), String> {
    let setup = ProbeSetup {
        code: vec![0x90, 0x90, 0xf4],
        debug: ResumeWith { step: true, ..Default::default() },
        ..Default::default()
    };
    match run_probe(kvm, setup)? {
        Seen::Debug { exception: 1, pc: 1 } => Ok(()),
        other => Err(describe(other)),
    }
}

fn hwbreak_probe(kvm: &Kvm) -> std::result::Result<(), String> {
    let setup = ProbeSetup { code: vec![0x90, 0x90, 0x90, 0xf4], debug: hw_breakpoint(2, 0x1), ..Default::default() };
    match run_probe(kvm, setup)? {
        Seen::Debug { exception: 1, pc: 2 } => Ok(()),
        other => Err(describe(other)),
    }
}

fn watch_probe(kvm: &Kvm) -> std::result::Result<(), String> {
    // movb $1, 0x100 ; hlt — with a one-byte write watchpoint on 0x100 (DR7: L0, R/W0 = write).
    let setup = ProbeSetup {
        code: vec![0xc6, 0x06, 0x00, 0x01, 0x01, 0xf4],
        debug: hw_breakpoint(0x100, 0x0001_0701),
        ..Default::default()
    };
    match run_probe(kvm, setup)? {
        Seen::Debug { exception: 1, .. } => Ok(()),
        Seen::Hlt => Err("the write ran without a stop".into()),
        other => Err(describe(other)),
    }
}

fn int3_probe(kvm: &Kvm) -> std::result::Result<(), String> {
    let setup = ProbeSetup {
        code: vec![0x90, 0xcc, 0xf4],
        protected: true,
        cr0: 0x11,
        // The debugger's own int3, at the second byte.
        debug: ResumeWith { int3: vec![CODE + 1], ..Default::default() },
        ..Default::default()
    };
    match run_probe(kvm, setup)? {
        Seen::Debug { exception: 3, .. } => Ok(()),
        other => Err(describe(other)),
    }
}
