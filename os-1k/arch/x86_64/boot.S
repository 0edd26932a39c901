/* The first code of the 64-bit 1K OS. A Multiboot loader (QEMU's -kernel, GRUB, minikvm) cannot
 * start a 64-bit kernel directly: it copies the kernel to physical 0x100000 and jumps here in
 * 32-bit protected mode, paging off, EAX = 0x2BADB002 and EBX = the physical address of the
 * Multiboot information — exactly as for the 32-bit kernel (arch/i386/boot.S).
 *
 * So this file starts as 32-bit code (.code32) at physical addresses, V2P(symbol), and does what
 * long mode requires, in the order the CPU requires it:
 *   1. 4-level page tables (PML4 -> PDPT -> page directory -> page tables) mapping the first
 *      4 MiB twice: at 0 (the code below runs there) and at KERNEL_BASE (where it is linked);
 *   2. CR4.PAE (long mode uses PAE-format, 8-byte entries), CR3 = the PML4;
 *   3. EFER.LME (the MSR that asks for long mode);
 *   4. CR0.PG: paging goes on and the CPU enters long mode (EFER.LMA = 1), still running the
 *      32-bit code segment ("compatibility mode");
 *   5. a far jump to a 64-bit code segment (L = 1): now 64-bit code runs;
 *   6. an absolute jump up to the high addresses, and kernel_main. */

#include "kernel.h"

#define V2P(x) ((x) - KERNEL_BASE)

#define MULTIBOOT_MAGIC 0x1BADB002
#define MULTIBOOT_FLAGS 0x00000002      /* bit 1: please fill in the memory size */

#define CR4_PAE         (1 << 5)
#define MSR_EFER        0xC0000080
#define EFER_LME        (1 << 8)
#define CR0_PG          0x80000000
#define BOOT_CS         0x08            /* boot_gdt's 64-bit code segment */
#define BOOT_DS         0x10

/* Which entry of each table covers an address: 9 bits per level (arch.h). */
#define PML4_INDEX(va)  (((va) >> 39) & 511)
#define PDPT_INDEX(va)  (((va) >> 30) & 511)

/* The loader looks for this header in the first 8 KiB of the file; kernel.ld puts it first. */
    .section .multiboot, "a"
    .align 4
    .long MULTIBOOT_MAGIC
    .long MULTIBOOT_FLAGS
    .long -(MULTIBOOT_MAGIC + MULTIBOOT_FLAGS)     /* the three words must add up to 0 */

    .text
    .code32
    .globl _start
_start:
    cli
    cld
    movl %eax, %esi                     /* keep the loader's magic (EBX keeps its info pointer) */

    /* Zero .bss: C expects it, and a loader need not have done it. The tables below are in it. */
    movl $V2P(__bss_start), %edi
    movl $V2P(__bss_end), %ecx
    subl %edi, %ecx
    xorl %eax, %eax
    rep stosb

    /* Two page tables (1024 entries of 8 bytes, one after the other) map the first 4 MiB of
     * physical memory: entry i -> page i. The upper half of each entry stays 0 (zeroed above). */
    movl $V2P(kernel_page_tables), %edi
    movl $(PTE_P | PTE_W), %eax
    movl $1024, %ecx
1:  movl %eax, (%edi)
    addl $8, %edi
    addl $PAGE_SIZE, %eax
    loop 1b

    /* The page directory points to the two tables: 0..2 MiB and 2..4 MiB. */
    movl $(V2P(kernel_page_tables) + PTE_P + PTE_W), %eax
    movl %eax, V2P(kernel_pd)
    addl $PAGE_SIZE, %eax
    movl %eax, V2P(kernel_pd) + 8

    /* Two PDPTs use that directory: one for 0 (so that the instructions right after paging goes
     * on, still at physical addresses, keep working), one for KERNEL_BASE. The PML4 points to
     * both. None has PTE_U: ring 3 may touch none of it. */
    movl $(V2P(kernel_pd) + PTE_P + PTE_W), %eax
    movl %eax, V2P(boot_pdpt)
    movl %eax, V2P(kernel_pdpt) + PDPT_INDEX(KERNEL_BASE) * 8
    movl $(V2P(boot_pdpt) + PTE_P + PTE_W), %eax
    movl %eax, V2P(kernel_pml4)
    movl $(V2P(kernel_pdpt) + PTE_P + PTE_W), %eax
    movl %eax, V2P(kernel_pml4) + PML4_INDEX(KERNEL_BASE) * 8

    movl %cr4, %eax
    orl $CR4_PAE, %eax
    movl %eax, %cr4
    movl $V2P(kernel_pml4), %eax
    movl %eax, %cr3
    movl $MSR_EFER, %ecx
    rdmsr
    orl $EFER_LME, %eax
    wrmsr

    lgdt V2P(boot_gdt_pointer)          /* has the 64-bit code segment the far jump needs */
    movl %cr0, %eax
    orl $CR0_PG, %eax
    .globl enable_paging
enable_paging:
    movl %eax, %cr0                     /* paging on, and with EFER.LME set: long mode */

    /* Long mode, but CS is still the loader's 32-bit segment. A far jump loads one with L = 1. */
    ljmp $BOOT_CS, $V2P(start64)

    .code64
start64:
    movw $BOOT_DS, %ax                  /* the loader's data selectors mean nothing in boot_gdt */
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    /* An absolute jump moves us to the high addresses the kernel was linked for. */
    movabsq $higher_half, %rax
    jmp *%rax
higher_half:
    movq $boot_stack_top, %rsp
    xorl %ebp, %ebp                     /* marks the outermost frame for gdb's backtrace */
    movl %esi, %edi                     /* kernel_main(magic, multiboot_info_physical): in */
    movl %ebx, %esi                     /* 64-bit C, arguments come in RDI, RSI, not on the stack */
    call kernel_main
2:  cli                                 /* kernel_main never returns; stop if it ever does */
    hlt
    jmp 2b

/* The boot GDT: only what the far jump into 64-bit code needs. cpu.c replaces it. */
    .section .rodata
    .align 8
boot_gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF            /* 0x08: code, ring 0, L = 1 (64-bit), D = 0 */
    .quad 0x00CF92000000FFFF            /* 0x10: data, ring 0 */
boot_gdt_end:
boot_gdt_pointer:
    .word boot_gdt_end - boot_gdt - 1
    .long V2P(boot_gdt)                 /* lgdt runs before paging: a physical address */

    .bss
    .align PAGE_SIZE
    .globl kernel_pml4
kernel_pml4:
    .skip PAGE_SIZE
kernel_pdpt:
    .skip PAGE_SIZE
boot_pdpt:
    .skip PAGE_SIZE
kernel_pd:
    .skip PAGE_SIZE
kernel_page_tables:
    .skip 2 * PAGE_SIZE
boot_stack:
    .skip 16384
boot_stack_top:

/* No executable stack wanted (this silences a linker warning). */
    .section .note.GNU-stack, "", @progbits
