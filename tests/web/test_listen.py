"""Where the page listens, over what, and what a flood of connections costs (issue 20).

- Loopback by default; a named interface's address; off loopback TLS only (a real
  handshake against a CA made here), clear HTTP there only when chosen and then
  logged as an error; the device file's `[web]` and `[broker]` certificates.
- 600 idle connections against a real `edge run` whose descriptor limit is 256 (so the
  flood is cheap): the tick and the status file go on, the page holds at most its cap
  and answers again once the flood ends. Before, the idle connections took every
  descriptor and the runtime's own files failed (EMFILE).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import resource
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from edge.assemble import SetupError, edge_run_extensions, web_listen
from edge.config import load_config
from edge.link.mosquitto import Pki
from edge.runtime import WebOptions
from edge.web import conncap
from edge.web.listen import ListenError, decide, interface_address, is_loopback, tls_context
from edge.web.server import WebError, attach_web, bind

from tests.board.procs import CROSSING, BoardProcess
from tests.web.inproc import PASSWORD, USER, make_runtime, write_credentials
from tests.web.simproc import free_port
from tests.web.test_limits import served

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


def client_tls(pki: Pki) -> ssl.SSLContext:
    """A browser's view: trusts the fleet CA only, checks the name (127.0.0.1)."""
    return ssl.create_default_context(cafile=str(pki.ca_cert_path))


# -- the rules --------------------------------------------------------------------------------


def test_loopback_by_default_and_never_clear_elsewhere_unless_chosen(pki: Pki) -> None:
    assert decide() == decide(host="127.0.0.1")
    assert decide().host == "127.0.0.1" and decide().tls is None
    assert is_loopback("::1") and is_loopback("localhost") and not is_loopback("0.0.0.0")
    with pytest.raises(ListenError, match="in clear: passwords and session cookies"):
        decide(host="0.0.0.0")
    chosen = decide(host="0.0.0.0", insecure=True)
    assert chosen.insecure and chosen.tls is None
    cert, key = pki.issue("page-rules", server=True)
    over_tls = decide(host="0.0.0.0", certfile=str(cert), keyfile=str(key))
    assert over_tls.tls is not None and not over_tls.insecure
    assert over_tls.tls.minimum_version == ssl.TLSVersion.TLSv1_2
    with pytest.raises(ListenError, match="its key in the same file"):
        decide(host="0.0.0.0", certfile=str(cert))  # without a key: one PEM holding both
    with pytest.raises(ListenError, match="a TLS key needs its certificate"):
        decide(host="0.0.0.0", keyfile=str(key))
    with pytest.raises(ListenError, match=f"cannot use the certificate {cert}"):
        decide(host="0.0.0.0", certfile=str(cert), keyfile=str(cert))
    with pytest.raises(ListenError, match="not both"):
        decide(host="127.0.0.1", interface="lo")


def test_a_named_interface_is_its_address() -> None:
    assert interface_address("lo") == "127.0.0.1"
    assert decide(interface="lo").host == "127.0.0.1"
    with pytest.raises(ListenError, match="interface nosuch0: no IPv4 address"):
        decide(interface="nosuch0")
    with pytest.raises(ListenError, match="not a network interface name"):
        interface_address("../etc")


def test_clear_http_off_loopback_is_refused_unless_chosen_and_then_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 20: the page served 0.0.0.0:8080 in clear, passwords with every action."""
    rt = make_runtime()
    with pytest.raises(WebError, match=r"0\.0\.0\.0 is not loopback and no TLS certificate"):
        attach_web(rt, 0, host="0.0.0.0")
    with caplog.at_level(logging.WARNING):
        recorder = attach_web(rt, 0, host="0.0.0.0", insecure=True)
    insecure = [r for r in caplog.records if "web_insecure" in r.getMessage()]
    assert insecure and insecure[0].levelno == logging.ERROR
    assert "in CLEAR" in insecure[0].getMessage()
    assert recorder.port is not None
    with pytest.raises(WebError, match=f"cannot listen on 0.0.0.0:{recorder.port}"):
        bind("0.0.0.0", recorder.port)  # taken: a start-up error naming the address


def test_the_page_serves_tls_with_the_device_certificate(pki: Pki, tmp_path: Path) -> None:
    """A real handshake: the page off loopback (0.0.0.0) with a certificate of the fleet CA;
    the session cookie is Secure; clear HTTP gets nothing (TLS 1.2 at least: the rules)."""
    cert, key = pki.issue("page-tls", server=True)
    rt = make_runtime()
    recorder = attach_web(
        rt, 0, host="0.0.0.0", tls=tls_context(str(cert), str(key)),
        credentials_path=str(write_credentials(tmp_path)),
    )  # fmt: skip
    base = f"https://127.0.0.1:{recorder.port}"

    async def talk(c: httpx.AsyncClient) -> tuple[httpx.Response, httpx.Response, str]:
        async with httpx.AsyncClient(verify=client_tls(pki)) as tls:
            status = await tls.get(base + "/api/status", timeout=5)
            login = await tls.post(
                base + "/api/login", json={"user": USER, "password": PASSWORD}, timeout=5
            )
        try:
            clear = await c.get(f"http://127.0.0.1:{recorder.port}/api/status", timeout=5)
            got = f"answered {clear.status_code}"
        except httpx.HTTPError as exc:
            got = f"refused: {type(exc).__name__}"
        return status, login, got

    status, login, clear = asyncio.run(served(rt, talk))
    assert status.status_code == 200 and status.json()["intersection"]
    assert status.headers["strict-transport-security"].startswith("max-age=")
    assert login.status_code == 200, login.text
    session = next(h for h in login.headers.get_list("set-cookie") if "edge_session=" in h)
    assert {"Secure", "HttpOnly", "SameSite=strict"} <= {p.strip() for p in session.split(";")}
    assert clear.startswith("refused"), clear


def test_the_device_file_names_the_interface_and_the_certificate(
    pki: Pki, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cert, key = pki.issue("page-device", server=True)
    device = tmp_path / "device.toml"
    device.write_text(f'[web]\ninterface = "lo"\ncertfile = "{cert}"\nkeyfile = "{key}"\n')
    listen = web_listen(WebOptions(8080), str(device))
    assert listen.host == "127.0.0.1" and listen.tls is not None
    # the command line's address wins over the file's interface
    assert web_listen(WebOptions(8080, host="::1"), str(device)).host == "::1"
    # off loopback with no [web] certificate: the device's fleet-CA one of [broker]
    client_cert, client_key = pki.issue("device-7")  # issued for MQTT: clientAuth only
    device.write_text(f'[broker]\ncertfile = "{client_cert}"\nkeyfile = "{client_key}"\n')
    with caplog.at_level(logging.WARNING):
        listen = web_listen(WebOptions(8080, host="0.0.0.0"), str(device))
    assert listen.tls is not None and "web_certificate_client_only" in caplog.text
    # ...but not on loopback (an SSH tunnel's https://localhost would not match it)
    assert web_listen(WebOptions(8080), str(device)).tls is None
    device.write_text('[device]\nid = "x"\n[web]\ninterface = "nosuch0"\n')
    with pytest.raises(SetupError, match="technician page: interface nosuch0"):
        edge_run_extensions(load_config(CROSSING), str(device), WebOptions(0))
    device.write_text('[device]\nid = "x"\n')
    with pytest.raises(SetupError, match="--web-insecure"):
        edge_run_extensions(load_config(CROSSING), str(device), WebOptions(0, host="0.0.0.0"))
    device.write_text("[web]\nport = 8080\n")
    with pytest.raises(ListenError, match=r"\[web\]: unknown keys \['port'\]"):
        web_listen(WebOptions(8080), str(device))


def test_the_link_and_the_page_read_the_same_web_table(pki: Pki, tmp_path: Path) -> None:
    """A flashed device file with `[web]` (and `[snmp]`) starts the link too: before, the
    link's loader refused both tables ("Extra inputs are not permitted") and `edge run`
    failed. A bad `[web]` value is refused by both with the file, the key and the value."""
    from edge.device.central import load_central
    from edge.link.config import load_device_config

    cert, key = pki.issue("page-flashed", server=True)
    device = tmp_path / "device.toml"
    head = (
        '[device]\nid = "hz-0412"\nsite = "site.toml"\nstore = "edge.db"\n'
        'trusted_keys = ["central.pub"]\n[broker]\nhost = "central"\nport = 8883\n'
        '[snmp]\nport = 1161\nusers = "snmp-users.toml"\n'
    )
    device.write_text(head + f'[web]\ninterface = "lo"\ncertfile = "{cert}"\nkeyfile = "{key}"\n')
    assert load_device_config(device).device == "hz-0412"
    assert load_central(str(device)) is not None
    listen = web_listen(WebOptions(8080), str(device))
    assert listen.host == "127.0.0.1" and listen.tls is not None  # lo's address, [web]'s pair
    for web, match in [
        ("interface = 5\n", r"\[web\]: interface must be a non-empty string, not 5"),
        ('interface = "eth0/../x"\n', r"\[web\]: interface must be a network interface name"),
        ("port = 8443\n", r"\[web\]: unknown keys \['port'\]"),
        ('keyfile = "k.pem"\n', r"\[web\]: keyfile needs the certfile"),
    ]:
        device.write_text(head + "[web]\n" + web)
        for load in (load_device_config, lambda p: web_listen(WebOptions(8080), str(p))):
            with pytest.raises(ValueError, match=f"^{device}.*{match}"):
                load(device)


def test_an_enrolled_device_serves_the_page_with_its_enrolled_certificate(
    pki: Pki, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A device flashed with an enrolment token has no provisioned pair: its certificate
    (serverAuth from central's maintenance record) is renew_dir/client.pem, key inside.
    Before, the page off loopback found no certificate and `edge run` refused to start
    (the runtime never ran, so a device not yet enrolled never enrolled); now it serves
    with the enrolled pair, and until the device is enrolled it stays on loopback, said."""
    device = tmp_path / "device.toml"
    device.write_text('[broker]\nenrol_token = "tls/enrol.token"\nrenew_dir = "tls"\n')
    with caplog.at_level(logging.ERROR):
        waiting = web_listen(WebOptions(8080, host="0.0.0.0"), str(device))
    assert waiting.host == "127.0.0.1" and waiting.tls is None and not waiting.insecure
    assert "web_waits_for_enrolment" in caplog.text
    (tmp_path / "tls").mkdir()
    cert, key = pki.issue("hz-0412", server=True)
    (tmp_path / "tls" / "client.pem").write_bytes(cert.read_bytes() + key.read_bytes())
    listen = web_listen(WebOptions(8080, host="0.0.0.0"), str(device))
    assert listen.host == "0.0.0.0" and listen.tls is not None


# -- connections ------------------------------------------------------------------------------


def test_idle_connections_are_closed_and_the_cap_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    """In process: at most `cap` held; one more is closed at once; idle ones are closed
    after FIRST_REQUEST_S, and the page answers again."""
    monkeypatch.setattr(conncap, "FIRST_REQUEST_S", 0.5)
    rt = make_runtime()
    recorder = attach_web(rt, 0, cap=4)
    addr = ("127.0.0.1", recorder.port)

    async def flood(c: httpx.AsyncClient) -> tuple[list[bytes], bytes, int]:
        assert (await c.get(f"http://127.0.0.1:{recorder.port}/api/status")).status_code == 200
        loop = asyncio.get_running_loop()
        idle = []
        for _ in range(4):
            s = socket.create_connection(addr)
            s.setblocking(False)
            idle.append(s)
        await asyncio.sleep(0.2)  # accepted and held
        over = socket.create_connection(addr)
        over.setblocking(False)
        excess = await asyncio.wait_for(loop.sock_recv(over, 1), 2)  # closed at once: b""
        held = [await asyncio.wait_for(loop.sock_recv(s, 1), 3) for s in idle]  # then these
        for s in (*idle, over):
            s.close()
        status = (await c.get(f"http://127.0.0.1:{recorder.port}/api/status")).status_code
        return held, excess, status

    held, excess, status = asyncio.run(served(rt, flood))
    assert excess == b"" and held == [b""] * 4 and status == 200


def test_a_flood_of_idle_connections_never_ends_the_runtime_nor_its_files(
    tmp_path: Path, board: BoardProcess
) -> None:
    """Issue 20: 1,100 idle connections took all 1,024 descriptors and the runtime exited.
    A real `edge run` with RLIMIT_NOFILE 256 (cap 64) and 600 idle connections held: its
    tick and status file go on (no EMFILE), and the page answers once they are gone."""
    port = free_port()
    status = tmp_path / "status.json"
    log_path = tmp_path / "edge-run.log"

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    args = [
        sys.executable, "-m", "edge.cli", "run", "--config", str(CROSSING),
        "--port", board.path, "--web", str(port), "--status-file", str(status),
        "--status-every", "0.2", "--credentials", str(write_credentials(tmp_path)),
    ]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with open(log_path, "w") as out:
        proc = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=limit
        )
    url = f"http://127.0.0.1:{port}/api/status"
    flood: list[socket.socket] = []
    try:
        assert _wait(lambda: _get(url) == 200, 30), log_path.read_text()[-3000:]
        assert _wait(lambda: _ticks(status) > 0, 10), log_path.read_text()[-3000:]
        for _ in range(600):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            flood.append(s)
        time.sleep(1.0)  # the server takes them in (and closes those over its cap)
        before = _ticks(status)
        time.sleep(1.5)
        during = _ticks(status)
        alive = proc.poll() is None
        for s in flood:
            s.close()
        flood.clear()
        answers = _wait(lambda: _get(url) == 200, 10)
    finally:
        for s in flood:
            s.close()
        proc.terminate()
        proc.wait(10)
    text = log_path.read_text()
    assert alive, text[-3000:]
    assert during > before + 5, (before, during, text[-3000:])  # ~15 ticks in 1.5 s
    assert answers, text[-3000:]
    assert "web_connections_refused" in text and "cap=64" in text
    assert "EMFILE" not in text and "Too many open files" not in text, text[-3000:]
    assert "task_failed" not in text, text[-3000:]


def _get(url: str) -> int:
    try:
        return httpx.get(url, timeout=1).status_code
    except httpx.HTTPError:
        return 0


def _ticks(path: Path) -> int:
    try:
        ticks: int = json.loads(path.read_text())["ticks"]
        return ticks
    except (OSError, ValueError, KeyError):
        return 0


def _wait(cond: object, timeout_s: float) -> bool:
    assert callable(cond)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return False


def test_a_failure_of_the_page_ends_its_task_only_and_the_next_start_serves(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 20: the page's task caught its own failure and then waited for ever (the page
    gone until a restart of the controller). Now the failure ends the task, which the
    runtime logs and starts again after a backoff (edge/extensions.py): the next start
    binds the port again and serves."""
    import uvicorn

    rt = make_runtime()
    recorder = attach_web(rt, 0)
    page = rt.extensions["web"]
    real = uvicorn.Server.serve
    calls = []

    async def emfile_once(self: uvicorn.Server, sockets: object = None) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise OSError(24, "Too many open files")
        await real(self, sockets=sockets)  # type: ignore[arg-type]

    monkeypatch.setattr(uvicorn.Server, "serve", emfile_once)
    assert page.restarts  # the runtime starts it again after a backoff

    async def fail_then_serve() -> int:
        with pytest.raises(OSError, match="Too many open files"):
            await asyncio.wait_for(page.run(), 10)  # before: never returned
        assert getattr(page, "sock", 1) is None  # closed; bound again on the next start
        return await served(rt, lambda c: _status(c, recorder.port))

    assert asyncio.run(fail_then_serve()) == 200 and len(calls) == 2


async def _status(c: httpx.AsyncClient, port: int | None) -> int:
    return (await c.get(f"http://127.0.0.1:{port}/api/status", timeout=2)).status_code
