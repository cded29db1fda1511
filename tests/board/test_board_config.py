"""Board CONFIG derived from the site: masks, minimum times, refusals; controller vs board."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from edge.board.config import BoardConfig, BoardConfigError, board_config
from edge.board.inputs import InputMap
from edge.board.session import BoardStatus
from edge.cli import main as edge_main
from edge.config import load_site
from edge.control.controller import Controller
from edge.control.messages import Event, Lamp, Preempt
from edge.control.site import Channel, Detector, FlashColour, SignalKind
from edge.demand import RandomDemand
from hypothesis import given, settings
from hypothesis import strategies as st

from hw import board_safety, codec
from tests.board.fakelink import crossing
from tests.hypothesis_profiles import examples

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
EXAMPLES = sorted(EXAMPLES_DIR.glob("*.toml"))


def decoded(frame: bytes) -> dict[str, object]:
    msg = codec.decode_frame(frame)
    assert msg is not None
    body: dict[str, object] = msg[2]
    return body


def config_frame(c: BoardConfig) -> bytes:
    frame: bytes = codec.encode_config(
        0,
        list(c.conflicts),
        list(c.min_yellow_ms),
        list(c.min_red_ms),
        list(c.flash),
        list(c.kinds),
        c.watchdog_ms,
        list(c.fya_conflicts),
        list(c.intergreens),
    )
    return frame


def test_crossing_config() -> None:
    cfg = board_config(crossing())
    # ch1 phase 2 (E-W), ch2 phase 4 (N-S), ch3 the walk beside phase 2.
    assert cfg.conflicts == (0b010, 0b101, 0b010)
    assert cfg.min_yellow_ms == (3000, 3000, 3000)  # yellows; the walk's clearance
    assert cfg.min_red_ms == (1000, 1000, 1000)
    assert cfg.flash == (codec.FLASH_COLOUR_YELLOW, codec.FLASH_COLOUR_RED, codec.FLASH_COLOUR_DARK)
    assert cfg.kinds == (codec.KIND_VEHICLE, codec.KIND_VEHICLE, codec.KIND_PED)
    assert cfg.watchdog_ms == 500
    assert cfg.config_hash == codec.crc32(cfg.payload)


def test_minimums_are_the_site_floors_whatever_the_plans() -> None:
    """The CONFIG does not follow the plans: any timing the site's checks pass keeps it,
    so new timing (LoadSite, a plan bundle) never needs another CONFIG."""
    site = crossing()
    fast = site.plans["fast"]
    slow = dataclasses.replace(
        fast,
        id="slow",
        timings={
            pid: dataclasses.replace(t, yellow_ms=4500, red_clear_ms=2500, ped_clear_ms=6000)
            for pid, t in fast.timings.items()
        },
    )
    slow_site = dataclasses.replace(site, plans={"slow": slow}, default_plan="slow")
    cfg = board_config(slow_site)
    assert cfg == board_config(site)
    assert cfg.min_yellow_ms == (3000, 3000, 3000)  # yellow floor; pedestrian clearance 3 s
    assert cfg.min_red_ms == (1000, 1000, 1000)
    safer = dataclasses.replace(
        slow_site,
        safety=dataclasses.replace(site.safety, min_red_clear_ms=1500, min_yellow_ms=3500),
    )
    assert board_config(safer).min_red_ms == (1500, 1500, 1500)
    assert board_config(safer).min_yellow_ms == (3500, 3500, 3000)


def test_timing_below_the_config_is_refused_by_plan_and_channel() -> None:
    """edge.config keeps every plan at or above these floors; a Site built around it (or
    floors that drift apart) is refused here rather than flashed by the board."""
    site = crossing()
    fast = site.plans["fast"]
    short = dataclasses.replace(
        fast,
        timings={pid: dataclasses.replace(t, ped_clear_ms=2500) for pid, t in fast.timings.items()},
    )
    with pytest.raises(BoardConfigError) as info:
        board_config(dataclasses.replace(site, plans={"fast": short}))
    assert info.value.problems == [
        "plan fast: channel 3 (ped 2): change interval 2500 ms is below the IO board's "
        "minimum 3000 ms"
    ]


def test_two_channels_of_one_source_never_conflict() -> None:
    site = crossing()
    twin = Channel(id=4, kind=SignalKind.PHASE, source=4, flash=FlashColour.RED)
    cfg = board_config(dataclasses.replace(site, channels=(*site.channels, twin)))
    assert cfg.conflicts[1] & (1 << 3) == 0 and cfg.conflicts[3] & (1 << 1) == 0
    assert cfg.conflicts[3] == cfg.conflicts[1] | 0  # conflicts like its twin
    assert cfg.conflicts[0] & (1 << 3) and cfg.conflicts[2] & (1 << 3)


def test_detector_beyond_the_board_inputs_refused() -> None:
    site = crossing()
    extra = Detector(
        id=9,
        input=17,
        ped=False,
        calls=(2,),
        extends=(2,),
        delay_ms=0,
        carryover_ms=0,
        locking=True,
    )
    with pytest.raises(BoardConfigError, match="detector 9: input 17"):
        board_config(dataclasses.replace(site, detectors=(*site.detectors, extra)))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_examples_accepted_by_the_board(path: Path) -> None:
    cfg = board_config(load_site(path))
    n = cfg.channels
    for i in range(n):
        assert not cfg.conflicts[i] >> i & 1
        for j in range(n):
            assert (cfg.conflicts[i] >> j & 1) == (cfg.conflicts[j] >> i & 1)
    assert board_safety.check_config(decoded(config_frame(cfg))) == 0


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_board_accepts_everything_the_controller_does(path: Path) -> None:
    """30 simulated minutes of random traffic and preemptions: the board refuses no map."""
    site = load_site(path)
    cfg = board_config(site)
    safety = board_safety.BoardSafety(0)
    assert safety.configure(0, decoded(config_frame(cfg))) == 0
    ctl = Controller(site, 0)
    demand = RandomDemand(site, seed=5, veh_per_hour=700)
    out = None
    recovered = False
    preempts = [p.id for p in site.preempts]
    seen_events: list[Event] = []
    for now in range(0, 30 * 60_000, 100):
        inputs = demand.inputs(now, 100, out)
        if preempts and now % 90_000 in (40_000, 70_000):  # an emergency vehicle, 30 s
            pid = preempts[now // 90_000 % len(preempts)]
            inputs = dataclasses.replace(
                inputs, commands=(*inputs.commands, Preempt(pid, now % 90_000 == 40_000))
            )
        out = ctl.step(now, inputs)
        seen_events.extend(out.events)
        if not recovered and out.mode == "startup_all_red":
            assert safety.recover(now, cfg.config_hash) == 0
            recovered = True
        if recovered:
            fault = safety.outputs(now, [int(c) for c in out.channels])
            assert fault == codec.FAULT_NONE, (now, out.mode, out.channels)
    assert recovered and safety.state == codec.STATE_RUNNING
    if preempts:
        assert any(e.name.startswith("preempt") for e in seen_events), "no preemption ran"


def test_status_to_inputs() -> None:
    site = crossing()  # detectors 1, 2, 3 on inputs 1, 2, 3
    im = InputMap(site)
    counts = [0] * 16
    counts[1] = 2  # input 2
    counts[15] = 9  # input 16: no detector
    st = BoardStatus(0, 0, 1, 0, 0, 0, 0b101, tuple(counts), (1, 1, 1))
    im.add(st)
    im.add(dataclasses.replace(st, counts=tuple(1 if i == 1 else 0 for i in range(16))))
    inputs = im.take()
    assert inputs.occupied == frozenset({1, 3})
    assert inputs.actuations == ((2, 3),)
    assert im.take().actuations == ()
    assert im.take().occupied == frozenset({1, 3})  # presence stays until a STATUS changes it


@settings(max_examples=examples(100))
@given(
    st.lists(
        st.one_of(
            st.tuples(st.integers(0, 15), st.lists(st.integers(0, 3), min_size=16, max_size=16)),
            st.sampled_from(["take", "clear"]),
        ),
        max_size=40,
    )
)
def test_inputs_follow_every_status(ops: list[Any]) -> None:
    """Presence is the last STATUS's bits (none after a lost link), counts add up until taken."""
    site = crossing()  # detectors 1, 2, 3 on inputs 1, 2, 3
    im = InputMap(site)
    bits, counts = 0, [0] * 4
    for op in ops:
        if op == "clear":
            im.clear()
            bits, counts = 0, [0] * 4
        elif op == "take":
            got = im.take()
            assert got.occupied == frozenset(d for d in (1, 2, 3) if bits >> (d - 1) & 1)
            assert got.actuations == tuple((d, counts[d]) for d in (1, 2, 3) if counts[d])
            counts = [0] * 4
        else:
            bits = op[0]
            for d in (1, 2, 3):
                counts[d] += op[1][d - 1]
            im.add(BoardStatus(0, 0, 1, 0, 0, 0, bits, tuple(op[1]), (1, 1, 1)))


def test_preemption_cut_pedestrian_clearance_accepted() -> None:
    """A preempt arriving during a walk's clearance cuts it to the preempt's; the board agrees."""
    site = load_site(EXAMPLES_DIR / "four_leg_protected.toml")
    assert site.preempts, "the example must keep its preempts for this test"
    cfg = board_config(site)
    safety = board_safety.BoardSafety(0)
    assert safety.configure(0, decoded(config_frame(cfg))) == 0
    peds = [i for i, c in enumerate(site.channels) if c.kind is SignalKind.PED]
    ctl = Controller(site, 0)
    demand = RandomDemand(site, seed=5, veh_per_hour=700)
    out = None
    fired: tuple[int, int] | None = None  # (channel, clearance start)
    cut_ms = None
    for now in range(0, 20 * 60_000, 100):
        inputs = demand.inputs(now, 100, out)
        if out is not None and fired is None:
            for i in peds:
                if out.channels[i] == Lamp.FLASH_RED:
                    src = site.channels[i].source
                    p = next((p for p in site.preempts if src not in p.dwell_phases), None)
                    if p is not None:
                        inputs = dataclasses.replace(inputs, commands=(Preempt(p.id, True),))
                        fired = (i, now - 100)
                        break
        out = ctl.step(now, inputs)
        if out.mode == "startup_all_red" and safety.state == codec.STATE_FLASH:
            assert safety.recover(now, cfg.config_hash) == 0
        if safety.state != codec.STATE_FLASH:
            fault = safety.outputs(now, [int(c) for c in out.channels])
            assert fault == codec.FAULT_NONE, (now, out.channels)
        if fired is not None and out.channels[fired[0]] != Lamp.FLASH_RED:
            cut_ms = now - fired[1]
            break
    assert fired is not None and cut_ms is not None
    pid = int(site.channels[fired[0]].source)
    plan_clear = min(p.timings[pid].ped_clear_ms for p in site.plans.values())
    assert cut_ms < plan_clear  # the clearance really was cut short, and the board took it


def test_preempt_input_becomes_commands() -> None:
    site = load_site(EXAMPLES_DIR / "four_leg_protected.toml")
    wired = [p for p in site.preempts if p.input is not None]
    assert wired, "the example must keep a preempt wired to a board input"
    p = wired[0]
    assert p.input is not None
    bit = 1 << (p.input - 1)
    im = InputMap(site)
    st = BoardStatus(0, 0, 1, 0, 0, 0, 0, (0,) * 16, ())
    im.add(dataclasses.replace(st, inputs=bit))
    assert im.take().commands == (Preempt(p.id, True),)
    im.add(dataclasses.replace(st, inputs=bit))
    assert im.take().commands == ()  # a level, not an edge: nothing new
    im.add(st)
    assert im.take().commands == (Preempt(p.id, False),)
    im.add(dataclasses.replace(st, inputs=bit))
    im.clear()  # link lost: nothing says the vehicle is still there
    assert im.take().commands == (Preempt(p.id, True), Preempt(p.id, False))


# --- per-indication conflicts and pair intergreens (issue 19) --------------------------


def _running(cfg: BoardConfig) -> tuple[board_safety.BoardSafety, int]:
    s = board_safety.BoardSafety(0)
    assert s.configure(0, decoded(config_frame(cfg))) == 0
    assert s.recover(0, cfg.config_hash) == 0
    t = 0
    while s.state != codec.STATE_RUNNING:
        t += 100
        assert s.outputs(t, [codec.RED] * cfg.channels) == codec.FAULT_NONE
    return s, t


def test_green_arrow_with_the_opposing_through_is_refused_by_the_board() -> None:
    # t_junction: channel 1 is overlap B, the eastbound left: green arrow with its
    # protected phase 1, flashing yellow arrow while the opposing through (phase 2,
    # channel 2) runs. The site's table counts the arrow as yielding, so before the
    # per-indication masks the board let a green arrow run against the through.
    site = load_site(EXAMPLES_DIR / "t_junction.toml")
    cfg = board_config(site)
    R, G, FY = codec.RED, codec.GREEN, codec.FLASH_YELLOW
    s, t = _running(cfg)
    assert s.outputs(t + 100, [FY, G, R, R, R, R]) == codec.FAULT_NONE  # permissive: fine
    s, t = _running(cfg)
    assert s.outputs(t + 100, [G, G, R, R, R, R]) == codec.FAULT_CONFLICT
    assert s.fault_channels == 0b11


def test_fya_masks_are_a_subset_and_symmetric() -> None:
    for path in EXAMPLES:
        cfg = board_config(load_site(path))
        n = cfg.channels
        for i in range(n):
            assert cfg.fya_conflicts[i] & ~cfg.conflicts[i] == 0
            for j in range(n):
                assert (cfg.conflicts[i] >> j & 1) == (cfg.conflicts[j] >> i & 1)


def test_site_intergreens_reach_the_board_and_hold() -> None:
    site = crossing()
    ch = [(c.kind, c.source) for c in site.channels]
    # ch1 (phase 2) leaving -> ch2 (phase 4) entering: 6000 ms from green end to green.
    site = dataclasses.replace(site, intergreens={(ch[0], ch[1]): 6000})
    cfg = board_config(site)
    assert cfg.intergreens == ((0, codec.IG_ANY, 1, codec.IG_ANY, 6000),)
    R, Y, G = codec.RED, codec.YELLOW, codec.GREEN
    s, t = _running(cfg)
    for _ in range(60):  # ch1 green 6 s
        t += 100
        assert s.outputs(t, [G, R, G if _ < 29 else codec.FLASH_RED]) == codec.FAULT_NONE
    for _ in range(30):  # yellow 3 s
        t += 100
        assert s.outputs(t, [Y, R, R]) == codec.FAULT_NONE
    for _ in range(15):  # red 1.5 s: past min red (1 s), 4.5 s after green end
        t += 100
        assert s.outputs(t, [R, R, R]) == codec.FAULT_NONE
    assert s.outputs(t + 100, [R, G, R]) == codec.FAULT_INTERGREEN
    assert s.fault_channels == 0b11


# --- per-indication intergreens: a protected left shown only on its FYA head (issue 17) --


def _fya_tee() -> BoardConfig:
    """t_junction with a derived site's pairs for its protected left P1, which only the
    green arrow of flashing-yellow-arrow head B (channel 1) shows: P2 -> P1 4.5 s,
    P1 -> P2 5.5 s. Channels: B, P2, P4, P6, overlap A, the walk beside P2."""
    site = load_site(EXAMPLES_DIR / "t_junction.toml")
    p1, p2 = (SignalKind.PHASE, 1), (SignalKind.PHASE, 2)
    assert (p1, p2) in site.conflicts and p1 not in [(c.kind, c.source) for c in site.channels]
    return board_config(dataclasses.replace(site, intergreens={(p2, p1): 4500, (p1, p2): 5500}))


def _tee(head: int, through: int, p6: int = codec.RED) -> list[int]:
    """A map of _fya_tee's channels: the left's head, P2, P6 as given, the rest red."""
    R = codec.RED
    return [head, through, R, p6, R, R]


def _drive(s: board_safety.BoardSafety, t: int, codes: list[int], ms: int) -> int:
    for _ in range(ms // 100):
        t += 100
        assert s.outputs(t, codes) == codec.FAULT_NONE, (t, codes, s.fault)
    return t


R, Y, G, FY = codec.RED, codec.YELLOW, codec.GREEN, codec.FLASH_YELLOW


def test_fya_head_pairs_reach_the_board_on_its_green_arrow_only() -> None:
    assert _fya_tee().intergreens == (
        (0, codec.IG_STEADY, 1, codec.IG_ANY, 5500),  # P1's arrow ends -> P2
        (1, codec.IG_ANY, 0, codec.IG_STEADY, 4500),  # P2 ends -> P1's arrow
    )


def test_green_arrow_before_its_pair_intergreen_is_refused() -> None:
    # Fails on the channel-pair board: its CONFIG had no pair for P1, and only the
    # 1 s red clearance stood between P2's green and the green arrow.
    cfg = _fya_tee()
    for red_ms, fault in ((1000, codec.FAULT_INTERGREEN), (1500, codec.FAULT_NONE)):
        s, t = _running(cfg)
        # The permissive arrow with P2 (legal: it yields), then both yellow, then red.
        t = _drive(s, t, _tee(FY, G), 4000)
        t = _drive(s, t, _tee(Y, Y), 3000)
        t = _drive(s, t, _tee(R, R), red_ms)  # P2's green ended 3000 + red_ms ago
        assert s.outputs(t + 100, _tee(G, R)) == fault
        if fault:
            assert s.fault_channels == 0b11


def test_flashing_arrow_into_green_arrow_waits_out_the_pair() -> None:
    # The left's own through (P6) runs on; the permissive arrow stays on beside it.
    cfg = _fya_tee()
    for red_ms, fault in ((1000, codec.FAULT_INTERGREEN), (1500, codec.FAULT_NONE)):
        s, t = _running(cfg)
        t = _drive(s, t, _tee(FY, G, G), 4000)
        t = _drive(s, t, _tee(FY, Y, G), 3000)
        t = _drive(s, t, _tee(FY, R, G), red_ms)
        assert s.outputs(t + 100, _tee(G, R, G)) == fault


def test_only_the_green_arrow_ending_owes_the_pair_not_the_flashing_arrow() -> None:
    cfg = _fya_tee()
    for shown, fault in ((G, codec.FAULT_INTERGREEN), (FY, codec.FAULT_NONE)):
        s, t = _running(cfg)
        t = _drive(s, t, _tee(shown, R), 4000)
        t = _drive(s, t, _tee(Y, R), 3000)
        t = _drive(s, t, _tee(R, R), 1500)  # 4.5 s after the head's GO ended: < 5.5 s
        assert s.outputs(t + 100, _tee(R, G)) == fault


def test_pairs_on_the_whole_fya_head_would_refuse_the_permissive_arrow() -> None:
    # Why per indication: the same pairs on any GO of the head (the naive mapping)
    # refuse the flashing arrow the core starts while P2 runs, and flash the junction.
    cfg = _fya_tee()
    on_any = tuple((a, codec.IG_ANY, b, codec.IG_ANY, ms) for a, _, b, _, ms in cfg.intergreens)
    for c, fault in ((dataclasses.replace(cfg, intergreens=on_any), codec.FAULT_INTERGREEN),
                     (cfg, codec.FAULT_NONE)):  # fmt: skip
        s, t = _running(c)
        t = _drive(s, t, _tee(R, G), 1000)
        assert s.outputs(t + 100, _tee(FY, G)) == fault


def test_a_head_with_several_protected_parents_takes_their_shortest_pair() -> None:
    site = load_site(EXAMPLES_DIR / "t_junction.toml")
    p1, p2, p4 = ((SignalKind.PHASE, p) for p in (1, 2, 4))
    b = next(o for o in site.overlaps if o.permissive_parents)
    two = dataclasses.replace(b, parents=(1, 4))
    site = dataclasses.replace(site, overlaps=tuple(two if o is b else o for o in site.overlaps))
    # P2 owes P1 4.5 s and P4 6 s: the arrow may start when either parent may.
    site2 = dataclasses.replace(site, intergreens={(p2, p1): 4500, (p2, p4): 6000})
    assert (1, codec.IG_ANY, 0, codec.IG_STEADY, 4500) in board_config(site2).intergreens
    # A parent that lists no pair with P2: the arrow waits for nothing from P2.
    site3 = dataclasses.replace(site, intergreens={(p2, p1): 4500})
    assert not [ig for ig in board_config(site3).intergreens if ig[2] == 0]


def test_too_many_pairs_for_the_config_are_refused_clearly() -> None:
    site = crossing()
    p2, p4 = (SignalKind.PHASE, 2), (SignalKind.PHASE, 4)
    ch = site.channels[0]
    extra = [dataclasses.replace(ch, id=4 + k, source=2 if k < 14 else 4) for k in range(29)]
    site = dataclasses.replace(
        site, channels=(*site.channels, *extra), intergreens={(p2, p4): 4000, (p4, p2): 4500}
    )
    with pytest.raises(BoardConfigError) as err:
        board_config(site)
    assert str(err.value) == (
        "the site's 2 pair intergreens make 480 on the board's channels and indications; "
        "the board holds at most 255 (list fewer pairs, or drive fewer channels)"
    )


def test_edge_check_names_a_site_with_too_many_pairs_for_the_board(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 32 channels (15 of phase 2, 16 of phase 4, the walk), two site pairs: 480 on the board.
    text = (Path(__file__).with_name("crossing.toml")).read_text()
    extra = "".join(
        f"[[channels]]\nid = {4 + k}\nphase = {2 if k < 14 else 4}\n" for k in range(29)
    )
    text = text.replace("[[detectors]]", extra + "[[detectors]]", 1)
    path = tmp_path / "many.toml"
    path.write_text(text + "\n[intergreens]\nP2 = { P4 = 4.0 }\nP4 = { P2 = 4.5 }\n")
    assert edge_main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}: 1 problem(s) for the IO board" in err
    assert "480 on the board's channels and indications; the board holds at most 255" in err
