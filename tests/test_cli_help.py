"""Every `edge` command and option says what it is, and its help shows its default."""

from __future__ import annotations

import argparse

import pytest
from edge import cli


def _parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    captured: list[argparse.ArgumentParser] = []

    def capture(self: argparse.ArgumentParser, *a: object, **k: object) -> argparse.Namespace:
        captured.append(self)
        raise SystemExit(0)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(argparse.ArgumentParser, "parse_args", capture)
        with pytest.raises(SystemExit):
            cli.main([])  # no command: every command's parser is built
    found = []

    def walk(name: str, p: argparse.ArgumentParser) -> None:
        found.append((name, p))
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub, q in action.choices.items():
                    walk(f"{name} {sub}", q)

    walk("edge", captured[0])
    return found


def test_every_option_has_help_text() -> None:
    missing = [
        f"{name}: {action.dest}"
        for name, p in _parsers()
        for action in p._actions
        if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction))
        and not action.help
    ]
    assert missing == []


def test_help_shows_defaults_and_the_simulator_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "1000")  # no wrapping inside the names
    parsers = dict(_parsers())
    text = parsers["edge sim run"].format_help()
    assert "(default: edge)" in text and "sumo-actuated-ite" in text and "single" in text
    assert "transit" in parsers["edge run"].format_help()
    assert "(default: 1)" in parsers["edge demo"].format_help()
    assert "(default: True)" not in text  # a flag's default says nothing
    assert "(default: 8883)" in parsers["edge central priority"].format_help()


def test_the_cli_starts_where_no_scenario_is_shipped(monkeypatch: pytest.MonkeyPatch) -> None:
    # A wheel with the simulator's code but not sim/scenarios: `edge` must start.
    from sim.sumo import scenarios

    monkeypatch.setattr(scenarios, "SHIPPED", scenarios.SHIPPED / "not-in-the-wheel")
    assert "single" not in scenarios.names()
    assert dict(_parsers())["edge run"].format_help()
