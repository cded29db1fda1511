"""Pedestrians pressing the crossings' push buttons (sim/sumo/derive.py's PushButton).

Rules this module keeps:
- A button is pressed while a SUMO person stands on a kerb of its crossing (a
  walking area its signalled links leave from, or the one at the crossing's
  far end) with the crossing as the next edge of its walk. Only a press's
  rising edge is a call, and one during the walk is none (the core's rule),
  so the waiting keep pressing: held on one sensed step, released on the
  next. Nobody headed there, nobody pressed: no walk for nobody.
- The walking areas are read by subscription (one per kerb), so a step costs
  a look-up per person near a crossing, not per person in the network; the
  result depends only on SUMO's state, so a seed gives the same presses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sim.sumo.derive import Derivation

_LAST_STEP_PERSON_ID_LIST = 0x1A  # traci constant, same value for libsumo


def _edge(lane: str) -> str:
    return lane.rsplit("_", 1)[0]


class PushButtons:
    def __init__(self, derivations: Sequence[Derivation]) -> None:
        # tls -> (button id, input, crossing edge, kerb edges)
        self.buttons: dict[str, list[tuple[int, int, str, tuple[str, ...]]]] = {}
        self.derivations = derivations
        self.pressed: dict[str, frozenset[int]] = {}

    def start(self, sim: Any) -> None:
        kerbs_all: set[str] = set()
        for d in self.derivations:
            rows = []
            for b in d.buttons:
                far = {_edge(link[0]) for link in sim.lane.getLinks(b.crossing)}
                kerbs = tuple(sorted({_edge(k) for k in b.kerbs} | far))
                rows.append((b.id, b.input, _edge(b.crossing), kerbs))
                kerbs_all.update(kerbs)
            self.buttons[d.tls] = rows
            self.pressed[d.tls] = frozenset()
        for edge in sorted(kerbs_all):
            sim.edge.subscribe(edge, [_LAST_STEP_PERSON_ID_LIST])

    def update(self, sim: Any) -> None:
        """Read who waits where after a SUMO step."""
        res = sim.edge.getAllSubscriptionResults()
        next_edge: dict[str, str] = {}
        for tls, rows in self.buttons.items():
            pressed = set()
            for det_id, _, crossing, kerbs in rows:
                for kerb in kerbs:
                    people = res.get(kerb, {}).get(_LAST_STEP_PERSON_ID_LIST, ())
                    for pid in people:
                        if pid not in next_edge:
                            next_edge[pid] = sim.person.getNextEdge(pid)
                        if next_edge[pid] == crossing:
                            pressed.add(det_id)
                            break
                    if det_id in pressed:
                        break
            self.pressed[tls] = frozenset(pressed) - self.pressed[tls]  # press, release

    def input_mask(self, tls: str) -> int:
        """The pressed buttons as board input bits (edge-board)."""
        inputs = {det_id: n for det_id, n, _, _ in self.buttons.get(tls, ())}
        mask = 0
        for det_id in self.pressed.get(tls, ()):
            mask |= 1 << (inputs[det_id] - 1)
        return mask
