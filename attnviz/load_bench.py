"""A classroom on one server: N sessions at once, each a student's visit, timed and checked.

    python -m attnviz.load_bench --sessions 30            # starts the app itself, writes bench.json "classroom"
    python -m attnviz.load_bench --url http://host:8501 --server-pid 1234   # a running server (or a proxy)

A server it starts itself is warmed first, as `python -m attnviz.serve` does (--cold: not), and the first
page a student then opens is timed: "first_page_s", the default page's script run in a session of its own,
and "first_page_browser_s" where Debian's Chromium is installed, from the address entered to the page's title
shown and every run settled (the app's JavaScript loaded as a browser loads it).

Each session is a browser tab spoken over Streamlit's own websocket (attnviz.app.protocol_client: 30 Chromium
tabs would not fit two cores) and does what a student does on the Position page, with a think time between
actions (uniform in [0.5, 1.5] x --think seconds):

1. open the Position page (danet-eca, the first sample photo)            -> "open"
2. pin two pixels of its own (a components-v2 event, as a click sends)  -> "pin"
3. switch to another sample photo, then pin once more                   -> "photo", "pin"
4. one session in five uploads a 4000x3000 JPEG of its own              -> "upload"
5. one session in ten opens the attribution page and runs IG (32 steps) -> "ig"

Every answer is checked: no exception on the page, and no cross-talk: the page's chosen pixel is the one this
session pinned, and its largest weight in that row of S (row, column and value, as printed) is the one the
library computes for this session's photo (attnviz.analysis.forward.analyse, in this process). The report
gives p50 / p95 / max latency per action (from the message sent to the run finished, as the server
delivers it; "open" includes the first HTTP request and the websocket's connection), errors with their
messages, cross-talk, and the server process's peak memory (VmHWM, read from /proc, with the memory before
the sessions came). IG's answer is checked for its comparison being drawn, not for its numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["Scenario", "run_classroom", "main"]

ROOT = Path(__file__).resolve().parents[1]
MODEL = "danet-eca"
CHOSEN = re.compile(r"x = (\d+), y = (\d+) in the photo")
TOP = re.compile(r"^1\. row (\d+), col (\d+): ([0-9.]+)", re.MULTILINE)


@dataclass(frozen=True)
class Scenario:
    """What the sessions do (see the module docstring)."""

    sessions: int = 30
    think_s: float = 4.0  # mean think time between a session's actions
    ramp_s: float = 5.0  # sessions arrive spread over this long
    upload_every: int = 5  # one session in this many uploads a photo (0: none)
    ig_every: int = 10  # one session in this many runs Integrated Gradients (0: none)
    seed: int = 0


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    crosstalk: list[str] = field(default_factory=list)
    checked: int = 0

    def add(self, action: str, seconds: float) -> None:
        self.latencies.setdefault(action, []).append(seconds)


class Reference:
    """The library's own numbers for a photo: the top of a row of S for a pixel (what the page must print)."""

    def __init__(self):
        from attnviz.models import load_checkpoint

        self.model, _ = load_checkpoint(MODEL)
        self.model.eval()
        self._analyses: dict[str, object] = {}
        self._lock = threading.Lock()

    def prepare(self, photo_key: str, image: np.ndarray) -> None:
        """Run the model on a photo before the sessions come (the benchmark's own work stays out of the way)."""
        from attnviz.analysis.forward import analyse

        with self._lock:
            if photo_key not in self._analyses:
                self._analyses[photo_key] = analyse(self.model, image, keep_features=False)

    def top(self, photo_key: str, image: np.ndarray, x: int, y: int) -> tuple[int, int, float]:
        from attnviz.analysis.forward import feature_index

        self.prepare(photo_key, image)
        name, record = self._analyses[photo_key].position
        index = feature_index(x, y, image.shape[:2], (record.height, record.width))
        row = record.row(index).numpy()
        r, c = np.unravel_index(int(np.argmax(row)), row.shape)
        return int(r), int(c), float(row[r, c])


def _upload_photo(seed: int) -> tuple[bytes, np.ndarray]:
    """A 4000x3000 JPEG of this session's own (a street-like ramp with noise) and the photo the app decodes."""
    from PIL import Image

    from attnviz.data.images import decode_image

    rng = np.random.default_rng(seed)
    x, y = np.arange(4000, dtype=np.uint32), np.arange(3000, dtype=np.uint32)[:, None]
    image = np.empty((3000, 4000, 3), np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = x * 255 // 4000, y * 255 // 3000, (x + y + seed * 37) % 256
    image += rng.integers(0, 24, image.shape, dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=92)
    data = buffer.getvalue()
    return data, decode_image(data)


def _check(run, tally: Tally, reference: Reference, session: int, photo_key: str, image, pixel) -> None:
    """No exception, the session's own pixel, and the library's top weight for it on this session's photo."""
    if run.exceptions:
        tally.errors.append(f"session {session}: {run.exceptions[0][:300]}")
        return
    text = run.text
    chosen, top = CHOSEN.search(text), TOP.search(text)
    if chosen is None or top is None:
        tally.errors.append(f"session {session}: the page printed no chosen pixel or top location")
        return
    shown_pixel = (int(chosen.group(1)), int(chosen.group(2)))
    expected = reference.top(photo_key, image, *shown_pixel)
    shown = (int(top.group(1)), int(top.group(2)), float(top.group(3)))
    tally.checked += 1
    if shown_pixel != tuple(pixel):
        tally.crosstalk.append(f"session {session}: pinned {tuple(pixel)}, the page shows {shown_pixel}")
    elif shown[:2] != expected[:2] or abs(shown[2] - expected[2]) > 6e-5:
        tally.crosstalk.append(
            f"session {session} on {photo_key} at {shown_pixel}: the page shows {shown}, "
            f"the library {expected[0]}, {expected[1]}: {expected[2]:.4f}"
        )


async def _student(
    url: str,
    index: int,
    scenario: Scenario,
    tally: Tally,
    reference: Reference,
    samples: list[str],
    photos: dict[str, np.ndarray],
    uploads: dict[int, tuple[bytes, np.ndarray]],
):
    from attnviz.app.protocol_client import Session

    rng = random.Random(scenario.seed * 1000 + index)

    async def think():
        await asyncio.sleep(rng.uniform(0.5, 1.5) * scenario.think_s)

    def random_pixel(image):
        return rng.randrange(image.shape[1]), rng.randrange(image.shape[0])

    async def timed(action, step):
        started = time.perf_counter()
        run = await step
        tally.add(action, time.perf_counter() - started)
        return run

    await asyncio.sleep(rng.uniform(0, scenario.ramp_s))
    session = None
    try:
        started = time.perf_counter()
        session = await Session.open(url, page="position", query=f"model={MODEL}&photo={samples[0]}")
        tally.add("open", time.perf_counter() - started)
        photo, image = samples[0], photos[samples[0]]
        centre = (image.shape[1] // 2, image.shape[0] // 2)
        _check(session.last, tally, reference, index, photo, image, centre)
        for _ in range(2):
            await think()
            pixel = random_pixel(image)
            run = await timed("pin", session.trigger("pam_canvas", "pin", {"x": pixel[0], "y": pixel[1]}))
            _check(run, tally, reference, index, photo, image, pixel)
        await think()
        photo = samples[1 + index % (len(samples) - 1)]
        image = photos[photo]
        run = await timed("photo", session.select("sample", photo))
        _check(run, tally, reference, index, photo, image, (image.shape[1] // 2, image.shape[0] // 2))
        await think()
        pixel = random_pixel(image)
        run = await timed("pin", session.trigger("pam_canvas", "pin", {"x": pixel[0], "y": pixel[1]}))
        _check(run, tally, reference, index, photo, image, pixel)
        if scenario.upload_every and index % scenario.upload_every == 0:
            await think()
            data, decoded = uploads[index]
            await session.select("sample", session.options("sample")[-1])  # "Upload your own photo…"
            run = await timed("upload", session.upload("upload", f"street-{index}.jpg", data))
            _check(
                run, tally, reference, index, f"upload-{index}", decoded, (decoded.shape[1] // 2, decoded.shape[0] // 2)
            )
        if scenario.ig_every and index % scenario.ig_every == 0:
            await think()
            run = await session.goto("attribution", query=f"model={MODEL}")
            run = await timed("ig", session.click("ig_run"))
            if run.exceptions or "Integrated Gradients** over the" not in run.text:
                tally.errors.append(f"session {index}: IG gave no comparison {run.exceptions[:1] or run.text[-200:]}")
    except Exception as error:  # noqa: BLE001 - every failure is a finding of the benchmark
        tally.errors.append(f"session {index}: {type(error).__name__}: {str(error)[:300]}")
    finally:
        if session is not None:
            await session.close()


def _memory_mib(pid: int | None, field_name: str) -> float | None:
    from attnviz.machine import memory_mib

    return None if pid is None else memory_mib(field_name, pid)


def _summary(values: list[float]) -> dict:
    ordered = sorted(values)
    return {
        "count": len(ordered),
        "p50_s": round(float(np.percentile(ordered, 50)), 4),
        "p95_s": round(float(np.percentile(ordered, 95)), 4),
        "max_s": round(ordered[-1], 4),
    }


def run_classroom(url: str, scenario: Scenario, server_pid: int | None = None) -> dict:
    """Drive `scenario.sessions` sessions of the app at `url` at once; the report (see the module docstring)."""
    from attnviz.data.samples import list_samples, load_sample

    samples = list_samples()
    if len(samples) < 2:
        raise SystemExit("the load benchmark needs at least two sample photos")
    photos = {name: load_sample(name).image for name in samples}
    reference = Reference()
    for name, image in photos.items():
        reference.prepare(name, image)
    uploads = {
        i: _upload_photo(scenario.seed * 1000 + i)
        for i in range(scenario.sessions)
        if scenario.upload_every and i % scenario.upload_every == 0
    }
    for i, (_, decoded) in uploads.items():
        reference.prepare(f"upload-{i}", decoded)
    tally = Tally()
    before = _memory_mib(server_pid, "VmRSS")

    async def classroom():
        await asyncio.gather(
            *(_student(url, i, scenario, tally, reference, samples, photos, uploads) for i in range(scenario.sessions))
        )

    started = time.perf_counter()
    asyncio.run(classroom())
    wall = time.perf_counter() - started
    return {
        "sessions": scenario.sessions,
        "think_s": scenario.think_s,
        "ramp_s": scenario.ramp_s,
        "upload_every": scenario.upload_every,
        "ig_every": scenario.ig_every,
        "seed": scenario.seed,
        "model": MODEL,
        "wall_s": round(wall, 1),
        "actions": {action: _summary(values) for action, values in sorted(tally.latencies.items())},
        "errors": len(tally.errors),
        "error_messages": tally.errors[:20],
        "crosstalk": len(tally.crosstalk),
        "crosstalk_messages": tally.crosstalk[:20],
        "checked": tally.checked,
        "server_rss_before_mib": None if before is None else round(before, 1),
        "server_peak_mib": None if (peak := _memory_mib(server_pid, "VmHWM")) is None else round(peak, 1),
    }


def _first_page_in_chromium(url: str) -> float | None:
    """Seconds from opening `url` in a fresh Chromium profile to the default page drawn (None: no Chromium)."""
    from attnviz.browser import CHROMIUM, chromium_page, settled

    if not Path(CHROMIUM).exists():
        return None
    with chromium_page() as page:
        started = time.perf_counter()
        page.goto(url)
        page.wait_for_selector("h1")
        settled(page, start_wait_ms=1, quiet_ms=0)  # (0 would mean: no time limit, in Playwright)
        return time.perf_counter() - started


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m attnviz.load_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=30)
    parser.add_argument("--think", type=float, default=Scenario.think_s, help="mean think time, seconds")
    parser.add_argument("--ramp", type=float, default=Scenario.ramp_s, help="sessions arrive over this long")
    parser.add_argument("--upload-every", type=int, default=Scenario.upload_every)
    parser.add_argument("--ig-every", type=int, default=Scenario.ig_every)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--url", default=None, help="a running server (else one is started)")
    parser.add_argument("--server-pid", type=int, default=None, help="its process, for its peak memory")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="bench.json to add 'classroom' to (default: the "
        "shipped checkpoints' bench.json when the server is started here; none with --url)",
    )
    parser.add_argument("--key", default="classroom", help="the report's key in --out")
    parser.add_argument("--cold", action="store_true", help="do not warm the server it starts")
    args = parser.parse_args(argv)
    if args.sessions < 1 or args.think < 0 or args.ramp < 0 or args.upload_every < 0 or args.ig_every < 0:
        parser.error("--sessions must be at least 1; --think, --ramp, --upload-every and --ig-every not negative")
    scenario = Scenario(args.sessions, args.think, args.ramp, args.upload_every, args.ig_every, args.seed)
    import logging

    import torch

    logging.getLogger("streamlit").setLevel(logging.ERROR)  # the client imports the app layer outside a server
    from attnviz.machine import machine_info

    torch.set_num_threads(1)  # the checks' own model work leaves the cores to the server

    if args.url:
        report = run_classroom(args.url, scenario, args.server_pid)
        out = args.out
    else:
        from attnviz.browser import streamlit_server
        from attnviz.models.checkpoint import DEFAULT_CHECKPOINT_DIR
        from attnviz.serve import warm_up

        with streamlit_server(ROOT / "app.py", ROOT, pid_out=(pid := [])) as url:
            warm = None if args.cold else warm_up(url)
            first = warm_up(url, pages=(("", ""),))["total"]  # a student's first page, in a new session
            in_browser = _first_page_in_chromium(url)
            report = {
                **run_classroom(url, scenario, pid[0]),
                "first_page_s": round(first, 3),
                "first_page_browser_s": None if in_browser is None else round(in_browser, 2),
                "warm_up_s": None if warm is None else {k: round(v, 2) for k, v in warm.items()},
            }
        out = args.out or DEFAULT_CHECKPOINT_DIR / "bench.json"
    report = {
        **report,
        "machine": machine_info(),
        "workers": os.environ.get("ATTNVIZ_WORKERS") or "default",
        "command": "python -m attnviz.load_bench " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    print(json.dumps(report, indent=2), flush=True)
    if out is not None:
        existing = json.loads(out.read_text()) if out.exists() else {}
        out.write_text(json.dumps({**existing, args.key: report}, indent=2) + "\n")
        print(f"wrote {out}")
    return 0 if report["errors"] == 0 and report["crosstalk"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
