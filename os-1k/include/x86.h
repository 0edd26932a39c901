/* Thin wrappers around the x86 instructions C cannot express. They compile for both flavours:
 * `unsigned long` is 32 bits on i386 and 64 on x86-64, the width of EFLAGS/RFLAGS and of the
 * control registers, and `pushf`/`pop` take the size of the mode they are assembled for. */
#ifndef X86_H
#define X86_H

#include <stdint.h>

static inline void outb(uint16_t port, uint8_t value)
{
    asm volatile("outb %0, %1" : : "a"(value), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
    uint8_t value;
    asm volatile("inb %1, %0" : "=a"(value) : "Nd"(port));
    return value;
}

/* The "memory" clobbers stop the compiler from moving memory accesses across these. */
static inline void cli(void) { asm volatile("cli" : : : "memory"); }
static inline void sti(void) { asm volatile("sti" : : : "memory"); }
static inline void hlt(void) { asm volatile("hlt" : : : "memory"); }

/* sti only takes effect after the instruction that follows it, so no interrupt can arrive
 * between the two: an interrupt that is already pending wakes the hlt instead of being lost. */
static inline void sti_hlt(void) { asm volatile("sti; hlt" : : : "memory"); }

static inline unsigned long read_eflags(void)
{
    unsigned long v;
    asm volatile("pushf; pop %0" : "=r"(v));
    return v;
}

static inline unsigned long read_cr0(void)
{
    unsigned long v;
    asm volatile("mov %%cr0, %0" : "=r"(v));
    return v;
}

static inline unsigned long read_cr2(void)
{
    unsigned long v;
    asm volatile("mov %%cr2, %0" : "=r"(v));
    return v;
}

static inline unsigned long read_cr3(void)
{
    unsigned long v;
    asm volatile("mov %%cr3, %0" : "=r"(v));
    return v;
}

/* Loading CR3 also flushes the TLB, so stale translations of the old address space go away. */
static inline void write_cr3(unsigned long v)
{
    asm volatile("mov %0, %%cr3" : : "r"(v) : "memory");
}

#define EFLAGS_IF 0x200ul

#endif
