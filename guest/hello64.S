# minikvm-guest: a 64-bit guest (--long-mode): prints "Hello from 64-bit!" with PUTCHAR, then EXIT
# minikvm-mode: long
	# minikvm enters this guest already in 64-bit long mode, at RIP 0, with
	# its own identity-mapped page tables at the top of RAM (see
	# src/boot/long_mode.rs): no mode switch here. The hypercalls are the
	# same `out` to port 0x500 as in 16-bit guests; only the registers are wider.
	.code64
	.text
	.globl _start
_start:
	mov	$0x500, %dx		# the hypercall port
	lea	msg(%rip), %rsi		# RIP-relative: 64-bit code needs no segment base
next:
	movb	(%rsi), %bl		# PUTCHAR takes its byte in BL
	test	%bl, %bl		# the string ends with a NUL
	jz	done
	mov	$0x01, %al		# 1 = PUTCHAR
	out	%al, (%dx)
	inc	%rsi
	jmp	next
done:
	mov	$0x00, %al		# 0 = EXIT: ends the guest, as the C project's example does
	out	%al, (%dx)
	hlt				# not reached
msg:
	.asciz	"Hello from 64-bit!\n"
