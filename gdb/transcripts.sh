#!/usr/bin/env bash
# gdb/transcripts.sh: runs the debugger sessions that README.md and gdb/README.md show, against a
# real minikvm, and prints them as transcripts: each command after `(gdb) ` (or lldb's own echo),
# then what the client printed, verbatim except that this tree's absolute path is cut to a relative
# one and gdb's warning about the missing executable is left out. The docs' transcripts are pasted
# from its output, so that they show what minikvm does, not what someone remembered.
#
#   gdb/transcripts.sh              every session (cargo build --release first; MINIKVM=path picks
#                                   another binary)
#   gdb/transcripts.sh counter      the sessions whose name contains `counter`
#
# A session that needs what this host's KVM lacks (32-bit paging for the 1K OS) or a client that is
# not installed (lldb) is named and left out.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# The release build, as the README's quick start makes it (else the debug build).
minikvm=${MINIKVM:-$root/target/release/minikvm}
[[ -x $minikvm ]] || minikvm=$root/target/debug/minikvm
filter=${1:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export MINIKVM_NO_LAB=1 NO_COLOR=1

# start GUEST… : starts `minikvm --gdb 0 GUEST…` in the background (stdin from $input, if set) and
# sets $port once minikvm names it, $vm to its process id.
start() {
  : >"$work/err" # before the background job opens it, so that no earlier session's port is read
  "$minikvm" --gdb 0 "$@" <"${input:-/dev/null}" >"$work/out" 2>"$work/err" &
  vm=$!
  port=""
  for _ in $(seq 200); do
    port=$(sed -n 's/.*(in gdb: target remote :\([0-9]*\)).*/\1/p' "$work/err")
    [[ -n $port ]] && return
    sleep 0.05
  done
  echo "transcripts.sh: minikvm named no port: $(cat "$work/err")" >&2
  exit 1
}

# tidy: this tree's path made relative, gdb's warning about the missing executable left out (one
# line, or two where gdb wraps it).
tidy() {
  sed -e "s|$root/||g" -e '/^warning: No executable has been specified/{/Try using the "file"/!N;d}'
}

# finish: waits for minikvm and shows what it printed and its exit status.
finish() {
  wait "$vm"
  local status=$?
  if [[ -s $work/out ]]; then
    echo "--- the guest's output:"
    tidy <"$work/out" | head -n 12
    local lines
    lines=$(wc -l <"$work/out")
    ((lines <= 12)) || echo "(… $((lines - 12)) more lines)"
  fi
  echo "--- minikvm's exit status: $status"
}

# gdb_session NAME "GUESTS" [-x SCRIPT] -- COMMAND… : one batch gdb, each command echoed first.
gdb_session() {
  local name=$1 guests=$2
  shift 2
  [[ -z $filter || $name == *"$filter"* ]] || return 0
  local pre=()
  while [[ $1 != -- ]]; do pre+=("$1"); shift; done
  shift
  local args=()
  for c in "$@"; do args+=(-ex "echo (gdb) $c\\n" -ex "$c"); done
  echo "=== $name: minikvm --gdb 1234 $guests"
  # shellcheck disable=SC2086 # several guests are several words
  start $guests
  gdb -nx -batch -ex 'set pagination off' -ex 'set confirm off' -ex 'set width 0' "${pre[@]}" -ex "target remote :$port" \
    "${args[@]}" 2>&1 | tidy
  finish
  echo
}

# A guest's ELF, next to the binary (relative to the tree when it is in it).
elf() { echo "$(dirname "$minikvm")/guests/$1.elf" | sed "s|^$root/||"; }

gdb_session counter counter -- "symbol-file $(elf counter)" 'x/3i $pc' stepi 'info registers eip eax' \
  'info registers cr0 cs cs_base' 'watch *(unsigned char *)&digit' continue delete 'hbreak uart_putc' \
  continue 'p/c $al' 'monitor mode' detach
gdb_session two-guests "multiplication counter" -- 'info threads' 'thread 2' 'p/x $cs_base' detach
gdb_session triple-fault triple-fault -- continue 'info registers cr0' continue
gdb_session rwatch counter -- "symbol-file $(elf counter)" 'rwatch digit' continue 'delete 1' continue
gdb_session monitor "hello counter" -- 'monitor idt' 'shell sleep 1' stepi 'monitor exits' detach
gdb_session modes modes -x gdb/realmode.gdb -- "symbol-file $(elf modes)" 'hbreak enable_protected' continue \
  stepi stepi 'hbreak enable_long' continue 'info registers cr0 efer' stepi 'info registers cr0 efer' stepi \
  stepi stepi 'info registers rip rsp cs' 'x/2i $pc' continue
gdb_session realmode.gdb-end hello -x gdb/realmode.gdb -- "symbol-file $(elf hello)" 'hbreak done' continue \
  delete continue cs-ip stepover

# gdb's TUI draws on a terminal only: a tmux session of its own is that terminal; its screen's first
# lines are printed once `layout asm` has drawn.
if [[ -z $filter || layout-asm == *"$filter"* ]]; then
  if command -v tmux >/dev/null; then
    echo "=== layout-asm: minikvm --gdb 1234 hello"
    start hello
    tmux -L "minikvm-transcripts-$$" -f /dev/null new-session -d -x 100 -y 24 \
      "gdb -nx -x gdb/realmode.gdb -ex 'set confirm off' -ex 'target remote :$port' -ex 'symbol-file $(elf hello)'"
    screen() { tmux -L "minikvm-transcripts-$$" capture-pane -p -t 0; }
    for _ in $(seq 100); do screen | grep -q '(gdb)' && break; sleep 0.1; done
    tmux -L "minikvm-transcripts-$$" send-keys -t 0 'layout asm' Enter
    for _ in $(seq 100); do screen | grep -q 'minikvm-asm (' && break; sleep 0.1; done
    screen | sed -n '1,6p' | tidy
    tmux -L "minikvm-transcripts-$$" send-keys -t 0 'detach' Enter
    finish
    tmux -L "minikvm-transcripts-$$" kill-server 2>/dev/null
    echo
  else
    echo "=== layout-asm: left out (tmux is not installed)"
    echo
  fi
fi

if [[ -z $filter || os-1k32 == *"$filter"* ]]; then
  if "$minikvm" doctor --probe paging >/dev/null 2>&1; then
    input=<(printf '1\n') gdb_session os-1k32 os-1k32 -- 'show architecture' \
      'hbreak *((unsigned)&enable_paging - 0xc0000000)' continue 'p/x $cr0 >> 31' stepi 'p/x $cr0 >> 31' \
      delete 'break kernel_main' continue 'monitor pt 0xc0100000' kill
  else
    echo "=== os-1k32: left out (this host's KVM cannot run 32-bit paging; the nested lane can)"
    echo
  fi
fi

if [[ -z $filter || lldb == *"$filter"* ]]; then
  if command -v lldb >/dev/null; then
    echo "=== lldb: minikvm --gdb 1234 hello"
    start hello
    lldb --no-lldbinit -b --arch i386 -o "gdb-remote $port" -o 'register read eip cs cr0' \
      -o 'memory read --size 1 --count 8 0' -o 'thread step-inst' -o 'breakpoint set -a 0x12' -o continue \
      -o 'breakpoint delete -f' -o continue 2>/dev/null | sed "s/gdb-remote $port/gdb-remote 1234/" | tidy
    finish
    echo
  else
    echo "=== lldb: left out (lldb is not installed)"
    echo
  fi
fi

if [[ -z $filter || mi == *"$filter"* ]]; then
  echo "=== mi: minikvm --gdb 1234 hello"
  start hello
  mi=('-gdb-set confirm off' "-target-select remote :$port" "-file-symbol-file $(elf hello)" '-break-insert done'
    '-exec-continue' '-data-evaluate-expression $pc' '-break-delete 1' '-exec-continue' '-gdb-exit')
  # MI does not echo commands: they are listed first, and each answer is the next `^` record.
  printf -- '-> %s\n' "${mi[@]}" | sed "s/remote :$port/remote :1234/" | tidy
  printf '%s\n' "${mi[@]}" | gdb --interpreter=mi3 -nx -q 2>&1 | tidy
  finish
fi
