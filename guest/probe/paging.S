# minikvm-probe: 32-bit paging, switched on by the guest itself
	# Started in flat 32-bit protected mode at 0x1000, paging off. The guest
	# turns paging on (CR3 = the page directory at 0x2000, then CR0.PG) and
	# reads PA 0x1800 through its alias at VA 0x401800: the probe expects
	# 0xc0ffee11 on port 0x10. A KVM that cannot run 32-bit paging drops
	# CR0.PG or triple-faults here.
	.code32
	.text
	.globl _start
_start:
	.org	0x1000
	mov	$0x2000, %eax
	mov	%eax, %cr3
	mov	%cr0, %eax
	or	$0x80000000, %eax	# CR0.PG
	mov	%eax, %cr0
	jmp	1f			# paging is on from the next instruction
1:	mov	0x401800, %eax		# PDE 1 maps VA 4 MiB.. to the same table
	out	%eax, $0x10
	hlt

	.org	0x1800
	.long	0xc0ffee11		# the value read through the alias

	.org	0x2000			# page directory: VA 0..4 MiB and 4..8 MiB
	.long	0x3000 | 3, 0x3000 | 3	# -> the table at 0x3000, present | writable

	.org	0x3000			# page table: identity-maps the first 4 MiB
	.set	page, 0
	.rept	1024
	.long	(page << 12) | 3
	.set	page, page + 1
	.endr
