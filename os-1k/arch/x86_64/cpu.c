/* The CPU's descriptor tables in long mode (64-bit version of arch/i386/cpu.c): the GDT
 * (segments), the TSS (which stack to use when an interrupt arrives in ring 3) and the IDT (where
 * each interrupt vector goes). */

#include "kernel.h"
#include "syscall.h"

/* In 64-bit mode segments have no base and no limit (except FS and GS bases, unused here): what
 * is left of them is the privilege level and, for code, the L bit that says "64-bit code". The
 * TSS descriptor is twice as long as on i386 (its base is a 64-bit address): entries 5 and 6. */
static uint64_t gdt[7];

/* The 64-bit TSS holds no registers any more (no hardware task switching in long mode): only
 * stack pointers. RSP0 is the kernel stack the CPU switches to when an interrupt or system call
 * arrives while a program runs in ring 3. (IST1..7 could name stacks for particular vectors.) */
static struct {
    uint32_t reserved0;
    uint64_t rsp0, rsp1, rsp2;
    uint64_t reserved1;
    uint64_t ist[7];
    uint64_t reserved2;
    uint16_t reserved3;
    uint16_t iomap_base;    /* beyond the TSS's limit: no I/O bitmap, so ring 3 may not use in/out */
} __attribute__((packed)) tss;

/* The kernel stack for interrupts and system calls that come from ring 3. */
static uint8_t trap_stack[8192] __attribute__((aligned(16)));

/* 256 gates of 16 bytes: two words each. */
static uint64_t idt[2 * 256];

/* The pointer operand of lgdt and lidt: table size - 1, then its linear address, now 8 bytes. */
struct table_pointer {
    uint16_t limit;
    uint64_t base;
} __attribute__((packed));

/* access: present, privilege level and type; flags: 0xA = 4 KiB units and L (64-bit code),
 * 0xC = 4 KiB units and 32-bit (for data, where only "present" and the type still count). */
static uint64_t segment(uint32_t base, uint32_t limit, uint8_t access, uint8_t flags)
{
    return (limit & 0xFFFF)
         | (uint64_t)(base & 0xFFFFFF) << 16
         | (uint64_t)access << 40
         | (uint64_t)((limit >> 16) & 0xF) << 48
         | (uint64_t)(flags & 0xF) << 52
         | (uint64_t)(base >> 24) << 56;
}

/* The 16-byte TSS descriptor: a segment() with the low 32 bits of the base, then the high 32. */
static void tss_descriptor(uint64_t *slot, uint64_t base, uint32_t limit)
{
    slot[0] = segment((uint32_t)base, limit, 0x89, 0x0);   /* present, ring 0, 64-bit TSS */
    slot[1] = base >> 32;
}

/* A 16-byte gate: the handler's address in three pieces (16, 16 and 32 bits), the code segment,
 * and type_attr 0x8E: present, ring 0, 64-bit interrupt gate (the CPU clears IF on entry);
 * 0xEE: the same, but ring 3 may use it with `int`. */
static void gate(uint64_t *slot, uint64_t handler, uint8_t type_attr)
{
    slot[0] = (handler & 0xFFFF)
            | (uint64_t)KERNEL_CS << 16
            | (uint64_t)type_attr << 40
            | ((handler >> 16) & 0xFFFF) << 48;
    slot[1] = handler >> 32;
}

void cpu_init(void)
{
    gdt[0] = 0;                                             /* the CPU requires a null entry */
    gdt[KERNEL_CS >> 3] = segment(0, 0xFFFFF, 0x9A, 0xA);   /* ring 0 code, 64-bit */
    gdt[KERNEL_DS >> 3] = segment(0, 0xFFFFF, 0x92, 0xC);   /* ring 0 data */
    gdt[USER_CS >> 3] = segment(0, 0xFFFFF, 0xFA, 0xA);     /* ring 3 code, 64-bit */
    gdt[USER_DS >> 3] = segment(0, 0xFFFFF, 0xF2, 0xC);     /* ring 3 data */
    tss_descriptor(&gdt[TSS_SEL >> 3], (uint64_t)&tss, sizeof tss - 1);

    tss.rsp0 = (uint64_t)trap_stack + sizeof trap_stack;
    tss.iomap_base = sizeof tss;

    struct table_pointer gdtr = { sizeof gdt - 1, (uint64_t)gdt };
    /* A new GDT takes effect only when the segment registers are reloaded. 64-bit mode has no far
     * jump to an immediate address, so CS is reloaded by a far return: push CS and RIP, lretq. */
    asm volatile("lgdt %0\n\t"
                 "pushq %1\n\t"
                 "leaq 1f(%%rip), %%rax\n\t"
                 "pushq %%rax\n\t"
                 "lretq\n"
                 "1:\n\t"
                 "movw %2, %%ax\n\t"
                 "movw %%ax, %%ds\n\t"
                 "movw %%ax, %%es\n\t"
                 "movw %%ax, %%fs\n\t"
                 "movw %%ax, %%gs\n\t"
                 "movw %%ax, %%ss\n\t"
                 "ltr %w3"
                 : : "m"(gdtr), "i"(KERNEL_CS), "i"(KERNEL_DS), "r"(TSS_SEL) : "rax", "memory");

    for (int v = 0; v < 48; v++)
        gate(&idt[2 * v], trap_vectors[v], 0x8E);
    gate(&idt[2 * SYSCALL_VECTOR], trap_vectors[48], 0xEE);

    struct table_pointer idtr = { sizeof idt - 1, (uint64_t)idt };
    asm volatile("lidt %0" : : "m"(idtr));
}
