//! What can go wrong when the stub asks a vCPU for something: gdbstub's `Target::Error`.
//!
//! Most of these reach gdb as an error reply (`E..`) and end nothing: the vCPU asked for has
//! ended, is running, or the memory is not mapped. The messages are the ones minikvm logs.

use thiserror::Error;

/// Why a request of the debugger to a vCPU failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DebugError {
    /// gdb named a thread that is no vCPU.
    #[error("there is no vCPU {0}")]
    NoSuchVcpu(usize),
    /// Registers and memory are only read and written while a vCPU is paused.
    #[error("vCPU {0} is not stopped")]
    NotStopped(usize),
    /// Its thread has ended: nobody answers.
    #[error("vCPU {0} has ended")]
    Ended(usize),
    /// The vCPU's own answer: a KVM ioctl that failed, memory that is not mapped.
    #[error("{0}")]
    Vcpu(String),
    /// A `G` packet in the other register layout than the description gdb read last.
    #[error("a G packet in a register layout gdb was not given")]
    WrongLayout,
}

/// Why a `monitor` command could not answer (gdb shows `error: ` and this).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MonitorError {
    #[error("unknown monitor command `{0}`; try `monitor help`")]
    Unknown(String),
    /// A command given the wrong arguments: its usage line.
    #[error("usage: {0}")]
    Usage(&'static str),
    /// gdb sends a monitor command's text as typed: `monitor pt $pc` reaches minikvm as "$pc",
    /// which only gdb could evaluate. Say so, and how to have gdb do it.
    #[error(
        "gdb does not evaluate monitor arguments: minikvm received the text `{0}`; \
         write `eval \"monitor pt %#lx\", {0}` (or `pt {0}` with gdb/realmode.gdb or gdb/os-1k.gdb)"
    )]
    NotEvaluated(String),
    #[error("`{0}` is not a vCPU number")]
    NotAVcpuNumber(String),
    /// `monitor vcpu N` beyond the last vCPU: how many there are.
    #[error("there are {count} vCPUs (0 to {last})", last = .0 - 1, count = .0)]
    NoSuchVcpu(usize),
    /// A descriptor table that is not all in mapped memory.
    #[error("only {mapped} of {len} bytes at linear {base:#x} are mapped")]
    PartlyMapped { mapped: usize, len: usize, base: u64 },
    #[error(transparent)]
    Debug(#[from] DebugError),
}
