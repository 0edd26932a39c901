//! A tiny x86 encoder for test guests: the handful of instructions the port-I/O tests and the guest
//! fuzzer need, in 16-bit (real mode) or 32-bit (protected mode) code, so that test guests are
//! written as readable calls instead of opaque byte arrays, and run in the nested lane too (which has
//! no assembler).
//!
//! Every method says the AT&T form it emits. Registers not named are left alone.
#![allow(dead_code)]

/// The code size the instructions are encoded for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bits {
    /// Real mode: operands are 16-bit unless prefixed with 0x66.
    B16,
    /// 32-bit protected mode: operands are 32-bit unless prefixed with 0x66.
    B32,
}

/// Machine code being written, in one mode.
#[derive(Debug, Clone)]
pub struct Code {
    pub bits: Bits,
    pub bytes: Vec<u8>,
}

impl Code {
    pub fn new(bits: Bits) -> Code {
        Code { bits, bytes: Vec::new() }
    }

    /// Appends raw bytes.
    pub fn raw(&mut self, b: &[u8]) -> &mut Self {
        self.bytes.extend_from_slice(b);
        self
    }

    /// The operand-size prefix that makes the next instruction's operand `size` bytes (2 or 4).
    fn opsize(&mut self, size: u8) {
        let wide_default = self.bits == Bits::B32;
        if (size == 4) != wide_default {
            self.bytes.push(0x66);
        }
    }

    /// `mov $imm16, %dx`
    pub fn mov_dx(&mut self, v: u16) -> &mut Self {
        self.opsize(2);
        self.bytes.push(0xba);
        self.bytes.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// `mov $imm, %cx` (16-bit) or `%ecx` (32-bit): the repeat count.
    pub fn mov_count(&mut self, v: u32) -> &mut Self {
        self.imm_reg(0xb9, v)
    }

    /// `mov $imm, %ax`/`%eax`.
    pub fn mov_ax(&mut self, v: u32) -> &mut Self {
        self.imm_reg(0xb8, v)
    }

    /// `mov $imm, %bx`/`%ebx`. (32-bit guests keep their window's base in EBX: see [`Code::buffer`].)
    pub fn mov_bx(&mut self, v: u32) -> &mut Self {
        self.imm_reg(0xbb, v)
    }

    fn imm_reg(&mut self, op: u8, v: u32) -> &mut Self {
        self.bytes.push(op);
        match self.bits {
            Bits::B16 => self.bytes.extend_from_slice(&(v as u16).to_le_bytes()),
            Bits::B32 => self.bytes.extend_from_slice(&v.to_le_bytes()),
        }
        self
    }

    /// `mov $imm8, %al`
    pub fn mov_al(&mut self, v: u8) -> &mut Self {
        self.raw(&[0xb0, v])
    }

    /// `mov $imm8, %bl`
    pub fn mov_bl(&mut self, v: u8) -> &mut Self {
        self.raw(&[0xb3, v])
    }

    /// Points DI (`%di`, or `%edi` = EBX + offset in 32-bit guests) at `offset` in the guest's window.
    pub fn di_at(&mut self, offset: u32) -> &mut Self {
        self.buffer(0xbb, 0xbf, offset)
    }

    /// Points SI at `offset` in the guest's window (see [`Code::di_at`]).
    pub fn si_at(&mut self, offset: u32) -> &mut Self {
        self.buffer(0xb3, 0xbe, offset)
    }

    /// Real mode: `mov $offset, %di` (ES = DS = CS). 32-bit: `lea offset(%ebx), %edi`, as segments are
    /// flat there and EBX holds the window's linear base.
    fn buffer(&mut self, lea_modrm: u8, mov16: u8, offset: u32) -> &mut Self {
        match self.bits {
            Bits::B16 => self.imm_reg(mov16, offset),
            Bits::B32 => {
                self.raw(&[0x8d, lea_modrm]);
                self.bytes.extend_from_slice(&offset.to_le_bytes());
                self
            }
        }
    }

    /// `in (%dx), %al/%ax/%eax` for `size` 1, 2 or 4.
    pub fn in_dx(&mut self, size: u8) -> &mut Self {
        self.sized(size, 0xec)
    }

    /// `out %al/%ax/%eax, (%dx)`.
    pub fn out_dx(&mut self, size: u8) -> &mut Self {
        self.sized(size, 0xee)
    }

    /// `in $port, %al/%ax/%eax` (ports below 0x100).
    pub fn in_imm(&mut self, size: u8, port: u8) -> &mut Self {
        self.sized(size, 0xe4).raw(&[port])
    }

    /// `out %al/%ax/%eax, $port`.
    pub fn out_imm(&mut self, size: u8, port: u8) -> &mut Self {
        self.sized(size, 0xe6).raw(&[port])
    }

    /// `rep insb/insw/insl`: CX items of `size` bytes from port DX to ES:DI.
    pub fn rep_ins(&mut self, size: u8) -> &mut Self {
        self.bytes.push(0xf3);
        self.sized(size, 0x6c)
    }

    /// `rep outsb/outsw/outsl`: CX items of `size` bytes from DS:SI to port DX.
    pub fn rep_outs(&mut self, size: u8) -> &mut Self {
        self.bytes.push(0xf3);
        self.sized(size, 0x6e)
    }

    /// The byte form `op` or the word/dword form `op + 1`, with the prefix the size needs.
    fn sized(&mut self, size: u8, op: u8) -> &mut Self {
        if size == 1 {
            self.bytes.push(op);
        } else {
            self.opsize(size);
            self.bytes.push(op + 1);
        }
        self
    }

    /// A load or store of AL, AX or EAX (`size` 1, 2, 4) at an absolute address: `mov ADDR, %al`
    /// (or `%ax`, `%eax`; the other way round when `store`), with an `%es:` override when `es`.
    /// `addr` is 16-bit in real mode, 32-bit in protected mode.
    pub fn mov_moffs(&mut self, store: bool, size: u8, es: bool, addr: u32) -> &mut Self {
        if es {
            self.raw(&[0x26]);
        }
        if matches!((self.bits, size), (Bits::B16, 4) | (Bits::B32, 2)) {
            self.raw(&[0x66]); // the operand size the mode does not have by default
        }
        self.raw(&[0xa0 + u8::from(size != 1) + 2 * u8::from(store)]);
        match self.bits {
            Bits::B16 => self.raw(&(addr as u16).to_le_bytes()),
            Bits::B32 => self.raw(&addr.to_le_bytes()),
        }
    }

    /// `mov %ax, %es`.
    pub fn mov_es_ax(&mut self) -> &mut Self {
        self.raw(&[0x8e, 0xc0])
    }

    /// `cld`
    pub fn cld(&mut self) -> &mut Self {
        self.raw(&[0xfc])
    }

    /// `hlt`: the end of a flat guest.
    pub fn hlt(&mut self) -> &mut Self {
        self.raw(&[0xf4])
    }

    /// `mov %eax, %crN`
    pub fn mov_cr(&mut self, n: u8) -> &mut Self {
        self.raw(&[0x0f, 0x22, 0xc0 | (n & 7) << 3])
    }

    /// `int $n`
    pub fn int(&mut self, n: u8) -> &mut Self {
        self.raw(&[0xcd, n])
    }

    /// `lgdt` (`idt` false) or `lidt` of the 6 bytes at `addr` (an offset in DS; linear in 32-bit code).
    pub fn load_table(&mut self, idt: bool, addr: u32) -> &mut Self {
        let reg = if idt { 3 } else { 2 };
        match self.bits {
            Bits::B16 => {
                self.raw(&[0x0f, 0x01, (reg << 3) | 6]);
                self.bytes.extend_from_slice(&(addr as u16).to_le_bytes());
            }
            Bits::B32 => {
                self.raw(&[0x0f, 0x01, (reg << 3) | 5]);
                self.bytes.extend_from_slice(&addr.to_le_bytes());
            }
        }
        self
    }

    /// `ljmp $selector, $offset`
    pub fn far_jump(&mut self, selector: u16, offset: u32) -> &mut Self {
        self.bytes.push(0xea);
        match self.bits {
            Bits::B16 => self.bytes.extend_from_slice(&(offset as u16).to_le_bytes()),
            Bits::B32 => self.bytes.extend_from_slice(&offset.to_le_bytes()),
        }
        self.bytes.extend_from_slice(&selector.to_le_bytes());
        self
    }

    /// Prints `n` bytes at `offset` of the guest's window with PUTCHAR, one at a time:
    /// `si_at offset; mov $n, %cx; 1: mov (%si), %bl; mov $1, %al; mov $0x500, %dx; out %al, (%dx);
    /// inc %si; loop 1b`.
    pub fn dump(&mut self, offset: u32, n: u16) -> &mut Self {
        self.si_at(offset).mov_count(n as u32);
        let top = self.bytes.len();
        self.raw(&[0x8a, if self.bits == Bits::B16 { 0x1c } else { 0x1e }]); // mov (%si|%esi), %bl
        self.mov_al(1).mov_dx(0x500).out_dx(1);
        self.raw(&[0x46]); // inc %si / %esi
        let rel = top as isize - (self.bytes.len() as isize + 2);
        self.raw(&[0xe2, rel as i8 as u8]); // loop top
        self
    }

    /// Pads with `nop` up to `offset`, so data can follow at a known place.
    pub fn pad_to(&mut self, offset: usize) -> &mut Self {
        assert!(self.bytes.len() <= offset, "code is longer than {offset:#x} bytes");
        self.bytes.resize(offset, 0x90);
        self
    }
}

/// Real-mode code that switches its vCPU to 32-bit protected mode with flat 4 GiB segments, leaving
/// EBX = the linear base of the guest's window and ESP near the window's top; 32-bit code appended
/// after it runs next. Position-independent across vCPUs (it reads its base from CS). Assembled from:
///
/// ```text
/// .code16
///     cli
///     xor %ebx,%ebx
///     mov %cs,%bx
///     shl $4,%ebx               # EBX = linear base of this window
///     lea gdt(%ebx),%eax
///     mov %eax,gdtr+2           # the GDT's linear address
///     lgdtl gdtr
///     mov %cr0,%eax
///     or $1,%al
///     mov %eax,%cr0             # protected mode on
///     lea pm(%ebx),%eax
///     pushl $0x08
///     pushl %eax
///     lretl                     # to pm, in the 32-bit code segment
///     .p2align 3
/// gdt: .quad 0, 0x00cf9a000000ffff, 0x00cf92000000ffff
/// gdtr: .word 23
///       .long 0
/// .code32
/// pm: mov $0x10,%ax             # and into DS, ES, SS, FS, GS
///     lea 0x3fff0(%ebx),%esp
/// ```
pub const TO_PROTECTED_MODE: &[u8] = &[
    0xfa, 0x66, 0x31, 0xdb, 0x8c, 0xcb, 0x66, 0xc1, 0xe3, 0x04, 0x67, 0x66, 0x8d, 0x83, 0x38, 0x00, 0x00, 0x00, 0x66,
    0xa3, 0x52, 0x00, 0x66, 0x0f, 0x01, 0x16, 0x50, 0x00, 0x0f, 0x20, 0xc0, 0x0c, 0x01, 0x0f, 0x22, 0xc0, 0x67, 0x66,
    0x8d, 0x83, 0x56, 0x00, 0x00, 0x00, 0x66, 0x6a, 0x08, 0x66, 0x50, 0x66, 0xcb, 0x8d, 0x74, 0x26, 0x00, 0x90, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0x00, 0x00, 0x00, 0x9a, 0xcf, 0x00, 0xff, 0xff, 0x00, 0x00,
    0x00, 0x92, 0xcf, 0x00, 0x17, 0x00, 0x00, 0x00, 0x00, 0x00, 0x66, 0xb8, 0x10, 0x00, 0x8e, 0xd8, 0x8e, 0xc0, 0x8e,
    0xd0, 0x8e, 0xe0, 0x8e, 0xe8, 0x8d, 0xa3, 0xf0, 0xff, 0x03, 0x00,
];

/// Code that starts in real mode and runs the rest in `bits` mode (switching to protected mode first
/// for [`Bits::B32`]).
pub fn guest(bits: Bits) -> Code {
    let mut c = Code::new(bits);
    if bits == Bits::B32 {
        c.raw(TO_PROTECTED_MODE);
    }
    c
}
