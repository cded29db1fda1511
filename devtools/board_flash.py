"""Flash the IO board over its USB REPL with `mpremote`, then read it back and compare.

The firmware is the files hw/manifest.py names, laid out as the manifest says
(/hw/*.py, and hw/main.py as /main.py), plus /edge_board.json: the board's
identity record (device id, the site's config hash, firmware version) that
the self-test and a technician can read back with `mpremote cat`. Steps:

1. read back what the board holds: the sha256 of every file and the firmware
   version its hw/board.py reports (run on the board, by its MicroPython);
2. copy only the files that differ (none: "up to date", nothing written);
3. reset the board (machine.reset) so it starts the new firmware;
4. read back again: every hash and the version must match, else it fails.

Run mpremote as the real CLI (a subprocess), as a technician would.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HW = REPO / "hw"
FIRMWARE_FILES = ("__init__.py", "codec.py", "board_safety.py", "monitor.py", "board.py")
CONFIG_FILE = "edge_board.json"
TIMEOUT_S = 120.0

# Runs on the board: hashes of the given files and the firmware version, one JSON line.
READBACK = """
import hashlib, binascii, json
r = {}
for f in %r:
    try:
        h = hashlib.sha256()
        with open(f, 'rb') as fh:
            while True:
                b = fh.read(512)
                if not b:
                    break
                h.update(b)
        r[f] = binascii.hexlify(h.digest()).decode()
    except OSError:
        r[f] = None
try:
    import hw.board
    r['version'] = hw.board.FIRMWARE_VERSION
except Exception as e:
    r['version'] = 'error: ' + repr(e)
print('READBACK ' + json.dumps(r))
"""


class FlashError(RuntimeError):
    """The board could not be flashed or read back; says what and the fix."""


def firmware_version() -> str:
    for line in (HW / "board.py").read_text().splitlines():
        if line.startswith("FIRMWARE_VERSION"):
            return line.split("=", 1)[1].strip().strip("\"'")
    raise FlashError("hw/board.py has no FIRMWARE_VERSION")


def wanted_files(device_id: str, site: Path) -> dict[str, bytes]:
    """Board path -> content."""
    files = {f"hw/{name}": (HW / name).read_bytes() for name in FIRMWARE_FILES}
    files["main.py"] = (HW / "main.py").read_bytes()
    record = {
        "device": device_id,
        "firmware": firmware_version(),
        "site_sha256": hashlib.sha256(site.read_bytes()).hexdigest(),
    }
    files[CONFIG_FILE] = (json.dumps(record, sort_keys=True) + "\n").encode()
    return files


class Mpremote:
    def __init__(self, port: str, dry_run: bool = False) -> None:
        exe = shutil.which("mpremote") or str(Path(sys.executable).with_name("mpremote"))
        if not Path(exe).exists():
            raise FlashError("mpremote is not installed: make setup (it is in the dev extra)")
        self.base = [exe, "connect", port]
        self.port = port
        self.dry_run = dry_run

    def run(self, *args: str, change: bool = True) -> str:
        cmd = [*self.base, *args]
        if change and self.dry_run:
            print(f"  would run: mpremote connect {self.port} {' '.join(args)}")
            return ""
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise FlashError(
                f"mpremote {args[0]} on {self.port}: no answer in {TIMEOUT_S:.0f} s: unplug and "
                "replug the board's USB cable (hold BOOTSEL only to reinstall MicroPython)"
            ) from None
        if done.returncode != 0:
            raise FlashError(
                f"mpremote {args[0]} on {self.port} failed: "
                f"{(done.stderr or done.stdout).strip()[-400:]}"
            )
        return done.stdout

    def readback(self, paths: list[str]) -> dict[str, str | None]:
        out = self.run("exec", READBACK % (paths,), change=False)
        for line in out.splitlines():
            if line.startswith("READBACK "):
                data: dict[str, str | None] = json.loads(line[len("READBACK ") :])
                return data
        raise FlashError(f"the board did not answer the read-back: {out.strip()[-300:]}")


def flash(port: str, device_id: str, site: Path, dry_run: bool = False) -> int:
    """Returns the number of files written (0: the board was up to date)."""
    files = wanted_files(device_id, site)
    want = {p: hashlib.sha256(b).hexdigest() for p, b in files.items()}
    mp = Mpremote(port, dry_run)
    have = mp.readback(sorted(files))
    stale = [p for p in sorted(files) if have.get(p) != want[p]]
    if not stale:
        print(f"  board up to date: firmware {have.get('version')}, {len(files)} files match")
        return 0
    for p in stale:
        verb = "would write" if dry_run else "write"
        print(f"  {verb} :{p} ({'differs' if have.get(p) else 'new'})")
    # One mpremote call, commands chained with "+": one connection, one soft reset.
    chain: list[str] = []
    if have.get("hw/__init__.py") is None and "hw/__init__.py" in stale:
        chain += ["mkdir", ":hw", "+"]
    with tempfile.TemporaryDirectory(prefix="edge-board-") as tmp:
        for p in stale:
            local = Path(tmp) / p.replace("/", "__")
            local.write_bytes(files[p])
            chain += ["cp", str(local), f":{p}", "+"]
        mp.run(*chain, "reset")
    if dry_run:
        return len(stale)
    got = mp.readback(sorted(files))
    wrong = [p for p in files if got.get(p) != want[p]]
    version = firmware_version()
    if wrong or got.get("version") != version:
        raise FlashError(
            f"read-back after flashing differs: files {wrong or 'ok'}, version "
            f"{got.get('version')!r} (expected {version!r}); run flash.sh again, and if it "
            "persists the board's flash may be failing"
        )
    print(f"  board flashed: firmware {version}, {len(stale)} file(s) written, read back OK")
    return len(stale)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m devtools.board_flash", description=__doc__)
    p.add_argument("--port", required=True, help="the board's USB (REPL) port")
    p.add_argument("--device-id", required=True)
    p.add_argument("--site", required=True)
    p.add_argument("--dry-run", action="store_true")
    args = p.parse_args(argv)
    try:
        flash(args.port, args.device_id, Path(args.site), args.dry_run)
    except FlashError as exc:
        print(f"flash.sh: IO board: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
