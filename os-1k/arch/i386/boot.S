/* The first code of 1K OS. A Multiboot loader (QEMU's -kernel, GRUB, minikvm) copies the kernel to
 * physical 0x100000 and jumps here with paging off, EAX = 0x2BADB002 and EBX = the physical address
 * of the Multiboot information.
 *
 * The kernel is linked to run at 0xC0100000 (the "higher half"), but until paging is on every
 * address is physical. So this file, which runs first, uses only relative jumps and, for data,
 * the physical addresses V2P(symbol). Its job: turn paging on with the kernel mapped at both
 * addresses, jump up to the high one, and call kernel_main. */

#include "kernel.h"

#define V2P(x) ((x) - KERNEL_BASE)

#define MULTIBOOT_MAGIC 0x1BADB002
#define MULTIBOOT_FLAGS 0x00000002      /* bit 1: please fill in the memory size */

/* The loader looks for this header in the first 8 KiB of the file; kernel.ld puts it first. */
    .section .multiboot, "a"
    .align 4
    .long MULTIBOOT_MAGIC
    .long MULTIBOOT_FLAGS
    .long -(MULTIBOOT_MAGIC + MULTIBOOT_FLAGS)     /* the three words must add up to 0 */

    .text
    .globl _start
_start:
    cli
    cld
    movl %eax, %esi                     /* keep the loader's magic and info pointer for kernel_main */

    /* Zero .bss: C expects it, and a loader need not have done it. */
    movl $V2P(__bss_start), %edi
    movl $V2P(__bss_end), %ecx
    subl %edi, %ecx
    xorl %eax, %eax
    rep stosb

    /* One page table maps the first 4 MiB of physical memory: entry i -> page i. */
    movl $V2P(kernel_page_table), %edi
    movl $(PTE_P | PTE_W), %eax
    movl $1024, %ecx
1:  stosl
    addl $PAGE_SIZE, %eax
    loop 1b

    /* The page directory uses that table twice: for 0x00000000 (so that the instructions right
     * after paging goes on, still at physical addresses, keep working) and for 0xC0000000, where
     * the kernel was linked to run. Neither has PTE_U: ring 3 may touch none of it. */
    movl $(V2P(kernel_page_table) + PTE_P + PTE_W), %eax
    movl %eax, V2P(kernel_pgdir)
    movl %eax, V2P(kernel_pgdir) + (KERNEL_BASE >> 22) * 4

    movl $V2P(kernel_pgdir), %eax
    movl %eax, %cr3
    movl %cr0, %eax
    orl $0x80000000, %eax               /* CR0.PG */
    .globl enable_paging
enable_paging:
    movl %eax, %cr0

    /* Paging is on. An absolute jump moves us to the high addresses the kernel was linked for. */
    movl $higher_half, %eax
    jmp *%eax
higher_half:
    movl $boot_stack_top, %esp
    xorl %ebp, %ebp                     /* marks the outermost frame for gdb's backtrace */
    pushl %ebx                          /* kernel_main(magic, multiboot_info_physical) */
    pushl %esi
    call kernel_main
2:  cli                                 /* kernel_main never returns; stop if it ever does */
    hlt
    jmp 2b

    .bss
    .align PAGE_SIZE
    .globl kernel_pgdir
kernel_pgdir:
    .skip PAGE_SIZE
kernel_page_table:
    .skip PAGE_SIZE
boot_stack:
    .skip 16384
boot_stack_top:

/* No executable stack wanted (this silences a linker warning). */
    .section .note.GNU-stack, "", @progbits
