//! The console: where guest bytes go (stdout, raw or as tagged lines: [`super::output`]) and where input comes from
//! (stdin, read by the controller into one queue that both GETCHAR and the UART drain), and the
//! signs that a guest waits for input ([`InputWait`]).
//!
//! One lock guards the input queue together with the UART registers, so "data ready", the RBR
//! read and the IRQ4 level always agree. Output has its own lock, held for each byte, so bytes
//! from several vCPUs never garble each other.

use super::serial::Serial;
use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use super::output::Output;
pub use super::output::{COLOR_RESET, VCPU_COLORS};

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

pub struct Console {
    input: Mutex<InputState>,
    /// Empty polls for input (GETCHAR, or the UART's LSR/RBR, finding nothing) since the guest
    /// last printed: two or more mean the guest is waiting for input (see [`REPEATED_POLLS`]).
    empty_polls: AtomicU32,
    /// stdin has ended (a copy of `InputState::eof` that needs no lock).
    ended: AtomicBool,
    /// Called when, after stdin ended, the guest starts waiting for input (the controller then
    /// times its `--eof-grace`).
    ended_input_wait_hook: Mutex<Option<Box<dyn Fn() + Send + Sync>>>,
    /// Signalled when input arrives, stdin ends, or the run is ending.
    input_changed: Condvar,
    /// GETCHAR waits for input instead of answering 0xFF at once (stdin is a pipe or file).
    blocking_getchar: bool,
    output: Mutex<Output>,
    irq: Mutex<Option<IrqLine>>,
}

/// After stdin ended: what the guest's behaviour says about waiting for more input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputWait {
    /// Nothing says it waits (or input is still there to read).
    No,
    /// It polled for input at least twice (GETCHAR, RBR, LSR) and found none, printing nothing
    /// between: a wait if it keeps doing so (see [`crate::controller::EndedInputWait`]).
    Polling,
    /// It has the UART's receive interrupt on: it waits if it also halts (the controller looks at
    /// whether its vCPU threads sleep; see [`crate::controller::EndedInputWait`]).
    ReceiveInterrupt,
}

/// How many empty polls, with no output between them, make a wait for input. One is not enough:
/// a serial driver reads LSR once before sending each byte (for THR empty), and with no input
/// queued that read finds no data ready; it is output, not a wait. A guest that waits polls again.
pub const REPEATED_POLLS: u32 = 2;

/// How often a vCPU blocked in GETCHAR looks at its control flags: a kick (a signal) interrupts
/// KVM_RUN but cannot wake a condition variable.
const FLAG_CHECK: Duration = Duration::from_millis(20);

/// How often the live view looks for partial lines to show.
const PARTIAL_CHECK: Duration = Duration::from_millis(50);

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
            empty_polls: AtomicU32::new(0),
            ended: AtomicBool::new(false),
            ended_input_wait_hook: Mutex::new(None),
            input_changed: Condvar::new(),
            blocking_getchar,
            output: Mutex::new(Output::raw(sink, color)),
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

    /// GETCHAR's `in`: the next input byte, if any, at once.
    pub fn getchar(&self) -> Option<u8> {
        let b = self.with_input(|st| st.queue.pop_front());
        if b.is_none() {
            self.note_empty_poll();
        }
        b
    }

    /// Blocks (stdin a pipe or file) until input is queued, stdin has ended or the run is ending:
    /// then true. Returns false early when `interrupted` says so (checked every 20 ms).
    pub fn wait_for_input(&self, interrupted: &dyn Fn() -> bool) -> bool {
        if !self.blocking_getchar {
            return true;
        }
        let mut st = lock(&self.input);
        loop {
            if !st.queue.is_empty() || st.eof || st.closing {
                return true;
            }
            if interrupted() {
                return false;
            }
            st = match self.input_changed.wait_timeout(st, FLAG_CHECK) {
                Ok((st, _)) => st,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// A guest's read of UART register `offset` (0..=7). Reading RBR or LSR while no byte is
    /// ready is a poll for input that found none.
    pub fn serial_read(&self, offset: u16) -> u8 {
        let (value, found_none) = self.with_input(|st| {
            let InputState { queue, serial, .. } = st;
            let ready = serial.data_ready(!queue.is_empty());
            (serial.read(offset, queue), !ready && (offset == 0 || offset == 5))
        });
        if found_none {
            self.note_empty_poll();
        }
        value
    }

    /// A write of vCPU `vcpu` to UART register `offset`; a byte sent goes to the console.
    pub fn serial_write(&self, vcpu: usize, offset: u16, value: u8) {
        // A register write sends at most one byte (THR), put out after the UART lock is let go.
        let mut sent = None;
        let rx_irq_on = self.with_input(|st| {
            let was = st.serial.wants_rx_irq();
            st.serial.write(offset, value, &mut |b| sent = Some(b));
            !was && st.serial.wants_rx_irq()
        });
        if let Some(b) = sent {
            self.put(vcpu, b);
        }
        // Turning the receive interrupt on after stdin ended may start a wait: tell the controller.
        if rx_irq_on && self.ended.load(Ordering::Relaxed) {
            self.ended_input_wait();
        }
    }

    /// Sets what to call when the guest starts waiting on input after stdin ended.
    pub fn on_ended_input_wait(&self, hook: Box<dyn Fn() + Send + Sync>) {
        *lock(&self.ended_input_wait_hook) = Some(hook);
    }

    /// The guest looked for input (GETCHAR, or the UART's LSR/RBR) and found none.
    fn note_empty_poll(&self) {
        let add = |n: u32| Some(n.saturating_add(1));
        let polls = match self.empty_polls.fetch_update(Ordering::Relaxed, Ordering::Relaxed, add) {
            Ok(before) | Err(before) => before.saturating_add(1),
        };
        if polls == REPEATED_POLLS && self.ended.load(Ordering::Relaxed) {
            self.ended_input_wait();
        }
    }

    fn ended_input_wait(&self) {
        if let Some(hook) = lock(&self.ended_input_wait_hook).as_ref() {
            hook();
        }
    }

    /// One byte of guest output from vCPU `vcpu`.
    pub fn put(&self, vcpu: usize, byte: u8) {
        lock(&self.output).put(vcpu, byte);
        // Printing ends a wait for input.
        self.empty_polls.store(0, Ordering::Relaxed);
    }

    /// Several guests: whole lines, each prefixed with its guest's name (see
    /// [`crate::devices::output`]). `live`: stdout is a terminal; a thread then shows a guest's
    /// unfinished line once the guest has been quiet a moment.
    pub fn tag_lines(self: &Arc<Self>, names: &[String], live: bool) {
        lock(&self.output).tag_lines(names, live);
        if live {
            let me = Arc::downgrade(self);
            let _ = std::thread::Builder::new().name("partial-lines".into()).spawn(move || {
                while let Some(console) = me.upgrade() {
                    if !console.show_partial_lines() {
                        break;
                    }
                    drop(console);
                    std::thread::sleep(PARTIAL_CHECK);
                }
            });
        }
    }

    /// Shows quiet partial lines; false once output is finished.
    fn show_partial_lines(&self) -> bool {
        let mut out = lock(&self.output);
        out.show_partial_lines();
        out.is_live()
    }

    /// vCPU `vcpu`'s guest ended: its unfinished line (if any) goes out.
    pub fn end_of(&self, vcpu: usize) {
        lock(&self.output).end_of(vcpu);
    }

    /// Flushes what is left: unfinished lines, the colour reset.
    pub fn finish(&self) {
        lock(&self.output).finish();
    }

    /// Raw output's colour is reset, before a report on stderr; nothing else is flushed.
    pub fn colour_off(&self) {
        lock(&self.output).colour_off();
    }

    /// Seconds since the guest last printed anything.
    pub fn quiet_for(&self) -> f64 {
        lock(&self.output).last_output.elapsed().as_secs_f64()
    }

    /// Whether the guest may be waiting for input that will never come (stdin ended, nothing left).
    pub fn input_wait(&self) -> InputWait {
        let polling = self.empty_polls.load(Ordering::Relaxed) >= REPEATED_POLLS;
        self.with_input(|st| match (st.eof && st.queue.is_empty(), polling, st.serial.wants_rx_irq()) {
            (false, _, _) => InputWait::No,
            (true, true, _) => InputWait::Polling,
            (true, false, true) => InputWait::ReceiveInterrupt,
            (true, false, false) => InputWait::No,
        })
    }

    /// Empty polls for input since the guest last printed.
    pub fn empty_polls(&self) -> u32 {
        self.empty_polls.load(Ordering::Relaxed)
    }

    /// [`Console::input_wait`] is not [`InputWait::No`].
    pub fn waiting_on_closed_input(&self) -> bool {
        self.input_wait() != InputWait::No
    }
}

/// Locks a mutex, carrying on if another thread panicked while holding it (the data is plain).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn getchar_drains_queue_then_repeated_empty_polls_are_a_wait() {
        let c = Console::new(Box::new(std::io::sink()), false, false);
        c.push_input(b"x");
        assert_eq!(c.getchar(), Some(b'x'));
        assert!(!c.waiting_on_closed_input());
        assert_eq!(c.getchar(), None);
        assert_eq!(c.getchar(), None);
        assert!(!c.waiting_on_closed_input(), "not before EOF");
        c.set_eof();
        assert!(c.waiting_on_closed_input());
        c.put(0, b'.');
        assert!(!c.waiting_on_closed_input(), "output ends a wait");
    }

    #[test]
    fn one_lsr_read_before_sending_is_not_a_wait_for_input() {
        let c = Console::new(Box::new(std::io::sink()), false, false);
        c.set_eof();
        for b in *b"ok" {
            assert_ne!(c.serial_read(5) & 0x20, 0, "THR empty");
            c.serial_write(0, 0, b);
        }
        c.serial_read(5);
        assert!(!c.waiting_on_closed_input(), "one LSR read, then silence: the guest may be computing");
        c.serial_read(5);
        assert!(c.waiting_on_closed_input(), "a second empty poll with no output between is a sign of a wait");
    }

    #[test]
    fn wait_for_input_returns_on_late_input_eof_close_or_interruption() {
        let c = Console::new(Box::new(std::io::sink()), false, true);
        let c2 = c.clone();
        let t = std::thread::spawn(move || (c2.wait_for_input(&|| false), c2.getchar()));
        std::thread::sleep(Duration::from_millis(50));
        c.push_input(b"z");
        assert_eq!(t.join().unwrap(), (true, Some(b'z')));

        let flag = Arc::new(AtomicBool::new(false));
        let (c2, f2) = (c.clone(), flag.clone());
        let t = std::thread::spawn(move || c2.wait_for_input(&|| f2.load(Ordering::Relaxed)));
        std::thread::sleep(Duration::from_millis(50));
        flag.store(true, Ordering::Relaxed); // a pause request: no notify, found by the flag check
        assert!(!t.join().unwrap());

        let c2 = c.clone();
        let t = std::thread::spawn(move || c2.wait_for_input(&|| false));
        std::thread::sleep(Duration::from_millis(50));
        c.close();
        assert!(t.join().unwrap());
    }

    #[test]
    fn irq_line_follows_data_and_ier() {
        let c = Console::new(Box::new(std::io::sink()), false, false);
        let levels = Arc::new(Mutex::new(Vec::new()));
        let l2 = levels.clone();
        c.connect_irq(Box::new(move |lvl| lock(&l2).push(lvl)));
        c.with_input(|st| st.serial.write(1, 1, &mut |_| {}));
        c.push_input(b"ab");
        c.serial_read(0);
        c.serial_read(0);
        assert_eq!(*lock(&levels), vec![true, false]);
    }
}
