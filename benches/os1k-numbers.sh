#!/bin/sh
# VM exits and time of the 1K OS on minikvm: power-on to the menu, and each program.
# Needs a KVM that runs 32-bit paging: the nested lane runs it (.ci/nested-lane --numbers) and the
# README shows its table. Method: `minikvm --stats os-1k` with a scripted input per program; the
# baseline run only powers off at the menu ("0"), and each program's row is its run minus the
# baseline, so boot and power-off cancel out. POSIX sh, so busybox runs it too.
#   usage: benches/os1k-numbers.sh [MINIKVM]
set -eu
MINIKVM=${1:-${MINIKVM_BIN:-minikvm}}

# run INPUT -> prints "EXITS MILLISECONDS" from the --stats table
run() {
    printf "$1" | "$MINIKVM" --stats --eof-grace 10 os-1k 2>&1 >/dev/null |
        awk '/: [0-9]+ exits$/ { e = $(NF-1) } /time: / { t = $2 } END { print e, t }'
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

echo "| run | VM exits | time (ms) |"
echo "|---|---|---|"
base_e=0
base_t=0
first=1
for case in "$@"; do
    name=${case%%|*}
    input=${case#*|}
    set -- $(run "$input")
    e=$1
    t=$2
    if [ $first = 1 ]; then
        base_e=$e
        base_t=$t
        first=0
        echo "| $name | $e | $t |"
    else
        echo "| $name | +$((e - base_e)) | +$(awk "BEGIN { printf \"%.1f\", $t - $base_t }") |"
    fi
done
