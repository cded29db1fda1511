"""Golden traces of the control core: seeded scripted runs and their outputs, serialised.

A run is a site and a seed. The script drives the core for RUN_MS of simulated
time with seeded vehicle and pedestrian demand (presence, board pulse counts,
a stuck loop, camera queue estimates) and a timeline of operator and central
commands: holds, force-offs, calls, omits, max 2, emergency preemption (with a
higher-priority request taking over), transit priority requests, plan changes
and new timing (LoadSite) into and out of a coordination pattern, control mode
overrides (free, adaptive, back to the plan), all red, flash, Automatic, bad
commands, late steps and a step with time running backwards.

Each step's outputs serialise to one line of compact JSON (`serialise`); the
test (test_golden.py) compares those lines with the recorded ones. Everything
here is deterministic: the only randomness is `random.Random(seed)`.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import lzma
import random
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.config import ConfigError, site_from_dict
from edge.control.controller import Controller
from edge.control.messages import (
    AllRed,
    Automatic,
    Flash,
    ForceOff,
    Hold,
    Inputs,
    LoadSite,
    Omit,
    Outputs,
    PlaceCall,
    Preempt,
    Recover,
    SetMode,
    SetPlan,
    TransitRequest,
    UseMax2,
)
from edge.control.site import Site

REPO = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent / "golden"
# The derived sites of the shipped SUMO scenarios, recorded once (see test_golden.py):
# the core's traces must not depend on SUMO or on how sites are derived.
DERIVED = GOLDEN / "sites"
RUN_MS = 600_000  # ten simulated minutes per run
SEEDS = (1, 2)

# Transit limits added by new timing to sites that have none (LoadSite may add them).
_TRANSIT = {"max_share": 0.15, "max_extension_s": 10.0, "max_early_s": 12.0, "cycle_s": 90.0}


@dataclass(frozen=True)
class Run:
    name: str  # e.g. "four_leg_protected-s1"
    path: Path  # the site TOML
    seed: int


def runs() -> list[Run]:
    sites = sorted((REPO / "examples").glob("*.toml")) + sorted(DERIVED.glob("*.toml"))
    return [Run(f"{p.stem}-s{seed}", p, seed) for p in sites for seed in SEEDS]


def _canonical(text: str) -> str:
    """`text` with the items of every `frozenset({...})` in sorted order.

    An event may carry a command's repr (LoadSite: the whole Site), and a frozenset
    of enums prints in an order that changes with the interpreter's hash seed.
    """
    out: list[str] = []
    i = 0
    while (j := text.find("frozenset({", i)) >= 0:
        start = j + len("frozenset({")
        depth, k, items, item_at = 0, start, [], start
        while depth > 0 or text[k] != "}":
            c = text[k]
            if c in "([{":
                depth += 1
            elif c in ")]}":
                depth -= 1
            elif c == "," and depth == 0:
                items.append(text[item_at:k].strip())
                item_at = k + 1
            k += 1
        items.append(text[item_at:k].strip())
        out.append(text[i:start] + ", ".join(sorted(_canonical(x) for x in items)))
        i = k
    out.append(text[i:])
    return "".join(out)


def serialise(out: Outputs) -> str:
    """One step's outputs as one deterministic line (every field of Outputs)."""

    def lamps(xs: tuple[int, ...]) -> str:
        return "".join(str(int(x)) for x in xs)

    return json.dumps(
        [
            out.t_ms,
            out.mode,
            lamps(out.channels),
            lamps(out.phases),
            lamps(out.peds),
            lamps(out.overlaps),
            [[e.t_ms, e.name, e.subject, _canonical(e.detail)] for e in out.events],
            out.fault,
            [[s.phase, int(s.lamp), s.min_end_ms, s.max_end_ms, s.likely_end_ms] for s in out.spat],
            out.control,
            out.control_reason,
            list(out.detector_faults),
        ],
        separators=(",", ":"),
        ensure_ascii=True,
    )


def _new_timing(raw: dict[str, Any], site: Site, rng: random.Random) -> tuple[Site, bool]:
    """New timing for the same intersection, and whether its plan "coord" is coordinated.

    It adds transit limits where there are none, detector diagnostics (max presence
    on every loop, no activity on the first loop), and a coordination pattern when
    the phasing allows one (every ring in every barrier group).
    """
    new = copy.deepcopy(raw)
    new.setdefault("transit", dict(_TRANSIT))
    loops = [d for d in new.get("detectors", []) if not d.get("ped", False)]
    for d in loops:
        d["max_presence_s"] = 60.0
    if loops:
        loops[0]["no_activity_s"] = 300.0
    new["plans"]["coord"] = copy.deepcopy(raw["plans"][site.default_plan])
    free = site_from_dict(new)
    pattern = _pattern(site, rng)
    if pattern is None:
        return free, False
    new.setdefault("patterns", {})["golden"] = pattern
    new["plans"]["coord"]["pattern"] = "golden"
    try:
        return site_from_dict(new), True
    except ConfigError:
        return free, False


def _pattern(site: Site, rng: random.Random) -> dict[str, Any] | None:
    plan = site.plans[site.default_plan]
    rings = sorted({p.ring for p in site.phases})
    groups = sorted({p.group for p in site.phases})
    need: dict[int, int] = {}
    for p in site.phases:
        t = plan.timings[p.id]
        ped = t.walk_ms + t.ped_clear_ms if p.ped_crossing else 0
        need[p.id] = -(-(max(t.min_green_ms, ped) + t.yellow_ms + t.red_clear_ms + 4000) // 1000)
    splits: dict[int, int] = {}
    coord: list[int] = []
    for g in groups:
        members = {r: [p.id for p in site.phases if p.ring == r and p.group == g] for r in rings}
        if any(not m for m in members.values()):
            return None
        length = max(sum(need[i] for i in m) for m in members.values())
        for m in members.values():
            for i in m:
                splits[i] = need[i]
            splits[m[-1]] += length - sum(need[i] for i in m)
            if g == groups[0]:
                coord.append(m[-1])
    cycle = sum(splits[p.id] for p in site.phases if p.ring == rings[0])
    return {
        "cycle_s": cycle,
        "offset_s": rng.randrange(cycle),
        "coord_phases": coord,
        "splits": {str(i): s for i, s in splits.items()},
        "force_off": rng.choice(["fixed", "floating"]),
        "transition": rng.choice(["best", "shortway", "longway", "dwell"]),
    }


def _demand(site: Site, rng: random.Random) -> Iterator[tuple[frozenset[int], tuple[Any, ...]]]:
    """Per 100 ms: the detectors occupied and the board's pulse counts.

    The first loop is dead until 450 s (no activity, once new timing checks it);
    another is stuck on from 250 s to 450 s (max presence).
    """
    veh = [d.id for d in site.detectors if not d.ped]
    ped = [d.id for d in site.detectors if d.ped]
    rate = {d: rng.uniform(0.005, 0.06) for d in veh}
    left = dict.fromkeys(veh + ped, 0)
    dead = veh[0] if veh else None
    stuck = rng.choice(veh[1:]) if len(veh) > 1 else None
    step = 0
    while True:
        pulses: list[tuple[int, int]] = []
        for d in veh:
            if left[d] > 0:
                left[d] -= 1
            elif rng.random() < rate[d] and (d != dead or step >= 4500):
                left[d] = rng.randint(2, 12)
            if rng.random() < 0.002 and d != dead:
                pulses.append((d, rng.randint(1, 3)))
        for d in ped:
            if left[d] > 0:
                left[d] -= 1
            elif rng.random() < 0.004:
                left[d] = rng.randint(1, 3)
        if stuck is not None and 2500 <= step < 4500:
            left[stuck] = max(left[stuck], 1)
        step += 1
        yield frozenset(d for d, n in left.items() if n > 0), tuple(pulses)


def _script(site: Site, raw: dict[str, Any], rng: random.Random) -> dict[int, list[object]]:
    """The command timeline, by step time (ms); times are jittered by the seed."""
    ids = [p.id for p in site.phases]
    ped_ids = [p.id for p in site.phases if p.ped_crossing] or ids
    cmds: dict[int, list[object]] = {}

    def at(s: float, *items: object) -> None:
        t = int((s + rng.uniform(-2, 2)) * 10) * 100
        cmds.setdefault(t, []).extend(items)

    timing, coordinated = _new_timing(raw, site, rng)
    # A Site built without edge.config's checks, whose plan lacks timings: the core's
    # internal error latches fault flash (rule 5); Recover restarts it on good timing.
    plan = site.plans[site.default_plan]
    broken = dataclasses.replace(
        site, plans={**site.plans, "broken": dataclasses.replace(plan, id="broken", timings={})}
    )
    if rng.random() < 0.5:
        at(3, SetMode("adaptive", "local"))  # as `edge sim`'s edge-adaptive does
    at(6, PlaceCall(999), "not a command", Recover(), Hold((ids[0], 999)))
    h = rng.choice(ids)
    at(40, Hold((h,)))
    at(55, Hold(None))
    at(60, ForceOff(rng.choice(ids)))
    at(64, ForceOff(rng.choice(ids)))
    at(70, PlaceCall(rng.choice(ids)), PlaceCall(rng.choice(ped_ids), ped=True))
    o = rng.choice(ids)
    at(75, Omit(o))
    at(100, Omit(o, on=False))
    at(110, UseMax2(True))
    at(200, UseMax2(False))
    pre = sorted(site.preempts, key=lambda p: -p.priority)
    if pre:
        first = rng.choice(pre)
        at(120, Preempt(first.id))
        better = [p for p in pre if p.priority < first.priority]
        if better:
            b = rng.choice(better)
            at(127, Preempt(b.id))
            at(140, Preempt(b.id, on=False))
        at(150, Preempt(first.id, on=False))
    else:
        at(120, Preempt(1))  # rejected: no such preempt
    approaches = [a.id for a in site.approaches]
    at(170, TransitRequest(rng.choice(approaches)))
    at(185, TransitRequest(approaches[0], on=False))
    a2 = rng.choice(approaches)
    at(230, TransitRequest(a2))
    at(245, TransitRequest(a2, on=False))
    if "peak" in site.plans:
        at(250, SetPlan("peak"))
    at(260, LoadSite(timing, "coord"))
    if coordinated:
        a3 = rng.choice(approaches)
        at(300, TransitRequest(a3))
        at(320, TransitRequest(a3, on=False))
    at(330, SetMode("free", "central"))
    at(360, SetMode("plan"))
    at(380, SetMode("adaptive", "central"), SetMode("coordinated"))
    if pre:
        p2 = rng.choice(pre)
        at(400, Preempt(p2.id))
        at(418, Preempt(p2.id, on=False))
    # Requests at random times too, to meet walks, clearances and transitions.
    for _ in range(4):
        t0 = rng.uniform(20, 440)
        if pre:
            p3 = rng.choice(pre).id
            at(t0, Preempt(p3))
            at(t0 + rng.uniform(3, 40), Preempt(p3, on=False))
        a4 = rng.choice(approaches)
        t1 = rng.uniform(20, 440)
        at(t1, TransitRequest(a4))
        at(t1 + rng.uniform(5, 60), TransitRequest(a4, on=False))
    at(430, SetMode("plan", "central"))
    at(450, AllRed())
    if pre:
        at(455, Preempt(pre[0].id))  # rejected: held in all red
    at(470, AllRed(on=False))
    at(490, Flash())
    at(510, Flash(on=False))
    at(520, LoadSite(broken, "broken"))
    at(530, Hold((rng.choice(ids),)), Omit(rng.choice(ids)), Flash(), AllRed())
    at(533, Automatic())
    at(540, LoadSite(site, site.default_plan))
    at(545, Recover())
    at(550, SetPlan("no such plan"), SetMode("nonsense"), Preempt(1, on="yes"))  # type: ignore[arg-type]
    return cmds


def drive(run: Run) -> Iterator[str]:
    """The run's serialised outputs, one line per step."""
    raw = tomllib.loads(run.path.read_text(encoding="utf-8"))
    site = site_from_dict(raw, str(run.path))
    rng = random.Random(f"{run.path.name}/{run.seed}")
    script = _script(site, raw, rng)
    demand = _demand(site, rng)
    ctl = Controller(site)
    now = 0
    backwards_at = int(rng.uniform(550, 590)) * 1000
    zone_ids = [d.id for d in site.detectors if not d.ped]
    while now < RUN_MS:
        occupied, pulses = next(demand)
        due = [t for t in script if t <= now]
        cmds = tuple(c for t in sorted(due) for c in script.pop(t))
        queues: tuple[Any, ...] = ()
        if zone_ids and rng.random() < 0.02:
            queues = ((rng.choice(zone_ids), round(rng.uniform(0, 12), 1)),)
            if rng.random() < 0.1:
                queues += ((99_999, 1.0),)  # unknown zone: reported
        yield serialise(ctl.step(now, Inputs(occupied, pulses, cmds, queues)))
        if now >= backwards_at:
            backwards_at = RUN_MS
            yield serialise(ctl.step(now - 700, Inputs(commands=(Hold(None),))))
        # Mostly 100 ms steps; some late ones (a loaded Pi), some early.
        r = rng.random()
        now += 100 if r < 0.93 else rng.choice((30, 250, 700, 1900))


FIELDS = (
    "t_ms",
    "mode",
    "channels",
    "phases",
    "peds",
    "overlaps",
    "events",
    "fault",
    "spat",
    "control",
    "control_reason",
    "detector_faults",
)


def trace_path(run: Run) -> Path:
    return GOLDEN / f"{run.name}.trace.xz"


def write(run: Run, lines: list[str]) -> None:
    text = "".join(line + "\n" for line in lines).encode("ascii")
    # preset 9 and no timestamps: the same trace gives the same bytes.
    trace_path(run).write_bytes(lzma.compress(text, preset=9))


def read(run: Run) -> list[str]:
    return lzma.decompress(trace_path(run).read_bytes()).decode("ascii").splitlines()


def first_difference(recorded: list[str], now: list[str]) -> str | None:
    """Where two traces first differ, and in what fields; None when identical."""
    for k, (old, new) in enumerate(zip(recorded, now, strict=False)):
        if old != new:
            a, b = json.loads(old), json.loads(new)
            what = [
                f"  {name}: recorded {_short(x)}\n  {' ' * len(name)}  now      {_short(y)}"
                for name, x, y in zip(FIELDS, a, b, strict=True)
                if x != y
            ]
            return f"step {k} (t = {a[0]} ms) differs:\n" + "\n".join(what)
    if len(recorded) != len(now):
        return f"{len(now)} steps now, {len(recorded)} recorded (identical up to the shorter)"
    return None


def _short(value: object, limit: int = 600) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


def derive_sites() -> None:
    """Record the derived sites of the shipped SUMO scenarios (needs SUMO's netconvert).

    Signals whose derived sites differ only in their id are recorded once.
    """
    from sim.sumo.conflicts import link_paths
    from sim.sumo.derive import derive
    from sim.sumo.network import read_net, signal_ids, signal_junction
    from sim.sumo.scenarios import names, resolve
    from sim.sumo.site_toml import derivation_toml

    DERIVED.mkdir(parents=True, exist_ok=True)
    seen: list[Site] = []
    for name in names():
        if name.startswith("hangzhou"):
            continue  # not shipped: the data may not be redistributed
        net = read_net(resolve(name).net)
        geometry = link_paths(resolve(name).net)  # the intergreens' conflict points
        for tls in signal_ids(net):
            d = derive(signal_junction(net, tls, geometry.get(tls)))
            key = dataclasses.replace(d.site, id="", name="")
            if key in seen:
                continue
            seen.append(key)
            path = DERIVED / f"{name}-{tls}.toml"
            path.write_text(derivation_toml(d, f"sim/scenarios/{name}"), encoding="utf-8")
            print(path)


if __name__ == "__main__":
    derive_sites()
