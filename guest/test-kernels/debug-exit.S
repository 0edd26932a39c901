# minikvm-test-kernel: says one line, then writes 0x100 to the ISA debug-exit port with one `outl` (a byte-wise bus would see its low byte, 0, and end it as a success)
.include "lib.inc"
.section .text
main:
    mov $said, %esi
    call puts
    mov $0x100, %eax
    out %eax, $0xf4
    mov $still, %esi                 # not reached: the write ended the run
    jmp puts
.section .data
said:  .asciz "failing on purpose\n"
still: .asciz "still running\n"
