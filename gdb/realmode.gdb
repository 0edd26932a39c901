# gdb/realmode.gdb: helpers for minikvm's real-mode guests.
#
#   minikvm --gdb 1234 counter                          (one terminal)
#   gdb -x gdb/realmode.gdb -ex 'target remote :1234' \
#       -ex 'symbol-file target/debug/guests/counter.elf'  (another)
#
# minikvm's address convention: a gdb address is an offset in the vCPU's current code segment,
# linear = $cs_base + address, and $pc is IP. So `x/i $pc`, `break print_digit` and
# `watch *(unsigned char *)&digit` use the addresses the guest itself uses, on every vCPU
# (vCPU i runs at linear i * 0x40000). Load symbols with `symbol-file`, not `file`: an ELF loaded
# as the executable makes gdb disassemble 32-bit code; minikvm already told gdb "i8086".
#
# Commands defined here:
#   cs-ip             CS:IP, and the linear address of the next instruction
#   linear ADDR       the linear address behind gdb address ADDR
#   xlinear LINEAR    examine 16 bytes at a linear address (converted to a gdb address)
#   stepover          run to the instruction after this one: steps over `int`, `call`, `rep movsb`
#   sync-arch         decode as i8086 in real mode, as i386 in protected mode (gdb reads the
#                     mode once, when it connects)
# and a stop hook that runs sync-arch and shows cs-ip and the next instruction at every stop.

define cs-ip
  if ($cr0 & 1)
    printf "CS:EIP %04x:%08x  linear %#x (protected mode)\n", $cs, (unsigned) $eip, $cs_base + (unsigned) $eip
  else
    printf "CS:IP %04x:%04x  linear %#x\n", $cs, (unsigned) $eip & 0xffff, $cs_base + (unsigned) $eip
  end
end
document cs-ip
Show CS:IP (CS:EIP in protected mode) and the linear address of the next instruction (CS base + IP).
end

define linear
  printf "gdb address %#x = linear %#x (CS base %#x)\n", $arg0, $cs_base + $arg0, $cs_base
end
document linear
linear ADDR: the linear address the guest reaches at gdb address ADDR (CS base + ADDR).
end

define xlinear
  x/16xb ($arg0) - $cs_base
end
document xlinear
xlinear LINEAR: examine 16 bytes at a linear address (gdb addresses are CS base + offset).
end

define hook-stop
  sync-arch
  cs-ip
  x/i $pc
end

python
class StepOver(gdb.Command):
    """Run to the instruction after the one at $pc, with a temporary breakpoint.

stepi follows an `int` or a `call` into the handler; stepover runs it and stops after it
(minikvm puts the breakpoint in a debug register, so this works on any code)."""

    def __init__(self):
        super().__init__("stepover", gdb.COMMAND_RUNNING)

    def invoke(self, arg, from_tty):
        frame = gdb.selected_frame()
        insns = frame.architecture().disassemble(frame.pc(), count=2)
        gdb.execute("tbreak *%#x" % insns[1]["addr"], to_string=True)
        gdb.execute("continue")


StepOver()


class SyncArch(gdb.Command):
    """Make gdb decode instructions the way the vCPU runs them: i8086 while CR0.PE is clear,
i386 once the guest has switched to protected mode.

gdb reads minikvm's target description (i8086 or i386) once, when it connects; a guest that
switches modes afterwards would otherwise be disassembled in the old mode. The stop hook
runs this at every stop."""

    def __init__(self):
        super().__init__("sync-arch", gdb.COMMAND_DATA)

    def invoke(self, arg, from_tty):
        protected = int(gdb.parse_and_eval("$cr0")) & 1
        want = "i386" if protected else "i8086"
        if gdb.selected_frame().architecture().name() != want:
            gdb.execute("set architecture " + want, to_string=True)
            print("(the vCPU is in %s mode now: gdb decodes %s)" % ("protected" if protected else "real", want))


SyncArch()
end
