"""NTCIP SETs checked whole (edge/ntcip/mib.py), and the agent's settings file.

Properties: a refused SET names its first bad varbind; an accepted SET's commands are
all accepted by the control core (the same checks the MQTT commands go through), on
the example site at any moment of its start-up and run."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from edge.config import load_config
from edge.control.controller import Controller
from edge.control.messages import NO_INPUTS, Hold, Inputs, Omit, SetPlan
from edge.ntcip import mib
from edge.ntcip.core import Status, status_of
from edge.ntcip.settings import SnmpConfigError, load_settings
from edge.tickhooks import Tick
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.hypothesis_profiles import examples
from tests.web.inproc import EXAMPLE

SITE = load_config(EXAMPLE).site
PREEMPTS = [p.id for p in SITE.preempts]


def controller_at(steps: int) -> tuple[Controller, int]:
    ctl = Controller(SITE)
    now = 0
    for _ in range(steps):
        now += 100
        ctl.step(now, NO_INPUTS)
    return ctl, now


def status(ctl: Controller) -> Status:
    driver = SimpleNamespace(
        controller=ctl, outputs=ctl.step(ctl.last_now, NO_INPUTS), stepped=None
    )
    return status_of(Tick.of(0, 0.0, driver), SITE)  # type: ignore[arg-type]


varbind = st.one_of(
    st.tuples(st.sampled_from(list(mib.CONTROL_NAMES)), st.integers(1, 2), st.integers(0, 256)).map(
        lambda t: ((*mib.PHASE_CONTROL, t[0], t[1]), t[2])
    ),
    st.tuples(st.sampled_from([*PREEMPTS, 99]), st.integers(0, 2)).map(
        lambda t: ((*mib.PREEMPT_CONTROL, 2, t[0]), t[1])
    ),
    st.sampled_from([0, 1, 2, len(SITE.plans), len(SITE.plans) + 1, 254, 255, 300]).map(
        lambda v: (mib.SYSTEM_PATTERN_CONTROL, v)
    ),
    st.integers(0, 2).map(lambda v: (mib.UNIT_CONTROL, v)),
    st.sampled_from([-1, 0, 5, 65535, 70000]).map(lambda v: (mib.UNIT_BACKUP_TIME, v)),
    st.just(((*mib.PHASE_STATUS, 2, 1), 0)),
    st.just((mib.SYSTEM_PATTERN_CONTROL, "one")),
)


def plan(ctl: Controller, varbinds: list[tuple[Any, Any]]) -> tuple[mib.Remote, list[object]]:
    return mib.plan_set(SITE, status(ctl), mib.Remote(), varbinds, SITE.default_plan)


@settings(max_examples=examples(60))
@given(st.integers(0, 400), st.lists(varbind, min_size=1, max_size=5))
@example(0, [((*mib.PREEMPT_CONTROL, 2, PREEMPTS[0]), 1)])  # preempt during start-up flash
@example(300, [((*mib.PHASE_CONTROL, mib.FORCE_OFF, 1), 255)])  # force-off of the greens
def test_a_set_is_refused_at_its_first_bad_varbind_or_the_core_takes_all_of_it(
    steps: int, varbinds: list[tuple[Any, Any]]
) -> None:
    ctl, now = controller_at(steps)
    try:
        _, commands = plan(ctl, varbinds)
    except mib.SetRefused as exc:
        plan(ctl, varbinds[: exc.index])  # everything before it passes
        with pytest.raises(mib.SetRefused):
            plan(ctl, [varbinds[exc.index]])  # and it fails on its own
        return
    out = ctl.step(now + 100, Inputs(commands=tuple(commands)))
    rejected = [e for e in out.events if e.name == "command_rejected"]
    assert not rejected, rejected


@given(st.integers(1, 4), st.sets(st.integers(1, 40)))
def test_masks_hold_the_numbers_of_their_group(group: int, numbers: set[int]) -> None:
    m = mib.mask(numbers, group)
    assert 0 <= m <= 255
    assert set(mib.members(m, group)) == {n for n in numbers if 8 * group - 7 <= n <= 8 * group}


def test_hold_is_set_as_a_whole_and_the_backup_timer_releases_remote_control() -> None:
    ctl, _ = controller_at(300)
    remote, cmds = plan(ctl, [((*mib.PHASE_CONTROL, mib.HOLD, 1), mib.mask([2, 6], 1))])
    assert cmds == [Hold(None), Hold((2, 6))] and remote.active
    remote, cmds = mib.plan_set(
        SITE, status(ctl), remote,
        [((*mib.PHASE_CONTROL, mib.OMIT, 1), mib.mask([4], 1)), (mib.SYSTEM_PATTERN_CONTROL, 2)],
        SITE.default_plan,
    )  # fmt: skip
    assert Omit(4, on=True) in cmds and SetPlan(list(SITE.plans)[1]) in cmds
    released, cmds = mib.release(SITE, remote, SITE.default_plan)
    assert released.lapsed and not released.active
    assert cmds == [Omit(4, on=False), Hold(None), SetPlan(SITE.default_plan)]


def write(path: Path, users: object, mode: int = 0o600) -> None:
    path.write_text(json.dumps(users))
    path.chmod(mode)


def test_settings_come_from_device_toml_and_a_private_users_file(tmp_path: Path) -> None:
    device = tmp_path / "device.toml"
    device.write_text('[device]\nid = "x"\n')
    assert load_settings(device) is None
    device.write_text('[snmp]\nport = 1161\nusers = "snmp.json"\n')
    users = tmp_path / "snmp.json"
    write(users, {"users": {"central": {"auth": "auth-key-1", "priv": "priv-key-1"}}})
    s = load_settings(device)
    assert s is not None and s.port == 1161 and not s.sets and s.backup_s == 60
    assert [u.name for u in s.users] == ["central"] and "auth-key" not in repr(s)
    for bad_users, mode, why in (
        ({"users": {"central": {"auth": "auth-key-1", "priv": "priv-key-1"}}}, 0o644, "mode 644"),
        ({"users": {"central": {"auth": "short", "priv": "priv-key-1"}}}, 0o600, "at least 8"),
        ({"users": {"Central!": {"auth": "auth-key-1", "priv": "priv-key-1"}}}, 0o600, "name"),
        ({"users": {"central": {"auth": "auth-key-1"}}}, 0o600, "auth and priv"),
    ):
        write(users, bad_users, mode)
        with pytest.raises(SnmpConfigError, match=why) as err:
            load_settings(device)
        assert str(users) in str(err.value)
    device.write_text('[snmp]\nusers = "snmp.json"\nsets = "yes"\n')
    with pytest.raises(SnmpConfigError, match=r"\[snmp\]: sets must be true or false"):
        load_settings(device)


def test_snmp_port_without_users_is_a_setup_error(tmp_path: Path) -> None:
    from edge.assemble import SetupError, edge_run_extensions

    config = load_config(EXAMPLE)
    with pytest.raises(SetupError, match=r"--snmp needs the device file's \[snmp\] table"):
        edge_run_extensions(config, None, env={}, snmp_port=1161)
    device = tmp_path / "device.toml"
    device.write_text('[snmp]\nusers = "missing.json"\n')
    with pytest.raises(SetupError, match=r"missing\.json: cannot read the SNMP users"):
        edge_run_extensions(config, str(device), env={})


def test_a_set_of_more_varbinds_than_the_agent_takes_is_refused_whole() -> None:
    # 1000 VehCall varbinds asked 8000 PlaceCalls of one step (45 ms; 2700 took 290 ms):
    # a SET is capped so no SET can hold up the control tick.
    ctl, _ = controller_at(300)
    call = ((*mib.PHASE_CONTROL, mib.VEH_CALL, 1), 255)
    with pytest.raises(mib.SetRefused) as exc:
        plan(ctl, [call] * (mib.MAX_SET_VARBINDS + 1))
    assert exc.value.error == "tooBig" and exc.value.index == mib.MAX_SET_VARBINDS
    _, commands = plan(ctl, [call] * mib.MAX_SET_VARBINDS)
    assert len(commands) <= 8 * mib.MAX_SET_VARBINDS


def test_the_engine_id_is_the_device_s_and_boots_go_up_at_every_start(tmp_path: Path) -> None:
    from edge.ntcip.settings import BOOTS_FILE, engine_id, next_boots

    eid = engine_id("hz-0412")
    # RFC 3411: the first bit set, the enterprise number, format 128 and up: its own
    assert eid[:5] == bytes([0x80, 0x00, 0x04, 0xB6, 128]) and 5 <= len(eid) <= 32
    assert eid == engine_id("hz-0412") != engine_id("hz-0413")
    (tmp_path / "etc").mkdir()
    device = tmp_path / "etc/device.toml"
    device.write_text(
        '[device]\nid = "hz-0412"\nstore = "../var/edge.db"\n\n[snmp]\nusers = "snmp.json"\n'
    )
    write(tmp_path / "etc/snmp.json", {"users": {"central": {"auth": "a" * 8, "priv": "p" * 8}}})
    s = load_settings(device)
    assert s is not None and s.engine_id == eid
    assert s.boots_file is not None and s.boots_file.resolve() == tmp_path / "var" / BOOTS_FILE
    (tmp_path / "var").mkdir()
    assert [next_boots(s.boots_file) for _ in range(3)] == [1, 2, 3]
    assert s.boots_file.read_text() == "3\n"
    s.boots_file.write_text("many\n")
    with pytest.raises(SnmpConfigError, match=f"{BOOTS_FILE}: cannot read snmpEngineBoots"):
        next_boots(s.boots_file)
