#!/usr/bin/env bash
# The device's package: the wheel flash.sh installs on the Pi. It holds only what runs
# there: edge/, hw/ and models/ (never sim/ or devtools/), less the paths
# deploy/device-exclude.txt lists (the models' training code), and a pyproject.toml without
# the developer's entry points (`edge.*` groups: `edge sim`, `edge bench`, `edge run --sim`),
# so on the device those commands are simply absent.
#   scripts/device-wheel.sh TREE [WHEELDIR]
# TREE: the device's source tree is staged here (when it does not exist yet); with WHEELDIR,
# the wheel is built from TREE into WHEELDIR. flash.sh stages once, names the release after
# the tree's contents, then builds. Nothing is written into the checkout itself.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
py=${EDGE_PYTHON:-$repo/.venv/bin/python}
tree=${1:?usage: scripts/device-wheel.sh TREE [WHEELDIR]}
wheels=${2:-}

[ -x "$py" ] || { echo "device-wheel: no Python environment at $py: run 'make setup'" >&2; exit 1; }

if [ ! -e "$tree" ]; then
    mkdir -p "$tree"
    # The device's packages (and pyproject.toml's readme), less caches.
    tar -C "$repo" --exclude=__pycache__ --exclude='*.pyc' --exclude=.cache \
        --exclude='*.tmp.onnx' -cf - pyproject.toml README.md edge hw models |
        tar -C "$tree" -xf -
    # Its pyproject.toml: those packages only, no developer entry points (tomlkit: the
    # runtime's own dependency, in the venv).
    "$py" - "$tree/pyproject.toml" <<'EOF'
import sys

import tomlkit

path = sys.argv[1]
with open(path) as f:
    doc = tomlkit.parse(f.read())
project = doc["project"]
groups = project.get("entry-points", {})
for group in [g for g in groups if g.startswith("edge.")]:
    del groups[group]
if "entry-points" in project and not groups:
    del project["entry-points"]
doc["tool"]["setuptools"]["packages"]["find"]["include"] = ["edge*", "hw*", "models"]
with open(path, "w") as f:
    f.write(tomlkit.dumps(doc))
EOF
    shopt -s nullglob
    while IFS= read -r line || [ -n "$line" ]; do
        case "$line" in '' | '#'*) continue ;; esac
        # shellcheck disable=SC2206 # the line is a glob, expanded on purpose
        matches=("$tree"/$line)
        if [ ${#matches[@]} -eq 0 ]; then
            echo "device-wheel: deploy/device-exclude.txt: '$line' matches nothing in this checkout" >&2
            exit 1
        fi
        rm -rf "${matches[@]}"
    done <"$repo/deploy/device-exclude.txt"
fi

if [ -n "$wheels" ]; then
    mkdir -p "$wheels"
    # No build isolation: flash.sh runs offline in the field (the venv has setuptools).
    "$py" -m pip wheel --quiet --no-deps --no-build-isolation -w "$wheels" "$tree" \
        >"$tree.log" 2>&1 || { cat "$tree.log" >&2; echo "device-wheel: building the wheel failed" >&2; exit 1; }
    rm -f "$tree.log"
fi
