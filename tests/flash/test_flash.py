"""flash.sh against an SD card's root filesystem (a directory): what lands, and that a
re-run changes nothing, a new site changes only the site, bad input changes nothing."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from edge import credentials
from edge.device import enrol
from edge.device.update import Releases
from sim.pi_root import make_rootfs

from hw import board as hw_board
from tests.board.procs import CROSSING, REPO
from tests.flash.conftest import (
    FLASH,
    PASSWORD,
    Inputs,
    Provisioned,
    run_flash,
    snapshot,
)


def ids(root: Path, name: str, file: str) -> int:
    for line in (root / file).read_text().splitlines():
        parts = line.split(":")
        if parts[0] == name:
            return int(parts[2])
    raise AssertionError(f"{name} not in {file}")


def stat_of(p: Path) -> tuple[str, int, int]:
    st = p.stat()
    return oct(st.st_mode & 0o7777), st.st_uid, st.st_gid


def test_first_run_installs_the_device(provisioned: Provisioned) -> None:
    r, root = provisioned.first, provisioned.root
    assert r.returncode == 0, r.stdout + r.stderr
    uid, gid = ids(root, "edge", "etc/passwd"), ids(root, "edge", "etc/group")
    assert 100 < uid < 1000 and 100 < gid < 1000  # a system user, not 100 (users)
    passwd = (root / "etc/passwd").read_text()
    assert (
        f"edge:x:{uid}:{gid}:Edge intersection controller:/var/lib/edge:/usr/sbin/nologin" in passwd
    )
    group = (root / "etc/group").read_text().splitlines()
    assert "dialout:x:20:pi,edge" in group and "video:x:44:pi,edge" in group
    assert "edge:!:" in (root / "etc/shadow").read_text()
    etc = root / "etc/edge"
    assert stat_of(etc / "site.toml") == ("0o644", 0, 0)
    assert (etc / "site.toml").read_bytes() == provisioned.site.read_bytes()
    assert stat_of(etc / "tls/client.key") == ("0o640", 0, gid)
    assert stat_of(etc / "tls") == ("0o750", 0, gid)
    assert stat_of(etc / "technicians.json") == ("0o640", 0, gid)
    assert credentials.check(etc / "technicians.json", "anna", PASSWORD)
    assert stat_of(root / "var/lib/edge") == ("0o750", uid, gid)
    device = (etc / "device.toml").read_text()
    assert 'id = "hz-0412"' in device and 'certfile = "tls/client.crt"' in device
    for line in ('standby_keys = ["central-standby.pub"]', 'root_key = "root.pub"'):
        assert line in device  # a rollover moves the device to the standby key (no re-flash)
    assert 'crlfile = "tls/ca.crl"' in device  # the self-test's broker check ran with it
    assert stat_of(etc / "tls/ca.crl") == ("0o644", 0, 0)
    # the link's own loader accepts it, paths relative to the file
    from edge.link.config import load_device_config

    cfg = load_device_config(etc / "device.toml")
    assert cfg.device == "hz-0412" and cfg.site_path.resolve() == (etc / "site.toml").resolve()
    # the client certificate: CN = device id, signed by the fleet CA
    from cryptography import x509

    cert = x509.load_pem_x509_certificate((etc / "tls/client.crt").read_bytes())
    assert cert.subject.rfc4514_string() == "CN=hz-0412"
    unit = (root / "etc/systemd/system/edge.service").read_text()
    for line in (
        "User=edge",
        "SupplementaryGroups=dialout video",
        "Restart=always",
        "Type=notify",
        "WatchdogSec=5",
        "ExecStart=/opt/edge/current/venv/bin/edge run --config /etc/edge/site.toml "
        "--device /etc/edge/device.toml --port /dev/serial0",
        "--web 8080 --web-host ${EDGE_WEB_HOST} --credentials /etc/edge/technicians.json",
        "Environment=EDGE_WEB_HOST=127.0.0.1",
    ):
        assert line in unit
    wants = root / "etc/systemd/system/multi-user.target.wants/edge.service"
    assert os.readlink(wants) == "/etc/systemd/system/edge.service"
    current = root / "opt/edge/current"
    assert os.readlink(current).startswith("releases/0.1.0-")
    assert not (root / "var/lib/edge-update/update-trial.json").exists()  # first install: no trial
    # the release is signed: every file's hash under the release key the device now trusts
    assert stat_of(etc / "release.pub") == ("0o644", 0, 0)
    assert stat_of(root / "var/lib/edge-update") == ("0o755", 0, 0)
    manifest = Releases(root).verify(os.readlink(current).rsplit("/", 1)[-1])
    assert len(manifest.files) > 1000 and "venv/bin/python" in manifest.files
    pins = (current / "requirements.txt").read_text()
    assert "numpy==" in pins and pins.count("--hash=sha256:") >= 29  # pip --require-hashes
    # the release's own venv runs (host architecture here) and is this checkout's code
    py = current / "venv/bin/python"
    out = subprocess.run(
        [
            str(py),
            "-c",
            "import edge.cli, numpy, cv2, onnxruntime, aiomqtt; print(edge.cli.__file__)",
        ],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"]},
        cwd="/",  # not this checkout: the release's own code must be what imports
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()).resolve().is_relative_to(current.resolve())
    # the IO board: firmware byte for byte what hw/ holds, and its identity record
    fl = provisioned.flash_dir
    for name in ("__init__.py", "codec.py", "board_safety.py", "monitor.py", "board.py"):
        assert (fl / "hw" / name).read_bytes() == (REPO / "hw" / name).read_bytes()
    assert (fl / "main.py").read_bytes() == (REPO / "hw/main.py").read_bytes()
    record = json.loads((fl / "edge_board.json").read_text())
    assert record["device"] == "hz-0412" and record["firmware"] == hw_board.FIRMWARE_VERSION
    assert f"board flashed: firmware {hw_board.FIRMWARE_VERSION}" in r.stdout
    # the self-test: every part reported, nothing failed
    for line in (
        "OK    board    handshake done",
        "SKIP  cameras  none configured",
        "SKIP  model    none",
        "OK    broker   connected to 127.0.0.1:",
        "OK    control",
        "self-test: OK",
    ):
        assert line in r.stdout, r.stdout


def test_systemd_accepts_the_units(provisioned: Provisioned) -> None:
    assert provisioned.first.returncode == 0
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.fail("systemd-analyze is missing: scripts/install-test-tools.sh")
    done = subprocess.run(
        [exe, "verify", f"--root={provisioned.root}", "edge.service", "edge-update.service"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # verify warns (unknown keys, missing commands) on stderr even when it exits 0
    assert done.returncode == 0 and done.stderr == "" and done.stdout == "", done.stderr


RELEASE_CHECK = """
import importlib, json, pkgutil, sys
import edge
failed = {}
for m in pkgutil.walk_packages(edge.__path__, "edge."):
    try:
        importlib.import_module(m.name)
    except Exception as exc:
        failed[m.name] = repr(exc)
print(json.dumps(failed))
"""


def test_the_release_holds_only_the_device(provisioned: Provisioned) -> None:
    """The installed release: no developer tools, and every module it has imports there."""
    assert provisioned.first.returncode == 0
    current = provisioned.root / "opt/edge/current/venv"
    (site,) = current.glob("lib/python*/site-packages")
    assert (site / "edge/runtime.py").is_file() and (site / "models/vehicles.onnx").is_file()
    assert not (site / "sim").exists() and not (site / "devtools").exists()
    assert not list(site.glob("edge/**/*bench*.py")) and not (site / "models/train.py").exists()

    def release(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(current / "bin/python"), *args],
            capture_output=True,
            text=True,
            env={"PATH": os.environ["PATH"], "COLUMNS": "200"},
            cwd="/",  # the release's own code, not this checkout's
            timeout=120,
        )

    r = release("-c", RELEASE_CHECK)
    assert r.returncode == 0 and json.loads(r.stdout) == {}, r.stdout + r.stderr
    r = release("-m", "edge.cli", "--help")
    assert "{check,demo,run,status,passwd,atspm,board,central,vision}" in r.stdout, (
        r.stdout + r.stderr
    )
    r = release("-m", "edge.cli", "sim", "run", "single")
    assert r.returncode == 2 and r.stderr.startswith("edge sim: the simulator is not installed")


def test_the_release_id_names_the_device_code(
    tmp_path: Path, wheelhouse: Path, inputs: Inputs
) -> None:
    """A change the device gets (the page's files) is a new release; one to the simulator not."""
    repo = tmp_path / "repo"
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, check=True, timeout=60,
    ).stdout.decode().split("\0")  # fmt: skip
    for rel in filter(None, listed):
        if (REPO / rel).is_file():
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, repo / rel)
    root = make_rootfs(tmp_path / "rootfs")

    def release_id() -> str:
        r = subprocess.run(
            ["bash", str(repo / "flash.sh"), "--device-id", "hz-0412", "--site", str(CROSSING),
             "--target", str(root), "--arch", "x86_64", "--wheelhouse", str(wheelhouse),
             "--release-key", str(inputs.release_key), "--dry-run"],
            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
            env=dict(os.environ, EDGE_PYTHON=sys.executable, PYTHONPATH=str(repo)),
        )  # fmt: skip
        assert r.returncode == 0, r.stdout + r.stderr
        return r.stdout.split("would build release ")[1].split()[0]

    first = release_id()
    with (repo / "sim/realtime.py").open("a") as f:
        f.write("# a developer's change\n")
    assert release_id() == first
    (static,) = [p for p in sorted((repo / "edge/web/static").iterdir()) if p.is_file()][:1]
    with static.open("a") as f:
        f.write("\n")
    assert release_id() != first


def test_second_run_changes_nothing(provisioned: Provisioned) -> None:
    before = snapshot(provisioned.root)
    board_before = snapshot(provisioned.flash_dir)
    r = run_flash(*provisioned.args)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "device: nothing changed (already up to date)" in r.stdout
    assert "board up to date" in r.stdout
    assert "kept from the device: client certificate" in r.stdout
    assert snapshot(provisioned.root) == before
    assert snapshot(provisioned.flash_dir) == board_before


def test_new_site_changes_only_the_site(provisioned: Provisioned) -> None:
    site = provisioned.site
    text = CROSSING.read_text()
    assert "name = " in text
    site.write_text(text.replace("name = ", 'name = "Crossing, re-timed" #', 1))
    try:
        before = snapshot(provisioned.root)
        board_before = snapshot(provisioned.flash_dir)
        dry = run_flash(*provisioned.args, "--dry-run")
        assert dry.returncode == 0, dry.stdout + dry.stderr
        assert "would: updated  /etc/edge/site.toml (644 root:root)" in dry.stdout
        assert "would write :edge_board.json (differs)" in dry.stdout
        assert "1 change(s) would be made (dry run: nothing was changed)" in dry.stdout
        assert snapshot(provisioned.root) == before
        assert snapshot(provisioned.flash_dir) == board_before
        r = run_flash(*provisioned.args)
        assert r.returncode == 0, r.stdout + r.stderr
        after = snapshot(provisioned.root)
        changed = {p for p in set(before) | set(after) if before.get(p) != after.get(p)}
        assert changed == {"etc/edge/site.toml"}, changed
        board_after = snapshot(provisioned.flash_dir)
        assert {p for p in board_after if board_after[p] != board_before.get(p)} == {
            "edge_board.json"
        }
        assert "device: 1 change(s) made" in r.stdout
    finally:
        site.write_bytes(CROSSING.read_bytes())


def _bad_inputs(tmp: Path, inputs: Inputs) -> list[tuple[str, list[str], str]]:
    """(what, changed options, the message expected)."""
    bad_site = tmp / "bad-site.toml"
    bad_site.write_text(CROSSING.read_text().replace("min_green", "min_grean", 1))
    other_cn = tmp / "other"
    cert, key = inputs.broker.pki.issue("someone-else")
    not_pi = tmp / "not-a-pi"
    (not_pi / "etc").mkdir(parents=True)
    (not_pi / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (not_pi / "etc/group").write_text("root:x:0:\n")
    other_cn.mkdir()
    token = tmp / "hz-0412.token"
    token.write_bytes(
        enrol.make_token(inputs.keys.central, "hz-0412", datetime.datetime.now(datetime.UTC))
    )
    return [
        ("device id", ["--device-id", "hz 0412/x"], "--device-id 'hz 0412/x': use 1-64 of"),
        ("site", ["--site", str(bad_site)], "bad-site.toml:"),
        ("central key", ["--central-key", str(inputs.ca_cert)], "not an Ed25519 public key"),
        ("release key", ["--release-key", str(inputs.keys.central_pub)], "not an Ed25519 priv"),
        ("no release key", ["--release-key", ""], "--release-key is required"),
        ("broker url", ["--broker", "http://broker:80"], "use mqtts://HOST[:PORT]"),
        ("broker port", ["--broker", "mqtts://broker:99999"], "the port is not a number"),
        (
            "client cert of another device",
            ["--offline-lab-ca-key", "", "--client-cert", str(cert), "--client-key", str(key)],
            "its CN is 'someone-else', not the device id 'hz-0412'",
        ),
        (
            "enrolment's bootstrap port",
            ["--offline-lab-ca-key", "", "--enrol-token", str(token), "--enrol-port", "0"],
            "--enrol-port 0: a port is 1-65535",
        ),
        ("target", ["--target", str(not_pi)], "no group 'dialout' in etc/group"),
        ("host root", ["--target", "/"], "that is this computer's own root"),
        ("board", ["--board", str(tmp / "ttyNONE")], "no such serial port"),
        ("wheelhouse", ["--wheelhouse", str(tmp / "empty")], "no such directory"),
        ("technician", ["--technician", "Anna!"], "--technician 'Anna!'"),
        ("unknown option", ["--colour", "red"], "unknown option --colour"),
    ]


def _with(args: list[str], changes: list[str]) -> list[str]:
    out = list(args)
    for opt, value in zip(changes[::2], changes[1::2], strict=True):
        if opt in out:
            i = out.index(opt)
            if value:
                out[i + 1] = value
            else:
                del out[i : i + 2]
        elif value:
            out += [opt, value]
    return out


def test_bad_input_is_refused_before_any_change(
    provisioned: Provisioned, inputs: Inputs, tmp_path: Path
) -> None:
    assert provisioned.first.returncode == 0
    before = snapshot(provisioned.root)
    board_before = snapshot(provisioned.flash_dir)
    failures = []
    for what, changes, message in _bad_inputs(tmp_path, inputs):
        r = run_flash(*_with(provisioned.args, changes))
        if r.returncode != 2 or message not in r.stderr or "nothing was changed" not in r.stderr:
            failures.append(f"{what}: exit {r.returncode}\n{r.stderr}")
    assert not failures, "\n".join(failures)
    assert snapshot(provisioned.root) == before
    assert snapshot(provisioned.flash_dir) == board_before


def test_every_problem_is_listed_at_once(inputs: Inputs, tmp_path: Path) -> None:
    root = make_rootfs(tmp_path / "fresh")
    before = snapshot(root)
    r = run_flash(
        "--device-id", "bad id", "--site", CROSSING, "--target", root,
        "--broker", "mqtts://broker:8883", "--wheelhouse", tmp_path / "none",
    )  # fmt: skip
    assert r.returncode == 2
    for message in (
        "--device-id 'bad id'",
        "--broker needs --central-key",
        "needs --ca-cert",
        "--wheelhouse",
        "nothing was changed",
    ):
        assert message in r.stderr, r.stderr
    assert snapshot(root) == before


def test_help_speaks_to_a_technician() -> None:
    r = subprocess.run(["bash", str(FLASH), "--help"], capture_output=True, text=True)
    assert r.returncode == 0
    for text in (
        "--device-id ID",
        "--target DIR",
        "--ssh USER@HOST",
        "--dry-run",
        "changes NOTHING",
    ):
        assert text in r.stdout


def test_shellcheck_clean() -> None:
    exe = shutil.which("shellcheck")
    if exe is None:
        pytest.fail("shellcheck is missing: scripts/install-test-tools.sh")
    scripts = [FLASH, *sorted((REPO / "scripts").glob("*.sh"))]
    done = subprocess.run([exe, *map(str, scripts)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def test_no_python_environment_is_a_clear_error(tmp_path: Path) -> None:
    env = dict(os.environ, EDGE_PYTHON=str(tmp_path / "nope/python"))
    r = subprocess.run(
        [
            "bash",
            str(FLASH),
            "--device-id",
            "a",
            "--site",
            str(CROSSING),
            "--target",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == 1 and "run 'make setup'" in r.stderr
