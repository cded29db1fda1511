#!/usr/bin/env bash
# The README's Quick start on a truly fresh Debian machine: build a minimal root
# of this machine's release (debootstrap --variant=minbase), install only what the
# README says a user starts with (python3 make git ca-certificates), clone the
# repository into it and run `make demo DEMO_S=30` there (and with --test,
# `CI=1 make test`). A system package that setup.sh forgets fails here.
#
# Usage (as root): scripts/fresh-debian-check.sh [--test] [--rev REV] [--dir DIR] [--keep]
#   --rev REV  the commit to clone (default HEAD; committed work only)
#   --dir DIR  work folder (default /var/tmp/edge-fresh-debian): the root, the
#              debootstrap tarball cache (rebuilt after 7 days), the log
#   --keep     leave the root in place for a look (it is removed by default)
#
# The root reaches the same package sources as this machine: its apt sources,
# apt's proxy settings, its local CA certificates, its pip configuration (PIP_*
# variables too) and the local package folders that configuration names (bound
# read-only). Everything runs in a private mount and PID namespace: whatever
# happens, the kernel takes every mount down and ends every process left in the
# root when the run ends. The root is removed only after findmnt shows nothing
# mounted under it.
set -euo pipefail

usage() { sed -n '8,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
say() { printf 'fresh-debian: %s\n' "$*"; }
die() { printf 'fresh-debian: %s\n' "$*" >&2; exit 1; }

# --- inside the namespaces: build the root, run the README there ------------------
if [ "${1:-}" = __inner ]; then
    : "${FD_ROOT:?}" "${FD_TARBALL:?}" "${FD_CODENAME:?}" "${FD_MIRROR:?}" "${FD_REPO:?}" "${FD_REV:?}"
    root=$FD_ROOT
    mounts=()
    # shellcheck disable=SC2317  # run by the EXIT trap
    cleanup() {
        # The namespace dies with this process anyway; unmounting here as well keeps
        # the order right (innermost first) and says so if one is stuck.
        local i
        for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
            umount -R "${mounts[i]}" 2>/dev/null || umount -R -l "${mounts[i]}" ||
                echo "fresh-debian: could not unmount ${mounts[i]}" >&2
        done
    }
    trap cleanup EXIT
    bind_ro() { # bind a host folder read-only at the same path in the root
        mkdir -p "$root$1"
        mount --bind "$1" "$root$1"
        mount -o remount,bind,ro "$root$1"
        mounts+=("$root$1")
    }
    t0=$SECONDS

    # A private mount namespace: debootstrap's own /proc mounts vanish with it too.
    debootstrap --variant=minbase --unpack-tarball="$FD_TARBALL" "$FD_CODENAME" "$root" "$FD_MIRROR" \
        >"$FD_LOG.debootstrap" 2>&1 || { tail -20 "$FD_LOG.debootstrap" >&2; die "debootstrap failed"; }
    t_debootstrap=$((SECONDS - t0))
    say "debootstrap: minimal $FD_CODENAME root in ${t_debootstrap} s"

    # This machine's package-client configuration, so the root reaches the same sources.
    cp /etc/resolv.conf /etc/hosts "$root/etc/"
    rm -f "$root/etc/apt/sources.list"
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources \
        /etc/apt/trusted.gpg.d/* /etc/apt/auth.conf /etc/apt/auth.conf.d/*; do
        if [ -f "$f" ]; then cp "$f" "$root$f"; fi
    done
    # The keyrings the sources are signed by (Signed-By), where the root lacks them.
    while IFS= read -r key; do
        if [ -f "$key" ] && [ ! -e "$root$key" ]; then install -D -m 644 "$key" "$root$key"; fi
    done < <(sed -n 's/^[[:space:]]*Signed-By:[[:space:]]*//p; s/.*\[.*signed-by=\([^] ]*\).*/\1/p' \
        /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null)
    # apt settings that decide how the sources are reached (proxies, snapshot dates).
    while IFS= read -r f; do
        cp "$f" "$root$f"
    done < <(grep -l -i -E 'proxy|check-valid-until|check-date' /etc/apt/apt.conf.d/* 2>/dev/null)
    # Local CA certificates (a proxy's): ca-certificates' set-up adds them to the bundle.
    if [ -d /usr/local/share/ca-certificates ]; then
        mkdir -p "$root/usr/local/share/ca-certificates"
        cp -a /usr/local/share/ca-certificates/. "$root/usr/local/share/ca-certificates/"
    fi
    # pip: its configuration files, and the local folders they name (find-links,
    # a file:// index: its parent, whose files the index links to relatively).
    for f in /etc/pip.conf /etc/xdg/pip "$HOME/.config/pip/pip.conf" "$HOME/.pip/pip.conf"; do
        [ -e "$f" ] || continue
        dest=$root${f/#"$HOME"//root}
        mkdir -p "$(dirname "$dest")"
        cp -a "$f" "$dest"
    done
    for p in $FD_PIP_PATHS; do
        p=${p#file://}
        case $p in */simple | */simple/) p=$(dirname "${p%/}") ;; esac
        if [ -d "$p" ] && [ ! -e "$root$p" ]; then
            bind_ro "$p"
        elif [ -f "$p" ] && [ ! -e "$root$p" ] && [[ $p != /etc/ssl/* ]]; then
            install -D "$p" "$root$p" # the CA bundle is the root's own, from ca-certificates
        fi
    done

    # What a chroot needs: its own /proc (this PID namespace), /sys, /dev with ptys
    # (the virtual IO board is a pty) and shared memory, an empty /run.
    mount -t proc proc "$root/proc" && mounts+=("$root/proc")
    mount -t sysfs -o ro sysfs "$root/sys" && mounts+=("$root/sys")
    mount --rbind /dev "$root/dev" && mount --make-rslave "$root/dev" && mounts+=("$root/dev")
    mount -t tmpfs -o mode=755 tmpfs "$root/run" && mounts+=("$root/run")

    # Commands run as a new user's root shell would: a clean environment, plus
    # the PIP_* settings that make pip reach the registry here.
    env_args=(HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
        LANG=C.UTF-8 TERM=dumb)
    while IFS= read -r var; do env_args+=("$var=${!var}"); done < <(compgen -e | grep '^PIP_' || true)
    in_root() { chroot "$root" /usr/bin/env -i "${env_args[@]}" /bin/bash -c "$1"; }

    t0=$SECONDS
    in_root 'apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -q -y \
        --no-install-recommends python3 make git ca-certificates' >"$FD_LOG.packages" 2>&1 ||
        { tail -20 "$FD_LOG.packages" >&2; die "installing python3 make git ca-certificates failed"; }
    t_packages=$((SECONDS - t0))
    say "the user's starting packages (python3 make git ca-certificates) in ${t_packages} s"

    # The repository as a user gets it: a clone, ../shared beside it (CI's layout).
    mkdir -p "$root/build"
    git clone --quiet --no-checkout "$FD_REPO" "$root/build/edge"
    git -C "$root/build/edge" -c advice.detachedHead=false checkout --quiet "$FD_REV"
    if [ -d "$FD_REPO/../shared" ]; then # /. : its contents, where shared is a link
        mkdir "$root/build/shared"
        cp -a "$FD_REPO/../shared/." "$root/build/shared/"
    fi

    # The README's first command. The set-up's end is the Makefile's stamp.
    t0=$(date +%s)
    say "make demo DEMO_S=30 (the set-up runs first)"
    set +e
    in_root 'cd /build/edge && make demo DEMO_S=30' 2>&1 | tee "$FD_LOG.demo"
    rc=${PIPESTATUS[0]}
    set -e
    t_end=$(date +%s)
    stamp=$root/build/edge/.venv/.installed
    [ "$rc" = 0 ] || die "make demo failed (exit $rc): the set-up or the demo broke on a fresh Debian"
    t_setup=$(($(stat -c %Y "$stamp") - t0))
    say "set-up (scripts/setup.sh) ${t_setup} s, demo $((t_end - t0 - t_setup)) s"
    grep -q -E 'modes startup_flash -> startup_all_red -> run\b' "$FD_LOG.demo" ||
        die "the demo did not go start-up flash -> all red -> run (see $FD_LOG.demo)"
    grep -q -E 'conflicting greens 0$' "$FD_LOG.demo" || die "the demo drove conflicting greens"
    say "demo ran: start-up flash -> all red -> run, no conflicting greens, exit 0"

    if [ "${FD_TEST:-0}" = 1 ]; then
        t0=$SECONDS
        say "CI=1 make test (log $FD_LOG.test)"
        set +e
        in_root 'cd /build/edge && CI=1 make test' >"$FD_LOG.test" 2>&1
        rc=$?
        set -e
        tail -15 "$FD_LOG.test"
        [ "$rc" = 0 ] || die "make test failed (exit $rc; log $FD_LOG.test)"
        say "make test passed in $((SECONDS - t0)) s"
        # install-test-tools.sh promises to leave the system's Mosquitto service alone.
        if compgen -G "$root/etc/systemd/system/*.wants/mosquitto.service" >/dev/null ||
            compgen -G "$root/etc/rc[2-5].d/S*mosquitto" >/dev/null; then
            die "the test tools left mosquitto.service enabled at boot"
        fi
        say "mosquitto.service installed but not enabled at boot"
    fi
    exit 0
fi

# --- outside: prerequisites, the namespaces, the clean-up check --------------------
test_too=0 rev=HEAD dir=/var/tmp/edge-fresh-debian keep=0
while [ $# -gt 0 ]; do
    case $1 in
        --test) test_too=1 ;;
        --rev) rev=${2:?--rev needs a commit}; shift ;;
        --dir) dir=${2:?--dir needs a folder}; shift ;;
        --keep) keep=1 ;;
        *) usage ;;
    esac
    shift
done
[ "$(id -u)" = 0 ] || die "run as root (debootstrap, chroot and mounts need it)"
repo=$(cd "$(dirname "$0")/.." && pwd)
sha=$(git -C "$repo" rev-parse --verify "$rev^{commit}") || die "no commit $rev in $repo"
[ -z "$(git -C "$repo" status --porcelain --untracked-files=no)" ] ||
    say "note: uncommitted changes in $repo are not part of the check (it clones $sha)"

codename=$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release)
[ -n "$codename" ] || die "no VERSION_CODENAME in /etc/os-release"
arch=$(dpkg --print-architecture)
# The host's Debian mirror for this release (deb822 .sources first, then one-line lists).
mirror=$(awk -v c="$codename" 'BEGIN { RS = ""; FS = "\n" }
    { uri = ""; ok = 0; on = 1
      for (i = 1; i <= NF; i++) {
        if ($i ~ /^URIs:/) { split($i, u, /[ \t]+/); uri = u[2] }
        if ($i ~ /^Suites:/) { n = split($i, s, /[ \t]+/); for (j = 2; j <= n; j++) if (s[j] == c) ok = 1 }
        if ($i ~ /^Enabled:[ \t]*no/) on = 0 }
      if (ok && on && uri != "") { print uri; exit } }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
[ -n "$mirror" ] || mirror=$(awk -v c="$codename" '$1 == "deb" { i = 2
    if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
    if ($(i + 1) == c) { print $i; exit } }' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}

command -v debootstrap >/dev/null || {
    say "installing debootstrap"
    apt-get -o DPkg::Lock::Timeout=600 update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -q -y \
        --no-install-recommends debootstrap >/dev/null
}

root=$dir/root
mounted_under() { findmnt -rn -o TARGET | awk -v r="$1" '$0 == r || index($0, r "/") == 1'; }
remove_root() {
    [ -e "$root" ] || return 0
    local left
    left=$(mounted_under "$root")
    if [ -n "$left" ]; then
        printf 'fresh-debian: still mounted under %s, not removing it:\n%s\n' "$root" "$left" >&2
        return 1
    fi
    rm -rf --one-file-system "$root"
}
mkdir -p "$dir"
# One run at a time per work folder (the namespaces hold the lock until they end).
exec 9>"$dir/lock"
flock -n 9 || die "another run is using $dir"
remove_root || die "unmount those first"

# The debootstrap tarball (the minbase .debs) is cached for a week.
tarball=$dir/$codename-$arch-minbase.tgz
t_start=$SECONDS
if [ -z "$(find "$tarball" -mtime -7 2>/dev/null)" ]; then
    say "downloading the minbase packages from $mirror"
    rm -rf "$dir/tarball-work"
    unshare --mount --propagation private debootstrap --variant=minbase \
        --make-tarball="$tarball.new" "$codename" "$dir/tarball-work" "$mirror" >"$dir/log.tarball" 2>&1 ||
        { tail -20 "$dir/log.tarball" >&2; die "debootstrap --make-tarball failed"; }
    mv "$tarball.new" "$tarball"
    rm -rf "$dir/tarball-work"
fi

# The pip configuration's local paths (find-links, file:// indexes, constraints).
pip_paths=$(
    {
        python3 -m pip config list 2>/dev/null | sed 's/^[^=]*=//'
        compgen -e | grep '^PIP_' | while IFS= read -r v; do printf '%s\n' "${!v}"; done
    } | tr -d "'\"" | tr ' ' '\n' | grep -E '^(file://)?/' | sort -u | tr '\n' ' '
) || true

say "release $codename ($arch), mirror $mirror, commit ${sha:0:12}, root $root"
set +e
FD_ROOT=$root FD_TARBALL=$tarball FD_CODENAME=$codename FD_MIRROR=$mirror FD_REPO=$repo \
    FD_REV=$sha FD_TEST=$test_too FD_LOG=$dir/log FD_PIP_PATHS=$pip_paths \
    unshare --mount --propagation private --pid --fork --kill-child -- bash "$0" __inner
rc=$?
set -e
# Nothing may be left mounted under the root, whatever happened inside.
if [ -n "$(mounted_under "$root")" ]; then
    mounted_under "$root" >&2
    die "mounts left under $root after the run"
fi
if [ "$keep" = 1 ]; then
    say "kept $root (nothing mounted under it)"
else
    remove_root
fi
[ "$rc" = 0 ] || die "FAILED after $((SECONDS - t_start)) s (logs: $dir/log.*)"
say "PASSED in $((SECONDS - t_start)) s"
