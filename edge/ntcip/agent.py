"""The `ntcip` extension: an SNMPv3 agent (pysnmp) serving NTCIP 1202 v03 objects.

The rules it keeps (edge/extensions.py's for a tick extension, and):
- The tick only hands its record to this extension's tick hook; the hook's thread turns
  it into a `Status` (edge/ntcip/core.py) and swaps it in. The SNMP engine runs in its
  own thread with its own event loop (SNMPv3's decoding and crypto cost milliseconds a
  request: never in the runtime's loop, where the tick runs); it answers from the
  latest Status and the agent's remote state, never the live controller. The object
  table is built once per Status and remote state, not per request.
- SNMPv3 only, each user with authentication and privacy (SHA, AES); reads of the ASC
  tree for every user; SETs only with `sets` on (otherwise refused: noAccess, and
  nothing changes). edge/ntcip/settings.py loads the users.
- A SET is checked whole first (edge/ntcip/mib.py `plan_set`): a bad varbind is an
  SNMP error at its index and nothing is applied. An accepted one becomes the core's
  commands, queued on the driver as the MQTT link's are (edge/device/central.py), in
  the runtime's loop, all of one SET in one callback (so in one step); and
  edge/control/commands.py checks and applies them at that step.
- The backup timer: unitBackupTime seconds after the last accepted SET (0: never),
  remote control is released (`mib.release`) and the unit reports backup mode
  (`ntcip_backup_expired` in the log).
- The engine keeps the device's snmpEngineID and a snmpEngineBoots one higher at every
  start of the engine (edge/ntcip/settings.py), so managers' cached keys go on working.
- A GETBULK asking more repeating varbinds than pysnmp's responder serves (64: it
  would answer nothing and log a traceback) is refused whole with tooBig (`_bulk`),
  before pysnmp's responder sees it.
- The socket is bound when the extension is built (a port in use is a start-up error,
  edge/assemble.py); a restart of the task binds it again.
"""

from __future__ import annotations

import asyncio
import bisect
import concurrent.futures
import logging
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

from edge.extensions import Extension
from edge.ntcip import mib
from edge.ntcip.core import Status, status_of
from edge.ntcip.settings import SnmpSettings, next_boots

if TYPE_CHECKING:
    from edge.runtime import Runtime
    from edge.tickhooks import Tick

log = logging.getLogger(__name__)

BACKUP_CHECK_S = 0.2  # also how soon the agent's thread sees a stop
STOP_S = 2.0  # the agent's thread ends within this at a stop


class SnmpBindError(OSError):
    """The agent's UDP port cannot be bound."""


def bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SnmpBindError(f"SNMP agent: cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.setblocking(False)
    return sock


class NtcipAgent(Extension):
    name = "ntcip"
    ticks = True
    queue_ticks = 2  # only the newest record matters

    def __init__(self, settings: SnmpSettings) -> None:
        if not settings.users:
            raise ValueError("SNMP agent: no SNMPv3 user configured")
        self.settings = settings
        self.sock: socket.socket | None = bind(settings.host, settings.port)
        self.port = self.sock.getsockname()[1]  # port 0: the one the system chose
        self.rt: Runtime | None = None
        self.status = Status()
        self.remote = mib.Remote(backup_s=settings.backup_s)
        self.last_set = time.monotonic()
        self.sets_accepted = 0
        self.sets_refused = 0
        self.requests = 0  # GET, GETNEXT, GETBULK and SET requests answered or refused
        self.bulk_refused = 0  # GETBULKs refused with tooBig
        self.boots = 0  # snmpEngineBoots of the running engine (0: not started)
        self.lock = threading.Lock()  # remote state: SETs and the backup timer
        self.loop: asyncio.AbstractEventLoop | None = None  # the runtime's
        self._table: tuple[Status, mib.Remote, list[mib.Oid], dict[mib.Oid, int]] | None = None

    def start(self, rt: Runtime) -> None:
        self.rt = rt

    def on_tick(self, tick: Tick) -> None:
        assert self.rt is not None
        self.status = status_of(tick, self.rt.site)

    # -- requests (in the agent's thread) -------------------------------------------------

    def table(self) -> tuple[list[mib.Oid], dict[mib.Oid, int]]:
        assert self.rt is not None
        status, remote, cached = self.status, self.remote, self._table
        if cached is not None and cached[0] is status and cached[1] is remote:
            return cached[2], cached[3]
        values = mib.read_table(self.rt.site, status, remote)
        self._table = (status, remote, sorted(values), values)
        return self._table[2], values

    def _queue(self, commands: list[object]) -> None:
        """Hand commands to the driver in the runtime's loop, all in one callback."""
        assert self.rt is not None
        driver = self.rt.driver

        def apply() -> None:
            for cmd in commands:
                driver.command(cmd)

        loop = self.loop
        if loop is None or loop.is_closed():
            apply()  # not running (a test's direct call): nothing else touches the queue
        else:
            try:
                in_loop = asyncio.get_running_loop() is loop
            except RuntimeError:
                in_loop = False
            if in_loop:
                apply()
            else:
                loop.call_soon_threadsafe(apply)

    def scheduled_plan(self) -> str:
        assert self.rt is not None
        return self.rt.plan or self.rt.site.default_plan

    def set(self, varbinds: list[tuple[mib.Oid, object]]) -> None:
        """Check and apply a SET (raises mib.SetRefused: nothing applied)."""
        assert self.rt is not None
        with self.lock:
            try:
                remote, commands = mib.plan_set(
                    self.rt.site, self.status, self.remote, varbinds, self.scheduled_plan()
                )
            except mib.SetRefused as exc:
                self.sets_refused += 1
                log.warning("ntcip_set_refused error=%s %s", exc.error, exc)
                raise
            self._queue(commands)
            if self.remote.lapsed:
                log.info("ntcip_remote_resumed")
            self.remote = remote
            self.last_set = time.monotonic()
            self.sets_accepted += 1
        log.info("ntcip_set_applied commands=%s", ", ".join(map(repr, commands)) or "none")

    def check_backup(self, now: float) -> None:
        with self.lock:
            r = self.remote
            if r.backup_s == 0 or r.lapsed or not r.active or now - self.last_set < r.backup_s:
                return
            assert self.rt is not None
            self.remote, commands = mib.release(self.rt.site, r, self.scheduled_plan())
            self._queue(commands)
        log.warning(
            "ntcip_backup_expired no SET for %d s: releasing %s",
            r.backup_s,
            ", ".join(map(repr, commands)),
        )

    # -- the task ----------------------------------------------------------------------

    async def run(self) -> None:
        """The agent's thread runs the engine; this task ends it (and fails with it)."""
        self.loop = asyncio.get_running_loop()
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        stop = threading.Event()
        thread = threading.Thread(
            target=self._serve, args=(done, stop), name="ntcip-agent", daemon=True
        )
        thread.start()
        try:
            await asyncio.wrap_future(done)
        finally:
            stop.set()
            await asyncio.to_thread(thread.join, STOP_S)

    def _serve(self, done: concurrent.futures.Future[None], stop: threading.Event) -> None:
        try:
            asyncio.run(self._serve_loop(stop))
        except BaseException as exc:  # to the runtime: logged, the task restarted
            if not done.done():  # a stop cancels it
                done.set_exception(exc)
        else:
            if not done.done():
                done.set_result(None)

    async def _serve_loop(self, stop: threading.Event) -> None:
        engine = self._engine()
        try:
            while not stop.is_set():
                await asyncio.sleep(BACKUP_CHECK_S)
                self.check_backup(time.monotonic())
        finally:
            engine.close_dispatcher()

    def _engine(self) -> Any:
        from pysnmp.carrier.asyncio.dgram import udp
        from pysnmp.entity import config, engine
        from pysnmp.entity.rfc3413 import context

        sock = self.sock if self.sock is not None else bind(self.settings.host, self.port)
        self.sock = None  # the transport owns it now; a restart binds anew
        snmp = engine.SnmpEngine()
        self._identity(snmp)
        config.add_transport(
            snmp, udp.DOMAIN_NAME, udp.UdpAsyncioTransport().open_server_mode(sock=sock)
        )
        for user in self.settings.users:
            config.add_v3_user(
                snmp, user.name,
                config.USM_AUTH_HMAC96_SHA, user.auth,
                config.USM_PRIV_CFB128_AES, user.priv,
            )  # fmt: skip
            config.add_vacm_user(
                snmp, 3, user.name, "authPriv",
                readSubTree=mib.ASC, writeSubTree=mib.ASC if self.settings.sets else (),
            )  # fmt: skip
        ctx = context.SnmpContext(snmp)
        ctx.unregister_context_name(b"")
        ctx.register_context_name(b"", _instrum(self))
        for responder in _responders(self):
            responder(snmp, ctx)
        snmp.transport_dispatcher.job_started(1)
        log.info(
            "ntcip_agent_listening host=%s port=%d users=%s sets=%s",
            self.settings.host, self.port,
            ",".join(u.name for u in self.settings.users), self.settings.sets,
        )  # fmt: skip
        return snmp

    def _identity(self, snmp: Any) -> None:
        """The device's engine id and this start's boots, set before the users' keys are
        localized to the id. Set on the MIB after the engine is made: given to
        SnmpEngine(), pysnmp would keep its own boots count in the system's temp dir."""
        builder = snmp.get_mib_builder()
        (boots_sym,) = builder.import_symbols("__SNMP-FRAMEWORK-MIB", "snmpEngineBoots")
        s = self.settings
        self.boots = next_boots(s.boots_file) if s.boots_file is not None else self.boots + 1
        boots_sym.syntax = boots_sym.syntax.clone(self.boots)
        if s.engine_id is not None:
            (id_sym,) = builder.import_symbols("__SNMP-FRAMEWORK-MIB", "snmpEngineID")
            id_sym.syntax = id_sym.syntax.clone(s.engine_id)
            snmp.snmpEngineID = id_sym.syntax

    def stop(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def status_fields(self) -> dict[str, Any]:
        return {
            "ntcip": {
                "port": self.port,
                "sets": self.settings.sets,
                "sets_accepted": self.sets_accepted,
                "sets_refused": self.sets_refused,
                "remote_control": self.remote.active,
                "backup_mode": self.remote.lapsed,
                "engine_boots": self.boots,
                "requests": self.requests,
                "bulk_refused": self.bulk_refused,
            }
        }


def _responders(agent: NtcipAgent) -> list[Any]:
    """pysnmp's GET, GETNEXT, GETBULK and SET responders, each request counted; a GETBULK
    with more repeating varbinds than pysnmp serves refused."""
    from pysnmp.entity.rfc3413 import cmdrsp
    from pysnmp.proto.api import v2c
    from pysnmp.smi import error as smi_error

    def counted(base: Any) -> Any:
        class Counted(base):  # type: ignore[misc]
            def handle_management_operation(self, *args: Any) -> None:
                agent.requests += 1  # only this thread writes it
                super().handle_management_operation(*args)

        return Counted

    class Bulk(counted(cmdrsp.BulkCommandResponder)):  # type: ignore[misc]
        def handle_management_operation(
            self, snmpEngine: Any, stateReference: Any, contextName: Any, PDU: Any
        ) -> None:
            n = max(0, int(v2c.apiBulkPDU.get_non_repeaters(PDU)))
            repeating = len(v2c.apiPDU.get_varbinds(PDU)) - n
            if repeating > self.max_varbinds:  # pysnmp: 0 repetitions, no reply, a traceback
                agent.requests += 1
                agent.bulk_refused += 1
                log.warning("ntcip_getbulk_refused repeating=%d max=%d (tooBig)",
                            repeating, self.max_varbinds)  # fmt: skip
                raise smi_error.TooBigError()  # process_pdu answers tooBig, no varbinds
            super().handle_management_operation(snmpEngine, stateReference, contextName, PDU)

    get, nxt, st = (
        cmdrsp.GetCommandResponder,
        cmdrsp.NextCommandResponder,
        cmdrsp.SetCommandResponder,
    )
    return [counted(get), counted(nxt), Bulk, counted(st)]


def _instrum(agent: NtcipAgent) -> Any:
    """The MIB instrumentation pysnmp's responders call: reads from the agent's table,
    writes through `agent.set`; every varbind checked against VACM first."""
    from pyasn1.type import univ
    from pysnmp.proto import rfc1902, rfc1905
    from pysnmp.smi import error as smi_error
    from pysnmp.smi.instrum import AbstractMibInstrumController

    errors: dict[str, Any] = {
        "notWritable": smi_error.NotWritableError,
        "wrongType": smi_error.WrongTypeError,
        "wrongValue": smi_error.WrongValueError,
        "noCreation": smi_error.NoCreationError,
        "inconsistentValue": smi_error.InconsistentValueError,
        "tooBig": smi_error.TooBigError,
    }

    def hidden(view: str, name: Any, val: Any, i: int, context: dict[str, Any]) -> bool:
        ac = context.get("acFun")
        return bool(ac is not None and ac(view, (name, val), idx=i, **context))

    class Instrum(AbstractMibInstrumController):  # type: ignore[misc]
        def read_variables(self, *varbinds: Any, **context: Any) -> list[Any]:
            _, values = agent.table()
            out = []
            for i, (name, val) in enumerate(varbinds):
                v = None if hidden("read", name, val, i, context) else values.get(tuple(name))
                out.append((name, rfc1905.noSuchObject if v is None else rfc1902.Integer32(v)))
            return out

        def read_next_variables(self, *varbinds: Any, **context: Any) -> list[Any]:
            keys, values = agent.table()
            out = []
            for i, (name, val) in enumerate(varbinds):
                k = bisect.bisect_right(keys, tuple(name))
                while k < len(keys) and hidden(
                    "read", univ.ObjectIdentifier(keys[k]), val, i, context
                ):
                    k += 1
                if k == len(keys):
                    out.append((name, rfc1905.endOfMibView))
                else:
                    out.append((rfc1902.ObjectName(keys[k]), rfc1902.Integer32(values[keys[k]])))
            return out

        def write_variables(self, *varbinds: Any, **context: Any) -> list[Any]:
            asked: list[tuple[mib.Oid, object]] = []
            for i, (name, val) in enumerate(varbinds):
                # pysnmp 7.1 allows a write to a VACM view with no entries (rfc3415.py
                # returns notInView instead of raising it): sets off are refused here.
                if not agent.settings.sets or hidden("write", name, val, i, context):
                    raise smi_error.NoAccessError(name=name, idx=i)
                # an INTEGER by its tag: Gauge32, TimeTicks, Counter32 subclass it in pyasn1
                is_int = isinstance(val, univ.Integer) and val.tagSet == univ.Integer.tagSet
                asked.append((tuple(name), int(val) if is_int else val.prettyPrint()))
            try:
                agent.set(asked)
            except mib.SetRefused as exc:
                raise errors[exc.error](name=varbinds[exc.index][0], idx=exc.index) from None
            return list(varbinds)

    return Instrum()
