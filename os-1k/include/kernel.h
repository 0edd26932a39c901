/* Declarations shared by the kernel's files (and constants shared with the assembly files). */
#ifndef KERNEL_H
#define KERNEL_H

/* The kernel runs at 0xC0000000 + its physical address: the "higher half". Everything below belongs
 * to user programs. */
#define KERNEL_BASE     0xC0000000

#define PAGE_SIZE       4096
#define PTE_P           0x001   /* present */
#define PTE_W           0x002   /* writable */
#define PTE_U           0x004   /* user: ring 3 may touch it */

/* Where every program sees its code and data, and its stack. Both lie in one 4 MiB page table. */
#define USER_BASE       0x00400000
#define USER_STACK_TOP  0x00800000
#define USER_STACK_PAGES 2
/* A program starts with ESP here: the top two words of its stack hold user_start's return address
 * and argument (see user_space_create). */
#define USER_START_ESP  (USER_STACK_TOP - 8)

/* GDT selectors. The low two bits of a selector are the privilege level it asks for. */
#define KERNEL_CS       0x08
#define KERNEL_DS       0x10
#define USER_CS         (0x18 | 3)
#define USER_DS         (0x20 | 3)
#define TSS_SEL         0x28

#define IRQ_BASE        0x20    /* IRQ 0..15 arrive on vectors 0x20..0x2F after the PIC remap */
#define TIMER_HZ        100

#ifndef __ASSEMBLER__

#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>

#define P2V(pa) ((void *)((uint32_t)(pa) + KERNEL_BASE))
#define V2P(va) ((uint32_t)(va) - KERNEL_BASE)

/* What entry.S pushes for every interrupt, exception and system call, lowest address first. */
struct trapframe {
    uint32_t edi, esi, ebp, esp_unused, ebx, edx, ecx, eax;  /* pushal */
    uint32_t gs, fs, es, ds;
    uint32_t vector;
    uint32_t error;     /* the CPU's error code, or 0 for vectors that have none */
    uint32_t eip, cs, eflags;           /* pushed by the CPU */
    uint32_t user_esp, user_ss;         /* pushed by the CPU only when coming from ring 3 */
};

/* boot.S */
extern uint32_t kernel_pgdir[1024];

/* entry.S */
extern const uint32_t trap_vectors[49];
int run_user(uint32_t eip, uint32_t esp);
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
void memory_init(uint32_t mem_end);
uint32_t memory_free_pages(void);
uint32_t *user_space_create(int (*main)(void));
void user_space_free(uint32_t *pgdir);
bool user_memory_ok(uint32_t addr, uint32_t len);

/* syscall.c */
void syscall_dispatch(struct trapframe *tf);

/* lib.c */
void kprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void *memset(void *dst, int c, size_t n);
void *memcpy(void *dst, const void *src, size_t n);
int strcmp(const char *a, const char *b);

#endif /* __ASSEMBLER__ */
#endif
