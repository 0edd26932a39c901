#!/bin/sh
# VM exits and time of both flavours of the 1K OS on minikvm, side by side: power-on to the menu,
# and each program. The nested lane runs it (.ci/nested-lane --numbers) and the README shows its
# table. Method: `minikvm --stats os-1k32` (and `os-1k64`) with a scripted input per program; the
# baseline run only powers off at the menu ("0"), and each program's row is its run minus the
# baseline, so boot and power-off cancel out. A flavour this host's KVM cannot boot, or whose
# programs it cannot run (`minikvm doctor`: os-1k32 needs `paging`; os-1k64 needs `longmode`, and
# `usercall` for its programs), gets "n/a" in those cells: on this project's own machines the
# 64-bit OS runs to its menu only. POSIX sh, so busybox runs it too.
#   usage: benches/os1k-numbers.sh [MINIKVM]
set -eu
MINIKVM=${1:-${MINIKVM_BIN:-minikvm}}

# run FLAVOUR INPUT -> prints "EXITS MILLISECONDS" from the --stats table
run() {
    printf "$2" | "$MINIKVM" --stats --eof-grace 10 "$1" 2>&1 >/dev/null |
        awk '/: [0-9]+ exits$/ { e = $(NF-1) } /time: / { t = $2 } END { print e, t }'
}

can() { "$MINIKVM" doctor --probe "$1" >/dev/null 2>&1; }

# What each flavour can do here: "all", "menu" or "none".
reach() {
    case $1 in
    os-1k32) if can paging; then echo all; else echo none; fi ;;
    os-1k64) if ! can longmode; then echo none; elif can usercall; then echo all; else echo menu; fi ;;
    esac
}
R32=$(reach os-1k32)
R64=$(reach os-1k64)

# cells FLAVOUR REACH INPUT FIRST -> appends "| exits | time " to $LINE (the baseline absolute,
# programs as deltas from it, signed: a single run's time is noisy and a delta can come out
# below the baseline); not in a subshell, so the baseline stays in base_e_* / base_t_*.
cells() {
    key=$(echo "$1" | tr -cd 'a-z0-9')
    if [ "$2" = none ] || { [ "$2" = menu ] && [ "$4" = 0 ]; }; then
        LINE="$LINE| n/a | n/a "
        return
    fi
    set -- "$1" "$2" "$3" "$4" $(run "$1" "$3")
    if [ "$4" = 1 ]; then
        eval "base_e_$key=$5; base_t_$key=$6"
        LINE="$LINE| $5 | $6 "
    else
        eval "be=\$base_e_$key; bt=\$base_t_$key"
        LINE="$LINE| +$(($5 - be)) | $(awk "BEGIN { printf \"%+.1f\", $6 - $bt }") "
    fi
}

set -- "power-on to the menu, then 0 (power off)|0\n" \
    "1 multiplication table|1\n0\n" \
    "2 counter (sleeps 10 ticks a number)|2\n0\n" \
    "3 echo, one line|3\nhello world\nquit\n0\n" \
    "4 Fibonacci|4\n0\n" \
    "5 primes up to 100|5\n0\n" \
    "6 calculator, one sum|6\n12 * -3\nq\n0\n" \
    "7 factorials|7\n0\n" \
    "8 greatest common divisor|8\n84 36\n0\n" \
    "9 about|9\n0\n"

echo "| run | os-1k32 VM exits | os-1k32 time (ms) | os-1k64 VM exits | os-1k64 time (ms) |"
echo "|---|---|---|---|---|"
first=1
for case in "$@"; do
    name=${case%%|*}
    input=${case#*|}
    LINE="| $name "
    cells os-1k32 "$R32" "$input" $first
    cells os-1k64 "$R64" "$input" $first
    echo "$LINE|"
    first=0
done
