/* The CPU's descriptor tables: the GDT (segments), the TSS (which stack to use when an interrupt
 * arrives in ring 3) and the IDT (where each interrupt vector goes). */

#include "kernel.h"
#include "syscall.h"

/* Paging does all the protecting in 1K OS, so every segment is flat: base 0, limit 4 GiB.
 * Segments still matter for one thing: the privilege level. Code running with CS = USER_CS is in
 * ring 3. */
static uint64_t gdt[6];

/* Only ss0:esp0 is used: the kernel stack the CPU switches to when an interrupt or system call
 * arrives while a program runs in ring 3. The other fields serve hardware task switching, which
 * 1K OS does not use. */
static struct {
    uint32_t prev_task;
    uint32_t esp0;
    uint32_t ss0;
    uint32_t unused[22];
    uint16_t trap;
    uint16_t iomap_base;    /* beyond the TSS's limit: no I/O bitmap, so ring 3 may not use in/out */
} __attribute__((packed)) tss;

/* The kernel stack for interrupts and system calls that come from ring 3. */
static uint8_t trap_stack[8192] __attribute__((aligned(16)));

static uint64_t idt[256];

/* The pointer operand of lgdt and lidt: table size - 1, then its linear address. */
struct table_pointer {
    uint16_t limit;
    uint32_t base;
} __attribute__((packed));

/* access: present, privilege level and type; flags: granularity and size (0xC = 4 KiB units, 32-bit). */
static uint64_t segment(uint32_t base, uint32_t limit, uint8_t access, uint8_t flags)
{
    return (limit & 0xFFFF)
         | (uint64_t)(base & 0xFFFFFF) << 16
         | (uint64_t)access << 40
         | (uint64_t)((limit >> 16) & 0xF) << 48
         | (uint64_t)(flags & 0xF) << 52
         | (uint64_t)(base >> 24) << 56;
}

/* type_attr 0x8E: present, ring 0, 32-bit interrupt gate (the CPU clears IF on entry);
 * 0xEE: the same, but ring 3 may use it with `int`. */
static uint64_t gate(uint32_t handler, uint8_t type_attr)
{
    return (handler & 0xFFFF)
         | (uint64_t)KERNEL_CS << 16
         | (uint64_t)type_attr << 40
         | (uint64_t)(handler >> 16) << 48;
}

void cpu_init(void)
{
    gdt[0] = 0;                                             /* the CPU requires a null entry */
    gdt[KERNEL_CS >> 3] = segment(0, 0xFFFFF, 0x9A, 0xC);   /* ring 0 code */
    gdt[KERNEL_DS >> 3] = segment(0, 0xFFFFF, 0x92, 0xC);   /* ring 0 data */
    gdt[USER_CS >> 3] = segment(0, 0xFFFFF, 0xFA, 0xC);     /* ring 3 code */
    gdt[USER_DS >> 3] = segment(0, 0xFFFFF, 0xF2, 0xC);     /* ring 3 data */
    gdt[TSS_SEL >> 3] = segment((uint32_t)&tss, sizeof tss - 1, 0x89, 0x0);  /* 32-bit TSS */

    tss.ss0 = KERNEL_DS;
    tss.esp0 = (uint32_t)trap_stack + sizeof trap_stack;
    tss.iomap_base = sizeof tss;

    struct table_pointer gdtr = { sizeof gdt - 1, (uint32_t)gdt };
    /* A new GDT takes effect only when the segment registers are reloaded: CS by a far jump. */
    asm volatile("lgdt %0\n\t"
                 "ljmp %1, $1f\n"
                 "1:\n\t"
                 "movw %2, %%ax\n\t"
                 "movw %%ax, %%ds\n\t"
                 "movw %%ax, %%es\n\t"
                 "movw %%ax, %%fs\n\t"
                 "movw %%ax, %%gs\n\t"
                 "movw %%ax, %%ss\n\t"
                 "ltr %w3"
                 : : "m"(gdtr), "i"(KERNEL_CS), "i"(KERNEL_DS), "r"(TSS_SEL) : "eax", "memory");

    for (int v = 0; v < 48; v++)
        idt[v] = gate(trap_vectors[v], 0x8E);
    idt[SYSCALL_VECTOR] = gate(trap_vectors[48], 0xEE);

    struct table_pointer idtr = { sizeof idt - 1, (uint32_t)idt };
    asm volatile("lidt %0" : : "m"(idtr));
}
