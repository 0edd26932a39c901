/* What the shared kernel code needs to know about 64-bit x86 (x86-64, long mode). Its twin is
 * arch/i386/include/arch.h: read the two side by side for what changes from 32 to 64 bits. */
#ifndef ARCH_H
#define ARCH_H

/* The kernel runs at 0xFFFFFFFF80000000 + its physical address: the top 2 GiB of the 64-bit
 * address space. Addresses must be canonical (bits 63..47 all equal), so the space is two halves,
 * 0..0x00007FFFFFFFFFFF for user programs and 0xFFFF800000000000.. for the kernel. The top 2 GiB
 * is where gcc's -mcmodel=kernel can reach every symbol with a sign-extended 32-bit number. */
#define KERNEL_BASE     0xFFFFFFFF80000000

/* Four-level paging: PML4 -> page-directory-pointer table -> page directory -> page table, each
 * 512 entries of 8 bytes. 9 + 9 + 9 + 9 + 12 = 48 bits of virtual address. */
#define PT_LEVELS       4
#define PT_INDEX_BITS   9
#define PAGING_ROOT_NAME "PML4"

/* GDT selectors: the same numbers as on i386, so programs see the same CS (0x1b). The TSS
 * descriptor is 16 bytes in long mode: it takes entries 5 and 6. */
#define KERNEL_CS       0x08
#define KERNEL_DS       0x10
#define USER_CS         (0x18 | 3)
#define USER_DS         (0x20 | 3)
#define TSS_SEL         0x28

/* How the programs' `about` describes the machine. */
#define ARCH_MODE       "64-bit long mode with 4-level paging"
#define PC_NAME         "rip"

#ifndef __ASSEMBLER__

#include <stdint.h>

typedef uint64_t pte_t;     /* a page-table entry: physical address | flags (bit 63: no-execute) */

/* What entry.S pushes for every interrupt, exception and system call, lowest address first.
 * No segment registers: in 64-bit mode DS, ES, FS and GS hold nothing the kernel must restore. */
struct trapframe {
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
    uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
    uint64_t vector;
    uint64_t error;     /* the CPU's error code, or 0 for vectors that have none */
    /* Pushed by the CPU. Unlike i386, always all five, from ring 0 as from ring 3. */
    uint64_t rip, cs, rflags, rsp, ss;
};

/* The system call convention (include/syscall.h), widened: number in RAX, arguments in RBX and
 * RCX, the result back in RAX. */
#define TF_PC(tf)               ((tf)->rip)
#define TF_SYSCALL_NUMBER(tf)   ((tf)->rax)
#define TF_SYSCALL_ARG1(tf)     ((tf)->rbx)
#define TF_SYSCALL_ARG2(tf)     ((tf)->rcx)
#define TF_SYSCALL_RESULT(tf)   ((tf)->rax)

/* boot.S: the kernel's PML4, the root of its page tables. */
extern pte_t kernel_pml4[512];
#define kernel_root kernel_pml4

/* trapframe.c: the registers of a kernel exception, for the report before the panic. */
struct trapframe;
void arch_print_trapframe(const struct trapframe *tf);

#endif /* __ASSEMBLER__ */
#endif
