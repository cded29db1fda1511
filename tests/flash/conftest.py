"""flash.sh against a directory standing in for a Raspberry Pi OS SD card's root filesystem.

The image is the host's architecture (x86_64): flash.sh --arch x86_64 installs
host wheels, so the installed runtime can be started from the image in the
tests; the aarch64 path is the same pip call with other platform tags. One
session-wide first run (the expensive part: ~110 MB of wheels installed) is
shared by the tests, which then re-run flash.sh against that image.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from edge.link import signing
from edge.link.mosquitto import Mosquitto
from sim.pi_root import make_rootfs

from tests.board.procs import CROSSING, REPO, BoardProcess
from tests.link.harness import Keys, make_keys, running_broker

FLASH = REPO / "flash.sh"
WHEELHOUSE = Path(os.environ.get("EDGE_TEST_WHEELHOUSE", Path.home() / ".cache/edge/wheelhouse"))
PASSWORD = "cabinet-door-7"


def snapshot(root: Path) -> dict[str, tuple[str, int, int, str]]:
    """Every path under root: (mode, uid, gid, content hash or link target)."""
    out: dict[str, tuple[str, int, int, str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if "site-packages" in dirpath:  # the release's contents: the release id covers them
            dirnames.clear()
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            if p.is_symlink():
                what = "-> " + os.readlink(p)
            elif p.is_file():
                what = hashlib.sha256(p.read_bytes()).hexdigest()
            else:
                what = "dir"
            out[str(p.relative_to(root))] = (oct(st.st_mode), st.st_uid, st.st_gid, what)
    return out


def run_flash(*args: str | Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, EDGE_PYTHON=sys.executable)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        ["bash", str(FLASH), *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@dataclass
class Inputs:
    keys: Keys
    ca_cert: Path
    ca_key: Path
    password_file: Path
    broker: Mosquitto
    release_key: Path  # signs the releases flash.sh builds (private, Ed25519)
    standby_pub: Path  # central's standby key and the root key that moves to it
    root_pub: Path


@pytest.fixture(scope="session")
def wheelhouse() -> Path:
    """Host wheels of deploy/requirements-device.txt (scripts/wheelhouse.sh; cached)."""
    target = WHEELHOUSE / "x86_64"
    subprocess.run(
        [str(REPO / "scripts/wheelhouse.sh"), "--arch", "x86_64", "--dir", str(target)],
        check=True,
        env=dict(os.environ, EDGE_PYTHON=sys.executable),
        capture_output=True,
        timeout=600,
    )
    return target


@pytest.fixture(scope="session")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Inputs]:
    d = tmp_path_factory.mktemp("inputs")
    with running_broker(d / "broker") as broker:
        ca_key = d / "fleet-ca.key"
        ca_key.write_bytes(
            broker.pki.ca_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        pw = d / "password"
        pw.write_text(PASSWORD + "\n")
        release_key = d / "release.key"
        release_key.write_bytes(signing.private_pem(signing.generate()))
        keys = make_keys(d / "keys")
        standby, root = d / "standby.pub", d / "root.pub"
        standby.write_bytes(signing.public_pem(signing.generate().public_key()))
        root.write_bytes(signing.public_pem(signing.generate().public_key()))
        yield Inputs(keys, broker.pki.ca_cert_path, ca_key, pw, broker, release_key, standby, root)


@dataclass
class Provisioned:
    root: Path
    args: list[str]
    first: subprocess.CompletedProcess[str]
    board: BoardProcess
    flash_dir: Path
    site: Path


@pytest.fixture(scope="session")
def provisioned(
    tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path, inputs: Inputs
) -> Iterator[Provisioned]:
    """One full first run: broker, certificates, technician, the board flashed, self-test."""
    d = tmp_path_factory.mktemp("device")
    root = make_rootfs(d / "rootfs")
    site = d / "site.toml"
    shutil.copyfile(CROSSING, site)
    flash_dir = d / "board-flash"
    board = BoardProcess(
        d / "ttyBOARD", "--repl", str(d / "ttyREPL"), "--flash-dir", str(flash_dir)
    )
    try:
        args = [
            "--device-id", "hz-0412",
            "--site", str(site),
            "--target", str(root),
            "--arch", "x86_64",
            "--wheelhouse", str(wheelhouse),
            "--board", str(d / "ttyREPL"),
            "--selftest-port", board.path,
            "--broker", f"mqtts://127.0.0.1:{inputs.broker.port}",
            "--central-key", str(inputs.keys.central_pub),
            "--release-key", str(inputs.release_key),
            "--central-standby-key", str(inputs.standby_pub),
            "--root-key", str(inputs.root_pub),
            "--ca-crl", str(inputs.broker.pki.crl([])),
            "--ca-cert", str(inputs.ca_cert),
            "--offline-lab-ca-key", str(inputs.ca_key),
            "--technician", "anna",
            "--technician-password-file", str(inputs.password_file),
        ]  # fmt: skip
        first = run_flash(*args)
        yield Provisioned(root, args, first, board, flash_dir, site)
    finally:
        board.close()
