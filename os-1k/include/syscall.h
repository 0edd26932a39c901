/* The system call interface: shared by the kernel and the user programs.
 *
 * A program puts the call number in EAX and up to three arguments in EBX, ECX and EDX, then executes
 * `int $0x80`. The result comes back in EAX; -1 means the kernel refused (for example a buffer
 * that is not the program's own memory). */
#ifndef SYSCALL_H
#define SYSCALL_H

#include <stdint.h>

#define SYSCALL_VECTOR 0x80

#define SYS_EXIT    0   /* exit(code): never returns */
#define SYS_WRITE   1   /* write(buf, len): prints len bytes, returns len */
#define SYS_READ    2   /* read(buf, size): waits for one edited line, returns its length */
#define SYS_UPTIME  3   /* uptime(): timer ticks since boot */
#define SYS_SLEEP   4   /* sleep(n): waits n timer ticks */
#define SYS_INFO    5   /* info(&sysinfo): what only the kernel can see */

struct sysinfo {
    uint32_t ticks;
    uint32_t hz;        /* ticks per second */
    uint32_t cr0;       /* ring 3 may not read control registers, so the kernel does it */
    uint32_t cr3;
    uint32_t irq0;      /* timer interrupts so far */
    uint32_t irq4;      /* serial console interrupts so far */
};

#endif
