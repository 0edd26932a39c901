//! `qXfer:features:read:target.xml`: the description of the vCPU's mode at the moment gdb reads
//! it (i8086, i386 or x86-64; see [`crate::gdb::arch`] and [`crate::gdb::layout`]).

use crate::gdb::arch::{serve_target_xml, TdescFlavour};
use crate::gdb::debugger::Debugger;
use crate::x86::mode::CpuMode;
use gdbstub::target::ext::target_description_xml_override::TargetDescriptionXmlOverride;
use gdbstub::target::{TargetError, TargetResult};

impl TargetDescriptionXmlOverride for Debugger {
    fn target_description_xml(
        &self,
        annex: &[u8],
        offset: u64,
        length: usize,
        buf: &mut [u8],
    ) -> TargetResult<usize, Self> {
        // gdb reads the description from offset 0 on: that is when it may change.
        if offset == 0 {
            if let Some(mode) = self.mode_now(self.current) {
                self.flavour.set(Some(TdescFlavour::for_mode(mode)));
            }
        }
        let flavour = self.flavour.get().unwrap_or(TdescFlavour::I386);
        serve_target_xml(flavour, annex, offset, length, buf).ok_or(TargetError::NonFatal)
    }
}

impl Debugger {
    /// Decides the target description from the mode of the vCPU gdb connects to (gdb reads it
    /// once, unless told to again).
    pub fn choose_description(&mut self) {
        let id = self.current;
        let mode = self.state(id).map(|s| crate::gdb::debugger::cpu_mode(&s)).unwrap_or(CpuMode::Protected32);
        let flavour = TdescFlavour::for_mode(mode);
        self.flavour.set(Some(flavour));
        log::info!("gdb: vCPU {id} is in {mode}: describing the target as {}", flavour.architecture());
    }
}
