/* System calls: the only way a ring-3 program asks the kernel for anything.
 * The numbers and the calling convention are in include/syscall.h. */

#include "kernel.h"
#include "syscall.h"
#include "x86.h"

/* Arrives here through int $0x80 with interrupts off (an interrupt gate). Arguments are in the
 * saved registers (EBX, ECX; on x86-64 RBX, RCX: see arch.h); the result goes into the saved
 * EAX/RAX, which the iret back to ring 3 restores. */
void syscall_dispatch(struct trapframe *tf)
{
    uintptr_t arg1 = TF_SYSCALL_ARG1(tf);
    uintptr_t arg2 = TF_SYSCALL_ARG2(tf);
    int32_t result = -1;

    switch (TF_SYSCALL_NUMBER(tf)) {
    case SYS_EXIT:
        back_to_shell((int)arg1);

    case SYS_WRITE:
        if (user_memory_ok(arg1, arg2)) {
            const char *buf = (const char *)arg1;
            for (uintptr_t i = 0; i < arg2; i++)
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
        while (ticks - start < (uint32_t)arg1) {
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
            info->cr0 = (uint32_t)read_cr0();
            info->cr3 = (uint32_t)read_cr3();     /* below 4 MiB: fits in 32 bits on both */
            info->irq0 = irq_count[0];
            info->irq4 = irq_count[4];
            result = 0;
        }
        break;
    }
    TF_SYSCALL_RESULT(tf) = (uintptr_t)(intptr_t)result;     /* -1 stays -1 in a 64-bit RAX */
}
