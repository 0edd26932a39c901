//! The built-in GDB stub: `minikvm --gdb [ADDR:]PORT GUEST…`.
//!
//! minikvm builds the VM as usual, listens on ADDR:PORT (127.0.0.1 unless given) and waits for
//! one gdb to connect; the vCPUs stay at their first instruction until it does. Each vCPU is a
//! gdb thread (vCPU *i* = thread *i* + 1).
//!
//! # How the pieces talk (one way)
//! ```text
//! gdb ──TCP── GdbConn ── gdbstub ── Debugger (target.rs) ──DebugRequest──▶ vCPU threads
//!                 ▲ poll(2): socket + eventfd                ◀──DebugEvent──┘ (+ eventfd write)
//! ```
//! The stub never calls KVM; a paused vCPU answers its requests (registers, memory, resume with
//! single-step / debug registers), a running one reports when it stops. Nothing polls in a loop:
//! while the guest runs, the stub sleeps in poll(2) on the socket and an eventfd.
//!
//! # Addresses
//! A gdb address is an **offset in the vCPU's current code segment**: memory access, breakpoints
//! and watchpoints at gdb address A use linear address `CS.base + A`, then the guest's paging (if
//! on) to reach guest-physical memory, and `$pc` is EIP (IP in real mode). So:
//! * a real-mode guest's ELF symbols (linked at 0) are right for every vCPU, although vCPU *i*
//!   runs at linear `i * 0x40000`: `break print_digit` and `x/3i $pc` just work;
//! * with flat segments (base 0, the 1K OS) gdb addresses are the kernel's virtual addresses.
//!
//! The linear address of the pc is `$cs_base + $eip` (`monitor regs` shows it too). Real-mode
//! guests' symbols are loaded with `symbol-file` (an ELF32 executable would make gdb disassemble
//! 32-bit code); kernels' ELF is offered to gdb, which loads it by itself.
//!
//! # Breakpoints and stepping
//! `hbreak`, and `break` while one is free, use DR0–DR3; more `break`s plant int3 only where KVM
//! intercepts it. `watch` uses debug registers, or, where KVM ignores data breakpoints
//! ([`crate::doctor::probe`]), single-steps and compares. `stepi` holds interrupts back (KVM_GUESTDBG_BLOCKIRQ)
//! where the host offers it. See [`breakpoints`] and gdb/README.md.
//!
//! # How a session ends
//! * `detach` or `quit` in gdb: breakpoints and watchpoints are removed and the guest runs on to
//!   its normal end; minikvm exits as without gdb.
//! * `kill`: the run stops, minikvm exits with status 6 ("stopped").
//! * a connection that breaks (gdb killed, network gone) or a protocol error: like `detach`.
//! * every vCPU ended: gdb is told the exit code minikvm will return.

pub mod arch;
pub mod breakpoints;
pub mod conn;
pub mod monitor;
pub mod regs;
pub mod target;

pub use target::{Caps, VcpuHandle};

use crate::error::{Error, Result};
use conn::{GdbConn, Wake};
use gdbstub::conn::ConnectionExt;
use gdbstub::stub::state_machine::GdbStubStateMachine;
use gdbstub::stub::{DisconnectReason, GdbStub};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::eventfd::EventFd;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::AsFd;
use std::sync::{mpsc, Arc};
use target::Debugger;

/// How a gdb session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEnd {
    /// The run ended before any gdb connected.
    NeverConnected,
    /// gdb detached (`detach`, `quit`): the guest runs on without breakpoints.
    Detached,
    /// The connection broke or gdb spoke nonsense: handled like a detach.
    Lost(String),
    /// gdb's `kill`: the run stops (exit status 6).
    Killed,
    /// Every vCPU ended while gdb was attached.
    RunOver,
}

/// `PORT` or `ADDR:PORT` (ADDR defaults to 127.0.0.1; a host name is looked up).
pub fn parse_address(s: &str) -> std::result::Result<SocketAddr, String> {
    let bad = || format!("--gdb `{s}`: expected PORT or ADDR:PORT, e.g. --gdb 1234 or --gdb 0.0.0.0:1234");
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    if !s.contains(':') {
        return Err(bad());
    }
    s.to_socket_addrs().map_err(|e| format!("--gdb `{s}`: {e}"))?.next().ok_or_else(bad)
}

/// Listens for gdb on `PORT` or `ADDR:PORT` (nothing is accepted before [`Stub::serve`]).
pub fn listen(spec: &str) -> Result<TcpListener> {
    let addr = parse_address(spec).map_err(Error::usage)?;
    TcpListener::bind(addr).map_err(|e| Error::Host(format!("--gdb: cannot listen on {addr}: {e}")))
}

/// Says on stderr where gdb can connect (the real port when 0 was asked for). `symbols`: the ELF of
/// a real-mode guest, whose symbols gdb should load with `symbol-file`.
pub fn announce(listener: &TcpListener, symbols: Option<&str>) -> Result<()> {
    let local = listener.local_addr().map_err(|e| Error::Host(format!("--gdb: {e}")))?;
    // `\r`: the terminal may be in raw mode already (the guest's console).
    eprintln!("minikvm: waiting for gdb on {local} (in gdb: target remote :{})\r", local.port());
    if let Some(elf) = symbols {
        eprintln!("minikvm: real-mode guest: load its symbols in gdb with `symbol-file {elf}` (see gdb/README.md)\r");
    }
    Ok(())
}

/// Everything the stub thread needs.
pub struct Stub {
    pub listener: TcpListener,
    pub vcpus: Vec<VcpuHandle>,
    pub events: mpsc::Receiver<(usize, crate::kvm::vcpu::DebugEvent)>,
    pub wake: Arc<EventFd>,
    pub ram: Arc<crate::kvm::memory::GuestRam>,
    pub caps: Caps,
    pub elf_path: Option<String>,
}

impl Stub {
    /// Waits for gdb, runs the session, and leaves the vCPUs running on (detach) or stopping
    /// (kill). Returns early when every vCPU ends (the run was stopped from outside).
    pub fn serve(self) -> SessionEnd {
        let Stub { listener, vcpus, events, wake, ram, caps, elf_path } = self;
        let mut dbg = Debugger::new(vcpus, events, wake.clone(), ram, caps, elf_path);
        let stream = match accept(&listener, &wake, &mut dbg) {
            Some(s) => s,
            None => return SessionEnd::NeverConnected,
        };
        drop(listener);
        if let Ok(peer) = stream.peer_addr() {
            eprintln!("minikvm: gdb connected from {peer}\r");
        }
        dbg.choose_description();
        let end = match drive(&mut dbg, GdbConn::new(stream)) {
            Ok(end) => end,
            Err(e) => SessionEnd::Lost(e),
        };
        match &end {
            SessionEnd::Killed => {
                eprintln!("\r\nminikvm: killed from gdb\r");
                dbg.finish(true);
            }
            SessionEnd::Detached => {
                eprintln!("\r\nminikvm: gdb detached; the guest runs on\r");
                dbg.finish(false);
            }
            SessionEnd::Lost(why) => {
                eprintln!("\r\nminikvm: lost gdb ({why}); detached, the guest runs on\r");
                dbg.finish(false);
            }
            SessionEnd::RunOver | SessionEnd::NeverConnected => {}
        }
        end
    }
}

/// Waits for a connection; gives up (None) if every vCPU ends first.
fn accept(listener: &TcpListener, wake: &EventFd, dbg: &mut Debugger) -> Option<TcpStream> {
    if let Err(e) = listener.set_nonblocking(true) {
        log::warn!("gdb: {e}");
    }
    loop {
        let mut fds = [PollFd::new(wake.as_fd(), PollFlags::POLLIN), PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => {
                eprintln!("minikvm: gdb: waiting for a connection failed: {e}");
                return None;
            }
        }
        if fds[0].revents().is_some_and(|r| !r.is_empty()) {
            let _ = wake.read();
            dbg.note_events();
            if dbg.all_ended() {
                return None;
            }
        }
        match listener.accept() {
            Ok((stream, _)) => {
                if let Err(e) = stream.set_nonblocking(false) {
                    log::warn!("gdb: {e}");
                }
                return Some(stream);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => log::warn!("gdb: accept failed: {e}"),
        }
    }
}

/// Runs gdbstub's state machine until the session ends.
fn drive(dbg: &mut Debugger, conn: GdbConn) -> std::result::Result<SessionEnd, String> {
    let err = |e: gdbstub::stub::GdbStubError<String, std::io::Error>| e.to_string();
    let io = |e: std::io::Error| e.to_string();
    let wake = dbg.wake.clone();
    let mut sm = GdbStub::new(conn).run_state_machine(dbg).map_err(err)?;
    loop {
        sm = match sm {
            GdbStubStateMachine::Idle(mut g) => match g.borrow_conn().wait(&wake).map_err(io)? {
                Wake::Gdb => {
                    let byte = g.borrow_conn().read().map_err(io)?;
                    g.incoming_data(dbg, byte).map_err(err)?
                }
                Wake::Vcpu => {
                    // Stopped vCPUs only end (the controller stopped the run): nothing to tell gdb
                    // until it asks, unless nothing is left.
                    dbg.note_events();
                    if dbg.all_ended() {
                        return Ok(SessionEnd::RunOver);
                    }
                    g.into()
                }
            },
            GdbStubStateMachine::Running(mut g) => match dbg.take_events() {
                Some(reason) => g.report_stop(dbg, reason).map_err(err)?,
                None => match g.borrow_conn().wait(&wake).map_err(io)? {
                    Wake::Gdb => {
                        let byte = g.borrow_conn().read().map_err(io)?;
                        g.incoming_data(dbg, byte).map_err(err)?
                    }
                    Wake::Vcpu => g.into(),
                },
            },
            GdbStubStateMachine::CtrlCInterrupt(g) => {
                let reason = dbg.interrupt();
                g.interrupt_handled(dbg, Some(reason)).map_err(err)?
            }
            GdbStubStateMachine::Disconnected(g) => {
                return Ok(match g.get_reason() {
                    DisconnectReason::Disconnect => SessionEnd::Detached,
                    DisconnectReason::Kill => SessionEnd::Killed,
                    DisconnectReason::TargetExited(_) | DisconnectReason::TargetTerminated(_) => SessionEnd::RunOver,
                })
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(parse_address("1234"), Ok("127.0.0.1:1234".parse().unwrap()));
        assert_eq!(parse_address("0.0.0.0:99"), Ok("0.0.0.0:99".parse().unwrap()));
        assert_eq!(parse_address("[::1]:99"), Ok("[::1]:99".parse().unwrap()));
        assert!(parse_address("abc").is_err());
        assert!(parse_address("99999").is_err());
    }
}
