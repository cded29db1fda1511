#!/usr/bin/env bash
# Try flash.sh without a Raspberry Pi: a stand-in SD card root (sim/pi_root.py), this
# machine's wheels (x86_64), and the virtual IO board (its USB REPL flashed with mpremote,
# its protocol port used by the self-test), as tests/flash does.
#   scripts/flash-rehearsal.sh [SITE.toml] [WORKDIR]
# Leaves WORKDIR/rootfs to look at (the release under opt/edge, the units, the keys).
set -euo pipefail
cd "$(dirname "$0")/.."
site=${1:-examples/t_junction.toml}
work=${2:-$(mktemp -d /tmp/edge-rehearsal.XXXXXX)}
py=${EDGE_PYTHON:-.venv/bin/python}
[ -x "$py" ] || { echo "flash-rehearsal: run 'make setup' first" >&2; exit 1; }
mkdir -p "$work"
[ -e "$work/rootfs" ] && { echo "flash-rehearsal: $work/rootfs exists; give a new WORKDIR" >&2; exit 1; }

echo "== stand-in SD card root: $work/rootfs"
"$py" -m sim.pi_root "$work/rootfs" >/dev/null
echo "== wheels for the device (cached in ~/.cache/edge/wheelhouse/x86_64)"
wheels=$HOME/.cache/edge/wheelhouse/x86_64
EDGE_PYTHON=$py scripts/wheelhouse.sh --arch x86_64 --dir "$wheels"

echo "== virtual IO board"
fifo=$work/board.out
"$py" -m sim.virtual_board --link "$work/ttyBOARD" --repl "$work/ttyREPL" \
    --flash-dir "$work/board-flash" >"$fifo" &
board=$!
trap 'kill $board 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q '"ready"' "$fifo" 2>/dev/null && break; sleep 0.1; done
grep -q '"ready"' "$fifo" || { echo "flash-rehearsal: the virtual board did not start" >&2; exit 1; }

printf 'rehearsal-only\n' >"$work/technician-password"
# A throwaway release key (a real one is kept offline): flash.sh signs the release with it.
"$py" -m edge.cli central keygen "$work/release" >/dev/null
echo "== flash.sh"
EDGE_PYTHON=$py ./flash.sh --device-id rehearsal-1 --site "$site" --target "$work/rootfs" \
    --arch x86_64 --wheelhouse "$wheels" --board "$work/ttyREPL" \
    --selftest-port "$work/ttyBOARD" --technician tech --release-key "$work/release.key" \
    --technician-password-file "$work/technician-password"
echo "== done: look at $work/rootfs (run this again with the same site: nothing changes)"
