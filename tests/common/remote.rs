//! gdb's remote serial protocol spoken directly over TCP, for tests that do what a real gdb never
//! would: oversized packets, a client that stops reading, wild lengths, disconnects mid-packet.
//!
//! A packet is `$BODY#CS`, CS being the sum of BODY's bytes modulo 256 in two hex digits; each side
//! acknowledges a packet it received with `+` (until `QStartNoAckMode`).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// `$BODY#CS`.
pub fn packet(body: &[u8]) -> Vec<u8> {
    let sum = body.iter().fold(0u8, |s, b| s.wrapping_add(*b));
    let mut p = Vec::with_capacity(body.len() + 4);
    p.push(b'$');
    p.extend_from_slice(body);
    p.extend_from_slice(format!("#{sum:02x}").as_bytes());
    p
}

/// One connection to minikvm's stub.
pub struct Remote {
    pub stream: TcpStream,
    inbox: Vec<u8>,
}

impl Remote {
    /// Connects to the stub on 127.0.0.1:`port`; a reply that takes longer than `patience` is an
    /// error (never a hang of the test).
    pub fn connect(port: u16, patience: Duration) -> std::io::Result<Remote> {
        Remote::over(TcpStream::connect(("127.0.0.1", port))?, patience)
    }

    /// The same, with a 4 KiB receive buffer: a test that stops reading then fills the path from
    /// the stub after a few replies, instead of after megabytes of them (which take long on a slow,
    /// emulated host such as the nested lane's).
    pub fn connect_with_small_window(port: u16, patience: Duration) -> std::io::Result<Remote> {
        use nix::sys::socket::{connect, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn};
        use std::os::fd::AsRawFd;
        let fd = socket(AddressFamily::Inet, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
        // Before connect, so that the window the stub sees is small from the first byte.
        setsockopt(&fd, sockopt::RcvBuf, &4096)?;
        connect(fd.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 1, port))?;
        Remote::over(TcpStream::from(fd), patience)
    }

    fn over(stream: TcpStream, patience: Duration) -> std::io::Result<Remote> {
        stream.set_read_timeout(Some(patience))?;
        stream.set_write_timeout(Some(patience))?;
        stream.set_nodelay(true)?;
        Ok(Remote { stream, inbox: Vec::new() })
    }

    /// Sends `$BODY#CS`.
    pub fn send(&mut self, body: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(&packet(body))
    }

    /// Sends bytes as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// The body of the next packet the stub sends (acks before it are skipped; it is acked).
    pub fn reply(&mut self) -> std::io::Result<Vec<u8>> {
        loop {
            if let Some(start) = self.inbox.iter().position(|&b| b == b'$') {
                if let Some(hash) = self.inbox[start..].iter().position(|&b| b == b'#') {
                    let end = start + hash;
                    if self.inbox.len() >= end + 3 {
                        let body = expand_runs(&self.inbox[start + 1..end]);
                        self.inbox.drain(..end + 3);
                        self.stream.write_all(b"+")?;
                        return Ok(body);
                    }
                }
            }
            let mut buf = [0u8; 65536];
            let n = self.stream.read(&mut buf)?;
            if n == 0 {
                return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the stub closed the connection"));
            }
            self.inbox.extend_from_slice(&buf[..n]);
        }
    }

    /// Sends a packet and returns the body of the reply.
    pub fn ask(&mut self, body: &[u8]) -> std::io::Result<Vec<u8>> {
        self.send(body)?;
        self.reply()
    }

    /// Reads until the stub closes the connection (or `patience` passes: then an error).
    pub fn read_to_close(&mut self) -> std::io::Result<Vec<u8>> {
        let mut rest = std::mem::take(&mut self.inbox);
        self.stream.read_to_end(&mut rest)?;
        Ok(rest)
    }
}

/// Undoes the protocol's run-length encoding: `X*N` is X and then N - 29 more of it.
pub fn expand_runs(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        match (body[i], out.last().copied(), body.get(i + 1)) {
            (b'*', Some(last), Some(&n)) if n >= 29 => {
                out.extend(std::iter::repeat_n(last, usize::from(n - 29)));
                i += 2;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// The `PacketSize` a `qSupported` reply announces (hex in the protocol).
pub fn packet_size(supported: &[u8]) -> Option<usize> {
    let text = String::from_utf8_lossy(supported);
    let v = text.split(';').find_map(|f| f.strip_prefix("PacketSize="))?;
    usize::from_str_radix(v, 16).ok()
}
