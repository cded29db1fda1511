"""`edge run --sim SCENARIO --web PORT` as a real process, for the browser tests and screenshots."""

from __future__ import annotations

import http.cookiejar
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class SimPage:
    """The runtime on a simulated intersection, serving its page on a loopback port."""

    def __init__(
        self,
        log_path: Path,
        *,
        credentials: Path | None,
        scenario: str = "single",
        speed: float = 4.0,
        duration_s: float = 300.0,
        web: bool = True,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        args = [
            sys.executable, "-m", "edge.cli", "run", "--sim", scenario,
            "--speed", str(speed), "--duration", str(duration_s),
        ]  # fmt: skip
        if web:
            args += ["--web", str(self.port), "--web-host", "127.0.0.1"]
        if credentials is not None:
            args += ["--credentials", str(credentials)]
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self._log = open(log_path, "w")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        # the session cookie of `log_in`: reads need it
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )

    def log_in(self, user: str, password: str, timeout_s: float = 40.0) -> None:
        """Log in once the page answers (a session for `get`); AssertionError if not."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"edge run exited {self.proc.returncode}:\n{self.log()}")
            try:
                code, body = self.post("/api/login", {"user": user, "password": password})
            except OSError:
                time.sleep(0.1)
                continue
            assert code == 200, body
            return
        raise AssertionError(f"the page did not answer within {timeout_s} s")

    def get(self, path: str) -> Any:
        with self.opener.open(self.url + path, timeout=5) as r:
            return json.loads(r.read())

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        req = urllib.request.Request(
            self.url + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with self.opener.open(req, timeout=5) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def state(self) -> dict[str, Any]:
        st: dict[str, Any] = self.get("/api/state")
        return st

    def wait(self, cond: Callable[[dict[str, Any]], bool], timeout_s: float) -> dict[str, Any]:
        """The first state that meets `cond`; AssertionError with the last one after timeout."""
        deadline = time.monotonic() + timeout_s
        last: dict[str, Any] = {}
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"edge run exited {self.proc.returncode}:\n{self.log()}")
            try:
                last = self.state()
            except OSError:
                time.sleep(0.1)
                continue
            if cond(last):
                return last
            time.sleep(0.02)
        raise AssertionError(f"no such state within {timeout_s} s; last: {last.get('mode')}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def wait_exit(self, timeout_s: float) -> int:
        code = self.proc.wait(timeout_s)
        self._log.close()
        return code

    def stop(self, timeout_s: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode
