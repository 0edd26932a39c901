//! `qRcmd`: gdb's `monitor …` commands, answered by [`crate::gdb::monitor`].

use crate::gdb::debugger::Debugger;
use crate::gdb::error::DebugError;
use crate::gdb::monitor;
use gdbstub::target::ext::monitor_cmd::{ConsoleOutput, MonitorCmd};

impl MonitorCmd for Debugger {
    fn handle_monitor_cmd(&mut self, cmd: &[u8], mut out: ConsoleOutput<'_>) -> Result<(), DebugError> {
        let text = monitor::run(self, &String::from_utf8_lossy(cmd));
        for line in text.lines() {
            out.write_raw(line.as_bytes());
            out.write_raw(b"\n");
        }
        Ok(())
    }
}
