/* Every interrupt, exception and system call enters the kernel here.
 *
 * The CPU pushes EFLAGS, CS and EIP (and, coming from ring 3, the user's SS and ESP first, after
 * switching to the kernel stack named in the TSS); some exceptions add an error code. Each stub
 * below makes the stack look the same for all of them, an error code (real or 0) and the vector
 * number, and trap_common saves the rest: the result is a struct trapframe for trap() in trap.c. */

#include "kernel.h"

/* TRAP n, e: the stub for vector n; e = 1 when the CPU pushes an error code itself.
 * Each stub also appends its address to the table trap_vectors (in .rodata), which
 * cpu.c copies into the IDT. */
.macro TRAP n, e
    .text
vector\n:
    .if \e == 0
    pushl $0
    .endif
    pushl $\n
    jmp trap_common
    .section .rodata
    .long vector\n
.endm

    .section .rodata
    .align 4
    .globl trap_vectors
trap_vectors:
    TRAP 0, 0       /* divide error */
    TRAP 1, 0       /* debug */
    TRAP 2, 0       /* non-maskable interrupt */
    TRAP 3, 0       /* breakpoint */
    TRAP 4, 0       /* overflow */
    TRAP 5, 0       /* bound range exceeded */
    TRAP 6, 0       /* invalid opcode */
    TRAP 7, 0       /* device not available */
    TRAP 8, 1       /* double fault */
    TRAP 9, 0       /* coprocessor segment overrun */
    TRAP 10, 1      /* invalid TSS */
    TRAP 11, 1      /* segment not present */
    TRAP 12, 1      /* stack-segment fault */
    TRAP 13, 1      /* general protection */
    TRAP 14, 1      /* page fault */
    TRAP 15, 0      /* reserved */
    TRAP 16, 0      /* x87 floating point */
    TRAP 17, 1      /* alignment check */
    TRAP 18, 0      /* machine check */
    TRAP 19, 0      /* SIMD floating point */
    TRAP 20, 0      /* virtualization */
    TRAP 21, 1      /* control protection */
    .irp n, 22, 23, 24, 25, 26, 27, 28
    TRAP \n, 0      /* reserved (28: hypervisor injection) */
    .endr
    TRAP 29, 1      /* VMM communication */
    TRAP 30, 1      /* security */
    TRAP 31, 0      /* reserved */
    .irp n, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47
    TRAP \n, 0      /* IRQ 0..15 from the two 8259s */
    .endr
    TRAP 128, 0     /* int $0x80: system call */

    .text
trap_common:
    pushl %ds
    pushl %es
    pushl %fs
    pushl %gs
    pushal
    movw $KERNEL_DS, %ax                /* the interrupted code may have had user segments loaded */
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %fs
    movw %ax, %gs
    pushl %esp                          /* trap(struct trapframe *) */
    call trap
    addl $4, %esp
    popal
    popl %gs
    popl %fs
    popl %es
    popl %ds
    addl $8, %esp                       /* the vector number and error code */
    iret

/* int run_user(eip, esp, arg): runs a user program in ring 3 and returns its exit code.
 *
 * It saves the kernel's callee-saved registers and stack pointer, then "returns" to ring 3 with iret,
 * which loads CS, EIP, EFLAGS, SS and ESP from the stack in one step. The program comes back only
 * through back_to_shell (called on its exit system call, or when it is killed), which restores
 * that saved stack and returns from run_user with the exit code, just as if run_user had returned.
 *
 * The program starts as if `eip(arg)` had been called: 32-bit C takes arguments on the stack, so
 * the words at esp are a return address (0: there is none) and arg. The program's address space
 * is already in CR3, so the kernel writes them at the user's own addresses. */
    .globl run_user
run_user:
    pushl %ebp
    pushl %ebx
    pushl %esi
    pushl %edi
    movl %esp, shell_esp
    movl 20(%esp), %eax                 /* eip */
    movl 24(%esp), %ecx                 /* esp */
    movl 28(%esp), %edx                 /* arg */
    movl $0, (%ecx)                     /* the return address */
    movl %edx, 4(%ecx)                  /* the argument */
    movw $USER_DS, %dx
    movw %dx, %ds
    movw %dx, %es
    movw %dx, %fs
    movw %dx, %gs
    pushl $USER_DS                      /* SS */
    pushl %ecx                          /* ESP */
    pushl $0x202                        /* EFLAGS: IF = 1, so interrupts keep coming in ring 3 */
    pushl $USER_CS                      /* CS: ring 3 */
    pushl %eax                          /* EIP */
    iret

/* back_to_shell(code): abandons whatever is on the current stack (the kernel entry of the program
 * that is ending) and resumes run_user's caller. */
    .globl back_to_shell
back_to_shell:
    movl 4(%esp), %eax
    movl shell_esp, %esp
    popl %edi
    popl %esi
    popl %ebx
    popl %ebp
    ret

    .bss
    .align 4
shell_esp:
    .skip 4

/* No executable stack wanted (this silences a linker warning). */
    .section .note.GNU-stack, "", @progbits
