"""A Streamlit server and a headless Debian Chromium, for the browser tests and `python -m attnviz.app_bench`.

Chromium is Debian's (`apt-get install chromium`), driven by Playwright's
Python API; `playwright install` is never needed (it downloads a browser). The
flags keep a closed network quiet: no background networking, no component
updates, no sync, a fresh profile each time.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

__all__ = [
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "SCRIPT_STATE",
    "COUNT_RECEIVED_JS",
    "wait_until_up",
    "streamlit_server",
    "chromium",
    "chromium_page",
    "settled",
]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# The app root carries the script state of the session: running / notRunning / rerunRequested.
# Before any page script (page.add_init_script): count what the page's websockets receive, in
# window.__received = {bytes, frames} (Streamlit's messages are binary frames: their byteLength)
COUNT_RECEIVED_JS = """
(() => {
  window.__received = { bytes: 0, frames: 0 };
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", (event) => {
        const data = event.data;
        window.__received.frames += 1;
        window.__received.bytes += data.byteLength ?? data.size ?? new TextEncoder().encode(data).length;
      });
    }
  };
})();
"""
SCRIPT_STATE = "document.querySelector('[data-testid=\"stApp\"]')?.getAttribute('data-test-script-state')"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, timeout_s: float = 120, process: subprocess.Popen | None = None) -> None:
    """Block until the Streamlit server at `url` answers its health check (RuntimeError if `process` exits
    first or `timeout_s` passes)."""
    deadline = time.time() + timeout_s
    while True:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                return
        except OSError:
            pass
        if (process is not None and process.poll() is not None) or time.time() > deadline:
            raise RuntimeError(f"the server at {url} did not come up")
        time.sleep(0.25)


@contextlib.contextmanager
def streamlit_server(
    script: Path,
    cwd: Path,
    args: tuple[str, ...] = (),
    env: dict | None = None,
    start_timeout_s: float = 90,
    pid_out: list | None = None,
    port: int | None = None,
):
    """Run `streamlit run script` on a free local port (or `port`); yields its URL, stops it on exit.
    `pid_out`: a list the server's process id is appended to (its memory is read from /proc)."""
    port = port or _free_port()
    with tempfile.NamedTemporaryFile("w+", suffix=".log") as log:
        command = [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(script),
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
        ]
        if args:
            command += ["--", *args]
        proc = subprocess.Popen(
            command,
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        if pid_out is not None:
            pid_out.append(proc.pid)
        url = f"http://127.0.0.1:{port}"
        try:
            try:
                wait_until_up(url, start_timeout_s, proc)
            except RuntimeError:
                log.seek(0)
                raise RuntimeError("streamlit did not start:\n" + log.read()) from None
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


@contextlib.contextmanager
def chromium(timeout_ms: int = 180_000, viewport=(1400, 1100)):
    """Playwright driving Debian's Chromium: yields `open_page()`, each call a page in a fresh persistent
    context (a new, empty profile: a fresh browser context); every context closes on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p, contextlib.ExitStack() as stack:

        def open_page():
            profile = stack.enter_context(tempfile.TemporaryDirectory())
            context = p.chromium.launch_persistent_context(
                profile,
                executable_path=CHROMIUM,
                headless=True,
                viewport={"width": viewport[0], "height": viewport[1]},
                args=CHROMIUM_ARGS,
            )
            stack.callback(context.close)
            page = context.new_page()
            page.set_default_timeout(timeout_ms)
            return page

        yield open_page


@contextlib.contextmanager
def chromium_page(timeout_ms: int = 180_000, viewport=(1400, 1100)):
    """A Playwright page in a fresh headless Chromium profile; the context closes on exit."""
    with chromium(timeout_ms, viewport) as open_page:
        yield open_page()


def settled(page, timeout_ms: int = 180_000, start_wait_ms: int = 1500, quiet_ms: int = 300) -> None:
    """Wait until Streamlit has finished the run that the last action started.

    A run may start a moment after the action that caused it, so first give it a chance to start
    (`start_wait_ms`), then wait until it has stopped and nothing shows a spinner, twice (a widget
    written by the run itself may request one more run).
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.wait_for_selector("[data-testid='stApp']")
    try:
        page.wait_for_function(f"() => {SCRIPT_STATE} !== 'notRunning'", timeout=start_wait_ms)
    except PlaywrightTimeout:
        pass  # the run was over before we looked, or none was needed
    for _ in range(2):
        page.wait_for_function(
            f"() => {SCRIPT_STATE} === 'notRunning' && !document.querySelector('[data-testid=\"stSpinner\"]')",
            timeout=timeout_ms,
        )
        page.wait_for_timeout(quiet_ms)
