//! One vCPU and its run loop.
//!
//! The loop is a small state machine: `Running` (KVM_RUN, then handle the exit) until the guest
//! ends, faults, or the controller asks it to stop; with a debugger attached it can also be
//! `Paused`, serving the debugger's requests (see [`crate::gdb`]). Exits are copied into an owned
//! [`Exit`], decided by the pure [`exit::decide`], and carried out here.

use crate::boot::{CpuStart, MachineKind};
use crate::devices::bus::{Caller, Effect, PortBus};
use crate::devices::console::{lock, Console};
use crate::error::{KvmContext, Result};
use crate::exit::{self, Action, Exit, Fault};
use crate::kvm::memory::GuestRam;
use crate::stats::VcpuStats;
use crate::x86::paging::{FnMem, Paging};
use kvm_bindings::{
    kvm_fpu, kvm_guest_debug, kvm_regs, kvm_sregs, KVM_GUESTDBG_BLOCKIRQ, KVM_GUESTDBG_ENABLE, KVM_GUESTDBG_SINGLESTEP,
    KVM_GUESTDBG_USE_HW_BP, KVM_GUESTDBG_USE_SW_BP,
};
use kvm_ioctls::{Cap, SyncReg, VcpuExit, VcpuFd};
use nix::sys::eventfd::EventFd;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Instant;

/// Flags the controller sets before kicking a vCPU.
#[derive(Debug, Default)]
pub struct VcpuControl {
    /// End the run (timeout, quit key, signal, another vCPU faulted).
    pub stop: AtomicBool,
    /// Under a debugger: stop at the next exit and report [`DebugEvent::Paused`].
    pub pause: AtomicBool,
    /// The vCPU thread's id (0 until it runs), for the controller to see whether it sleeps.
    pub tid: AtomicI32,
}

/// What one exit means for the run loop.
enum Outcome {
    Continue,
    End(VcpuEnd),
    /// A debug exit (single step, breakpoint, watchpoint, int3).
    Debug {
        exception: u32,
        pc: u64,
        dr6: u64,
    },
}

/// How a vCPU's run ended.
#[derive(Debug, Clone)]
pub enum VcpuEnd {
    /// `hlt` (flat guests) or the EXIT hypercall.
    Done(&'static str),
    /// The guest faulted; `report` is a readable multi-line description; `long_mode` says the
    /// vCPU was in long mode (so a 32-bit paging hint would be beside the point).
    Fault { fault: Fault, report: String, long_mode: bool },
    /// The controller stopped it.
    Stopped,
    /// The guest wrote this non-zero value to the ISA debug-exit port: its own verdict "failed".
    DebugExit(u32),
    /// A KVM ioctl failed.
    HostError(String),
    /// minikvm itself failed: the vCPU's thread died (a panic, with its message and place).
    Internal(String),
}

pub struct Vcpu {
    pub id: usize,
    pub name: String,
    pub fd: VcpuFd,
    pub kind: MachineKind,
    pub console: Arc<Console>,
    /// The devices its port I/O reaches.
    pub bus: Arc<PortBus>,
    pub stats: Arc<Mutex<VcpuStats>>,
    pub ctl: Arc<VcpuControl>,
    /// KVM copies the general registers into kvm_run on every exit (KVM_CAP_SYNC_REGS).
    sync_regs: bool,
    /// Also copy the segment registers (only to log CS:IP at -vv).
    sync_sregs: bool,
    /// The size of the kvm_run mapping, which holds the data of port I/O exits.
    run_size: usize,
    /// GETCHAR was asked for: don't run the guest on until input is queued or has ended.
    awaiting_input: bool,
    /// The instruction bytes KVM handed back with its last emulation failure, for the report.
    emulation_insn: Option<Vec<u8>>,
}

/// What minikvm needs to know about the host's KVM to run a vCPU.
#[derive(Debug, Clone, Copy)]
pub struct HostCaps {
    /// KVM_CAP_SYNC_REGS.
    pub sync_regs: bool,
    /// KVM_GET_VCPU_MMAP_SIZE: the size of each vCPU's kvm_run mapping.
    pub run_size: usize,
}

impl HostCaps {
    pub fn of(kvm: &kvm_ioctls::Kvm) -> Result<HostCaps> {
        let run_size = kvm.get_vcpu_mmap_size().during("reading the vCPU mapping size")?;
        Ok(HostCaps { sync_regs: kvm.check_extension(Cap::SyncRegs), run_size })
    }
}

impl Vcpu {
    pub fn new(
        id: usize,
        name: String,
        mut fd: VcpuFd,
        kind: MachineKind,
        console: Arc<Console>,
        bus: Arc<PortBus>,
        host: HostCaps,
    ) -> Self {
        let sync_regs_cap = host.sync_regs;
        let sync_sregs = sync_regs_cap && log::log_enabled!(log::Level::Debug);
        if sync_regs_cap {
            fd.set_sync_valid_reg(SyncReg::Register);
            if sync_sregs {
                fd.set_sync_valid_reg(SyncReg::SystemRegister);
            }
        }
        Vcpu {
            id,
            name,
            fd,
            kind,
            console,
            bus,
            stats: Arc::new(Mutex::new(VcpuStats::default())),
            ctl: Arc::new(VcpuControl::default()),
            sync_regs: sync_regs_cap,
            sync_sregs,
            run_size: host.run_size,
            awaiting_input: false,
            emulation_insn: None,
        }
    }

    /// Puts the vCPU in its first state.
    pub fn set_start(&self, start: &CpuStart) -> Result<()> {
        let mut sregs = self.fd.get_sregs().during("reading the vCPU's special registers")?;
        start.apply(&mut sregs);
        self.fd.set_sregs(&sregs).during("setting the vCPU's special registers")?;
        self.fd.set_regs(&start.regs).during("setting the vCPU's registers")?;
        log::info!(
            "vCPU {} ({}): CS={:#06x} base {:#x}, EIP={:#x}, CR0={:#x}, CR3={:#x}",
            self.id,
            self.name,
            sregs.cs.selector,
            sregs.cs.base,
            start.regs.rip,
            sregs.cr0,
            sregs.cr3
        );
        Ok(())
    }

    /// Runs until the guest ends, faults or is stopped.
    pub fn run(&mut self) -> VcpuEnd {
        self.ctl.tid.store(nix::unistd::gettid().as_raw(), Ordering::Relaxed);
        let _kick = crate::kvm::KickTarget::new(&mut self.fd);
        let started = Instant::now();
        let end = self.run_loop();
        lock(&self.stats).wall = started.elapsed();
        end
    }

    fn run_loop(&mut self) -> VcpuEnd {
        loop {
            if self.ctl.stop.load(Ordering::Acquire) {
                return VcpuEnd::Stopped;
            }
            if self.awaiting_input {
                self.await_input();
                continue;
            }
            let exit = match self.enter() {
                Ok(e) => e,
                Err(msg) => return VcpuEnd::HostError(msg),
            };
            match self.carry_out(&exit) {
                Outcome::Continue => {}
                Outcome::End(end) => return end,
                Outcome::Debug { .. } => {
                    return self.fault_end(Fault::Unhandled("debug exit with no debugger attached".into()));
                }
            }
        }
    }

    /// Waits, if GETCHAR asked for input that is not there yet, until it is (or stdin ends, or the
    /// run ends); a stop or pause request ends the wait early, and the wait resumes after a pause.
    fn await_input(&mut self) {
        let ctl = &self.ctl;
        let interrupted = || ctl.stop.load(Ordering::Acquire) || ctl.pause.load(Ordering::Acquire);
        if self.console.wait_for_input(&interrupted) {
            self.awaiting_input = false;
        }
    }

    /// Does what [`exit::decide`] says about one exit (devices, ends).
    #[inline]
    fn carry_out(&mut self, exit: &Exit) -> Outcome {
        match exit::decide(exit, self.kind) {
            Action::Resume | Action::Kicked => {}
            Action::Unclaimed => log::debug!("vCPU {}: unclaimed {:?}", self.id, exit),
            Action::PortIo => match self.port_io(exit) {
                Effect::Continue => {}
                Effect::AwaitInput => self.awaiting_input = true,
                Effect::End(why) => return Outcome::End(VcpuEnd::Done(why)),
                Effect::Fault(fault) => return Outcome::End(self.fault_end(fault)),
                Effect::HostError(msg) => return Outcome::End(VcpuEnd::HostError(msg)),
                Effect::DebugExit(v) => return Outcome::End(VcpuEnd::DebugExit(v)),
            },
            Action::Done => return Outcome::End(VcpuEnd::Done("hlt")),
            Action::Fault(fault) => return Outcome::End(self.fault_end(fault)),
            Action::DebugStop => {
                if let Exit::Debug { exception, pc, dr6 } = *exit {
                    return Outcome::Debug { exception, pc, dr6 };
                }
            }
        }
        Outcome::Continue
    }

    /// One KVM_RUN, and what it exited for, copied out of `kvm_run`.
    fn enter(&mut self) -> std::result::Result<Exit, String> {
        let Vcpu { fd, stats, id, sync_sregs, run_size, emulation_insn, .. } = self;
        let t0 = Instant::now();
        let res = fd.run();
        let in_guest = t0.elapsed();
        let exit = match res {
            // Port I/O is read from kvm_run's own header (kvm-ioctls drops the item size), and is
            // carried out by `port_io` while its data stays in kvm_run until the next KVM_RUN.
            Ok(VcpuExit::IoIn(..)) | Ok(VcpuExit::IoOut(..)) => match pio_header(fd, *run_size) {
                Some(io) if io.out => {
                    let first = pio_data(fd, *run_size).map(|d| item_value(&d[..io.size as usize])).unwrap_or(0);
                    Exit::IoOut { port: io.port, size: io.size, count: io.count, value: first }
                }
                Some(io) => Exit::IoIn { port: io.port, size: io.size, count: io.count },
                None => Exit::Other { reason: "port I/O with a data buffer outside kvm_run".into() },
            },
            Ok(VcpuExit::MmioRead(addr, data)) => {
                data.fill(0xff);
                Exit::MmioRead { addr, len: data.len() as u8 }
            }
            Ok(VcpuExit::MmioWrite(addr, data)) => {
                let mut v = [0u8; 8];
                let n = data.len().min(8);
                v[..n].copy_from_slice(&data[..n]);
                Exit::MmioWrite { addr, len: data.len() as u8, value: u64::from_le_bytes(v) }
            }
            Ok(VcpuExit::Hlt) => Exit::Hlt,
            Ok(VcpuExit::Shutdown) => Exit::Shutdown,
            Ok(VcpuExit::FailEntry(reason, _)) => Exit::FailEntry { reason },
            Ok(VcpuExit::InternalError) => {
                // SAFETY: KVM set exit_reason to INTERNAL_ERROR, so the `internal` union member is
                // the one it filled in.
                let suberror = unsafe { fd.get_kvm_run().__bindgen_anon_1.internal.suberror };
                // SAFETY: for an emulation failure KVM fills in `emulation_failure`; its bytes are
                // valid when the flag says so (the union's only member).
                let failure = unsafe { fd.get_kvm_run().__bindgen_anon_1.emulation_failure };
                let has_bytes =
                    failure.flags & kvm_bindings::KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES as u64;
                if suberror == kvm_bindings::KVM_INTERNAL_ERROR_EMULATION && has_bytes != 0 {
                    // SAFETY: the flag says KVM wrote the instruction bytes, the inner union's one member.
                    let insn = unsafe { failure.__bindgen_anon_1.__bindgen_anon_1 };
                    let len = (insn.insn_size as usize).min(insn.insn_bytes.len());
                    *emulation_insn = Some(insn.insn_bytes[..len].to_vec());
                }
                Exit::InternalError { suberror }
            }
            Ok(VcpuExit::Debug(d)) => Exit::Debug { exception: d.exception, pc: d.pc, dr6: d.dr6 },
            Ok(VcpuExit::SystemEvent(kind, _)) => Exit::SystemEvent { kind },
            Ok(VcpuExit::Intr) => Exit::Interrupted,
            Ok(other) => Exit::Other { reason: format!("{other:?}") },
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                fd.set_kvm_immediate_exit(0);
                Exit::Interrupted
            }
            Err(e) => return Err(format!("KVM_RUN failed on vCPU {id}: {e}")),
        };
        let mut st = lock(stats);
        st.guest += in_guest;
        st.count_exit(&exit);
        if let Exit::IoOut { port: crate::devices::hypercall::PORT, value, .. } = exit {
            // (each `out` asks for one service; a `rep outs` string is counted by its first)
            st.count_hypercall(value as u8);
        }
        drop(st);
        if *sync_sregs {
            log_exit(*id, fd, &exit);
        }
        Ok(exit)
    }

    /// Carries out the port access of the last exit on the bus, every item of it, and hands an
    /// `in`'s bytes back to KVM.
    fn port_io(&mut self, exit: &Exit) -> Effect {
        let (port, size, count, out) = match *exit {
            Exit::IoIn { port, size, count } => (port, size, count, false),
            Exit::IoOut { port, size, count, .. } => (port, size, count, true),
            _ => return Effect::Continue,
        };
        // The data is copied out of kvm_run, so the devices can ask for registers meanwhile. Single
        // accesses fit on the stack; only `rep ins`/`rep outs` strings (at most a page) allocate.
        let len = size as usize * count as usize;
        let mut small = [0u8; 8];
        let mut string = Vec::new();
        let buf: &mut [u8] = if len <= small.len() {
            &mut small[..len]
        } else {
            string.resize(len, 0);
            &mut string
        };
        if out {
            if let Some(data) = pio_data(&mut self.fd, self.run_size) {
                buf.copy_from_slice(data);
            }
        }
        let Vcpu { bus, fd, id, sync_regs, .. } = self;
        let mut caller = VcpuCaller { id: *id, fd, sync_regs: *sync_regs };
        if out {
            return bus.write(port, size, buf, &mut caller);
        }
        bus.read(port, size, buf, &mut caller);
        if let Some(data) = pio_data(&mut self.fd, self.run_size) {
            data.copy_from_slice(buf);
        }
        Effect::Continue
    }

    /// General and special registers, for reports and the debugger.
    pub fn registers(&self) -> Option<(kvm_regs, kvm_sregs)> {
        Some((self.fd.get_regs().ok()?, self.fd.get_sregs().ok()?))
    }

    /// How a fault ends this vCPU: its report, and whether it happened in long mode.
    fn fault_end(&self, fault: Fault) -> VcpuEnd {
        let report = self.fault_report(&fault);
        // Linux on a KVM whose emulator lacks one of its instructions: the host failed (status 4).
        if self.kind == MachineKind::Linux && fault == Fault::InternalError(kvm_bindings::KVM_INTERNAL_ERROR_EMULATION)
        {
            return VcpuEnd::HostError(report);
        }
        let long_mode = self.registers().is_some_and(|(_, sr)| sr.efer & EFER_LMA != 0);
        VcpuEnd::Fault { fault, report, long_mode }
    }

    /// A readable report of a fault: which guest, why, where, and the registers.
    pub fn fault_report(&self, fault: &Fault) -> String {
        let mut s = format!("guest `{}` (vCPU {}) stopped: {fault}", self.name, self.id);
        if let Some((r, sr)) = self.registers() {
            // KVM moves IP past an `out` before the exit; a hypercall's is `out %al,(%dx)`, one
            // byte (port 0x500 rules out the imm8 form), so the hypercall is one byte back.
            let ip = match fault {
                Fault::UnknownHypercall(_) => r.rip.wrapping_sub(1),
                _ => r.rip,
            };
            let linear = sr.cs.base.wrapping_add(ip);
            if sr.efer & EFER_LMA != 0 {
                s += &long_mode_registers(ip, &r, &sr);
            } else {
                s += &format!(
                    "\n  at CS:IP {:04x}:{:04x} (linear {linear:#x})\n  \
                 EAX={:08x} EBX={:08x} ECX={:08x} EDX={:08x}\n  \
                 ESI={:08x} EDI={:08x} EBP={:08x} ESP={:08x} EFLAGS={:08x}\n  \
                 CR0={:08x} CR3={:08x} CR4={:08x}",
                    sr.cs.selector,
                    ip,
                    r.rax,
                    r.rbx,
                    r.rcx,
                    r.rdx,
                    r.rsi,
                    r.rdi,
                    r.rbp,
                    r.rsp,
                    r.rflags,
                    sr.cr0,
                    sr.cr3,
                    sr.cr4
                );
            }
            if *fault == Fault::TripleFault && sr.efer & EFER_LMA != 0 && sr.cs.selector & 3 == 3 {
                // Ring 3 of long mode when the CPU shut down: where this host may be the cause.
                if let Some(hint) = crate::doctor::ring3_calls_hint() {
                    s += &format!("\n  {hint}");
                }
            }
            if *fault == Fault::InternalError(kvm_bindings::KVM_INTERNAL_ERROR_EMULATION)
                && self.kind == MachineKind::Linux
            {
                s += &emulation_failure_hint(self.emulation_insn.as_deref());
            }
            if *fault == Fault::TripleFault && looks_like_reset(&r, &sr) {
                s += "\n  (these are the CPU's power-on values, not where it faulted: this host's KVM \
                      resets the vCPU when it shuts down, as KVM on AMD SVM does; step up to the fault \
                      with `--gdb` to see it)";
            }
        }
        s
    }
}

/// The lines that say which instruction KVM could not emulate and what that means for a Linux
/// guest: a kernel that boots on every KVM with hardware virtualization.
fn emulation_failure_hint(insn: Option<&[u8]>) -> String {
    use crate::x86::emulation::{hex, known_unemulated};
    let bytes = match insn {
        Some(insn) => {
            let name = known_unemulated(insn).map(|n| format!(" ({n})")).unwrap_or_default();
            format!("\n  the instruction at RIP: {}{name}", hex(insn))
        }
        None => "\n  (this KVM did not hand back the instruction's bytes)".into(),
    };
    format!(
        "{bytes}\n  this host's KVM emulates the guest's instructions in software and its emulator lacks this \
         one: the guest is not at fault, this host cannot run it. Run it where KVM has hardware \
         virtualization: in the lab (`minikvm --lab ...`, see README \"The lab\") or the nested lane \
         (.ci/nested-lane)"
    )
}

/// EFER.LMA: the vCPU is in long mode, so its registers are 64 bits wide.
const EFER_LMA: u64 = 1 << 10;

/// A fault report's register lines for a vCPU in long mode (64-bit registers, RIP, EFER).
fn long_mode_registers(ip: u64, r: &kvm_regs, sr: &kvm_sregs) -> String {
    format!(
        "\n  at CS:RIP {:04x}:{ip:016x}\n  \
         RAX={:016x} RBX={:016x} RCX={:016x} RDX={:016x}\n  \
         RSI={:016x} RDI={:016x} RBP={:016x} RSP={:016x}\n  \
         R8 ={:016x} R9 ={:016x} R10={:016x} R11={:016x}\n  \
         R12={:016x} R13={:016x} R14={:016x} R15={:016x}\n  \
         RFLAGS={:08x} CR0={:08x} CR2={:016x} CR3={:016x} CR4={:08x} EFER={:x}",
        sr.cs.selector,
        r.rax,
        r.rbx,
        r.rcx,
        r.rdx,
        r.rsi,
        r.rdi,
        r.rbp,
        r.rsp,
        r.r8,
        r.r9,
        r.r10,
        r.r11,
        r.r12,
        r.r13,
        r.r14,
        r.r15,
        r.rflags,
        sr.cr0,
        sr.cr2,
        sr.cr3,
        sr.cr4,
        sr.efer
    )
}

/// Whether registers hold the x86 power-on state (CS:IP F000:FFF0, CR0 with PE clear), which is
/// all KVM on AMD SVM leaves after a triple fault.
fn looks_like_reset(r: &kvm_regs, sr: &kvm_sregs) -> bool {
    sr.cs.selector == 0xf000 && r.rip == 0xfff0 && sr.cr0 & 1 == 0
}

// ----- under a debugger: the vCPU side of the gdb stub -----------------------------------------
//
// The stub (src/gdb/) never touches KVM: it sends a paused vCPU requests and waits for events.
// A paused vCPU blocks on its request channel; a running one runs KVM_RUN until a debug exit, a
// pause request (flag + kick), or the end of its guest, and then reports one event.

/// Everything a debugger sees of a vCPU, as KVM keeps it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuState {
    pub regs: kvm_regs,
    pub sregs: kvm_sregs,
    pub fpu: kvm_fpu,
}

/// How a paused vCPU goes on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResumeWith {
    /// Run one instruction, then stop (KVM_GUESTDBG_SINGLESTEP).
    pub step: bool,
    /// While stepping, hold interrupts back (KVM_GUESTDBG_BLOCKIRQ) so that a step never lands
    /// in an interrupt handler. Only where the host's KVM offers it.
    pub block_irq: bool,
    /// DR0–DR3 (linear addresses) and DR7 for KVM_GUESTDBG_USE_HW_BP; all zero = none.
    pub debugreg: [u64; 8],
    /// Linear addresses of the int3 bytes the debugger planted (KVM_GUESTDBG_USE_SW_BP).
    pub int3: Vec<u64>,
    /// No debugger is attached (it detached or was lost): run as without one — a fault ends the
    /// vCPU — but stop for a pause request, which the next debugger to attach sends.
    pub detached: bool,
}

/// Where a request's answer goes.
pub type Reply<T> = mpsc::Sender<std::result::Result<T, String>>;

/// What the debugger asks of a paused vCPU.
pub enum DebugRequest {
    GetState(Reply<CpuState>),
    SetState(Box<CpuState>, Reply<()>),
    /// Up to `len` bytes at a linear address; the answer is shorter where the mapping ends.
    ReadMem {
        linear: u64,
        len: usize,
        reply: Reply<Vec<u8>>,
    },
    /// Bytes at a linear address: all of them, or none if any page is unmapped.
    WriteMem {
        linear: u64,
        data: Vec<u8>,
        reply: Reply<()>,
    },
    /// The guest-physical address of a linear address, by KVM_TRANSLATE (a cross-check).
    Translate {
        linear: u64,
        reply: Reply<Option<u64>>,
    },
    Resume(ResumeWith),
    /// The debugger is gone: no more stops, run on until the guest ends or a new debugger
    /// pauses the vCPU (pause flag + kick, reported as [`DebugEvent::Paused`]).
    Detach,
    /// End the run now.
    Stop,
}

/// What a vCPU tells the debugger each time it stops running.
#[derive(Debug, Clone)]
pub enum DebugEvent {
    /// It stopped because the debugger asked it to (pause flag + kick).
    Paused,
    /// A debug exit: single step, hardware breakpoint or watchpoint, or the debugger's int3.
    Debug { exception: u32, pc: u64, dr6: u64 },
    /// The guest faulted. The vCPU stays paused so its state can be looked at; resuming ends it.
    Faulted(Fault),
    /// The vCPU's run is over and its thread ends.
    Ended(VcpuEnd),
}

/// A vCPU's end of the link to the debugger.
pub struct DebugLink {
    pub requests: mpsc::Receiver<DebugRequest>,
    pub events: mpsc::Sender<(usize, DebugEvent)>,
    /// Written after every event so that the stub's poll(2) wakes up.
    pub wake: Arc<EventFd>,
    pub ram: Arc<GuestRam>,
}

impl DebugLink {
    fn report(&self, id: usize, event: DebugEvent) {
        // A stub that is gone no longer cares; that is not an error of this vCPU.
        if self.events.send((id, event)).is_ok() {
            if let Err(e) = self.wake.write(1) {
                log::warn!("vCPU {id}: cannot wake the gdb stub: {e}");
            }
        }
    }
}

const PAGE: u64 = 0x1000;

impl Vcpu {
    /// Runs under a debugger: starts paused, then does what the debugger asks (see
    /// [`crate::gdb`]). Returns like [`Vcpu::run`] when the run is over.
    pub fn run_debug(&mut self, link: DebugLink) -> VcpuEnd {
        self.ctl.tid.store(nix::unistd::gettid().as_raw(), Ordering::Relaxed);
        let _kick = crate::kvm::KickTarget::new(&mut self.fd);
        let started = Instant::now();
        let end = self.debug_loop(&link, started);
        lock(&self.stats).wall = started.elapsed();
        link.report(self.id, DebugEvent::Ended(end.clone()));
        end
    }

    fn debug_loop(&mut self, link: &DebugLink, started: Instant) -> VcpuEnd {
        // A fault the debugger has been shown; the vCPU ends with it when told to go on.
        let mut fault: Option<VcpuEnd> = None;
        loop {
            let resume = match self.paused(link, &mut fault) {
                Ok(resume) => resume,
                Err(end) => return end,
            };
            if let Some(end) = fault {
                return end;
            }
            if let Err(msg) = self.set_debug(&resume) {
                return VcpuEnd::HostError(msg);
            }
            // Running.
            let event = loop {
                if self.ctl.stop.load(Ordering::Acquire) {
                    return VcpuEnd::Stopped;
                }
                if self.ctl.pause.swap(false, Ordering::AcqRel) {
                    break DebugEvent::Paused;
                }
                if self.awaiting_input {
                    self.await_input(); // a pause request ends the wait; it goes on after the resume
                    continue;
                }
                let exit = match self.enter() {
                    Ok(e) => e,
                    Err(msg) => return VcpuEnd::HostError(msg),
                };
                match self.carry_out(&exit) {
                    Outcome::Continue => {}
                    Outcome::End(VcpuEnd::Fault { fault: f, report, long_mode }) if !resume.detached => {
                        fault = Some(VcpuEnd::Fault { fault: f.clone(), report, long_mode });
                        break DebugEvent::Faulted(f);
                    }
                    Outcome::End(end) => return end,
                    Outcome::Debug { .. } if resume.detached => {
                        return self.fault_end(Fault::Unhandled("debug exit with no debugger attached".into()));
                    }
                    Outcome::Debug { exception: 3, pc, .. } if !resume.int3.contains(&pc) => {
                        // The guest's own int3: deliver it as if nobody were watching.
                        if let Err(msg) = self.reinject_int3() {
                            return VcpuEnd::HostError(msg);
                        }
                    }
                    Outcome::Debug { exception, pc, dr6 } => break DebugEvent::Debug { exception, pc, dr6 },
                }
            };
            // So that `monitor exits` shows the time so far.
            lock(&self.stats).wall = started.elapsed();
            link.report(self.id, event);
        }
    }

    /// Paused: serves the debugger's requests until it says how to go on (Ok; after a detach: run
    /// on without it), or until the run ends here (Err: stopped, or detached with a fault pending).
    fn paused(&mut self, link: &DebugLink, fault: &mut Option<VcpuEnd>) -> std::result::Result<ResumeWith, VcpuEnd> {
        // The time until the debugger says how to go on is spent at its prompt (`--stats`).
        let since = Instant::now();
        loop {
            let request = link.requests.recv();
            let going_on = matches!(request, Ok(DebugRequest::Resume(_) | DebugRequest::Stop | DebugRequest::Detach));
            if going_on || request.is_err() {
                lock(&self.stats).at_prompt += since.elapsed();
            }
            match request {
                Ok(DebugRequest::Resume(r)) => return Ok(r),
                Ok(DebugRequest::Stop) => return Err(fault.take().unwrap_or(VcpuEnd::Stopped)),
                Ok(DebugRequest::Detach) | Err(_) => {
                    if let Some(end) = fault.take() {
                        return Err(end);
                    }
                    log::info!("vCPU {}: debugger detached, running on", self.id);
                    return Ok(ResumeWith { detached: true, ..ResumeWith::default() });
                }
                Ok(req) => self.serve(req, &link.ram),
            }
        }
    }

    /// Answers one request of a paused vCPU (not Resume, Detach or Stop).
    fn serve(&self, req: DebugRequest, ram: &GuestRam) {
        // A requester that stopped waiting for the answer is no error here.
        match req {
            DebugRequest::GetState(reply) => {
                let _ = reply.send(self.state());
            }
            DebugRequest::SetState(state, reply) => {
                let _ = reply.send(self.set_state(&state));
            }
            DebugRequest::ReadMem { linear, len, reply } => {
                let _ = reply.send(self.read_linear(ram, linear, len));
            }
            DebugRequest::WriteMem { linear, data, reply } => {
                let _ = reply.send(self.write_linear(ram, linear, &data));
            }
            DebugRequest::Translate { linear, reply } => {
                let _ = reply.send(self.translate(linear).map(Some).or(Ok(None)));
            }
            DebugRequest::Resume(_) | DebugRequest::Detach | DebugRequest::Stop => {}
        }
    }

    fn state(&self) -> std::result::Result<CpuState, String> {
        let err = |what: &str, e: kvm_ioctls::Error| format!("{what} failed on vCPU {}: {e}", self.id);
        Ok(CpuState {
            regs: self.fd.get_regs().map_err(|e| err("KVM_GET_REGS", e))?,
            sregs: self.fd.get_sregs().map_err(|e| err("KVM_GET_SREGS", e))?,
            fpu: self.fd.get_fpu().map_err(|e| err("KVM_GET_FPU", e))?,
        })
    }

    /// Writes back what differs from the vCPU's current state.
    fn set_state(&self, new: &CpuState) -> std::result::Result<(), String> {
        let err = |what: &str, e: kvm_ioctls::Error| format!("{what} failed on vCPU {}: {e}", self.id);
        let old = self.state()?;
        if new.regs != old.regs {
            self.fd.set_regs(&new.regs).map_err(|e| err("KVM_SET_REGS", e))?;
        }
        if new.sregs != old.sregs {
            self.fd.set_sregs(&new.sregs).map_err(|e| err("KVM_SET_SREGS", e))?;
        }
        if new.fpu != old.fpu {
            self.fd.set_fpu(&new.fpu).map_err(|e| err("KVM_SET_FPU", e))?;
        }
        Ok(())
    }

    /// KVM's own translation of a linear address (KVM_TRANSLATE).
    fn translate(&self, linear: u64) -> std::result::Result<u64, String> {
        let t = self.fd.translate_gva(linear).map_err(|e| format!("KVM_TRANSLATE failed: {e}"))?;
        if t.valid == 0 {
            return Err(format!("linear address {linear:#x} is not mapped"));
        }
        Ok(t.physical_address)
    }

    /// Guest-physical address of a linear address, by walking the guest's page tables as they are
    /// now (KVM_TRANSLATE would do too; `monitor pt` compares both).
    fn walk(paging: &Paging, ram: &GuestRam, linear: u64) -> std::result::Result<u64, String> {
        let mem = FnMem(|gpa: u64, buf: &mut [u8]| ram.read(gpa, buf).is_ok());
        paging.walk(&mem, linear).map(|w| w.phys).map_err(|e| e.to_string())
    }

    fn paging(&self) -> std::result::Result<Paging, String> {
        let s = self.fd.get_sregs().map_err(|e| format!("KVM_GET_SREGS failed on vCPU {}: {e}", self.id))?;
        Ok(Paging::from_regs(s.cr0, s.cr3, s.cr4, s.efer))
    }

    fn read_linear(&self, ram: &GuestRam, linear: u64, len: usize) -> std::result::Result<Vec<u8>, String> {
        let paging = self.paging()?;
        let mut out = Vec::with_capacity(len);
        let mut addr = linear;
        while out.len() < len {
            let chunk = ((PAGE - addr % PAGE) as usize).min(len - out.len());
            let mut buf = vec![0u8; chunk];
            match Self::walk(&paging, ram, addr).and_then(|gpa| ram.read(gpa, &mut buf)) {
                Ok(()) => out.extend_from_slice(&buf),
                Err(e) if out.is_empty() => return Err(e),
                Err(_) => break,
            }
            addr = addr.wrapping_add(chunk as u64);
        }
        Ok(out)
    }

    fn write_linear(&self, ram: &GuestRam, linear: u64, data: &[u8]) -> std::result::Result<(), String> {
        let paging = self.paging()?;
        // Translate every page first: a write is all or nothing.
        let mut pieces = Vec::new();
        let (mut addr, mut done) = (linear, 0usize);
        while done < data.len() {
            let chunk = ((PAGE - addr % PAGE) as usize).min(data.len() - done);
            pieces.push((Self::walk(&paging, ram, addr)?, &data[done..done + chunk]));
            done += chunk;
            addr = addr.wrapping_add(chunk as u64);
        }
        for (gpa, bytes) in pieces {
            ram.write(gpa, bytes)?;
        }
        Ok(())
    }

    /// KVM_SET_GUEST_DEBUG for the next run.
    fn set_debug(&self, r: &ResumeWith) -> std::result::Result<(), String> {
        let hw = r.debugreg[7] & 0xff != 0;
        let mut dbg = kvm_guest_debug::default();
        if r.step || hw || !r.int3.is_empty() {
            dbg.control = KVM_GUESTDBG_ENABLE;
        }
        if r.step {
            dbg.control |= KVM_GUESTDBG_SINGLESTEP;
            if r.block_irq {
                dbg.control |= KVM_GUESTDBG_BLOCKIRQ;
            }
        }
        if hw {
            dbg.control |= KVM_GUESTDBG_USE_HW_BP;
            dbg.arch.debugreg = r.debugreg;
        }
        if !r.int3.is_empty() {
            dbg.control |= KVM_GUESTDBG_USE_SW_BP;
        }
        log::debug!(
            "vCPU {}: KVM_SET_GUEST_DEBUG control {:#x} debugreg {:x?}",
            self.id,
            dbg.control,
            dbg.arch.debugreg
        );
        self.fd.set_guest_debug(&dbg).map_err(|e| format!("KVM_SET_GUEST_DEBUG failed on vCPU {}: {e}", self.id))
    }

    /// Delivers an int3 that KVM intercepted back to the guest, as the CPU would have.
    fn reinject_int3(&self) -> std::result::Result<(), String> {
        let mut ev = self.fd.get_vcpu_events().map_err(|e| format!("KVM_GET_VCPU_EVENTS failed: {e}"))?;
        ev.exception.injected = 1;
        ev.exception.nr = 3;
        ev.exception.has_error_code = 0;
        ev.exception.error_code = 0;
        self.fd.set_vcpu_events(&ev).map_err(|e| format!("KVM_SET_VCPU_EVENTS failed: {e}"))
    }
}

/// Logs an exit in words with the CS:IP it happened at (-vv), and its registers (-vvv), from the
/// registers KVM synced into kvm_run (see [`crate::exit_log`]).
fn log_exit(id: usize, fd: &VcpuFd, exit: &Exit) {
    if !log::log_enabled!(log::Level::Debug) {
        return;
    }
    let regs = fd.sync_regs();
    log::debug!("{}", crate::exit_log::line(id, exit, &regs.regs, regs.sregs.cs.selector));
    log::trace!("{}", crate::exit_log::detail(exit, &regs.regs));
}

/// The vCPU as the devices on its bus see it.
struct VcpuCaller<'a> {
    id: usize,
    fd: &'a mut VcpuFd,
    sync_regs: bool,
}

impl Caller for VcpuCaller<'_> {
    fn vcpu(&self) -> usize {
        self.id
    }

    /// From sync_regs when the host offers it (read in place, no ioctl), else KVM_GET_REGS.
    fn rbx(&mut self) -> std::result::Result<u64, String> {
        if self.sync_regs {
            Ok(self.fd.sync_regs_mut().regs.rbx)
        } else {
            self.fd.get_regs().map(|r| r.rbx).map_err(|e| format!("KVM_GET_REGS failed: {e}"))
        }
    }
}

// ----- port I/O exits, read from kvm_run ---------------------------------------------------------

/// A port I/O exit as KVM describes it in `kvm_run.io`.
#[derive(Debug, Clone, Copy)]
struct PioHeader {
    port: u16,
    /// Bytes per item: 1, 2 or 4.
    size: u8,
    /// Items: more than 1 for `rep ins`/`rep outs`.
    count: u32,
    out: bool,
}

/// The header of the port I/O exit KVM_RUN just returned; None if its data would lie outside the
/// `run_size` bytes of the kvm_run mapping (a broken KVM; never trusted blindly).
fn pio_header(fd: &mut VcpuFd, run_size: usize) -> Option<PioHeader> {
    let run = fd.get_kvm_run();
    if run.exit_reason != kvm_bindings::KVM_EXIT_IO {
        return None;
    }
    // SAFETY: exit_reason is KVM_EXIT_IO, so `io` is the union member KVM filled in; it is plain
    // integers, valid for any bit pattern.
    let io = unsafe { run.__bindgen_anon_1.io };
    let len = io.size as usize * io.count as usize;
    let end = (io.data_offset as usize).checked_add(len)?;
    if !matches!(io.size, 1 | 2 | 4) || end > run_size {
        return None;
    }
    let out = io.direction == kvm_bindings::KVM_EXIT_IO_OUT as u8;
    Some(PioHeader { port: io.port, size: io.size, count: io.count, out })
}

/// The data buffer of the last port I/O exit: count × size bytes inside kvm_run, KVM's to read
/// (an `out`'s items) or ours to fill (an `in`'s) until the next KVM_RUN.
fn pio_data(fd: &mut VcpuFd, run_size: usize) -> Option<&mut [u8]> {
    let io = pio_header(fd, run_size)?;
    let len = io.size as usize * io.count as usize;
    let run = fd.get_kvm_run();
    // SAFETY: as in `pio_header`: `io` is the member KVM filled in.
    let offset = unsafe { run.__bindgen_anon_1.io.data_offset } as usize;
    let base = run as *mut kvm_bindings::kvm_run as *mut u8;
    // SAFETY: `pio_header` checked that offset + len lies inside the kvm_run mapping (its size is
    // KVM_GET_VCPU_MMAP_SIZE), which lives as long as `fd`; the slice borrows `fd` mutably, so
    // nothing else reads or writes the mapping while it exists (KVM only does, inside KVM_RUN).
    Some(unsafe { std::slice::from_raw_parts_mut(base.add(offset), len) })
}

/// The first item of an `out`, as a number (for logs and statistics).
fn item_value(data: &[u8]) -> u32 {
    let mut v = [0u8; 4];
    let n = data.len().min(4);
    v[..n].copy_from_slice(&data[..n]);
    u32::from_le_bytes(v)
}
