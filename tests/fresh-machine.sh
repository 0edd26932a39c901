#!/usr/bin/env bash
# `cargo test` as on a fresh machine that has only Rust, gcc/binutils and /dev/kvm: the optional
# tools (QEMU, gdb, gdbserver, lldb, strace, tmux) are hidden from PATH. Checks what the README promises:
# the run passes (exit status 0), and its last lines count the tests that could not run and name
# the missing tools (tests/zz_summary.rs prints them). Arguments go to `cargo test`.
#
#   tests/fresh-machine.sh            # takes as long as `cargo test`
set -euo pipefail
cd "$(dirname "$0")/.."

hidden='^(qemu-system-.*|gdb|gdbserver|lldb|lldb-server|strace|tmux)$'
# A PATH of one directory: a link to every program on the real PATH except the hidden ones.
bin=$(mktemp -d)
log=$(mktemp)
trap 'rm -rf "$bin" "$log"' EXIT
IFS=: read -ra dirs <<<"$PATH"
for dir in "${dirs[@]}"; do
    for program in "$dir"/*; do
        name=${program##*/}
        [[ -x $program && ! -d $program && ! -e $bin/$name && ! $name =~ $hidden ]] || continue
        ln -s "$program" "$bin/$name"
    done
done

fail() { echo "fresh-machine: FAILED: $*" >&2; exit 1; }
echo "fresh-machine: cargo test with qemu-system-*, gdb, gdbserver, lldb, strace and tmux hidden from PATH"
status=0
PATH=$bin cargo test "$@" 2>&1 | tee "$log" || status=$?
((status == 0)) || fail "cargo test exited with status $status"

# The summary's closing line is the very last line, and no skipped test is counted as passed.
last=$(tail -n 1 "$log")
[[ $last =~ ^[0-9]+\ passed,\ 0\ failed,\ ([0-9]+)\ skipped ]] || fail "the last line is not the summary: $last"
((BASH_REMATCH[1] > 0)) || fail "nothing counted as skipped, with QEMU, gdb and strace hidden"
summary=$(sed -n '/^skipped: /,$p' "$log")
for tool in qemu-system-i386 qemu-system-x86_64 gdb lldb strace; do
    grep -q "\`$tool\` is not installed" <<<"$summary" || fail "the summary does not say that $tool is missing"
done
echo "fresh-machine: ok: cargo test passed and its last lines count what could not run"
