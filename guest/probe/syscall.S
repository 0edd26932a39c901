# minikvm-probe: ring-3 syscall/sysret in long mode
# minikvm-mode: long
	# A long-mode guest drops to ring 3 and makes two system calls with
	# `syscall`, returning from the first with `sysretq`: the handler at LSTAR
	# must run at ring 0 (CS 0x08, from STAR) and `sysretq` must land in ring 3
	# (CS 0x23). The second call reports both: (ring-3 CS << 16) | the
	# handler's CS. Some nested KVMs run the handler still at CPL 3, where its
	# first `out` raises #GP. The probe starts it with EFER.SCE set.
	.include "ring3.inc"
	.code64
	.text
	.globl _start
_start:
	.org	0x1000
	lgdt	0x2100
	lidt	0x2110
	mov	$0x28, %ax
	ltr	%ax
	mov	$0xc0000081, %ecx	# STAR: syscall CS 0x08, sysret base 0x10
	xor	%eax, %eax
	mov	$0x00100008, %edx
	wrmsr
	mov	$0xc0000082, %ecx	# LSTAR: the handler
	mov	$HANDLER, %eax
	xor	%edx, %edx
	wrmsr
	xor	%r13d, %r13d		# calls made
	push	$0x1b			# SS: ring-3 data
	push	$0x8000			# RSP
	push	$2			# RFLAGS
	push	$0x23			# CS: ring-3 code
	push	$RING3			# RIP
	iretq

	.org	RING3
	syscall
	mov	%cs, %r14d
	syscall
	ud2

	.org	HANDLER
	inc	%r13d
	cmp	$1, %r13d
	jne	1f
	sysretq				# the first call returns
1:	mov	%cs, %ax
	movzwl	%ax, %eax
	shl	$16, %r14d
	or	%r14d, %eax
	out	%eax, $0x10
	hlt

	# sysretq takes CS = base + 16 and SS = base + 8: ring-3 data (0x18) comes before ring-3 code (0x20).
	tables	0x00af9a000000ffff, 0x00cf92000000ffff, 0x00cff2000000ffff, 0x00affa000000ffff
