//! The run loop under a debugger: the vCPU starts paused, serves the debugger's requests while
//! paused, and runs in [`Mode::Debugged`] until a pause request or a debug exit hands it back.
//!
//! The pause request is [`super::VcpuControl::pause`] plus a kick; its acknowledgement is
//! [`DebugEvent::Paused`]. After [`DebugRequest::Detach`] the vCPU runs on as without a debugger
//! ([`ResumeWith::detached`]) but still answers a pause request, so that a debugger can attach
//! again.

use super::debug::{CpuState, DebugEvent, DebugLink, DebugRequest, RequestError, ResumeWith};
use super::{Halt, Mode, Vcpu, VcpuEnd};
use crate::boot::MachineKind;
use crate::devices::console::lock;
use crate::kvm::error::VcpuError;
use crate::kvm::memory::GuestRam;
use crate::x86::debugreg::DR6_BS;
use kvm_bindings::{
    kvm_guest_debug, KVM_GUESTDBG_BLOCKIRQ, KVM_GUESTDBG_ENABLE, KVM_GUESTDBG_SINGLESTEP, KVM_GUESTDBG_USE_HW_BP,
    KVM_GUESTDBG_USE_SW_BP,
};
use std::sync::atomic::Ordering;
use std::time::Instant;

/// The opcode of `hlt`.
const HLT: u8 = 0xF4;

impl Vcpu {
    /// Runs under a debugger: starts paused, then does what the debugger asks (see
    /// [`crate::gdb`]). Returns like [`Vcpu::run`] when the run is over.
    pub fn run_debug(&mut self, link: DebugLink) -> VcpuEnd {
        self.ctl.tid.store(nix::unistd::gettid().as_raw(), Ordering::Relaxed);
        let _kick = self.cpu.kick_target();
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
            if let Err(e) = self.set_debug(&resume) {
                return VcpuEnd::HostError(e.to_string());
            }
            let ending_hlt = if resume.step { self.at_ending_hlt(&link.ram) } else { None };
            let event = match self.drive(Mode::Debugged(&resume)) {
                Halt::Debugger(DebugEvent::Debug { pc, dr6, .. })
                    if ending_hlt.is_some_and(|at| pc == at.wrapping_add(1)) && dr6 & DR6_BS != 0 =>
                {
                    // KVM finished the step and reported it instead of the hlt: the guest ended.
                    return VcpuEnd::Done("hlt");
                }
                Halt::Debugger(event) => event,
                Halt::End(VcpuEnd::Fault { fault: f, report, long_mode }) if !resume.detached => {
                    fault = Some(VcpuEnd::Fault { fault: f.clone(), report, long_mode });
                    DebugEvent::Faulted(f)
                }
                Halt::End(end) => return end,
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

    /// The linear address of the `hlt` this vCPU is at, if that `hlt` would end its guest (a flat
    /// guest: no interrupt can wake it). Stepping over it, KVM may report only the single step
    /// (it skips the hlt, then sees the trap flag) and never the hlt, so the step must be checked.
    fn at_ending_hlt(&self, ram: &GuestRam) -> Option<u64> {
        if self.kind != MachineKind::Flat {
            return None;
        }
        let (regs, sregs) = self.registers()?;
        let pc = sregs.cs.base.wrapping_add(regs.rip);
        (self.read_linear(ram, pc, 1).ok()?.first() == Some(&HLT)).then_some(pc)
    }

    /// Answers one request of a paused vCPU (not Resume, Detach or Stop).
    fn serve(&self, req: DebugRequest, ram: &GuestRam) {
        // A requester that stopped waiting for the answer is no error here.
        match req {
            DebugRequest::GetState(reply) => {
                let _ = reply.send(self.state().map_err(RequestError::from));
            }
            DebugRequest::SetState(state, reply) => {
                let _ = reply.send(self.set_state(&state).map_err(RequestError::from));
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

    fn state(&self) -> Result<CpuState, VcpuError> {
        let err = |what, source| VcpuError::OnVcpu { what, vcpu: self.id, source };
        Ok(CpuState {
            regs: self.fd().get_regs().map_err(|e| err("KVM_GET_REGS", e))?,
            sregs: self.fd().get_sregs().map_err(|e| err("KVM_GET_SREGS", e))?,
            fpu: self.fd().get_fpu().map_err(|e| err("KVM_GET_FPU", e))?,
        })
    }

    /// Writes back what differs from the vCPU's current state.
    fn set_state(&self, new: &CpuState) -> Result<(), VcpuError> {
        let err = |what, source| VcpuError::OnVcpu { what, vcpu: self.id, source };
        let old = self.state()?;
        if new.regs != old.regs {
            self.fd().set_regs(&new.regs).map_err(|e| err("KVM_SET_REGS", e))?;
        }
        if new.sregs != old.sregs {
            self.fd().set_sregs(&new.sregs).map_err(|e| err("KVM_SET_SREGS", e))?;
        }
        if new.fpu != old.fpu {
            self.fd().set_fpu(&new.fpu).map_err(|e| err("KVM_SET_FPU", e))?;
        }
        Ok(())
    }

    /// KVM's own translation of a linear address (KVM_TRANSLATE).
    fn translate(&self, linear: u64) -> Result<u64, VcpuError> {
        let t = self.fd().translate_gva(linear).map_err(|source| VcpuError::Ioctl { what: "KVM_TRANSLATE", source })?;
        if t.valid == 0 {
            return Err(VcpuError::Unmapped(linear));
        }
        Ok(t.physical_address)
    }

    /// KVM_SET_GUEST_DEBUG for the next run.
    pub fn set_debug(&self, r: &ResumeWith) -> Result<(), VcpuError> {
        let dbg = guest_debug(r);
        log::debug!(
            "vCPU {}: KVM_SET_GUEST_DEBUG control {:#x} debugreg {:x?}",
            self.id,
            dbg.control,
            dbg.arch.debugreg
        );
        self.fd().set_guest_debug(&dbg).map_err(|source| VcpuError::OnVcpu {
            what: "KVM_SET_GUEST_DEBUG",
            vcpu: self.id,
            source,
        })
    }

    /// Delivers an int3 that KVM intercepted back to the guest, as the CPU would have.
    pub(super) fn reinject_int3(&self) -> Result<(), VcpuError> {
        let ioctl = |what| move |source| VcpuError::Ioctl { what, source };
        let mut ev = self.fd().get_vcpu_events().map_err(ioctl("KVM_GET_VCPU_EVENTS"))?;
        ev.exception.injected = 1;
        ev.exception.nr = 3;
        ev.exception.has_error_code = 0;
        ev.exception.error_code = 0;
        self.fd().set_vcpu_events(&ev).map_err(ioctl("KVM_SET_VCPU_EVENTS"))
    }
}

/// What KVM_SET_GUEST_DEBUG needs to resume as `r` says.
pub fn guest_debug(r: &ResumeWith) -> kvm_guest_debug {
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
    dbg
}
