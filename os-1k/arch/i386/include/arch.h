/* What the shared kernel code needs to know about 32-bit x86 (i386). Its twin is
 * arch/x86_64/include/arch.h: read the two side by side for what changes from 32 to 64 bits. */
#ifndef ARCH_H
#define ARCH_H

/* The kernel runs at 0xC0000000 + its physical address: the "higher half", the top 1 GiB of the
 * 4 GiB a 32-bit address reaches. Everything below belongs to user programs. */
#define KERNEL_BASE     0xC0000000

/* Two-level paging: a page directory of 1024 entries, each naming a page table of 1024 entries,
 * each naming a 4 KiB page. 10 + 10 + 12 = 32 bits of virtual address. */
#define PT_LEVELS       2
#define PT_INDEX_BITS   10
#define PAGING_ROOT_NAME "page directory"

/* GDT selectors. The low two bits of a selector are the privilege level it asks for. */
#define KERNEL_CS       0x08
#define KERNEL_DS       0x10
#define USER_CS         (0x18 | 3)
#define USER_DS         (0x20 | 3)
#define TSS_SEL         0x28

/* How the programs' `about` describes the machine. */
#define ARCH_MODE       "32-bit protected mode with paging"
#define PC_NAME         "eip"

#ifndef __ASSEMBLER__

#include <stdint.h>

typedef uint32_t pte_t;     /* a page-table entry: physical address | flags */

/* What entry.S pushes for every interrupt, exception and system call, lowest address first. */
struct trapframe {
    uint32_t edi, esi, ebp, esp_unused, ebx, edx, ecx, eax;  /* pushal */
    uint32_t gs, fs, es, ds;
    uint32_t vector;
    uint32_t error;     /* the CPU's error code, or 0 for vectors that have none */
    uint32_t eip, cs, eflags;           /* pushed by the CPU */
    uint32_t user_esp, user_ss;         /* pushed by the CPU only when coming from ring 3 */
};

/* The system call convention (include/syscall.h): number in EAX, arguments in EBX and ECX, the
 * result back in EAX. */
#define TF_PC(tf)               ((tf)->eip)
#define TF_SYSCALL_NUMBER(tf)   ((tf)->eax)
#define TF_SYSCALL_ARG1(tf)     ((tf)->ebx)
#define TF_SYSCALL_ARG2(tf)     ((tf)->ecx)
#define TF_SYSCALL_RESULT(tf)   ((tf)->eax)

/* boot.S: the kernel's page directory, the root of its page tables. */
extern pte_t kernel_pgdir[1024];
#define kernel_root kernel_pgdir

/* trapframe.c: the registers of a kernel exception, for the report before the panic. */
struct trapframe;
void arch_print_trapframe(const struct trapframe *tf);

#endif /* __ASSEMBLER__ */
#endif
