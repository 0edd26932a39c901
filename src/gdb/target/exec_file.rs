//! `qXfer:exec-file:read`: the path of a kernel's ELF, which gdb then loads by itself (offered
//! to protected-mode guests only; see `support_exec_file` in [`super`]).

use crate::gdb::debugger::Debugger;
use gdbstub::common::Pid;
use gdbstub::target::ext::exec_file::ExecFile;
use gdbstub::target::TargetResult;

impl ExecFile for Debugger {
    fn get_exec_file(
        &self,
        _pid: Option<Pid>,
        offset: u64,
        length: usize,
        buf: &mut [u8],
    ) -> TargetResult<usize, Self> {
        let path = self.exec_file.as_deref().unwrap_or_default();
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(path.len());
        let n = (path.len() - start).min(length).min(buf.len());
        buf[..n].copy_from_slice(&path[start..start + n]);
        Ok(n)
    }
}
