/* The registers of a trap frame, printed when the kernel itself faults (see trap.c). */

#include "kernel.h"
#include "x86.h"

void arch_print_trapframe(const struct trapframe *tf)
{
    kprintf("    rip=0x%016lx cs=0x%lx rflags=0x%08lx\n", tf->rip, tf->cs, tf->rflags);
    if (tf->vector == 14)
        kprintf("    cr2=0x%016lx (the address that could not be accessed)\n", read_cr2());
    kprintf("    rax=0x%016lx rbx=0x%016lx rcx=0x%016lx\n", tf->rax, tf->rbx, tf->rcx);
    kprintf("    rdx=0x%016lx rsi=0x%016lx rdi=0x%016lx\n", tf->rdx, tf->rsi, tf->rdi);
    kprintf("    rbp=0x%016lx rsp=0x%016lx\n", tf->rbp, tf->rsp);
}
