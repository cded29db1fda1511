"""The one backoff (edge/backoff.py): every delay finite and within [floor, cap], whatever
the number of attempts, for the project's retry loops as they are configured."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
from edge.backoff import Backoff
from edge.board.runner import BoardRunner
from edge.config import load_site
from edge.link.client import BrokerConfig, LinkClient
from edge.link.config import load_device_config
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.board.procs import CROSSING
from tests.hypothesis_profiles import examples

ATTEMPTS = 100_000


def _check_run(b: Backoff, attempts: int = ATTEMPTS) -> list[float]:
    delays = [b.next_delay() for _ in range(attempts)]
    assert all(math.isfinite(d) and b.floor_s <= d <= b.cap_s for d in delays)
    return delays


def test_board_link_backoff_survives_100000_failed_reconnects() -> None:
    # The old one computed base * 2**attempt: OverflowError at attempt 1,024 (45 minutes
    # with the board unplugged), which ended `edge run`.
    runner = BoardRunner(load_site(CROSSING), "/dev/null/no-board")
    delays = _check_run(runner.backoff)
    assert runner.backoff.attempts == ATTEMPTS
    assert max(delays) <= 5.0 and max(delays[-1000:]) > 4.0  # capped at 5 s, and reaches it
    runner.backoff.reset()
    assert runner.backoff.next_delay() <= 0.2


def test_mqtt_link_backoff_survives_100000_failed_reconnects() -> None:
    client = LinkClient("dev-1", BrokerConfig("127.0.0.1", 1), handler=None, store=None, db=None)  # type: ignore[arg-type]
    delays = _check_run(client.reconnect.backoff)  # between rounds (edge/link/reconnect.py)
    assert max(delays) <= 30.0 and min(delays) >= 0.25


class _Highest(random.Random):
    """Jitter that always draws the top of its range: the delays are the ceilings."""

    def uniform(self, a: float, b: float) -> float:
        return b


def test_delays_double_up_to_the_cap_and_restart_after_a_reset() -> None:
    b = Backoff(1.0, 8.0, rng=_Highest())
    assert [b.next_delay() for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    b.reset()
    assert b.next_delay() == 1.0


def test_delays_are_jittered_at_the_cap() -> None:
    b = Backoff(0.5, 8.0, rng=random.Random(1))
    delays = [b.next_delay() for _ in range(12)][4:]  # at the cap from the fifth on
    assert len({round(d, 6) for d in delays}) == len(delays)  # not a fixed 8 s


def test_a_device_file_with_backoff_min_above_max_is_refused(tmp_path: Path) -> None:
    toml = tmp_path / "device.toml"
    toml.write_text(
        '[device]\nid = "d1"\nsite = "s.toml"\nstore = "d.db"\ntrusted_keys = ["k.pub"]\n'
        '[broker]\nhost = "h"\nport = 1883\nbackoff_min_s = 10\nbackoff_max_s = 2\n'
    )
    with pytest.raises(ValueError, match=r"backoff_min_s 10\.0 is above backoff_max_s 2\.0"):
        load_device_config(toml)


@pytest.mark.parametrize(
    ("first", "cap", "floor"),
    [
        (0.0, 1.0, None),
        (2.0, 1.0, None),
        (1.0, 2.0, 1.5),
        (1.0, math.inf, None),
        (math.nan, 1.0, None),
        (1.0, 2.0, -0.1),
    ],
)
def test_bad_parameters_are_refused_by_name(first: float, cap: float, floor: float | None) -> None:
    with pytest.raises(ValueError, match="floor_s <= first_s <= cap_s"):
        Backoff(first, cap, floor_s=floor)


positive = st.floats(min_value=1e-6, max_value=1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=examples(200), deadline=None)
@given(
    first=positive,
    cap_factor=st.floats(min_value=1.0, max_value=1e300),
    floor_frac=st.floats(min_value=1e-9, max_value=1.0),
    seed=st.integers(0, 2**32),
    ops=st.lists(st.integers(0, 3000), max_size=6),
)
@example(first=1e6, cap_factor=1e300, floor_frac=1e-9, seed=0, ops=[3000, 3000])
@example(first=1e-6, cap_factor=1.0, floor_frac=1.0, seed=0, ops=[3000])
def test_every_delay_is_finite_and_within_floor_and_cap(
    first: float, cap_factor: float, floor_frac: float, seed: int, ops: list[int]
) -> None:
    """Runs of up to 3,000 attempts, each ended by a reset: never outside [floor, cap],
    never above the exponential ceiling first * 2**k for the k-th attempt of a run."""
    cap = first * cap_factor
    b = Backoff(first, cap, floor_s=first * floor_frac, rng=random.Random(seed))
    for n in ops:
        for k in range(n):
            d = b.next_delay()
            assert math.isfinite(d) and b.floor_s <= d <= b.cap_s
            assert k > 1023 or d <= first * 2.0**k  # 2.0**1024 overflows: no bound left there
        b.reset()
        assert b.attempts == 0
