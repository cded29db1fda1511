"""`edge bench board`: tick-to-lamp latency and sustained frame rate over a real pty.

The virtual board runs as its own process (`python -m sim.virtual_board
--frames`), the hw/ firmware behind a pseudo-terminal; this process is the
host, with the runtime's own serial transport (pyserial-asyncio-fast) and
session. Both stamp events with time.monotonic(), one clock for the whole
machine, so:

  latency = board's time when it drove the lamps of an OUTPUTS frame
            - host's time just before it wrote that frame

Two phases, with the board RUNNING and a real controller's maps:
- tick: one OUTPUTS every 100 ms, as the runtime sends them: latency p50/p99;
- flat out: the next OUTPUTS as soon as the previous STATUS is back:
  frames per second sustained (round trips), and the latency under that load.
On a real 115200-baud UART the line, not the software, limits the rate
(hw/PROTOCOL.md section 1); the pty has no baud rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict, deque
from pathlib import Path
from typing import Any

from edge.board.config import board_config
from edge.board.session import BoardSession, SessionState
from edge.board.transport import open_link
from edge.config import load_site
from edge.control.controller import Controller
from edge.control.messages import Inputs

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SITE = EXAMPLES / "four_leg_protected.toml"
TICK_S = 0.1
GOAL_P99_MS = 20.0


def _ms() -> int:
    return int(time.monotonic() * 1000)


def _state(session: BoardSession) -> SessionState:
    return session.state  # read fresh: callbacks change it between awaits


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))
    return s[k]


class _Board:
    """The virtual board process and its stream of JSON events."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.driven: dict[int, deque[float]] = defaultdict(deque)  # seq -> t_driven, in order
        self.ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            ev = json.loads(raw)
            if ev["event"] == "ready" and not self.ready.done():
                self.ready.set_result(str(ev["path"]))
            elif ev["event"] == "rx":
                self.driven[int(ev["seq"])].append(float(ev["t_driven"]))


async def _run(site_path: Path, tick_s: float, flat_s: float) -> dict[str, Any]:
    site = load_site(site_path)
    cfg = board_config(site)
    session = BoardSession(cfg)
    with tempfile.TemporaryDirectory(prefix="edge-bench-") as tmp:
        link_path = Path(tmp) / "ttyBOARD"
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "sim.virtual_board",
            "--link",
            str(link_path),
            "--frames",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        board = _Board(proc)
        reader = asyncio.create_task(board.read())
        try:
            await asyncio.wait_for(board.ready, 10)
            return await _measure(
                site, cfg.channels, session, str(link_path), board, tick_s, flat_s
            )
        finally:
            if proc.stdin is not None:
                proc.stdin.write(b"quit\n")
                with contextlib.suppress(ConnectionError):
                    await proc.stdin.drain()
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                proc.kill()
                await proc.wait()
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(reader, 2)


async def _measure(
    site: Any,
    channels: int,
    session: BoardSession,
    port: str,
    board: _Board,
    tick_s: float,
    flat_s: float,
) -> dict[str, Any]:
    writes: list[tuple[str, int, float]] = []  # (phase, seq, t_write)
    state: dict[str, Any] = {"flat": False, "answers": 0, "map": [1] * channels}
    link_box: list[Any] = []

    def send(phase: str) -> None:
        seq = session.next_seq
        session.send_outputs(_ms(), state["map"])
        data = session.data_to_send()
        t = time.monotonic()
        link_box[0].write(data)
        if session.state is SessionState.RUNNING:
            writes.append((phase, seq, t))

    def on_data(data: bytes) -> None:
        for ev in session.receive(_ms(), data):
            if type(ev).__name__ == "BoardStatus" and state["flat"]:
                state["answers"] += 1
                send("flat")
        out = session.data_to_send()
        if out and link_box:
            link_box[0].write(out)

    async with open_link(port, on_data) as link:
        link_box.append(link)
        session.connect(_ms())
        link.write(session.data_to_send())
        deadline = time.monotonic() + 5
        while _state(session) is not SessionState.READY:
            session.poll(_ms())
            link.write(session.data_to_send())
            if time.monotonic() > deadline:
                raise RuntimeError(f"board did not configure (state {session.state.value})")
            await asyncio.sleep(0.01)
        session.recover(_ms(), "bench")
        link.write(session.data_to_send())
        # A controller past its start-up flash: start-up all-red, then its cycle.
        grid0 = _ms()
        ctl = Controller(site, grid0 - site.startup_flash_ms)
        k = 0
        t_next = time.monotonic()
        t_end: float | None = None
        while t_end is None or time.monotonic() < t_end:
            out = ctl.step(grid0 + k * 100, Inputs())
            state["map"] = [int(c) for c in out.channels]
            session.poll(_ms())
            send("tick")
            if t_end is None and _state(session) is SessionState.RUNNING:
                t_end = time.monotonic() + tick_s
            k += 1
            t_next += TICK_S
            await asyncio.sleep(max(0.0, t_next - time.monotonic()))
            if t_end is None and k > 200:
                raise RuntimeError("board did not reach RUNNING")
        # Flat out: every STATUS triggers the next OUTPUTS (same map: the board keeps it).
        state["flat"] = True
        t_flat = time.monotonic()
        send("flat")
        await asyncio.sleep(flat_s)
        state["flat"] = False
        flat_elapsed = time.monotonic() - t_flat
        answers = state["answers"]
        await asyncio.sleep(0.3)  # the board process prints its events every 50 ms

    lat: dict[str, list[float]] = {"tick": [], "flat": []}
    for phase, seq, t_write in writes:
        q = board.driven.get(seq)
        while q and q[0] < t_write:
            q.popleft()  # an earlier frame with the same (wrapped) seq
        if q:
            lat[phase].append((q.popleft() - t_write) * 1000)
    tick, flat = lat["tick"], lat["flat"]
    return {
        "channels": channels,
        "frames": len(tick),
        "p50_ms": round(statistics.median(tick), 3) if tick else None,
        "p99_ms": round(_pct(tick, 99), 3),
        "max_ms": round(max(tick), 3) if tick else None,
        "fps": round(answers / flat_elapsed, 1),
        "flat_frames": len(flat),
        "flat_p50_ms": round(statistics.median(flat), 3) if flat else None,
        "flat_p99_ms": round(_pct(flat, 99), 3),
        "goal_p99_ms": GOAL_P99_MS,
    }


def run_board_bench(json_out: bool, quick: bool, machine: str) -> int:
    tick_s, flat_s = (3.0, 2.0) if quick else (20.0, 5.0)
    result = asyncio.run(_run(SITE, tick_s, flat_s))
    result = {"bench": "board", "machine": machine, "config": SITE.name, **result}
    if json_out:
        print(json.dumps(result))
        return 0
    print(
        f"edge bench board: host -> pty -> virtual board (hw/ firmware), {SITE.name}, "
        f"{result['channels']} channels ({machine})"
    )
    header = f"{'phase':<26}{'frames':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'frames/s':>10}"
    print(header)
    print("-" * len(header))
    print(
        f"{'tick (every 100 ms)':<26}{result['frames']:>8}{result['p50_ms']:>9}"
        f"{result['p99_ms']:>9}{result['max_ms']:>9}{'10':>10}"
    )
    print(
        f"{'flat out (ping-pong)':<26}{result['flat_frames']:>8}{result['flat_p50_ms']:>9}"
        f"{result['flat_p99_ms']:>9}{'':>9}{result['fps']:>10}"
    )
    ok = result["p99_ms"] is not None and result["p99_ms"] <= GOAL_P99_MS
    print(
        f"tick-to-lamp p99 {result['p99_ms']} ms: goal <= {GOAL_P99_MS} ms "
        f"{'met' if ok else 'NOT met'}"
    )
    return 0
