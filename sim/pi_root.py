"""A stand-in for a Raspberry Pi OS root partition, for flash.sh rehearsals and its tests.

What flash.sh needs of the image and nothing more: users and groups (pi, dialout,
video), a shadow file, the Python library folder, systemd's own units (copied from
this machine, so `systemd-analyze verify --root` can check the project's units) and
/bin/sh. It is not bootable.

    python -m sim.pi_root DIR     # makes DIR (it must not exist yet)
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Sequence
from pathlib import Path


def make_rootfs(root: Path) -> Path:
    """Make the stand-in image at root (a new folder); returns root."""
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text(
        "root:x:0:0:root:/root:/bin/bash\n"
        "users:x:100:100:users:/:/usr/sbin/nologin\n"
        "pi:x:1000:1000:,,,:/home/pi:/bin/bash\n"
    )
    (root / "etc/group").write_text(
        "root:x:0:\nusers:x:100:\ndialout:x:20:pi\nvideo:x:44:pi\npi:x:1000:\n"
    )
    (root / "etc/shadow").write_text("root:*:19000:0:99999:7:::\npi:!:19000:0:99999:7:::\n")
    (root / "etc/shadow").chmod(0o640)
    (root / "usr/lib/python3.11").mkdir(parents=True)
    # systemd-analyze verify --root needs the image's own units and /bin/sh.
    shutil.copytree("/lib/systemd/system", root / "lib/systemd/system", symlinks=True)
    (root / "bin").mkdir()
    shutil.copy2("/bin/dash", root / "bin/sh")
    return root


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sim.pi_root", description=__doc__)
    p.add_argument("dir", type=Path, help="the folder to make (must not exist)")
    args = p.parse_args(argv)
    if args.dir.exists():
        p.error(f"{args.dir} exists already")
    make_rootfs(args.dir)
    print(args.dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
