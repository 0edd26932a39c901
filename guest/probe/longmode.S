# minikvm-probe: 64-bit long mode
# minikvm-mode: long
	# Started in long mode (CR0.PG, CR4.PAE, EFER.LME|LMA, CR3 = 0x4000) at
	# 0x1000, with one 2 MiB page at 0. The probe expects 0x11223344 on port 0x10.
	.code64
	.text
	.globl _start
_start:
	.org	0x1000
	mov	$0x11223344, %eax
	out	%eax, $0x10
	hlt

	.org	0x4000			# PML4
	.quad	0x5000 | 3
	.org	0x5000			# PDPT
	.quad	0x6000 | 3
	.org	0x6000			# page directory: one 2 MiB page at 0
	.quad	0x80 | 3		# PS | writable | present
