"""Board STATUS -> control-core Inputs: input bits to detector ids, edge counts to actuations.

Board input number k (1..16, as `Detector.input` in the site config) is wire
bit k - 1 of STATUS `inputs` and entry k - 1 of its counts. Several detectors
may share an input (one loop card output wired to two logical detectors).
Counts are edges since the board's previous STATUS: a STATUS that is lost
loses its counts, a pulse shorter than the debounce is never seen; presence
is always taken from the latest STATUS. A preemption input (`Preempt.input`)
becomes a Preempt command when its level changes: on when it rises, off when
it falls (or when the link is lost: nothing then says it is still there).
"""

from __future__ import annotations

from edge.board.config import BOARD_INPUTS
from edge.board.session import BoardStatus
from edge.control.messages import Inputs, Preempt
from edge.control.site import Site


class InputMap:
    """Accumulates STATUS answers between controller steps; take() gives one step's Inputs."""

    def __init__(self, site: Site) -> None:
        by_bit: list[list[int]] = [[] for _ in range(BOARD_INPUTS)]
        for d in site.detectors:
            if 1 <= d.input <= BOARD_INPUTS:
                by_bit[d.input - 1].append(d.id)
        self._by_bit = tuple(tuple(ids) for ids in by_bit)
        self._preempt_bits = tuple(
            (p.id, p.input - 1)
            for p in site.preempts
            if p.input is not None and 1 <= p.input <= BOARD_INPUTS
        )
        self._preempt_on: dict[int, bool] = {pid: False for pid, _ in self._preempt_bits}
        self._occupied: frozenset[int] = frozenset()
        self._bits = 0  # the last STATUS inputs, and the detectors they make occupied
        self._bits_occupied: frozenset[int] = frozenset()
        self._counts: dict[int, int] = {}
        self._commands: list[object] = []
        self._last = Inputs()  # the last Inputs made

    def occupied_of(self, bits: int) -> frozenset[int]:
        """Detector ids active for a STATUS inputs bitmask."""
        ids: list[int] = []
        for b, dets in enumerate(self._by_bit):
            if bits >> b & 1:
                ids.extend(dets)
        return frozenset(ids)

    def add(self, status: BoardStatus) -> None:
        if status.inputs != self._bits:
            self._bits = status.inputs
            self._bits_occupied = self.occupied_of(status.inputs)
        self._occupied = self._bits_occupied
        for pid, bit in self._preempt_bits:
            on = bool(status.inputs >> bit & 1)
            if on != self._preempt_on[pid]:
                self._preempt_on[pid] = on
                self._commands.append(Preempt(pid, on))
        if not any(status.counts):
            return
        for b, n in enumerate(status.counts[:BOARD_INPUTS]):
            if n:
                for det in self._by_bit[b]:
                    self._counts[det] = self._counts.get(det, 0) + n

    def clear(self) -> None:
        """Nothing is known of the detectors (link lost): no presence, no counts."""
        self._occupied = frozenset()
        self._counts.clear()
        for pid, on in self._preempt_on.items():
            if on:
                self._preempt_on[pid] = False
                self._commands.append(Preempt(pid, False))

    def take(self, commands: tuple[object, ...] = ()) -> Inputs:
        """Inputs for the next controller step; the counts are then cleared."""
        last = self._last  # presence only, as last time: the same (frozen) Inputs again
        quiet = not (commands or self._counts or self._commands)
        if quiet and last.occupied is self._occupied and not (last.actuations or last.commands):
            return last
        actuations = tuple(sorted(self._counts.items()))
        self._counts.clear()
        if self._commands:
            commands = (*self._commands, *commands)
            self._commands.clear()
        self._last = Inputs(occupied=self._occupied, actuations=actuations, commands=commands)
        return self._last
