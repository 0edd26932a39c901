//! `Z0`–`Z4`/`z0`–`z4`: `break`, `hbreak`, `watch`, `rwatch`, `awatch` and their removal.
//!
//! Where they go (a debug register, an int3 byte, single-stepping) is decided here; the slots
//! themselves are [`crate::gdb::breakpoints`]. One that cannot be honoured is accepted and
//! explained at the next resume ([`crate::gdb::refusals`]).

use super::EFAULT;
use crate::gdb::breakpoints::{Origin, Planted};
use crate::gdb::debugger::{Debugger, MAX_INT3, MAX_SOFT_WATCH};
use crate::gdb::refusals::Request;
use gdbstub::target::ext::breakpoints::{
    Breakpoints, HwBreakpoint, HwBreakpointOps, HwWatchpoint, HwWatchpointOps, SwBreakpoint, SwBreakpointOps, WatchKind,
};
use gdbstub::target::{TargetError, TargetResult};

impl Breakpoints for Debugger {
    fn support_sw_breakpoint(&mut self) -> Option<SwBreakpointOps<'_, Self>> {
        Some(self)
    }

    fn support_hw_breakpoint(&mut self) -> Option<HwBreakpointOps<'_, Self>> {
        Some(self)
    }

    fn support_hw_watchpoint(&mut self) -> Option<HwWatchpointOps<'_, Self>> {
        Some(self)
    }
}

fn watch_request(kind: WatchKind) -> Request {
    match kind {
        WatchKind::Write => Request::Watch,
        WatchKind::Read => Request::RWatch,
        WatchKind::ReadWrite => Request::AWatch,
    }
}

impl Debugger {
    /// Writes an int3 byte at gdb address `addr` into every live vCPU's view of memory (once per
    /// linear address), and returns what it replaced.
    fn plant_int3(&mut self, addr: u64) -> Vec<Planted> {
        let mut planted: Vec<Planted> = Vec::new();
        for id in self.live().collect::<Vec<_>>() {
            let Ok(linear) = self.linear(id, addr) else { continue };
            if planted.iter().any(|p| p.linear == linear) {
                continue;
            }
            let saved = match self.read_linear(id, linear, 1) {
                Ok(b) if b.len() == 1 => b[0],
                _ => continue,
            };
            if self.write_linear(id, linear, vec![0xcc]).is_ok() {
                planted.push(Planted { vcpu: id, linear, saved });
            }
        }
        planted
    }
}

impl SwBreakpoint for Debugger {
    fn add_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        if self.breakpoints.free_slots() > 0 {
            return Ok(self.breakpoints.add_exec(addr, Origin::Break).is_ok());
        }
        if !self.caps.int3 {
            let why = "the 4 debug registers are in use and this host's KVM does not intercept int3 \
                       (see `minikvm doctor`)";
            note!("\r\nminikvm: gdb: cannot set a breakpoint at {addr:#x}: {why}; delete a breakpoint or watchpoint");
            return Ok(self.refusals.refuse(Request::Break, addr, 1, why.into()));
        }
        if self.breakpoints.has_int3(addr) {
            return Ok(true);
        }
        if self.breakpoints.int3_count() >= MAX_INT3 {
            let why = format!("minikvm plants at most {MAX_INT3} int3 breakpoints");
            return Ok(self.refusals.refuse(Request::Break, addr, 1, why));
        }
        let planted = self.plant_int3(addr);
        if planted.is_empty() {
            return Err(TargetError::Errno(EFAULT));
        }
        self.breakpoints.insert_int3(addr, planted);
        Ok(true)
    }

    fn remove_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        if self.refusals.remove(Request::Break, addr, 1) || self.breakpoints.remove_exec(addr, Origin::Break) {
            return Ok(true);
        }
        match self.breakpoints.take_int3(addr) {
            Some(planted) => {
                for p in planted {
                    if let Err(e) = self.write_linear(p.vcpu, p.linear, vec![p.saved]) {
                        log::warn!("gdb: cannot remove the int3 at {:#x}: {e}", p.linear);
                    }
                }
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

impl HwBreakpoint for Debugger {
    fn add_hw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        if self.breakpoints.add_exec(addr, Origin::HBreak).is_ok() {
            return Ok(true);
        }
        let why = "the 4 debug registers DR0-DR3 are in use (`monitor breakpoints` shows by what)";
        Ok(self.refusals.refuse(Request::HBreak, addr, 1, why.into()))
    }

    fn remove_hw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        Ok(self.refusals.remove(Request::HBreak, addr, 1) || self.breakpoints.remove_exec(addr, Origin::HBreak))
    }
}

impl HwWatchpoint for Debugger {
    fn add_hw_watchpoint(&mut self, addr: u64, len: u64, kind: WatchKind) -> TargetResult<bool, Self> {
        let request = watch_request(kind);
        if self.caps.data_breakpoints {
            if self.breakpoints.add_watch(addr, len, kind).is_ok() {
                return Ok(true);
            }
            let why = "the 4 debug registers DR0-DR3 cannot hold it (in use, or more than 4 aligned pieces)";
            return Ok(self.refusals.refuse(request, addr, len, why.into()));
        }
        if kind != WatchKind::Write || !(1..=8).contains(&len) {
            let why = "this host's KVM ignores data breakpoints, so minikvm watches writes by \
                       single-stepping: `watch` on up to 8 bytes works, `rwatch` and `awatch` cannot";
            note!("\r\nminikvm: gdb: {why}");
            return Ok(self.refusals.refuse(request, addr, len, why.into()));
        }
        if !self.soft_watch.contains(&(addr, len)) {
            if self.soft_watch.len() >= MAX_SOFT_WATCH {
                let why = format!("minikvm single-steps for at most {MAX_SOFT_WATCH} watchpoints");
                return Ok(self.refusals.refuse(request, addr, len, why));
            }
            self.soft_watch.push((addr, len));
        }
        Ok(true)
    }

    fn remove_hw_watchpoint(&mut self, addr: u64, len: u64, kind: WatchKind) -> TargetResult<bool, Self> {
        if self.refusals.remove(watch_request(kind), addr, len) {
            return Ok(true);
        }
        if let Some(pos) = self.soft_watch.iter().position(|&w| w == (addr, len)) {
            self.soft_watch.remove(pos);
            return Ok(true);
        }
        Ok(self.breakpoints.remove_watch(addr, len, kind))
    }
}
