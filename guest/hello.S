# minikvm-guest: prints "Hello, KVM!" through the PUTCHAR hypercall, then halts
	# A hypercall is an `out` to port 0x500: the I/O exit hands control to
	# minikvm, which reads the hypercall number from AL and its argument
	# from BL. Nothing else in the guest has to know about the host.
	.code16
	.text
	.globl _start
_start:
	mov	$0x500, %dx		# the hypercall port; set once, no hypercall changes it
	mov	$msg, %si		# DS = CS, so the label is a usable address as is
next:
	mov	(%si), %bl		# PUTCHAR takes its byte in BL
	test	%bl, %bl		# the string ends with a NUL
	jz	done
	mov	$0x01, %al		# 1 = PUTCHAR
	out	%al, (%dx)
	inc	%si
	jmp	next
done:
	hlt				# interrupts are off, so this ends the guest
msg:
	.asciz	"Hello, KVM!\n"
