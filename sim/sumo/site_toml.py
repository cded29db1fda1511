"""Write a derived site config as readable TOML, laid out like examples/*.toml.

A small writer for the few shapes a site config has (tables, arrays of
tables, inline tables for plan timings), so that comments can say which SUMO
lanes and links each detector and channel stands for.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sim.sumo.derive import Derivation

_ORDER = (
    "site",
    "safety",
    "approaches",
    "phases",
    "overlaps",
    "channels",
    "detectors",
    "preempts",
    "intergreens",
    "plans",
)


def _key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else json.dumps(k)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, Mapping):
        return "{ " + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, Sequence):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def _table(lines: list[str], items: Mapping[str, Any]) -> None:
    for k, v in items.items():
        lines.append(f"{_key(k)} = {_value(v)}")


def to_toml(
    doc: Mapping[str, Any],
    header: Sequence[str] = (),
    row_notes: Mapping[tuple[str, Any], str] | None = None,
) -> str:
    """TOML text for a site dict; `row_notes[(section, id)]` is a comment above that row."""
    notes = row_notes or {}
    lines = [f"# {h}" if h else "#" for h in header]
    for section in [s for s in _ORDER if s in doc] + [s for s in doc if s not in _ORDER]:
        body = doc[section]
        if lines:
            lines.append("")
        if isinstance(body, list):
            for row in body:
                note = notes.get((section, row.get("id")))
                if note:
                    lines.append(f"# {note}")
                lines.append(f"[[{section}]]")
                _table(lines, row)
        elif section == "plans":
            for plan_id, plan in body.items():
                lines.append(f"[plans.{_key(plan_id)}]")
                for k, v in plan.items():
                    if k == "phase":
                        for pid, timing in v.items():
                            lines.append(f"phase.{_key(pid)} = {_value(timing)}")
                    else:
                        lines.append(f"{_key(k)} = {_value(v)}")
        else:
            if section == "intergreens":
                lines += [
                    "# Seconds from the end of a signal group's green to a conflicting green's",
                    "# start (RiLSA, from the network's conflict geometry: edge/intergreen.py).",
                ]
            lines.append(f"[{section}]")
            _table(lines, body)
    return "\n".join(lines) + "\n"


def derivation_toml(d: Derivation, source: str) -> str:
    """The site TOML for one derived signal, with comments naming SUMO lanes and links."""
    header = [
        f"Site config derived by `edge sim init` from {source}, traffic light {d.tls!r}.",
        f"Phasing: {d.phasing}. Validates with `edge check` as written; edit freely.",
    ]
    if d.notes:
        header.append("")
        header += [f"note: {n}" for n in d.notes]
    row_notes: dict[tuple[str, Any], str] = {}
    by_channel: dict[int, list[str]] = {}
    for b in d.links:
        if b.channel is not None:
            by_channel.setdefault(b.channel, []).append(str(b.index))
    for ch in d.site_dict["channels"]:
        links = ", ".join(by_channel.get(ch["id"], []))
        row_notes[("channels", ch["id"])] = f"SUMO link indices {links}"
    for det in d.detectors:
        row_notes[("detectors", det.id)] = (
            f"{det.kind} loop on SUMO lane {det.lane}, {det.pos_m:g}-{det.pos_m + det.length_m:g} m"
        )
    for btn in d.buttons:
        row_notes[("detectors", btn.id)] = f"push button, crossing {btn.crossing}"
    arms = {a.id: a for a in d.arms}
    for a in d.site_dict["approaches"]:
        arm = arms[a["id"]]
        edges = ", ".join(f"in {e}" for e in arm.in_edges)
        edges += (", " if edges and arm.out_edges else "") + ", ".join(
            f"out {e}" for e in arm.out_edges
        )
        row_notes[("approaches", a["id"])] = f"SUMO edges: {edges}"
    return to_toml(d.site_dict, header, row_notes)
