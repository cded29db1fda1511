"""`edge bench traffic` / `edge bench suite` rows: the emergency vehicles' delay per signal is
docs/priority.md's (approach to junction exit: `ev_at_signal_median_s`), as `edge sim
compare` prints it, not the loss between one stop line and the next."""

from __future__ import annotations

from sim.sumo.bench import aggregate


def _report(seed: int, at_signal: float, between: float) -> dict[str, object]:
    return {
        "scenario_name": "arterial",
        "controller": "edge",
        "seed": seed,
        "wall_s": 1.0,
        "mean_delay_s": 30.0,
        "ev_at_signal_median_s": at_signal,
        "ev_signal_delay_median_s": between,  # the old column: between stop lines
    }


def test_the_rows_carry_the_per_signal_delay_of_docs_priority() -> None:
    reports = [_report(1, 1.0, 9.0), _report(2, 3.0, 11.0)]
    (row,) = aggregate(reports, lambda r: (str(r["scenario_name"]), str(r["controller"])))
    assert row["ev_at_signal_median_s"] == 2.0  # mean over seeds of the per-seed medians
    assert row["ev_at_signal_median_sd_s"] is not None
    assert "ev_signal_delay_median_s" not in row
