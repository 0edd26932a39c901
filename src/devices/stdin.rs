//! Console input: a thread that reads stdin into the console's queue, and raw terminal mode.
//!
//! When stdin is a terminal it is put in raw mode, so every key (Ctrl-C too) reaches the guest;
//! Ctrl-A then `x` quits, Ctrl-A twice sends one Ctrl-A. The saved terminal state is restored on
//! every way out: normal end, error, signal and panic (a panic hook calls [`restore_terminal`]).

use super::console::{lock, Console};
use nix::sys::termios::{self, SetArg, Termios};
use std::io::{IsTerminal, Read};
use std::sync::{mpsc, Arc, Mutex};

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

/// What the input thread tells the controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputEvent {
    /// The user pressed the escape sequence to quit.
    Quit,
    /// stdin reached end of file (or failed).
    Eof,
}

/// Starts the thread that feeds stdin to the console. `escapes` enables Ctrl-A handling.
pub fn spawn_reader<T: From<InputEvent> + Send + 'static>(
    console: Arc<Console>,
    escapes: bool,
    events: mpsc::Sender<T>,
) -> std::io::Result<()> {
    std::thread::Builder::new().name("stdin".into()).spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = [0u8; 256];
        let mut escape_pending = false;
        loop {
            let n = match stdin.read(&mut buf) {
                Ok(0) | Err(_) => {
                    console.set_eof();
                    let _ = events.send(InputEvent::Eof.into());
                    return;
                }
                Ok(n) => n,
            };
            if !escapes {
                console.push_input(&buf[..n]);
                continue;
            }
            let mut data = Vec::with_capacity(n);
            for &b in &buf[..n] {
                match (escape_pending, b) {
                    (false, ESCAPE) => escape_pending = true,
                    (true, b'x') | (true, b'X') => {
                        let _ = events.send(InputEvent::Quit.into());
                        return;
                    }
                    (true, _) => {
                        escape_pending = false;
                        data.push(b); // Ctrl-A Ctrl-A sends one Ctrl-A; Ctrl-A other sends other
                    }
                    (false, _) => data.push(b),
                }
            }
            console.push_input(&data);
        }
    })?;
    Ok(())
}
