/* Declarations shared by the kernel's files (and constants shared with the assembly files).
 * What differs between 32-bit and 64-bit x86 comes from arch.h (arch/<arch>/include/arch.h). */
#ifndef KERNEL_H
#define KERNEL_H

#include "arch.h"

#define PAGE_SIZE       4096
#define PTE_P           0x001   /* present */
#define PTE_W           0x002   /* writable */
#define PTE_U           0x004   /* user: ring 3 may touch it */

/* Where every program sees its code and data, and its stack. */
#define USER_BASE       0x00400000
#define USER_STACK_TOP  0x00800000
#define USER_STACK_PAGES 2
/* A program starts with its stack pointer here: the word at it is user_start's return address
 * (none: 0), as if user_start had been called (see run_user in entry.S). */
#define USER_START_SP   (USER_STACK_TOP - 8)

#define IRQ_BASE        0x20    /* IRQ 0..15 arrive on vectors 0x20..0x2F after the PIC remap */
#define TIMER_HZ        100

#ifndef __ASSEMBLER__

#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>

#define P2V(pa) ((void *)((uintptr_t)(pa) + KERNEL_BASE))
#define V2P(va) ((uintptr_t)(va) - KERNEL_BASE)

/* entry.S */
extern const uintptr_t trap_vectors[49];
int run_user(uintptr_t entry, uintptr_t sp, uintptr_t arg);
__attribute__((noreturn)) void back_to_shell(int code);

/* cpu.c */
void cpu_init(void);

/* trap.c */
extern volatile uint32_t ticks;
extern volatile uint32_t irq_count[16];
void interrupts_init(void);
void trap(struct trapframe *tf);
__attribute__((noreturn)) void panic(const char *why);

/* console.c */
void console_init(void);
void console_enable_input_interrupts(void);
void console_interrupt(void);
void console_putc(char c);
int console_readline(char *buf, int size);

/* memory.c */
void memory_init(uintptr_t mem_end);
uint32_t memory_free_pages(void);
pte_t *user_space_create(void);
void user_space_free(pte_t *root);
bool user_memory_ok(uintptr_t addr, uintptr_t len);

/* syscall.c */
void syscall_dispatch(struct trapframe *tf);

/* lib.c */
void kprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void *memset(void *dst, int c, size_t n);
void *memcpy(void *dst, const void *src, size_t n);
int strcmp(const char *a, const char *b);

#endif /* __ASSEMBLER__ */
#endif
