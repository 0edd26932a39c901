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

/// What kind of exit, without its data: what statistics count and logs name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    IoIn,
    IoOut,
    MmioRead,
    MmioWrite,
    Hlt,
    Shutdown,
    FailEntry,
    InternalError,
    Debug,
    Interrupted,
    SystemEvent,
    Other,
}

impl ExitKind {
    /// Every kind, in the order of their discriminants (statistics are an array indexed by them).
    pub const ALL: [ExitKind; 12] = [
        ExitKind::IoIn,
        ExitKind::IoOut,
        ExitKind::MmioRead,
        ExitKind::MmioWrite,
        ExitKind::Hlt,
        ExitKind::Shutdown,
        ExitKind::FailEntry,
        ExitKind::InternalError,
        ExitKind::Debug,
        ExitKind::Interrupted,
        ExitKind::SystemEvent,
        ExitKind::Other,
    ];

    /// A short name, for statistics and logs.
    pub fn name(self) -> &'static str {
        match self {
            ExitKind::IoIn => "io-in",
            ExitKind::IoOut => "io-out",
            ExitKind::MmioRead => "mmio-read",
            ExitKind::MmioWrite => "mmio-write",
            ExitKind::Hlt => "hlt",
            ExitKind::Shutdown => "shutdown",
            ExitKind::FailEntry => "fail-entry",
            ExitKind::InternalError => "internal-error",
            ExitKind::Debug => "debug",
            ExitKind::Interrupted => "interrupted",
            ExitKind::SystemEvent => "system-event",
            ExitKind::Other => "other",
        }
    }
}

impl Exit {
    pub fn kind(&self) -> ExitKind {
        match self {
            Exit::IoIn { .. } => ExitKind::IoIn,
            Exit::IoOut { .. } => ExitKind::IoOut,
            Exit::MmioRead { .. } => ExitKind::MmioRead,
            Exit::MmioWrite { .. } => ExitKind::MmioWrite,
            Exit::Hlt => ExitKind::Hlt,
            Exit::Shutdown => ExitKind::Shutdown,
            Exit::FailEntry { .. } => ExitKind::FailEntry,
            Exit::InternalError { .. } => ExitKind::InternalError,
            Exit::Debug { .. } => ExitKind::Debug,
            Exit::Interrupted => ExitKind::Interrupted,
            Exit::SystemEvent { .. } => ExitKind::SystemEvent,
            Exit::Other { .. } => ExitKind::Other,
        }
    }

    /// A short name, for statistics and logs.
    pub fn name(&self) -> &'static str {
        self.kind().name()
    }
}

#[cfg(test)]
mod tests {
    use super::ExitKind;

    #[test]
    fn all_kinds_are_listed_in_discriminant_order() {
        for (i, kind) in ExitKind::ALL.iter().enumerate() {
            assert_eq!(*kind as usize, i, "{kind:?}");
        }
    }
}
