# minikvm-guest: the smallest guest there is: one hlt, no output
	# The vCPU starts at offset 0 of its window, so the very first byte
	# of the file is the first instruction it runs. Halting with nothing
	# to wake us up ends the guest normally.
	.code16
	.text
	.globl _start
_start:
	hlt
