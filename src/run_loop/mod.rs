//! One vCPU's run loop: the one place where exits are carried out.
//!
//! The loop is a small state machine: running (KVM_RUN, then handle the exit) until the guest
//! ends, faults, or the controller asks it to stop. It runs in one of two [`Mode`]s: free (no
//! debugger: a debug exit is a fault) or debugged (a pause request or a debug exit hands the vCPU
//! to the debugger, see `debugged.rs`). Exits come from the KVM boundary ([`crate::kvm::vcpu`]) as
//! owned [`Exit`] values, are decided by the pure [`exit::decide`], and carried out here: port I/O
//! on the [port bus](crate::devices::bus), MMIO on the [MMIO bus](crate::devices::mmio), ends and faults as a [`VcpuEnd`]. `doctor`'s probes run
//! their tiny guests through the same loop.

pub mod debug;
mod debugged;
mod fault_report;
mod linear;
mod mmio;
mod port_io;

pub use debug::{CpuState, DebugEvent, DebugLink, DebugRequest, Reply, RequestError, ResumeWith};

use crate::boot::{CpuStart, MachineKind};
use crate::devices::bus::{Effect, PortBus};
use crate::devices::console::{lock, Console};
use crate::devices::mmio::MmioBus;
use crate::exit::{self, Action, Exit, Fault};
use crate::kvm::error::{KvmContext, KvmError, VcpuError};
use crate::kvm::vcpu::{HostCaps, KvmVcpu};
use crate::stats::VcpuStats;
use kvm_bindings::{kvm_regs, kvm_sregs};
use kvm_ioctls::VcpuFd;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
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

/// How the loop treats pause requests and debug exits.
#[derive(Debug, Clone, Copy)]
pub enum Mode<'a> {
    /// No debugger: pause requests are not looked at, a debug exit is a fault.
    Free,
    /// Under a debugger that set these breakpoints: a pause request or a debug exit stops the
    /// loop and is handed to the debugger; the guest's own int3 is delivered to the guest. With
    /// [`ResumeWith::detached`] (no debugger attached now) only a pause request does; a debug
    /// exit is a fault, as in free mode.
    Debugged(&'a ResumeWith),
}

/// Why [`Vcpu::drive`] handed control back.
#[derive(Debug)]
pub enum Halt {
    /// The run is over (in debugged mode, a fault too: the debugger is shown it first).
    End(VcpuEnd),
    /// Debugged mode only: a pause request or a debug exit, for the debugger.
    Debugger(DebugEvent),
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

/// A vCPU with everything its exits reach: its devices, the console, its statistics.
pub struct Vcpu {
    pub id: usize,
    pub name: String,
    pub cpu: KvmVcpu,
    pub kind: MachineKind,
    pub console: Arc<Console>,
    /// The devices its port I/O reaches.
    pub bus: Arc<PortBus>,
    /// The devices its MMIO reaches (none unless the machine puts some there).
    pub mmio: Arc<MmioBus>,
    pub stats: Arc<Mutex<VcpuStats>>,
    pub ctl: Arc<VcpuControl>,
    /// GETCHAR was asked for: don't run the guest on until input is queued or has ended.
    awaiting_input: bool,
    /// A fault's report may ask `doctor`'s probes for a hint about this host; not inside a
    /// probe, whose faults would probe again.
    pub fault_hints: bool,
}

impl Vcpu {
    pub fn new(
        id: usize,
        name: String,
        fd: VcpuFd,
        kind: MachineKind,
        console: Arc<Console>,
        bus: Arc<PortBus>,
        host: HostCaps,
    ) -> Self {
        // The segment registers are synced only to log CS:IP at -vv.
        let cpu = KvmVcpu::new(fd, host, log::log_enabled!(log::Level::Debug));
        Vcpu {
            id,
            name,
            cpu,
            kind,
            console,
            bus,
            mmio: Arc::new(MmioBus::default()),
            stats: Arc::new(Mutex::new(VcpuStats::default())),
            ctl: Arc::new(VcpuControl::default()),
            awaiting_input: false,
            fault_hints: true,
        }
    }

    /// The vCPU's ioctls (registers, guest debugging).
    pub fn fd(&self) -> &VcpuFd {
        self.cpu.fd()
    }

    /// Puts the vCPU in its first state.
    pub fn set_start(&self, start: &CpuStart) -> std::result::Result<(), KvmError> {
        let mut sregs = self.fd().get_sregs().during("reading the vCPU's special registers")?;
        start.apply(&mut sregs);
        self.fd().set_sregs(&sregs).during("setting the vCPU's special registers")?;
        self.fd().set_regs(&start.regs).during("setting the vCPU's registers")?;
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
        let _kick = self.cpu.kick_target();
        let started = Instant::now();
        let end = self.run_free();
        lock(&self.stats).wall = started.elapsed();
        end
    }

    /// The loop in free mode, to the end.
    fn run_free(&mut self) -> VcpuEnd {
        match self.drive(Mode::Free) {
            Halt::End(end) => end,
            Halt::Debugger(_) => VcpuEnd::Internal("a debugger stop in free mode".into()),
        }
    }

    /// The loop: runs the guest and carries out its exits until the run ends or (debugged mode)
    /// the debugger must take over. The caller holds a [`crate::kvm::KickTarget`].
    pub fn drive(&mut self, mode: Mode) -> Halt {
        loop {
            if self.ctl.stop.load(Ordering::Acquire) {
                return Halt::End(VcpuEnd::Stopped);
            }
            if matches!(mode, Mode::Debugged(_)) && self.ctl.pause.swap(false, Ordering::AcqRel) {
                return Halt::Debugger(DebugEvent::Paused);
            }
            if self.awaiting_input {
                self.await_input(); // a pause request ends the wait; it goes on after the resume
                continue;
            }
            let exit = match self.enter() {
                Ok(e) => e,
                Err(e) => return Halt::End(VcpuEnd::HostError(e.to_string())),
            };
            match (self.carry_out(&exit), mode) {
                (Outcome::Continue, _) => {}
                (Outcome::End(end), _) => return Halt::End(end),
                (Outcome::Debug { .. }, Mode::Free)
                | (Outcome::Debug { .. }, Mode::Debugged(ResumeWith { detached: true, .. })) => {
                    return Halt::End(self.fault_end(Fault::Unhandled("debug exit with no debugger attached".into())));
                }
                (Outcome::Debug { exception: 3, pc, .. }, Mode::Debugged(resume)) if !resume.int3.contains(&pc) => {
                    // The guest's own int3: deliver it as if nobody were watching.
                    if let Err(e) = self.reinject_int3() {
                        return Halt::End(VcpuEnd::HostError(e.to_string()));
                    }
                }
                (Outcome::Debug { exception, pc, dr6 }, Mode::Debugged(_)) => {
                    return Halt::Debugger(DebugEvent::Debug { exception, pc, dr6 });
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
            Action::Mmio => self.mmio(exit),
            Action::PortIo => match self.port_io(exit) {
                Effect::Continue => {}
                Effect::AwaitInput => self.awaiting_input = true,
                Effect::End(why) => return Outcome::End(VcpuEnd::Done(why)),
                Effect::Fault(fault) => return Outcome::End(self.fault_end(fault)),
                Effect::HostError(e) => return Outcome::End(VcpuEnd::HostError(e.to_string())),
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

    /// One KVM_RUN, counted in the statistics and logged at -vv.
    fn enter(&mut self) -> std::result::Result<Exit, VcpuError> {
        let t0 = Instant::now();
        let res = self.cpu.run();
        let in_guest = t0.elapsed();
        let exit = res.map_err(|source| VcpuError::OnVcpu { what: "KVM_RUN", vcpu: self.id, source })?;
        let mut st = lock(&self.stats);
        st.guest += in_guest;
        st.count_exit(&exit);
        if let Exit::IoOut { port: crate::devices::hypercall::PORT, value, .. } = exit {
            // (each `out` asks for one service; a `rep outs` string is counted by its first)
            st.count_hypercall(value as u8);
        }
        drop(st);
        self.log_exit(&exit);
        Ok(exit)
    }

    /// Logs an exit in words with the CS:IP it happened at (-vv), and its registers (-vvv), from
    /// the registers KVM synced into kvm_run (see [`crate::exit_log`]).
    fn log_exit(&self, exit: &Exit) {
        if !log::log_enabled!(log::Level::Debug) {
            return;
        }
        if let Some((regs, cs)) = self.cpu.synced() {
            log::debug!("{}", crate::exit_log::line(self.id, exit, &regs, cs));
            log::trace!("{}", crate::exit_log::detail(exit, &regs));
        }
    }

    /// General and special registers, for reports and the debugger.
    pub fn registers(&self) -> Option<(kvm_regs, kvm_sregs)> {
        Some((self.fd().get_regs().ok()?, self.fd().get_sregs().ok()?))
    }
}
