"""Serve the app to a class: `streamlit run app.py`, warmed up before the first student comes.

    python -m attnviz.serve                      # http://localhost:8501, warmed
    python -m attnviz.serve --port 8601 -- --checkpoints DIR      # after --: the app's own arguments

A fresh Streamlit server imports nothing of the app until a first session opens a page: that session then
waits for torch, the model and its first forward pass (12 s on a 2-core CPU). This starts the server, and as
soon as it answers, opens the pages a lesson starts on in sessions of its own (over Streamlit's websocket,
attnviz.app.protocol_client): the default page with the default model and photo, the Lecture, and the
Position page with danet-eca. The server's caches then hold the models and their captures, and a student's
first page is drawn in the time of a rerun. It prints how long the warm-up took, then serves until stopped
(Ctrl-C stops the server too).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from attnviz.browser import wait_until_up

__all__ = ["WARM_PAGES", "warm_up", "main"]

ROOT = Path(__file__).resolve().parents[1]
# (url path, query): what a class opens first
WARM_PAGES = (("", ""), ("lecture", ""), ("position", "model=danet-eca"))


def warm_up(url: str, pages=WARM_PAGES) -> dict[str, float]:
    """Open each (page, query) of `pages` once, one session each; seconds per page (and "total")."""
    from attnviz.app.protocol_client import Session

    async def visit(page: str, query: str) -> float:
        started = time.perf_counter()
        session = await Session.open(url, page=page, query=query)
        await session.close()
        if session.last is not None and session.last.exceptions:
            raise RuntimeError(f"warming page {page or '(default)'!r} failed: {session.last.exceptions[0]}")
        return time.perf_counter() - started

    async def all_pages() -> dict[str, float]:
        return {page or "default": await visit(page, query) for page, query in pages}

    started = time.perf_counter()
    seconds = asyncio.run(all_pages())
    return {**seconds, "total": time.perf_counter() - started}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m attnviz.serve", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8501)
    parser.add_argument("--address", default="0.0.0.0", help="where to listen (default: every interface)")
    parser.add_argument("--no-warm", action="store_true", help="serve without the warm-up")
    parser.add_argument("app_args", nargs="*", help="after --: the app's arguments (--checkpoints, --model, ...)")
    args = parser.parse_args(argv)
    logging.getLogger("streamlit").setLevel(logging.ERROR)  # the client's imports of the app layer
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(ROOT / "app.py"),
        "--server.port",
        str(args.port),
        "--server.address",
        args.address,
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
    ]
    if args.app_args:
        command += ["--", *args.app_args]
    server = subprocess.Popen(command, cwd=ROOT)
    host = "127.0.0.1" if args.address in ("0.0.0.0", "::", "") else args.address
    url = f"http://{host}:{args.port}"

    def warm() -> None:
        try:
            wait_until_up(url, process=server)
            if not args.no_warm:
                seconds = warm_up(url)
                pages = ", ".join(f"{page} {s:.1f} s" for page, s in seconds.items() if page != "total")
                print(f"attnviz: warm in {seconds['total']:.1f} s ({pages}); serving at {url}", flush=True)
        except Exception as error:  # noqa: BLE001 - a failed warm-up must not stop the server
            print(f"attnviz: the warm-up failed ({type(error).__name__}: {error}); serving cold", flush=True)

    threading.Thread(target=warm, daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: server.terminate())
    try:
        return server.wait()
    except KeyboardInterrupt:
        server.terminate()
        return server.wait()


if __name__ == "__main__":
    sys.exit(main())
