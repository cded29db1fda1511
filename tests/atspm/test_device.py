"""The `hires-log` extension on a real Runtime (no board: the test steps its controller),
read by the page's MaxTime route and by `edge atspm export`; its loss reports."""

from __future__ import annotations

import asyncio
import json
import xml.etree.ElementTree as ET
import zlib
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from edge.assemble import edge_run_extensions
from edge.atspm import device as device_mod
from edge.atspm.device import HiResLog, hires_path
from edge.atspm.formats import read_datz
from edge.atspm.indiana import LOG_LOSS, HiRes
from edge.atspm.store import HiResStore
from edge.atspm.web import wall
from edge.cli import main
from edge.config import load_config

from tests.web.inproc import EXAMPLE, Stepper, app_for, make_runtime, signed_in


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def until(cond: object, what: str, timeout_s: float = 10.0) -> None:
    """Wait for a condition the extension's task brings about (a flush), with a deadline."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while not cond():  # type: ignore[operator]
        if loop.time() > end:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        await asyncio.sleep(0.02)


@pytest.mark.anyio
async def test_the_log_is_stored_and_served_as_maxtime_serves_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(device_mod, "FLUSH_S", 0.05)
    rt = make_runtime()
    ext = rt.add(HiResLog(tmp_path / "hires.sqlite"))
    app, recorder = app_for(rt, None)
    stepper = Stepper(rt, recorder)
    task = asyncio.create_task(ext.run())
    await until(lambda: ext.store is not None, "the store is open")
    for _ in range(600):  # a minute: start-up flash, all red, greens
        stepper.step()
        ext.on_tick(rt.tick_snapshot())
    await until(lambda: not ext.pending, "the queued events are written")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://page", cookies=signed_in(app)
    ) as client:
        r = await client.get("/v1/asclog/xml/full")
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml")
        events = list(ET.fromstring(r.text).iter("Event"))
        codes = {int(e.attrib["EventTypeID"]) for e in events}
        assert {1, 8, 10, 173} <= codes
        # since, as ATSPM sends it: the events from then on
        mid = datetime.fromisoformat(events[len(events) // 2].attrib["TimeStamp"])
        r = await client.get("/v1/asclog/xml/full", params={"since": f"{mid:%m-%d-%Y %H:%M:%S}.0"})
        later = list(ET.fromstring(r.text).iter("Event"))
        assert 0 < len(later) < len(events)
        assert all(datetime.fromisoformat(e.attrib["TimeStamp"]) >= mid for e in later)
        r = await client.get("/v1/asclog/xml/full", params={"since": "yesterday"})
        assert r.status_code == 422 and "since='yesterday'" in r.json()["error"]
        r = await client.get("/v1/asclog/xml/full", params={"since": "0001-01-01T00:00+01:00"})
        assert r.status_code == 422 and "since=" in r.json()["error"]
    status = rt.status()["hires_log"]
    assert status["bytes"] > 0 and status["lost"] == 0 and status["dropped"] == 0
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # the device clock: wall UTC, within the test's minute of now
    first = HiResStore(tmp_path / "hires.sqlite").since(0)[0]
    assert abs(wall(first.t_ms) - datetime.utcnow()) < timedelta(minutes=5)


@pytest.mark.anyio
async def test_without_the_log_the_route_says_so() -> None:
    app, _ = app_for(make_runtime(), None)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://page", cookies=signed_in(app)
    ) as client:
        r = await client.get("/v1/asclog/xml/full")
    assert r.status_code == 404 and "no hi-res event log" in r.json()["error"]


def test_dropped_ticks_and_refused_writes_are_reported(tmp_path: Path) -> None:
    rt = make_runtime()
    ext = rt.add(HiResLog(tmp_path / "hires.sqlite"))
    ext.store = HiResStore(tmp_path / "hires.sqlite")
    ext.ticks_dropped(12)
    loss = ext._take()
    assert [e.code for e in loss] == [LOG_LOSS] and loss[0].param == 12
    ext._write(loss)
    # the store refuses: the events are held, then written with the next write
    ext.store.close()
    ext.store = HiResStore(tmp_path / "hires.sqlite")
    ext.store._db.execute(
        "CREATE TRIGGER no BEFORE INSERT ON hires BEGIN SELECT RAISE(ABORT, 'full'); END"
    )
    held = [HiRes(loss[0].t_ms + 100, 82, 3)]
    ext._write(list(held))
    assert ext.failing and ext.held == held
    ext.store._db.execute("DROP TRIGGER no")
    ext._write(ext._take())
    assert not ext.failing
    assert ext.store.since(0) == loss + held
    assert rt.status()["hires_log"]["dropped_ticks"] == 12


def test_a_device_with_a_store_keeps_the_log_and_exports_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "device.toml").write_text('[device]\nid = "d1"\nstore = "edge.sqlite"\n')
    exts = edge_run_extensions(load_config(EXAMPLE), str(tmp_path / "device.toml"), env={})
    logs = [e for e in exts if isinstance(e, HiResLog)]
    assert [e.path for e in logs] == [hires_path(tmp_path / "edge.sqlite")]
    t0 = 1_767_600_000_000  # 2026-01-05 08:00 UTC
    store = HiResStore(logs[0].path)
    store.append([HiRes(t0, 1, 2), HiRes(t0 + 100, 82, 5), HiRes(t0 + 900_000, 8, 2)])
    store.close()
    device = ["--device", str(tmp_path / "device.toml")]
    assert main(["atspm", "export", "--since", "2026-01-05T08:00", "--format", "csv", *device]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == [
        "2026-01-05 08:00:00.0,edge,1,2",
        "2026-01-05 08:00:00.1,edge,82,5",
        "2026-01-05 08:15:00.0,edge,8,2",
    ]
    out = tmp_path / "datz"
    args = ["atspm", "export", "--since", "01-05-2026 08:00:00.1", "--format", "datz"]
    assert main([*args, "-o", str(out), *device]) == 0
    files = sorted(out.glob("*.datZ"))
    assert [f.name for f in files] == ["edge_2026_01_05_0800.datZ", "edge_2026_01_05_0815.datZ"]
    assert [len(read_datz(f.read_bytes())[1]) for f in files] == [1, 1]
    assert zlib.decompress(files[0].read_bytes())[:20] == b"01/05/2026 08:00:00 "
    assert main(["atspm", "export", "--since", "2026-01-05T08:00", *device]) == 0
    assert capsys.readouterr().out.count("<Event ") == 3
    assert main(["atspm", "export", "--since", "soon", *device]) == 1
    assert main(["atspm", "export", "--since", "0001-01-01T00:00+01:00", *device]) == 1
    assert "since='soon'" in capsys.readouterr().err


class SpoolingLink:
    """The central link's view as the hi-res log sees it: its spool for the `hires` topic
    (the real one, edge/device/central.py, needs a broker: tests/device/test_central.py)."""

    def __init__(self) -> None:
        self.bodies: list[str] = []

    def link_status(self) -> dict[str, object]:
        return {"connected": True}

    def spool_hires(self, body: str) -> None:
        self.bodies.append(body)


def test_with_a_central_link_a_minute_at_a_time_goes_to_its_spool(tmp_path: Path) -> None:
    from edge.link.messages import with_seq

    from tests.link.schemas import check

    rt = make_runtime()
    link = SpoolingLink()
    rt.link = link
    ext = rt.add(HiResLog(tmp_path / "hires.sqlite"))
    ext.store = HiResStore(tmp_path / "hires.sqlite")
    t0 = 1_767_600_000_000
    for k in range(0, 90_000, 1000):  # 90 s of events, a write a second
        ext.outbox += [HiRes(t0 + k, 82, 1), HiRes(t0 + k + 500, 81, 1)]
        ext._send()
    assert len(link.bodies) == 1  # the first minute; the rest waits for its minute
    ext._send(force=True)  # at the task's end
    assert len(link.bodies) == 2 and not ext.outbox
    sent = []
    for seq, body in enumerate(link.bodies, 1):
        check("hires", with_seq("d1", seq, body))
        sent += [tuple(e) for e in json.loads(body)["events"]]
    assert sent == [
        (t0 + k + d, c, 1) for k in range(0, 90_000, 1000) for d, c in ((0, 82), (500, 81))
    ]


@pytest.mark.anyio
async def test_the_log_is_not_served_without_a_session() -> None:
    """Technician names and every vehicle's time stamps: a read behind a session (issue 20)."""
    app, _ = app_for(make_runtime(), None)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://page"
    ) as client:
        r = await client.get("/v1/asclog/xml/full")
    assert r.status_code == 401


def test_a_loss_is_logged_in_time_with_the_events_around_it(tmp_path: Path) -> None:
    # The hook reports dropped ticks before the next queued (older) tick; a loss stamped
    # with the wall clock then lay minutes from its neighbours (here the stepped runtime's
    # minute); a batch starting with it before older events failed to pack (struct.error,
    # not the sqlite3.Error _write keeps events for): that batch was lost, unreported.
    rt = make_runtime()
    _, recorder = app_for(rt, None)
    stepper = Stepper(rt, recorder)
    ext = rt.add(HiResLog(tmp_path / "hires.sqlite"))
    ext.store = HiResStore(tmp_path / "hires.sqlite")
    for _ in range(600):
        stepper.step()
        ext.on_tick(rt.tick_snapshot())
    ext.ticks_dropped(5)
    for _ in range(100):
        stepper.step()
        ext.on_tick(rt.tick_snapshot())
    events = ext._take()
    ext._write(events)
    stored = ext.store.since(0)
    assert stored == events and LOG_LOSS in [e.code for e in stored]
    times = [e.t_ms for e in stored]
    assert times == sorted(times)
