# gdb/os-1k.gdb: a 1K OS kernel session.
#
#   minikvm --gdb 1234 os-1k32           (one terminal; the kernel waits at its first instruction)
#   gdb -x gdb/os-1k.gdb                  (another: connects to :1234, stops in kernel_main)
#
# Another port: MINIKVM_GDB_PORT=4321 gdb -x gdb/os-1k.gdb
#
# The kernel is a 32-bit Multiboot ELF: minikvm offers it to gdb, which loads its symbols by
# itself. It is linked at 0xC0100000 but runs at physical 0x100000 until boot.S turns paging on
# (label enable_paging): code before that is at "symbol - 0xC0000000". Segments are flat (base 0),
# so gdb addresses are the kernel's virtual addresses.
#
# Commands defined here:
#   boot-break SYMBOL   hardware breakpoint on a boot.S label, at its physical address
#   cr                  CR0 (with PE and PG), CR2, CR3, CR4
#   pt ADDR             every level of the page walk of ADDR (monitor pt)
#   where-boot          the boot.S symbol of $pc while the kernel still runs at physical addresses

set pagination off
# Read kernel.elf from this machine's disk, without asking the stub for a file transfer.
set sysroot
python
import os


class Alive(gdb.Function):
    """$minikvm_alive(): 1 while the kernel has registers; else 0, after a line saying why.

After the kernel has powered off there are no registers: cr, pt and where-boot check first, so
that a script that runs on past the end says so instead of stopping with an error."""

    def __init__(self):
        super().__init__("minikvm_alive")

    def invoke(self):
        try:
            gdb.selected_frame()
            return 1
        except gdb.error:
            print("(no registers: the kernel has ended, or gdb is not connected)")
            return 0


Alive()
gdb.execute("target remote :" + os.environ.get("MINIKVM_GDB_PORT", "1234"))
end

define boot-break
  hbreak *((unsigned)&$arg0 - 0xc0000000)
end
document boot-break
boot-break SYMBOL: break at a boot.S label before paging is on (at SYMBOL - 0xC0000000).
Example: boot-break enable_paging, then stepi over `mov %eax,%cr0` and look at `cr`.
end

define cr
  if $minikvm_alive()
    printf "cr0 0x%08x  PE=%d PG=%d WP=%d\n", $cr0, $cr0 & 1, ($cr0 >> 31) & 1, ($cr0 >> 16) & 1
    printf "cr2 0x%08x  cr3 0x%08x  cr4 0x%08x\n", $cr2, $cr3, $cr4
  end
end
document cr
Show the control registers, with CR0's protection (PE) and paging (PG) bits.
end

define pt
  # gdb does not evaluate monitor arguments (`monitor pt $pc` would send the text "$pc"):
  # evaluate here and pass the number.
  if $minikvm_alive()
    eval "monitor pt %#lx", (unsigned long) ($arg0)
  end
end
document pt
pt ADDR: every level of the guest's page walk for ADDR, and KVM's own translation.
end

define where-boot
  if $minikvm_alive()
    if $pc < 0xc0000000
      info symbol $pc + 0xc0000000
    else
      info symbol $pc
    end
  end
end
document where-boot
The symbol at $pc, also while boot.S runs at physical addresses (before paging is on).
end

break kernel_main
continue
