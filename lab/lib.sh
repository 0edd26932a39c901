# lab/lib.sh: the machinery shared by the lab (lab/minikvm-lab) and the nested test lane
# (.ci/nested-lane): fetch QEMU, a Debian kernel and busybox into a cache; build initramfs
# images; boot the emulated PC. Sourced by bash scripts that set LAB_NAME (their name in messages)
# and call `lab_die` with their own exit status. See lab/README.md.
#
# Environment:
#   MINIKVM_LAB_CACHE    the cache, default ~/.cache/minikvm/lab (MINIKVM_LANE_CACHE: old name)
#   MINIKVM_LAB_MIRROR   Debian mirror URI; default: the one the system's apt sources use
#   MINIKVM_LAB_KEYRING  Debian archive keyring, default /usr/share/keyrings/debian-archive-keyring.gpg

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB_CACHE=${MINIKVM_LAB_CACHE:-${MINIKVM_LANE_CACHE:-${HOME:-/root}/.cache/minikvm/lab}}
LAB_ROOT="$LAB_CACHE/root"
LAB_SUITE=bookworm
LAB_BACKPORTS=bookworm-backports
LAB_QEMU_PKGS=(qemu-system-x86 qemu-system-common qemu-system-data seabios)
LAB_KERNEL_META=linux-image-cloud-amd64
# kvm-amd for /dev/kvm; virtio-pci, virtio-console and virtio-net for the lab's console ports and
# its network (gdb); their dependencies come from each module's depends=.
LAB_MODULES=(irqbypass kvm kvm-amd virtio_pci virtio_console virtio_net)
LAB_QEMU="$LAB_ROOT/usr/bin/qemu-system-x86_64"
LAB_BUSYBOX="$LAB_ROOT/bin/busybox"

lab_log() { echo "${LAB_NAME:-lab}: $*" >&2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
lab_need() { command -v "$1" >/dev/null || lab_die "\`$1\` not found: $2"; }
# Megabytes, one decimal, of a byte count.
mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1e6 }'; }

lab_qemu_env() {
    env LD_LIBRARY_PATH="$LAB_ROOT/usr/lib/x86_64-linux-gnu:$LAB_ROOT/lib/x86_64-linux-gnu" \
        QEMU_MODULE_DIR="$LAB_ROOT/usr/lib/x86_64-linux-gnu/qemu" "$@"
}

# ---------------------------------------------------------------------------------------------
# Set-up: QEMU 10 from bookworm-backports, the kernel, busybox-static (private apt, no install)
# ---------------------------------------------------------------------------------------------

# The URI of the Debian archive that the system's apt sources use (.list or deb822 .sources).
find_mirror() {
    if [[ -n ${MINIKVM_LAB_MIRROR:-${MINIKVM_LANE_MIRROR:-}} ]]; then echo "${MINIKVM_LAB_MIRROR:-$MINIKVM_LANE_MIRROR}"; return; fi
    local uri
    uri=$(env -u APT_CONFIG apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(IDENTIFIER) $(ORIGIN)' 2>/dev/null |
        awk '$3 == "Packages" && $2 !~ /-(security|updates|backports)$/ && $2 ~ /^[a-z]+$/ {
                 score = ($4 == "Debian") * 2 + ($2 == "'"$LAB_SUITE"'")
                 if (score > best || !seen) { best = score; seen = 1; u = $1 } }
             END { if (seen) print u }')
    if [[ -z $uri ]]; then
        uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
            sed -n -e 's/^deb \(\[[^]]*\] \)\{0,1\}\([^ ]*\) .*/\2/p' -e 's/^URIs: *\([^ ]*\).*/\1/p' |
            grep -v -e security -e '^cdrom:' | grep '/debian' | head -1)
    fi
    [[ -n $uri ]] || uri=http://deb.debian.org/debian/
    echo "$uri"
}

APTDIR="$LAB_CACHE/apt"
DEBS="$LAB_CACHE/debs"
apt_setup() {
    local mirror keyring
    mirror=$(find_mirror)
    keyring=${MINIKVM_LAB_KEYRING:-${MINIKVM_LANE_KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}}
    [[ -r $keyring ]] || lab_die "no Debian archive keyring at $keyring (install debian-archive-keyring, or set MINIKVM_LAB_KEYRING)"
    mkdir -p "$APTDIR"/{conf.d,sources.list.d,preferences.d,lists/partial,cache,archives/partial} "$DEBS"
    cat >"$APTDIR/apt.conf" <<EOF
Dir::Etc::main "/dev/null";
Dir::Etc::parts "$APTDIR/conf.d";
Dir::Etc::sourcelist "/dev/null";
Dir::Etc::sourceparts "$APTDIR/sources.list.d";
Dir::Etc::preferences "/dev/null";
Dir::Etc::preferencesparts "$APTDIR/preferences.d";
Dir::State "$APTDIR";
Dir::State::lists "$APTDIR/lists";
Dir::State::status "$APTDIR/status";
Dir::Cache "$APTDIR/cache";
Dir::Cache::archives "$APTDIR/archives";
APT::Architecture "amd64";
APT::Architectures { "amd64"; };
APT::Install-Recommends "false";
APT::Install-Suggests "false";
APT::Sandbox::User "root";
Acquire::Languages "none";
Acquire::Check-Valid-Until "false";
Acquire::Retries "3";
Acquire::IndexTargets::deb::DEP-11::DefaultEnabled "false";
Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled "false";
Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled "false";
Acquire::IndexTargets::deb::DEP-11-icons-hidpi::DefaultEnabled "false";
Debug::NoLocking "true";
EOF
    cat >"$APTDIR/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $LAB_SUITE $LAB_BACKPORTS
Components: main
Signed-By: $keyring
EOF
    # QEMU and its firmware from the backports suite; everything else from bookworm itself.
    cat >"$APTDIR/preferences.d/qemu-backports" <<EOF
Package: qemu-* seabios ipxe-qemu
Pin: release n=$LAB_BACKPORTS
Pin-Priority: 990
EOF
    # A copy of this machine's dpkg status, so that the resolver knows which libraries it has
    # (less any QEMU already installed, which the resolver would otherwise want to upgrade as a
    # whole). LAB_DPKG_STATUS: another status file, to check what a fresh machine would fetch.
    local status=${LAB_DPKG_STATUS:-${NESTED_DPKG_STATUS:-/var/lib/dpkg/status}}
    if [[ -r $status ]]; then
        awk 'BEGIN { RS = ""; ORS = "\n\n" } !/^Package: (qemu-[^\n]*|seabios|ipxe-qemu)\n/' "$status" >"$APTDIR/status"
    else
        : >"$APTDIR/status"
    fi
    export APT_CONFIG="$APTDIR/apt.conf"
    lab_log "Debian packages from $mirror ($LAB_SUITE, $LAB_BACKPORTS), apt state in $APTDIR"
}

# Sets KVER and PKGS (name=version of every package to download).
resolve_packages() {
    local kpkg p v sim
    kpkg=$(apt-cache depends "$LAB_KERNEL_META" 2>/dev/null | awk '/Depends: linux-image-/ { print $2; exit }')
    [[ -n $kpkg ]] || lab_die "cannot find $LAB_KERNEL_META at $(find_mirror): $(apt_why "$LAB_CACHE/apt-update.log")"
    KVER=${kpkg#linux-image-}
    PKGS=()
    for p in "${LAB_QEMU_PKGS[@]}" "$LAB_KERNEL_META" "$kpkg" busybox-static; do
        v=$(apt-cache policy "$p" | awk '/Candidate:/ { print $2 }')
        [[ -n $v && $v != "(none)" ]] || lab_die "package $p is not in $LAB_SUITE/$LAB_BACKPORTS"
        PKGS+=("$p=$v")
    done
    # What installing QEMU here would add or upgrade: exactly the libraries this machine lacks.
    sim=$(apt-get -s -q install "${LAB_QEMU_PKGS[@]}" 2>&1) || { echo "$sim" >&2; lab_die "apt cannot resolve ${LAB_QEMU_PKGS[*]}"; }
    while read -r p; do
        [[ -n $p ]] || continue
        case " ${PKGS[*]} " in *" ${p%%=*}="*) continue ;; esac
        PKGS+=("$p")
    done < <(sed -n 's/^Inst \([^ ]*\) \(\[[^]]*\] \)\{0,1\}(\([^ ]*\) .*/\1=\3/p' <<<"$sim" | grep -v -e '^libc6=' -e '^libc-bin=')
}

# Prints what will be fetched: each package with its size, and the total.
show_packages() {
    local p size total=0
    for p in "${PKGS[@]}"; do
        size=$(apt-cache show "$p" 2>/dev/null | awk '/^Size:/ { print $2; exit }')
        size=${size:-0}
        total=$((total + size))
        lab_log "  ${p%%=*} ${p#*=} ($(mb "$size"))"
    done
    FETCH_BYTES=$total
}

# apt's first error or warning in log $1, and where the whole log is: one line.
apt_why() {
    local first
    first=$(grep -m1 -E '^(E|W):' "$1" 2>/dev/null || grep -m1 '^Err:' "$1" 2>/dev/null)
    first=$(cut -c1-200 <<<"$first")
    echo "${first:-no message} (log: $1)"
}

fetch_and_extract() {
    local t0 t1 f p files=()
    t0=$(now)
    lab_log "first use: fetching QEMU, a Debian kernel and busybox into $LAB_CACHE (once)"
    apt_setup
    lab_log "reading the package lists (apt-get update, private lists)"
    apt-get -q -o Dpkg::Use-Pty=0 update >"$LAB_CACHE/apt-update.log" 2>&1 ||
        lab_die "apt-get update failed: $(apt_why "$LAB_CACHE/apt-update.log")"
    resolve_packages
    [[ " ${PKGS[*]} " == *" qemu-system-x86="*"~bpo"* ]] ||
        lab_log "WARNING: the qemu-system-x86 candidate is not from $LAB_BACKPORTS (QEMU < 10 loses hardware breakpoints in the nested KVM)"
    lab_log "package lists read in $(since "$t0")s; downloading ${#PKGS[@]} packages:"
    show_packages
    t1=$(now)
    # apt-get download skips the files that the cache already holds (same name and hash).
    (cd "$DEBS" && apt-get -q download "${PKGS[@]}") >"$LAB_CACHE/apt-download.log" 2>&1 ||
        lab_die "apt-get download failed: $(apt_why "$LAB_CACHE/apt-download.log")"
    lab_log "downloaded $(mb "$FETCH_BYTES") in $(since "$t1")s"
    for p in "${PKGS[@]}"; do
        f=$(cd "$DEBS" && compgen -G "${p%%=*}_$(sed 's/:/%3a/' <<<"${p#*=}")_*.deb" | head -1) ||
            lab_die "apt-get download did not leave a .deb for $p"
        files+=("$f")
    done
    t1=$(now)
    rm -rf "$LAB_ROOT.new" && mkdir -p "$LAB_ROOT.new"
    for f in "${files[@]}"; do dpkg-deb -x "$DEBS/$f" "$LAB_ROOT.new" || lab_die "dpkg-deb -x $f failed"; done
    rm -rf "$LAB_ROOT" && mv "$LAB_ROOT.new" "$LAB_ROOT"
    printf '%s\n' "${files[@]}" >"$LAB_ROOT/.debs"
    echo "KVER=$KVER" >"$LAB_ROOT/.lane"
    lab_log "extracted ${#files[@]} packages in $(since "$t1")s ($(du -sm "$LAB_ROOT" | cut -f1) MB in $LAB_ROOT)"
    # The lists and apt's binary caches (~120 MB) are only needed to resolve again (--refresh).
    rm -rf "$APTDIR/lists" "$APTDIR/cache"
    lab_log "set-up done in $(since "$t0")s"
}

# True when the cache holds a complete, working set (sets KVER and QEMU_VERSION).
setup_ok() {
    [[ -f $LAB_ROOT/.lane ]] || return 1
    # shellcheck disable=SC1091
    . "$LAB_ROOT/.lane"
    [[ -x $LAB_QEMU && -x $LAB_BUSYBOX && -f $LAB_ROOT/boot/vmlinuz-$KVER && -d $LAB_ROOT/lib/modules/$KVER ]] || return 1
    if lab_qemu_env ldd "$LAB_QEMU" 2>&1 | grep -q 'not found'; then
        lab_log "QEMU misses libraries:"; lab_qemu_env ldd "$LAB_QEMU" 2>&1 | grep 'not found' >&2
        return 1
    fi
    QEMU_VERSION=$(lab_qemu_env "$LAB_QEMU" --version 2>/dev/null | head -1) || return 1
    [[ -n $QEMU_VERSION ]]
}

# Fills the cache if needed (REFRESH=1: always). Sets SETUP_SECS.
lab_setup() {
    local t0
    t0=$(now)
    lab_need apt-get "the lab's set-up needs a Debian-family host (apt-get, dpkg-deb); see the README for other hosts"
    lab_need dpkg-deb "the lab's set-up needs dpkg-deb"
    mkdir -p "$LAB_CACHE" || lab_die "cannot create the cache $LAB_CACHE"
    lab_lock
    if ((${REFRESH:-0})) || ! setup_ok; then
        fetch_and_extract
        setup_ok || lab_die "the fetched QEMU does not run (see above)"
    fi
    lab_unlock
    SETUP_SECS=$(since "$t0")
}

# The cache's lock (fd 9), held only while something in the cache is being filled: several labs
# and lanes may start at once.
lab_lock() {
    exec 9>"$LAB_CACHE/.lock"
    command -v flock >/dev/null && flock 9
}
lab_unlock() { exec 9>&-; }

# ---------------------------------------------------------------------------------------------
# Initramfs images
# ---------------------------------------------------------------------------------------------
IR="" # the directory being packed
# Copies a host file to the same path in the image (following symlinks).
put() {
    local src=$1 dst=${2:-$1}
    mkdir -p "$IR$(dirname "$dst")"
    cp -L "$src" "$IR$dst"
}
# Copies an executable, stripped of debug info unless LAB_STRIP=0 (NESTED_STRIP=0).
put_exe() {
    local src=$1
    mkdir -p "$IR$(dirname "$src")"
    if [[ ${LAB_STRIP:-${NESTED_STRIP:-1}} != 0 ]] && command -v objcopy >/dev/null &&
        objcopy --strip-debug "$src" "$IR$src" 2>/dev/null; then
        chmod +x "$IR$src"
    else
        cp -L "$src" "$IR$src"
    fi
}
declare -A LIBS_DONE=()
# Copies the shared libraries (and the dynamic loader) that ldd lists for a host executable.
put_libs() {
    local exe=$1 out lib
    out=$(ldd "$exe" 2>&1) || return 0 # static executable
    if grep -q 'not found' <<<"$out"; then echo "$out" >&2; lab_die "ldd: $exe needs libraries this machine lacks"; fi
    while read -r lib; do
        [[ -n $lib && -z ${LIBS_DONE[$lib]:-} ]] || continue
        LIBS_DONE[$lib]=1
        put "$lib"
    done < <(awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$out")
}

# Module file of a module name (kvm_amd and kvm-amd are the same), decompressed if needed.
module_file() {
    local n=$1 f
    f=$(find "$LAB_ROOT/lib/modules/$KVER" \( -name "$n.ko*" -o -name "${n//_/-}.ko*" -o -name "${n//-/_}.ko*" \) -print -quit)
    [[ -n $f ]] || lab_die "module $n not found in $LAB_KERNEL_META ($KVER)"
    echo "$f"
}
declare -A MOD_DONE=()
MOD_ORDER=()
add_module() {
    local n=$1 f tmp deps d
    [[ -z ${MOD_DONE[$n]:-} ]] || return 0
    MOD_DONE[$n]=1
    f=$(module_file "$n")
    tmp="$IR/lab/modules/$n.ko"
    mkdir -p "$IR/lab/modules"
    case $f in
        *.ko) cp "$f" "$tmp" ;;
        *.ko.xz) xz -dc "$f" >"$tmp" 2>/dev/null || "$LAB_BUSYBOX" xzcat "$f" >"$tmp" ;;
        *.ko.zst) zstd -qdc "$f" >"$tmp" ;;
        *.ko.gz) gzip -dc "$f" >"$tmp" ;;
        *) lab_die "unknown module format: $f" ;;
    esac
    deps=$(grep -a -o 'depends=[A-Za-z0-9_,-]*' "$tmp" | head -1 | cut -d= -f2)
    for d in ${deps//,/ }; do add_module "$d"; done
    MOD_ORDER+=("$n")
}

# Packs the directory $IR into a newc cpio archive ($1), gzip-compressed when $2 = gz.
pack() {
    local out=$1 how=${2:-}
    (cd "$IR" && find . -mindepth 1 | LC_ALL=C sort | "$LAB_BUSYBOX" cpio -o -H newc -R 0:0 2>/dev/null |
        if [[ $how == gz ]]; then gzip -1; else cat; fi >"$out.$$.tmp") || lab_die "packing $out failed"
    mv "$out.$$.tmp" "$out"
}

# The base image, built once per kernel and per version of lab/init.sh: busybox with its applet
# links, the modules in load order, /init. Both the lab and the lane put their payload in a
# second archive appended to it (the kernel unpacks concatenated archives in order).
# Sets LAB_BASE to its path. Call it under lab_lock.
lab_base_image() {
    local a key
    key=$(cat "$LAB_DIR/init.sh" "$LAB_ROOT/.lane" | cksum | cut -d' ' -f1)
    LAB_BASE="$LAB_CACHE/base-$KVER-$key.cpio.gz"
    [[ -f $LAB_BASE ]] && return 0
    rm -f "$LAB_CACHE"/base-*.cpio.gz
    IR=$(mktemp -d "$LAB_CACHE/base.XXXXXX") || lab_die "cannot write to $LAB_CACHE"
    mkdir -p "$IR"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,root,run,etc,lab}
    cp "$LAB_BUSYBOX" "$IR/bin/busybox"
    for a in $("$LAB_BUSYBOX" --list); do [[ $a == busybox ]] || ln -s busybox "$IR/bin/$a"; done
    cat >"$IR/etc/passwd" <<<"root:x:0:0:root:/root:/bin/sh"
    cat >"$IR/etc/group" <<<"root:x:0:"$'\n'"tty:x:5:"
    printf '127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n' >"$IR/etc/hosts"
    printf 'passwd: files\ngroup: files\nhosts: files\n' >"$IR/etc/nsswitch.conf"
    MOD_DONE=() MOD_ORDER=()
    for a in "${LAB_MODULES[@]}"; do add_module "$a"; done
    printf '%s\n' "${MOD_ORDER[@]}" >"$IR/lab/modules.order"
    cp "$LAB_DIR/init.sh" "$IR/init" && chmod 755 "$IR/init"
    pack "$LAB_BASE" gz
    rm -rf "$IR"
}

# Concatenates archives into $1, each padded to 512 bytes (the kernel unpacks them in order).
lab_concat() {
    local out=$1 f
    shift
    : >"$out"
    for f in "$@"; do cat "$f" >>"$out"; truncate -s %512 "$out"; done
}

# ---------------------------------------------------------------------------------------------
# The emulated PC
# ---------------------------------------------------------------------------------------------
# QEMU's command line up to the devices each user adds: TCG with one thread (multi-threaded TCG
# corrupts nested-paging guests now and then, see .ci/nested/README.md), CPU model $1 (max: AMD
# SVM with nested paging), the kernel with the image $2 and the kernel command line $3.
# Sets the array QEMU_CMD.
lab_qemu_cmd() {
    QEMU_CMD=(env LD_LIBRARY_PATH="$LAB_ROOT/usr/lib/x86_64-linux-gnu:$LAB_ROOT/lib/x86_64-linux-gnu"
        QEMU_MODULE_DIR="$LAB_ROOT/usr/lib/x86_64-linux-gnu/qemu" "$LAB_QEMU" -L "$LAB_ROOT/usr/share/qemu" -L "$LAB_ROOT/usr/share/seabios"
        -accel "tcg,thread=${LAB_TCG_THREAD:-single}" -cpu "$1" -smp "${LAB_SMP:-2}" -m "${LAB_MEM:-1024}"
        -display none -no-reboot -audio none -nodefaults
        -kernel "$LAB_ROOT/boot/vmlinuz-$KVER" -initrd "$2" -append "$3 panic=-1 no_timer_check lpj=8000000 mitigations=off ${LAB_APPEND:-}")
}
