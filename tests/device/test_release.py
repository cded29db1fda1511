"""Signed releases and the updater's path safety (edge/device/release.py, update.py).

A release is switched to only when its manifest is signed with the device's release key,
every file matches, and it is not older than the running one (or a signed rollback
statement allows it); the root updater never writes through a path the service user
controls and never blocks on or follows the service's status file.
"""

from __future__ import annotations

import datetime
import importlib.machinery
import importlib.util
import json
import os
import re
import tempfile
import threading
from importlib._bootstrap_external import _code_to_timestamp_pyc  # type: ignore[attr-defined]
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from edge.device import release as signed
from edge.device.update import Releases, UpdateError, healthy, main
from edge.link import signing
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.hypothesis_profiles import examples

T0 = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.UTC)
DAY = datetime.timedelta(days=1)
DEVICE = "hz-0412"


class Device:
    """A stand-in root: /etc/edge (device.toml, release.pub) and /opt/edge/releases."""

    def __init__(self, root: Path, key: Ed25519PrivateKey) -> None:
        self.root, self.key = root, key
        etc = root / "etc/edge"
        etc.mkdir(parents=True)
        (etc / "device.toml").write_text(f'[device]\nid = "{DEVICE}"\n')
        (etc / "release.pub").write_bytes(signing.public_pem(key.public_key()))
        self.rel = Releases(root)

    def release(
        self,
        name: str,
        version: str,
        created: datetime.datetime = T0,
        key: Ed25519PrivateKey | None = None,
        code: str = "print('edge')\n",
    ) -> Path:
        d = self.rel.dir / name
        (d / "venv/bin").mkdir(parents=True)
        (d / "venv/bin/python").symlink_to("/usr/bin/python3")
        pkg = d / "venv/lib/python3.11/site-packages/edge"
        pkg.mkdir(parents=True)
        (pkg / "__init__.py").write_text(code)
        (pkg / "cli.py").write_text("def main() -> int:\n    return 0\n")
        signed.sign_release(d, name, version, key or self.key, created=created)
        return d


@pytest.fixture
def dev(tmp_path: Path) -> Device:
    return Device(tmp_path / "root", Ed25519PrivateKey.generate())


def test_a_good_release_is_accepted(dev: Device) -> None:
    dev.release("0.1.0-a", "0.1.0")
    dev.release("0.2.0-b", "0.2.0", T0 + DAY)
    assert dev.rel.switch("0.1.0-a") is None
    assert dev.rel.switch("0.2.0-b") == "0.1.0-a"
    assert dev.rel.current() == "0.2.0-b" and dev.rel.previous() == "0.1.0-a"
    assert dev.rel.trial() == {"release": "0.2.0-b", "previous": "0.1.0-a"}
    # the root updater's own bytecode cache is not release content
    cache = dev.rel.dir / "0.2.0-b/venv/lib/python3.11/site-packages/edge/__pycache__"
    cache.mkdir()
    (cache / "cli.cpython-311.pyc").write_bytes(b"\0")
    assert dev.rel.verify("0.2.0-b").version.public == "0.2.0"


def test_a_tampered_release_is_refused(dev: Device) -> None:
    d = dev.release("0.1.0-a", "0.1.0")
    (d / "venv/lib/python3.11/site-packages/edge/cli.py").write_text("import os\n")
    with pytest.raises(UpdateError, match=r"tampered: .*edge/cli.py: does not match"):
        dev.rel.switch("0.1.0-a")
    assert dev.rel.current() is None


def test_added_missing_and_relinked_files_are_refused(dev: Device) -> None:
    d = dev.release("0.1.0-a", "0.1.0")
    (d / "venv/lib/python3.11/site-packages/sitecustomize.py").write_text("import evil\n")
    with pytest.raises(
        UpdateError, match=re.escape("sitecustomize.py: not in the signed manifest")
    ):
        dev.rel.verify("0.1.0-a")
    (d / "venv/lib/python3.11/site-packages/sitecustomize.py").unlink()
    (d / "venv/lib/python3.11/site-packages/edge/cli.py").unlink()
    with pytest.raises(UpdateError, match=re.escape("edge/cli.py: missing")):
        dev.rel.verify("0.1.0-a")
    d = dev.release("0.1.0-b", "0.1.0")
    (d / "venv/bin/python").unlink()
    (d / "venv/bin/python").symlink_to("/tmp/python3")
    with pytest.raises(UpdateError, match="venv/bin/python: does not match"):
        dev.rel.verify("0.1.0-b")


def test_a_planted_bytecode_cache_never_runs_in_place_of_the_signed_source(
    dev: Device,
) -> None:
    # Review of issue 20: `__pycache__` was skipped, not checked, so a .pyc whose header
    # names the signed source's mtime and size verified and then ran instead of it.
    d = dev.release("0.1.0-a", "0.1.0")
    site = d / "venv/lib/python3.11/site-packages"
    src = site / "edge/cli.py"
    st = src.stat()
    evil = compile("def main() -> int:\n    return 666\n", str(src), "exec")
    pyc = Path(importlib.util.cache_from_source(str(src)))
    pyc.parent.mkdir()
    pyc.write_bytes(_code_to_timestamp_pyc(evil, st.st_mtime, st.st_size))
    dev.rel.switch("0.1.0-a")
    assert not pyc.exists()
    loaded: dict[str, object] = {}  # as an import does: the cache if it fits, else the source
    code = importlib.machinery.SourceFileLoader("cli", str(src)).get_code("cli")
    assert code is not None
    exec(code, loaded)
    assert loaded["main"]() == 0  # type: ignore[operator]


def test_a_release_signed_with_another_key_is_refused(dev: Device) -> None:
    dev.release("0.1.0-a", "0.1.0", key=Ed25519PrivateKey.generate())
    with pytest.raises(UpdateError, match=re.escape("release 0.1.0-a: unknown signing key")):
        dev.rel.switch("0.1.0-a")
    assert dev.rel.current() is None


def test_unsigned_renamed_and_keyless_releases_are_refused(dev: Device) -> None:
    d = dev.release("0.1.0-a", "0.1.0")
    (d / signed.MANIFEST).unlink()
    with pytest.raises(UpdateError, match=r"unsigned \(no release.json\)"):
        dev.rel.switch("0.1.0-a")
    dev.release("0.1.0-b", "0.1.0")
    os.rename(dev.rel.dir / "0.1.0-b", dev.rel.dir / "0.9.0-b")
    with pytest.raises(
        UpdateError, match=re.escape("manifest is for release '0.1.0-b', not this one")
    ):
        dev.rel.switch("0.9.0-b")
    (dev.root / "etc/edge/release.pub").unlink()
    dev.release("0.1.0-c", "0.1.0")
    with pytest.raises(UpdateError, match="no release key on this device"):
        dev.rel.switch("0.1.0-c")


def test_an_older_release_is_refused(dev: Device) -> None:
    dev.release("0.2.0-new", "0.2.0", T0)
    dev.release("0.1.0-old", "0.1.0", T0 + DAY)  # signed later, still a lower version
    dev.release("0.2.0-early", "0.2.0", T0 - DAY)  # same version, an earlier build
    dev.rel.switch("0.2.0-new")
    for old in ("0.1.0-old", "0.2.0-early"):
        with pytest.raises(UpdateError, match=re.escape("is older than the running 0.2.0-new")):
            dev.rel.switch(old)
    assert dev.rel.current() == "0.2.0-new"
    assert main(["--root", str(dev.root), "switch", "0.1.0-old"]) == 2
    assert main(["--root", str(dev.root), "verify", "0.1.0-old"]) == 0  # intact, only older


def test_a_running_release_the_device_cannot_verify_still_sets_the_floor(dev: Device) -> None:
    """A current release signed with a release key since replaced (or from before signing)
    is ordered by the version its id names: an older signed release is still refused."""
    dev.release("0.3.0-cur", "0.3.0", key=Ed25519PrivateKey.generate())
    dev.rel._point("current", "0.3.0-cur")
    dev.release("0.2.0-old", "0.2.0")
    with pytest.raises(UpdateError, match=re.escape("older than the running 0.3.0-cur")):
        dev.rel.switch("0.2.0-old")
    dev.release("0.3.0-new", "0.3.0", T0 + DAY)
    assert dev.rel.switch("0.3.0-new") == "0.3.0-cur"


def test_a_signed_rollback_statement_allows_that_downgrade_only(
    dev: Device, tmp_path: Path
) -> None:
    dev.release("0.2.0-new", "0.2.0")
    dev.release("0.1.0-old", "0.1.0")
    dev.rel.switch("0.2.0-new")
    later = datetime.datetime.now(datetime.UTC) + DAY
    past = datetime.datetime.now(datetime.UTC) - DAY
    other = Ed25519PrivateKey.generate()
    refused = {
        "it allows release '0.0.1-x'": signed.rollback_statement("0.0.1-x", "*", dev.key, later),
        "for device 'hz-9999'": signed.rollback_statement("0.1.0-old", "hz-9999", dev.key, later),
        "expired at": signed.rollback_statement("0.1.0-old", DEVICE, dev.key, past),
        "unknown signing key": signed.rollback_statement("0.1.0-old", DEVICE, other, later),
    }
    for why, raw in refused.items():
        with pytest.raises(UpdateError, match="rollback statement: ") as err:
            dev.rel.switch("0.1.0-old", raw)
        assert why in str(err.value), (why, err.value)
    assert dev.rel.current() == "0.2.0-new"
    good = tmp_path / "rollback.json"
    good.write_bytes(signed.rollback_statement("0.1.0-old", DEVICE, dev.key, later))
    assert main(["--root", str(dev.root), "switch", "0.1.0-old", "--statement", str(good)]) == 0
    assert dev.rel.current() == "0.1.0-old"


def test_rollback_of_a_committed_release_needs_a_statement(dev: Device) -> None:
    dev.release("0.1.0-a", "0.1.0")
    dev.release("0.2.0-b", "0.2.0")
    dev.rel.switch("0.1.0-a")
    dev.rel.switch("0.2.0-b")
    dev.rel.commit()
    with pytest.raises(
        UpdateError, match=re.escape("is committed: going back to 0.1.0-a is a downgrade")
    ):
        dev.rel.rollback()
    statement = signed.rollback_statement(
        "0.1.0-a", "*", dev.key, datetime.datetime.now(datetime.UTC) + DAY
    )
    assert dev.rel.rollback(statement) == "0.1.0-a"
    # on trial (never healthy), going back to what ran before needs nothing
    dev.rel.switch("0.2.0-b")
    assert dev.rel.trial() is not None
    assert dev.rel.rollback() == "0.1.0-a" and dev.rel.trial() is None


@settings(max_examples=examples(25))
@given(which=st.integers(0, 2), at=st.integers(0, 40), byte=st.integers(0, 255))
@example(which=0, at=0, byte=ord("p"))  # the same byte written back: still accepted
def test_any_changed_byte_is_refused(which: int, at: int, byte: int) -> None:
    """Rule: the updater switches to a release only if every byte matches its manifest."""
    key = Ed25519PrivateKey.generate()
    with tempfile.TemporaryDirectory() as tmp:
        dev = Device(Path(tmp), key)
        d = dev.release("0.1.0-a", "0.1.0")
        files = sorted(p for p in d.rglob("*.py"))
        target = files[which % len(files)]
        data = bytearray(target.read_bytes())
        i = at % len(data)
        changed = data[i] != byte
        data[i] = byte
        target.write_bytes(bytes(data))
        if changed:
            with pytest.raises(UpdateError, match="tampered"):
                dev.rel.switch("0.1.0-a")
        else:
            dev.rel.switch("0.1.0-a")


# -- the updater never follows what the service user controls -----------------------------


def test_a_link_planted_in_the_service_directory_does_not_redirect_the_trial(
    dev: Device,
) -> None:
    """Issue 20: the trial marker was written as root through var/lib/edge (edge's) and a
    symlink planted there overwrote a root-owned file."""
    precious = dev.root / "etc/shadow"
    precious.write_text("root:$y$secret:19000::::::\n")
    edge_dir = dev.root / "var/lib/edge"
    edge_dir.mkdir(parents=True)
    (edge_dir / "update-trial.tmp").symlink_to(precious)
    (edge_dir / "update-trial.json").symlink_to(precious)
    dev.release("0.1.0-a", "0.1.0")
    dev.release("0.2.0-b", "0.2.0")
    dev.rel.switch("0.1.0-a")
    dev.rel.switch("0.2.0-b")
    dev.rel.commit()
    assert precious.read_text() == "root:$y$secret:19000::::::\n"
    assert (edge_dir / "update-trial.tmp").is_symlink()


def test_a_state_directory_others_can_write_is_refused(dev: Device) -> None:
    dev.release("0.1.0-a", "0.1.0")
    dev.release("0.2.0-b", "0.2.0")
    dev.rel.switch("0.1.0-a")
    dev.rel.state_dir.mkdir(parents=True)
    dev.rel.state_dir.chmod(0o777)
    with pytest.raises(UpdateError, match="that no one else may write"):
        dev.rel.switch("0.2.0-b")
    dev.rel.state_dir.rmdir()
    dev.rel.state_dir.symlink_to(dev.root / "etc")  # a link instead of the directory
    with pytest.raises(OSError):
        dev.rel._state_fd()


def test_the_status_file_is_never_followed_nor_blocked_on(tmp_path: Path) -> None:
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"ticks": 5, "session": "running"}))
    link = tmp_path / "status.json"
    link.symlink_to(secret)
    ok, why = healthy(link, 0.0)
    assert not ok and "not readable safely" in why
    link.unlink()
    os.mkfifo(link)
    result: list[tuple[bool, str]] = []
    t = threading.Thread(target=lambda: result.append(healthy(link, 0.0)), daemon=True)
    t.start()
    t.join(10)
    if t.is_alive():  # the old code blocks in open(): let it go before failing
        fd = os.open(link, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        t.join(10)
        pytest.fail("healthy() blocked on a fifo planted as the status file")
    assert result and not result[0][0] and "not a regular file" in result[0][1]


def test_the_self_test_as_root_never_follows_the_status_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Review of issue 20: flash.sh --ssh runs `sudo ... selftest --from-status
    # /run/edge/status.json`, and that read followed a link the service user planted
    # (to /dev/zero: root reads without end; to a fifo: it blocks; to a file: it is read).
    from edge.device import selftest

    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"ticks": 5, "session": "running", "mode": "root-only"}))
    link = tmp_path / "status.json"
    link.symlink_to(secret)
    assert selftest.main(["--from-status", str(link)]) == 1
    out = capsys.readouterr().out
    assert "no status from the service" in out and "root-only" not in out, out


def test_edge_status_as_root_never_follows_the_status_file(tmp_path: Path) -> None:
    # Review of issue 20: `sudo edge status` (docs/field.md) read /run/edge/status.json
    # through a link the service user planted, and --json printed the target whole.
    from edge.device import status

    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"ticks": 5, "private": "root-only"}))
    link = tmp_path / "status.json"
    link.symlink_to(secret)
    got = status.collect(link, tmp_path / "device.toml", tmp_path)
    assert got["runtime"] is None and "root-only" not in json.dumps(got), got


def test_a_rollback_statement_is_used_once(dev: Device) -> None:
    """Replay within its window: the same statement, after the device went forward again,
    must not take it back a second time (its id is recorded in root's state directory)."""
    dev.release("0.1.0-a", "0.1.0")
    dev.release("0.2.0-b", "0.2.0")
    dev.rel.switch("0.1.0-a")
    dev.rel.switch("0.2.0-b")
    dev.rel.commit()
    statement = signed.rollback_statement(
        "0.1.0-a", "*", dev.key, datetime.datetime.now(datetime.UTC) + DAY
    )
    assert dev.rel.rollback(statement) == "0.1.0-a"
    dev.rel.switch("0.2.0-b")
    dev.rel.commit()
    with pytest.raises(UpdateError, match="rollback statement: already used"):
        dev.rel.rollback(statement)
    with pytest.raises(UpdateError, match="rollback statement: already used"):
        dev.rel.switch("0.1.0-a", statement)
    assert dev.rel.current() == "0.2.0-b"
    used = dev.root / "var/lib/edge-update/rollbacks-used.json"
    assert used.is_file() and not used.stat().st_mode & 0o022
