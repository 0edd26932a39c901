# gdb/realmode.gdb: helpers for minikvm's real-mode guests.
#
#   minikvm --gdb 1234 counter                          (one terminal)
#   gdb -x gdb/realmode.gdb -ex 'target remote :1234' \
#       -ex 'symbol-file target/release/guests/counter.elf'  (another)
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
#   pt ADDR           the page walk of a gdb address (monitor pt, with ADDR evaluated: pt $pc)
#   sync-arch         decode as i8086 in real mode, as i386 in protected mode, and in 64-bit
#                     code have gdb re-read minikvm's target description: x86-64 registers
#                     (rax..r15, rip) and 64-bit decoding, in the same session
#   layout asm        (and layout split) gdb's TUI with a disassembly window that decodes as the
#                     vCPU runs and shows code at address 0 (the window `minikvm-asm`, below)
# and a stop hook that runs sync-arch and shows cs-ip and the next instruction at every stop.
# So one gdb session follows a guest from its first 16-bit instruction through protected mode
# into long mode (gdb/README.md, "One session across every mode switch").

# sync-arch sets this to the width of the code at the last stop (0: no registers, the guest
# has ended); cs-ip reads it.
set $minikvm_bits = 0

define cs-ip
  if $minikvm_alive()
    if $minikvm_bits == 64
      printf "CS:RIP %04x:%016lx  linear %#lx (long mode: CS base ignored)\n", $cs, $rip, $rip
    else
    if ($efer & 0x400)
      printf "CS:EIP %04x:%08x  linear %#x (compatibility mode)\n", $cs, (unsigned) $eip, $cs_base + (unsigned) $eip
    else
    if ($cr0 & 1)
      printf "CS:EIP %04x:%08x  linear %#x (protected mode)\n", $cs, (unsigned) $eip, $cs_base + (unsigned) $eip
    else
      printf "CS:IP %04x:%04x  linear %#x\n", $cs, (unsigned) $eip & 0xffff, $cs_base + (unsigned) $eip
    end
    end
    end
  end
end
document cs-ip
Show CS:IP (CS:EIP in protected mode) and the linear address of the next instruction (CS base + IP).
end

define linear
  if $minikvm_alive()
    printf "gdb address %#x = linear %#x (CS base %#x)\n", $arg0, $cs_base + $arg0, $cs_base
  end
end
document linear
linear ADDR: the linear address the guest reaches at gdb address ADDR (CS base + ADDR).
end

define xlinear
  if $minikvm_alive()
    x/16xb ($arg0) - $cs_base
  end
end
document xlinear
xlinear LINEAR: examine 16 bytes at a linear address (gdb addresses are CS base + offset).
end

define pt
  # gdb does not evaluate monitor arguments (`monitor pt $pc` would send the text "$pc"):
  # evaluate here and pass the number.
  if $minikvm_alive()
    eval "monitor pt %#lx", (unsigned long) ($arg0)
  end
end
document pt
pt ADDR: every level of the page walk of gdb address ADDR (monitor pt), e.g. pt $pc.
end

define hook-stop
  sync-arch
  if $minikvm_bits > 0
    cs-ip
    x/i $pc
  end
end

python
def have_registers():
    """True while the guest has registers; otherwise says why in one line.

Once the guest has ended (or before `target remote`) there are no registers: the commands here
check first, so that a script that runs on past the guest's end says so instead of stopping
with an error (or a Python exception)."""
    try:
        gdb.selected_frame()
        return True
    except gdb.error:
        print("(no registers: the guest has ended, or gdb is not connected)")
        return False


class Alive(gdb.Function):
    """$minikvm_alive(): 1 while the guest has registers; else 0, after a line saying why."""

    def __init__(self):
        super().__init__("minikvm_alive")

    def invoke(self):
        return int(have_registers())


Alive()


class StepOver(gdb.Command):
    """Run to the instruction after the one at $pc, with a temporary breakpoint.

stepi follows an `int` or a `call` into the handler; stepover runs it and stops after it
(minikvm puts the breakpoint in a debug register, so this works on any code)."""

    def __init__(self):
        super().__init__("stepover", gdb.COMMAND_RUNNING)

    def invoke(self, arg, from_tty):
        if not have_registers():
            return
        frame = gdb.selected_frame()
        insns = frame.architecture().disassemble(frame.pc(), count=2)
        gdb.execute("tbreak *%#x" % insns[1]["addr"], to_string=True)
        gdb.execute("continue")


StepOver()


class SyncArch(gdb.Command):
    """Make gdb decode instructions the way the vCPU runs them: i8086 while CR0.PE is clear,
i386 once the guest has switched to protected mode, i386:x86-64 in 64-bit code.

gdb reads minikvm's target description when it connects, in the mode of that moment. Between
i8086 and i386 only the decoder changes (`set architecture`). 64-bit code has other registers
(rax..r15, a 64-bit rip): there sync-arch has gdb read the description again (`unset tdesc
filename`), and minikvm answers with the one for the vCPU's mode now, x86-64 or back to i386.
The stop hook runs this at every stop."""

    def __init__(self):
        super().__init__("sync-arch", gdb.COMMAND_DATA)

    @staticmethod
    def wanted():
        """The architecture of the code the vCPU runs, and the name of its mode."""
        if not int(gdb.parse_and_eval("$cr0")) & 1:
            return "i8086", "real"
        # Protected or long mode: the code segment's D and L bits decide between 16-, 32- and
        # 64-bit code (right after CR0.PE, CS is still a 16-bit segment); minikvm knows them.
        text = gdb.execute("monitor mode", to_string=True)
        arch = text.split("gdb architecture ", 1)[1].split(")", 1)[0]
        if int(gdb.parse_and_eval("$efer")) & 0x400:
            return arch, "long" if arch == "i386:x86-64" else "compatibility"
        return arch, "protected"

    def invoke(self, arg, from_tty):
        try:
            want, mode = self.wanted()
        except gdb.error:
            gdb.set_convenience_variable("minikvm_bits", 0)
            return  # no registers: the guest has ended
        have = gdb.selected_frame().architecture().name()
        gdb.set_convenience_variable("minikvm_bits", 64 if want == "i386:x86-64" else 32)
        if have == want:
            return
        if "x86-64" in want or "x86-64" in have:
            # A decoder chosen by hand (i8086 or i386 above) would override the description.
            if "auto" not in gdb.execute("show architecture", to_string=True):
                gdb.execute("set architecture auto", to_string=True)
            gdb.execute("unset tdesc filename", to_string=True)
            print("(the vCPU is in %s mode now: gdb re-read the target description: %s)" % (mode, want))
        else:
            gdb.execute("set architecture " + want, to_string=True)
            print("(the vCPU is in %s mode now: gdb decodes %s)" % (mode, want))


SyncArch()


class AsmWindow:
    """A TUI window of the instructions from $pc on, decoded by the selected frame's architecture.

gdb's own `asm` window has two faults with minikvm's real-mode guests. It decodes where it has
symbols by the symbol file's architecture, which the ELF header fixes at i386 (there is no ELF
machine for 16-bit code), not by the target's i8086; and it shows nothing at all where the window
would start at address 0 (gdb takes address 0 for "no address"), which is where every real-mode
guest's code starts. This window asks the frame for its architecture at each stop (i8086, i386 or
x86-64 as sync-arch set it) and disassembles forward from an address it keeps, 0 included."""

    def __init__(self, tui):
        self.tui = tui
        self.start = None  # the first address shown
        self.shown = []  # the addresses shown, in order
        self.pc = None  # the pc of the last drawing: the window follows it only when it moves
        self.tui.title = "minikvm-asm"
        gdb.events.before_prompt.connect(self.render)

    def close(self):
        gdb.events.before_prompt.disconnect(self.render)

    def vscroll(self, num):
        """Scroll forward (num > 0) by instructions; back only to the first address shown."""
        if self.shown:
            self.start = self.shown[max(0, min(num, len(self.shown) - 1))]
            self.render()

    def follow(self, pc):
        """Keeps the window still while the pc moves inside it; near its end or outside it,
        starts again three instructions above the pc when they are known (x86 code cannot be
        decoded backwards), else at the pc. A window scrolled by hand stays until the pc moves."""
        if pc == self.pc and self.start is not None:
            return
        self.pc = pc
        if self.start is None or pc not in self.shown[: max(1, len(self.shown) - 3)]:
            at = self.shown.index(pc) if pc in self.shown else None
            self.start = pc if at is None else self.shown[max(0, at - 3)]

    def render(self):
        if not self.tui.is_valid():
            return
        try:
            frame = gdb.selected_frame()
            pc, arch = frame.pc(), frame.architecture()
            self.follow(pc)
            insns = arch.disassemble(self.start, count=max(1, self.tui.height))
        except gdb.error as e:  # no registers (the guest has ended), or memory that is not there
            self.tui.write("(%s)" % e, True)
            return
        self.shown = [i["addr"] for i in insns]
        self.tui.title = "minikvm-asm (%s)" % arch.name()
        lines = [self.line(i, pc) for i in insns]
        self.tui.write("\n".join(l[: self.tui.width] for l in lines), True)

    @staticmethod
    def line(insn, pc):
        marker = "=> " if insn["addr"] == pc else "   "
        where = gdb.format_address(insn["addr"]) if hasattr(gdb, "format_address") else hex(insn["addr"])
        return "%s%-28s %s" % (marker, where, insn["asm"])


if hasattr(gdb, "register_window_type"):
    gdb.register_window_type("minikvm-asm", AsmWindow)
    # Redefining a layout replaces gdb's: `layout asm` and `layout split` use the window above.
    gdb.execute("tui new-layout asm minikvm-asm 1 status 0 cmd 1")
    gdb.execute("tui new-layout split src 1 minikvm-asm 1 status 0 cmd 1")
end
