#!/bin/sh
# Booting Linux on minikvm and on QEMU, on the same KVM in the same run: seconds from the start of
# the VMM to the kernel's first console line ("Linux version ..."), to the test initramfs's /init
# (its "@@minikvm-init: up" line), and to the end of the VMM after `poweroff -f`; then minikvm's VM
# exits by reason over that boot (`--stats`). The nested lane runs it after the tests
# (.ci/nested/tests.sh) and keeps its table in <work>/linux-numbers-<cpu>.md; benches/RESULTS-linux.md
# and the README's "Boot Linux" section show one. POSIX sh, so busybox runs it.
#
# The contenders, each given the same kernel, initramfs, command line and 256 MiB, one vCPU:
#   minikvm --linux KERNEL --initrd IMAGE --cmdline CMDLINE
#   qemu-system-x86_64 -M pc,hpet=off -accel kvm -kernel KERNEL -initrd IMAGE -append CMDLINE (SeaBIOS first)
#   qemu-system-x86_64 -M microvm -accel kvm ...                           (qboot, no PCI, when it has it)
# The initramfs is the tests' (tests/common/initramfs.rs): busybox and tests/common/linux-init.sh as
# /init, packed here with busybox cpio; its command is `true`, so /init powers off at once.
# Times come from /proc/uptime (10 ms steps) read by a shell builtin as each console line arrives.
#   usage: benches/linux-numbers.sh MINIKVM KERNEL BUSYBOX [QEMU]
#   env:   LINUX_NUMBERS_RUNS (default 3 rounds, each booting every VMM once in turn; each cell is
#          the median over the rounds), LINUX_NUMBERS_TIMEOUT (s, default
#          300), LINUX_NUMBERS_QEMU_ACCEL (default kvm; tcg checks the script on a host whose KVM
#          cannot boot Linux: QEMU's rows then time its software CPU, not KVM)
set -eu
MINIKVM=${1:?usage: $0 MINIKVM KERNEL BUSYBOX [QEMU]}
KERNEL=${2:?kernel}
BUSYBOX=${3:?busybox}
QEMU=${4:-$(command -v qemu-system-x86_64 || true)}
[ -z "$QEMU" ] || [ -x "$QEMU" ] || QEMU="" # a path that is not there: no QEMU rows
RUNS=${LINUX_NUMBERS_RUNS:-3}
LIMIT=${LINUX_NUMBERS_TIMEOUT:-300}
ACCEL=${LINUX_NUMBERS_QEMU_ACCEL:-kvm}
CPU=host
[ "$ACCEL" = kvm ] || CPU=max
HERE=$(cd "$(dirname "$0")" && pwd)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
CMDLINE='console=ttyS0 -- "true"'

# The tests' initramfs: /bin/busybox with its applet links, /dev/console, /init.
mkdir -p "$TMP/ir/bin" "$TMP/ir/dev" "$TMP/ir/proc" "$TMP/ir/sys" "$TMP/ir/tmp" "$TMP/ir/root"
cp "$BUSYBOX" "$TMP/ir/bin/busybox"
for a in $("$BUSYBOX" --list); do [ "$a" = busybox ] || ln -s busybox "$TMP/ir/bin/$a"; done
cp "$HERE/../tests/common/linux-init.sh" "$TMP/ir/init"
chmod 755 "$TMP/ir/init"
mknod -m 600 "$TMP/ir/dev/console" c 5 1 2>/dev/null || true
(cd "$TMP/ir" && find . | "$BUSYBOX" cpio -o -H newc -R 0:0 >"$TMP/initramfs.cpio" 2>/dev/null)
IMAGE=$TMP/initramfs.cpio

# timed COMMAND... -> "FIRST INIT END STATUS" in seconds since the start ("-" for a line never seen;
# STATUS "timeout" when LIMIT stopped it);
# the command's stderr goes to $TMP/err.
timed() {
    read -r t0 _ </proc/uptime
    {
        st=0
        timeout "$LIMIT" "$@" 2>"$TMP/err" </dev/null || st=$?
        echo "@@status $st"
    } | {
        first=- init=- status=-
        while IFS= read -r line; do
            read -r t _ </proc/uptime
            case $line in "@@status "*) ;; *) [ -z "$line" ] || printf '%s\n' "$line" >"$TMP/last" ;; esac
            case $line in
            *"Linux version "*) [ "$first" != - ] || first=$t ;;
            *"@@minikvm-init: up at "*) [ "$init" != - ] || init=$t ;;
            "@@status "*) status=${line#@@status } ;;
            esac
        done
        read -r t _ </proc/uptime
        echo "$first $init $t $status"
    } | awk -v t0="$t0" -v limit="$LIMIT" '{
        for (i = 1; i <= 3; i++) $i = ($i == "-") ? "-" : sprintf("%.2f", $i - t0)
        # (a number, not the string sprintf made: "25.83" >= "149" as strings)
        if ($3 != "-" && $3 + 0 >= limit - 1) $4 = "timeout" # busybox timeout passes on the status of the stopped VMM (QEMU: 0)
        print }'
}

# The median of the numbers on stdin, one a line ("-" when any is "-").
median() { sort -n | awk '{ v[NR] = $1; if ($1 == "-") bad = 1 } END { if (bad || !NR) print "-"; else print v[int((NR + 1) / 2)] }'; }

# The contenders, one a line: KEY|NAME|CMDLINE-OPTION|COMMAND. COMMAND's words split at spaces (no
# path here has one); the command line, which has spaces and quotes, follows its option as one word.
# q KEY MACHINE: QEMU's line for -M MACHINE.
q() { echo "$1|QEMU -M $2|-append|$QEMU -M $2 -accel $ACCEL -cpu $CPU -smp 1 -m 256 -display none -nodefaults -no-reboot -serial stdio -kernel $KERNEL -initrd $IMAGE"; }
{
    echo "minikvm|minikvm|--cmdline|$MINIKVM --stats --linux $KERNEL --initrd $IMAGE"
    if [ -n "$QEMU" ]; then
        # HPET off: minikvm has none, and in the nested lane QEMU's (emulated in QEMU's user space)
        # stalled the boot for minutes (measured: pc to power-off in 60 s with hpet=off, none in 170 s with it).
        q pc pc,hpet=off
        if "$QEMU" -M help 2>/dev/null | grep -q '^microvm'; then q microvm microvm; fi
    fi
} >"$TMP/contenders"

# boot KEY CMDLINE-OPTION COMMAND... : one boot, appended to $TMP/runs.KEY; minikvm's stderr and
# last console line kept from its last boot.
boot() {
    key=$1 option=$2
    shift 2
    rm -f "$TMP/last"
    timed "$@" "$option" "$CMDLINE" >>"$TMP/runs.$key"
    if [ "$key" = minikvm ]; then
        MINIKVM_ERR=$(head -c 4000 "$TMP/err")
        cp "$TMP/last" "$TMP/last.minikvm" 2>/dev/null || rm -f "$TMP/last.minikvm"
    fi
}

# RUNS rounds, each booting every contender once in turn: a change of the machine's load during the
# run reaches all of them alike, instead of all of one VMM's boots.
MINIKVM_ERR=
n=0
while [ "$n" -lt "$RUNS" ]; do
    while IFS='|' read -r key _ option cmd; do
        # shellcheck disable=SC2086 # the command's words are meant to split
        boot "$key" "$option" $cmd </dev/null
    done <"$TMP/contenders"
    n=$((n + 1))
done

# row KEY NAME: one table row of medians over the boots.
row() {
    statuses=$(awk '{ print $4 }' "$TMP/runs.$1" | sort -u | paste -sd, -)
    echo "| $2 | $(awk '{ print $1 }' "$TMP/runs.$1" | median) | $(awk '{ print $2 }' "$TMP/runs.$1" | median) | $(awk '{ print $3 }' "$TMP/runs.$1" | median) | $statuses |"
}

echo "| VMM | first kernel line (s) | /init (s) | powered off, VMM ended (s) | exit status |"
echo "|---|---|---|---|---|"
while IFS='|' read -r key name _; do row "$key" "$name"; done <"$TMP/contenders"
if [ -z "$QEMU" ]; then
    echo "| QEMU | n/a (no qemu-system-x86_64 here) | | | |"
elif ! grep -q '^microvm|' "$TMP/contenders"; then
    echo "| QEMU -M microvm | n/a (this QEMU has no microvm) | | | |"
fi
echo
if [ "$(awk 'NR == 1 { print $4 }' "$TMP/runs.minikvm")" != 0 ] || [ "$(awk 'NR == 1 { print $2 }' "$TMP/runs.minikvm")" = - ]; then
    echo "minikvm did not boot to power-off; its stderr began with: $(printf '%s\n' "$MINIKVM_ERR" | head -3 | tr '\n' ' ')"
    if [ -s "$TMP/last.minikvm" ]; then echo "and its console's last line was: $(tr -d '\r' <"$TMP/last.minikvm")"; else echo "and its console stayed empty"; fi
    echo
fi
echo "minikvm's VM exits by reason over one boot to power-off (\`--stats\`, the last run):"
echo
echo '```'
printf '%s\n' "$MINIKVM_ERR" | awk '/exits$/ || /time:/ { print; next } /exits by reason:/ { on = 1; print; next } on && /^    / { print; next } { on = 0 }'
echo '```'
