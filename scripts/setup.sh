#!/usr/bin/env bash
# Set up everything the demo and the tests need on a fresh Debian machine:
# system packages (when run as root), a virtual environment and the project.
set -euo pipefail
venv=${1:-.venv}
cd "$(dirname "$0")/.."

need_apt=()
command -v python3 >/dev/null || need_apt+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need_apt[@]}"
    else
        echo "setup: missing system packages: ${need_apt[*]} (run as root, or install them)" >&2
        exit 1
    fi
fi

[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
# setuptools and wheel: flash.sh builds the project wheel without build isolation
# (offline on a laptop in the field), so the venv needs a build backend that can.
"$venv/bin/python" -m pip install --quiet --upgrade pip "setuptools>=70.1" wheel
"$venv/bin/python" -m pip install --quiet -e '.[dev]'

# The SUMO simulator (the `sim` extras, part of `dev`) links against the X11
# and GL client libraries even when it runs headless: install them if missing.
if ! "$venv/bin/python" -c 'import libsumo' 2>/dev/null; then
    sumo_libs=(libgl1 libglu1-mesa libx11-6 libxext6 libxrender1 libxft2 libfontconfig1)
    if [ "$(id -u)" = 0 ]; then
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${sumo_libs[@]}"
    else
        echo "setup: SUMO needs system libraries: ${sumo_libs[*]} (run as root, or install them)" >&2
        exit 1
    fi
fi
"$venv/bin/python" -c 'import libsumo' || {
    echo "setup: libsumo still does not import (see the error above)" >&2
    exit 1
}
