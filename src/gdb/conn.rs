//! The TCP connection to gdb, buffered both ways, and the one place the stub sleeps.
//!
//! gdbstub reads one byte at a time and writes one byte at a time; a plain `TcpStream` would make
//! a system call (and, with TCP_NODELAY, a network packet) per byte. [`GdbConn`] reads what is
//! there in one go and sends a reply when gdbstub flushes it.
//!
//! [`GdbConn::wait`] blocks in poll(2) on the socket and on the eventfd the vCPUs write after each
//! event: nothing spins while the guest runs.
//!
//! Two limits keep a client from holding minikvm: a packet longer than [`MAX_PACKET`] ends the
//! session as soon as its first byte too many arrives (so memory stays bounded), and a reply the
//! client does not take within [`WRITE_TIMEOUT`] ends it too — at once if the run is being stopped
//! meanwhile (a signal, Ctrl-A x), so that nothing waits for a client that does not read.

use crate::run_loop::VcpuControl;
use gdbstub::conn::{Connection, ConnectionExt};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::eventfd::EventFd;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The largest packet the stub takes, `$`, body, `#` and checksum included; announced to gdb as
/// `PacketSize` (gdb then never sends more, and reads memory in pieces of at most half of it).
pub const MAX_PACKET: usize = 16384;

/// How long a reply may wait for the client to take it before the session is given up.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// The kernel's send buffer for a client, in bytes (Linux doubles it for its own bookkeeping).
/// Bounded instead of autotuned (up to 4 MiB): a client that stops reading holds at most this
/// much of the host's memory, and its replies back up — and time out — after a few packets even
/// when the stub answers slowly (under a software CPU, 8 KiB replies every 15 ms would take
/// minutes to fill 4 MiB). Two of the largest replies fit, so a reading client never waits on it.
const SEND_BUFFER: usize = 64 * 1024;

/// How often a blocked reply looks whether the run is being stopped.
const STOP_CHECK: Duration = Duration::from_millis(100);

pub struct GdbConn {
    stream: TcpStream,
    inbox: Vec<u8>,
    next: usize,
    outbox: Vec<u8>,
    framing: Framing,
    /// The vCPUs' controls: a stop flag set on any of them means the run is ending.
    stops: Vec<Arc<VcpuControl>>,
}

/// Where the incoming byte stream is in gdb's framing (`$BODY#CS`), to measure packets as they
/// arrive, before gdbstub stores them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// Between packets: acks, Ctrl-C, noise.
    #[default]
    Between,
    /// Inside a packet, this many bytes long so far.
    Body(usize),
    /// After the `#`: this many checksum digits still to come.
    Checksum(usize, u8),
}

impl Framing {
    /// Takes one byte; returns the length of the packet it makes, if it exceeds `MAX_PACKET`.
    fn take(&mut self, byte: u8) -> Option<usize> {
        let (next, len) = match (*self, byte) {
            (Framing::Between, b'$') => (Framing::Body(1), 1),
            (Framing::Between, _) => (Framing::Between, 0),
            (Framing::Body(n), b'#') => (Framing::Checksum(n + 1, 2), n + 1),
            (Framing::Body(n), _) => (Framing::Body(n + 1), n + 1),
            (Framing::Checksum(n, 1), _) => (Framing::Between, n + 1),
            (Framing::Checksum(n, left), _) => (Framing::Checksum(n + 1, left - 1), n + 1),
        };
        *self = next;
        (len > MAX_PACKET).then_some(len)
    }
}

// ----- the errors with which minikvm ends a session -----

fn too_large() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("gdb sent a packet larger than {MAX_PACKET} bytes, the PacketSize minikvm announced"),
    )
}

fn run_stopping() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, "the run is stopping and gdb does not take its reply")
}

fn not_reading() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("gdb did not take a reply for {} s", WRITE_TIMEOUT.as_secs()),
    )
}

/// What woke [`GdbConn::wait`].
pub enum Wake {
    /// gdb sent something (at least one byte is ready for [`ConnectionExt::read`]).
    Gdb,
    /// A vCPU reported an event.
    Vcpu,
}

impl GdbConn {
    /// A connection on `stream`; `stops` are the vCPUs' controls: a stop flag set on any of them means
    /// the run is ending, and a blocked reply is then given up.
    pub fn new(stream: TcpStream, stops: Vec<Arc<VcpuControl>>) -> Self {
        GdbConn { stream, inbox: Vec::new(), next: 0, outbox: Vec::new(), framing: Framing::default(), stops }
    }

    /// True once the controller stops the run: it sets every running vCPU's stop flag.
    fn stopping(&self) -> bool {
        self.stops.iter().any(|c| c.stop.load(Ordering::Acquire))
    }

    /// Sends the reply gdbstub has put together, giving up after [`WRITE_TIMEOUT`] in all, or as
    /// soon as the run is being stopped. The socket's own send timeout wakes a write(2) that makes
    /// no progress every [`STOP_CHECK`] to look.
    fn send_outbox(&mut self) -> std::io::Result<()> {
        let out = std::mem::take(&mut self.outbox);
        let deadline = Instant::now() + WRITE_TIMEOUT;
        let mut sent = 0;
        while sent < out.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(not_reading());
            }
            self.stream.set_write_timeout(Some(left.min(STOP_CHECK)))?;
            match Write::write(&mut self.stream, &out[sent..]) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => sent += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    if self.stopping() {
                        return Err(run_stopping());
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Shows `text` on gdb's screen: an `O` packet, which gdb prints while it waits for a stop.
    pub fn console(&mut self, text: &str) -> std::io::Result<()> {
        self.outbox.extend_from_slice(&super::refusals::console_packet(text));
        self.send_outbox()
    }

    fn buffered(&self) -> bool {
        self.next < self.inbox.len()
    }

    /// Sleeps until gdb sends something or a vCPU reports (the eventfd is read, i.e. reset).
    /// A closed or broken connection counts as "gdb sent something": the read that follows fails.
    pub fn wait(&mut self, wake: &EventFd) -> std::io::Result<Wake> {
        if self.buffered() {
            return Ok(Wake::Gdb);
        }
        loop {
            let mut fds =
                [PollFd::new(wake.as_fd(), PollFlags::POLLIN), PollFd::new(self.stream.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
            let ready = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
            if ready(&fds[0]) {
                wake.read()?;
                return Ok(Wake::Vcpu);
            }
            if ready(&fds[1]) {
                return Ok(Wake::Gdb);
            }
        }
    }

    fn fill(&mut self) -> std::io::Result<()> {
        self.inbox.resize(4096, 0);
        self.next = 0;
        let n = loop {
            match Read::read(&mut self.stream, &mut self.inbox) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.inbox.clear();
                    return Err(e);
                }
            }
        };
        self.inbox.truncate(n);
        if n == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "gdb closed the connection"));
        }
        Ok(())
    }
}

impl Connection for GdbConn {
    type Error = std::io::Error;

    fn write(&mut self, byte: u8) -> Result<(), Self::Error> {
        self.outbox.push(byte);
        Ok(())
    }

    fn write_all(&mut self, buf: &[u8]) -> Result<(), Self::Error> {
        self.outbox.extend_from_slice(buf);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        self.send_outbox()
    }

    fn on_session_start(&mut self) -> Result<(), Self::Error> {
        nix::sys::socket::setsockopt(&self.stream, nix::sys::socket::sockopt::SndBuf, &SEND_BUFFER)?;
        self.stream.set_nodelay(true)
    }
}

impl ConnectionExt for GdbConn {
    fn read(&mut self) -> Result<u8, Self::Error> {
        // Anything gdbstub wrote before it waits for an answer must be on its way first.
        if !self.outbox.is_empty() {
            self.flush()?;
        }
        if !self.buffered() {
            self.fill()?;
        }
        let b = self.inbox.get(self.next).copied();
        self.next += 1;
        let b = b.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "gdb closed the connection"))?;
        match self.framing.take(b) {
            Some(_) => Err(too_large()),
            None => Ok(b),
        }
    }

    fn peek(&mut self) -> Result<Option<u8>, Self::Error> {
        Ok(self.inbox.get(self.next).copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn longest(bytes: &[u8]) -> Option<usize> {
        let mut f = Framing::default();
        bytes.iter().find_map(|&b| f.take(b))
    }

    #[test]
    fn a_packet_of_the_maximum_size_passes_and_one_byte_more_does_not() {
        let mut p = vec![b'$'];
        p.resize(MAX_PACKET - 3, b'a');
        p.extend_from_slice(b"#00");
        assert_eq!(p.len(), MAX_PACKET);
        assert_eq!(longest(&p), None);
        // Twice in a row, with acks and a Ctrl-C between: each packet is measured on its own.
        let mut two = p.clone();
        two.extend_from_slice(b"+\x03-");
        two.extend_from_slice(&p);
        assert_eq!(longest(&two), None);
        p.insert(1, b'a');
        assert_eq!(longest(&p), Some(MAX_PACKET + 1));
    }

    #[test]
    fn a_packet_without_an_end_is_stopped_at_the_limit() {
        let mut p = vec![b'$'];
        p.resize(10 * MAX_PACKET, b'x');
        assert_eq!(longest(&p), Some(MAX_PACKET + 1));
    }

    #[test]
    fn checksum_digits_are_not_the_start_of_a_packet() {
        // `$` as a (bad) checksum digit must not start a new packet.
        assert_eq!(Framing::Checksum(5, 1).take(b'$').map(|_| ()), None);
        let mut f = Framing::default();
        for &b in b"$ab#$$" {
            f.take(b);
        }
        assert_eq!(f, Framing::Between);
    }
}
