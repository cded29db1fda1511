"""hw/board_safety.py's per-indication pair intergreens against an independent model.

The model restates the rule over absolute times (hw/PROTOCOL.md section 7): an
indication (a channel's steady GO, its flashing yellow arrow, or, for a pair on
any GO, its GO from STOP or its flashing arrow turning green) starts only when
each pair's leaving indication is not shown and ended at least the pair's ms
ago (less the slack). The conflict masks are empty here, so the board must
refuse exactly the maps that break an intergreen or the sequence rules: never
a start before its pair's intergreen (safety), never a start the pairs allow
(the board no stricter than its CONFIG).
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hw import board_safety, codec
from tests.hw.test_hw_board_safety import FR, FY, D, G, R, Y
from tests.hypothesis_profiles import examples

ANY, STEADY, FYA = codec.IG_ANY, codec.IG_STEADY, codec.IG_FYA
KINDS = [codec.KIND_VEHICLE, codec.KIND_VEHICLE, codec.KIND_VEHICLE, codec.KIND_PED]
N = len(KINDS)
YELLOW_MS, RED_MS = 300, 200
SLACK = board_safety.TIMING_SLACK_MS

Pair = tuple[int, int, int, int, int]  # (leaving, its indication, entering, its, ms)


def _indication(ch: int, code: int) -> int | None:
    """STEADY or FYA for a GO code, None otherwise."""
    if KINDS[ch] == codec.KIND_PED:
        return STEADY if code == G else None
    return {G: STEADY, FY: FYA}.get(code)


def _category(ch: int, code: int) -> str:
    if _indication(ch, code) is not None:
        return "go"
    change = FR if KINDS[ch] == codec.KIND_PED else Y
    return "change" if code == change else "stop"


class Model:
    """Each channel's code, since when in its category, and when each indication ended."""

    def __init__(self, now: int, pairs: list[Pair]) -> None:
        self.pairs = pairs
        self.codes = [R] * N
        self.since = [now] * N
        self.ended: list[dict[int, int]] = [{} for _ in range(N)]  # indication -> ms

    def verdict(self, now: int, codes: list[int]) -> str:
        """'ok', 'intergreen' or 'other' (a code or sequence rule)."""
        valid = (
            {D, R, G, FR} if KINDS[ch] == codec.KIND_PED else {D, R, Y, G, FY} for ch in range(N)
        )
        if any(c not in ok for c, ok in zip(codes, valid, strict=True)):
            return "other"
        for ch in range(N):
            old, new = _category(ch, self.codes[ch]), _category(ch, codes[ch])
            if (old, new) in (("go", "stop"), ("change", "go"), ("stop", "change")):
                return "other"
            if (old, new) == ("change", "stop") and now - self.since[ch] + SLACK < YELLOW_MS:
                return "other"
        for ch in range(N):
            was, shows = _indication(ch, self.codes[ch]), _indication(ch, codes[ch])
            if shows is None or shows == was:
                continue
            for leaving, li, entering, ei, ms in self.pairs:
                any_go = was is None or (was == FYA and shows == STEADY)
                if entering != ch or not (ei == shows or (ei == ANY and any_go)):
                    continue
                showing = _indication(leaving, self.codes[leaving])
                if showing is not None and li in (ANY, showing):
                    return "intergreen"
                ends = [t for ind, t in self.ended[leaving].items() if li in (ANY, ind)]
                if ends and now - max(ends) + SLACK < ms:
                    return "intergreen"
        return "ok"

    def drive(self, now: int, codes: list[int]) -> None:
        for ch, code in enumerate(codes):
            was, shows = _indication(ch, self.codes[ch]), _indication(ch, code)
            if was is not None and was != shows:
                self.ended[ch][was] = now
            if _category(ch, code) != _category(ch, self.codes[ch]):
                self.since[ch] = now
            self.codes[ch] = code


_NEXT_V = {R: [R, R, G, FY], G: [G, G, Y, FY], FY: [FY, FY, Y, G], Y: [Y, Y, R], D: [R]}
_NEXT_P = {R: [R, R, G], G: [G, G, FR], FR: [FR, FR, R], D: [R]}


@st.composite
def pairs(draw: st.DrawFn) -> list[Pair]:
    out = []
    for _ in range(draw(st.integers(1, 8))):
        leaving, entering = draw(
            st.lists(st.integers(0, N - 1), min_size=2, max_size=2, unique=True)
        )
        ind = [
            draw(
                st.sampled_from([ANY, STEADY] if KINDS[c] == codec.KIND_PED else [ANY, STEADY, FYA])
            )
            for c in (leaving, entering)
        ]
        ms = draw(st.sampled_from([0, 150, 400, 700, 1200]))
        out.append((leaving, ind[0], entering, ind[1], ms))
    return out


@st.composite
def walks(draw: st.DrawFn) -> list[tuple[int, list[int]]]:
    codes = [R] * N
    steps = []
    for _ in range(draw(st.integers(1, 100))):
        dt = draw(st.sampled_from([0, 50, 100, 100, 100, 200, 400]))
        ch = draw(st.integers(0, N - 1))
        table = _NEXT_P if KINDS[ch] == codec.KIND_PED else _NEXT_V
        codes[ch] = draw(st.sampled_from(table[codes[ch]]))
        steps.append((dt, list(codes)))
    return steps


def _body(pairs: list[Pair]) -> dict[str, Any]:
    frame = codec.encode_config(
        0,
        [0] * N,
        [YELLOW_MS] * N,
        [RED_MS] * N,
        [codec.FLASH_COLOUR_RED] * N,
        KINDS,
        500,
        None,
        pairs,
    )
    msg = codec.decode_frame(frame)
    assert msg is not None
    body: dict[str, Any] = msg[2]
    return body


def _board(pairs: list[Pair]) -> tuple[board_safety.BoardSafety, int]:
    body = _body(pairs)
    s = board_safety.BoardSafety(0)
    assert s.configure(0, body) == 0
    assert s.recover(0, body["config_hash"]) == 0
    t = 0
    while s.state != codec.STATE_RUNNING:
        t += 100
        assert s.outputs(t, [R] * N) == codec.FAULT_NONE
    return s, t


# A green arrow after its flashing arrow ended, 100 ms after the through it owes 150 ms.
@example(
    [(0, ANY, 1, STEADY, 150)], [(0, [G, FY, R, R]), (100, [Y, FY, R, R]), (100, [Y, G, R, R])]
)
# The flashing arrow that ended owes nothing to a pair on the green arrow.
@example(
    [(1, STEADY, 0, ANY, 1200)],
    [(0, [R, FY, R, R]), (100, [R, Y, R, R]), (300, [R, R, R, R]), (0, [G, R, R, R])],
)
# A green arrow turning into the flashing arrow ends the arrow, not the head's GO.
@example(
    [(1, STEADY, 2, ANY, 150), (1, ANY, 2, FYA, 150)],
    [(0, [R, G, R, R]), (100, [R, FY, R, R]), (200, [R, FY, G, R]), (100, [R, FY, FY, R])],
)
@settings(max_examples=examples(300), suppress_health_check=[HealthCheck.too_slow])
@given(pairs(), walks())
def test_no_indication_starts_before_its_pair_and_none_is_refused_that_may(
    igs: list[Pair], walk: list[tuple[int, list[int]]]
) -> None:
    floors = board_safety.MIN_YELLOW_FLOOR_MS, board_safety.MIN_CLEAR_FLOOR_MS
    board_safety.MIN_YELLOW_FLOOR_MS = board_safety.MIN_CLEAR_FLOOR_MS = 0
    try:
        s, t = _board(igs)
        model = Model(t, igs)
        for dt, codes in walk:
            t += dt
            verdict = model.verdict(t, codes)
            fault = s.outputs(t, codes)
            if verdict == "ok":
                assert fault == codec.FAULT_NONE, (t, codes, s.fault)
                assert list(s.lamps()) == codes
                model.drive(t, codes)
                continue
            assert s.state == codec.STATE_FLASH, (t, codes, verdict)
            if verdict == "intergreen":
                assert fault == codec.FAULT_INTERGREEN, (t, codes, fault)
            break
    finally:
        board_safety.MIN_YELLOW_FLOOR_MS, board_safety.MIN_CLEAR_FLOOR_MS = floors


def test_a_pair_on_any_go_still_holds_a_flashing_arrow_turning_green() -> None:
    """An old-style record (IG_ANY on both sides, as every CONFIG before per-indication
    intergreens) holds the green arrow that ends a flashing arrow, as the board always
    did: per-indication records never make the board laxer for old ones."""
    floors = board_safety.MIN_YELLOW_FLOOR_MS, board_safety.MIN_CLEAR_FLOOR_MS
    board_safety.MIN_YELLOW_FLOOR_MS = board_safety.MIN_CLEAR_FLOOR_MS = 0
    try:
        s, t = _board([(0, ANY, 1, ANY, 400)])
        assert s.outputs(t, [G, FY, R, R]) == codec.FAULT_NONE
        assert s.outputs(t + 100, [Y, FY, R, R]) == codec.FAULT_NONE
        assert s.outputs(t + 400, [R, FY, R, R]) == codec.FAULT_NONE
        # 300 ms after the through's green ended: 100 ms short of the pair.
        assert s.outputs(t + 400, [R, G, R, R]) == codec.FAULT_INTERGREEN
    finally:
        board_safety.MIN_YELLOW_FLOOR_MS, board_safety.MIN_CLEAR_FLOOR_MS = floors


def test_a_host_crafted_config_only_ever_adds_checks() -> None:
    """Records the board accepts never loosen it: of duplicate records the longest holds,
    a pair on the flashing arrow of a channel with no flashing-arrow mask is a check like
    any other, and a flashing arrow named on a walk, an indication 3 or a channel past
    the last is refused."""
    floors = board_safety.MIN_YELLOW_FLOOR_MS, board_safety.MIN_CLEAR_FLOOR_MS
    board_safety.MIN_YELLOW_FLOOR_MS = board_safety.MIN_CLEAR_FLOOR_MS = 0
    try:
        for igs in (
            [(0, ANY, 1, ANY, 150), (0, ANY, 1, ANY, 700)],
            [(0, ANY, 1, ANY, 700), (0, STEADY, 1, ANY, 150)],
        ):
            s, t = _board(igs)
            assert s.outputs(t, [G, R, R, R]) == codec.FAULT_NONE
            assert s.outputs(t + 100, [Y, R, R, R]) == codec.FAULT_NONE
            assert s.outputs(t + 400, [R, R, R, R]) == codec.FAULT_NONE
            assert s.outputs(t + 700, [R, G, R, R]) == codec.FAULT_INTERGREEN
        s, t = _board([(0, ANY, 2, FYA, 700)])  # channel 2's masks are all steady ones
        assert s.outputs(t, [G, R, R, R]) == codec.FAULT_NONE
        assert s.outputs(t + 100, [Y, R, R, R]) == codec.FAULT_NONE
        assert s.outputs(t + 400, [R, R, R, R]) == codec.FAULT_NONE
        assert s.outputs(t + 700, [R, R, FY, R]) == codec.FAULT_INTERGREEN
        for bad in (
            (0, ANY, 3, FYA, 100),
            (3, FYA, 0, ANY, 100),
            (0, 3, 1, ANY, 100),
            (0, ANY, 1, 3, 100),
            (0, ANY, N, ANY, 100),
            (1, ANY, 1, STEADY, 100),
        ):
            assert board_safety.check_config(_body([bad])) == codec.NAK_BAD_CONFIG, bad
        assert board_safety.check_config(_body([(0, ANY, 3, STEADY, 100)])) == 0
    finally:
        board_safety.MIN_YELLOW_FLOOR_MS, board_safety.MIN_CLEAR_FLOOR_MS = floors
