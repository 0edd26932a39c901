# minikvm-probe: ring-3 int 0x80 in long mode (DPL-3 gate)
# minikvm-mode: long
	# A long-mode guest drops to ring 3 with `iretq` and makes a system call
	# through a DPL-3 gate: the handler (ring 0) reports the CS it
	# interrupted, which must be ring 3's (0x1b). The 64-bit 1K OS does
	# exactly this for every program.
	.include "ring3.inc"
	.code64
	.text
	.globl _start
_start:
	.org	0x1000
	lgdt	0x2100
	lidt	0x2110
	mov	$0x28, %ax
	ltr	%ax			# the TSS: RSP0
	push	$0x23			# SS: ring-3 data
	push	$0x8000			# RSP
	push	$2			# RFLAGS
	push	$0x1b			# CS: ring-3 code
	push	$RING3			# RIP
	iretq				# to ring 3

	.org	RING3
	int	$0x80
	ud2

	.org	HANDLER			# ring 0: the interrupted CS is above RIP
	movzwl	8(%rsp), %eax
	out	%eax, $0x10
	hlt

	# 0x08 ring-0 code (L = 1); 0x10 ring-0 data; 0x18 ring-3 code (L = 1); 0x20 ring-3 data
	tables	0x00af9a000000ffff, 0x00cf92000000ffff, 0x00affa000000ffff, 0x00cff2000000ffff
