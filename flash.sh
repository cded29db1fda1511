#!/usr/bin/env bash
# flash.sh: turn a Raspberry Pi and its IO board into a working intersection controller.
# Run it again at any time: it changes only what differs and says so.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

usage() {
    cat <<'EOF'
Usage:
  ./flash.sh --device-id ID --site SITE.toml (--target ROOTFS_DIR | --ssh USER@HOST) [options]

Makes a controller out of a Raspberry Pi and its IO board, in one go:
  1. checks every input first; on any problem it prints them all and changes NOTHING;
  2. installs the runtime (its own Python environment under /opt/edge), the site
     config, the certificates and keys, a technician login and the `edge` service;
  3. copies the firmware to the IO board over USB and reads it back to compare;
  4. ends with a self-test: board, cameras, model, broker, control ticks (OK/FAIL).
Safe to re-run: a second run with the same inputs changes nothing and says so; with a
new site file only the site file (and what depends on it) changes.

Where the Pi is (one of):
  --target DIR          the Pi's SD card, root partition mounted at DIR (e.g. /media/$USER/rootfs)
  --ssh USER@HOST       a running Pi reached over SSH (USER needs sudo); updates it in
                        place and rolls back by itself if the new version is not healthy

Required:
  --device-id ID        this controller's name: letters, digits, '-' and '_' (e.g. hz-0412)
  --site FILE           the intersection's site file (checked like `edge check FILE`)
  --release-key FILE    the Ed25519 key that signs the release built here; the device gets
                        its public half and refuses releases not signed with it

Optional:
  --board PORT          the IO board's USB port on THIS computer (e.g. /dev/ttyACM0);
                        without it the board is not flashed
  --broker URL          central's MQTT broker, mqtts://HOST[:PORT]; without it the device
                        runs on its own (no central link)
  --central-key FILE    central's Ed25519 public key (plans are checked with it)
  --central-standby-key FILE
                        central's standby public key, and
  --root-key FILE       the offline root public key whose signed rollover moves the
                        device from --central-key to the standby key (no re-flash)
  --ca-crl FILE         the fleet CA's revocation list (a revoked broker is refused)
  --ca-cert FILE        the fleet CA certificate (the broker's certificate chains to it)
  --enrol-token FILE    central's single-use enrolment token for this device
                        (`edge central enrol-token`): the device makes its own key and
                        central signs its first certificate; the fleet CA key stays central
  --enrol-port PORT     the broker's bootstrap listener for that (TLS, no client
                        certificate; default 8884)
  --offline-lab-ca-key FILE
                        AN OFFLINE LAB ONLY: the fleet CA's private key on this computer
                        makes the device's key and certificate here (not for the field)
  --maintenance-address IP
                        with --offline-lab-ca-key: the cabinet maintenance port's address;
                        the device certificate then also serves the page (serverAuth, IP)
  --client-cert FILE --client-key FILE
                        or use a client certificate made elsewhere (CN = device id)
  --technician USER     a login for the device's local page; the password is asked for
  --technician-password-file FILE
                        ...or read from the first line of FILE (there is no default password)
  --snmp-user NAME      an SNMPv3 user for the NTCIP agent (device.toml's [snmp]: port 1161,
                        sets off); its auth and priv passphrases are asked for (or read as
                        two lines of stdin); left empty they are made and printed once
  --device-port PATH    the IO board's serial port on the Pi (default /dev/serial0)
  --selftest-port PATH  the board's protocol port for the self-test when flashing an SD card
                        from this computer (default: skip the board part of the self-test)
  --wheelhouse DIR      Python wheels for the Pi (default wheelhouse/aarch64, made with
                        scripts/wheelhouse.sh on a computer with internet)
  --arch ARCH           the Pi's architecture: aarch64 (default) or x86_64 (test images)
  --dry-run             print every step, change nothing
  -h, --help            this text

Examples:
  ./flash.sh --device-id hz-0412 --site sites/hz-0412.toml --target /media/tech/rootfs \
             --release-key release.key --board /dev/ttyACM0 --technician anna
  ./flash.sh --device-id hz-0412 --site sites/hz-0412.toml --ssh pi@10.0.4.12 \
             --release-key release.key --broker mqtts://broker.city:8883 --central-key central.pub \
             --ca-cert fleet-ca.crt --enrol-token hz-0412.token

Exit codes: 0 done (self-test OK), 1 a step or the self-test failed, 2 bad input (nothing changed).
EOF
}

say() { printf '%s\n' "$*"; }
die() { printf 'flash.sh: %s\n' "$*" >&2; exit "${2:-1}"; }
bad_input() { printf 'flash.sh: %s\n' "$*" >&2; say "flash.sh: nothing was changed." >&2; exit 2; }

# -- options ---------------------------------------------------------------------------------

DEVICE_ID="" SITE="" TARGET="" SSH="" BOARD="" BROKER="" CENTRAL_KEY="" RELEASE_KEY=""
STANDBY_KEY="" ROOT_KEY="" CA_CRL=""
CA_CERT="" CA_KEY="" OLD_CA_KEY="" ENROL_TOKEN="" ENROL_PORT="" MAINT_ADDR="" CLIENT_CERT="" CLIENT_KEY=""
TECH="" TECH_FILE="" SNMP_USER=""
DEVICE_PORT=/dev/serial0 SELFTEST_PORT="" WHEELHOUSE="" ARCH=aarch64 DRY=0
APPLY_STAGE="" LIVE=0

need_value() { if [ $# -lt 2 ] || [ -z "$2" ]; then bad_input "$1 needs a value (see --help)"; fi; }

while [ $# -gt 0 ]; do
    case "$1" in
        -h | --help) usage; exit 0 ;;
        --dry-run) DRY=1; shift; continue ;;
        --live) LIVE=1; shift; continue ;;
    esac
    need_value "$@"
    case "$1" in
        --device-id) DEVICE_ID=$2 ;;
        --site) SITE=$2 ;;
        --target) TARGET=$2 ;;
        --ssh) SSH=$2 ;;
        --board) BOARD=$2 ;;
        --broker) BROKER=$2 ;;
        --central-key) CENTRAL_KEY=$2 ;;
        --release-key) RELEASE_KEY=$2 ;;
        --central-standby-key) STANDBY_KEY=$2 ;;
        --root-key) ROOT_KEY=$2 ;;
        --ca-crl) CA_CRL=$2 ;;
        --ca-cert) CA_CERT=$2 ;;
        --offline-lab-ca-key) CA_KEY=$2 ;;
        --ca-key) OLD_CA_KEY=$2 ;; # refused by name (devtools/provision.py says why)
        --enrol-token) ENROL_TOKEN=$2 ;;
        --enrol-port) ENROL_PORT=$2 ;;
        --maintenance-address) MAINT_ADDR=$2 ;;
        --client-cert) CLIENT_CERT=$2 ;;
        --client-key) CLIENT_KEY=$2 ;;
        --technician) TECH=$2 ;;
        --technician-password-file) TECH_FILE=$2 ;;
        --snmp-user) SNMP_USER=$2 ;;
        --device-port) DEVICE_PORT=$2 ;;
        --selftest-port) SELFTEST_PORT=$2 ;;
        --wheelhouse) WHEELHOUSE=$2 ;;
        --arch) ARCH=$2 ;;
        --apply) APPLY_STAGE=$2 ;; # internal: run on the Pi by the --ssh mode
        *) bad_input "unknown option $1 (see --help)" ;;
    esac
    shift 2
done

# -- applying a staged tree to a root (SD card, or / on the Pi with --live) -------------------

CHANGES=0
RESTARTED=0

act() { # act DESCRIPTION COMMAND...: run it, or print it with --dry-run
    local what=$1
    shift
    CHANGES=$((CHANGES + 1))
    if [ "$DRY" = 1 ]; then
        say "  would: $what"
    else
        say "  $what"
        "$@"
    fi
}

gid_of() { awk -F: -v g="$1" '$1 == g { print $3 }' "$ROOT/etc/group"; }
uid_of() { awk -F: -v u="$1" '$1 == u { print $3 }' "$ROOT/etc/passwd"; }
free_id() { # free_id [TAKEN]: the first id in 100..999 free in both files (and not TAKEN)
    local id
    for id in $(seq 100 999); do
        [ "$id" = "${1:-}" ] && continue
        if ! cut -d: -f3 "$ROOT/etc/passwd" "$ROOT/etc/group" | grep -qx "$id"; then
            echo "$id"
            return
        fi
    done
    die "no free system user id in $ROOT/etc/passwd"
}
add_member() { # add_member GROUP USER (in the image's etc/group)
    awk -F: -v OFS=: -v g="$1" -v u="$2" \
        '$1 == g { n = split($4, m, ","); found = 0; for (i = 1; i <= n; i++) if (m[i] == u) found = 1;
                   if (!found) $4 = ($4 == "" ? u : $4 "," u) } { print }' \
        "$ROOT/etc/group" >"$ROOT/etc/group.edge-tmp"
    cat "$ROOT/etc/group.edge-tmp" >"$ROOT/etc/group" # keep the file's inode, owner, mode
    rm -f "$ROOT/etc/group.edge-tmp"
}
in_group() { awk -F: -v g="$1" -v u="$2" '$1 == g { n = split($4, m, ","); for (i = 1; i <= n; i++) if (m[i] == u) f = 1 } END { exit !f }' "$ROOT/etc/group"; }

ensure_user() {
    say "user edge (groups dialout, video):"
    local before=$CHANGES
    if [ "$LIVE" = 1 ]; then
        getent group edge >/dev/null || act "add system group edge" groupadd --system edge
        id edge >/dev/null 2>&1 || act "add system user edge" useradd --system --gid edge \
            --groups dialout,video --home-dir /var/lib/edge --shell /usr/sbin/nologin edge
        if ! { id -nG edge | grep -qw dialout && id -nG edge | grep -qw video; } 2>/dev/null; then
            act "add edge to dialout, video" usermod -aG dialout,video edge
        fi
    else
        local gid=""
        if [ -z "$(gid_of edge)" ]; then
            gid=$(free_id)
            act "add group edge (gid $gid) to $ROOT/etc/group" \
                sh -c "printf 'edge:x:%s:\n' '$gid' >>'$ROOT/etc/group'"
        fi
        if [ -z "$(uid_of edge)" ]; then
            local uid
            [ -n "$(gid_of edge)" ] && gid=$(gid_of edge)
            uid=$(free_id "$gid") # with --dry-run the group is not there yet: skip its id
            act "add user edge (uid $uid) to $ROOT/etc/passwd" \
                sh -c "printf 'edge:x:%s:%s:Edge intersection controller:/var/lib/edge:/usr/sbin/nologin\n' '$uid' '$gid' >>'$ROOT/etc/passwd'"
            if [ -f "$ROOT/etc/shadow" ]; then
                act "lock its password in $ROOT/etc/shadow" \
                    sh -c "printf 'edge:!:%s::::::\n' \$(( \$(date +%s) / 86400 )) >>'$ROOT/etc/shadow'"
            fi
        fi
        for g in dialout video; do
            in_group "$g" edge || act "add edge to group $g" add_member "$g" edge
        done
    fi
    [ "$CHANGES" != "$before" ] || say "  unchanged"
}

owner_ids() { # owner_ids USER:GROUP -> numeric ids in the image (names on a live Pi)
    local u=${1%%:*} g=${1##*:}
    if [ "$LIVE" = 1 ]; then
        echo "$u:$g"
        return
    fi
    local uid gid
    if [ "$u" = root ]; then uid=0; else uid=$(uid_of "$u"); fi
    if [ "$g" = root ]; then gid=0; else gid=$(gid_of "$g"); fi
    echo "${uid:-0}:${gid:-0}"
}

put() { # put STAGED_REL MODE USER:GROUP: install ROOT/REL from the stage if it differs
    local rel=$1 mode=$2 owner=$3 src="$APPLY_STAGE/$1" dst="$ROOT/$1" ids
    ids=$(owner_ids "$owner")
    if [ -f "$dst" ] && cmp -s "$src" "$dst"; then
        local cur
        cur=$(stat -c '%a %u:%g' "$dst")
        [ "$LIVE" = 1 ] && cur=$(stat -c '%a %U:%G' "$dst")
        if [ "$cur" = "$mode $ids" ]; then
            say "  unchanged  /$rel"
            return
        fi
        act "fix mode/owner /$rel ($cur -> $mode $owner)" sh -c "chmod $mode '$dst' && chown $ids '$dst'"
        return
    fi
    local verb=new
    [ -e "$dst" ] && verb=updated
    act "$verb  /$rel ($mode $owner)" install_file "$src" "$dst" "$mode" "$ids"
}

install_file() { # atomically: a temp file next to it, then rename
    local src=$1 dst=$2 mode=$3 ids=$4 tmp
    mkdir -p "$(dirname "$dst")"
    tmp="$(dirname "$dst")/.$(basename "$dst").edge-tmp"
    cp "$src" "$tmp"
    chmod "$mode" "$tmp"
    chown "$ids" "$tmp"
    sync "$tmp" 2>/dev/null || true
    mv -f "$tmp" "$dst"
}

ensure_dir() { # ensure_dir REL MODE USER:GROUP
    local dst="$ROOT/$1" ids
    ids=$(owner_ids "$3")
    if [ -d "$dst" ]; then
        local cur
        cur=$(stat -c '%a %u:%g' "$dst")
        [ "$LIVE" = 1 ] && cur=$(stat -c '%a %U:%G' "$dst")
        [ "$cur" = "$2 $ids" ] && return
        act "fix mode/owner /$1/" sh -c "chmod $2 '$dst' && chown $ids '$dst'"
    else
        act "make /$1/ ($2 $3)" sh -c "mkdir -p '$dst' && chmod $2 '$dst' && chown $ids '$dst'"
    fi
}

ensure_link() { # ensure_link REL TARGET: a symlink (systemctl enable, in the image)
    local dst="$ROOT/$1"
    [ -L "$dst" ] && [ "$(readlink "$dst")" = "$2" ] && { say "  unchanged  /$1"; return; }
    act "enable: /$1 -> $2" sh -c "mkdir -p '$(dirname "$dst")' && ln -sfn '$2' '$dst'"
}

install_release() { # the prepared release dir under opt/edge/releases, if not there yet
    local rel_dir="$ROOT/opt/edge/releases/$RELEASE"
    say "runtime release $RELEASE:"
    if [ -x "$rel_dir/venv/bin/python" ] && [ -f "$rel_dir/.complete" ]; then
        say "  unchanged  /opt/edge/releases/$RELEASE"
        return
    fi
    act "install /opt/edge/releases/$RELEASE (its own venv: the wheel + pinned dependencies)" \
        sh -c "mkdir -p '$ROOT/opt/edge/releases' && rm -rf '$rel_dir.partial' &&
               cp -a '$APPLY_STAGE/release' '$rel_dir.partial' &&
               chown -R 0:0 '$rel_dir.partial' && touch '$rel_dir.partial/.complete' &&
               rm -rf '$rel_dir' && mv '$rel_dir.partial' '$rel_dir'"
}

switch_release() {
    local cur=""
    [ -L "$ROOT/opt/edge/current" ] && cur=$(basename "$(readlink "$ROOT/opt/edge/current")")
    if [ "$cur" = "$RELEASE" ]; then
        say "  unchanged  /opt/edge/current -> releases/$RELEASE"
        return
    fi
    local py="$APPLY_PY"
    if [ "$LIVE" = 1 ]; then
        RESTARTED=1
        if ! act "switch to $RELEASE, restart, roll back unless healthy within 60 s" \
            "$py" -m edge.device.update --root / apply "$RELEASE"; then
            say "  the new release did not report healthy within 60 s: the previous one runs again"
            say "  (see: journalctl -u edge -n 100; edge status)"
            exit 1
        fi
    else
        act "switch /opt/edge/current -> releases/$RELEASE (checked at next boot by edge-update.service)" \
            "$py" -m edge.device.update --root "$ROOT" switch "$RELEASE"
    fi
}

apply_stage() {
    if [ "$DRY" = 1 ]; then say "applying to $ROOT (dry run)"; else say "applying to $ROOT"; fi
    RELEASE=$(cat "$APPLY_STAGE/release-id")
    ensure_user
    say "files:"
    local edge_owned=root:edge
    ensure_dir etc/edge 755 root:root
    ensure_dir etc/edge/tls 750 "$edge_owned"
    put etc/edge/site.toml 644 root:root
    put etc/edge/device.toml 644 root:root
    [ -f "$APPLY_STAGE/etc/edge/central.pub" ] && put etc/edge/central.pub 644 root:root
    for f in release.pub central-standby.pub root.pub; do
        [ -f "$APPLY_STAGE/etc/edge/$f" ] && put "etc/edge/$f" 644 root:root
    done
    for f in ca.crt ca.crl client.crt; do
        [ -f "$APPLY_STAGE/etc/edge/tls/$f" ] && put "etc/edge/tls/$f" 644 root:root
    done
    [ -f "$APPLY_STAGE/etc/edge/tls/client.key" ] && put etc/edge/tls/client.key 640 "$edge_owned"
    [ -f "$APPLY_STAGE/etc/edge/tls/enrol.token" ] && put etc/edge/tls/enrol.token 640 "$edge_owned"
    [ -f "$APPLY_STAGE/etc/edge/technicians.json" ] && put etc/edge/technicians.json 640 "$edge_owned"
    [ -f "$APPLY_STAGE/etc/edge/snmp-users.json" ] && put etc/edge/snmp-users.json 640 "$edge_owned"
    ensure_dir var/lib/edge 750 edge:edge
    ensure_dir var/lib/edge-update 755 root:root # the updater's: never a path edge controls
    say "service:"
    put etc/systemd/system/edge.service 644 root:root
    put etc/systemd/system/edge-update.service 644 root:root
    if [ "$LIVE" = 1 ]; then
        [ "$CHANGES" = 0 ] || act "reload systemd" systemctl daemon-reload
        systemctl is-enabled --quiet edge.service edge-update.service ||
            act "enable edge.service, edge-update.service" systemctl enable edge.service edge-update.service
    else
        ensure_link etc/systemd/system/multi-user.target.wants/edge.service /etc/systemd/system/edge.service
        ensure_link etc/systemd/system/multi-user.target.wants/edge-update.service /etc/systemd/system/edge-update.service
    fi
    install_release
    # The runtime runs the new release: the previous one's python runs the switch (see update.py).
    APPLY_PY="$ROOT/opt/edge/releases/$RELEASE/venv/bin/python"
    [ "$LIVE" = 1 ] && [ -x /opt/edge/current/venv/bin/python ] && APPLY_PY=/opt/edge/current/venv/bin/python
    [ "$LIVE" = 1 ] || APPLY_PY=$PY
    switch_release
    if [ "$LIVE" = 1 ] && [ "$CHANGES" != 0 ] && [ "$DRY" = 0 ] && [ "$RESTARTED" = 0 ]; then
        act "restart edge.service (new configuration)" systemctl restart edge.service
    fi
    if [ "$CHANGES" = 0 ]; then
        say "device: nothing changed (already up to date)"
    elif [ "$DRY" = 1 ]; then
        say "device: $CHANGES change(s) would be made (dry run: nothing was changed)"
    else
        say "device: $CHANGES change(s) made"
    fi
}

if [ -n "$APPLY_STAGE" ]; then # on the Pi, run by --ssh: apply to / itself
    [ "$(id -u)" = 0 ] || die "--apply must run as root"
    ROOT=/ LIVE=1 PY=/usr/bin/python3
    APPLY_PY=$PY
    apply_stage
    exit 0
fi

# -- the laptop side ----------------------------------------------------------------------------

[ -n "$DEVICE_ID" ] || bad_input "--device-id is required (see --help)"
[ -n "$SITE" ] || bad_input "--site is required (see --help)"
case "$ARCH" in aarch64 | x86_64) ;; *) bad_input "--arch $ARCH: use aarch64 or x86_64" ;; esac
[ -n "$WHEELHOUSE" ] || WHEELHOUSE="$REPO/wheelhouse/$ARCH"

PY=${EDGE_PYTHON:-$REPO/.venv/bin/python}
[ -x "$PY" ] || die "no Python environment at $PY: run 'make setup' once (it installs mpremote too)"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"

PASSWORD=""
if [ -n "$TECH" ]; then
    if [ -n "$TECH_FILE" ]; then
        [ -r "$TECH_FILE" ] || bad_input "--technician-password-file $TECH_FILE: cannot read it"
        IFS= read -r PASSWORD <"$TECH_FILE" || true
    elif [ -t 0 ]; then
        IFS= read -rsp "password for technician $TECH: " PASSWORD
        echo
        IFS= read -rsp "again: " again
        echo
        [ "$PASSWORD" = "$again" ] || bad_input "the passwords differ"
    else
        bad_input "--technician $TECH: give --technician-password-file, or run in a terminal to be asked"
    fi
fi

SNMP_AUTH="" SNMP_PRIV=""
if [ -n "$SNMP_USER" ]; then # empty: made by provision and printed once
    if [ -t 0 ]; then
        IFS= read -rsp "SNMP auth passphrase for $SNMP_USER (empty: make one): " SNMP_AUTH
        echo
        IFS= read -rsp "SNMP priv passphrase for $SNMP_USER (empty: make one): " SNMP_PRIV
        echo
    else
        IFS= read -r SNMP_AUTH || true
        IFS= read -r SNMP_PRIV || true
    fi
fi

secrets_in() { # provision's stdin: the technician's password, then the SNMP passphrases
    if [ -n "$TECH" ]; then printf '%s\n' "$PASSWORD"; fi
    if [ -n "$SNMP_USER" ]; then printf '%s\n%s\n' "$SNMP_AUTH" "$SNMP_PRIV"; fi
    return 0
}

provision() {
    local cmd=$1
    shift
    secrets_in | "$PY" -m devtools.provision "$cmd" \
        --device-id "$DEVICE_ID" --site "$SITE" --device-port "$DEVICE_PORT" \
        ${TARGET:+--target "$TARGET"} ${SSH:+--ssh "$SSH"} ${BOARD:+--board "$BOARD"} \
        ${BROKER:+--broker "$BROKER"} ${CENTRAL_KEY:+--central-key "$CENTRAL_KEY"} \
        ${RELEASE_KEY:+--release-key "$RELEASE_KEY"} ${CA_CRL:+--ca-crl "$CA_CRL"} \
        ${STANDBY_KEY:+--central-standby-key "$STANDBY_KEY"} ${ROOT_KEY:+--root-key "$ROOT_KEY"} \
        ${CA_CERT:+--ca-cert "$CA_CERT"} ${CA_KEY:+--offline-lab-ca-key "$CA_KEY"} \
        ${OLD_CA_KEY:+--ca-key "$OLD_CA_KEY"} ${ENROL_TOKEN:+--enrol-token "$ENROL_TOKEN"} \
        ${ENROL_PORT:+--enrol-port "$ENROL_PORT"} \
        ${MAINT_ADDR:+--maintenance-address "$MAINT_ADDR"} \
        ${CLIENT_CERT:+--client-cert "$CLIENT_CERT"} ${CLIENT_KEY:+--client-key "$CLIENT_KEY"} \
        ${TECH:+--technician "$TECH"} ${TECH_FILE:+--technician-password-file "$TECH_FILE"} \
        ${SNMP_USER:+--snmp-user "$SNMP_USER"} "$@"
}

say "== 1. checking the inputs"
HASHES="$REPO/deploy/hashes/$ARCH.txt" # the pinned wheels' sha256 (pip --require-hashes)
provision check --wheelhouse "$WHEELHOUSE" --hashes "$HASHES" || { say "flash.sh: nothing was changed." >&2; exit 2; }
if [ -n "$SSH" ] && [ "$DRY" = 0 ]; then
    ssh -o BatchMode=yes -o ConnectTimeout=10 "$SSH" 'sudo -n true' ||
        bad_input "--ssh $SSH: cannot log in with a key and sudo without a password"
fi
say "  OK: device id, site, keys and certificates, target, wheels"

STAGE=$(mktemp -d "${TMPDIR:-/tmp}/edge-flash.XXXXXX") # what goes to the device
BUILD=$(mktemp -d "${TMPDIR:-/tmp}/edge-build.XXXXXX") # the device's sources and wheel
trap 'rm -rf "$STAGE" "$BUILD"' EXIT

say "== 2. preparing the files (in $STAGE; nothing on the device yet)"
if [ -n "$TARGET" ]; then
    provision stage --out "$STAGE" --existing "$TARGET"
    PI_PY=$("$PY" -c 'import sys; from devtools.provision import target_python; from pathlib import Path; print(target_python(Path(sys.argv[1])))' "$TARGET")
else
    mkdir -p "$STAGE/existing/etc/edge/tls"
    for f in technicians.json snmp-users.json tls/client.crt tls/client.key; do
        # shellcheck disable=SC2029 # $f is expanded here on purpose
        ssh "$SSH" "sudo cat /etc/edge/$f 2>/dev/null" >"$STAGE/existing/etc/edge/$f" || rm -f "$STAGE/existing/etc/edge/$f"
    done
    provision stage --out "$STAGE" --existing "$STAGE/existing"
    rm -rf "$STAGE/existing"
    PI_PY=$(ssh "$SSH" 'python3 -c "import sys; print(f\"{sys.version_info[0]}.{sys.version_info[1]}\")"')
fi

# The device's package: edge/, hw/ and models/ less the models' training code
# (deploy/device-exclude.txt); never sim/ or devtools/, no developer entry points.
EDGE_PYTHON=$PY "$REPO/scripts/device-wheel.sh" "$BUILD/src"
# The release id names that code and its dependencies: same sources, same release.
VERSION=$("$PY" -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1],"rb"))["project"]["version"])' "$BUILD/src/pyproject.toml")
RELEASE=$(
    cd "$BUILD/src"
    sum=$(find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum |
        { cat; sha256sum <"$REPO/deploy/requirements-device.txt"; echo "$ARCH $PI_PY"; } |
        sha256sum | cut -c1-10)
    echo "$VERSION-$sum"
)
echo "$RELEASE" >"$STAGE/release-id"

release_present() {
    if [ -n "$TARGET" ]; then
        [ -f "$TARGET/opt/edge/releases/$RELEASE/.complete" ]
    else
        # shellcheck disable=SC2029
        ssh "$SSH" "test -f /opt/edge/releases/$RELEASE/.complete"
    fi
}

build_release() { # STAGE/release/venv: a virtual environment for the Pi, made on this computer
    local venv="$STAGE/release/venv" site plat=()
    site="$venv/lib/python$PI_PY/site-packages"
    say "  building the device's wheel of this checkout (no simulator, benchmarks or training code)"
    EDGE_PYTHON=$PY "$REPO/scripts/device-wheel.sh" "$BUILD/src" "$BUILD/wheels" ||
        die "building the wheel failed"
    # pip installs wheels of another architecture only with --target and explicit tags.
    for minor in $(seq 17 39); do plat+=(--platform "manylinux_2_${minor}_$ARCH"); done
    plat+=(--platform "manylinux2014_$ARCH" --platform "linux_$ARCH")
    say "  installing it with the pinned dependencies from $WHEELHOUSE (for $ARCH, Python $PI_PY)"
    # Every wheel by its sha256: the pinned ones from deploy/hashes, this build's own wheel
    # by the hash it was just built with (the signed manifest records them all).
    local wheel reqs="$BUILD/requirements.txt"
    wheel=$(echo "$BUILD"/wheels/*.whl)
    { cat "$HASHES"; printf 'edge-intersection @ file://%s --hash=sha256:%s\n' "$wheel" "$(sha256sum <"$wheel" | cut -c1-64)"; } >"$reqs"
    "$PY" -m pip install --quiet --no-index --find-links "$WHEELHOUSE" --require-hashes --no-deps \
        --target "$site" --only-binary=:all: --python-version "$PI_PY" --implementation cp \
        "${plat[@]}" -r "$reqs"
    rm -rf "${site:?}/bin" # console scripts made for this computer's Python
    mkdir -p "$venv/bin"
    ln -s /usr/bin/python3 "$venv/bin/python"
    ln -s python "$venv/bin/python3"
    printf 'home = /usr/bin\ninclude-system-site-packages = false\nversion = %s\n' "$PI_PY" >"$venv/pyvenv.cfg"
    for tool in edge edge-update; do
        mod=edge.cli
        [ "$tool" = edge-update ] && mod=edge.device.update
        printf '#!/opt/edge/releases/%s/venv/bin/python\nimport sys\nfrom %s import main\nsys.exit(main())\n' \
            "$RELEASE" "$mod" >"$venv/bin/$tool"
        chmod 755 "$venv/bin/$tool"
    done
    cp "$reqs" "$STAGE/release/requirements.txt"
    say "  signing it with the release key (a manifest of every file's sha256)"
    "$PY" -m edge.device.release sign --key "$RELEASE_KEY" --release "$RELEASE" \
        --version "$VERSION" "$STAGE/release" "$wheel" >/dev/null ||
        die "signing the release failed"
}

if release_present; then
    say "  release $RELEASE is already on the device"
elif [ "$DRY" = 1 ]; then
    say "  would build release $RELEASE (wheel + pinned dependencies for $ARCH, Python $PI_PY)"
    mkdir -p "$STAGE/release"
else
    build_release
fi

say "== 3. installing on the device"
if [ -n "$TARGET" ]; then
    ROOT=$(cd "$TARGET" && pwd)
    APPLY_STAGE=$STAGE
    APPLY_PY=$PY
    apply_stage
else
    if [ "$DRY" = 1 ]; then
        say "  would copy the staged files to a private directory on $SSH and run flash.sh --apply there"
    else
        # A fresh directory only this login can enter (mktemp -d: 700; the stage holds the
        # client key, itself 600), removed whether the install succeeds or not. The files
        # inside keep their modes: the release must stay readable by the service user.
        REMOTE=$(ssh "$SSH" 'mktemp -d /var/tmp/edge-flash.XXXXXX')
        # shellcheck disable=SC2029
        tar -C "$STAGE" -czf - . | ssh "$SSH" "tar -C $REMOTE -xzf -"
        scp -q "$REPO/flash.sh" "$SSH:$REMOTE/flash.sh"
        # shellcheck disable=SC2029
        ssh "$SSH" "sudo bash $REMOTE/flash.sh --apply $REMOTE; rc=\$?; sudo rm -rf $REMOTE; exit \$rc"
    fi
fi

say "== 4. IO board"
if [ -z "$BOARD" ]; then
    say "  not flashed (no --board given)"
else
    dry=()
    [ "$DRY" = 1 ] && dry=(--dry-run)
    "$PY" -m devtools.board_flash --port "$BOARD" --device-id "$DEVICE_ID" \
        --site "$STAGE/etc/edge/site.toml" "${dry[@]}" || die "the IO board was not flashed correctly (see above)"
fi

say "== 5. self-test"
if [ "$DRY" = 1 ]; then
    say "  would run the self-test (board, cameras, model, broker, control ticks)"
    exit 0
fi
if [ -n "$TARGET" ]; then
    mkdir -p "$STAGE/var/lib/edge" # the self-test's store: a throwaway, not the card's
    "$PY" -m edge.device.selftest --device "$STAGE/etc/edge/device.toml" \
        ${SELFTEST_PORT:+--port "$SELFTEST_PORT"}
else
    say "  waiting for the service's first status snapshot (10 s)"
    sleep 12
    ssh "$SSH" "sudo /opt/edge/current/venv/bin/python -m edge.device.selftest --from-status /run/edge/status.json"
fi
