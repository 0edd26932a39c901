//! Which register layout the `g` packet has: the one of the target description gdb read last.
//!
//! gdb cuts the `g` reply into registers by the target description it has read; it reads that
//! description when it connects and again whenever it is told to (`unset tdesc filename` in the
//! stop hook of gdb/realmode.gdb, when the vCPU has moved between 32-bit and 64-bit code). So
//! the stub does not answer in the layout of the vCPU's mode *now*, but in the layout of the
//! description it served last ([`super::arch::TdescFlavour`]): a `g` reply that matches what gdb
//! expects, even right after the guest switched to long mode and before gdb re-read.

#![forbid(unsafe_code)]

use super::regs::X86Regs;
use super::regs64::X86_64Regs;
use gdbstub::arch::Registers;

/// The registers in one of the two layouts. (One value lives per packet: the size difference
/// between the variants costs nothing worth a `Box`.)
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestRegs {
    /// 16- and 32-bit code: gdb's i386 layout plus minikvm's system registers.
    Bits32(X86Regs),
    /// 64-bit code: gdb's x86-64 layout plus minikvm's system registers.
    Bits64(X86_64Regs),
}

impl Default for GuestRegs {
    fn default() -> Self {
        GuestRegs::Bits32(X86Regs::default())
    }
}

impl Registers for GuestRegs {
    type ProgramCounter = u64;

    fn pc(&self) -> u64 {
        match self {
            GuestRegs::Bits32(r) => r.pc(),
            GuestRegs::Bits64(r) => r.pc(),
        }
    }

    fn gdb_serialize(&self, write_byte: impl FnMut(Option<u8>)) {
        match self {
            GuestRegs::Bits32(r) => r.gdb_serialize(write_byte),
            GuestRegs::Bits64(r) => r.gdb_serialize(write_byte),
        }
    }

    /// A `G` packet's layout is told by its length (the two layouts differ in size); the target
    /// then refuses one that is not the layout gdb was last given.
    fn gdb_deserialize(&mut self, bytes: &[u8]) -> Result<(), ()> {
        if bytes.len() == super::regs64::total_bytes() {
            let mut r = X86_64Regs::default();
            r.gdb_deserialize(bytes)?;
            *self = GuestRegs::Bits64(r);
        } else {
            let mut r = X86Regs::default();
            r.gdb_deserialize(bytes)?;
            *self = GuestRegs::Bits32(r);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// tests/fuzz_gdb.rs sends `G` packets of both sizes: they are these.
    #[test]
    fn the_two_layouts_have_different_sizes() {
        assert_eq!(crate::gdb::regs::total_bytes(), 420);
        assert_eq!(crate::gdb::regs64::total_bytes(), 648);
        let mut r = GuestRegs::default();
        let wide = GuestRegs::Bits64(X86_64Regs::default());
        let mut bytes = Vec::new();
        wide.gdb_serialize(|b| bytes.push(b.unwrap()));
        r.gdb_deserialize(&bytes).unwrap();
        assert_eq!(r, wide, "a G of the 64-bit size is read as the 64-bit layout");
        assert!(r.gdb_deserialize(&bytes[1..]).is_err());
    }
}
