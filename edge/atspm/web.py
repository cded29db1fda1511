"""The page's ATSPM collection route: MaxTime's `GET /v1/asclog/xml/full?since=...`.

ATSPM's MaxTime collector (its "Maxtime To Indiana Decoder") asks this path with
`since=MM-dd-yyyy HH:mm:ss.f` and reads the `Event` elements (edge/atspm/formats.py).
The route serves the `hires-log` extension's store (edge/atspm/device.py), oldest first,
at most MAX_EVENTS a request (ask again from the last TimeStamp for more), read and
rendered in a worker thread (never in the event loop the control tick runs in); times are
the device's clock (UTC). It is a read like the page's other reads: behind a technician's
session (a collector logs in with POST /api/login first), registered here so the
page's own module stays small.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated

from fastapi import FastAPI, HTTPException, Query, Response
from fastapi.params import Depends

from edge.atspm.formats import Record, parse_since, xml

if TYPE_CHECKING:
    from edge.runtime import Runtime

MAX_EVENTS = 100_000
PATH = "/v1/asclog/xml/full"
_EPOCH = datetime(1970, 1, 1)


def wall(t_ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=t_ms)


def wall_ms(at: datetime) -> int:
    return round((at - _EPOCH).total_seconds() * 1000)


def add_routes(app: FastAPI, rt: Runtime, signed_in: Sequence[Depends]) -> None:
    @app.get(
        PATH,
        dependencies=list(signed_in),
        response_class=Response,
        responses={200: {"content": {"application/xml": {}}}, 404: {}, 422: {}},
    )
    async def asclog_full(
        since: Annotated[str | None, Query(max_length=40)] = None,
    ) -> Response:
        """The hi-res event log (Indiana enumerations) as MaxTime serves it."""
        ext = rt.extensions.get("hires-log")
        if ext is None or not hasattr(ext, "since"):
            raise HTTPException(404, "no hi-res event log on this device (no device store)")
        try:
            since_ms = wall_ms(parse_since(since)) if since else 0
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None

        def build() -> str:  # off the event loop: the control tick runs in it
            events = ext.since(since_ms, MAX_EVENTS)
            return xml(Record(wall(e.t_ms), e.code, e.param) for e in events)

        body = await asyncio.to_thread(build)
        return Response(body, media_type="application/xml", headers={"Cache-Control": "no-store"})
