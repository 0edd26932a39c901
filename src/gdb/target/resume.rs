//! `vCont`: gdbstub clears the actions, sets one per thread the packet names, then resumes; the
//! state machine behind it is [`crate::gdb::stops`].

use crate::gdb::debugger::{index, Debugger, ResumeAction};
use crate::gdb::error::DebugError;
use gdbstub::common::{Signal, Tid};
use gdbstub::target::ext::base::multithread::{
    MultiThreadResume, MultiThreadSchedulerLocking, MultiThreadSchedulerLockingOps, MultiThreadSingleStep,
    MultiThreadSingleStepOps,
};

impl MultiThreadResume for Debugger {
    fn resume(&mut self) -> Result<(), DebugError> {
        self.resume_all()
    }

    fn clear_resume_actions(&mut self) -> Result<(), DebugError> {
        self.clear_actions();
        Ok(())
    }

    /// Signals are not passed to the guest: a vCPU has no signals.
    fn set_resume_action_continue(&mut self, tid: Tid, _signal: Option<Signal>) -> Result<(), DebugError> {
        self.set_action(index(tid), ResumeAction::Continue);
        Ok(())
    }

    fn support_single_step(&mut self) -> Option<MultiThreadSingleStepOps<'_, Self>> {
        Some(self)
    }

    fn support_scheduler_locking(&mut self) -> Option<MultiThreadSchedulerLockingOps<'_, Self>> {
        Some(self)
    }
}

impl MultiThreadSingleStep for Debugger {
    fn set_resume_action_step(&mut self, tid: Tid, _signal: Option<Signal>) -> Result<(), DebugError> {
        self.set_action(index(tid), ResumeAction::Step);
        Ok(())
    }
}

/// `set scheduler-locking step`: threads the `vCont` does not name stay paused.
impl MultiThreadSchedulerLocking for Debugger {
    fn set_resume_action_scheduler_lock(&mut self) -> Result<(), DebugError> {
        self.lock_scheduler = true;
        Ok(())
    }
}
