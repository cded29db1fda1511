"""An independent check of what SUMO shows: no two links that SUMO calls foes open at once.

It reads the right of way straight from the network with sumolib (not from
the derivation under test) and looks at the live SUMO link states after each
step. Two foe links may both be open (green or yellow) only when one of them
is permissive (shows 'g', or 'y' after a 'g') and SUMO's junction logic makes
it yield to the other. It also checks that every yellow that ends in red
lasted at least 3 s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sumolib

_OPEN = frozenset("GgyY")


@dataclass
class LinkMonitor:
    foes: dict[str, set[tuple[int, int]]] = field(default_factory=dict)
    yields: dict[str, set[tuple[int, int]]] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    yellow_since: dict[tuple[str, int], int] = field(default_factory=dict)
    last: dict[str, str] = field(default_factory=dict)
    permissive: dict[str, list[bool]] = field(default_factory=dict)  # last green was 'g'
    steps: int = 0
    greens_seen: int = 0

    @classmethod
    def from_net(cls, net_path: str) -> LinkMonitor:
        net = sumolib.net.readNet(net_path)
        mon = cls()
        for tls in net.getTrafficLights():
            node = net.getNode(tls.getConnections()[0][0].getEdge().getToNode().getID())
            conns: dict[int, Any] = {}
            for in_lane, out_lane, idx in tls.getConnections():
                conns[idx] = next(c for c in in_lane.getOutgoing() if c.getToLane() is out_lane)
            jidx = {i: node.getLinkIndex(c) for i, c in conns.items()}
            foes, yields = set(), set()
            for a in conns:
                for b in conns:
                    if a != b and node.areFoes(jidx[a], jidx[b]):
                        foes.add((a, b))
                    if a != b and node.forbids(conns[b], conns[a]):
                        yields.add((a, b))
            mon.foes[tls.getID()] = foes
            mon.yields[tls.getID()] = yields
        return mon

    def __call__(self, sim: Any, t_ms: int) -> None:
        self.steps += 1
        for tls, foes in self.foes.items():
            state = sim.trafficlight.getRedYellowGreenState(tls)
            self.greens_seen += state.count("G") + state.count("g")
            perm = self.permissive.setdefault(tls, [False] * len(state))
            for i, c in enumerate(state):
                if c in "Gg":
                    perm[i] = c == "g"
            for a, b in foes:
                if a > b or state[a] not in _OPEN or state[b] not in _OPEN:
                    continue
                ok = (perm[a] and (a, b) in self.yields[tls]) or (
                    perm[b] and (b, a) in self.yields[tls]
                )
                if not ok:
                    self.violations.append(f"{t_ms / 1000:.1f}s {tls} links {a},{b}: {state}")
            before = self.last.get(tls, state)
            for i, (was, now) in enumerate(zip(before, state, strict=True)):
                if now == "y" and was != "y":
                    self.yellow_since[(tls, i)] = t_ms
                if was == "y" and now in "rs":
                    start = self.yellow_since.pop((tls, i), None)
                    if start is not None and t_ms - start < 3000:
                        self.violations.append(
                            f"{t_ms / 1000:.1f}s {tls} link {i}: yellow {t_ms - start} ms"
                        )
            self.last[tls] = state
