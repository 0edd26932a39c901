/* System calls: the only way a ring-3 program asks the kernel for anything.
 * The numbers and the calling convention are in include/syscall.h. */

#include "kernel.h"
#include "syscall.h"
#include "x86.h"

/* Arrives here through int $0x80 with interrupts off (an interrupt gate). Arguments are in the
 * saved registers; the result goes into the saved EAX, which the iret back to ring 3 restores. */
void syscall_dispatch(struct trapframe *tf)
{
    uint32_t arg1 = tf->ebx;
    uint32_t arg2 = tf->ecx;
    int32_t result = -1;

    switch (tf->eax) {
    case SYS_EXIT:
        back_to_shell((int)arg1);

    case SYS_WRITE:
        if (user_memory_ok(arg1, arg2)) {
            const char *buf = (const char *)arg1;
            for (uint32_t i = 0; i < arg2; i++)
                console_putc(buf[i]);
            result = (int32_t)arg2;
        }
        break;

    case SYS_READ:
        if (arg2 > 0 && user_memory_ok(arg1, arg2))
            result = console_readline((char *)arg1, (int)arg2);
        break;

    case SYS_UPTIME:
        result = (int32_t)ticks;
        break;

    case SYS_SLEEP: {
        uint32_t start = ticks;
        while (ticks - start < arg1) {
            sti_hlt();      /* each timer interrupt wakes us to look at the clock again */
            cli();
        }
        result = 0;
        break;
    }

    case SYS_INFO:
        if (user_memory_ok(arg1, sizeof(struct sysinfo))) {
            struct sysinfo *info = (struct sysinfo *)arg1;
            info->ticks = ticks;
            info->hz = TIMER_HZ;
            info->cr0 = read_cr0();
            info->cr3 = read_cr3();
            info->irq0 = irq_count[0];
            info->irq4 = irq_count[4];
            result = 0;
        }
        break;
    }
    tf->eax = (uint32_t)result;
}
