# minikvm-test-kernel: a kernel in the style of `qemu -kernel` test suites: enters long mode itself (CPUID, PAE, EFER.LME, CR0.PG), reads the MSRs such kernels touch and QEMU's fw_cfg, prints what it found, ends through debug-exit with 0 when every check passed, else a mask of the failed ones
.include "lib.inc"

.set MSR_APIC_BASE,   0x1b
.set MSR_MISC_ENABLE, 0x1a0
.set MSR_PAT,         0x277
.set MSR_EFER,        0xc0000080

.section .text
.code32
main:
    mov $0x40000000, %eax           # the hypervisor leaf: max leaf in EAX, signature in EBX:ECX:EDX
    cpuid
    mov %ebx, signature
    mov %ecx, signature + 4
    mov %edx, signature + 8
    mov $s_hypervisor, %esi
    call puts
    mov $signature, %esi
    call puts
    mov $s_nl, %esi
    call puts
    cmpl $0x696e696d, signature      # "mini"
    je 1f
    orl $1, failed
1:  mov $0x80000001, %eax            # does the CPU offer long mode (EDX bit 29)?
    cpuid
    bt $29, %edx
    jc 2f
    orl $2, failed
    mov $s_no_lm, %esi
    call puts
    mov failed, %eax
    out %eax, $0xf4                  # no long mode: end with the mask
2:  mov $MSR_PAT, %ecx               # the MSRs, read before long mode (a #GP here would triple-fault)
    rdmsr
    mov %eax, pat
    mov %edx, pat + 4
    mov $MSR_APIC_BASE, %ecx
    rdmsr
    mov %eax, apic_base
    mov %edx, apic_base + 4
    mov $MSR_MISC_ENABLE, %ecx
    rdmsr
    mov %eax, misc_enable
    mov %edx, misc_enable + 4
    rdtsc
    mov %eax, tsc
    mov %edx, tsc + 4
    call enter_long_mode
    ljmp $0x08, $long_main

# Identity-maps the first GiB with 2 MiB pages, then PAE, EFER.LME and CR0.PG: the CPU is in
# compatibility mode until the far jump that follows loads a 64-bit code segment.
enter_long_mode:
    mov $pd, %edi
    mov $0x83, %eax                  # present, writable, 2 MiB page
    mov $512, %ecx
1:  mov %eax, (%edi)
    movl $0, 4(%edi)
    add $0x200000, %eax
    add $8, %edi
    loop 1b
    movl $(pdpt + 3), pml4
    movl $(pd + 3), pdpt
    mov %cr4, %eax
    or $0x20, %eax                   # PAE
    mov %eax, %cr4
    mov $pml4, %eax
    mov %eax, %cr3
    mov $MSR_EFER, %ecx
    rdmsr
    or $0x100, %eax                  # LME
    wrmsr
    lgdt gdt_ptr
    mov %cr0, %eax
    or $0x80000000, %eax             # PG: long mode is active (EFER.LMA)
    mov %eax, %cr0
    ret

.code64
long_main:
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    mov $stack_top, %esp
    mov $MSR_EFER, %ecx
    rdmsr
    shl $32, %rdx
    or %rdx, %rax
    mov $s_efer, %esi
    call field
    mov pat(%rip), %rax
    mov $s_pat, %esi
    call field
    mov apic_base(%rip), %rax
    mov $s_apic, %esi
    call field
    mov misc_enable(%rip), %rax
    mov $s_misc, %esi
    call field
    rdtsc                            # the TSC runs: a later read is larger
    shl $32, %rdx
    or %rdx, %rax
    cmp tsc(%rip), %rax
    ja 1f
    orl $4, failed(%rip)
    jmp 2f
1:  mov $s_tsc, %esi
    call puts
2:  call fw_cfg
    mov failed(%rip), %eax
    out %eax, $0xf4                  # debug-exit: 0 when every check passed
    hlt

# fw_cfg: the signature, the CPU count and the RAM size.
fw_cfg:
    xor %eax, %eax                   # key 0: signature
    mov $fw_sig, %edi
    mov $4, %ecx
    call fw_cfg_read
    mov $s_fw, %esi
    call puts
    mov $fw_sig, %esi
    call puts
    cmpl $0x554d4551, fw_sig(%rip)         # "QEMU"
    je 1f
    orl $8, failed(%rip)
1:  mov $5, %eax                     # key 5: number of CPUs (16-bit)
    mov $fw_cpus, %edi
    mov $2, %ecx
    call fw_cfg_read
    movzwq fw_cpus(%rip), %rax
    mov $s_cpus, %esi
    call field
    mov $3, %eax                     # key 3: RAM size (64-bit)
    mov $fw_ram, %edi
    mov $8, %ecx
    call fw_cfg_read
    mov fw_ram(%rip), %rax
    mov $s_ram, %esi
    jmp field

# Selects key AX (a 16-bit write to 0x510), then reads ECX bytes from 0x511 to RDI.
fw_cfg_read:
    mov $0x510, %dx
    out %ax, (%dx)
    mov $0x511, %dx
    rep insb
    ret

# Prints the label at RSI, then RAX as 16 hex digits and a newline. (lib.inc's `puts` is 32-bit
# code whose bytes mean the same in 64-bit mode: lodsb, in, out, short jumps, ret.)
field:
    push %rax
    call puts
    pop %rax
    mov $hexbuf, %edi
    mov $16, %ecx
1:  rol $4, %rax
    mov %al, %dl
    and $0xf, %dl
    add $'0', %dl
    cmp $'9', %dl
    jbe 2f
    add $('a' - '9' - 1), %dl
2:  mov %dl, (%rdi)
    inc %rdi
    loop 1b
    movw $0x0a, (%rdi)               # newline, NUL
    mov $hexbuf, %esi
    jmp puts

.section .data
.align 8
gdt:
    .quad 0
    .quad 0x00209a0000000000         # 0x08: 64-bit code (L = 1)
    .quad 0x00cf92000000ffff         # 0x10: flat data
gdt_ptr:
    .word gdt_ptr - gdt - 1
    .long gdt
failed:      .long 0
signature:   .space 13
fw_sig:      .space 5
.align 8
fw_cpus:     .quad 0
fw_ram:      .quad 0
pat:         .quad 0
apic_base:   .quad 0
misc_enable: .quad 0
tsc:         .quad 0
hexbuf:      .space 18
s_hypervisor: .asciz "hypervisor: "
s_nl:        .asciz "\n"
s_no_lm:     .asciz "no long mode in CPUID\n"
s_efer:      .asciz "long mode, EFER "
s_pat:       .asciz "PAT "
s_apic:      .asciz "APIC base "
s_misc:      .asciz "MISC_ENABLE "
s_tsc:       .asciz "TSC runs\n"
s_fw:        .asciz "fw_cfg signature "
s_cpus:      .asciz "\nfw_cfg CPUs "
s_ram:       .asciz "fw_cfg RAM "
.align 4096
pml4:        .space 4096
pdpt:        .space 4096
pd:          .space 4096
