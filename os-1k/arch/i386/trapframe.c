/* The registers of a trap frame, printed when the kernel itself faults (see trap.c). */

#include "kernel.h"
#include "x86.h"

void arch_print_trapframe(const struct trapframe *tf)
{
    kprintf("    eip=0x%08x cs=0x%x eflags=0x%08x\n", tf->eip, tf->cs, tf->eflags);
    if (tf->vector == 14)
        kprintf("    cr2=0x%08lx (the address that could not be accessed)\n", read_cr2());
    kprintf("    eax=0x%08x ebx=0x%08x ecx=0x%08x edx=0x%08x\n", tf->eax, tf->ebx, tf->ecx, tf->edx);
    kprintf("    esi=0x%08x edi=0x%08x ebp=0x%08x\n", tf->esi, tf->edi, tf->ebp);
}
