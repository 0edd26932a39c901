//! `qThreadExtraInfo`: what `info threads` shows after a thread's id (`vCPU 1: counter`).

use crate::gdb::debugger::{index, Debugger};
use crate::gdb::error::DebugError;
use gdbstub::common::Tid;
use gdbstub::target::ext::thread_extra_info::ThreadExtraInfo;

impl ThreadExtraInfo for Debugger {
    fn thread_extra_info(&self, tid: Tid, buf: &mut [u8]) -> Result<usize, DebugError> {
        let id = index(tid);
        let name = self.vcpu_name(id).unwrap_or("?");
        let text = format!("vCPU {id}: {name}");
        let n = text.len().min(buf.len());
        buf[..n].copy_from_slice(&text.as_bytes()[..n]);
        Ok(n)
    }
}
