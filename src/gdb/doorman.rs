//! One gdb at a time: a second client is turned away at once, with a reason gdb prints.
//!
//! While a session runs (and after it ended) the listening socket stays open, served by a
//! thread of its own that answers every newcomer's first packet (`qSupported`) with an error
//! reply carrying text, then closes: gdb 13 prints `warning: Remote failure reply: E.minikvm: …`
//! and `Remote connection closed` right away, instead of waiting for a connection that never
//! comes. The thread sleeps in accept(2) and ends with the process.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long a newcomer may take to send its first packet.
const FIRST_PACKET_WAIT: Duration = Duration::from_secs(2);
/// At most this much is read of a newcomer's first packet.
const MAX_FIRST_PACKET: usize = 4096;

/// Why a newcomer is turned away while the session runs, and after it ended.
const ATTACHED: &str = "another gdb is attached already (one at a time)";
const OVER: &str = "the gdb session of this run has ended (minikvm takes one per run)";

/// Turns away every client that connects to `listener` from now on; `over` tells whether the
/// session has ended, which changes the reason given.
pub fn turn_away(listener: TcpListener, over: Arc<AtomicBool>) {
    let spawned = std::thread::Builder::new().name("gdb-doorman".into()).spawn(move || {
        if let Err(e) = listener.set_nonblocking(false) {
            log::warn!("gdb: {e}");
            return;
        }
        for stream in listener.incoming() {
            match stream {
                Ok(s) => refuse(s, if over.load(Ordering::Acquire) { OVER } else { ATTACHED }),
                Err(e) => log::warn!("gdb: accept failed: {e}"),
            }
        }
    });
    if let Err(e) = spawned {
        log::warn!("gdb: cannot start the thread that turns away a second gdb: {e}");
    }
}

/// Waits (bounded) for the end of the first packet, then answers it with `E.why` and closes.
fn refuse(mut s: TcpStream, why: &str) {
    if let Ok(peer) = s.peer_addr() {
        note!("minikvm: turned away a second gdb from {peer}: {why}");
    }
    let _ = s.set_read_timeout(Some(FIRST_PACKET_WAIT));
    let _ = s.set_write_timeout(Some(FIRST_PACKET_WAIT));
    let mut seen = Vec::new();
    let mut buf = [0u8; 512];
    while !packet_ended(&seen) && seen.len() < MAX_FIRST_PACKET {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    let _ = s.write_all(&error_reply(why));
}

/// True once `seen` holds a `$…#xx` packet.
fn packet_ended(seen: &[u8]) -> bool {
    seen.iter().position(|&b| b == b'#').is_some_and(|i| seen.len() >= i + 3)
}

/// `+` (the ack gdb waits for) and an `E.text` error reply.
fn error_reply(text: &str) -> Vec<u8> {
    let body = format!("E.minikvm: {text}");
    let sum = body.bytes().fold(0u8, |s, b| s.wrapping_add(b));
    format!("+${body}#{sum:02x}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_reply_is_acked_and_checksummed() {
        assert_eq!(error_reply("x"), b"+$E.minikvm: x#40".to_vec());
        assert!(!packet_ended(b"+$qSupported:multiprocess+#"));
        assert!(packet_ended(b"+$qSupported:multiprocess+#c9"));
    }
}
