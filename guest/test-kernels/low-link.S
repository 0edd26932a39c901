# minikvm-test-kernel: linked at 0x8000, over the Multiboot info block's usual page at 0x9000, as some kernels for `qemu -kernel` are: prints the boot loader's name from the info block (EBX), says whether the block lies outside the kernel, then ends through debug-exit with 0
# link-address: 0x8000
.include "lib.inc"
.section .text
main:
    push %ebx
    mov 64(%ebx), %esi               # boot_loader_name (flag bit 9)
    call puts
    pop %ebx
    mov $outside, %esi
    lea 0x1000(%ebx), %eax           # the block's page must end before the kernel or start after it
    cmp $0x8000, %eax
    jbe 1f
    cmp $_end, %ebx
    jae 1f
    mov $inside, %esi
1:  call puts
    xor %eax, %eax
    out %al, $0xf4
    hlt
.section .data
outside: .asciz "\ninfo block outside the kernel\n"
inside:  .asciz "\ninfo block INSIDE the kernel\n"
