"""The software conflict monitor: the last gate before outputs leave the core.

Independent of the sequencer (like a cabinet's MMU, or Klipper's
verify_heater beside its heaters), it sees only the displays the controller
wants to show, the site's conflict table and the site safety minimums. It
answers None when the displays are safe, or the reason to go to flash:

- two conflicting signal groups open at once (vehicle green/yellow, walk or
  flashing don't walk);
- a vehicle green that ends without yellow, a yellow shorter than the site
  minimum, a yellow that turns back to green;
- a green that starts before every conflicting vehicle group has been red for
  the site's minimum red clearance, or while a conflicting walk/clearance shows;
- a green (or walk) that starts before a listed pair's intergreen (the site's
  `intergreens`) has elapsed since the conflicting group's green ended, as seen
  on these outputs: a vehicle group's green or flashing yellow arrow turning to
  anything else, a walk turning to anything else (flash counts as an end);
- a phase green shorter than the site minimum green;
- a walk that ends without pedestrian clearance, a clearance that turns back to walk
  (the IO board refuses it as it refuses a yellow turning back to green);
- a flashing yellow arrow that ends without a steady yellow, follows a green
  arrow directly, or a green arrow shown while no protected parent phase is green.
"""

from __future__ import annotations

from edge.control.messages import Lamp, Outputs
from edge.control.site import SignalKey, SignalKind, Site

_FLASH_MODES = frozenset({"startup_flash", "flash", "fault_flash"})
_VEH_OPEN = (Lamp.GREEN, Lamp.YELLOW, Lamp.FLASH_YELLOW)
_PED_OPEN = (Lamp.GREEN, Lamp.FLASH_RED)
# What counts as green for the intergreens: a vehicle green or flashing yellow arrow, a walk.
_VEH_GREEN = (Lamp.GREEN, Lamp.FLASH_YELLOW)
_PED_GREEN = (Lamp.GREEN,)


class Monitor:
    def __init__(self, site: Site) -> None:
        # Signal groups as (outputs field 0 phases / 1 peds / 2 overlaps, index).
        self.groups: list[tuple[int, int]] = []
        self.labels: list[str] = []
        self.is_ped: list[bool] = []
        self.is_phase: list[bool] = []
        keys: list[SignalKey] = []
        for i, p in enumerate(site.phases):
            if p.movements or p.permissive:
                self._add((0, i), f"phase {p.id}", False, True)
                keys.append((SignalKind.PHASE, p.id))
        for i, p in enumerate(site.phases):
            if p.ped_crossing is not None:
                self._add((1, i), f"ped {p.id}", True, False)
                keys.append((SignalKind.PED, p.id))
        phase_index = {p.id: i for i, p in enumerate(site.phases)}
        # For each signal group: phase indexes one of which must be green for a
        # green arrow (flashing-yellow-arrow heads only), else None.
        self.arrow_parents: list[list[int] | None] = [None] * len(self.groups)
        for k, o in enumerate(site.overlaps):
            self._add((2, k), f"overlap {o.id}", False, False)
            keys.append((SignalKind.OVERLAP, o.id))
            fya = [phase_index[i] for i in o.parents] if o.permissive_parents else None
            self.arrow_parents.append(fya)
        self.conflicts: list[list[int]] = [
            [j for j, b in enumerate(keys) if (a, b) in site.conflicts] for a in keys
        ]
        # For each group entering: (leaving group, intergreen ms) per listed pair.
        self.intergreens: list[list[tuple[int, int]]] = [
            [
                (j, site.intergreens[(a, b)])
                for j, a in enumerate(keys)
                if (a, b) in site.intergreens
            ]
            for b in keys
        ]
        self.min_yellow_ms = site.safety.min_yellow_ms
        self.min_red_ms = site.safety.min_red_clear_ms
        self.min_green_ms = site.safety.min_green_ms
        n = len(self.groups)
        self.lamp = [Lamp.DARK] * n
        self.since = [0] * n
        self.red_since: list[int | None] = [None] * n
        self.green_end: list[int | None] = [None] * n  # when each group's green last ended

    def _add(self, where: tuple[int, int], label: str, ped: bool, phase: bool) -> None:
        self.groups.append(where)
        self.labels.append(label)
        self.is_ped.append(ped)
        self.is_phase.append(phase)

    def reset(self, now: int) -> None:
        """After a recovery: forget history; every group counts as dark from now."""
        n = len(self.groups)
        self.lamp = [Lamp.DARK] * n
        self.since = [now] * n
        self.red_since = [None] * n
        self.green_end = [None] * n

    def check(self, now: int, out: Outputs) -> str | None:
        fields = (out.phases, out.peds, out.overlaps)
        flashing = out.mode in _FLASH_MODES
        if flashing:
            # Remembered as dark: leaving flash owes no yellow, but every green
            # after it still needs the minimum red first.
            new = [Lamp.DARK] * len(self.groups)
            fault = None
        else:
            new = [fields[f][i] for f, i in self.groups]
            fault = self._check_changes(now, new, out.phases)
        for g, lamp in enumerate(new):
            if lamp != self.lamp[g]:
                greens = _PED_GREEN if self.is_ped[g] else _VEH_GREEN
                if self.lamp[g] in greens and lamp not in greens:
                    self.green_end[g] = now
                self.lamp[g] = lamp
                self.since[g] = now
                self.red_since[g] = now if lamp == Lamp.RED else None
        return fault

    def _check_changes(self, now: int, new: list[Lamp], phases: tuple[Lamp, ...]) -> str | None:
        for g, lamp in enumerate(new):
            before = self.lamp[g]
            if lamp == before:
                continue
            label = self.labels[g]
            held = now - self.since[g]
            if self.is_ped[g]:
                if before == Lamp.GREEN and lamp != Lamp.FLASH_RED:
                    return f"{label}: walk ended without pedestrian clearance"
                if before == Lamp.FLASH_RED and lamp == Lamp.GREEN:
                    return f"{label}: pedestrian clearance returned to walk"
            else:
                if before == Lamp.GREEN and lamp not in (Lamp.YELLOW, Lamp.GREEN):
                    return f"{label}: green ended without yellow"
                if before == Lamp.YELLOW and lamp == Lamp.GREEN:
                    return f"{label}: yellow returned to green"
                parents = self.arrow_parents[g]
                if parents is not None:  # a flashing-yellow-arrow head
                    if before == Lamp.FLASH_YELLOW and lamp not in (Lamp.YELLOW, Lamp.GREEN):
                        return f"{label}: flashing yellow arrow ended without yellow"
                    if before == Lamp.GREEN and lamp == Lamp.FLASH_YELLOW:
                        return f"{label}: green arrow went straight to flashing yellow"
                    if lamp == Lamp.GREEN and all(phases[i] != Lamp.GREEN for i in parents):
                        return f"{label}: green arrow without its protected phase green"
                if before == Lamp.YELLOW and held < self.min_yellow_ms:
                    return f"{label}: yellow {held} ms is below the {self.min_yellow_ms} ms minimum"
                if (
                    self.is_phase[g]
                    and before == Lamp.GREEN
                    and lamp == Lamp.YELLOW
                    and held < self.min_green_ms
                ):
                    return f"{label}: green {held} ms is below the {self.min_green_ms} ms minimum"
            opening = lamp in (_PED_OPEN if self.is_ped[g] else _VEH_OPEN)
            was_open = before in (_PED_OPEN if self.is_ped[g] else _VEH_OPEN)
            if not opening:
                continue
            for c in self.conflicts[g]:
                other = new[c]
                if other in (_PED_OPEN if self.is_ped[c] else _VEH_OPEN):
                    return f"conflict: {label} {lamp.name} with {self.labels[c]} {other.name}"
                if was_open or self.is_ped[c]:
                    continue
                red_since = self.red_since[c]
                if red_since is None or now - red_since < self.min_red_ms:
                    shown = "no" if red_since is None else f"{now - red_since} ms of"
                    return (
                        f"{label} opened after {shown} red on conflicting {self.labels[c]}"
                        f" (minimum {self.min_red_ms} ms)"
                    )
            if was_open:
                continue
            for c, ig_ms in self.intergreens[g]:
                ended = self.green_end[c]
                if ended is not None and now - ended < ig_ms:
                    return (
                        f"{label} opened {now - ended} ms after the green of conflicting "
                        f"{self.labels[c]} ended (intergreen {ig_ms} ms)"
                    )
        return None
