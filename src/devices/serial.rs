//! A 16550A UART register model (COM1), as a plain struct.
//!
//! The model knows nothing of stdin, stdout or KVM: reads take the input queue, writes hand bytes
//! to a callback, and [`Serial::irq_level`] says whether the interrupt line should be high. That
//! keeps it unit-testable with a `VecDeque` and a `Vec<u8>`.
//!
//! **Loopback** (MCR bit 4), as on a 16550A: the transmitter is wired to the receiver inside the
//! chip, so a byte written to THR does not go out but comes back in RBR (with LSR.DR set, and the
//! receive interrupt if enabled), and the outside input is disconnected. Drivers use it to test the
//! chip. Looped bytes wait in the receive FIFO (16 bytes); more set the overrun bit (LSR bit 1).
//!
//! Registers (offset from 0x3F8; DLAB is LCR bit 7):
//! | off | read | write |
//! |---|---|---|
//! | 0 | RBR (DLAB=0) / DLL | THR (DLAB=0) / DLL |
//! | 1 | IER (DLAB=0) / DLH | IER / DLH |
//! | 2 | IIR | FCR |
//! | 3 | LCR | LCR |
//! | 4 | MCR | MCR |
//! | 5 | LSR | — |
//! | 6 | MSR | — |
//! | 7 | SCR | SCR |

use std::collections::VecDeque;

pub const COM1: u16 = 0x3f8;
pub const COM1_IRQ: u32 = 4;

const IER_RX: u8 = 0x01;
const IER_THRE: u8 = 0x02;
const LCR_DLAB: u8 = 0x80;
const LSR_DR: u8 = 0x01;
const LSR_OE: u8 = 0x02;
const LSR_THRE: u8 = 0x20;
const LSR_TEMT: u8 = 0x40;
const IIR_NONE: u8 = 0x01;
const IIR_THRE: u8 = 0x02;
const IIR_RX: u8 = 0x04;
const IIR_FIFO: u8 = 0xc0;
const MCR_LOOP: u8 = 0x10;
/// The 16550A's receive FIFO depth.
const RX_FIFO: usize = 16;

#[derive(Debug, Clone)]
pub struct Serial {
    ier: u8,
    lcr: u8,
    mcr: u8,
    scr: u8,
    fcr: u8,
    dll: u8,
    dlh: u8,
    /// A THR-empty interrupt is owed (set by enabling it or by writing THR, cleared by reading IIR).
    thre_pending: bool,
    /// Bytes sent in loopback mode, waiting to be read back from RBR.
    looped: VecDeque<u8>,
    /// A looped byte was lost because the receive FIFO was full (LSR bit 1, cleared by reading LSR).
    overrun: bool,
}

impl Default for Serial {
    fn default() -> Self {
        Serial {
            ier: 0,
            lcr: 0x03,
            mcr: 0x08,
            scr: 0,
            fcr: 0,
            dll: 0x0c, // 9600 baud, as a PC BIOS leaves it
            dlh: 0,
            thre_pending: false,
            looped: VecDeque::new(),
            overrun: false,
        }
    }
}

impl Serial {
    /// A read of register `offset` (0..=7).
    pub fn read(&mut self, offset: u16, input: &mut VecDeque<u8>) -> u8 {
        let dlab = self.lcr & LCR_DLAB != 0;
        match offset {
            0 if dlab => self.dll,
            0 => self.receive(input).unwrap_or(0),
            1 if dlab => self.dlh,
            1 => self.ier,
            2 => {
                let iir = self.iir(self.data_ready(!input.is_empty()));
                if iir & 0x0f == IIR_THRE {
                    self.thre_pending = false;
                }
                iir | if self.fcr & 1 != 0 { IIR_FIFO } else { 0 }
            }
            3 => self.lcr,
            4 => self.mcr,
            5 => {
                let dr = if self.data_ready(!input.is_empty()) { LSR_DR } else { 0 };
                let oe = if std::mem::take(&mut self.overrun) { LSR_OE } else { 0 };
                dr | oe | LSR_THRE | LSR_TEMT
            }
            // Loopback off: CTS, DSR and DCD are set, as if a terminal were attached.
            6 => {
                if self.mcr & MCR_LOOP != 0 {
                    (self.mcr & 0x0f) << 4
                } else {
                    0xb0
                }
            }
            7 => self.scr,
            _ => 0xff,
        }
    }

    /// A write of `value` to register `offset`; a byte for the console goes to `out`.
    pub fn write(&mut self, offset: u16, value: u8, out: &mut dyn FnMut(u8)) {
        let dlab = self.lcr & LCR_DLAB != 0;
        match offset {
            0 if dlab => self.dll = value,
            0 => {
                if !self.loopback() {
                    out(value);
                } else if self.looped.len() < RX_FIFO {
                    self.looped.push_back(value);
                } else {
                    self.overrun = true;
                }
                self.thre_pending = self.ier & IER_THRE != 0;
            }
            1 if dlab => self.dlh = value,
            1 => {
                let was = self.ier;
                self.ier = value & 0x0f;
                if was & IER_THRE == 0 && self.ier & IER_THRE != 0 {
                    self.thre_pending = true; // THR is always empty, so enabling it fires at once
                }
            }
            2 => self.fcr = value,
            3 => self.lcr = value,
            4 => self.mcr = value & 0x1f,
            7 => self.scr = value,
            _ => {}
        }
    }

    fn loopback(&self) -> bool {
        self.mcr & MCR_LOOP != 0
    }

    /// Whether RBR holds a byte: one sent in loopback, or (loopback off) one from `input`.
    pub fn data_ready(&self, input_waiting: bool) -> bool {
        !self.looped.is_empty() || (input_waiting && !self.loopback())
    }

    /// The byte RBR gives: looped bytes first; outside input only while loopback is off.
    fn receive(&mut self, input: &mut VecDeque<u8>) -> Option<u8> {
        match self.looped.pop_front() {
            Some(b) => Some(b),
            None if self.loopback() => None,
            None => input.pop_front(),
        }
    }

    /// The interrupt identification: received data beats THR empty, as on the chip.
    fn iir(&self, data_ready: bool) -> u8 {
        if data_ready && self.ier & IER_RX != 0 {
            IIR_RX
        } else if self.thre_pending && self.ier & IER_THRE != 0 {
            IIR_THRE
        } else {
            IIR_NONE
        }
    }

    /// Whether IRQ4 should be asserted now, with `input_waiting` bytes of outside input queued.
    pub fn irq_level(&self, input_waiting: bool) -> bool {
        self.iir(self.data_ready(input_waiting)) != IIR_NONE
    }

    /// Whether the guest has asked to be interrupted when input arrives.
    pub fn wants_rx_irq(&self) -> bool {
        self.ier & IER_RX != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(s: &mut Serial, off: u16, v: u8) -> Vec<u8> {
        let mut out = Vec::new();
        s.write(off, v, &mut |b| out.push(b));
        out
    }

    #[test]
    fn thr_writes_go_out_and_lsr_says_empty() {
        let mut s = Serial::default();
        let mut q = VecDeque::new();
        assert_eq!(write(&mut s, 0, b'A'), b"A");
        assert_eq!(s.read(5, &mut q), LSR_THRE | LSR_TEMT);
    }

    #[test]
    fn rbr_reads_input_and_lsr_shows_data_ready() {
        let mut s = Serial::default();
        let mut q: VecDeque<u8> = b"hi".iter().copied().collect();
        assert_eq!(s.read(5, &mut q) & LSR_DR, LSR_DR);
        assert_eq!(s.read(0, &mut q), b'h');
        assert_eq!(s.read(0, &mut q), b'i');
        assert_eq!(s.read(5, &mut q) & LSR_DR, 0);
        assert_eq!(s.read(0, &mut q), 0, "empty RBR reads 0");
    }

    #[test]
    fn dlab_switches_to_divisor_latch() {
        let mut s = Serial::default();
        let mut q = VecDeque::new();
        write(&mut s, 3, 0x83);
        assert!(write(&mut s, 0, 0x01).is_empty(), "DLL write is not output");
        write(&mut s, 1, 0x00);
        assert_eq!(s.read(0, &mut q), 0x01);
        assert_eq!(s.read(1, &mut q), 0x00);
        write(&mut s, 3, 0x03);
        assert_eq!(s.read(3, &mut q), 0x03);
        assert_eq!(write(&mut s, 0, b'x'), b"x");
    }

    #[test]
    fn rx_interrupt_follows_ier_and_data() {
        let mut s = Serial::default();
        let mut q: VecDeque<u8> = VecDeque::new();
        assert!(!s.irq_level(false));
        write(&mut s, 1, IER_RX);
        assert!(!s.irq_level(false));
        assert!(s.irq_level(true));
        q.push_back(b'k');
        assert_eq!(s.read(2, &mut q) & 0x0f, IIR_RX);
        s.read(0, &mut q);
        assert_eq!(s.read(2, &mut q) & 0x0f, IIR_NONE);
    }

    #[test]
    fn thre_interrupt_is_cleared_by_reading_iir() {
        let mut s = Serial::default();
        let mut q = VecDeque::new();
        write(&mut s, 1, IER_THRE);
        assert!(s.irq_level(false));
        assert_eq!(s.read(2, &mut q) & 0x0f, IIR_THRE);
        assert!(!s.irq_level(false));
        write(&mut s, 0, b'z');
        assert!(s.irq_level(false));
    }

    #[test]
    fn loopback_returns_thr_bytes_in_rbr_and_keeps_outside_input_out() {
        let mut s = Serial::default();
        let mut q: VecDeque<u8> = b"ext".iter().copied().collect();
        write(&mut s, 4, MCR_LOOP);
        assert_eq!(s.read(5, &mut q) & LSR_DR, 0, "outside input is disconnected in loopback");
        assert!(write(&mut s, 0, b'a').is_empty(), "a looped byte does not go out");
        write(&mut s, 0, b'b');
        assert_eq!(s.read(5, &mut q) & LSR_DR, LSR_DR);
        assert_eq!(s.read(0, &mut q), b'a');
        assert_eq!(s.read(0, &mut q), b'b');
        assert_eq!(s.read(5, &mut q) & LSR_DR, 0);
        assert_eq!(q.len(), 3, "the console's input was not touched");
        write(&mut s, 4, 0);
        assert_eq!(s.read(0, &mut q), b'e', "loopback off: outside input again");
    }

    #[test]
    fn loopback_raises_the_receive_interrupt_and_overruns_past_the_fifo() {
        let mut s = Serial::default();
        let mut q = VecDeque::new();
        write(&mut s, 4, MCR_LOOP);
        write(&mut s, 1, IER_RX);
        assert!(!s.irq_level(false));
        for b in 0..RX_FIFO as u8 + 1 {
            write(&mut s, 0, b);
        }
        assert!(s.irq_level(false));
        assert_eq!(s.read(2, &mut q) & 0x0f, IIR_RX);
        assert_eq!(s.read(5, &mut q) & (LSR_OE | LSR_DR), LSR_OE | LSR_DR);
        assert_eq!(s.read(5, &mut q) & LSR_OE, 0, "reading LSR clears the overrun");
        let got: Vec<u8> = (0..RX_FIFO).map(|_| s.read(0, &mut q)).collect();
        assert_eq!(got, (0..RX_FIFO as u8).collect::<Vec<_>>());
        assert!(!s.irq_level(false));
    }

    #[test]
    fn loopback_suppresses_output_and_scratch_keeps_value() {
        let mut s = Serial::default();
        let mut q = VecDeque::new();
        write(&mut s, 4, MCR_LOOP | 0x0b);
        assert!(write(&mut s, 0, b'q').is_empty());
        assert_eq!(s.read(6, &mut q), 0xb0);
        write(&mut s, 7, 0x5a);
        assert_eq!(s.read(7, &mut q), 0x5a);
    }
}
