#!/usr/bin/env bash
# Set up everything the demo and the tests need on a fresh Debian machine:
# system packages (when run as root), a virtual environment and the project.
# scripts/fresh-debian-check.sh proves it on a minimal Debian root.
set -euo pipefail
venv=${1:-.venv}
cd "$(dirname "$0")/.."

# The shared libraries that the wheels' compiled code links against but does not
# bundle, by Debian package (found with scripts/check-shared-libs.sh, i.e. ldd over
# every ELF file in the venv, and dpkg -S): SUMO's binaries, libsumo and its
# bundled libraries need the X11 and GL client libraries even headless (libgl1,
# libx11-6, libxext6, libxrender1), libatomic1 (its Arrow and Parquet, and
# Playwright's node too), libexpat1 (its GDAL and fontconfig) and zlib1g; the C++
# runtime (libstdc++6, libgcc-s1) for all of them.
system_libs=(libatomic1 libgl1 libx11-6 libxext6 libxrender1 libexpat1 zlib1g libstdc++6 libgcc-s1)

need_apt=()
command -v python3 >/dev/null || need_apt+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
# Without dpkg (not Debian) the ldd check below names what is missing.
if command -v dpkg-query >/dev/null; then
    for pkg in "${system_libs[@]}"; do
        [ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null)" = installed ] ||
            need_apt+=("$pkg")
    done
fi
if [ ${#need_apt[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get -o DPkg::Lock::Timeout=600 update
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 \
            install -y --no-install-recommends "${need_apt[@]}"
    else
        echo "setup: missing system packages: ${need_apt[*]} (run as root, or apt-get install them)" >&2
        exit 1
    fi
fi

[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
# setuptools and wheel: flash.sh builds the project wheel without build isolation
# (offline on a laptop in the field), so the venv needs a build backend that can.
"$venv/bin/python" -m pip install --quiet --upgrade pip "setuptools>=70.1" wheel
"$venv/bin/python" -m pip install --quiet -e '.[dev]'

# Every compiled object finds its libraries (a wheel that starts to link against
# another system library fails here, by name), and SUMO runs in-process.
scripts/check-shared-libs.sh "$venv"
"$venv/bin/python" -c 'import libsumo' || {
    echo "setup: libsumo does not import (see the error above)" >&2
    exit 1
}
