//! Telling gdb *why*: refusals and faults in words on gdb's own screen.
//!
//! gdb 13 shows no text from an error reply to a breakpoint packet (`Z0`–`Z4`): a refused
//! `rwatch` becomes "Could not insert hardware watchpoint … too many" at `continue`, a refused
//! `break` becomes "Cannot access memory at address …". The one place gdb prints what a stub says
//! while it waits is an `O` (console output) packet before a stop reply. So minikvm:
//! * **accepts** a breakpoint or watchpoint it cannot honour, remembering why ([`Refusals`]);
//! * at the next `continue`/`stepi` runs nothing: it sends the reasons as `O` packets and reports
//!   a stop (SIGTRAP) at once, and again at every resume until the user deletes the breakpoint;
//! * sends a guest fault's reason as an `O` packet before the stop that shows where.

/// Which gdb request a refusal answers (the `Z` packet's type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    Break,
    HBreak,
    Watch,
    RWatch,
    AWatch,
}

impl Request {
    fn command(self) -> &'static str {
        match self {
            Request::Break => "break",
            Request::HBreak => "hbreak",
            Request::Watch => "watch",
            Request::RWatch => "rwatch",
            Request::AWatch => "awatch",
        }
    }
}

/// At most this many refusals are remembered; beyond, the request is refused the plain way.
pub const MAX_REFUSALS: usize = 16;
/// At most this many console messages wait for the next stop.
pub const MAX_MESSAGES: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Refusal {
    request: Request,
    addr: u64,
    len: u64,
    why: String,
}

/// Breakpoints accepted but not honoured, and messages waiting for gdb's screen.
#[derive(Debug, Default)]
pub struct Refusals {
    refused: Vec<Refusal>,
    messages: Vec<String>,
}

impl Refusals {
    /// Remembers a refused request; false when too many are remembered already.
    pub fn refuse(&mut self, request: Request, addr: u64, len: u64, why: String) -> bool {
        let r = Refusal { request, addr, len, why };
        if self.refused.contains(&r) {
            return true;
        }
        if self.refused.len() >= MAX_REFUSALS {
            return false;
        }
        self.refused.push(r);
        true
    }

    /// gdb removed a breakpoint: true if it was one of the refused.
    pub fn remove(&mut self, request: Request, addr: u64, len: u64) -> bool {
        let before = self.refused.len();
        self.refused.retain(|r| !(r.request == request && r.addr == addr && r.len == len));
        self.refused.len() != before
    }

    /// At a resume: queues a message per refusal; true if there was any (nothing may run).
    pub fn explain_at_resume(&mut self) -> bool {
        let lines: Vec<String> = self
            .refused
            .iter()
            .map(|r| {
                format!(
                    "minikvm: cannot honour `{} *{:#x}`: {}; delete it (`info breakpoints`, `delete N`) to go on\n",
                    r.request.command(),
                    r.addr,
                    r.why
                )
            })
            .collect();
        for l in lines {
            self.say(l);
        }
        !self.refused.is_empty()
    }

    /// Queues a line for gdb's screen (shown before the next stop).
    pub fn say(&mut self, line: String) {
        if self.messages.len() >= MAX_MESSAGES {
            self.messages.remove(0);
        }
        self.messages.push(line);
    }

    /// The messages to send now, oldest first.
    pub fn take_messages(&mut self) -> Vec<String> {
        std::mem::take(&mut self.messages)
    }

    /// The end of a session: nothing is remembered.
    pub fn clear(&mut self) {
        self.refused.clear();
        self.messages.clear();
    }
}

/// An `O` packet carrying `text` (hex-encoded), framed with its checksum.
pub fn console_packet(text: &str) -> Vec<u8> {
    let mut body = String::from("O");
    for b in text.bytes() {
        body += &format!("{b:02x}");
    }
    let sum = body.bytes().fold(0u8, |s, b| s.wrapping_add(b));
    format!("${body}#{sum:02x}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_explained_at_every_resume_until_removed() {
        let mut r = Refusals::default();
        assert!(r.refuse(Request::RWatch, 0x2c, 1, "no data breakpoints".into()));
        assert!(r.explain_at_resume());
        let m = r.take_messages();
        assert_eq!(m.len(), 1);
        assert!(m[0].contains("`rwatch *0x2c`: no data breakpoints"), "{m:?}");
        assert!(r.explain_at_resume());
        assert!(r.remove(Request::RWatch, 0x2c, 1));
        r.take_messages();
        assert!(!r.explain_at_resume());
        assert!(r.take_messages().is_empty());
    }

    #[test]
    fn refusals_and_messages_are_bounded() {
        let mut r = Refusals::default();
        for a in 0..MAX_REFUSALS as u64 {
            assert!(r.refuse(Request::Break, a, 1, "x".into()));
        }
        assert!(!r.refuse(Request::Break, 999, 1, "x".into()));
        for _ in 0..100 {
            r.say("m".into());
        }
        assert_eq!(r.take_messages().len(), MAX_MESSAGES);
    }

    #[test]
    fn console_packets_are_hex_with_a_checksum() {
        assert_eq!(console_packet("OK\n"), b"$O4f4b0a#10".to_vec());
    }
}
