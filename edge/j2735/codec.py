"""UPER encoding of J2735 MessageFrames (SPaT 19, MAP 18) with asn1tools.

Rules it keeps:
- The encoder is asn1tools (pure Python; its one compiled helper, bitstruct, has a pure
  Python core), compiled from the ETSI DSRC modules in asn1/ (BSD-3) plus this project's
  MessageFrame (asn1/J2735-MessageFrame.asn). pycrate is the tests' decoder: another
  compiler and codec, so an encoding error is not hidden by the same bug decoding it.
- The parsed modules ship as asn1/parsed.txt (a Python literal): compiling from it takes
  about 0.8 s on a PC, where parsing the text takes ~6 s. `--write-parsed` regenerates
  it; tests/j2735 checks it equals what the text parses to.
- `codec()` compiles once per process (thread-safe); an invalid value raises
  `EncodeError` naming the message.
"""

from __future__ import annotations

import ast
import sys
import threading
from pathlib import Path
from typing import Any

ASN1_DIR = Path(__file__).parent / "asn1"
MODULES = (
    "ISO-TS-19091-addgrp-C-2018.asn",
    "TS102894-2v131-CDD.asn",
    "ISO24534-3_ElectronicRegistrationIdentificationVehicleDataModule-patched.asn",
    "J2735-MessageFrame.asn",
)
PARSED = ASN1_DIR / "parsed.txt"

MAP_ID = 18  # DSRCmsgID mapData
SPAT_ID = 19  # DSRCmsgID signalPhaseAndTimingMessage
_TYPE = {MAP_ID: "MapData", SPAT_ID: "SPAT"}

_lock = threading.Lock()
_compiled: Any = None


class EncodeError(ValueError):
    """A message the ASN.1 types refuse: which one and why."""


def parse_modules() -> dict[str, Any]:
    """The ASN.1 text parsed (slow: pyparsing)."""
    import asn1tools

    parsed: dict[str, Any] = asn1tools.parse_files([str(ASN1_DIR / m) for m in MODULES])
    return parsed


def codec() -> Any:
    """The compiled UPER specification (once per process)."""
    global _compiled
    with _lock:
        if _compiled is None:
            import asn1tools

            _compiled = asn1tools.compile_dict(ast.literal_eval(PARSED.read_text()), "uper")
        return _compiled


def encode(message_id: int, value: dict[str, Any]) -> bytes:
    """One MessageFrame: `value` is the SPAT or MapData as asn1tools takes it."""
    name = _TYPE[message_id]
    spec = codec()
    try:
        inner = spec.encode(name, value, check_constraints=True)
        frame: bytes = spec.encode("MessageFrame", {"messageId": message_id, "value": inner})
    except Exception as exc:  # asn1tools raises its own EncodeError/ConstraintsError types
        raise EncodeError(f"J2735 {name}: {exc}") from exc
    return frame


def main(argv: list[str]) -> int:
    if argv != ["--write-parsed"]:
        print("usage: python -m edge.j2735.codec --write-parsed", file=sys.stderr)
        return 2
    PARSED.write_text(repr(parse_modules()) + "\n")
    print(PARSED)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
