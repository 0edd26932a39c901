# minikvm-guest: real mode -> protected mode -> long mode by itself, then prints "Hello from long mode!" from 64-bit code
	# The whole x86 boot story in one small file, to step through in one gdb
	# session (gdb/README.md, "One session across every mode switch"):
	#   1. real mode (16-bit): load a GDT, set CR0.PE, far jump   -> pm32
	#   2. protected mode (32-bit): 4-level page tables, CR4.PAE, CR3,
	#      EFER.LME, then CR0.PG: long mode is active (EFER.LMA), still
	#      running the 32-bit code segment (compatibility mode)
	#   3. a far jump to a code segment with L = 1                -> lm64
	#   4. long mode (64-bit): PUTCHAR each byte of the message, EXIT.
	# Everything is flat (base 0) and identity mapped, so the only address
	# arithmetic is the window's base: vCPU i runs at linear i * 0x40000,
	# kept in EBP. The page tables map the first 2 MiB (vCPUs 0 to 7).
	.code16
	.text
	.globl	_start
_start:
	cli				# nothing may interrupt the switches
	mov	%cs, %ax
	movzwl	%ax, %ebp
	shl	$4, %ebp		# EBP = linear address of offset 0 (CS * 16)
	lea	gdt(%ebp), %eax
	mov	%eax, gdtr + 2		# LGDT wants a linear address
	lea	pm32(%ebp), %eax
	mov	%eax, farptr32		# so does a jump into a base-0 segment
	lgdtl	gdtr			# `l`: all 32 base bits
	mov	%cr0, %eax
	or	$1, %al			# CR0.PE: protected mode
	.globl	enable_protected
enable_protected:
	mov	%eax, %cr0
	ljmpl	*farptr32		# reloads CS: 32-bit code from here on

	.code32
	.globl	pm32
pm32:
	mov	$0x10, %ax		# flat data segment
	mov	%ax, %ds
	mov	%ax, %es
	mov	%ax, %ss
	# PML4[0] -> PDPT, PDPT[0] -> PD, PD[0] = one 2 MiB page at physical 0.
	lea	pdpt + 3(%ebp), %eax	# 3 = present, writable
	mov	%eax, pml4(%ebp)
	lea	pd + 3(%ebp), %eax
	mov	%eax, pdpt(%ebp)
	movl	$0x83, pd(%ebp)		# 0x80 = PS: a 2 MiB page, no page table below
	mov	%cr4, %eax
	or	$0x20, %eax		# CR4.PAE: long mode's page tables have 8-byte entries
	mov	%eax, %cr4
	lea	pml4(%ebp), %eax
	mov	%eax, %cr3
	mov	$0xC0000080, %ecx	# the EFER MSR
	rdmsr
	or	$0x100, %eax		# EFER.LME: ask for long mode
	wrmsr
	mov	%cr0, %eax
	or	$0x80000000, %eax	# CR0.PG: paging on, and with LME: long mode (EFER.LMA)
	.globl	enable_long
enable_long:
	mov	%eax, %cr0		# now in compatibility mode: CS is still 32-bit
	lea	lm64(%ebp), %eax
	mov	%eax, farptr64(%ebp)
	ljmpl	*farptr64(%ebp)		# CS = 0x18, a code segment with L = 1

	.code64
	.globl	lm64
lm64:
	mov	$0x500, %dx		# the hypercall port
	lea	msg(%rip), %rsi		# RIP-relative: 64-bit code needs no base register
	.globl	print64
print64:
	movb	(%rsi), %bl		# PUTCHAR takes its byte in BL
	test	%bl, %bl
	jz	done
	mov	$0x01, %al		# 1 = PUTCHAR
	out	%al, (%dx)
	inc	%rsi
	jmp	print64
done:
	mov	$0x00, %al		# 0 = EXIT
	out	%al, (%dx)
	hlt				# not reached

msg:
	.asciz	"Hello from long mode!\n"

	.p2align 3
gdt:
	.quad	0			# the null descriptor
	.quad	0x00cf9a000000ffff	# 0x08: code, 32-bit, base 0, limit 4 GiB
	.quad	0x00cf92000000ffff	# 0x10: data, base 0, limit 4 GiB
	.quad	0x00af9a000000ffff	# 0x18: code, 64-bit (L = 1)
gdtr:
	.word	gdtr - gdt - 1		# limit
	.long	0			# base, filled in above
farptr32:
	.long	0			# offset, filled in above
	.word	0x08			# selector
farptr64:
	.long	0			# offset, filled in above
	.word	0x18			# selector

	.p2align 12			# page tables: 4 KiB aligned, zero but for one entry each
pml4:	.fill	512, 8, 0
pdpt:	.fill	512, 8, 0
pd:	.fill	512, 8, 0
