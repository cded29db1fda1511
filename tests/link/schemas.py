"""Load the link's JSON schemas; validate messages against them."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

from tests.link.harness import SCHEMAS

LEAF_SCHEMA = {
    "status": "status",
    "spat": "spat",
    "counts": "counts",
    "events": "events",
    "hires": "hires",
    "j2735": "j2735",
    "ack": "ack",
    "state": "state",
    "outflow": "outflow",
    "plan": "envelope",
    "cmd": "envelope",
}


@cache
def validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{name}.json").read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FormatChecker())


def check(name: str, payload: bytes | str | dict[str, Any]) -> None:
    obj = json.loads(payload) if isinstance(payload, bytes | str) else payload
    errors = sorted(validator(name).iter_errors(obj), key=str)
    assert not errors, f"{name}: {errors[0].message} at {list(errors[0].path)} in {obj!r}"
