# minikvm-test-kernel: enters long mode, drops to ring 3 with iretq and makes two `syscall`s with no IDT at all; the handler at LSTAR checks it runs at ring 0 and returns from the first with `sysretq`, ring 3 checks it is back at CS 0x23; the second call prints one line and ends through debug-exit with 0. Any check that fails runs `ud2`: with no IDT, a triple fault. Where the host's KVM runs the handler at CPL 3 (doctor's `syscall` probe), `sysretq` there raises #GP: a triple fault in ring 3
.include "lib.inc"

.set MSR_EFER,  0xc0000080
.set MSR_STAR,  0xc0000081
.set MSR_LSTAR, 0xc0000082

.section .text
.code32
main:
    mov $pd, %edi                    # identity-map the first GiB, user pages at every level
    mov $0x87, %eax                  # present, writable, user, 2 MiB page
    mov $512, %ecx
1:  mov %eax, (%edi)
    movl $0, 4(%edi)
    add $0x200000, %eax
    add $8, %edi
    loop 1b
    movl $(pdpt + 7), pml4
    movl $(pd + 7), pdpt
    mov %cr4, %eax
    or $0x20, %eax                   # PAE
    mov %eax, %cr4
    mov $pml4, %eax
    mov %eax, %cr3
    mov $MSR_EFER, %ecx
    rdmsr
    or $0x101, %eax                  # LME, SCE (syscall/sysret)
    wrmsr
    mov $MSR_STAR, %ecx
    xor %eax, %eax
    mov $0x00100008, %edx            # syscall: CS 0x08, SS 0x10; sysret: SS 0x18, CS 0x20
    wrmsr
    mov $MSR_LSTAR, %ecx
    mov $handler, %eax
    xor %edx, %edx
    wrmsr
    lgdt gdt_ptr
    mov %cr0, %eax
    or $0x80000000, %eax             # PG: long mode
    mov %eax, %cr0
    ljmp $0x08, $kernel64

.code64
kernel64:
    mov $stack_top, %esp
    xor %r13d, %r13d                 # system calls made
    push $0x1b                       # SS: ring-3 data
    mov $user_stack_top, %eax        # (a 32-bit mov: `push $symbol` would need a sign-extended relocation)
    push %rax
    push $2                          # RFLAGS
    push $0x23                       # CS: ring-3 code
    mov $user, %eax
    push %rax
    iretq

user:                                # ring 3
    syscall
    mov %cs, %ax                     # back in ring 3 from sysretq?
    cmp $0x23, %ax
    jne 1f
    syscall
1:  ud2

handler:                             # ring 0, if the CPU says so
    mov %cs, %ax
    cmp $0x08, %ax
    jne 1b
    inc %r13d
    cmp $1, %r13d
    jne 2f
    sysretq                          # the first call returns to ring 3
2:  mov $reached, %esi
    call puts                        # lib.inc's puts: its bytes mean the same in 64-bit mode
    xor %eax, %eax
    out %eax, $0xf4
    hlt

.section .data
.align 8
gdt:
    .quad 0
    .quad 0x00af9a000000ffff         # 0x08: ring-0 code (L = 1)
    .quad 0x00cf92000000ffff         # 0x10: ring-0 data
    .quad 0x00cff2000000ffff         # 0x18: ring-3 data (sysret takes SS = base + 8...
    .quad 0x00affa000000ffff         # 0x20: ring-3 code  ...and CS = base + 16)
gdt_ptr:
    .word gdt_ptr - gdt - 1
    .long gdt
reached: .asciz "syscall reached ring 0 twice, sysret returned to ring 3\n"
.align 16
    .space 1024
user_stack_top:
.align 4096
pml4:        .space 4096
pdpt:        .space 4096
pd:          .space 4096
