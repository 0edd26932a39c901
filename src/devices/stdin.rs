//! Console input: a thread that reads stdin into the console's queue, and raw terminal mode.
//!
//! When stdin is a terminal it is put in raw mode, so every key (Ctrl-C too) reaches the guest;
//! Ctrl-A then `x` quits, Ctrl-A twice sends one Ctrl-A. The saved terminal state is restored on
//! every way out: normal end, error, signal and panic (a panic hook calls [`restore_terminal`]).

use super::console::{lock, Console};
use nix::sys::termios::{self, SetArg, Termios};
use std::io::IsTerminal;
use std::sync::Mutex;

/// The escape key: Ctrl-A, as in QEMU.
pub const ESCAPE: u8 = 0x01;

static SAVED: Mutex<Option<Termios>> = Mutex::new(None);

/// Puts stdin in raw mode if it is a terminal; the returned guard restores it.
pub struct RawTerminal;

impl RawTerminal {
    pub fn enter() -> Option<RawTerminal> {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return None;
        }
        let saved = termios::tcgetattr(&stdin).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        // Keep output processing so "\n" from a guest still starts a new line.
        raw.output_flags = saved.output_flags;
        *lock(&SAVED) = Some(saved);
        let prev_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore_terminal();
            prev_hook(info);
        }));
        if termios::tcsetattr(&stdin, SetArg::TCSANOW, &raw).is_err() {
            return None;
        }
        Some(RawTerminal)
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        restore_terminal();
    }
}

/// Restores the terminal to how minikvm found it (idempotent).
pub fn restore_terminal() {
    if let Some(saved) = lock(&SAVED).take() {
        let _ = termios::tcsetattr(std::io::stdin(), SetArg::TCSANOW, &saved);
    }
}

/// What reading stdin tells the controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputEvent {
    /// The user pressed the escape sequence to quit.
    Quit,
    /// stdin reached end of file (or failed).
    Eof,
}

/// Reads stdin into the console, one `read` at a time, when the controller's poll says it is
/// readable. With `escapes` (a terminal), Ctrl-A x quits and Ctrl-A Ctrl-A sends one Ctrl-A.
pub struct StdinReader {
    escapes: bool,
    escape_pending: bool,
}

impl StdinReader {
    pub fn new(escapes: bool) -> Self {
        StdinReader { escapes, escape_pending: false }
    }

    /// Reads what is waiting and hands it to the console.
    pub fn read_once(&mut self, console: &Console) -> Option<InputEvent> {
        let mut buf = [0u8; 256];
        // A plain read(2) on fd 0, not std's buffered Stdin: poll(2) must see every byte not taken.
        let n = match nix::unistd::read(std::io::stdin(), &mut buf) {
            Ok(0) | Err(_) => {
                console.set_eof();
                return Some(InputEvent::Eof);
            }
            Ok(n) => n,
        };
        if !self.escapes {
            console.push_input(&buf[..n]);
            return None;
        }
        let mut data = Vec::with_capacity(n);
        for &b in &buf[..n] {
            match (self.escape_pending, b) {
                (false, ESCAPE) => self.escape_pending = true,
                (true, b'x') | (true, b'X') => {
                    console.push_input(&data);
                    return Some(InputEvent::Quit);
                }
                (true, _) => {
                    self.escape_pending = false;
                    data.push(b); // Ctrl-A Ctrl-A sends one Ctrl-A; Ctrl-A other sends other
                }
                (false, _) => data.push(b),
            }
        }
        console.push_input(&data);
        None
    }
}
