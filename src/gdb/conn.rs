//! The TCP connection to gdb, buffered both ways, and the one place the stub sleeps.
//!
//! gdbstub reads one byte at a time and writes one byte at a time; a plain `TcpStream` would make
//! a system call (and, with TCP_NODELAY, a network packet) per byte. [`GdbConn`] reads what is
//! there in one go and sends a reply when gdbstub flushes it.
//!
//! [`GdbConn::wait`] blocks in poll(2) on the socket and on the eventfd the vCPUs write after each
//! event: nothing spins while the guest runs.

use gdbstub::conn::{Connection, ConnectionExt};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::eventfd::EventFd;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsFd;

pub struct GdbConn {
    stream: TcpStream,
    inbox: Vec<u8>,
    next: usize,
    outbox: Vec<u8>,
}

/// What woke [`GdbConn::wait`].
pub enum Wake {
    /// gdb sent something (at least one byte is ready for [`ConnectionExt::read`]).
    Gdb,
    /// A vCPU reported an event.
    Vcpu,
}

impl GdbConn {
    pub fn new(stream: TcpStream) -> Self {
        GdbConn { stream, inbox: Vec::new(), next: 0, outbox: Vec::new() }
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
        let out = std::mem::take(&mut self.outbox);
        Write::write_all(&mut self.stream, &out)?;
        Write::flush(&mut self.stream)
    }

    fn on_session_start(&mut self) -> Result<(), Self::Error> {
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
        b.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "gdb closed the connection"))
    }

    fn peek(&mut self) -> Result<Option<u8>, Self::Error> {
        Ok(self.inbox.get(self.next).copied())
    }
}
