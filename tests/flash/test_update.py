"""Updates on the flashed image: a healthy new release is kept, a broken one is rolled back.

The runtime runs from the image itself (its release's venv, host architecture)
against a virtual board; `edge-update apply` switches `current`, restarts
through a small script standing in for `systemctl restart edge`, and waits for
the status snapshot to say healthy.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from edge.device import release as signed
from edge.device.update import Releases
from edge.link import signing

from tests.board.procs import REPO, BoardProcess, poll
from tests.flash.conftest import Inputs, Provisioned

RESTART = """\
#!/bin/sh
# stands for `systemctl restart edge.service`: stop the running one, start `current`
# as under systemd: working directory /, no PYTHONPATH (the release's own code runs)
cd /
unset PYTHONPATH
root={root}
if [ -f {pidfile} ]; then kill "$(cat {pidfile})" 2>/dev/null; sleep 0.5; fi
"$root/opt/edge/current/venv/bin/python" -m edge.cli run --config "$root/etc/edge/site.toml" \\
    --port {port} --status-file {status} --status-every 1 >>{log} 2>&1 &
echo $! >{pidfile}
"""


def healthy_release(rel: Releases, good: str, name: str, key: Path) -> None:
    """A second release with the same code: its venv shares the good one's packages."""
    venv = rel.dir / name / "venv"
    site = venv / "lib/python3.11"
    site.mkdir(parents=True)
    (site / "site-packages").symlink_to(rel.dir / good / "venv/lib/python3.11/site-packages")
    (venv / "bin").mkdir()
    (venv / "bin/python").symlink_to("/usr/bin/python3")
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\ninclude-system-site-packages = false\n")
    sign(rel, name, key)


def sign(rel: Releases, name: str, key: Path) -> None:
    version = name.split("-")[0]
    signed.sign_release(rel.dir / name, name, version, signing.load_private(key))


def broken_release(rel: Releases, name: str, key: Path) -> None:
    """A release whose runtime dies at start (its edge package raises on import)."""
    venv = rel.dir / name / "venv"
    pkg = venv / "lib/python3.11/site-packages/edge"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise RuntimeError('deliberately broken release')\n")
    (pkg / "cli.py").write_text("")
    (venv / "bin").mkdir()
    (venv / "bin/python").symlink_to("/usr/bin/python3")
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\ninclude-system-site-packages = false\n")
    sign(rel, name, key)


def test_update_kept_when_healthy_rolled_back_when_not(
    provisioned: Provisioned, inputs: Inputs, tmp_path: Path
) -> None:
    assert provisioned.first.returncode == 0, provisioned.first.stderr
    root = provisioned.root
    rel = Releases(root)
    good = rel.current()
    assert good is not None
    board = BoardProcess(tmp_path / "ttyUPD")
    status = tmp_path / "status.json"
    pidfile = tmp_path / "edge.pid"
    log = tmp_path / "edge.log"
    restart = tmp_path / "restart.sh"
    restart.write_text(
        RESTART.format(root=root, pidfile=pidfile, port=board.path, status=status, log=log)
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))

    def update(*args: str, timeout_s: str = "20") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "edge.device.update", "--root", str(root),
             "--status-file", str(status), "--timeout", timeout_s,
             "--restart", f"sh {restart}", *args],
            capture_output=True, text=True, env=env, timeout=90,
        )  # fmt: skip

    try:
        subprocess.run(["sh", str(restart)], check=True, env=env)
        assert poll(lambda: status.exists() and json.loads(status.read_text())["ticks"] > 0, 25)

        healthy_release(rel, good, "0.2.0-healthy", inputs.release_key)
        r = update("apply", "0.2.0-healthy")
        assert r.returncode == 0, r.stdout + r.stderr + log.read_text()
        assert "update_healthy release=0.2.0-healthy" in r.stderr
        assert rel.current() == "0.2.0-healthy" and rel.previous() == good
        assert rel.trial() is None

        broken_release(rel, "0.3.0-broken", inputs.release_key)
        t0 = time.monotonic()
        r = update("apply", "0.3.0-broken", timeout_s="8")
        assert r.returncode == 1, r.stdout + r.stderr
        assert time.monotonic() - t0 >= 8
        assert "update_unhealthy release=0.3.0-broken" in r.stderr
        assert "update_rolled_back from=0.3.0-broken to=0.2.0-healthy" in r.stderr
        assert "deliberately broken release" in log.read_text()
        assert rel.current() == "0.2.0-healthy" and rel.trial() is None
        # the previous release runs again, and says so in a fresh snapshot
        since = time.time()

        def fresh_and_running() -> bool:
            try:
                st = json.loads(status.read_text())
            except (OSError, ValueError):
                return False
            return status.stat().st_mtime > since and st["session"] == "running"

        assert poll(fresh_and_running, 30), log.read_text()[-2000:]
    finally:
        if pidfile.exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pidfile.read_text()), signal.SIGTERM)
        board.close()


def test_the_flashed_updater_refuses_tampered_foreign_and_older_releases(
    provisioned: Provisioned, inputs: Inputs, tmp_path: Path
) -> None:
    """Issue 20's done-when, on the flashed image through `edge-update switch`: each refused
    with its reason, `current` untouched; a good newer release is accepted."""
    assert provisioned.first.returncode == 0, provisioned.first.stderr
    root = provisioned.root
    rel = Releases(root)
    good = rel.current()
    assert good is not None
    env = dict(os.environ, PYTHONPATH=str(REPO))

    def switch(name: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "edge.device.update", "--root", str(root), "switch", name],
            capture_output=True, text=True, env=env, timeout=60,
        )  # fmt: skip

    names = ["9.0.0-tampered", "9.0.0-foreign", "0.0.1-older", "9.0.0-good"]
    try:
        healthy_release(rel, good, "9.0.0-tampered", inputs.release_key)
        (rel.dir / "9.0.0-tampered/venv/pyvenv.cfg").write_text("home = /tmp/evil\n")
        foreign = tmp_path / "foreign.key"
        foreign.write_bytes(signing.private_pem(signing.generate()))
        healthy_release(rel, good, "9.0.0-foreign", foreign)
        healthy_release(rel, good, "0.0.1-older", inputs.release_key)
        for name, why in (
            ("9.0.0-tampered", "tampered: venv/pyvenv.cfg: does not match the signed manifest"),
            ("9.0.0-foreign", "unknown signing key"),
            ("0.0.1-older", f"is older than the running {good}"),
        ):
            r = switch(name)
            assert r.returncode == 2 and why in r.stderr, (name, r.stderr)
            assert rel.current() == good and rel.trial() is None
        healthy_release(rel, good, "9.0.0-good", inputs.release_key)
        r = switch("9.0.0-good")
        assert r.returncode == 0, r.stderr
        assert rel.current() == "9.0.0-good" and rel.trial() is not None
    finally:  # the session's image goes back to the flashed release
        rel._point("current", good)
        rel._drop_trial()
        for name in names:
            shutil.rmtree(rel.dir / name, ignore_errors=True)
