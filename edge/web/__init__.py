"""The technician's page: a FastAPI app served by the runtime on a local port.

`layout` draws the intersection from the site (pure), `live` turns the running
controller and board into snapshots and keeps the last hour (per tick, cheap),
`app` is the JSON API and the static page, `server` runs uvicorn as the
runtime's `web` task in the runtime's own event loop.
"""

LOOPBACK = "127.0.0.1"  # where the page listens unless told otherwise (`--web-host`)
