/* What happens after entry.S: exceptions, hardware interrupts (timer and console) and system calls.
 * Also the setup of the interrupt hardware: the two 8259 PICs and the 8254 timer (PIT). */

#include "kernel.h"
#include "syscall.h"
#include "x86.h"

volatile uint32_t ticks;            /* timer interrupts since boot: TIMER_HZ per second */
volatile uint32_t irq_count[16];    /* how many times each IRQ line fired */

static const char *const exception_names[32] = {
    "divide error", "debug", "non-maskable interrupt", "breakpoint",
    "overflow", "bound range exceeded", "invalid opcode", "device not available",
    "double fault", "coprocessor segment overrun", "invalid TSS", "segment not present",
    "stack-segment fault", "general protection fault", "page fault", "reserved (15)",
    "x87 floating-point error", "alignment check", "machine check", "SIMD floating-point error",
    "virtualization exception", "control protection exception", "reserved (22)", "reserved (23)",
    "reserved (24)", "reserved (25)", "reserved (26)", "reserved (27)",
    "hypervisor injection", "VMM communication", "security exception", "reserved (31)",
};

#define PIC1_CMD  0x20
#define PIC1_DATA 0x21
#define PIC2_CMD  0xA0
#define PIC2_DATA 0xA1
#define PIC_EOI   0x20

#define PIT_CH0   0x40
#define PIT_CMD   0x43
#define PIT_HZ    1193182     /* the PIT's input clock */

void interrupts_init(void)
{
    /* The 8259s start out sending IRQ 0..7 to vectors 8..15, on top of the CPU's exceptions.
     * Re-program both: IRQ 0..7 -> vectors 0x20..0x27, IRQ 8..15 -> 0x28..0x2F. */
    outb(PIC1_CMD, 0x11);       /* ICW1: start initialisation, edge triggered, ICW4 follows */
    outb(PIC2_CMD, 0x11);
    outb(PIC1_DATA, IRQ_BASE);  /* ICW2: first vector */
    outb(PIC2_DATA, IRQ_BASE + 8);
    outb(PIC1_DATA, 1 << 2);    /* ICW3: the slave hangs on the master's IRQ 2 */
    outb(PIC2_DATA, 2);
    outb(PIC1_DATA, 0x01);      /* ICW4: 8086 mode */
    outb(PIC2_DATA, 0x01);
    /* Masks (1 = off): only IRQ 0 (timer) and IRQ 4 (COM1) are wanted. */
    outb(PIC1_DATA, (uint8_t)~((1 << 0) | (1 << 4)));
    outb(PIC2_DATA, 0xFF);

    /* PIT channel 0, mode 2 (rate generator): IRQ 0 every `divisor` input clocks. */
    uint16_t divisor = PIT_HZ / TIMER_HZ;
    outb(PIT_CMD, 0x34);        /* channel 0, low byte then high byte, mode 2, binary */
    outb(PIT_CH0, divisor & 0xFF);
    outb(PIT_CH0, divisor >> 8);
}

static void irq(int n)
{
    irq_count[n]++;
    if (n == 0)
        ticks++;
    else if (n == 4)
        console_interrupt();

    /* End of interrupt: until the PIC hears this, it sends no IRQ of this or lower priority. */
    if (n >= 8)
        outb(PIC2_CMD, PIC_EOI);
    outb(PIC1_CMD, PIC_EOI);
}

/* A program did something illegal: it dies, the kernel and the shell carry on. */
static void kill_program(struct trapframe *tf)
{
    unsigned long pc = TF_PC(tf);
    if (tf->vector == 14)
        kprintf("\n[killed: page fault at 0x%08lx, " PC_NAME "=0x%08lx]\n", read_cr2(), pc);
    else
        kprintf("\n[killed: %s, " PC_NAME "=0x%08lx]\n", exception_names[tf->vector], pc);
    back_to_shell(-1);
}

/* The kernel itself did something illegal: there is nothing sane left to do but report and stop.
 * Halting (rather than powering off) leaves the machine as it is, for a debugger to look at. */
static void kernel_exception(struct trapframe *tf)
{
    kprintf("\n*** kernel exception: %s (vector %u, error code 0x%x)\n",
            exception_names[tf->vector], (unsigned)tf->vector, (unsigned)tf->error);
    arch_print_trapframe(tf);
    panic("exception in the kernel");
}

void trap(struct trapframe *tf)
{
    if (tf->vector == SYSCALL_VECTOR)
        syscall_dispatch(tf);
    else if (tf->vector >= IRQ_BASE && tf->vector < IRQ_BASE + 16)
        irq(tf->vector - IRQ_BASE);
    else if ((tf->cs & 3) == 3)     /* the privilege level of the interrupted code */
        kill_program(tf);
    else
        kernel_exception(tf);
}

void panic(const char *why)
{
    kprintf("*** kernel panic: %s. System halted.\n", why);
    for (;;) {
        cli();
        hlt();
    }
}
