"""The self-test flash.sh ends with: each part OK, FAIL (with the fix to try) or not configured.

Two ways to get the runtime's state: run the runtime here for a few seconds
(an SD card being flashed on the laptop, with the board's protocol port on
the laptop), or read the status snapshot of the service running on the Pi
(`--from-status`, what flash.sh --ssh runs there). The report is the same.

    python -m edge.device.selftest --device DEVICE.toml [--port BOARD_PORT] [--max-wait 25]
    python -m edge.device.selftest --from-status /run/edge/status.json
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RUNNING = "running"


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    verdict: str  # "OK" | "FAIL" | "SKIP" (not configured / not asked for)
    detail: str
    fix: str = ""


def checks(st: dict[str, Any], board_port: str | None) -> list[Check]:
    """The report for one status snapshot (Runtime.status())."""
    out = []
    session = st.get("session")
    if board_port is None:
        out.append(Check("board", "SKIP", "no board port given (--selftest-port): not checked"))
    elif session == RUNNING:
        out.append(
            Check(
                "board",
                "OK",
                f"handshake done, firmware {st.get('board_firmware')}, config hash "
                f"{st.get('board_config_hash')} accepted, board {st.get('board_state')}",
            )
        )
    else:
        out.append(
            Check(
                "board",
                "FAIL",
                f"session {session}, board {st.get('board_state')} on {board_port}",
                "check the cable to the IO board and its power; that it runs the firmware "
                "(flash.sh --board PORT); then `journalctl -u edge -n 50` for board_ events",
            )
        )
    cams = st.get("cameras")
    if cams is None:
        out.append(Check("cameras", "SKIP", "none configured"))
        out.append(Check("model", "SKIP", "none (no cameras, no vehicle model)"))
    else:
        bad = [c for c in cams if c.get("health") != "ok"]
        if bad:
            out.append(
                Check(
                    "cameras",
                    "FAIL",
                    ", ".join(f"{c.get('id')}: {c.get('health')}" for c in bad),
                    "check the camera's cable or RTSP address and its lens; `edge status`",
                )
            )
        else:
            out.append(Check("cameras", "OK", f"{len(cams)} opened"))
        out.append(Check("model", "OK" if not bad else "FAIL", "running on the camera frames"))
    link = st.get("link")
    if link is None:
        out.append(Check("broker", "SKIP", "not configured"))
    elif link.get("enrol") and link.get("connected"):
        detail = f"bootstrap listener {link.get('broker')} answers (TLS, the fleet CA)"
        out.append(Check("broker", "OK", f"{detail}; the device enrols at its first boot"))
    elif link.get("enrol"):
        out.append(
            Check(
                "broker",
                "FAIL",
                f"bootstrap listener {link.get('broker')}: {link.get('last_error')}",
                "check the network, the broker address and its bootstrap listener "
                "(device.toml's enrol_port), and that its certificate chains to the fleet CA",
            )
        )
    elif link.get("connected"):
        out.append(Check("broker", "OK", f"connected to {link.get('broker')}"))
    else:
        out.append(
            Check(
                "broker",
                "FAIL",
                f"not connected to {link.get('broker')}: {link.get('last_error') or 'no answer'}",
                "check the network and the broker address; that the broker trusts the fleet CA "
                "and the device certificate's CN is the device id",
            )
        )
    ticks = int(st.get("ticks", 0))
    if ticks > 0:
        p99 = st.get("jitter_ms", {}).get("p99", 0.0)
        out.append(
            Check("control", "OK", f"{ticks} ticks, mode {st.get('mode')}, jitter p99 {p99:.1f} ms")
        )
    else:
        out.append(
            Check("control", "FAIL", "no control ticks", "see `journalctl -u edge` for the error")
        )
    return out


def print_report(results: list[Check]) -> bool:
    print("self-test:")
    for c in results:
        print(f"  {c.verdict:4}  {c.name:8} {c.detail}")
        if c.fix:
            print(f"        fix: {c.fix}")
    ok = all(c.verdict != "FAIL" for c in results)
    print("self-test: " + ("OK" if ok else "FAILED (see the fixes above)"))
    return ok


def _done(st: dict[str, Any], port: str | None, link: bool) -> bool:
    board_ok = port is None or st.get("session") == RUNNING
    link_ok = not link or bool((st.get("link") or {}).get("connected"))
    return bool(st.get("ticks")) and board_ok and link_ok


async def run_here(device_toml: str, port: str | None, max_wait_s: float) -> dict[str, Any]:
    """Run the runtime on this computer until everything is up (or max_wait_s)."""
    from edge.assemble import site_extensions
    from edge.config import load_config
    from edge.device import bootstrap
    from edge.device.central import Central, load_central
    from edge.extensions import Task
    from edge.runtime import Runtime

    base = Path(device_toml).parent
    config = load_config(base / "site.toml")
    link_cfg = load_central(device_toml)
    enrol: dict[str, Any] | None = None
    if link_cfg is not None and bootstrap.needed(link_cfg):
        # The token is the device's to spend at its first boot, with a key made there:
        # here only the bootstrap listener is checked, and the link is not started.
        why = await bootstrap.probe(link_cfg)
        where = f"{link_cfg.broker.host}:{link_cfg.enrol_port}"
        enrol = {"enrol": True, "connected": why is None, "broker": where, "last_error": why}
        link_cfg = None
    extensions = [Central(link_cfg)] if link_cfg is not None else []
    # Without a board the runtime still ticks (the board part is reported SKIP).
    rt = Runtime(
        config,
        port or "/nonexistent/edge-selftest",
        extensions=[*extensions, *site_extensions(config)],
    )
    snapshot: dict[str, Any] = {}

    async def watch() -> None:
        end = time.monotonic() + max_wait_s
        while time.monotonic() < end:
            await asyncio.sleep(0.5)
            snapshot.update(rt.status())
            if _done(snapshot, port, link_cfg is not None) and rt.ticks >= 10:
                break
        rt.request_stop("selftest_done")

    rt.add(Task("selftest", watch))
    await rt.run()
    if enrol is not None:
        snapshot["link"] = enrol
    return snapshot


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m edge.device.selftest", description=__doc__)
    p.add_argument("--device", help="device.toml (site.toml next to it)")
    p.add_argument("--port", help="the IO board's protocol port")
    p.add_argument("--max-wait", type=float, default=25.0, help="seconds")
    p.add_argument("--from-status", help="read the running service's status file instead")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="  log: %(levelname)s %(message)s")
    if args.from_status:
        import json

        from edge.device.update import read_status

        try:  # root reads the service's file: never through a link, never blocking
            st = json.loads(read_status(Path(args.from_status)))
        except (OSError, ValueError) as exc:
            print(f"self-test: no status from the service ({exc}); is edge.service running?")
            return 1
        return 0 if print_report(checks(st, "service")) else 1
    if not args.device:
        p.error("--device or --from-status")
    st = asyncio.run(run_here(args.device, args.port, args.max_wait))
    return 0 if print_report(checks(st, args.port)) else 1


if __name__ == "__main__":
    sys.exit(main())
