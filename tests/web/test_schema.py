"""Property-based API test: schemathesis generates requests from the page's OpenAPI document.

Valid and invalid bodies and query strings against the app in-process (over a
real Runtime; no credentials file, so manual control answers 403 without the
scrypt wait and the controller is never commanded): every answer must be documented,
well-formed and never a server error. Bounded (25 examples per operation,
EDGE_WEB_SCHEMA_EXAMPLES for a longer run) so it takes seconds; the live stream
is left out (it never ends).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings

from tests.hypothesis_profiles import examples
from tests.web.inproc import FakeLink, FakeSensing, Stepper, app_for, make_runtime, signed_in

_rt = make_runtime()
_rt.sensing = FakeSensing()
_rt.link = FakeLink()
_creds = Path(__file__).parent / "no-such-credentials.json"  # manual control refused: 403
_app, _recorder = app_for(_rt, _creds)
Stepper(_rt, _recorder).step(150)

# a technician's session for the reads (logging out would end it: not called)
_cookie = "; ".join(f"{k}={v}" for k, v in signed_in(_app).items())
schema = (
    schemathesis.openapi.from_asgi("/openapi.json", _app, headers={"Cookie": _cookie})
    .exclude(path="/api/stream")
    .exclude(path="/api/logout")
)


@schema.parametrize()
@settings(
    max_examples=examples(int(os.environ.get("EDGE_WEB_SCHEMA_EXAMPLES", "25"))),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_conforms_to_its_openapi_document(case: schemathesis.Case[Any]) -> None:
    case.call_and_validate(headers={"Cookie": _cookie})
