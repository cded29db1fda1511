"""`edge central ...`: the central side's tool for one device or a fleet.

    edge central keygen central                  # central.key (private) + central.pub
    edge central sign   --key central.key --device dev-1 --version 7 plans.toml > b.json
    edge central push   BROKER --key central.key --device dev-1 --version 7 plans.toml
    edge central priority BROKER --key central.key --device dev-1 --approach N --eta 30 \
        --vehicle E-17
    edge central cmd    BROKER --key central.key --device dev-1 '{"kind": "hold", "phases": [2, 6]}'
    edge central watch  BROKER --device dev-1 [--spat]
    edge central fleet  BROKER
    edge central rollover --root-key root.key --sequence 1 --device '*' \
        --activate central-standby.pub --revoke central.pub > rollover.json   # offline
    edge central send   BROKER --device dev-1 rollover.json   # a message signed elsewhere
    edge central enrol-token --key central.key --device dev-1 --out dev-1.token
    edge central enrol  BROKER --key central.key --ca-cert ca.crt --ca-key ca.key   # serves

BROKER is --host/--port with --cafile/--cert/--client-key (TLS, a certificate
whose CN the broker's ACL gives central's rights). The plans file is TOML:
`default_plan = "day"`, `[plans.NAME]` and optionally `[patterns.NAME]`,
`[schedule]` and `[[detectors]]` (id, delay_s, carryover_s), in the site
file's own format.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiomqtt

from edge.link import central, signing, topics
from edge.link.client import BrokerConfig
from edge.link.errors import Rejected
from edge.link.plans import check_body


def _broker_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="the MQTT broker's address")
    p.add_argument("--port", type=int, default=8883, help="the MQTT broker's port")
    p.add_argument("--cafile", help="CA certificate of the broker (enables TLS)")
    p.add_argument("--cert", help="central's client certificate")
    p.add_argument("--client-key", help="central's client certificate key")


def _broker(args: argparse.Namespace) -> BrokerConfig:
    return BrokerConfig(args.host, args.port, args.cafile, args.cert, args.client_key)


def _bundle_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--key", required=True, help="central's Ed25519 signing key (PEM)")
    p.add_argument("--device", required=True, help="the device id the bundle is for")
    p.add_argument("--version", type=int, required=True, help="above the device's last")
    p.add_argument("--ttl", type=float, default=3600, help="seconds the bundle may be accepted")
    p.add_argument("--site", help="check against this site config first (as the device will)")
    p.add_argument("plans", help="TOML: default_plan, [plans.*], [patterns.*], [schedule]")


def _signed_bundle(args: argparse.Namespace) -> bytes:
    raw = tomllib.loads(Path(args.plans).read_text(encoding="utf-8"))
    unknown = sorted(set(raw) - {"default_plan", "plans", "patterns", "schedule", "detectors"})
    if unknown:
        raise SystemExit(f"{args.plans}: unknown key(s): {', '.join(unknown)}")
    if "default_plan" not in raw or "plans" not in raw:
        raise SystemExit(f"{args.plans}: needs default_plan and [plans.NAME]")
    key = signing.load_private(args.key)
    envelope = central.signed_bundle(
        key,
        args.device,
        args.version,
        raw["plans"],
        raw["default_plan"],
        ttl_s=args.ttl,
        schedule=raw.get("schedule"),
        detectors=raw.get("detectors"),
        patterns=raw.get("patterns"),
    )
    if args.site:
        site_raw = tomllib.loads(Path(args.site).read_text(encoding="utf-8"))
        try:
            check_body(
                json.loads(envelope)["body"],
                device=args.device,
                high_water=0,
                site_raw=site_raw,
                now_ms=None,
            )
        except Rejected as rej:
            print(f"{args.plans}: the device would reject it: {rej.code}", file=sys.stderr)
            for problem in rej.reason.split("; "):
                print(f"  {problem}", file=sys.stderr)
            raise SystemExit(1) from None
    return envelope


def _print_acks(acks: list[dict[str, Any]]) -> int:
    if not acks:
        print("no acknowledgement (device offline? it gets a retained plan when it connects)")
        return 2
    for a in acks:
        extra = f" {a.get('code')}: {a.get('reason')}" if a["status"] == "rejected" else ""
        version = f" v{a['version']}" if "version" in a else ""
        print(f"{a['dev']}: {a['kind']}{version} {a['status']}{extra}")
    return 1 if acks[-1]["status"] == "rejected" else 0


def cmd_keygen(args: argparse.Namespace) -> int:
    key = signing.generate()
    priv, pub = Path(f"{args.name}.key"), Path(f"{args.name}.pub")
    if priv.exists() and not args.force:
        print(f"{priv} exists (use --force to replace it)", file=sys.stderr)
        return 1
    priv.write_bytes(signing.private_pem(key))
    priv.chmod(0o600)
    pub.write_bytes(signing.public_pem(key.public_key()))
    print(
        f"{priv} (keep it secret), {pub} (provision it on devices); key id "
        f"{signing.key_id(key.public_key())}"
    )
    return 0


def cmd_rollover(args: argparse.Namespace) -> int:
    """A key rollover signed with the root key (edge/link/keyring.py), made offline."""
    from edge.link.keyring import rollover

    activate = signing.key_id(signing.load_public(args.activate)) if args.activate else None
    raw = rollover(
        signing.load_private(args.root_key),
        args.sequence,
        args.device,
        time.time_ns() // 1_000_000,
        activate=activate,
        revoke=[signing.key_id(signing.load_public(p)) for p in args.revoke],
        standby=[signing.load_public(p) for p in args.standby],
        ttl_s=args.ttl,
    )
    sys.stdout.write(raw.decode() + "\n")
    return 0


def cmd_send(args: argparse.Namespace) -> int:
    """Publish a message signed elsewhere (a rollover) on a device's cmd topic."""
    envelope = Path(args.message).read_bytes().strip()

    async def go() -> list[dict[str, Any]]:
        async with central.connect(_broker(args)) as c:
            # retained: kept by the broker, so every connect of the device hears it
            return await central.request(
                c, args.device, "cmd", envelope, timeout_s=args.timeout, retain=args.retain
            )

    return _print_acks(asyncio.run(go()))


def cmd_sign(args: argparse.Namespace) -> int:
    sys.stdout.write(_signed_bundle(args).decode() + "\n")
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    envelope = _signed_bundle(args)

    async def go() -> list[dict[str, Any]]:
        async with central.connect(_broker(args)) as c:
            return await central.request(
                c,
                args.device,
                "plan",
                envelope,
                until=("applied", "rejected") if args.wait_applied else ("accepted", "rejected"),
                timeout_s=args.timeout,
                retain=True,
            )

    return _print_acks(asyncio.run(go()))


def _command(args: argparse.Namespace, command: dict[str, Any]) -> int:
    key = signing.load_private(args.key)
    _cid, envelope = central.signed_command(key, args.device, command, ttl_s=args.ttl)

    async def go() -> list[dict[str, Any]]:
        async with central.connect(_broker(args)) as c:
            if command["kind"] == "request_state":
                await c.subscribe(topics.topic(args.device, "state"), qos=1)
            others: list[aiomqtt.Message] = []
            acks = await central.request(
                c,
                args.device,
                "cmd",
                envelope,
                # priority requests are stored and acked "accepted"; the rest end "done"
                until=("accepted", "done", "rejected")
                if command.get("kind") in ("ev_priority", "transit_priority")
                else ("done", "rejected"),
                timeout_s=args.timeout,
                others=others,
            )
            if command["kind"] == "request_state" and acks and acks[-1]["status"] == "done":
                for msg in others:
                    if str(msg.topic).endswith("/state"):
                        print(json.dumps(json.loads(bytes(msg.payload)), indent=2))
                        break
                else:
                    async with asyncio.timeout(args.timeout):
                        async for msg in c.messages:
                            if str(msg.topic).endswith("/state"):
                                print(json.dumps(json.loads(bytes(msg.payload)), indent=2))
                                break
            return acks

    return _print_acks(asyncio.run(go()))


def cmd_priority(args: argparse.Namespace) -> int:
    cmd: dict[str, Any] = {
        "kind": "transit_priority" if args.transit else "ev_priority",
        "approach": args.approach,
        "eta_s": args.eta,
        "vehicle_id": args.vehicle,
        "cancel": args.cancel,
    }
    if args.turn is not None:
        if args.transit:
            raise SystemExit("--turn is for emergency requests, not with --transit")
        cmd["turn"] = args.turn
    if args.transit:
        cmd["route"] = args.route
    return _command(args, cmd)


def cmd_cmd(args: argparse.Namespace) -> int:
    try:
        command = json.loads(args.command)
    except ValueError as exc:
        print(f"not JSON: {exc}", file=sys.stderr)
        return 1
    return _command(args, command)


def _fmt_spat(obj: dict[str, Any]) -> str:
    names = {1: "dark", 2: "fR", 3: "r", 6: "G", 8: "Y", 9: "fY"}
    return " ".join(f"{g['sg']}{names.get(g['s'], '?')}" for g in obj.get("sg", []))


def cmd_watch(args: argparse.Namespace) -> int:
    leaves = ["status", "counts", "events", "ack", "state"] + (["spat"] if args.spat else [])

    async def go() -> None:
        async with central.connect(_broker(args)) as c:
            for leaf in leaves:
                await c.subscribe(f"{topics.ROOT}/{args.device}/{leaf}", qos=1)
            end = time.monotonic() + args.duration if args.duration else None
            async for msg in c.messages:
                parsed = topics.parse(str(msg.topic))
                if parsed is None:
                    continue
                dev, leaf = parsed
                try:
                    obj = json.loads(bytes(msg.payload))
                except ValueError:
                    obj = {"raw": repr(msg.payload)[:80]}
                if leaf == "spat":
                    line = f"{obj.get('mode')} {_fmt_spat(obj)}"
                elif leaf == "events":
                    line = "; ".join(
                        f"{e['name']} {e['subject']} {e['detail']}".strip() for e in obj["events"]
                    )
                    line = f"#{obj.get('seq')} {line}"
                else:
                    line = json.dumps(obj)
                print(f"{time.strftime('%H:%M:%S')} {dev} {leaf:7} {line}", flush=True)
                if end is not None and time.monotonic() > end:
                    return

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(go())
    return 0


def cmd_enrol(args: argparse.Namespace) -> int:
    """Answer devices' certificate requests until stopped (central's fleet CA): renewals
    over the link, first certificates (enrolment tokens) from the bootstrap listener."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from edge.device import enrol
    from edge.device.certs import load_maintenance

    key = signing.load_private(args.key)
    ca_cert = x509.load_pem_x509_certificate(Path(args.ca_cert).read_bytes())
    ca_key = serialization.load_pem_private_key(Path(args.ca_key).read_bytes(), None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        print(f"edge central enrol: --ca-key {args.ca_key}: not an EC key", file=sys.stderr)
        return 2
    try:
        record = load_maintenance(Path(args.maintenance)) if args.maintenance else {}
    except ValueError as exc:
        print(f"edge central enrol: --maintenance {exc}", file=sys.stderr)
        return 2
    try:
        ledger = enrol.Ledger(Path(args.ledger))
    except enrol.EnrolError as exc:
        print(f"edge central enrol: --ledger {exc}", file=sys.stderr)
        return 2
    trusted = {signing.key_id(key.public_key()): key.public_key()}

    async def renewals() -> None:
        async with central.connect(_broker(args), identifier="central-enrol", persistent=True) as c:
            await central.answer_cert_requests(c, key, ca_cert, ca_key, maintenance=record)

    async def enrolments() -> None:  # the bootstrap broker, its central listener
        broker = replace(_broker(args), port=args.enrol_port)
        # central.connect's fresh id: nobody can guess it to take this session over
        async with central.connect(broker) as c:
            await central.answer_enrolments(c, trusted, ca_cert, ca_key, ledger, record)

    async def go() -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(renewals())
            tg.create_task(enrolments())

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(go())
    return 0


def cmd_enrol_token(args: argparse.Namespace) -> int:
    """A single-use enrolment token for one device (edge/device/enrol.py), written 600."""
    import datetime
    import os

    from edge.device import enrol

    if not topics.valid_device_id(args.device):
        print(
            f"edge central enrol-token: --device {args.device!r}: not a device id", file=sys.stderr
        )
        return 2
    key = signing.load_private(args.key)
    try:
        token = enrol.make_token(key, args.device, datetime.datetime.now(datetime.UTC), args.hours)
    except enrol.EnrolError as exc:
        print(f"edge central enrol-token: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(token)
    print(f"{out}: enrols {args.device} once, within {args.hours:g} h (flash.sh --enrol-token)")
    return 0


def cmd_fleet(args: argparse.Namespace) -> int:
    """Retained status of every device: who is online, with which plan and mode."""

    async def go() -> dict[str, dict[str, Any]]:
        seen: dict[str, dict[str, Any]] = {}
        async with central.connect(_broker(args)) as c:
            await c.subscribe(topics.fleet("status"), qos=1)
            try:
                async with asyncio.timeout(args.wait):
                    async for msg in c.messages:
                        parsed = topics.parse(str(msg.topic))
                        if parsed is not None:
                            try:
                                seen[parsed[0]] = json.loads(bytes(msg.payload))
                            except ValueError:
                                seen[parsed[0]] = {"state": "garbled"}
            except TimeoutError:
                pass
        return seen

    seen = asyncio.run(go())
    if args.json:
        print(json.dumps(seen))
        return 0
    head = f"{'device':<20}{'state':<9}{'mode':<17}{'plan':<10}{'version':>8}  "
    print(f"{head}{'central':<8}config")
    for dev, st in sorted(seen.items()):
        print(
            f"{dev:<20}{st.get('state', '?'):<9}{st.get('mode', ''):<17}{st.get('plan', ''):<10}"
            f"{st.get('plan_version', ''):>8}  {st.get('central', ''):<8}"
            f"{st.get('config_hash', '')}"
        )
    online = sum(1 for s in seen.values() if s.get("state") == "online")
    print(f"{len(seen)} devices, {online} online")
    return 0


def add_central_command(sub: Any) -> None:
    """Add `edge central ...` to the main parser's subcommands."""
    p = sub.add_parser("central", help="central side: keys, plan bundles, commands, watch, fleet")
    csub = p.add_subparsers(dest="central_command", required=True)

    q = csub.add_parser("keygen", help="make central's Ed25519 signing key pair")
    q.add_argument("name", help="writes NAME.key and NAME.pub")
    q.add_argument("--force", action="store_true", help="overwrite existing key files")
    q.set_defaults(func=cmd_keygen)

    q = csub.add_parser("sign", help="sign a plan bundle; print the envelope")
    _bundle_args(q)
    q.set_defaults(func=cmd_sign)

    q = csub.add_parser("push", help="sign and push a plan bundle; wait for the device's ack")
    _bundle_args(q)
    _broker_args(q)
    q.add_argument("--wait-applied", action="store_true", help="wait for applied, not accepted")
    q.add_argument("--timeout", type=float, default=30, help="seconds to wait for the ack")
    q.set_defaults(func=cmd_push)

    q = csub.add_parser("priority", help="send an emergency (or transit) priority request")
    _broker_args(q)
    q.add_argument("--key", required=True, help="central's Ed25519 signing key (PEM)")
    q.add_argument("--device", required=True, help="the device id to send to")
    q.add_argument("--approach", required=True, help="the approach id of the site, e.g. N")
    q.add_argument("--eta", type=float, required=True, help="seconds to the stop line")
    q.add_argument("--vehicle", required=True, help="the vehicle's id (cancel names it again)")
    q.add_argument(
        "--turn", choices=("L", "T", "R"), help="the vehicle's turn (a turn's own preempt)"
    )
    q.add_argument("--transit", action="store_true", help="a transit (bus) request")
    q.add_argument("--route", default="", help="the vehicle's route or line, for the log")
    q.add_argument("--cancel", action="store_true", help="the vehicle has passed or left")
    q.add_argument("--ttl", type=float, default=120, help="seconds the request stays valid")
    q.add_argument("--timeout", type=float, default=10, help="seconds to wait for the ack")
    q.set_defaults(func=cmd_priority)

    q = csub.add_parser(
        "cmd", help="send a signed command given as JSON (see schemas/command.json)"
    )
    _broker_args(q)
    q.add_argument("--key", required=True, help="central's Ed25519 signing key (PEM)")
    q.add_argument("--device", required=True, help="the device id to send to")
    q.add_argument("--ttl", type=float, default=60, help="seconds the command stays valid")
    q.add_argument("--timeout", type=float, default=10, help="seconds to wait for the ack")
    q.add_argument("command", help='e.g. \'{"kind": "request_state"}\'')
    q.set_defaults(func=cmd_cmd)

    q = csub.add_parser("rollover", help="sign a key rollover with the offline root key; print it")
    q.add_argument("--root-key", required=True, help="the root's Ed25519 private key (PEM)")
    q.add_argument("--sequence", type=int, required=True, help="above every rollover before")
    q.add_argument("--device", required=True, help="a device id, or * for every device")
    q.add_argument("--activate", help="the standby public key to make active (PEM)")
    q.add_argument("--revoke", nargs="*", default=[], help="public keys to revoke (PEM)")
    q.add_argument("--standby", nargs="*", default=[], help="the next standby keys (PEM)")
    q.add_argument("--ttl", type=float, default=7 * 86400, help="seconds it may be applied")
    q.set_defaults(func=cmd_rollover)

    q = csub.add_parser("send", help="send a message signed elsewhere (a key rollover)")
    _broker_args(q)
    q.add_argument("--device", required=True, help="the device id to send to")
    q.add_argument("--timeout", type=float, default=10, help="seconds to wait for the ack")
    q.add_argument(
        "--retain",
        action="store_true",
        help="also keep it retained on the device's cmd topic (the latest root-signed key "
        "statement: a device whose key state was lost waits for it)",
    )
    q.add_argument("message", help="the signed envelope's file")
    q.set_defaults(func=cmd_send)

    q = csub.add_parser("watch", help="print a device's status, counts, events and acks live")
    _broker_args(q)
    q.add_argument("--device", required=True, help="a device id, or + for all")
    q.add_argument("--spat", action="store_true", help="SPaT too (10 lines a second)")
    q.add_argument("--duration", type=float, default=0, help="stop after S seconds")
    q.set_defaults(func=cmd_watch)

    q = csub.add_parser("enrol", help="answer devices' certificate requests (fleet CA)")
    _broker_args(q)
    q.add_argument("--key", required=True, help="central's Ed25519 signing key (PEM)")
    q.add_argument("--ca-cert", required=True, help="the fleet CA certificate (PEM)")
    q.add_argument("--ca-key", required=True, help="the fleet CA's private key (PEM), central's")
    q.add_argument(
        "--ledger",
        default="enrol-ledger.json",
        help="central's record of used tokens and answered requests (kept until they expire)",
    )
    q.add_argument(
        "--enrol-port",
        type=int,
        default=8885,
        help="the bootstrap broker's listener for central (mutual TLS) on --host: where "
        "token-only devices' first requests arrive",
    )
    q.add_argument(
        "--maintenance",
        metavar="FILE",
        help='the devices\' maintenance addresses (TOML: DEVICE = "ADDRESS"): their '
        "certificates serve the page there (serverAuth), renewals included",
    )
    q.set_defaults(func=cmd_enrol)

    q = csub.add_parser("enrol-token", help="a single-use enrolment token for one device")
    q.add_argument("--key", required=True, help="central's Ed25519 signing key (PEM)")
    q.add_argument("--device", required=True, help="the device id it enrols")
    q.add_argument("--hours", type=float, default=24, help="how long it is valid (24 at most)")
    q.add_argument("--out", required=True, help="the token's file (made 600; not overwritten)")
    q.set_defaults(func=cmd_enrol_token)

    q = csub.add_parser("fleet", help="list every device with its retained status")
    _broker_args(q)
    q.add_argument("--wait", type=float, default=1.5, help="seconds to collect statuses")
    q.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    q.set_defaults(func=cmd_fleet)
