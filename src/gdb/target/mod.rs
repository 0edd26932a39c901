//! gdbstub's `Target` for the [`Debugger`]: one file per extension, as in gdbstub's armv4t
//! example. Here: the target itself and its base (threads, registers, memory).
//!
//! | file | gdb's packets |
//! |---|---|
//! | `mod.rs` | `g`/`G` registers, `m`/`M` memory, `qfThreadInfo` |
//! | [`resume`] | `vCont` (continue, step, scheduler locking) |
//! | [`breakpoints`] | `Z0`–`Z4`/`z0`–`z4` |
//! | [`monitor_cmd`] | `qRcmd` (`monitor …`) |
//! | [`exec_file`] | `qXfer:exec-file:read` |
//! | [`target_description_xml_override`] | `qXfer:features:read:target.xml` |
//! | [`thread_extra_info`] | `qThreadExtraInfo` |

pub mod breakpoints;
pub mod exec_file;
pub mod monitor_cmd;
pub mod resume;
pub mod target_description_xml_override;
pub mod thread_extra_info;

use super::arch::{TdescFlavour, X86Guest};
use super::debugger::{index, tid, Debugger, MAX_READ};
use super::error::DebugError;
use super::layout::GuestRegs;
use super::regs::X86Regs;
use super::regs64::X86_64Regs;
use gdbstub::common::Tid;
use gdbstub::target::ext::base::multithread::{MultiThreadBase, MultiThreadResumeOps};
use gdbstub::target::ext::base::BaseOps;
use gdbstub::target::ext::breakpoints::BreakpointsOps;
use gdbstub::target::ext::exec_file::ExecFileOps;
use gdbstub::target::ext::monitor_cmd::MonitorCmdOps;
use gdbstub::target::ext::target_description_xml_override::TargetDescriptionXmlOverrideOps;
use gdbstub::target::ext::thread_extra_info::ThreadExtraInfoOps;
use gdbstub::target::{Target, TargetError, TargetResult};

/// EFAULT: what gdb gets for memory that is not mapped ("Cannot access memory at address …").
const EFAULT: u8 = 14;
/// EINVAL: what gdb gets for a request beyond the stub's limits.
const EINVAL: u8 = 22;

/// A request gdb made that failed: logged, and an error reply for gdb; the session goes on.
fn nonfatal<T>(e: DebugError) -> TargetResult<T, Debugger> {
    log::info!("gdb: {e}");
    Err(TargetError::NonFatal)
}

impl Target for Debugger {
    type Arch = X86Guest;
    type Error = DebugError;

    fn base_ops(&mut self) -> BaseOps<'_, Self::Arch, Self::Error> {
        BaseOps::MultiThread(self)
    }

    fn support_breakpoints(&mut self) -> Option<BreakpointsOps<'_, Self>> {
        Some(self)
    }

    fn support_monitor_cmd(&mut self) -> Option<MonitorCmdOps<'_, Self>> {
        Some(self)
    }

    /// Offered to protected-mode guests only: gdb takes the architecture of an executable over
    /// the target description, and an ELF32 file says "i386" even for 16-bit code. Real-mode
    /// guests' symbols are loaded with `symbol-file`, which leaves the architecture alone.
    fn support_exec_file(&mut self) -> Option<ExecFileOps<'_, Self>> {
        self.exec_file.as_ref()?;
        if !matches!(self.flavour.get(), Some(TdescFlavour::I386 | TdescFlavour::X86_64)) {
            return None;
        }
        Some(self)
    }

    fn support_target_description_xml_override(&mut self) -> Option<TargetDescriptionXmlOverrideOps<'_, Self>> {
        Some(self)
    }
}

impl MultiThreadBase for Debugger {
    /// In the layout of the description gdb read last, whatever the vCPU's mode is now.
    fn read_registers(&mut self, regs: &mut GuestRegs, tid: Tid) -> TargetResult<(), Self> {
        let wide = self.flavour.get().is_some_and(TdescFlavour::is_64_bit);
        match self.state(index(tid)) {
            Ok(s) if wide => *regs = GuestRegs::Bits64(X86_64Regs::from_kvm(&s.regs, &s.sregs, &s.fpu)),
            Ok(s) => *regs = GuestRegs::Bits32(X86Regs::from_kvm(&s.regs, &s.sregs, &s.fpu)),
            Err(e) => return nonfatal(e),
        }
        Ok(())
    }

    /// A `G` packet in the other layout than the description gdb read last is refused.
    fn write_registers(&mut self, regs: &GuestRegs, tid: Tid) -> TargetResult<(), Self> {
        let id = index(tid);
        let wide = self.flavour.get().is_some_and(TdescFlavour::is_64_bit);
        let mut s = match self.state(id) {
            Ok(s) => s,
            Err(e) => return nonfatal(e),
        };
        let changed = match regs {
            GuestRegs::Bits64(r) if wide => r.apply_to_kvm(&mut s.regs, &mut s.sregs, &mut s.fpu),
            GuestRegs::Bits32(r) if !wide => r.apply_to_kvm(&mut s.regs, &mut s.sregs, &mut s.fpu),
            _ => return nonfatal(DebugError::WrongLayout),
        };
        if changed.regs || changed.sregs || changed.fpu {
            if let Err(e) = self.set_state(id, s) {
                return nonfatal(e);
            }
        }
        Ok(())
    }

    fn read_addrs(&mut self, start: u64, data: &mut [u8], tid: Tid) -> TargetResult<usize, Self> {
        // gdbstub reads an `m` packet's length in pieces of the packet buffer and sends each
        // piece as it comes: a length beyond the budget is refused before anything is sent.
        if data.len() > self.read_budget {
            log::info!("gdb: a memory read of more than {MAX_READ} bytes refused");
            self.read_budget = 0;
            return Err(TargetError::Errno(EINVAL));
        }
        self.read_budget -= data.len();
        let id = index(tid);
        let linear = match self.linear(id, start) {
            Ok(l) => l,
            Err(e) => return nonfatal(e),
        };
        match self.read_linear(id, linear, data.len()) {
            Ok(bytes) => {
                let n = bytes.len().min(data.len());
                data[..n].copy_from_slice(&bytes[..n]);
                self.breakpoints.hide_int3(id, linear, &mut data[..n]);
                Ok(n)
            }
            Err(e) => {
                log::debug!("gdb: read at {start:#x} (linear {linear:#x}): {e}");
                Err(TargetError::Errno(EFAULT))
            }
        }
    }

    fn write_addrs(&mut self, start: u64, data: &[u8], tid: Tid) -> TargetResult<(), Self> {
        let id = index(tid);
        let linear = match self.linear(id, start) {
            Ok(l) => l,
            Err(e) => return nonfatal(e),
        };
        match self.write_linear(id, linear, data.to_vec()) {
            Ok(()) => Ok(()),
            Err(e) => {
                log::debug!("gdb: write at {start:#x} (linear {linear:#x}): {e}");
                Err(TargetError::Errno(EFAULT))
            }
        }
    }

    fn list_active_threads(&mut self, thread_is_active: &mut dyn FnMut(Tid)) -> Result<(), Self::Error> {
        for id in self.live() {
            thread_is_active(tid(id));
        }
        Ok(())
    }

    fn support_resume(&mut self) -> Option<MultiThreadResumeOps<'_, Self>> {
        Some(self)
    }

    fn support_thread_extra_info(&mut self) -> Option<ThreadExtraInfoOps<'_, Self>> {
        Some(self)
    }
}
