#!/bin/sh
# /init of the lab's emulated PC (busybox ash, PID 1), shared by the lab (lab/minikvm-lab) and the
# nested test lane (.ci/nested-lane); see lab/README.md.
#
# Common part: mount the pseudo file systems, load the modules in /lab/modules.order, check that
# /dev/kvm appeared. Then the payload decides, by what the host appended to the image:
#   /lab/run.conf   the lab: run minikvm once with the user's arguments, report its exit status
#   /lane/run.sh    the lane: run the test binaries (.ci/nested/tests.sh)
# Every line meant for the host starts with "@@lab: " (the lane's own lines with "@@nested-lane: ").
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

up() { cut -d' ' -f1 /proc/uptime; }
off() { sync; poweroff -f; sleep 30; }
lab_say() { echo "@@lab: $*"; }
lab_fatal() { lab_say "FATAL $*"; off; }

echo # the firmware's last line has no newline: start the markers on a line of their own
lab_say "init at $(up)s: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-), $(nproc) cpus, $(uname -r)"
while read -r m; do
    [ -n "$m" ] || continue
    insmod "/lab/modules/$m.ko" || { dmesg | tail -20; lab_fatal "insmod $m failed"; }
done </lab/modules.order
[ -c /dev/kvm ] || { dmesg | tail -20; lab_fatal "/dev/kvm did not appear after loading kvm-amd"; }
lab_say "kvm ready at $(up)s: kvm_amd npt=$(cat /sys/module/kvm_amd/parameters/npt 2>/dev/null)"

# The device node of the virtio-serial port the host named $1.
port() {
    for p in /sys/class/virtio-ports/vport*; do
        [ "$(cat "$p/name" 2>/dev/null)" = "$1" ] && { echo "/dev/${p##*/}"; return; }
    done
    lab_fatal "no virtio port named $1"
}

# The lab: one minikvm run. run.conf sets LAB_MINIKVM, LAB_CWD, LAB_IN (tty or port), LAB_OUT
# (tty or port), LAB_NET (1: bring up eth0 for gdb); /lab/args holds minikvm's arguments, one a line.
run_minikvm() {
    . /lab/run.conf
    if [ "$LAB_NET" = 1 ]; then
        ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 || lab_fatal "no network for gdb"
    fi
    # ttyS0 is the user's console: no line discipline between minikvm and the user's terminal
    # (QEMU's end has put that terminal in raw mode, as minikvm would on the host).
    stty -F /dev/ttyS0 raw -echo 2>/dev/null
    in=/dev/ttyS0 out=/dev/ttyS0
    [ "$LAB_IN" = port ] && in=$(port in)
    [ "$LAB_OUT" = port ] && out=$(port out)
    err=$(port err)
    set --
    while IFS= read -r a; do set -- "$@" "$a"; done </lab/args
    cd "$LAB_CWD" 2>/dev/null || cd /
    lab_say "minikvm starts at $(up)s"
    MINIKVM_NO_LAB=1 "$LAB_MINIKVM" "$@" <"$in" >"$out" 2>"$err"
    rc=$?
    stty -F /dev/ttyS0 raw -echo 2>/dev/null # waits until the console's last bytes are sent
    lab_say "EXIT $rc at $(up)s"
    off
}

if [ -f /lab/run.conf ]; then
    run_minikvm
elif [ -f /lane/run.sh ]; then
    . /lane/run.sh
else
    lab_fatal "the image has no payload (/lab/run.conf or /lane/run.sh)"
fi
off
