#!/usr/bin/env bash
# The wheels a Pi needs, fetched on a computer WITH internet, for the Pi's architecture:
# the pinned run-time dependencies (deploy/requirements-device.txt) as binary wheels.
# flash.sh installs from this directory only, so the Pi needs no internet.
#   scripts/wheelhouse.sh [--arch aarch64|x86_64] [--python 3.11] [--dir DIR]
#   scripts/wheelhouse.sh --lock   re-pin deploy/requirements-device.txt from .venv
set -euo pipefail
cd "$(dirname "$0")/.."
arch=aarch64 py=3.11 dir="" lock=0
while [ $# -gt 0 ]; do
    case "$1" in
        --arch) arch=$2; shift 2 ;;
        --python) py=$2; shift 2 ;;
        --dir) dir=$2; shift 2 ;;
        --lock) lock=1; shift ;;
        *) echo "wheelhouse.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
python=${EDGE_PYTHON:-.venv/bin/python}
req=deploy/requirements-device.txt

if [ "$lock" = 1 ]; then
    # The closure of pyproject's run-time dependencies at the versions the tests run with.
    "$python" - "$req" <<'PY'
import importlib.metadata as md, re, sys
from packaging.requirements import Requirement
seen, stack = {}, [Requirement(r).name for r in md.requires("edge-intersection") if "extra ==" not in r]
while stack:
    name = stack.pop()
    key = re.sub(r"[-_.]+", "-", name).lower()
    if key in seen:
        continue
    dist = md.distribution(name)
    seen[key] = dist.version
    for r in dist.requires or []:
        req = Requirement(r)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            stack.append(req.name)
with open(sys.argv[1], "w") as f:
    f.write("# The device's run-time dependencies, pinned (what the tests run against), resolved\n"
            "# from pyproject.toml's `dependencies`. flash.sh installs exactly these from the\n"
            "# wheelhouse. Regenerate after changing dependencies: scripts/wheelhouse.sh --lock\n")
    f.writelines(f"{k}=={v}\n" for k, v in sorted(seen.items()))
PY
    echo "wheelhouse.sh: pinned $(grep -c '==' "$req") packages in $req"
    exit 0
fi

dir=${dir:-wheelhouse/$arch}
mkdir -p "$dir"
stamp="$dir/.lock-sha256"
want=$(sha256sum "$req" | cut -c1-64)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "wheelhouse.sh: $dir is complete for $req"
    exit 0
fi
# pip takes wheels of another platform only when told every tag it may accept:
# manylinux 2.17 (2014) .. 2.39 covers Raspberry Pi OS bookworm (glibc 2.36) and later.
plat=()
for minor in $(seq 17 39); do plat+=(--platform "manylinux_2_${minor}_$arch"); done
plat+=(--platform "manylinux2014_$arch" --platform "linux_$arch")
"$python" -m pip download --quiet --dest "$dir" --only-binary=:all: --no-deps \
    --python-version "$py" --implementation cp "${plat[@]}" -r "$req"
echo "$want" >"$stamp"
echo "wheelhouse.sh: $(find "$dir" -name '*.whl' | wc -l) wheels for $arch (Python $py) in $dir"
