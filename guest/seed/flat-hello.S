# Seed-compatibility guest for `minikvm --paging FILE` (guest ABI, section 4).
# minikvm copies this flat binary to GPA 0x1000 and enters it at EIP 0x80001000 with paging
# already on, so it is linked at 0x80001000 and never sets anything up itself. It says "seed ok"
# through COM1 if CR0.PG really is set, then ends with the EXIT hypercall.
# build.rs assembles it into target/<profile>/guests/seed/flat-hello.bin, as
#   as --32 -o flat-hello.o flat-hello.S
#   ld -m elf_i386 -Ttext 0x80001000 --oformat binary -o flat-hello.bin flat-hello.o
# Run it: minikvm --paging target/debug/guests/seed/flat-hello.bin
	.code32
	.text
	.globl _start
_start:
	mov	$ok, %esi
	mov	%cr0, %eax
	test	$0x80000000, %eax	# CR0.PG
	jnz	print
	mov	$no_paging, %esi
print:
	movb	(%esi), %bl
	test	%bl, %bl		# the message ends with a NUL
	jz	done
	mov	$0x3FD, %dx		# LSR: wait until the transmitter takes a byte
wait:
	inb	%dx, %al
	test	$0x20, %al
	jz	wait
	mov	$0x3F8, %dx		# THR
	mov	%bl, %al
	outb	%al, %dx
	inc	%esi
	jmp	print
done:
	mov	$0, %al			# EXIT hypercall
	mov	$0x500, %dx
	outb	%al, %dx
	hlt
ok:
	.asciz	"seed ok\n"
no_paging:
	.asciz	"seed: CR0.PG is clear, paging is off\n"
