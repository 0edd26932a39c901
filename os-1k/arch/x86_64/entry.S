/* Every interrupt, exception and system call enters the kernel here (64-bit version of
 * arch/i386/entry.S).
 *
 * In long mode the CPU always pushes SS, RSP, RFLAGS, CS and RIP (i386 pushes SS and ESP only
 * when coming from ring 3), after switching to the stack named by the TSS's RSP0 when it comes
 * from ring 3, and after aligning the stack to 16 bytes; some exceptions add an error code. Each
 * stub below makes the stack look the same for all of them, an error code (real or 0) and the
 * vector number, and trap_common saves the rest: the result is a struct trapframe for trap(). */

#include "kernel.h"

/* TRAP n, e: the stub for vector n; e = 1 when the CPU pushes an error code itself.
 * Each stub also appends its address to the table trap_vectors (in .rodata), which
 * cpu.c copies into the IDT. */
.macro TRAP n, e
    .text
vector\n:
    .if \e == 0
    pushq $0
    .endif
    pushq $\n
    jmp trap_common
    .section .rodata
    .quad vector\n
.endm

    .section .rodata
    .align 8
    .globl trap_vectors
trap_vectors:
    TRAP 0, 0       /* divide error */
    TRAP 1, 0       /* debug */
    TRAP 2, 0       /* non-maskable interrupt */
    TRAP 3, 0       /* breakpoint */
    TRAP 4, 0       /* overflow */
    TRAP 5, 0       /* bound range exceeded (no BOUND instruction in 64-bit mode) */
    TRAP 6, 0       /* invalid opcode */
    TRAP 7, 0       /* device not available */
    TRAP 8, 1       /* double fault */
    TRAP 9, 0       /* coprocessor segment overrun */
    TRAP 10, 1      /* invalid TSS */
    TRAP 11, 1      /* segment not present */
    TRAP 12, 1      /* stack-segment fault */
    TRAP 13, 1      /* general protection (also: a non-canonical address) */
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

/* There is no pushal in 64-bit mode: the registers are pushed one by one, in the reverse order of
 * struct trapframe's fields. 5 + 2 + 15 words = 176 bytes, a multiple of 16, so the stack is
 * 16-byte aligned at the call, as the 64-bit C calling convention wants. */
    .text
trap_common:
    pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, %rdi                     /* trap(struct trapframe *): the argument in RDI */
    call trap
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rbp
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rbx
    popq %rax
    addq $16, %rsp                      /* the vector number and error code */
    iretq

/* int run_user(rip, rsp, arg): runs a user program in ring 3 and returns its exit code.
 *
 * It saves the kernel's callee-saved registers and stack pointer, then "returns" to ring 3 with
 * iretq, which loads RIP, CS, RFLAGS, RSP and SS from the stack in one step. The program comes
 * back only through back_to_shell (called on its exit system call, or when it is killed), which
 * restores that saved stack and returns from run_user with the exit code.
 *
 * The program starts as if `rip(arg)` had been called: 64-bit C takes its first argument in RDI,
 * and finds its return address (0: there is none) at RSP. The program's address space is already
 * in CR3, so the kernel writes that word at the user's own address. */
    .globl run_user
run_user:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, shell_rsp
    movq $0, (%rsi)                     /* the return address */
    pushq $USER_DS                      /* SS */
    pushq %rsi                          /* RSP */
    pushq $0x202                        /* RFLAGS: IF = 1, so interrupts keep coming in ring 3 */
    pushq $USER_CS                      /* CS: ring 3 */
    pushq %rdi                          /* RIP */
    movq %rdx, %rdi                     /* the argument */
    iretq

/* back_to_shell(code): abandons whatever is on the current stack (the kernel entry of the program
 * that is ending) and resumes run_user's caller. */
    .globl back_to_shell
back_to_shell:
    movl %edi, %eax
    movq shell_rsp, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret

    .bss
    .align 8
shell_rsp:
    .skip 8

/* No executable stack wanted (this silences a linker warning). */
    .section .note.GNU-stack, "", @progbits
