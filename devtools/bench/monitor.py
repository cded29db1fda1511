"""`edge bench monitor`: the board's field monitor, on a simulated clock.

The real host (BoardDriver: controller, session, guard) and the real firmware
core (hw.board.Board with its field monitor) run in one process, joined by a
serial line with bit errors (sim/virtual_board.BitErrors) and a simulated
street (sim/field.Field, 10 ms sense latency). Time is an integer advanced
loop pass by loop pass, so 24 hours take minutes, not days.

- Faults: for each kind, `trials` runs that start the site (random traffic on
  its detectors), let it run a random 5..60 s, inject the field fault on a
  channel in the state that shows it, and time from the fault's onset on the
  street to the board's flash (the relay drop). Board loop passes last a
  random 1..FAULT_LOOP_MS ms.
- False trips: `hours` of normal operation with BER 1e-3 on both directions,
  the board loop every NORMAL_LOOP_MS; every flash the monitor or the
  board's map rules raise is a false trip. Watchdog flashes (a run of lost
  frames, the host-silence rule doing its job) are counted apart and
  recovered by the host's policy.
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path
from typing import Any

from edge.board.driver import TICK_MS, BoardDriver
from edge.config import load_site
from edge.control.site import Site
from sim.field import COLOURS, Field, FieldFault
from sim.virtual_board import BitErrors

from hw import board, codec

SITE = Path(__file__).resolve().parents[2] / "examples" / "t_junction.toml"
FAULT_LOOP_MS = 5
NORMAL_LOOP_MS = 50
LATENCY_MS = 10
BER = 1e-3

EXPECTED = {
    "conflict": codec.FAULT_FIELD_CONFLICT,
    "red_fail": codec.FAULT_RED_FAIL,
    "dual_indication": codec.FAULT_DUAL_INDICATION,
    "short_clearance": codec.FAULT_FIELD_CLEARANCE,
    "mismatch": codec.FAULT_MISMATCH,
}
_ACTIVE = (codec.GREEN, codec.YELLOW, codec.FLASH_YELLOW)


class Sim:
    """Host and board on one simulated clock."""

    def __init__(
        self,
        site: Site,
        seed: int,
        ber: float = 0.0,
        loop_ms: int = FAULT_LOOP_MS,
        jitter: bool = True,
    ):
        self.now = 1_000_000
        self.loop_ms = loop_ms
        self.jitter = jitter  # loop passes of 1..loop_ms ms, as a busy board's vary
        self._next_tick = self.now
        rng = random.Random(seed)
        self.driver = BoardDriver(site, self.now, max_recoveries_per_hour=1000)
        self.board = board.Board(self.now)
        self.field = Field(LATENCY_MS)
        self.down = BitErrors(ber, random.Random(rng.random())) if ber else None
        self.up = BitErrors(ber, random.Random(rng.random())) if ber else None
        self.field.drive(self.now, bytes(32), 0, False)
        self.board.run_self_test(self.now, self.field.sense(self.now + 100), 0xA5)
        self.driver.connect(self.now)
        self._to_board(self.driver.data_to_send())
        self.flashes: list[tuple[int, int]] = []  # (t, fault)
        self._was_flash = False
        # Traffic: each detector input sees a vehicle (400 ms of presence) every 12 s on
        # average, so every phase is called and the lamps keep changing.
        self._rng = rng
        self._inputs = sorted({d.input for d in site.detectors})
        self._next = {i: self.now + int(rng.expovariate(1 / 12_000)) for i in self._inputs}
        self._off = dict.fromkeys(self._inputs, 0)
        self._raw = 0

    def _to_board(self, data: bytes) -> None:
        if not data:
            return
        if self.down is not None:
            data = self.down.apply(data)
        reply = self.board.receive(self.now, data)
        if reply:
            if self.up is not None:
                reply = self.up.apply(reply)
            self.driver.receive(self.now, reply)
            self._to_board(self.driver.data_to_send())

    def step(self) -> None:
        """One board loop pass (and the host's tick when due)."""
        self.now += self._rng.randint(1, self.loop_ms) if self.jitter else self.loop_ms
        now = self.now
        if now >= self._next_tick:
            self._next_tick += TICK_MS
            self.driver.tick(now)
            self._to_board(self.driver.data_to_send())
        b = self.board
        b.tick(now)
        for i in self._inputs:
            bit = 1 << (i - 1)
            if now >= self._next[i]:
                self._raw |= bit
                self._off[i] = now + 400
                self._next[i] = now + 400 + int(self._rng.expovariate(1 / 12_000))
            elif self._raw & bit and now >= self._off[i]:
                self._raw &= ~bit
        b.sample_inputs(now, self._raw)
        s = b.safety
        flash_on = board.flash_phase(now)
        self.field.drive(now, s.driven, s.channels, flash_on)
        b.sense(now, self.field.sense(now, s.kinds), flash_on)
        flash = s.state == codec.STATE_FLASH
        if flash and not self._was_flash:
            self.flashes.append((now, s.fault))
        self._was_flash = flash

    def run(self, ms: int) -> None:
        end = self.now + ms
        while self.now < end:
            self.step()

    def run_until_running(self, limit_ms: int = 60_000) -> None:
        end = self.now + limit_ms
        while self.board.safety.state != codec.STATE_RUNNING:
            if self.now > end:
                raise RuntimeError("bench: the board did not reach RUNNING")
            self.step()


def _pick(sim: Sim, kind: str, rng: random.Random) -> tuple[int, FieldFault] | None:
    """A channel whose state shows `kind`'s fault now, and the fault to inject."""
    s = sim.board.safety
    n = s.channels
    veh = [c for c in range(n) if s.kind(c) == codec.KIND_VEHICLE]
    if kind == "conflict":
        cands = [
            c
            for c in veh
            if s.driven[c] == codec.RED
            and any(
                s.driven[j] in (codec.GREEN, codec.FLASH_YELLOW)
                and s.pair_conflicts(c, 1, j, s.use_of(j))
                for j in s.neighbours(c)
            )
        ]
        fault = FieldFault("stuck_on", COLOURS["green"])
    elif kind == "red_fail":
        cands = [c for c in range(n) if s.driven[c] == codec.RED]
        fault = FieldFault("dead", COLOURS["all"])
    elif kind == "dual_indication":
        cands = [c for c in veh if s.driven[c] == codec.GREEN]
        fault = FieldFault("dual", 0)
    elif kind == "short_clearance":
        cands = [c for c in veh if s.driven[c] == codec.GREEN]
        fault = FieldFault("short", 0)
    else:
        cands = [c for c in veh if s.driven[c] == codec.GREEN]
        fault = FieldFault("frozen", 0)
    return (rng.choice(cands), fault) if cands else None


def fault_trial(site: Site, kind: str, seed: int) -> tuple[float, int] | None:
    """(detection-to-flash ms, fault raised) for one injection, or None if none was possible."""
    rng = random.Random(seed)
    sim = Sim(site, seed)
    sim.run_until_running()
    sim.run(rng.randrange(5_000, 60_000))
    for _ in range(4000):  # wait (up to 20 s) for a channel in the right state
        pick = _pick(sim, kind, rng)
        if pick is not None:
            break
        sim.step()
    else:
        return None
    ch, fault = pick
    sim.field.inject(ch, fault)
    onset: int | None = sim.now
    if kind in ("short_clearance", "mismatch"):
        onset = None  # from the channel's next change of lamps (its yellow)
        before = sim.board.safety.driven[ch]
    for _ in range(120_000 // FAULT_LOOP_MS):  # a green may run its max before its yellow
        sim.step()
        s = sim.board.safety
        if onset is None and s.driven[ch] != before:
            onset = sim.now
        if s.state == codec.STATE_FLASH:
            return float(sim.now - (onset if onset is not None else sim.now)), s.fault
    return None


def _pct(xs: list[float], p: float) -> float:
    ys = sorted(xs)
    return ys[min(len(ys) - 1, round(p / 100 * (len(ys) - 1)))]


def normal_run(site: Site, hours: float, seed: int = 1) -> dict[str, int]:
    """Hours of normal operation with BER on the line: false trips and watchdog flashes."""
    sim = Sim(site, seed, BER, NORMAL_LOOP_MS, jitter=False)
    sim.run_until_running()
    sim.flashes.clear()
    sim.run(int(hours * 3_600_000))
    watchdog = sum(1 for _, f in sim.flashes if f == codec.FAULT_WATCHDOG)
    return {"false_trips": len(sim.flashes) - watchdog, "watchdog_flashes": watchdog}


def bench(trials: int, hours: float, seed: int = 7) -> tuple[dict[str, Any], dict[str, Any]]:
    """The JSON object, and the extra figures for the table."""
    site = load_site(SITE)
    faults: dict[str, dict[str, float | int]] = {}
    wrong: dict[str, int] = {}
    for k, kind in enumerate(EXPECTED):
        times: list[float] = []
        wrong[kind] = 0
        for t in range(trials):
            r = fault_trial(site, kind, seed * 1000 + k * 100 + t)
            if r is None:
                continue
            ms, fault = r
            if fault != EXPECTED[kind]:
                wrong[kind] += 1
                continue
            times.append(ms)
        faults[kind] = {
            "n": len(times),
            "min_ms": min(times) if times else 0.0,
            "p50_ms": _pct(times, 50) if times else 0.0,
            "p99_ms": _pct(times, 99) if times else 0.0,
            "max_ms": max(times) if times else 0.0,
        }
    normal = normal_run(site, hours)
    result = {"faults": faults, "false_trips": normal["false_trips"], "hours_simulated": hours}
    return result, {"wrong_class": wrong, "watchdog_flashes": normal["watchdog_flashes"]}


def run_monitor_bench(json_out: bool, quick: bool, machine: str) -> int:
    trials, hours = (5, 1.0) if quick else (30, 24.0)
    quiet = logging.getLogger("edge")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # the host's board log lines, thousands of them
    try:
        result, extra = bench(trials, hours)
    finally:
        quiet.setLevel(level)
    if json_out:
        print(json.dumps(result))
        return 0
    print(
        f"edge bench monitor: {SITE.name}, board loop 1..{FAULT_LOOP_MS} ms, sense latency "
        f"{LATENCY_MS} ms, simulated clock ({machine})"
    )
    print(f"{'fault':<18}{'n':>4}{'min ms':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'other':>7}")
    for kind, f in result["faults"].items():
        print(
            f"{kind:<18}{f['n']:>4}{f['min_ms']:>9.0f}{f['p50_ms']:>9.0f}{f['p99_ms']:>9.0f}"
            f"{f['max_ms']:>9.0f}{extra['wrong_class'][kind]:>7}"
        )
    print(
        f"normal operation {hours:g} simulated h, BER {BER:g} both ways, board loop "
        f"{NORMAL_LOOP_MS} ms: false trips {result['false_trips']}, watchdog flashes "
        f"{extra['watchdog_flashes']} (lost frames; recovered by the host's policy)"
    )
    return 0
