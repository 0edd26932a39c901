//! A VM exit as an owned value: what KVM_RUN returned, copied out of the `kvm_run` mapping so
//! that nothing above the boundary borrows it (or needs `unsafe` to read its unions).

/// One VM exit, as minikvm sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// `in` from `port`: `count` items of `size` bytes (`count` > 1 for `rep ins`).
    IoIn {
        port: u16,
        size: u8,
        count: u32,
    },
    /// `out` to `port`: `count` items of `size` bytes; `value` is the first item (for logs and
    /// statistics; the bus gets them all).
    IoOut {
        port: u16,
        size: u8,
        count: u32,
        value: u32,
    },
    MmioRead {
        addr: u64,
        len: u8,
    },
    MmioWrite {
        addr: u64,
        len: u8,
        value: u64,
    },
    Hlt,
    /// Triple fault (or another reason the CPU shut down).
    Shutdown,
    FailEntry {
        reason: u64,
    },
    InternalError {
        suberror: u32,
    },
    /// A debug event: single step, hardware breakpoint/watchpoint or int3.
    Debug {
        exception: u32,
        pc: u64,
        dr6: u64,
    },
    /// KVM_RUN was interrupted by a signal (a kick): look at the control flags.
    Interrupted,
    SystemEvent {
        kind: u32,
    },
    /// An exit reason minikvm does not handle.
    Other {
        reason: String,
    },
}
