"""`edge atspm export --since T [--format xml|datz|csv]`: the device's hi-res log, exported.

Reads the `hires-log` store (edge/atspm/device.py: hires.sqlite beside the device store
flash.sh's device.toml names, or `--store`), alongside a running `edge run` (SQLite WAL:
a reader never blocks the writer). `xml` is MaxTime's document, `csv` the ATSPM columns
(to stdout or `-o FILE`); `datz` writes 15-minute ASC/3 files into `-o DIR`.
Times are the device's clock (UTC), `--since`/`--until` as ISO 8601 or MM-DD-YYYY HH:MM:SS.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edge.atspm.formats import (
    Record,
    csv_header,
    csv_rows,
    datz,
    parse_since,
    split_files,
    xml_lines,
)


def add_atspm_command(sub: Any) -> None:
    p = sub.add_parser("atspm", help="the ATSPM hi-res event log (Indiana enumerations)")
    asub = p.add_subparsers(dest="atspm_command", required=True)
    e = asub.add_parser("export", help="export the stored hi-res log")
    e.add_argument("--since", required=True, help="from this time (UTC), e.g. 2026-01-05T07:00")
    e.add_argument("--until", help="up to (not including) this time")
    e.add_argument(
        "--format",
        choices=("xml", "datz", "csv"),
        default="xml",
        help="xml as MaxTime serves it, an ASC/3-style .datZ, or ATSPM's CSV",
    )
    e.add_argument("--device", default="/etc/edge/device.toml", help="the device's identity file")
    e.add_argument("--store", help="the hi-res store itself (instead of --device)")
    e.add_argument("--name", default="edge", help="DeviceId in csv, resource in .datZ")
    e.add_argument("-o", "--output", help="file (xml, csv; default stdout) or folder (datz)")
    e.set_defaults(func=cmd_export)


def _fail(text: str) -> int:
    print(f"edge atspm: error: {text}", file=sys.stderr)
    return 1


def cmd_export(args: argparse.Namespace) -> int:
    from edge.atspm.device import hires_path
    from edge.atspm.store import HiResStore
    from edge.atspm.web import wall, wall_ms

    try:
        since = wall_ms(parse_since(args.since))
        until = wall_ms(parse_since(args.until)) if args.until else None
    except ValueError as exc:
        return _fail(str(exc))
    if args.store:
        path = Path(args.store)
    else:
        from edge.device.eventlog import device_store

        try:
            db = device_store(args.device)
        except (OSError, ValueError) as exc:
            return _fail(f"{args.device}: {exc}")
        if db is None:
            return _fail(f"{args.device}: names no store ([device] store): no hi-res log")
        path = hires_path(db)
    if not path.exists():
        return _fail(f"{path}: no hi-res log there (is `edge run --device` running?)")
    store = HiResStore(path)
    try:
        records = (Record(wall(e.t_ms), e.code, e.param) for e in store.iter_since(since, until))
        if args.format == "datz":
            out = Path(args.output or ".")
            out.mkdir(parents=True, exist_ok=True)
            for start, chunk in split_files(records):  # a quarter hour in memory at a time
                f = out / f"{args.name}_{start:%Y_%m_%d_%H%M}.datZ"
                f.write_bytes(datz(start, chunk, resource=args.name))
                print(f)
            return 0
        if args.format == "xml":
            lines: Iterator[str] = xml_lines(records)
        else:
            lines = itertools.chain([csv_header()], (csv_rows(args.name, [r]) for r in records))
        with open(args.output, "w") if args.output else contextlib.nullcontext(sys.stdout) as fh:
            fh.writelines(lines)
    finally:
        store.close()
    return 0
