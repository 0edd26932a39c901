#!/bin/sh
# /init of minikvm's Linux test initramfs (busybox ash as PID 1). Its arguments are the init
# arguments from the kernel command line (everything after `--`): a command to run between markers,
# then power off; none: a shell on the console. tests/common/initramfs.rs builds the image and says
# why; benches/linux-numbers.sh packs the same file with busybox cpio.
export PATH=/bin HOME=/ TERM=vt100
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "@@minikvm-init: up at $(cut -d' ' -f1 /proc/uptime)"
if [ $# -gt 0 ]; then
    echo 1 >/proc/sys/kernel/printk
    stty -opost </dev/console
    echo "@@minikvm-init: begin"
    sh -c "$*"
    status=$?
    printf '\n@@minikvm-init: end status=%d\n' "$status"
else
    export PS1='minikvm-linux# '
    setsid cttyhack sh
fi
poweroff -f
sleep 10
