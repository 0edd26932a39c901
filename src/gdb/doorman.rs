//! The door: one thread accepts every gdb that connects; one at a time gets in.
//!
//! While no session runs, a newcomer is handed to the stub (over a channel, with a write to the
//! stub's eventfd so its poll(2) wakes) and the door counts a session as running. While one runs,
//! a second client is turned away at once: its first packet (`qSupported`) gets an error reply
//! carrying text, then the door closes the connection. gdb 13 prints `warning: Remote failure
//! reply: E.minikvm: …` and `Remote connection closed` right away, instead of waiting for a
//! connection that never comes. When the session ends ([`Door::leave`]), the next gdb gets in
//! again: this is how `target remote` works after a `detach` or a lost connection.
//!
//! The thread sleeps in accept(2) and ends with the process.

use nix::sys::eventfd::EventFd;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// How long a newcomer may take to send its first packet. Generous: a gdb starting on a loaded
/// or emulated machine takes seconds, and without the answer it sits until its own timeout.
const FIRST_PACKET_WAIT: Duration = Duration::from_secs(10);
/// At most this many newcomers are being turned away at once (each on a short thread of its own,
/// so a slow one never holds the door); more are closed without an answer.
const MAX_REFUSING: usize = 4;
/// At most this much is read of a newcomer's first packet.
const MAX_FIRST_PACKET: usize = 4096;

/// Why a newcomer is turned away while a session runs.
const ATTACHED: &str = "another gdb is attached already (one at a time)";

/// The stub's side of the door.
pub struct Door {
    arrivals: mpsc::Receiver<TcpStream>,
    /// A session runs (set by the door as it hands a client over, cleared by [`Door::leave`]).
    inside: Arc<AtomicBool>,
}

impl Door {
    /// Starts the thread that accepts on `listener`; `wake` is written when a client is handed
    /// over. Fails only if the thread cannot start.
    pub fn open(listener: TcpListener, wake: Arc<EventFd>) -> std::io::Result<Door> {
        let (tx, arrivals) = mpsc::channel();
        let inside = Arc::new(AtomicBool::new(false));
        let guard = inside.clone();
        listener.set_nonblocking(false)?;
        std::thread::Builder::new().name("gdb-door".into()).spawn(move || {
            for stream in listener.incoming() {
                match stream {
                    Ok(s) => admit(s, &guard, &tx, &wake),
                    Err(e) => log::warn!("gdb: accept failed: {e}"),
                }
            }
        })?;
        Ok(Door { arrivals, inside })
    }

    /// The gdb that came in, if one did.
    pub fn arrival(&self) -> Option<TcpStream> {
        self.arrivals.try_recv().ok()
    }

    /// The session is over: the next gdb may come in.
    pub fn leave(&self) {
        self.inside.store(false, Ordering::Release);
    }
}

/// Lets `s` in if nobody is inside, else turns it away.
fn admit(s: TcpStream, inside: &AtomicBool, to_stub: &mpsc::Sender<TcpStream>, wake: &EventFd) {
    if inside.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).is_err() {
        refuse_aside(s, ATTACHED);
        return;
    }
    if to_stub.send(s).is_err() {
        return; // the stub is gone: the run is ending
    }
    if let Err(e) = wake.write(1) {
        log::warn!("gdb: cannot wake the stub for a new gdb: {e}");
    }
}

/// Turns `s` away on a thread of its own, so that the door stays open for the gdb that will come
/// after this session; bounded by [`MAX_REFUSING`] (beyond it, `s` is closed at once).
fn refuse_aside(s: TcpStream, why: &'static str) {
    static REFUSING: AtomicUsize = AtomicUsize::new(0);
    if REFUSING.fetch_add(1, Ordering::AcqRel) >= MAX_REFUSING {
        REFUSING.fetch_sub(1, Ordering::AcqRel);
        log::warn!("gdb: too many clients being turned away at once: closed one without an answer");
        return;
    }
    let spawned = std::thread::Builder::new().name("gdb-refuse".into()).spawn(move || {
        refuse(s, why);
        REFUSING.fetch_sub(1, Ordering::AcqRel);
    });
    if spawned.is_err() {
        REFUSING.fetch_sub(1, Ordering::AcqRel);
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

    /// The door lets one client in at a time: a second is answered with the reason and closed, and
    /// after the session ends the next one gets in (reconnect).
    #[test]
    fn one_client_at_a_time_and_the_next_after_leave() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let wake = Arc::new(EventFd::new().unwrap());
        let door = Door::open(listener, wake.clone()).unwrap();
        let arrive = || {
            use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
            use std::os::fd::AsFd;
            // The door writes the eventfd once it has handed a client over (at most 10 s here).
            let mut fds = [PollFd::new(wake.as_fd(), PollFlags::POLLIN)];
            assert_eq!(poll(&mut fds, PollTimeout::from(10_000u16)).unwrap(), 1, "no client handed over");
            wake.read().unwrap();
            door.arrival().expect("a client was handed over")
        };
        let first = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let inside = arrive();
        assert_eq!(inside.peer_addr().unwrap(), first.local_addr().unwrap());
        let mut second = TcpStream::connect(("127.0.0.1", port)).unwrap();
        second.write_all(b"$qSupported#37").unwrap();
        let mut answer = String::new();
        second.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        second.read_to_string(&mut answer).unwrap();
        assert_eq!(answer.as_bytes(), error_reply(ATTACHED), "turned away, with the reason");
        assert!(door.arrival().is_none());
        door.leave();
        let third = TcpStream::connect(("127.0.0.1", port)).unwrap();
        assert_eq!(arrive().peer_addr().unwrap(), third.local_addr().unwrap(), "the next gdb gets in");
    }

    #[test]
    fn an_error_reply_is_acked_and_checksummed() {
        assert_eq!(error_reply("x"), b"+$E.minikvm: x#40".to_vec());
        assert!(!packet_ended(b"+$qSupported:multiprocess+#"));
        assert!(packet_ended(b"+$qSupported:multiprocess+#c9"));
    }
}
