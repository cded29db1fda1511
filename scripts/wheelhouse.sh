#!/usr/bin/env bash
# The wheels a Pi needs, fetched on a computer WITH internet, for the Pi's architecture:
# the pinned run-time dependencies (deploy/requirements-device.txt) as binary wheels.
# flash.sh installs from this directory only, so the Pi needs no internet.
#   scripts/wheelhouse.sh [--arch aarch64|x86_64] [--python 3.11] [--dir DIR]
#   scripts/wheelhouse.sh --lock   re-pin deploy/requirements-device.txt from .venv
#   scripts/wheelhouse.sh --arch A --hashes   after a download: write deploy/hashes/A.txt, the
#       sha256 of each pinned wheel, which flash.sh installs with `pip --require-hashes`
#       (review the diff and commit it: it is what the devices trust)
set -euo pipefail
cd "$(dirname "$0")/.."
arch=aarch64 py=3.11 dir="" lock=0 hashes=0
while [ $# -gt 0 ]; do
    case "$1" in
        --arch) arch=$2; shift 2 ;;
        --python) py=$2; shift 2 ;;
        --dir) dir=$2; shift 2 ;;
        --lock) lock=1; shift ;;
        --hashes) hashes=1; shift ;;
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
write_hashes() {
    mkdir -p deploy/hashes
    "$python" - "$req" "$dir" "deploy/hashes/$arch.txt" "$arch" <<'PY'
import hashlib, re, sys
from pathlib import Path
req, wheels, out, arch = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()
have = {}
for w in sorted(wheels.glob("*.whl")):
    name, version = w.name.split("-")[:2]
    have.setdefault(f"{norm(name)}=={version}", []).append(hashlib.sha256(w.read_bytes()).hexdigest())
lines = [f"# The sha256 of each pinned wheel for {arch} (scripts/wheelhouse.sh --arch {arch} --hashes):\n",
         "# flash.sh installs with pip --require-hashes from this file only.\n"]
for pin in Path(req).read_text().splitlines():
    pin = pin.split("#")[0].strip()
    if not pin:
        continue
    digests = have.get(norm(pin.split("==")[0]) + "==" + pin.split("==")[1])
    if not digests:
        sys.exit(f"wheelhouse.sh: no wheel for {pin} in {wheels}")
    lines.append(pin + "".join(f" \\\n    --hash=sha256:{d}" for d in digests) + "\n")
out.write_text("".join(lines))
print(f"wheelhouse.sh: {len(lines) - 2} pinned hashes in {out}")
PY
}
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "wheelhouse.sh: $dir is complete for $req"
    [ "$hashes" = 0 ] || write_hashes
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
[ "$hashes" = 0 ] || write_hashes
