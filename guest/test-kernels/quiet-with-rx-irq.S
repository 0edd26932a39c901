# minikvm-test-kernel: turns the UART's receive interrupt on, computes silently for ~3 s (not halting), then prints "done"
.include "lib.inc"
.section .text
main:
    call rx_irq_on
    mov $55, %ecx
    call delay_wraps
    mov $done, %esi
    jmp puts
