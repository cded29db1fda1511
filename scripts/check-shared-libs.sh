#!/usr/bin/env bash
# Check that every compiled object in a virtual environment finds its shared
# libraries: ldd over each ELF file in it (extension modules, the libraries the
# wheels bundle, SUMO's binaries, Playwright's node). A wheel bundles most of
# what it links against, but not all (SUMO needs the system's libatomic, X11 and
# GL client libraries); what the system lacks fails here, by name, instead of
# as an ImportError halfway through a demo or a test run.
#
# Usage: scripts/check-shared-libs.sh [VENV]   (default .venv)
# Exit 0 when everything resolves; 1 with the missing libraries and who needs them.
set -euo pipefail
venv=${1:-.venv}
if [ ! -d "$venv" ]; then
    echo "check-shared-libs: no virtual environment at $venv" >&2
    exit 1
fi
command -v ldd >/dev/null || {
    echo "check-shared-libs: ldd not found (Debian: libc-bin)" >&2
    exit 1
}

declare -A needed_by=() count=()
checked=0
while IFS= read -r -d '' f; do
    # ELF files only: the magic is the first four bytes (no NUL among them).
    magic=
    IFS= read -r -n4 magic <"$f" 2>/dev/null || true
    [ "$magic" = $'\x7fELF' ] || continue
    checked=$((checked + 1))
    # ldd fails on static binaries ("not a dynamic executable"): nothing to resolve.
    while read -r lib; do
        count[$lib]=$((${count[$lib]:-0} + 1))
        [ -n "${needed_by[$lib]:-}" ] || needed_by[$lib]=${f#"$venv"/}
    done < <(ldd "$f" 2>/dev/null | awk '/=> not found/ {print $1}')
done < <(find "$venv" -type f \( -name '*.so' -o -name '*.so.*' -o -perm -u+x \) -print0)

if [ ${#count[@]} -eq 0 ]; then
    echo "check-shared-libs: $checked compiled objects in $venv, every shared library found"
    exit 0
fi
echo "check-shared-libs: shared libraries missing on this system (install the Debian packages that provide them):" >&2
for lib in $(printf '%s\n' "${!count[@]}" | sort); do
    echo "  $lib: needed by ${needed_by[$lib]}$([ "${count[$lib]}" -gt 1 ] && echo " and $((count[$lib] - 1)) more")" >&2
done
exit 1
