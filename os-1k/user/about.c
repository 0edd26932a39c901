/* Program 9, about, and the hidden program f, which breaks the rules on purpose. */

#include "user.h"
#include "programs.h"
#include "arch.h"       /* KERNEL_BASE and ARCH_MODE: constants, nothing to call */

static void cpuid(uint32_t leaf, uint32_t regs[4])
{
    asm volatile("cpuid"
                 : "=a"(regs[0]), "=b"(regs[1]), "=c"(regs[2]), "=d"(regs[3])
                 : "a"(leaf), "c"(0));
}

/* CPUID is allowed in ring 3. Under a hypervisor, leaf 1 sets ECX bit 31, and leaf 0x40000000
 * names the hypervisor in 12 bytes of EBX, ECX, EDX (e.g. "minikvm", "KVMKVMKVM"). */
static void print_hypervisor(void)
{
    uint32_t regs[4];
    cpuid(1, regs);
    if (!(regs[2] & (1u << 31))) {
        printf("hypervisor: none (CPUID.1:ECX bit 31 is clear)\n");
        return;
    }
    cpuid(0x40000000, regs);
    char name[13];
    int len = 0;
    for (int i = 0; i < 12; i++) {
        char c = (char)(regs[1 + i / 4] >> (8 * (i % 4)));
        if (c < ' ' || c > '~')
            break;      /* the name ends at the first NUL (or at anything unprintable) */
        name[len++] = c;
    }
    name[len] = '\0';
    printf("hypervisor: %s\n", len > 0 ? name : "none named (CPUID leaf 0x40000000 is empty)");
}

int about(void)
{
    struct sysinfo si;
    info(&si);
    uint16_t cs;
    asm volatile("mov %%cs, %0" : "=r"(cs));

    printf("1K OS: a small teaching operating system. " ARCH_MODE "; each\n");
    printf("program runs in ring 3 in its own address space and asks the kernel for things with\n");
    printf("system calls (int 0x80); a timer (IRQ 0) and the serial console (IRQ 4) interrupt it.\n");
    printf("uptime: %u ticks (%u.%02u s)\n", si.ticks, si.ticks / si.hz, (si.ticks % si.hz) * 100 / si.hz);
    printf("interrupts: irq0=%u irq4=%u\n", si.irq0, si.irq4);
    printf("CR0=0x%08x (PE=%u PG=%u), read by the kernel: ring 3 may not\n",
           si.cr0, si.cr0 & 1, si.cr0 >> 31);
    printf("CR3=0x%08x: this program's " PAGING_ROOT_NAME "\n", si.cr3);
    printf("running in ring %u (CS=0x%x)\n", cs & 3u, cs);
    print_hypervisor();
    return 0;
}

/* Reads the kernel's first page. It is mapped, but supervisor-only, so the CPU raises a page fault
 * and the kernel ends this program. */
int fault(void)
{
    volatile uint32_t *kernel = (volatile uint32_t *)(KERNEL_BASE + 0x100000);
    printf("reading kernel memory at 0x%lx from ring 3...\n", (unsigned long)kernel);
    uint32_t value = *kernel;
    printf("read 0x%08x: the kernel is not protected!\n", value);
    return 1;
}
