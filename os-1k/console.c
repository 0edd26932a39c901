/* The console: a 16550 UART on COM1.
 *
 * Output waits until the transmitter can take a byte, then writes it. Input is interrupt driven: each
 * received byte raises IRQ 4, whose handler moves every waiting byte into a ring buffer. A reader with
 * nothing to read halts the CPU until the next interrupt instead of spinning. */

#include "kernel.h"
#include "x86.h"

#define COM1 0x3F8
#define RBR  (COM1 + 0)     /* receive buffer (read) */
#define THR  (COM1 + 0)     /* transmit holding register (write) */
#define DLL  (COM1 + 0)     /* divisor latch, low byte (when LCR bit 7 is set) */
#define IER  (COM1 + 1)     /* interrupt enable */
#define DLH  (COM1 + 1)     /* divisor latch, high byte (when LCR bit 7 is set) */
#define FCR  (COM1 + 2)     /* FIFO control */
#define LCR  (COM1 + 3)     /* line control */
#define MCR  (COM1 + 4)     /* modem control */
#define LSR  (COM1 + 5)     /* line status */

#define LSR_DATA_READY 0x01
#define LSR_THR_EMPTY  0x20

/* Bytes received but not yet read. head and tail only ever grow; the size is a power of two, so
 * "% RX_SIZE" stays correct when they wrap around at 2^32. When the buffer is full, new bytes are
 * dropped: a person cannot type 1024 bytes ahead, and the tests send far less. */
#define RX_SIZE 1024
static char rx_buf[RX_SIZE];
static volatile uint32_t rx_head;  /* written by the interrupt handler */
static volatile uint32_t rx_tail;  /* written by the reader */

void console_init(void)
{
    outb(IER, 0x00);        /* no interrupts until the PIC and IDT are ready */
    outb(LCR, 0x80);        /* divisor latch access */
    outb(DLL, 1);           /* 115200 baud (115200 / 1) */
    outb(DLH, 0);
    outb(LCR, 0x03);        /* 8 data bits, no parity, 1 stop bit */
    /* FCR stays as it is: switching the FIFOs on or off empties them, losing input that may
     * already be waiting. The code works either way, since it reads while LSR says "data ready". */
    outb(MCR, 0x0B);        /* DTR, RTS, and OUT2, which on a PC connects the UART to its IRQ line */
}

/* Moves every byte the UART holds into the ring buffer. Called with interrupts off. */
static void drain_uart(void)
{
    while (inb(LSR) & LSR_DATA_READY) {
        char c = (char)inb(RBR);
        if (rx_head - rx_tail < RX_SIZE)
            rx_buf[rx_head++ % RX_SIZE] = c;
    }
}

void console_enable_input_interrupts(void)
{
    outb(IER, 0x01);        /* interrupt when a byte arrives */
    /* Bytes that arrived before now raised no interrupt, and while they sit there no new one comes
     * (the IRQ line stays up, the PIC reacts to edges only): fetch them once by hand. */
    drain_uart();
}

void console_interrupt(void)
{
    drain_uart();
}

static void uart_write(char c)
{
    while (!(inb(LSR) & LSR_THR_EMPTY))
        ;
    outb(THR, (uint8_t)c);
}

/* A serial terminal needs "\r\n" to start a new line. */
void console_putc(char c)
{
    if (c == '\n')
        uart_write('\r');
    uart_write(c);
}

/* Waits for one byte of input. */
static char console_getc(void)
{
    unsigned long flags = read_eflags();
    cli();      /* checking for input and going to sleep must not be split by the interrupt we wait for */
    while (rx_head == rx_tail) {
        sti_hlt();  /* sleep; the IRQ 4 handler fills the buffer, then we look again */
        cli();
    }
    char c = rx_buf[rx_tail++ % RX_SIZE];
    if (flags & EFLAGS_IF)
        sti();
    return c;
}

/* Reads one line with echo and backspace, like a terminal in "cooked" mode. The line ends at "\r" or
 * "\n" (terminals send "\r"); a "\n" right after a "\r" is the second half of one "\r\n" and is
 * skipped. Returns the length; buf holds the line without its end, NUL-terminated. */
int console_readline(char *buf, int size)
{
    static bool last_was_cr;
    int len = 0;

    for (;;) {
        char c = console_getc();
        bool after_cr = last_was_cr;
        last_was_cr = (c == '\r');

        if (c == '\n' && after_cr)
            continue;
        if (c == '\r' || c == '\n') {
            console_putc('\n');
            buf[len] = '\0';
            return len;
        }
        if (c == 0x08 || c == 0x7F) {       /* backspace or delete: both erase one character */
            if (len > 0) {
                len--;
                console_putc('\b');         /* back, overwrite with a space, back again */
                console_putc(' ');
                console_putc('\b');
            }
            continue;
        }
        if (c >= ' ' && c < 0x7F && len < size - 1) {
            buf[len++] = c;
            console_putc(c);
        }
    }
}
