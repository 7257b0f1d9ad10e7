#!/usr/bin/env bash
# A Debian trixie chroot with the Swift toolchain (Debian's `swiftlang`, Swift 6.0.3), for building and
# testing ios_demo/EdgeMTPKit on Linux. Debian bookworm has no Swift compiler; trixie's needs glibc 2.38.
#
#   swift_chroot.sh [setup]          create the chroot if it is not there yet (idempotent)
#   swift_chroot.sh run CMD [ARG..]  run CMD inside it: the repo at /repo, LiteRT's dir at /litert (read-only),
#                                    $EDGE_MTP_CHROOT_WORK (optional) at /data; a clean environment plus
#                                    EDGE_MTP_SWIFT_* and EDGE_MTP_LITERT_LIB=/litert/libLiteRt.so
#   swift_chroot.sh path             print the chroot directory
#
# Cached under ${EDGE_MTP_CACHE:-$HOME/.cache/edge-mtp}/trixie (outside the repo) and reused when present.
# First setup: debootstrap --variant=minbase (~1 min, ~215 MB) + swiftlang (~530 MB download, ~3.3 GB on
# disk, 1-3 min); a cached run costs nothing. Needs root (or passwordless sudo), CAP_SYS_CHROOT and
# CAP_SYS_ADMIN (mounts, in a private mount namespace that vanishes with the command: nothing stays
# mounted), and network access to a Debian mirror for the first setup.
#
# Environment: EDGE_MTP_CACHE, EDGE_MTP_DEBIAN_MIRROR (default: the first Debian URI in /etc/apt),
# EDGE_MTP_LITERT_DIR (dir holding libLiteRt.so; default: the repo .venv's ai_edge_litert wheel, else that
# of $PYTHON / python3).
# Exit codes: 0 ok; 77 the chroot cannot be made here (no root, no chroot/mount rights, no mirror) —
# one line on stderr says why (tests turn 77 into a skip); any other non-zero: a real failure, or CMD's.
set -euo pipefail

EXIT_UNAVAILABLE=77
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${EDGE_MTP_CACHE:-$HOME/.cache/edge-mtp}"
root="$cache/trixie"
marker="$root/.edge-mtp-ready"
packages=(swiftlang libc6-dev)

unavailable() { echo "swift_chroot: unavailable: $*" >&2; exit "$EXIT_UNAVAILABLE"; }

# Re-run as root through passwordless sudo when we are not root.
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        exec sudo -n --preserve-env=EDGE_MTP_CACHE,EDGE_MTP_DEBIAN_MIRROR,EDGE_MTP_LITERT_DIR,HOME \
            bash "$0" "$@"
    fi
    unavailable "needs root or passwordless sudo (debootstrap, chroot and mount); running as uid $(id -u)"
fi

mirror() {
    if [ -n "${EDGE_MTP_DEBIAN_MIRROR:-}" ]; then echo "$EDGE_MTP_DEBIAN_MIRROR"; return; fi
    local m
    m="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
        sed -nE 's#^deb +(\[[^]]*\] +)?(https?://[^ ]*/debian)/? .*#\2#p; s#^URIs: *(https?://[^ ]*/debian)/?$#\1#p' |
        head -n1)"
    echo "${m:-http://deb.debian.org/debian}"
}

check_rights() {
    unshare --mount --propagation private true 2>/dev/null ||
        unavailable "cannot create a mount namespace (unshare --mount needs CAP_SYS_ADMIN)"
}

setup() {
    if [ -f "$marker" ]; then return 0; fi
    check_rights
    local t0 tmp mir
    t0=$(date +%s)
    mir="$(mirror)"
    mkdir -p "$cache"
    exec 9>"$cache/trixie.lock"
    flock 9
    if [ -f "$marker" ]; then return 0; fi
    if ! command -v debootstrap >/dev/null; then
        command -v apt-get >/dev/null || unavailable "debootstrap is missing and there is no apt-get to install it"
        apt-get update -qq || unavailable "apt-get update failed (no network or mirror?)"
        apt-get install -y -qq --no-install-recommends debootstrap >/dev/null ||
            unavailable "cannot install debootstrap"
    fi
    tmp="$root.partial"
    rm -rf "$tmp"
    echo "swift_chroot: debootstrap trixie from $mir into $tmp" >&2
    if ! debootstrap --variant=minbase trixie "$tmp" "$mir" >"$cache/debootstrap.log" 2>&1; then
        tail -n 5 "$cache/debootstrap.log" >&2
        rm -rf "$tmp"
        unavailable "debootstrap trixie from $mir failed (log: $cache/debootstrap.log)"
    fi
    echo "swift_chroot: apt-get install ${packages[*]} (t=$(( $(date +%s) - t0 )) s)" >&2
    in_root "$tmp" "" /bin/sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends ${packages[*]} >/dev/null && apt-get clean" ||
        { rm -rf "$tmp"; unavailable "apt-get install ${packages[*]} in the trixie chroot failed (mirror $mir reachable?)"; }
    in_root "$tmp" "" swift --version >&2
    mkdir -p "$tmp/repo" "$tmp/litert"
    date -u +%FT%TZ >"$tmp/.edge-mtp-ready"
    mv "$tmp" "$root"
    echo "swift_chroot: ready in $(( $(date +%s) - t0 )) s: $root ($(du -sh "$root" 2>/dev/null | cut -f1))" >&2
}

# in_root ROOT LITERT_DIR [NAME=VALUE...] CMD...: run CMD chrooted into ROOT with a clean environment
# (plus the NAME=VALUE pairs), in a private mount namespace: /proc, /dev (+ own /dev/pts), the repo at /repo, LITERT_DIR
# (if any) read-only at /litert and $EDGE_MTP_CHROOT_WORK (if set) at /data. The mounts vanish with CMD.
in_root() {
    local r="$1" lit="$2"
    shift 2
    cp -L /etc/resolv.conf "$r/etc/resolv.conf" 2>/dev/null || true
    # shellcheck disable=SC2016  # expanded by the inner shell
    unshare --mount --propagation private /bin/bash -euc '
        r="$1" repo="$2" lit="$3" work="$4"; shift 4
        mount -t proc proc "$r/proc"
        mount --bind /dev "$r/dev"
        mount -t devpts -o newinstance,ptmxmode=0666 devpts "$r/dev/pts" 2>/dev/null || true
        mount -t tmpfs tmpfs "$r/dev/shm" 2>/dev/null || true
        if [ -d "$r/repo" ]; then mount --bind "$repo" "$r/repo"; fi
        if [ -n "$lit" ]; then mount --bind "$lit" "$r/litert"; mount -o remount,bind,ro "$r/litert"; fi
        if [ -n "$work" ]; then mkdir -p "$r/data"; mount --bind "$work" "$r/data"; fi
        exec chroot "$r" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM="${TERM:-dumb}" \
            PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"
    ' in_root "$r" "$repo" "$lit" "${EDGE_MTP_CHROOT_WORK:-}" "$@"
}

litert_dir() {
    local d="${EDGE_MTP_LITERT_DIR:-}"
    if [ -z "$d" ]; then
        for f in "$repo"/.venv/lib/python3*/site-packages/ai_edge_litert/libLiteRt.so; do d="$(dirname "$f")"; break; done
        if [ ! -f "$d/libLiteRt.so" ]; then  # else the wheel of the Python on PATH (or $PYTHON)
            d="$("${PYTHON:-python3}" -c 'import ai_edge_litert, os; print(os.path.dirname(ai_edge_litert.__file__))' \
                2>/dev/null || true)"
        fi
    fi
    [ -f "$d/libLiteRt.so" ] || { echo "swift_chroot: no libLiteRt.so in '$d' (set EDGE_MTP_LITERT_DIR)" >&2; exit 2; }
    (cd "$d" && pwd)
}

cmd="${1:-setup}"
case "$cmd" in
    setup) setup ;;
    path) echo "$root" ;;
    run)
        shift
        [ $# -gt 0 ] || { echo "usage: $0 run CMD [ARG...]" >&2; exit 2; }
        setup
        lit="$(litert_dir)"
        # EDGE_MTP_SWIFT_* variables pass through; LiteRT is at /litert inside
        envs=(EDGE_MTP_LITERT_LIB=/litert/libLiteRt.so)
        while IFS='=' read -r name _; do
            envs+=("$name=${!name}")
        done < <(env | grep -E '^EDGE_MTP_SWIFT_[A-Z0-9_]*=' || true)
        in_root "$root" "$lit" "${envs[@]}" "$@"
        ;;
    *) echo "usage: $0 [setup|run CMD...|path]" >&2; exit 2 ;;
esac
