# minikvm-guest: enters protected mode with an empty IDT and raises #UD, which escalates to a triple fault
	# A triple fault is the CPU giving up: an exception whose delivery
	# fails (no gate for #UD) becomes a double fault, and when that cannot
	# be delivered either the CPU shuts down. KVM reports a SHUTDOWN exit,
	# and minikvm must report it as a guest fault.
	#
	# Why not stay in real mode (`lidt` a limit of 0, then `int $3`)? On
	# VT-x or AMD-V that triple-faults too, but emulating KVMs (such as the
	# nested one CI runs on) emulate real-mode interrupts without checking
	# the IDT limit, and then nothing faults. Protected mode has the same
	# outcome everywhere. The code segment is flat (base 0) because that
	# is what every KVM handles; so the far jump needs this window's
	# linear address, computed at run time as vCPU i's window is at
	# i * 0x40000, not at 0.
	.code16
	.text
	.globl	_start
_start:
	cli				# nothing may interrupt the switch
	mov	%cs, %ax
	movzwl	%ax, %eax
	shl	$4, %eax		# EAX = linear address of offset 0 (CS * 16)
	mov	%eax, %ebx
	add	$gdt, %eax
	mov	%eax, gdtr + 2		# LGDT wants a linear address
	add	$pm32, %ebx
	mov	%ebx, farptr		# so does a jump into a base-0 segment
	lgdtl	gdtr			# `l`: all 32 base bits (16-bit LGDT keeps 24)
	lidtl	empty_idt		# limit 0: no vector has a gate
	mov	%cr0, %eax
	or	$1, %al			# CR0.PE: protected mode
	mov	%eax, %cr0
	ljmpl	*farptr			# reloads CS from the GDT

	.code32
pm32:
	ud2				# #UD -> no gate -> #DF -> no gate -> shutdown
	hlt				# never reached

	.p2align 3
gdt:
	.quad	0			# the null descriptor
	.quad	0x00cf9a000000ffff	# 0x08: code, base 0, limit 4 GiB, 32-bit, ring 0
gdtr:
	.word	gdtr - gdt - 1		# limit
	.long	0			# base, filled in above
farptr:
	.long	0			# offset, filled in above
	.word	0x08			# selector
empty_idt:
	.word	0			# limit
	.long	0			# base
