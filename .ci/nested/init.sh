#!/bin/sh
# /init of the nested real-KVM lane's initramfs (busybox ash, PID 1 inside QEMU TCG).
# Built into the initramfs by .ci/nested-lane; see .ci/nested/README.md.
#
# It mounts the pseudo file systems, loads irqbypass/kvm/kvm-amd, checks /dev/kvm, runs every test
# binary listed in /lane/tests.list (with the arguments in /lane/args, one per line) and powers off.
# Every line meant for the host starts with "@@nested-lane: "; the host reads only those:
#   @@nested-lane: BIN <name> rc=<n> passed=<n> failed=<n> ignored=<n> self_skipped=<n> result=<ok|FAILED|none> secs=<s>
#   @@nested-lane: SELF-SKIPPED <test>: <why>      (a test that skipped itself, see tests/common)
#   @@nested-lane: DONE binaries=<n> passed=<n> failed=<n> ignored=<n> crashed=<n> self_skipped=<n> ...
# "passed" excludes the self-skipped tests (libtest counts them as passed).
#   @@nested-lane: FATAL <why>
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
export HOME=/root TMPDIR=/tmp USER=root LOGNAME=root TERM=dumb LANG=C.UTF-8

mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mkdir -p /dev/pts /dev/shm /tmp /root /run
ln -s /proc/self/fd /dev/fd; ln -s fd/0 /dev/stdin; ln -s fd/1 /dev/stdout; ln -s fd/2 /dev/stderr
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
chmod 1777 /tmp # rootfs is already in RAM; no tmpfs on top (the repo may live under /tmp)
mount -t tmpfs tmpfs /run
ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up

say() { echo "@@nested-lane: $*"; }
up() { cut -d' ' -f1 /proc/uptime; }
off() { sync; poweroff -f; sleep 30; }
die() { say "FATAL $*"; off; }

. /lane/config || die "no /lane/config"

echo # the firmware's last line has no newline: start the markers on a line of their own
say "init started at $(up)s: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-), $(nproc) cpus, $(uname -r)"

while read -r m; do
    [ -n "$m" ] || continue
    insmod "/lane/modules/$m.ko" || { dmesg | tail -20; die "insmod $m failed"; }
done </lane/modules.order
[ -c /dev/kvm ] || { dmesg | tail -20; die "/dev/kvm did not appear after loading kvm-amd"; }
say "kvm ready at $(up)s: kvm_amd npt=$(cat /sys/module/kvm_amd/parameters/npt 2>/dev/null) nested=$(cat /sys/module/kvm_amd/parameters/nested 2>/dev/null)"

export MINIKVM_BIN="$LANE_MINIKVM" MINIKVM_NESTED_LANE=1 NO_COLOR=1 RUST_BACKTRACE=1
export CARGO_MANIFEST_DIR="$LANE_REPO" CARGO_BIN_EXE_minikvm="$LANE_MINIKVM"
cd "$LANE_REPO" || die "no $LANE_REPO in the initramfs"

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

set -o pipefail
nb=0 tp=0 tf=0 ti=0 crashed=0 skipped=0
say "tests start at $(up)s"
while IFS= read -r bin; do
    [ -n "$bin" ] || continue
    name=${bin##*/}
    nb=$((nb + 1))
    say "RUN $name"
    t0=$(up)
    timeout "$LANE_BIN_TIMEOUT" "$bin" "$@" </dev/null 2>&1 | tee /tmp/out
    rc=$?
    # The -cpu max lane (KVM on TCG's emulated SVM with nested paging) sometimes stalls a guest
    # for a minute. A binary with failed tests runs once more; the retry is reported by name in
    # the summary, never hidden, and a second failure counts.
    if [ "$rc" != 0 ] && grep -q '^test result: FAILED' /tmp/out; then
        say "RETRY $name: first run failed: $(grep -o '^test [^ ]* \.\.\. FAILED' /tmp/out | awk '{print $2}' | tr '\n' ' ')"
        timeout "$LANE_BIN_TIMEOUT" "$bin" "$@" </dev/null 2>&1 | tee /tmp/out
        rc=$?
    fi
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
done </lane/tests.list

# Measurements, not tests: the 1K OS's VM exits and times (benches/os1k-numbers.sh). They never
# decide the result; the host copies the NUMBERS lines into <work>/os1k-numbers-<cpu>.md.
if [ "$LANE_NUMBERS" = 1 ] && [ -f benches/os1k-numbers.sh ]; then
    timeout 300 sh benches/os1k-numbers.sh "$LANE_MINIKVM" </dev/null 2>&1 | while IFS= read -r line; do say "NUMBERS $line"; done
fi

say "DONE binaries=$nb passed=$tp failed=$tf ignored=$ti crashed=$crashed self_skipped=$skipped tests_end=$(up)s"
off
