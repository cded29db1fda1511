"""The units' sandbox, as `systemd-analyze security --offline=yes` scores it (0 safest,
10 unsafe): edge.service at most 2.0, edge-update.service (root) at most 4.0 (issue 20).

Scored on the units flash.sh installed into the provisioned image (--root), so a unit
that flash.sh rewrites is the one that counts. systemd cannot run as PID 1 here, so
what each directive allows is argued in docs/field.md ("The sandbox").
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.flash.conftest import Provisioned

LIMITS = {"edge.service": 2.0, "edge-update.service": 4.0}
OVERALL = re.compile(r"Overall exposure level for (\S+): (\d+\.\d+)")


def exposure(root: str, *units: str) -> dict[str, float]:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.fail("systemd-analyze is missing: scripts/install-test-tools.sh")
    done = subprocess.run(
        [exe, "security", "--offline=yes", f"--root={root}", "--no-pager", *units],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    scores = {m[1]: float(m[2]) for m in OVERALL.finditer(done.stdout)}
    assert set(scores) == set(units), done.stdout + done.stderr
    return scores


def test_installed_units_are_sandboxed(provisioned: Provisioned) -> None:
    assert provisioned.first.returncode == 0
    scores = exposure(str(provisioned.root), *LIMITS)
    over = {u: s for u, s in scores.items() if s > LIMITS[u]}
    assert not over, f"exposure above the limit {LIMITS}: {over}"


def test_installed_service_limits(provisioned: Provisioned) -> None:
    """What the score does not see: the descriptors the page ran out of, a memory cap,
    and the devices the runtime must keep (serial port, cameras)."""
    unit = (provisioned.root / "etc/systemd/system/edge.service").read_text()
    for line in (
        "LimitNOFILE=8192",
        "MemoryMax=512M",
        "UMask=0027",
        "DevicePolicy=closed",
        "DeviceAllow=char-ttyS rw",
        "DeviceAllow=char-ttyAMA rw",
        "DeviceAllow=char-ttyACM rw",
        "DeviceAllow=char-video4linux rw",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
    ):
        assert line in unit.splitlines(), line
