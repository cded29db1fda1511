"""Errors of the SUMO layer: what the CLI turns into a clear message and a non-zero exit."""

from __future__ import annotations


class SimError(Exception):
    """Something about the scenario, SUMO or a run that stops the command."""


class DerivationError(SimError):
    """A junction whose site config cannot be derived; `reasons` says why, one line each."""

    def __init__(self, tls: str, reasons: list[str]) -> None:
        self.tls = tls
        self.reasons = reasons
        text = "; ".join(reasons)
        super().__init__(f"traffic light {tls!r}: cannot derive a site config: {text}")
