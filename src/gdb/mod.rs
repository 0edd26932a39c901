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
//! ([`crate::doctor::probe`]), single-steps and compares. `stepi` holds interrupts back
//! (KVM_GUESTDBG_BLOCKIRQ) where the host offers it. See [`breakpoints`] and gdb/README.md.
//!
//! # How a session ends
//! * `detach` or `quit` in gdb: breakpoints and watchpoints are removed and the guest runs on to
//!   its normal end; minikvm exits as without gdb.
//! * `kill`: the run stops, minikvm exits with status 6 ("stopped").
//! * a connection that breaks (gdb killed, network gone) or a protocol error: like `detach`.
//! * every vCPU ended: gdb is told the exit code minikvm will return.
//! * a second gdb, while one is attached or after the session ended, is turned away at once with a
//!   reason it prints ([`doorman`]): one session per run.
//!
//! # What a client cannot do to minikvm
//! Anyone who reaches the port owns the guest (its memory and registers), so minikvm listens on
//! 127.0.0.1 unless told otherwise, and warns when it is. What a client can never do is take
//! minikvm itself down: a packet over [`conn::MAX_PACKET`] bytes or a reply left unread for
//! [`conn::WRITE_TIMEOUT`] ends the session (the guest runs on, as after a detach), a memory read
//! over [`target::MAX_READ`] bytes gets an error reply, and breakpoint counts are capped; no write
//! to stderr or to the socket can panic; a stop of the run (signal, Ctrl-A x) never waits for the
//! client; and a stub thread that dies all the same ends the run with status 7
//! ([`SessionEnd::Failed`]).

/// Writes one line to stderr, never panicking ([`crate::stdio`]); `\r` because the terminal may be
/// in raw mode, for the guest's console.
macro_rules! note {
    ($($arg:tt)*) => { crate::stderrln!("{}\r", format_args!($($arg)*)) };
}

pub mod arch;
pub mod breakpoints;
pub mod conn;
pub mod doorman;
pub mod layout;
pub mod monitor;
pub mod refusals;
pub mod regs;
pub mod regs64;
pub mod target;
pub mod tdesc64;

pub use target::{Caps, VcpuHandle};

use crate::error::{Error, Result};
use conn::{GdbConn, Wake};
use gdbstub::conn::ConnectionExt;
use gdbstub::stub::state_machine::GdbStubStateMachine;
use gdbstub::stub::{DisconnectReason, GdbStubBuilder};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::eventfd::EventFd;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::AsFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
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
    /// The stub itself failed (a minikvm bug): the run stops with status 7.
    Failed(String),
}

/// `PORT`, `:PORT` or `ADDR:PORT` (ADDR defaults to 127.0.0.1; a host name is looked up).
pub fn parse_address(s: &str) -> std::result::Result<SocketAddr, String> {
    let bad = || format!("--gdb `{s}`: expected PORT or ADDR:PORT, e.g. --gdb 1234, --gdb :1234 or --gdb 0.0.0.0:1234");
    // `PORT`, or `:PORT` as gdb's own `target remote :PORT` writes it.
    if let Ok(port) = s.strip_prefix(':').unwrap_or(s).parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    if !s.contains(':') {
        return Err(bad());
    }
    s.to_socket_addrs().map_err(|e| format!("--gdb `{s}`: {e}"))?.next().ok_or_else(bad)
}

/// Listens for gdb on `PORT` or `ADDR:PORT` (nothing is accepted before [`Stub::serve`]). An
/// address that cannot be listened on (a port in use, an address not on this host) is the
/// user's to change: a usage error, not a host failure.
pub fn listen(spec: &str) -> Result<TcpListener> {
    let addr = parse_address(spec).map_err(Error::usage)?;
    TcpListener::bind(addr).map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::AddrInUse => " (--gdb 0 picks a free port)",
            _ => "",
        };
        Error::usage(format!("--gdb: cannot listen on {addr}: {e}{hint}"))
    })
}

/// Says on stderr where gdb can connect (the real port when 0 was asked for), and warns when that
/// is beyond this machine. `symbols`: the ELF of a real-mode guest, whose symbols gdb should load
/// with `symbol-file`.
pub fn announce(listener: &TcpListener, symbols: Option<&str>) -> Result<()> {
    let local = listener.local_addr().map_err(|e| Error::Host(format!("--gdb: {e}")))?;
    if !local.ip().is_loopback() {
        note!(
            "minikvm: warning: the gdb stub listens on {local}, not only on this machine: anyone who can reach \
             that port owns the guest (its memory and registers); --gdb PORT listens on 127.0.0.1 alone"
        );
    }
    note!("minikvm: waiting for gdb on {local} (in gdb: target remote :{})", local.port());
    if let Some(elf) = symbols {
        note!("minikvm: real-mode guest: load its symbols in gdb with `symbol-file {elf}` (see gdb/README.md)");
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
    /// (kill). Returns early when every vCPU ends (the run was stopped from outside). Never
    /// panics: a panic inside is a minikvm bug, returned as [`SessionEnd::Failed`] so that the
    /// run ends instead of waiting for a stub that is gone.
    pub fn serve(self) -> SessionEnd {
        without_panics(|| self.session())
    }

    fn session(self) -> SessionEnd {
        let Stub { listener, vcpus, events, wake, ram, caps, elf_path } = self;
        let mut dbg = Debugger::new(vcpus, events, wake.clone(), ram, caps, elf_path);
        let stream = match accept(&listener, &wake, &mut dbg) {
            Some(s) => s,
            None => return SessionEnd::NeverConnected,
        };
        let over = Arc::new(std::sync::atomic::AtomicBool::new(false));
        doorman::turn_away(listener, over.clone());
        if let Ok(peer) = stream.peer_addr() {
            note!("minikvm: gdb connected from {peer}");
        }
        injected_panic();
        dbg.choose_description();
        let conn = GdbConn::new(stream, dbg.controls());
        let end = match drive(&mut dbg, conn) {
            Ok(end) => end,
            Err(e) => SessionEnd::Lost(e),
        };
        over.store(true, std::sync::atomic::Ordering::Release);
        match &end {
            SessionEnd::Killed => {
                note!("\r\nminikvm: killed from gdb");
                dbg.finish(true);
            }
            SessionEnd::Detached => {
                note!("\r\nminikvm: gdb detached; the guest runs on");
                dbg.finish(false);
            }
            SessionEnd::Lost(why) => {
                note!("\r\nminikvm: lost gdb ({why}); detached, the guest runs on");
                dbg.finish(false);
            }
            SessionEnd::RunOver | SessionEnd::NeverConnected | SessionEnd::Failed(_) => {}
        }
        end
    }
}

/// Fault injection for tests: `MINIKVM_FAULT_INJECT=gdb-panic` makes the stub's thread panic once
/// gdb has connected, standing in for any bug that kills it mid-session (README, "Exit status").
fn injected_panic() {
    if std::env::var("MINIKVM_FAULT_INJECT").is_ok_and(|v| v == "gdb-panic") {
        panic!("fault injected by MINIKVM_FAULT_INJECT");
    }
}

/// Runs a session; a panic inside (a minikvm bug) becomes [`SessionEnd::Failed`] with its message.
fn without_panics(session: impl FnOnce() -> SessionEnd) -> SessionEnd {
    match catch_unwind(AssertUnwindSafe(session)) {
        Ok(end) => end,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            SessionEnd::Failed(what)
        }
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
                note!("minikvm: gdb: waiting for a connection failed: {e}");
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

/// Why a session broke, in words: a connection error says it best itself (e.g. the packet limit).
fn why(e: gdbstub::stub::GdbStubError<String, std::io::Error>) -> String {
    if e.is_connection_error() {
        if let Some((io, _)) = e.into_connection_error() {
            return io.to_string();
        }
        return "connection error".into();
    }
    e.to_string()
}

/// Runs gdbstub's state machine until the session ends. Packets go into a buffer of
/// [`conn::MAX_PACKET`] bytes that never grows (the size gdb is told in `PacketSize`).
fn drive(dbg: &mut Debugger, conn: GdbConn) -> std::result::Result<SessionEnd, String> {
    let err = why;
    let io = |e: std::io::Error| e.to_string();
    let wake = dbg.wake.clone();
    let mut packet = vec![0u8; conn::MAX_PACKET];
    let stub = GdbStubBuilder::new(conn).with_packet_buffer(&mut packet).build().map_err(|e| e.to_string())?;
    let mut sm = stub.run_state_machine(dbg).map_err(err)?;
    loop {
        sm = match sm {
            GdbStubStateMachine::Idle(mut g) => match g.borrow_conn().wait(&wake).map_err(io)? {
                Wake::Gdb => {
                    let byte = g.borrow_conn().read().map_err(io)?;
                    dbg.new_request();
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
                Some(reason) => {
                    for text in dbg.refusals.take_messages() {
                        g.borrow_conn().console(&text).map_err(io)?;
                    }
                    g.report_stop(dbg, reason).map_err(err)?
                }
                None => match g.borrow_conn().wait(&wake).map_err(io)? {
                    Wake::Gdb => {
                        let byte = g.borrow_conn().read().map_err(io)?;
                        dbg.new_request();
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
        assert_eq!(parse_address(":4446"), Ok("127.0.0.1:4446".parse().unwrap()), "gdb's own syntax");
        assert_eq!(parse_address("[::1]:99"), Ok("[::1]:99".parse().unwrap()));
        assert!(parse_address("abc").is_err());
        assert!(parse_address("99999").is_err());
    }

    #[test]
    fn a_panicking_session_is_a_failed_session_not_a_dead_thread() {
        assert_eq!(without_panics(|| SessionEnd::Detached), SessionEnd::Detached);
        let end = std::thread::spawn(|| without_panics(|| panic!("stub bug {}", 42))).join();
        assert_eq!(end.ok(), Some(SessionEnd::Failed("stub bug 42".into())));
    }
}
