#!/usr/bin/env bash
# The lab against this host's KVM, in one run: start-up, a program's run and gdb's stepi rate.
# Writes benches/RESULTS-lab.md (and prints it). Each time is the median of ROUNDS runs (env,
# default 3). Real-mode guests run on both; the 1K OS only in the lab when this host's KVM cannot
# page (its host column is then "—").
#   usage: benches/lab-numbers.sh [MINIKVM]     (default target/release/minikvm; build it first)
set -euo pipefail
cd "$(dirname "$0")/.."
MINIKVM=$(readlink -f "${1:-target/release/minikvm}")
ROUNDS=${ROUNDS:-3}
STEPS=${STEPS:-500}
OUT=benches/RESULTS-lab.md
export NO_COLOR=1
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

now() { date +%s.%N; }
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# Seconds from start to exit of `minikvm ARGS`, stdin from $INPUT.
run_time() {
    local t0
    t0=$(now)
    printf "${INPUT:-}" | "$MINIKVM" "$@" >/dev/null 2>&1 || true
    awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.4f\n", b - a }'
}
timed() { local i; for ((i = 0; i < ROUNDS; i++)); do run_time "$@"; done | median; }

# Seconds a run took by minikvm's own clock (`--stats`: first instruction to the end), so that a
# program's time leaves the lab's boot out.
stats_time() { printf "${INPUT:-}" | "$MINIKVM" --stats "$@" 2>&1 >/dev/null | awk '/time: / { print $2 / 1000 }'; }
stats() { local i; for ((i = 0; i < ROUNDS; i++)); do stats_time "$@"; done | median; }

# Seconds from start until stdout shows the 1K OS menu's prompt (then it powers off).
menu_time() {
    local t0 fifo="$TMP/in" out="$TMP/out" pid
    rm -f "$fifo" && mkfifo "$fifo"
    t0=$(now)
    "$MINIKVM" --lab os-1k <"$fifo" >"$out" 2>/dev/null &
    pid=$!
    exec 7>"$fifo"
    until grep -q 'choice> ' "$out" 2>/dev/null; do sleep 0.01; done
    awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.4f\n", b - a }'
    printf '0\n' >&7
    exec 7>&-
    wait "$pid" || true
}

# gdb stepi: seconds per step, timed inside gdb, after PROLOGUE (gdb commands separated by |);
# ARGS start the minikvm to debug.
step_time() {
    local port err="$TMP/gdb.err" pid c pro=()
    IFS='|' read -r -a c <<<"$1"
    for c in "${c[@]}"; do pro+=(-ex "$c"); done
    shift
    port=$((30000 + RANDOM % 20000))
    "$MINIKVM" --gdb "$port" "$@" </dev/null >/dev/null 2>"$err" &
    pid=$!
    until grep -q 'waiting for gdb' "$err" 2>/dev/null; do sleep 0.05; done
    gdb -nx -batch -ex 'set pagination off' -ex 'set confirm off' -ex "target remote 127.0.0.1:$port" \
        "${pro[@]}" -ex 'python import time' -ex 'python t0 = time.perf_counter()' \
        -ex "stepi $STEPS" -ex "python print('RESULT %.9f' % ((time.perf_counter() - t0) / $STEPS))" \
        -ex kill 2>/dev/null | sed -n 's/^RESULT //p'
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
steps() { local i; for ((i = 0; i < ROUNDS; i++)); do step_time "$@"; done | median; }

row() { # name, lab seconds, host seconds or "", unit: s | ms | steps
    awk -v n="$1" -v l="$2" -v h="$3" -v u="$4" 'BEGIN {
        f = (u == "ms") ? 1000 : 1
        if (u == "steps") { ls = sprintf("%.0f steps/s", 1 / l); hs = (h == "") ? "—" : sprintf("%.0f steps/s", 1 / h) }
        else { ls = sprintf("%.3f %s", l * f, u); hs = (h == "") ? "—" : sprintf("%.3f %s", h * f, u) }
        r = (h == "") ? "—" : (u == "steps" ? sprintf("%.2f×", h / l) : sprintf("%.1f×", l / h))
        printf "| %s | %s | %s | %s |\n", n, ls, hs, r }'
}

paging=1
MINIKVM_NO_LAB=1 "$MINIKVM" doctor --probe paging >/dev/null 2>&1 || paging=0
host_or_none() { if ((paging)); then "$@"; else echo ""; fi; }

echo "measuring ($ROUNDS rounds each; the lab's first use must be done: lab/minikvm-lab --setup)" >&2
lab_hello=$(timed --lab hello)
host_hello=$(MINIKVM_NO_LAB=1 timed hello)
lab_menu=$(for ((i = 0; i < ROUNDS; i++)); do menu_time; done | median)
host_menu=$(INPUT='0\n' host_or_none timed --no-lab os-1k) # start to exit: menu, then power-off
lab_mult=$(stats --lab multiplication)
host_mult=$(stats --no-lab multiplication)
lab_os0=$(INPUT='0\n' stats --lab --eof-grace 30 os-1k)
lab_os1=$(INPUT='1\n0\n' stats --lab --eof-grace 30 os-1k)
lab_step=$(steps 'stepi' --lab spin)
host_step=$(steps 'stepi' --no-lab spin)
lab_kstep=$(steps 'hbreak kernel_main|continue' --lab os-1k)

{
    echo "The lab against this host's KVM ($(date -u +%F), $(nproc) CPUs; $ROUNDS rounds, medians; \`benches/lab-numbers.sh\`):"
    echo
    echo "| measure | lab | host KVM | lab / host |"
    echo "|---|---|---|---|"
    row "start to exit, \`hello\` (real mode)" "$lab_hello" "$host_hello" s
    row "start to the 1K OS menu" "$lab_menu" "$host_menu" s
    row "a program's run: \`multiplication\` (real mode), minikvm's \`--stats\` time" "$lab_mult" "$host_mult" ms
    row "a program's run: 1K OS program 1 (multiplication), \`--stats\` time minus power-off at the menu" \
        "$(awk -v a="$lab_os1" -v b="$lab_os0" 'BEGIN { print a - b }')" "" ms
    row "gdb \`stepi\` rate, \`spin\` (real mode)" "$lab_step" "$host_step" steps
    row "gdb \`stepi\` rate, 1K OS kernel from \`kernel_main\`" "$lab_kstep" "" steps
    echo
    ((paging)) || echo "(—: this host's KVM cannot run 32-bit paging, so the 1K OS runs only in the lab.)"
    echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (a shared machine: wall times vary with it)."
} | tee "$OUT"
