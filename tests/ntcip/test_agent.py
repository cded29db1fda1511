"""The NTCIP agent on a real Runtime (no board: the test steps its controller), driven by
net-snmp's own snmpget/snmpwalk/snmpset over SNMPv3 (SHA + AES) on loopback UDP.

Needs Debian's `snmp` package (scripts/install-test-tools.sh); skipped without it
unless CI=1, where its absence fails.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from edge.control.controller import Controller
from edge.control.states import GREEN
from edge.ntcip import mib
from edge.ntcip.agent import NtcipAgent
from edge.ntcip.settings import DEV_USER, User, dev_settings
from edge.runtime import Runtime

from tests.web.inproc import make_runtime

if shutil.which("snmpget") is None:
    if os.environ.get("CI") == "1":
        raise RuntimeError("net-snmp's snmpget is missing: run scripts/install-test-tools.sh")
    # `make test` installs them (scripts/install-test-tools.sh); a bare checkout may lack them.
    if os.environ.get("CI"):
        pytest.fail("net-snmp tools (apt-get install snmp) not installed", pytrace=False)
    pytest.skip("net-snmp tools (apt-get install snmp) not installed", allow_module_level=True)

ASC = "1.3.6.1.4.1.1206.4.2.1"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Device:
    """The runtime, its agent's task, and a step that ticks the controller and the hook."""

    def __init__(self, rt: Runtime, agent: NtcipAgent) -> None:
        self.rt, self.agent = rt, agent
        self.now_ms = rt.board.clock_ms()

    @property
    def ctl(self) -> Controller:
        return self.rt.driver.controller

    def step(self, n: int = 1) -> None:
        for _ in range(n):
            self.now_ms += 100
            self.rt.driver.tick(self.now_ms)
            self.agent.on_tick(self.rt.tick_snapshot())

    def until_green(self, limit: int = 2000) -> None:
        for _ in range(limit):
            if GREEN in self.ctl.iv:
                return
            self.step()
        raise AssertionError("no green within the limit")

    async def snmp(
        self, tool: str, *args: str, user: User = DEV_USER, auth: str | None = None
    ) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            tool, "-v3", "-l", "authPriv", "-u", user.name,
            "-a", "SHA", "-A", auth or user.auth, "-x", "AES", "-X", user.priv,
            "-On", "-Oq", "-r", "0", "-t", "3", f"udp:127.0.0.1:{self.agent.port}", *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await proc.communicate()
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    async def values(self, tool: str, *args: str) -> dict[str, int]:
        rc, out, err = await self.snmp(tool, *args)
        assert rc == 0, err
        pairs = (line.split(" ", 1) for line in out.strip().splitlines())
        return {oid.lstrip("."): int(v) for oid, v in pairs}


async def running(sets: bool = True, backup_s: int = 60) -> AsyncIterator[Device]:
    rt = make_runtime()
    settings = replace(dev_settings(0), sets=sets, backup_s=backup_s)
    agent = rt.add(NtcipAgent(settings))
    dev = Device(rt, agent)
    task = asyncio.create_task(agent.run())
    try:
        dev.step()
        yield dev
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        agent.stop()


@pytest.fixture
async def device() -> AsyncIterator[Device]:
    async for dev in running():
        yield dev


@pytest.fixture
async def read_only() -> AsyncIterator[Device]:
    async for dev in running(sets=False):
        yield dev


def ids_of(mask_value: int, group: int = 1) -> set[int]:
    return set(mib.members(mask_value, group))


@pytest.mark.anyio
async def test_a_walk_of_phase_status_shows_the_controller_s_displays(device: Device) -> None:
    device.until_green()
    device.step(5)
    walked = await device.values("snmpwalk", f"{ASC}.1.4")
    ctl = device.ctl
    ids = [p.id for p in device.rt.site.phases]
    greens = {ids[i] for i, v in enumerate(ctl.iv) if v == GREEN}
    assert greens and ids_of(walked[f"{ASC}.1.4.1.4.1"]) == greens
    reds = ids_of(walked[f"{ASC}.1.4.1.2.1"])
    assert reds and not reds & greens
    # every column of group 1: number, reds .. phase nexts
    assert {f"{ASC}.1.4.1.{c}.1" for c in range(1, 12)} <= set(walked)
    # GETBULK (snmpbulkwalk) walks the same objects
    assert set(await device.values("snmpbulkwalk", f"{ASC}.1.4")) == set(walked)


@pytest.mark.anyio
async def test_timing_reads_are_the_plan_s_in_ntcip_units(device: Device) -> None:
    site = device.rt.site
    p = site.phases[1]
    tm = site.plans[device.ctl.plan.id].timings[p.id]
    got = await device.values(
        "snmpget", *(f"{ASC}.1.2.1.{c}.{p.id}" for c in (4, 5, 6, 8, 9, 2, 3))
    )
    assert list(got.values()) == [
        tm.min_green_ms // 1000,
        tm.passage_ms // 100,
        tm.max_green_ms // 1000,
        tm.yellow_ms // 100,
        tm.red_clear_ms // 100,
        tm.walk_ms // 1000,
        tm.ped_clear_ms // 1000,
    ]


@pytest.mark.anyio
async def test_a_set_call_reaches_the_controller(device: Device) -> None:
    device.until_green()
    ids = [p.id for p in device.rt.site.phases]
    red = next(ids[i] for i, v in enumerate(device.ctl.iv) if v != GREEN)
    i = ids.index(red)
    device.ctl.vcall[i] = False
    assert device.ctl.vcall[i] is False
    rc, _, err = await device.snmp("snmpset", f"{ASC}.1.5.1.6.1", "i", str(mib.mask([red], 1)))
    assert rc == 0, err
    device.step()
    assert device.ctl.vcall[i] or device.ctl.iv[i] == GREEN
    got = await device.values("snmpget", f"{ASC}.1.4.1.8.1")
    assert red in ids_of(got[f"{ASC}.1.4.1.8.1"]) or device.ctl.iv[i] == GREEN


@pytest.mark.anyio
async def test_pattern_select_and_hold_release_with_the_backup_timer(device: Device) -> None:
    site = device.rt.site
    plans = list(site.plans)
    hold = site.phases[0].id
    rc, _, err = await device.snmp(
        "snmpset",
        f"{ASC}.3.3.0", "i", "30",
        f"{ASC}.1.5.1.4.1", "i", str(mib.mask([hold], 1)),
        f"{ASC}.4.14.0", "i", str(len(plans)),
    )  # fmt: skip
    assert rc == 0, err
    device.step()
    ctl = device.ctl
    assert ctl.hold[0] and plans[-1] in (ctl.pending_plan, ctl.plan.id)
    got = await device.values("snmpget", f"{ASC}.3.5.0", f"{ASC}.4.14.0")
    assert got == {f"{ASC}.3.5.0": mib.SYSTEM_CONTROL, f"{ASC}.4.14.0": len(plans)}
    # no SET for unitBackupTime: remote control is released (the test moves the clock)
    device.agent.check_backup(time.monotonic() + 31)
    device.step()
    assert not any(ctl.hold)
    assert ctl.pending_plan in (None, device.agent.scheduled_plan())
    got = await device.values("snmpget", f"{ASC}.3.5.0", f"{ASC}.1.5.1.4.1")
    assert got == {f"{ASC}.3.5.0": mib.BACKUP_MODE, f"{ASC}.1.5.1.4.1": 0}


@pytest.mark.anyio
async def test_a_bad_value_is_an_snmp_error_and_nothing_is_applied(device: Device) -> None:
    ids = {p.id for p in device.rt.site.phases}
    unknown = next(n for n in range(1, 9) if n not in ids) if len(ids) < 8 else None
    first = min(ids)
    bad = (
        (f"{ASC}.1.5.1.6.1", "i", str(mib.mask([unknown], 1)))
        if unknown is not None
        else (f"{ASC}.4.14.0", "i", "200")
    )
    before = device.agent.remote
    rc, out, err = await device.snmp(
        "snmpset", f"{ASC}.1.5.1.2.1", "i", str(mib.mask([first], 1)), *bad
    )
    assert rc != 0 and "wrongValue" in err + out
    assert "Failed object" in err + out and bad[0] in err + out
    assert device.agent.remote == before
    assert device.rt.driver._commands == []  # nothing queued for the core
    device.step()
    assert not any(device.ctl.omit)
    # a read-only object, and a value of the wrong type
    rc, out, err = await device.snmp("snmpset", f"{ASC}.1.4.1.2.1", "i", "0")
    assert rc != 0 and "notWritable" in err + out
    rc, out, err = await device.snmp("snmpset", f"{ASC}.4.14.0", "s", "one")
    assert rc != 0 and "wrongType" in err + out


@pytest.mark.anyio
async def test_bad_auth_is_refused(device: Device) -> None:
    rc, out, err = await device.snmp("snmpget", f"{ASC}.1.1.0", auth="not-the-key")
    assert rc != 0 and out == ""
    assert "Authentication failure" in err
    stranger = User("stranger", "some-auth-key", "some-priv-key")
    rc, out, err = await device.snmp("snmpget", f"{ASC}.1.1.0", user=stranger)
    assert rc != 0 and out == "" and "Unknown user name" in err


@pytest.mark.anyio
async def test_sets_are_refused_unless_configured(read_only: Device) -> None:
    dev = read_only
    got = await dev.values("snmpget", f"{ASC}.1.1.0")
    assert got[f"{ASC}.1.1.0"] == len(dev.rt.site.phases)
    rc, out, err = await dev.snmp("snmpset", f"{ASC}.1.5.1.6.1", "i", "1")
    assert rc != 0 and ("authorizationError" in err + out or "noAccess" in err + out)
    assert dev.rt.driver._commands == [] and dev.agent.sets_accepted == 0


@pytest.mark.anyio
async def test_an_unsigned_or_timeticks_value_is_wrong_type(device: Device) -> None:
    # Gauge32 and TimeTicks are INTEGERs to pyasn1 but not the INTEGER these objects are
    # (RFC 3416: wrongType); the SET is refused and no call is placed.
    before = device.agent.remote
    for kind in ("u", "t"):
        rc, out, err = await device.snmp("snmpset", f"{ASC}.1.5.1.6.1", kind, "1")
        assert rc != 0 and "wrongType" in err + out, (kind, out, err)
    assert device.agent.remote == before and device.agent.sets_accepted == 0
    assert device.rt.driver._commands == []


@pytest.mark.anyio
async def test_a_set_of_too_many_varbinds_is_too_big_and_nothing_is_applied(
    device: Device,
) -> None:
    before = device.agent.remote
    one = (f"{ASC}.1.5.1.6.1", "i", "255")
    rc, out, err = await device.snmp("snmpset", *one * (mib.MAX_SET_VARBINDS + 1))
    assert rc != 0 and "tooBig" in err + out, (out, err)
    assert device.agent.remote == before and device.rt.driver._commands == []


@pytest.mark.anyio
async def test_a_manager_s_cached_engine_id_and_boots_work_after_a_restart(
    tmp_path: Path,
) -> None:
    from edge.ntcip.settings import engine_id

    eid = engine_id("hz-0412")
    boots_file = tmp_path / "snmp-engine-boots"
    settings = replace(dev_settings(0), engine_id=eid, boots_file=boots_file)
    for start in (1, 2):  # two starts of the agent, as two runs of the device
        rt = make_runtime()
        agent = rt.add(NtcipAgent(settings))
        dev = Device(rt, agent)
        task = asyncio.create_task(agent.run())
        try:
            dev.step()
            # a manager that knows the engine (no discovery): its id, boots and time
            rc, out, err = await dev.snmp(
                "snmpget", "-e", "0x" + eid.hex(), "-Z", f"{start},0", f"{ASC}.4.14.0"
            )
            assert rc == 0, (start, out, err)
            assert agent.status_fields()["ntcip"]["engine_boots"] == start
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            agent.stop()
    assert boots_file.read_text() == "2\n"


@pytest.mark.anyio
async def test_a_getbulk_of_more_repeating_varbinds_than_served_is_too_big_not_a_traceback(
    device: Device, caplog: pytest.LogCaptureFixture
) -> None:
    # pysnmp's own manager: its GETBULK of 65 repeating varbinds made pysnmp's responder
    # raise (no reply; an ERROR traceback from the event loop)
    from pysnmp.hlapi.v3arch import asyncio as hl

    user = hl.UsmUserData(
        DEV_USER.name, DEV_USER.auth, DEV_USER.priv,
        authProtocol=hl.USM_AUTH_HMAC96_SHA, privProtocol=hl.USM_PRIV_CFB128_AES,
    )  # fmt: skip
    target = await hl.UdpTransportTarget.create(
        ("127.0.0.1", device.agent.port), timeout=3, retries=0
    )
    oid = hl.ObjectType(hl.ObjectIdentity(f"{ASC}.1.4.1.4"))  # phaseStatusGroupGreens
    engine = hl.SnmpEngine()
    try:
        answers = {}
        for n in (64, 65, 1000):
            answers[n] = await hl.bulk_cmd(engine, user, target, hl.ContextData(), 0, 5,
                                           *[oid] * n)  # fmt: skip
    finally:
        engine.close_dispatcher()
    err, status, _, varbinds = answers[64]
    assert err is None and not status and len(varbinds) == 64
    for n in (65, 1000):
        err, status, _, varbinds = answers[n]
        assert err is None and str(status) == "tooBig" and not varbinds, (n, err, status)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    fields = device.agent.status_fields()["ntcip"]
    assert fields["bulk_refused"] == 2 and fields["requests"] >= 3
