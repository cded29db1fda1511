"""Debian's Chromium under Playwright (never a downloaded browser), for tests and screenshots."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from playwright.sync_api import BrowserContext, Page, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@contextlib.contextmanager
def chromiums(
    n: int, width: int = 1400, height: int = 1500, nice: int = 0
) -> Iterator[list[BrowserContext]]:
    """n headless Chromium processes, each with a fresh profile (--user-data-dir).

    nice > 0 starts them through a `nice -n NICE` wrapper (a browser that should not
    compete with the runtime on the same CPUs, as when it runs on another machine).
    """
    if not CHROMIUM.exists():
        raise RuntimeError(f"{CHROMIUM} is missing: run scripts/install-test-tools.sh as root")
    with contextlib.ExitStack() as stack:
        pw = stack.enter_context(sync_playwright())
        exe = str(CHROMIUM)
        if nice:
            wrapper_dir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            wrapper = wrapper_dir / "chromium"
            wrapper.write_text(f'#!/bin/sh\nexec nice -n {int(nice)} {CHROMIUM} "$@"\n')
            wrapper.chmod(0o755)
            exe = str(wrapper)
        contexts = []
        for _ in range(n):
            profile = stack.enter_context(tempfile.TemporaryDirectory(prefix="edge-chromium-"))
            ctx = pw.chromium.launch_persistent_context(
                profile,
                executable_path=exe,
                headless=True,
                args=FLAGS,
                viewport={"width": width, "height": height},
            )
            stack.callback(ctx.close)
            contexts.append(ctx)
        yield contexts


@contextlib.contextmanager
def chromium(width: int = 1400, height: int = 1500) -> Iterator[BrowserContext]:
    with chromiums(1, width, height) as contexts:
        yield contexts[0]


def log_in(page: Page, url: str, user: str, password: str) -> None:
    """Open the page and log in through its own form, as a technician does."""
    page.goto(url + "/")
    page.wait_for_selector("#login-panel:not([hidden])", timeout=10_000)
    page.fill("#login-user", user)
    page.fill("#login-password", password)
    page.click("#login-button")
    page.wait_for_selector("#main:not([hidden])", timeout=10_000)


def with_session(ctx: BrowserContext, url: str, cookies: dict[str, str]) -> None:
    """A session made by the test (a page without credentials cannot log in)."""
    ctx.add_cookies([{"name": k, "value": v, "url": url} for k, v in cookies.items()])
