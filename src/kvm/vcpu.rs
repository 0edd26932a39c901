//! One vCPU and its run loop.
//!
//! The loop is a small state machine: `Running` (KVM_RUN, then handle the exit) until the guest
//! ends, faults, or the controller asks it to stop; with a debugger attached it can also be
//! `Paused`, serving the debugger's requests (see [`crate::gdb`]). Exits are copied into an owned
//! [`Exit`], decided by the pure [`exit::decide`], and carried out here.

use crate::boot::{CpuStart, MachineKind};
use crate::devices::console::{lock, Console};
use crate::devices::hypercall::{Hypercall, NO_INPUT};
use crate::error::{KvmContext, Result};
use crate::exit::{self, Action, Exit, Fault};
use crate::stats::VcpuStats;
use kvm_bindings::{kvm_regs, kvm_sregs};
use kvm_ioctls::{Cap, SyncReg, VcpuExit, VcpuFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Flags the controller sets before kicking a vCPU.
#[derive(Debug, Default)]
pub struct VcpuControl {
    /// End the run (timeout, quit key, signal, another vCPU faulted).
    pub stop: AtomicBool,
}

/// How a vCPU's run ended.
#[derive(Debug, Clone)]
pub enum VcpuEnd {
    /// `hlt` (flat guests) or the EXIT hypercall.
    Done(&'static str),
    /// The guest faulted; `report` is a readable multi-line description.
    Fault { fault: Fault, report: String },
    /// The controller stopped it.
    Stopped,
    /// A KVM ioctl failed.
    HostError(String),
}

pub struct Vcpu {
    pub id: usize,
    pub name: String,
    pub fd: VcpuFd,
    pub kind: MachineKind,
    pub console: Arc<Console>,
    pub stats: Arc<Mutex<VcpuStats>>,
    pub ctl: Arc<VcpuControl>,
    /// KVM copies the general registers into kvm_run on every exit (KVM_CAP_SYNC_REGS).
    sync_regs: bool,
    /// Also copy the segment registers (only to log CS:IP at -vv).
    sync_sregs: bool,
}

impl Vcpu {
    pub fn new(
        id: usize,
        name: String,
        mut fd: VcpuFd,
        kind: MachineKind,
        console: Arc<Console>,
        sync_regs_cap: bool,
    ) -> Self {
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
            stats: Arc::new(Mutex::new(VcpuStats::default())),
            ctl: Arc::new(VcpuControl::default()),
            sync_regs: sync_regs_cap,
            sync_sregs,
        }
    }

    /// Whether this host's KVM supports sync_regs.
    pub fn host_has_sync_regs(kvm: &kvm_ioctls::Kvm) -> bool {
        kvm.check_extension(Cap::SyncRegs)
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
            let exit = match self.enter() {
                Ok(e) => e,
                Err(msg) => return VcpuEnd::HostError(msg),
            };
            match exit::decide(&exit, self.kind) {
                Action::Resume | Action::Kicked | Action::SerialRead { .. } | Action::HypercallIn => {}
                Action::Unclaimed => log::debug!("vCPU {}: unclaimed {:?}", self.id, exit),
                Action::SerialWrite { offset, value } => {
                    let (id, console) = (self.id, &self.console);
                    let mut bytes = Vec::new();
                    console.with_input(|st| st.serial.write(offset, value, &mut |b| bytes.push(b)));
                    for b in bytes {
                        console.put(id, b);
                    }
                }
                Action::Hypercall(h) => {
                    lock(&self.stats).count_hypercall(h.number());
                    match h {
                        Hypercall::Exit => return VcpuEnd::Done("EXIT hypercall"),
                        Hypercall::Putchar => match self.rbx() {
                            Ok(rbx) => self.console.put(self.id, rbx as u8),
                            Err(msg) => return VcpuEnd::HostError(msg),
                        },
                        Hypercall::Getchar | Hypercall::Unknown(_) => {}
                    }
                }
                Action::Done => return VcpuEnd::Done("hlt"),
                Action::Fault(fault) => {
                    let report = self.fault_report(&fault);
                    return VcpuEnd::Fault { fault, report };
                }
                Action::DebugStop => {
                    let fault = Fault::Unhandled("debug exit with no debugger attached".into());
                    let report = self.fault_report(&fault);
                    return VcpuEnd::Fault { fault, report };
                }
            }
        }
    }

    /// One KVM_RUN. Port reads are answered here, while KVM's data buffer is borrowed.
    fn enter(&mut self) -> std::result::Result<Exit, String> {
        let Vcpu { fd, console, stats, kind, id, sync_sregs, .. } = self;
        let t0 = Instant::now();
        let res = fd.run();
        let in_guest = t0.elapsed();
        let exit = match res {
            Ok(VcpuExit::IoIn(port, data)) => {
                let exit = Exit::IoIn { port, size: data.len() as u8 };
                let value = answer_in(&exit, *kind, console);
                data.copy_from_slice(&value.to_le_bytes()[..data.len().min(4)]);
                exit
            }
            Ok(VcpuExit::IoOut(port, data)) => {
                let mut v = [0u8; 4];
                let n = data.len().min(4);
                v[..n].copy_from_slice(&data[..n]);
                Exit::IoOut { port, size: data.len() as u8, value: u32::from_le_bytes(v) }
            }
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
        drop(st);
        if *sync_sregs {
            let regs = fd.sync_regs();
            log::debug!(
                "vCPU {id}: exit {:<12} {:?} at CS:IP {:04x}:{:04x}",
                exit.name(),
                exit,
                regs.sregs.cs.selector,
                regs.regs.rip
            );
        }
        Ok(exit)
    }

    /// BL for PUTCHAR, from sync_regs when the host offers it.
    fn rbx(&self) -> std::result::Result<u64, String> {
        if self.sync_regs {
            Ok(self.fd.sync_regs().regs.rbx)
        } else {
            self.fd.get_regs().map(|r| r.rbx).map_err(|e| format!("KVM_GET_REGS failed: {e}"))
        }
    }

    /// General and special registers, for reports and the debugger.
    pub fn registers(&self) -> Option<(kvm_regs, kvm_sregs)> {
        Some((self.fd.get_regs().ok()?, self.fd.get_sregs().ok()?))
    }

    /// A readable report of a fault: which guest, why, where, and the registers.
    pub fn fault_report(&self, fault: &Fault) -> String {
        let mut s = format!("guest `{}` (vCPU {}) stopped: {fault}", self.name, self.id);
        if let Some((r, sr)) = self.registers() {
            let linear = sr.cs.base.wrapping_add(r.rip);
            s += &format!(
                "\n  at CS:IP {:04x}:{:04x} (linear {linear:#x})\n  \
                 EAX={:08x} EBX={:08x} ECX={:08x} EDX={:08x}\n  \
                 ESI={:08x} EDI={:08x} EBP={:08x} ESP={:08x} EFLAGS={:08x}\n  \
                 CR0={:08x} CR3={:08x} CR4={:08x}",
                sr.cs.selector,
                r.rip,
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
        s
    }
}

/// The value an `in` gets: GETCHAR's next byte, a UART register, or all ones.
fn answer_in(exit: &Exit, kind: MachineKind, console: &Console) -> u32 {
    match exit::decide(exit, kind) {
        Action::HypercallIn => console.getchar().unwrap_or(NO_INPUT) as u32,
        Action::SerialRead { offset } => console.with_input(|st| {
            let was_empty = st.queue.is_empty();
            let mut queue = std::mem::take(&mut st.queue);
            let v = st.serial.read(offset, &mut queue);
            st.queue = queue;
            // Polling an empty receiver (LSR without data ready, or an empty RBR) is waiting.
            if was_empty && (offset == 5 || offset == 0) {
                st.starved = true;
            }
            v as u32
        }),
        _ => 0xffff_ffff,
    }
}
