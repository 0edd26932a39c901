//! The console: where guest bytes go (stdout, coloured per vCPU) and where input comes from
//! (stdin, through a reader thread, into one queue that both GETCHAR and the UART drain).
//!
//! One lock guards the input queue together with the UART registers, so "data ready", the RBR
//! read and the IRQ4 level always agree. Output has its own lock, held for each byte, so bytes
//! from several vCPUs never garble each other.

use super::serial::Serial;
use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

/// ANSI colours per vCPU: cyan, yellow, magenta, green.
pub const VCPU_COLORS: [&str; 4] = ["\x1b[36m", "\x1b[33m", "\x1b[35m", "\x1b[32m"];
pub const COLOR_RESET: &str = "\x1b[0m";

/// Called with the new level of IRQ4 whenever it changes.
pub type IrqLine = Box<dyn Fn(bool) + Send + Sync>;

/// Input queue + UART state, under one lock.
pub struct InputState {
    pub queue: VecDeque<u8>,
    pub serial: Serial,
    /// stdin reached end of file.
    pub eof: bool,
    /// The run is ending: blocked readers give up.
    closing: bool,
    irq_level: bool,
}

struct OutputState {
    sink: Box<dyn Write + Send>,
    color: bool,
    current: Option<usize>,
    last_output: Instant,
}

pub struct Console {
    input: Mutex<InputState>,
    /// The guest looked for input and found none since it last printed.
    starved: AtomicBool,
    /// stdin has ended (a copy of `InputState::eof` that needs no lock).
    ended: AtomicBool,
    /// Called when, after stdin ended, the guest starts waiting for input (the controller then
    /// times its `--eof-grace`).
    starve_hook: Mutex<Option<Box<dyn Fn() + Send + Sync>>>,
    /// Signalled when input arrives, stdin ends, or the run is ending.
    input_changed: Condvar,
    /// GETCHAR waits for input instead of answering 0xFF at once (stdin is a pipe or file).
    blocking_getchar: bool,
    output: Mutex<OutputState>,
    irq: Mutex<Option<IrqLine>>,
}

impl Console {
    /// A console writing guest output to `sink`. With `blocking_getchar`, GETCHAR waits until a
    /// byte arrives or stdin ends, so piped input is never missed because it came late.
    pub fn new(sink: Box<dyn Write + Send>, color: bool, blocking_getchar: bool) -> Arc<Self> {
        Arc::new(Console {
            input: Mutex::new(InputState {
                queue: VecDeque::new(),
                serial: Serial::default(),
                eof: false,
                closing: false,
                irq_level: false,
            }),
            starved: AtomicBool::new(false),
            ended: AtomicBool::new(false),
            starve_hook: Mutex::new(None),
            input_changed: Condvar::new(),
            blocking_getchar,
            output: Mutex::new(OutputState { sink, color, current: None, last_output: Instant::now() }),
            irq: Mutex::new(None),
        })
    }

    /// Connects the UART's interrupt to a line (only kernels have an interrupt controller).
    pub fn connect_irq(&self, line: IrqLine) {
        *lock(&self.irq) = Some(line);
    }

    /// Runs `f` on the input state and then brings IRQ4 up to date.
    pub fn with_input<R>(&self, f: impl FnOnce(&mut InputState) -> R) -> R {
        let mut st = lock(&self.input);
        let r = f(&mut st);
        let level = st.serial.irq_level(!st.queue.is_empty());
        if level != st.irq_level {
            st.irq_level = level;
            if let Some(line) = lock(&self.irq).as_ref() {
                line(level);
            }
        }
        r
    }

    /// Bytes typed or piped in.
    pub fn push_input(&self, bytes: &[u8]) {
        self.with_input(|st| st.queue.extend(bytes));
        self.input_changed.notify_all();
    }

    pub fn set_eof(&self) {
        self.ended.store(true, Ordering::Relaxed);
        self.with_input(|st| st.eof = true);
        self.input_changed.notify_all();
    }

    /// The run is ending: wake any vCPU blocked in GETCHAR.
    pub fn close(&self) {
        self.with_input(|st| st.closing = true);
        self.input_changed.notify_all();
    }

    /// The next input byte for GETCHAR, if any (see [`Console::new`] for when it waits).
    pub fn getchar(&self) -> Option<u8> {
        if self.blocking_getchar {
            let mut st = lock(&self.input);
            while st.queue.is_empty() && !st.eof && !st.closing {
                st = self.input_changed.wait(st).unwrap_or_else(|p| p.into_inner());
            }
        }
        let b = self.with_input(|st| st.queue.pop_front());
        if b.is_none() {
            self.note_empty_poll();
        }
        b
    }

    /// Sets what to call when the guest starts waiting on input after stdin ended.
    pub fn on_starve(&self, hook: Box<dyn Fn() + Send + Sync>) {
        *lock(&self.starve_hook) = Some(hook);
    }

    /// The guest looked for input (GETCHAR, or the UART's LSR/RBR) and found none.
    pub fn note_empty_poll(&self) {
        if !self.starved.swap(true, Ordering::Relaxed) && self.ended.load(Ordering::Relaxed) {
            if let Some(hook) = lock(&self.starve_hook).as_ref() {
                hook();
            }
        }
    }

    /// One byte of guest output from vCPU `vcpu`.
    pub fn put(&self, vcpu: usize, byte: u8) {
        let mut out = lock(&self.output);
        if out.color && out.current != Some(vcpu) {
            let code = VCPU_COLORS[vcpu % VCPU_COLORS.len()];
            let _ = out.sink.write_all(code.as_bytes());
            out.current = Some(vcpu);
        }
        // Guest output is best effort: a closed stdout must not kill the guest.
        let _ = out.sink.write_all(&[byte]);
        let _ = out.sink.flush();
        out.last_output = Instant::now();
        drop(out);
        // Printing ends a wait for input.
        self.starved.store(false, Ordering::Relaxed);
    }

    /// Ends coloured output and flushes.
    pub fn finish(&self) {
        let mut out = lock(&self.output);
        if out.color && out.current.is_some() {
            let _ = out.sink.write_all(COLOR_RESET.as_bytes());
            out.current = None;
        }
        let _ = out.sink.flush();
    }

    /// Seconds since the guest last printed anything.
    pub fn quiet_for(&self) -> f64 {
        lock(&self.output).last_output.elapsed().as_secs_f64()
    }

    /// True once stdin has ended, no input is left and the guest is waiting for some: it polled
    /// and found nothing, or it has the UART's receive interrupt on.
    pub fn waiting_on_closed_input(&self) -> bool {
        let starved = self.starved.load(Ordering::Relaxed);
        self.with_input(|st| st.eof && st.queue.is_empty() && (starved || st.serial.wants_rx_irq()))
    }
}

/// Locks a mutex, carrying on if another thread panicked while holding it (the data is plain).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            lock(&self.0).extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn colour_switches_only_when_the_vcpu_changes() {
        let buf = Shared::default();
        let c = Console::new(Box::new(buf.clone()), true, false);
        c.put(0, b'a');
        c.put(0, b'b');
        c.put(1, b'c');
        c.finish();
        let got = String::from_utf8(lock(&buf.0).clone()).unwrap();
        assert_eq!(got, "\x1b[36mab\x1b[33mc\x1b[0m");
    }

    #[test]
    fn getchar_drains_queue_then_reports_starvation() {
        let c = Console::new(Box::new(std::io::sink()), false, false);
        c.push_input(b"x");
        assert_eq!(c.getchar(), Some(b'x'));
        assert!(!c.waiting_on_closed_input());
        assert_eq!(c.getchar(), None);
        assert!(!c.waiting_on_closed_input(), "not before EOF");
        c.set_eof();
        assert!(c.waiting_on_closed_input());
    }

    #[test]
    fn blocking_getchar_waits_for_late_input_and_for_eof() {
        let c = Console::new(Box::new(std::io::sink()), false, true);
        let c2 = c.clone();
        let t = std::thread::spawn(move || (c2.getchar(), c2.getchar()));
        std::thread::sleep(std::time::Duration::from_millis(50));
        c.push_input(b"z");
        c.set_eof();
        assert_eq!(t.join().unwrap(), (Some(b'z'), None));
    }

    #[test]
    fn irq_line_follows_data_and_ier() {
        let c = Console::new(Box::new(std::io::sink()), false, false);
        let levels = Arc::new(Mutex::new(Vec::new()));
        let l2 = levels.clone();
        c.connect_irq(Box::new(move |lvl| lock(&l2).push(lvl)));
        c.with_input(|st| st.serial.write(1, 1, &mut |_| {}));
        c.push_input(b"ab");
        c.with_input(|st| {
            let mut q = std::mem::take(&mut st.queue);
            st.serial.read(0, &mut q);
            st.serial.read(0, &mut q);
            st.queue = q;
        });
        assert_eq!(*lock(&levels), vec![true, false]);
    }
}
