//! One vCPU as KVM offers it: KVM_RUN turned into an owned [`Exit`], the port I/O data KVM keeps
//! in the `kvm_run` mapping, and the registers KVM syncs there.
//!
//! This is the boundary: it knows KVM and nothing above it (no devices, no debugger, no run
//! loop). What an exit means and what to do about it is decided in [`crate::exit`] and carried
//! out by [`crate::run_loop`]. The register and debug ioctls are KVM's own typed API
//! (kvm-bindings structs), so they are reached through [`KvmVcpu::fd`] rather than wrapped again.

use crate::kvm::error::{KvmContext, KvmError};
use crate::kvm::exit::Exit;
use kvm_bindings::kvm_regs;
use kvm_ioctls::{Cap, SyncReg, VcpuExit, VcpuFd};

/// What minikvm needs to know about the host's KVM to run a vCPU.
#[derive(Debug, Clone, Copy)]
pub struct HostCaps {
    /// KVM_CAP_SYNC_REGS.
    pub sync_regs: bool,
    /// KVM_GET_VCPU_MMAP_SIZE: the size of each vCPU's kvm_run mapping.
    pub run_size: usize,
}

impl HostCaps {
    pub fn of(kvm: &kvm_ioctls::Kvm) -> Result<HostCaps, KvmError> {
        let run_size = kvm.get_vcpu_mmap_size().during("reading the vCPU mapping size")?;
        Ok(HostCaps { sync_regs: kvm.check_extension(Cap::SyncRegs), run_size })
    }
}

/// A vCPU file descriptor and what KVM shares with us through its `kvm_run` mapping.
pub struct KvmVcpu {
    fd: VcpuFd,
    /// KVM copies the general registers into kvm_run on every exit (KVM_CAP_SYNC_REGS).
    sync_regs: bool,
    /// Also copy the segment registers (only to log CS:IP at -vv).
    sync_sregs: bool,
    /// The size of the kvm_run mapping, which holds the data of port I/O exits.
    run_size: usize,
    /// The instruction bytes KVM handed back with its last emulation failure, for the report.
    emulation_insn: Option<Vec<u8>>,
}

impl KvmVcpu {
    /// Wraps a vCPU; `sync_sregs` asks KVM to sync the segment registers too (for exit logs).
    pub fn new(mut fd: VcpuFd, host: HostCaps, sync_sregs: bool) -> Self {
        let sync_sregs = host.sync_regs && sync_sregs;
        if host.sync_regs {
            fd.set_sync_valid_reg(SyncReg::Register);
            if sync_sregs {
                fd.set_sync_valid_reg(SyncReg::SystemRegister);
            }
        }
        KvmVcpu { fd, sync_regs: host.sync_regs, sync_sregs, run_size: host.run_size, emulation_insn: None }
    }

    /// The vCPU's ioctls (registers, guest debugging, events, translation).
    pub fn fd(&self) -> &VcpuFd {
        &self.fd
    }

    /// While the returned guard lives, a kick to this thread ends this vCPU's KVM_RUN.
    pub fn kick_target(&mut self) -> crate::kvm::KickTarget {
        crate::kvm::KickTarget::new(&mut self.fd)
    }

    /// One KVM_RUN, and what it exited for, copied out of `kvm_run`. A kick is
    /// [`Exit::Interrupted`]; the error is KVM_RUN's own failure.
    pub fn run(&mut self) -> std::result::Result<Exit, kvm_ioctls::Error> {
        let KvmVcpu { fd, run_size, emulation_insn, .. } = self;
        Ok(match fd.run() {
            // Port I/O is read from kvm_run's own header (kvm-ioctls drops the item size); its
            // data stays in kvm_run until the next KVM_RUN (see `pio_data`).
            Ok(VcpuExit::IoIn(..)) | Ok(VcpuExit::IoOut(..)) => match pio_header(fd, *run_size) {
                Some(io) if io.out => {
                    let first = pio_data(fd, *run_size).map(|d| item_value(&d[..io.size as usize])).unwrap_or(0);
                    Exit::IoOut { port: io.port, size: io.size, count: io.count, value: first }
                }
                Some(io) => Exit::IoIn { port: io.port, size: io.size, count: io.count },
                None => Exit::Other { reason: "port I/O with a data buffer outside kvm_run".into() },
            },
            // A read's answer goes into kvm_run before the next KVM_RUN (see `mmio_data`).
            Ok(VcpuExit::MmioRead(addr, data)) => Exit::MmioRead { addr, len: data.len() as u8 },
            Ok(VcpuExit::MmioWrite(addr, data)) => {
                let mut v = [0u8; 8];
                let n = data.len().min(8);
                v[..n].copy_from_slice(&data[..n]);
                Exit::MmioWrite { addr, len: data.len() as u8, value: u64::from_le_bytes(v) }
            }
            Ok(VcpuExit::Hlt) => Exit::Hlt,
            Ok(VcpuExit::Shutdown) => Exit::Shutdown,
            Ok(VcpuExit::FailEntry(reason, _)) => Exit::FailEntry { reason },
            Ok(VcpuExit::InternalError) => {
                // SAFETY: KVM set exit_reason to INTERNAL_ERROR, so the `internal` union member is
                // the one it filled in.
                let suberror = unsafe { fd.get_kvm_run().__bindgen_anon_1.internal.suberror };
                if suberror == kvm_bindings::KVM_INTERNAL_ERROR_EMULATION {
                    *emulation_insn = emulation_bytes(fd);
                }
                Exit::InternalError { suberror }
            }
            Ok(VcpuExit::Debug(d)) => Exit::Debug { exception: d.exception, pc: d.pc, dr6: d.dr6 },
            Ok(VcpuExit::SystemEvent(kind, _)) => Exit::SystemEvent { kind },
            Ok(VcpuExit::Intr) => Exit::Interrupted,
            Ok(other) => Exit::Other { reason: format!("{other:?}") },
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                fd.set_kvm_immediate_exit(0);
                Exit::Interrupted
            }
            Err(e) => return Err(e),
        })
    }

    /// The data buffer of the last port I/O exit: KVM's to read (an `out`'s items) or ours to
    /// fill (an `in`'s) until the next KVM_RUN. None if the last exit was not port I/O.
    pub fn pio_data(&mut self) -> Option<&mut [u8]> {
        pio_data(&mut self.fd, self.run_size)
    }

    /// The data of the last MMIO exit (1 to 8 bytes): KVM's to read (a write's value) or ours to
    /// fill (a read's answer) until the next KVM_RUN. None if the last exit was not MMIO.
    pub fn mmio_data(&mut self) -> Option<&mut [u8]> {
        let run = self.fd.get_kvm_run();
        if run.exit_reason != kvm_bindings::KVM_EXIT_MMIO {
            return None;
        }
        // SAFETY: exit_reason is KVM_EXIT_MMIO, so `mmio` is the union member KVM filled in; it is
        // plain integers and bytes, valid for any bit pattern, and borrowed from `self` mutably.
        let mmio = unsafe { &mut run.__bindgen_anon_1.mmio };
        let len = (mmio.len as usize).min(mmio.data.len());
        Some(&mut mmio.data[..len])
    }

    /// RBX of the last exit: from sync_regs when the host offers it (read in place, no ioctl),
    /// else KVM_GET_REGS.
    pub fn rbx(&mut self) -> std::result::Result<u64, kvm_ioctls::Error> {
        if self.sync_regs {
            Ok(self.fd.sync_regs_mut().regs.rbx)
        } else {
            self.fd.get_regs().map(|r| r.rbx)
        }
    }

    /// The instruction bytes KVM handed back with its last emulation failure, if it did.
    pub fn emulation_insn(&self) -> Option<&[u8]> {
        self.emulation_insn.as_deref()
    }

    /// The general registers and CS selector KVM synced at the last exit, when it syncs the
    /// segment registers too (see [`KvmVcpu::new`]); for exit logs.
    pub fn synced(&self) -> Option<(kvm_regs, u16)> {
        if !self.sync_sregs {
            return None;
        }
        let regs = self.fd.sync_regs();
        Some((regs.regs, regs.sregs.cs.selector))
    }
}

/// The bytes of the instruction KVM could not emulate, when its emulation-failure exit has them.
fn emulation_bytes(fd: &mut VcpuFd) -> Option<Vec<u8>> {
    // SAFETY: for an emulation failure KVM fills in `emulation_failure`; its bytes are valid when
    // the flag says so (the union's only member).
    let failure = unsafe { fd.get_kvm_run().__bindgen_anon_1.emulation_failure };
    let has_bytes = failure.flags & kvm_bindings::KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES as u64;
    if has_bytes == 0 {
        return None;
    }
    // SAFETY: the flag says KVM wrote the instruction bytes, the inner union's one member.
    let insn = unsafe { failure.__bindgen_anon_1.__bindgen_anon_1 };
    let len = (insn.insn_size as usize).min(insn.insn_bytes.len());
    Some(insn.insn_bytes[..len].to_vec())
}

// ----- port I/O exits, read from kvm_run ---------------------------------------------------------

/// A port I/O exit as KVM describes it in `kvm_run.io`.
#[derive(Debug, Clone, Copy)]
struct PioHeader {
    port: u16,
    /// Bytes per item: 1, 2 or 4.
    size: u8,
    /// Items: more than 1 for `rep ins`/`rep outs`.
    count: u32,
    out: bool,
}

/// The header of the port I/O exit KVM_RUN just returned; None if its data would lie outside the
/// `run_size` bytes of the kvm_run mapping (a broken KVM; never trusted blindly).
fn pio_header(fd: &mut VcpuFd, run_size: usize) -> Option<PioHeader> {
    let run = fd.get_kvm_run();
    if run.exit_reason != kvm_bindings::KVM_EXIT_IO {
        return None;
    }
    // SAFETY: exit_reason is KVM_EXIT_IO, so `io` is the union member KVM filled in; it is plain
    // integers, valid for any bit pattern.
    let io = unsafe { run.__bindgen_anon_1.io };
    let len = io.size as usize * io.count as usize;
    let end = (io.data_offset as usize).checked_add(len)?;
    if !matches!(io.size, 1 | 2 | 4) || end > run_size {
        return None;
    }
    let out = io.direction == kvm_bindings::KVM_EXIT_IO_OUT as u8;
    Some(PioHeader { port: io.port, size: io.size, count: io.count, out })
}

/// The data buffer of the last port I/O exit: count × size bytes inside kvm_run.
fn pio_data(fd: &mut VcpuFd, run_size: usize) -> Option<&mut [u8]> {
    let io = pio_header(fd, run_size)?;
    let len = io.size as usize * io.count as usize;
    let run = fd.get_kvm_run();
    // SAFETY: as in `pio_header`: `io` is the member KVM filled in.
    let offset = unsafe { run.__bindgen_anon_1.io.data_offset } as usize;
    let base = run as *mut kvm_bindings::kvm_run as *mut u8;
    // SAFETY: `pio_header` checked that offset + len lies inside the kvm_run mapping (its size is
    // KVM_GET_VCPU_MMAP_SIZE), which lives as long as `fd`; the slice borrows `fd` mutably, so
    // nothing else reads or writes the mapping while it exists (KVM only does, inside KVM_RUN).
    Some(unsafe { std::slice::from_raw_parts_mut(base.add(offset), len) })
}

/// The first item of an `out`, as a number (for logs and statistics).
fn item_value(data: &[u8]) -> u32 {
    let mut v = [0u8; 4];
    let n = data.len().min(4);
    v[..n].copy_from_slice(&data[..n]);
    u32::from_le_bytes(v)
}
