# minikvm-test-kernel: turns the UART's receive interrupt on and halts for good: a kernel waiting for input
.include "lib.inc"
.section .text
main:
    call rx_irq_on
    mov $0xff, %al              # every PIC line masked: nothing but input could ever wake it
    out %al, $0x21
    out %al, $0xa1
    sti
1:  hlt
    jmp 1b
