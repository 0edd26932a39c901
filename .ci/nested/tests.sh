# The nested lane's test run, sourced by the lab's /init (lab/init.sh) as /lane/run.sh once
# /dev/kvm is there. Built into the image by .ci/nested-lane; see .ci/nested/README.md.
#
# It runs every test binary listed in /lane/tests.list (with the arguments in /lane/args, one per
# line) and powers off. Every line meant for the host starts with "@@nested-lane: "; the host reads only those:
#   @@nested-lane: BIN <name> rc=<n> passed=<n> failed=<n> ignored=<n> self_skipped=<n> result=<ok|FAILED|none> secs=<s>
#   @@nested-lane: SELF-SKIPPED <test>: <why>      (a test that skipped itself, see tests/common)
#   @@nested-lane: DONE binaries=<n> passed=<n> failed=<n> ignored=<n> crashed=<n> self_skipped=<n> ...
# "passed" excludes the self-skipped tests (libtest counts them as passed).
#   @@nested-lane: ALIVE ...     (the watchdog, while a test binary runs over a minute)
#   @@nested-lane: FATAL <why>   (and /init's own "@@lab: FATAL <why>")
say() { echo "@@nested-lane: $*"; }
die() { say "FATAL $*"; off; }

. /lane/config || die "no /lane/config"

export MINIKVM_BIN="$LANE_MINIKVM" MINIKVM_NESTED_LANE=1 NO_COLOR=1 RUST_BACKTRACE=1
export CARGO_MANIFEST_DIR="$LANE_REPO" CARGO_BIN_EXE_minikvm="$LANE_MINIKVM"
cd "$LANE_REPO" || die "no $LANE_REPO in the initramfs"
# tests/linux.rs boots the lane's own kernel with a busybox initramfs it builds (tests/common/initramfs.rs).
# Only the Linux lane (one CPU; see .ci/nested-lane --help) boots Linux, and it runs nothing else.
export MINIKVM_TEST_BUSYBOX=/bin/busybox
LINUX_LANE=0
if grep -q 'minikvm_lane.linux=1' /proc/cmdline; then LINUX_LANE=1; fi
if [ ! -f /lane/linux/vmlinuz ]; then
    export MINIKVM_TEST_LINUX_OFF="the nested lane was built without its kernel (NESTED_LINUX=0)"
elif [ "$LINUX_LANE" = 1 ]; then
    export MINIKVM_TEST_LINUX_KERNEL=/lane/linux/vmlinuz
else
    export MINIKVM_TEST_LINUX_OFF="Linux boots in the nested lane's Linux lane (one CPU: with two, nested boots stalled)"
fi

if [ -x /usr/bin/gdb ]; then
    if timeout 60 gdb -nx -batch -ex 'show version' -ex 'python print("gdb python ok")' </dev/null >/tmp/gdb.out 2>&1 \
        && grep -q 'gdb python ok' /tmp/gdb.out; then
        say "gdb ok: $(head -1 /tmp/gdb.out)"
    else
        cat /tmp/gdb.out; say "gdb BROKEN (tests that need gdb will fail)"
    fi
fi

if [ "$LANE_DOCTOR" = 1 ]; then
    say "minikvm doctor:"
    timeout 120 "$LANE_MINIKVM" doctor </dev/null 2>&1
    say "doctor rc=$?"
fi

set --
while IFS= read -r a; do set -- "$@" "$a"; done </lane/args

# Watchdog: while a test binary runs longer than a minute, say every 30 s what is running: each
# minikvm's command line, and for each of its threads where in the kernel it waits (its /proc
# stack; empty while it runs) and its CPU time in user/system/guest mode. The first time per
# binary it also records one second of KVM's trace events (tracefs), which tell a guest that
# waits from one that loops. If these lines stop too, the whole VM (the kernel or QEMU) froze.
thread_line() { # $1 = /proc/PID/task/TID
    set -- "$1" $(sed 's/^.*) //' "$1/stat" 2>/dev/null)
    # after the name: $2 = state (field 3), so field n is $((n - 1)): utime 14, stime 15, guest 43
    printf '%s (%s) state %s user %s sys %s guest %s ticks; in kernel: %s' "${1##*/}" "$(cat "$1/comm" 2>/dev/null)" \
        "$2" "${13}" "${14}" "${42}" "$(tr '\n' ' ' <"$1/stack" 2>/dev/null | sed 's/\[<[0-9a-f]*>\] //g' | cut -c1-240)"
}
kvm_trace() {
    local t=/sys/kernel/tracing
    [ -d "$t/events/kvm" ] || mount -t tracefs nodev "$t" 2>/dev/null
    [ -w "$t/events/kvm/enable" ] || { say "ALIVE   (no tracefs kvm events here)"; return; }
    echo 4096 >"$t/buffer_size_kb"; echo >"$t/trace"
    echo 1 >"$t/events/kvm/enable"; sleep 1; echo 0 >"$t/events/kvm/enable"
    say "ALIVE   KVM events in 1 s, by kind: $(grep -v '^#' "$t/trace" | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^kvm_[a-z_]*:$/) { k = $i; if ($i == "kvm_exit:") for (j = i + 1; j < NF; j++) if ($j == "reason") { k = k " " $(j + 1); break }; n[k]++ } } END { for (k in n) printf "%s=%d, ", k, n[k] }')"
    grep -v '^#' "$t/trace" | tail -40 | while IFS= read -r l; do say "ALIVE   trace: $l"; done
}
watchdog() {
    while sleep 30; do
        [ -f /tmp/current ] || continue
        read -r cname cstart </tmp/current
        now=$(up)
        el=$(awk "BEGIN{printf \"%d\", $now-$cstart}")
        [ "$el" -ge 60 ] || continue
        say "ALIVE at ${now}s: $cname running for ${el}s; load $(cut -d' ' -f1-3 /proc/loadavg)"
        for pid in $(pidof minikvm); do
            say "ALIVE   minikvm $pid: $(tr '\0' ' ' <"/proc/$pid/cmdline" | cut -c1-200)"
            for t in /proc/"$pid"/task/*; do say "ALIVE     thread $(thread_line "$t")"; done
        done
        if [ -n "$(pidof minikvm)" ] && [ ! -e "/tmp/traced.${cname##*/}.$cstart" ]; then
            : >"/tmp/traced.${cname##*/}.$cstart"
            kvm_trace
        fi
    done
}
watchdog &
WATCHDOG=$!

set -o pipefail
nb=0 tp=0 tf=0 ti=0 crashed=0 skipped=0
say "tests start at $(up)s"
while IFS= read -r bin; do
    [ -n "$bin" ] || continue
    name=${bin##*/}
    # The Linux lane runs tests/linux.rs only (the others ran in the other lanes).
    if [ "$LINUX_LANE" = 1 ]; then case $name in linux-*) ;; *) continue ;; esac; fi
    nb=$((nb + 1))
    say "RUN $name"
    t0=$(up)
    echo "$name $t0" >/tmp/current
    timeout "$LANE_BIN_TIMEOUT" "$bin" "$@" </dev/null 2>&1 | tee /tmp/out
    rc=$?
    t1=$(up)
    res=$(grep '^test result: ' /tmp/out | tail -1)
    p=$(echo "$res" | sed -n 's/.* \([0-9][0-9]*\) passed;.*/\1/p')
    f=$(echo "$res" | sed -n 's/.* \([0-9][0-9]*\) failed;.*/\1/p')
    i=$(echo "$res" | sed -n 's/.* \([0-9][0-9]*\) ignored;.*/\1/p')
    # Tests that skip themselves (tests/common: "SKIPPED <test>: why") pass for libtest; they
    # count as skipped here. Their lines are visible when the binary runs with --show-output.
    grep '^SKIPPED ' /tmp/out | sort -u >/tmp/skipped
    s=$(wc -l </tmp/skipped)
    case "$res" in
        "test result: ok."*) r=ok ;;
        "test result: FAILED."*) r=FAILED ;;
        *) r=none ;;
    esac
    p=${p:-0} f=${f:-0} i=${i:-0}
    [ "$s" -le "$p" ] || s=$p
    p=$((p - s))
    while IFS= read -r line; do say "SELF-$line"; done </tmp/skipped
    # A binary that exited non-zero without a failing test (signal, abort, timeout, no result
    # line) has crashed: it counts as one failure.
    if [ "$rc" != 0 ] && [ "$f" = 0 ]; then
        crashed=$((crashed + 1))
        [ "$rc" = 143 ] && say "TIMEOUT $name after ${LANE_BIN_TIMEOUT}s"
    fi
    tp=$((tp + p)) tf=$((tf + f)) ti=$((ti + i)) skipped=$((skipped + s))
    say "BIN $name rc=$rc passed=$p failed=$f ignored=$i self_skipped=$s result=$r secs=$(awk "BEGIN{printf \"%.1f\", $t1-$t0}")"
done <<EOF
$(n=0; while [ "$n" -lt "${LANE_REPEAT:-1}" ]; do cat /lane/tests.list; n=$((n + 1)); done)
EOF

# Measurements, not tests: the 1K OS's VM exits and times (benches/os1k-numbers.sh). They never
# decide the result; the host copies the NUMBERS lines into <work>/os1k-numbers-<cpu>.md.
if [ "$LANE_NUMBERS" = 1 ] && [ "$LINUX_LANE" = 0 ] && [ -f benches/os1k-numbers.sh ]; then
    echo "benches/os1k-numbers.sh $(up)" >/tmp/current
    timeout 300 sh benches/os1k-numbers.sh "$LANE_MINIKVM" </dev/null 2>&1 | while IFS= read -r line; do say "NUMBERS $line"; done
fi

# Linux on minikvm and on QEMU, same KVM (benches/linux-numbers.sh); the host keeps the LINUX-NUMBERS
# lines in <work>/linux-numbers-<cpu>.md.
if [ "$LANE_NUMBERS" = 1 ] && [ "${LANE_LINUX_NUMBERS:-1}" = 1 ] && [ -f benches/linux-numbers.sh ] && [ -n "${MINIKVM_TEST_LINUX_KERNEL:-}" ]; then
    echo "benches/linux-numbers.sh $(up)" >/tmp/current
    say "linux numbers start at $(up)s"
    # LANE_LINUX_RUNS rounds of three boots (~12 s each on a calm machine, ~40 s under load), 120 s a
    # boot at most.
    LINUX_NUMBERS_RUNS=${LANE_LINUX_RUNS:-1} LINUX_NUMBERS_TIMEOUT=120 timeout $((${LANE_LINUX_RUNS:-1} * 400)) sh benches/linux-numbers.sh "$LANE_MINIKVM" "$MINIKVM_TEST_LINUX_KERNEL" /bin/busybox /lane/qemu/bin/qemu-system-x86_64 </dev/null 2>&1 |
        while IFS= read -r line; do say "LINUX-NUMBERS $line"; done
    say "linux numbers end at $(up)s"
fi

rm -f /tmp/current
kill "$WATCHDOG" 2>/dev/null
say "DONE binaries=$nb passed=$tp failed=$tf ignored=$ti crashed=$crashed self_skipped=$skipped tests_end=$(up)s"
off
