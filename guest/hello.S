# minikvm-guest: prints "Hello, KVM!" through the PUTCHAR hypercall, then halts
	.code16
	.text
	.globl _start
_start:
	mov	$0x500, %dx		# the hypercall port
	mov	$msg, %si
next:
	mov	(%si), %bl		# BL = the byte to print
	test	%bl, %bl
	jz	done
	mov	$0x01, %al		# AL = PUTCHAR
	out	%al, (%dx)
	inc	%si
	jmp	next
done:
	hlt
msg:
	.asciz	"Hello, KVM!\n"
