"""A crossing called again during its clearance (pedestrian recycle) shows don't walk first.

pedestrians.py rule 6: the walk starts a step after the clearance ends, never in the same
step, so the lamps never go straight from flashing don't walk to walk (a change interval
turning back to GO, which the IO board refuses as FAULT_BAD_SEQUENCE). Found on the
derived tee `edge sim gen tee --seed 1 --level off-peak` run through the board: the
output guard put the don't walk in itself, one tick, and the lamps lagged the core.
The invariant checker (tests/control/invariants.py) asserts it after every step.
"""

from __future__ import annotations

from edge.control.messages import Lamp, Omit, PlaceCall
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.control.invariants import InvariantChecker
from tests.control.test_properties import SITES, run
from tests.hypothesis_profiles import examples

WITH_CROSSINGS = sorted(n for n, s in SITES.items() if any(p.ped_crossing for p in s.phases))
Segments = list[tuple[int, frozenset[int], tuple[object, ...]]]


@st.composite
def cases(draw: st.DrawFn) -> tuple[str, Segments]:
    """A site with crossings; quiet stretches, each opening with a pedestrian call or none."""
    name = draw(st.sampled_from(WITH_CROSSINGS))
    peds = [p.id for p in SITES[name].phases if p.ped_crossing]
    call = st.sampled_from(peds).map(lambda pid: (PlaceCall(pid, True),))
    segment = st.tuples(st.integers(1, 150), st.just(frozenset[int]()), st.just(()) | call)
    return name, draw(st.lists(segment, min_size=3, max_size=12))


_QUIET = (1, frozenset[int](), ())
# Found by test_properties' operator-command property once the checker knew the rule:
# phase 2's crossing called at 44.6 s, during its clearance (44.5-56.5 s), while the
# phase rests: it walked again at 56.5 s, straight from flashing don't walk.
_FOUND: Segments = [
    *[_QUIET] * 8,
    (43, frozenset(), ()),
    (240, frozenset(), ()),
    (1, frozenset(), (Omit(1, True),)),
    (38, frozenset(), ()),
    (116, frozenset(), (PlaceCall(2, True),)),
    (120, frozenset(), (PlaceCall(2, True),)),
    (50, frozenset(), ()),
]


@settings(max_examples=examples(40), deadline=None)
@given(case=cases())
@example(case=("t_junction", _FOUND))
def test_recycled_walk_follows_a_dont_walk(case: tuple[str, Segments]) -> None:
    name, segments = case
    site = SITES[name]
    run(site, segments, InvariantChecker(site))


def test_recycle_found_on_the_t_junction_walks_a_step_later() -> None:
    """The pinned case still serves its call: don't walk for one step, then the walk."""
    site = SITES["t_junction"]
    outs = run(site, _FOUND, InvariantChecker(site))
    i = [p.id for p in site.phases].index(2)
    peds = [o.peds[i] for o in outs]
    cleared = peds.index(Lamp.FLASH_RED)
    dont_walk = peds.index(Lamp.RED, cleared)
    assert peds[dont_walk + 1] == Lamp.GREEN
