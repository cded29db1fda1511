"""`--controller edge-board`: the edge controller through the IO-board firmware, in-process.

Like `edge`, but each signal's controller is the runtime's BoardDriver (the
controller, the board session, its guard and recovery policy) talking to the
hw/ firmware (hw.board.Board) by handing bytes across in the same thread, on
the simulated clock: no pty, no thread, deterministic. SUMO's stop-bar
detectors and the crossings' push buttons are the board's raw inputs
(debounced by the firmware, reported in STATUS), and SUMO shows the lamps
the board drives, not the controller's wishes. The start-up runs as on a
device: the board's power-on flash, the
handshake and CONFIG, the controller's start-up flash and all red, then RUN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edge.board.driver import BoardDriver
from edge.control.messages import Lamp

from hw import board as hw_board
from hw import codec
from sim.sumo.controllers.base import LinkRenderer
from sim.sumo.controllers.edge_control import EdgeControl

_MAX_EXCHANGES = 8  # request/reply rounds per tick (handshake needs 3)


@dataclass(slots=True)
class _Board:
    tls: str
    driver: BoardDriver
    board: Any  # hw.board.Board (MicroPython-subset module, untyped)
    renderer: LinkRenderer
    inputs: list[tuple[int, int]]  # (detector id, board input 1..16)
    raw: int = 0
    last_lamps: bytes = b""  # the board's codes last shown in SUMO, and as SUMO's state
    last_state: str = ""
    loops_seen: frozenset[int] | None = None  # the loops' set last turned into input bits
    loops_raw: int = 0  # ...and its bits (the set is immutable: the same set, the same bits)


class EdgeBoardControl(EdgeControl):
    def __init__(self, derivations: list[Any]) -> None:
        super().__init__(derivations, name="edge-board")
        self.boards: list[_Board] = []

    def start(self, sim: Any, t_ms: int) -> None:
        self.buttons.start(sim)
        self.loops.start(sim)
        for d in self.derivations:
            site = d.site
            by_id = {det.id: det.input for det in site.detectors}
            inputs = [(b.id, by_id[b.id]) for b in d.detectors]
            driver = BoardDriver(site, t_ms, port=f"in-process:{d.tls}")
            driver.connect(t_ms)
            self.boards.append(
                _Board(
                    tls=d.tls,
                    driver=driver,
                    board=hw_board.Board(t_ms),
                    renderer=LinkRenderer(d.links, [ch.id for ch in site.channels]),
                    inputs=inputs,
                )
            )

    def step(self, sim: Any, t_ms: int, sensed: bool) -> None:
        if sensed:
            if self.emergency is not None:
                self.emergency.update(sim)
            self.loops.update(sim, t_ms)
            self.buttons.update(sim)
            for b in self.boards:
                # the preemption receiver's outputs are board inputs too
                mask = self.emergency.input_mask(b.tls) if self.emergency is not None else 0
                mask |= self.buttons.input_mask(b.tls)  # pedestrians' push buttons
                b.raw = mask
        for b in self.boards:
            loops = self.loops.replayed(b.tls, t_ms)  # loops.py: one step less a tick late
            if loops is not b.loops_seen:
                b.loops_seen = loops
                b.loops_raw = sum(1 << (i - 1) for det, i in b.inputs if det in loops)
            raw = b.raw | b.loops_raw
            b.board.tick(t_ms)
            b.board.sample_inputs(t_ms, raw)
            b.driver.advance(t_ms)  # tick() less the SentMap it would drop
            self._exchange(b, t_ms)
            safety = b.board.safety
            faulted = safety.fault not in (codec.FAULT_NONE, codec.FAULT_POWER_ON)
            if safety.state == codec.STATE_FLASH and faulted and not self.fault_events:
                self.fault_events.append(
                    f"{b.tls}: board flash at {t_ms / 1000:.1f} s: fault {safety.fault}"
                )

    def notes(self) -> list[str]:
        # The link is clean here: the guard should pass every map as the core made it.
        out = super().notes()
        for b in self.boards:
            held, skipped = b.driver.session.guard.held, b.driver.guard_skipped
            if held or skipped:
                out.append(
                    f"{b.tls}: the guard held {held} channel-tick(s) of the core's maps, "
                    f"{skipped} green(s) past their end"
                )
        return out

    @staticmethod
    def _exchange(b: _Board, t_ms: int) -> None:
        for _ in range(_MAX_EXCHANGES):
            data = b.driver.data_to_send()
            if not data:
                return
            reply = b.board.receive(t_ms, data)
            if reply:
                b.driver.receive(t_ms, reply)

    def apply(self, sim: Any) -> None:
        for b in self.boards:
            lamps = b.board.safety.lamps()
            if lamps == b.last_lamps:
                continue  # the same codes: the same state
            b.last_lamps = lamps
            state = b.renderer.render([Lamp(c) for c in lamps]) if lamps else ""
            if state and state != b.last_state:
                sim.trafficlight.setRedYellowGreenState(b.tls, state)
                b.last_state = state
