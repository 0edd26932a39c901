//! The built-in GDB stub: `minikvm --gdb [ADDR:]PORT GUEST…`.
//!
//! minikvm builds the VM as usual, listens on ADDR:PORT (127.0.0.1 unless given) and waits for
//! one gdb to connect; the vCPUs stay at their first instruction until it does. Each vCPU is a
//! gdb thread (vCPU *i* = thread *i* + 1).
//!
//! # How the pieces talk (one way)
//! ```text
//! gdb ──TCP── GdbConn ── gdbstub ── Debugger ── Vcpus (vcpus.rs) ──DebugRequest──▶ vCPU threads
//!                 ▲ poll(2): socket + eventfd                      ◀──DebugEvent──┘ (+ eventfd write)
//! ```
//! The stub never calls KVM; a paused vCPU answers its requests (registers, memory, resume with
//! single-step / debug registers), a running one reports when it stops. [`debugger`] holds what
//! the stub knows, [`stops`] is its stop/resume state machine, [`target`] answers gdb's packets
//! (one file per gdbstub extension), [`session`] runs one connection. Nothing polls in a loop:
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
//! * `detach` or `quit` in gdb: breakpoints and watchpoints are removed and the guest runs on,
//!   freely, as without gdb; the stub listens again, and the next `target remote` pauses every
//!   vCPU where it is and starts a new session ([`doorman`]).
//! * a connection that breaks (gdb killed, network gone) or a protocol error: like `detach` —
//!   the guest runs on and the stub listens again. (It does not wait paused for a gdb that may
//!   never come back: a run that waits forever is worse than a stop that was missed.)
//! * `kill`: the run stops, minikvm exits with status 6 ("stopped").
//! * every vCPU ended: gdb is told the exit code minikvm will return.
//! * a second gdb while one is attached is turned away at once with a reason it prints.
//!
//! # What a client cannot do to minikvm
//! Anyone who reaches the port owns the guest (its memory and registers), so minikvm listens on
//! 127.0.0.1 unless told otherwise, and warns when it is. What a client can never do is take
//! minikvm itself down: a packet over [`conn::MAX_PACKET`] bytes or a reply left unread for
//! [`conn::WRITE_TIMEOUT`] ends the session (the guest runs on, as after a detach), a memory read
//! over [`debugger::MAX_READ`] bytes gets an error reply, and breakpoint counts are capped; no write
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
pub mod debugger;
pub mod doorman;
pub mod error;
pub mod layout;
pub mod monitor;
pub mod refusals;
pub mod regs;
pub mod regs64;
pub mod session;
pub mod stops;
pub mod target;
pub mod tdesc64;
pub mod tdesc_types;
pub mod vcpus;

#[cfg(test)]
mod fake_vcpus;

pub use debugger::Caps;
pub use session::SessionEnd;
pub use vcpus::VcpuHandle;

use crate::error::{Error, Result};
use debugger::Debugger;
use doorman::Door;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::eventfd::EventFd;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::AsFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Arc};
use vcpus::VcpuThreads;

/// A `--gdb` address that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("--gdb `{0}`: expected PORT or ADDR:PORT, e.g. --gdb 1234, --gdb :1234 or --gdb 0.0.0.0:1234")]
    Malformed(String),
    /// The host name could not be looked up (the resolver's words).
    #[error("--gdb `{spec}`: {why}")]
    Lookup { spec: String, why: String },
}

/// `PORT`, `:PORT` or `ADDR:PORT` (ADDR defaults to 127.0.0.1; a host name is looked up).
pub fn parse_address(s: &str) -> std::result::Result<SocketAddr, AddressError> {
    // `PORT`, or `:PORT` as gdb's own `target remote :PORT` writes it.
    if let Ok(port) = s.strip_prefix(':').unwrap_or(s).parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    if !s.contains(':') {
        return Err(AddressError::Malformed(s.into()));
    }
    let lookup = |e: std::io::Error| AddressError::Lookup { spec: s.into(), why: e.to_string() };
    s.to_socket_addrs().map_err(lookup)?.next().ok_or_else(|| AddressError::Malformed(s.into()))
}

/// Listens for gdb on `PORT` or `ADDR:PORT` (nothing is accepted before [`Stub::serve`]). An
/// address that cannot be listened on (a port in use, an address not on this host) is the
/// user's to change: a usage error, not a host failure.
pub fn listen(spec: &str) -> Result<TcpListener> {
    let addr = parse_address(spec).map_err(|e| Error::usage(e.to_string()))?;
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

/// What the stub tells the run between sessions (the controller stops counting `--timeout` and
/// input waits while a gdb is attached).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attachment {
    /// A gdb connected: every vCPU is paused at its prompt.
    Attached,
    /// That session ended and the guest runs on; the stub listens again.
    Detached(SessionEnd),
}

/// Everything the stub thread needs.
pub struct Stub {
    pub listener: TcpListener,
    pub vcpus: Vec<VcpuHandle>,
    pub events: mpsc::Receiver<(usize, crate::run_loop::DebugEvent)>,
    pub wake: Arc<EventFd>,
    pub ram: Arc<crate::kvm::memory::GuestRam>,
    pub caps: Caps,
    pub elf_path: Option<String>,
}

impl Stub {
    /// Serves one gdb after another until the run is over: after a detach or a lost connection
    /// the guest runs on and the next gdb may attach. `news` hears of each attach and detach.
    /// Returns how the last session ended (or [`SessionEnd::NeverConnected`]). Never panics: a
    /// panic inside is a minikvm bug, returned as [`SessionEnd::Failed`] so that the run ends
    /// instead of waiting for a stub that is gone.
    pub fn serve(self, news: impl Fn(Attachment)) -> SessionEnd {
        without_panics(|| self.sessions(&news))
    }

    fn sessions(self, news: &dyn Fn(Attachment)) -> SessionEnd {
        let Stub { listener, vcpus, events, wake, ram, caps, elf_path } = self;
        let threads = VcpuThreads::new(vcpus, events, ram);
        let controls = threads.controls();
        let door = match Door::open(listener, wake.clone()) {
            Ok(door) => door,
            Err(e) => return SessionEnd::Failed(format!("cannot open the gdb port to clients: {e}")),
        };
        let mut dbg = Debugger::new(Box::new(threads), caps, elf_path);
        let mut last = SessionEnd::NeverConnected;
        loop {
            let first = last == SessionEnd::NeverConnected;
            let Some(stream) = wait_for_gdb(&door, &wake, &mut dbg, first) else {
                return if first { last } else { SessionEnd::RunOver };
            };
            news(Attachment::Attached);
            last = session::run(&mut dbg, stream, &controls, &wake);
            door.leave();
            session::say_how_it_ended(&last);
            match last {
                SessionEnd::Detached | SessionEnd::Lost(_) => news(Attachment::Detached(last.clone())),
                _ => return last,
            }
        }
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

/// Waits until the door lets a gdb in; gives up (None) if every vCPU ends first. Meanwhile the
/// vCPUs' events are taken in: before the `first` session they wait at their first instruction,
/// later the guest runs on (and may end).
fn wait_for_gdb(door: &Door, wake: &EventFd, dbg: &mut Debugger, first: bool) -> Option<TcpStream> {
    loop {
        dbg.note_events();
        if !first {
            // A vCPU that was slow to pause at the end of the last session pauses now: it runs on.
            dbg.release_paused(vcpus::Release::Detach);
        }
        if dbg.all_ended() {
            return None;
        }
        if let Some(stream) = door.arrival() {
            return Some(stream);
        }
        let mut fds = [PollFd::new(wake.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {
                let _ = wake.read();
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => {
                note!("minikvm: gdb: waiting for a connection failed: {e}");
                return None;
            }
        }
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
        assert_eq!(
            parse_address("abc").unwrap_err().to_string(),
            "--gdb `abc`: expected PORT or ADDR:PORT, e.g. --gdb 1234, --gdb :1234 or --gdb 0.0.0.0:1234"
        );
    }

    #[test]
    fn a_panicking_session_is_a_failed_session_not_a_dead_thread() {
        assert_eq!(without_panics(|| SessionEnd::Detached), SessionEnd::Detached);
        let end = std::thread::spawn(|| without_panics(|| panic!("stub bug {}", 42))).join();
        assert_eq!(end.ok(), Some(SessionEnd::Failed("stub bug 42".into())));
    }
}
