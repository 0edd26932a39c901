# minikvm-probe: what a stock Linux kernel runs at boot (lock cmpxchg16b, xsetbv, xrstor)
# minikvm-mode: long
	# A 64-bit flat guest (it also runs as `minikvm --long-mode FILE`): it
	# names each instruction before running it and says "ok" after, with the
	# PUTCHAR hypercall, then EXITs. A KVM that emulates these instructions
	# without knowing them stops with an internal error ("emulation failure")
	# after the name: `doctor` reports that name as the reason this host
	# cannot boot Linux.
	.code64
	.text
	.globl _start
_start:
	lea	cx16(%rip), %rsi
	call	puts
	lea	slot(%rip), %rdi	# 16 bytes, 16-aligned: rdx:rax (0:0) matches, so rcx:rbx is stored
	xor	%eax, %eax
	xor	%edx, %edx
	mov	$1, %ebx
	xor	%ecx, %ecx
	lock cmpxchg16b (%rdi)
	lea	ok(%rip), %rsi
	call	puts

	lea	xsetbv_name(%rip), %rsi
	call	puts
	mov	%cr4, %rax
	or	$1 << 18, %rax		# CR4.OSXSAVE: XSETBV and XRSTOR on
	mov	%rax, %cr4
	xor	%ecx, %ecx		# XCR0 = x87 | SSE
	mov	$3, %eax
	xor	%edx, %edx
	xsetbv
	lea	ok(%rip), %rsi
	call	puts

	lea	xrstor_name(%rip), %rsi
	call	puts
	lea	area(%rip), %rdi	# a zeroed header: every component to its initial state
	mov	$3, %eax
	xor	%edx, %edx
	xrstor	(%rdi)
	lea	ok(%rip), %rsi
	call	puts

	mov	$0x500, %dx
	mov	$0x00, %al		# EXIT
	out	%al, (%dx)
	hlt

	# Prints the NUL-terminated string at RSI with PUTCHAR (AL = 1, byte in BL).
puts:
	mov	$0x500, %dx
1:	movb	(%rsi), %bl
	test	%bl, %bl
	jz	2f
	mov	$0x01, %al
	out	%al, (%dx)
	inc	%rsi
	jmp	1b
2:	ret

cx16:	.asciz	"lock cmpxchg16b: "
xsetbv_name:
	.asciz	"xsetbv: "
xrstor_name:
	.asciz	"xrstor: "
ok:	.asciz	"ok\n"

	.balign	16
slot:	.quad	0, 0
	.balign	64
area:	.fill	1024, 1, 0		# XSAVE area: legacy region, header, room for AVX
