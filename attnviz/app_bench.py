"""What a click and a hover cost in the browser: python -m attnviz.app_bench [--model danet-eca] [--clicks 30]
[--hover 120]

The Position page of app.py in headless Chromium against a bare Streamlit app
that holds only the same `streamlit-image-coordinates` component on a photo of
the same size and writes the clicked point as text, run with the app's own
`.streamlit/config.toml` (the same runner settings: no forced garbage
collection after a run in either). Both servers run at once;
clicks alternate between them (app, bare, app, bare, ...) so that whatever
else the machine does falls on both alike. A click is timed from Playwright's
click to the moment the page's text shows the new pixel (the app: its "Chosen
pixel" line; the bare app: its one line), after the first run of each has
loaded and cached everything. The ratio of the medians is what the app's own
work adds to a click over Streamlit's floor (a rerun of a script with one
component). It goes into bench.json under "page_click", beside the library's
figures. The app's click is a pin on its live photo (attnviz.app.attention_canvas), which reruns only the
page's fragment. Also the bytes the browser receives per pin (every websocket frame from the click until the
page has settled), median and largest, for the app and the bare app.

The hover (`--hover MOVES`): the pointer moves to MOVES cells of the Position page's live photo, one at a
time; the page records each pointermove's own time stamp and, polled each animation frame, the moment
the overlay shows the new cell: the difference is the latency a user sees (Chromium delivers pointer
moves aligned to frames, so about one frame, 16.7 ms, is the floor). Also: the script's own compute +
draw time per move (its `performance.now()` around the draw), and the websocket messages the page sent
while hovering (expected 0). Measured on the shipped model's grid in app.py, and on a synthetic record
of N = 16384 (128 x 128 cells, C' = 64) on a 1024 x 1024 photo (attnviz/app/hover_bench_app.py). It goes
into bench.json under "page_hover".
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from attnviz.browser import COUNT_RECEIVED_JS, chromium_page, settled, streamlit_server
from attnviz.data.samples import list_samples
from attnviz.machine import machine_info
from attnviz.models.checkpoint import DEFAULT_CHECKPOINT_DIR

__all__ = ["BARE_APP", "HOVER_APP", "click_ratio", "hover_latency", "main"]

ROOT = Path(__file__).resolve().parents[1]
BARE_APP = ROOT / "attnviz" / "app" / "bare_click_app.py"  # a Streamlit script: the component and one line
HOVER_APP = ROOT / "attnviz" / "app" / "hover_bench_app.py"  # the live photo alone, on a record of any size
_COMPONENT = "iframe[title*='streamlit_image_coordinates']"
_LIVE_PHOTO = ".attnviz-canvas .stack"
# before any page script: count the websocket messages the page sends
_COUNT_MESSAGES = (
    "window.__sent = 0; const __send = WebSocket.prototype.send; WebSocket.prototype.send = "
    "function (...a) { window.__sent += 1; return __send.apply(this, a); };"
)
# on the component's root (in its shadow root): each pointermove's time stamp, and (polled each frame) when
# the drawn pixel changed after it
_PROBE = """(root) => {
  const probe = window.__hover = {latencies: [], last: null, before: null};
  root.addEventListener('pointermove', (e) => { probe.last = e.timeStamp; probe.before = root.dataset.pixel; }, true);
  const poll = () => {
    if (probe.last !== null && root.dataset.pixel !== probe.before) {
      probe.latencies.push(performance.now() - probe.last);
      probe.last = null;
    }
    requestAnimationFrame(poll);
  };
  requestAnimationFrame(poll);
}"""


# JavaScript: the text of the first Markdown block that contains `marker` ('' when none)
_TEXT_WITH = (
    "[...document.querySelectorAll('[data-testid=\"stMarkdownContainer\"]')]"
    ".map(e => e.innerText).find(t => t.includes(marker)) || ''"
)


def _timed_click(page, marker: str, fraction: tuple[float, float], live: bool = False) -> tuple[float, int]:
    """(seconds, bytes): from a click at `fraction` of the shown photo (the live photo if `live`, else the
    image component's) to the text with `marker` changing, and the bytes the page received from the click
    until it settled."""
    page.bring_to_front()
    image = page.locator(_LIVE_PHOTO).first if live else page.frame_locator(_COMPONENT).locator("img")
    box = image.bounding_box()
    before = page.evaluate(f"(marker) => {_TEXT_WITH}", marker)
    received = page.evaluate("window.__received.bytes")
    start = time.perf_counter()
    if live:
        page.mouse.click(box["x"] + box["width"] * fraction[0], box["y"] + box["height"] * fraction[1])
    else:
        image.click(position={"x": box["width"] * fraction[0], "y": box["height"] * fraction[1]})
    page.wait_for_function(
        f"([marker, before]) => {{ const t = {_TEXT_WITH}; return t !== '' && t !== before; }}",
        arg=[marker, before],
        polling="raf",
    )
    elapsed = time.perf_counter() - start
    settled(page, start_wait_ms=200, quiet_ms=100)
    return elapsed, page.evaluate("window.__received.bytes") - received


def click_ratio(model: str = "danet-eca", clicks: int = 30, checkpoints: Path | None = None) -> dict:
    """Median seconds per click of the app's Position page and of the bare app, alternating, and their ratio."""
    args = ("--checkpoints", str(checkpoints)) if checkpoints else ()
    photo = list_samples()[0]
    with tempfile.TemporaryDirectory() as folder:
        # the bare app runs from a folder of its own (no pages/ beside it) with the app's .streamlit/config.toml
        (Path(folder) / ".streamlit").mkdir()
        shutil.copy(ROOT / ".streamlit" / "config.toml", Path(folder) / ".streamlit" / "config.toml")
        with (
            streamlit_server(ROOT / "app.py", ROOT, args) as app_url,
            streamlit_server(BARE_APP, Path(folder)) as bare_url,
            chromium_page() as app_page,
        ):
            app_page.context.add_init_script(COUNT_RECEIVED_JS)
            bare_page = app_page.context.new_page()
            app_page.goto(f"{app_url}/position?model={model}&photo={photo}")
            settled(app_page)
            bare_page.goto(bare_url)
            settled(bare_page)
            times, received = {"app": [], "bare": []}, {"app": [], "bare": []}
            for i in range(clicks + 1):  # the first pair warms both up and is not counted
                fraction = (0.1 + 0.8 * ((i * 0.37) % 1), 0.1 + 0.8 * ((i * 0.61) % 1))
                app_s, app_bytes = _timed_click(app_page, "Chosen pixel", fraction, live=True)
                bare_s, bare_bytes = _timed_click(bare_page, "Clicked:", fraction)
                if i:
                    times["app"].append(app_s)
                    times["bare"].append(bare_s)
                    received["app"].append(app_bytes)
                    received["bare"].append(bare_bytes)
    app_median, bare_median = statistics.median(times["app"]), statistics.median(times["bare"])
    return {
        "model": model,
        "clicks": clicks,
        "app_median_s": round(app_median, 4),
        "bare_median_s": round(bare_median, 4),
        "ratio": round(app_median / bare_median, 3),
        "app_max_s": round(max(times["app"]), 4),
        "bare_max_s": round(max(times["bare"]), 4),
        "app_bytes_per_pin_median": int(statistics.median(received["app"])),
        "app_bytes_per_pin_max": max(received["app"]),
        "bare_bytes_per_click_median": int(statistics.median(received["bare"])),
        "bare_config": ".streamlit/config.toml (the app's)",
    }


def _hover_moves(page, moves: int) -> dict:
    """Move the pointer over `moves` points of the live photo; the probe's latencies, the script's draw
    times and the messages sent while hovering."""
    page.bring_to_front()
    root = page.locator(".attnviz-canvas").first
    root.evaluate(_PROBE)
    stack = page.locator(_LIVE_PHOTO).first
    box = stack.bounding_box()
    page.mouse.move(box["x"] + 2, box["y"] + 2)
    page.wait_for_timeout(300)
    sent = page.evaluate("window.__sent")
    page.evaluate("window.__hover.latencies = []")
    root.evaluate("(r) => { r.dataset.drawTimes = ''; }")
    for i in range(moves):
        fraction = (0.05 + 0.9 * ((i * 0.377) % 1), 0.05 + 0.9 * ((i * 0.613) % 1))
        page.mouse.move(box["x"] + box["width"] * fraction[0], box["y"] + box["height"] * fraction[1])
        page.wait_for_timeout(60)  # a few frames: each move is drawn before the next
    page.wait_for_timeout(200)
    latencies = page.evaluate("window.__hover.latencies")
    draws = [float(t) for t in root.get_attribute("data-draw-times").split()]
    return {
        "moves": moves,
        "latency_median_ms": round(statistics.median(latencies), 2),
        "latency_p95_ms": round(sorted(latencies)[int(0.95 * (len(latencies) - 1))], 2),
        "latencies_seen": len(latencies),
        "draw_median_ms": round(statistics.median(draws), 3),
        "draw_max_ms": round(max(draws), 3),
        "messages_sent_while_hovering": page.evaluate("window.__sent") - sent,
    }


def hover_latency(model: str = "danet-eca", moves: int = 120, checkpoints: Path | None = None) -> dict:
    """The hover on the app's Position page (the shipped model's grid) and on a record of N = 16384."""
    args = ("--checkpoints", str(checkpoints)) if checkpoints else ()
    photo = list_samples()[0]
    report = {}
    with tempfile.TemporaryDirectory() as folder:
        with (
            streamlit_server(ROOT / "app.py", ROOT, args) as app_url,
            streamlit_server(HOVER_APP, Path(folder), ("128", "128", "64", "1024", "1024")) as big_url,
            chromium_page(viewport=(1400, 1000)) as page,
        ):
            page.context.add_init_script(_COUNT_MESSAGES)
            page.goto(f"{app_url}/position?model={model}&photo={photo}")
            settled(page)
            page.locator(_LIVE_PHOTO).first.wait_for()
            report["app"] = {"model": model, "grid": "45x60", "num_pixels": 2700, **_hover_moves(page, moves)}
            big = page.context.new_page()
            big.goto(big_url)
            settled(big)
            big.locator(_LIVE_PHOTO).first.wait_for()
            report["n16384"] = {
                "grid": "128x128",
                "channels": 64,
                "photo": "1024x1024",
                "num_pixels": 16384,
                **_hover_moves(big, moves),
            }
    return report


def lecture_next(language: str = "en", checkpoints: Path | None = None) -> dict:
    """Seconds from an arrow key to the next lecture step on the screen (present mode, 1280 x 720): the first
    step is loaded and left to finish its run (which computes the next step ahead, pages/lecture.py
    prefetch), then ArrowRight six times and ArrowLeft once, each after the page has settled; a step is on
    the screen when its title shows and its two expanders (drawn after its figure and formula) are there."""
    from attnviz.analysis.lecture import STEPS
    from attnviz.i18n import translate

    args = ("--checkpoints", str(checkpoints)) if checkpoints else ()
    moves = [("ArrowRight", i + 1) for i in range(len(STEPS) - 1)] + [("ArrowLeft", len(STEPS) - 2)]
    times = []
    with streamlit_server(ROOT / "app.py", ROOT, args) as url, chromium_page(viewport=(1280, 720)) as page:
        page.goto(f"{url}/lecture?step={STEPS[0]}&present=1&lang={language}")
        settled(page)
        for key, target in moves:
            settled(page, start_wait_ms=200)
            title = translate(
                "lecture.step_of",
                language,
                number=target + 1,
                total=len(STEPS),
                name=translate(f"lecture.{STEPS[target]}.name", language),
            )
            start = time.perf_counter()
            page.keyboard.press(key)
            page.wait_for_function(
                "(title) => [...document.querySelectorAll('h3')].some(h => h.innerText.includes(title))"
                " && document.querySelectorAll('[data-testid=\"stExpander\"]').length >= 2",
                arg=title,
                polling="raf",
            )
            times.append(time.perf_counter() - start)
    return {
        "language": language,
        "viewport": "1280x720",
        "moves": [f"{key} to {STEPS[target]}" for key, target in moves],
        "seconds": [round(s, 3) for s in times],
        "median_s": round(statistics.median(times), 3),
        "max_s": round(max(times), 3),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m attnviz.app_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="danet-eca")
    parser.add_argument("--clicks", type=int, default=30, help="clicks (pins) to time; 0: none")
    parser.add_argument("--hover", type=int, default=120, help="pointer moves to time; 0: none")
    parser.add_argument("--checkpoints", type=Path, default=None, help="the app's checkpoint folder")
    parser.add_argument("--lecture", action="store_true", help="time the lecture's Next (page_lecture) only")
    parser.add_argument("--out", type=Path, default=DEFAULT_CHECKPOINT_DIR / "bench.json")
    args = parser.parse_args(argv)
    if args.lecture:
        args.clicks = args.hover = 0
    elif args.clicks < 0 or args.hover < 0 or not (args.clicks or args.hover):
        parser.error("--clicks and --hover must be 0 or more, and not both 0")
    report = json.loads(args.out.read_text()) if args.out.exists() else {}
    about = {
        "machine": machine_info(),
        "browser": "Debian chromium, headless, Playwright",
        "command": "python -m attnviz.app_bench " + " ".join(argv or sys.argv[1:]),
    }
    if args.hover:
        report["page_hover"] = {**hover_latency(args.model, args.hover, args.checkpoints), **about}
        print(json.dumps(report["page_hover"]), flush=True)
    if args.clicks:
        report["page_click"] = {**click_ratio(args.model, args.clicks, args.checkpoints), **about}
        print(json.dumps(report["page_click"]), flush=True)
    if args.lecture:
        report["page_lecture"] = {**lecture_next(checkpoints=args.checkpoints), **about}
        print(json.dumps(report["page_lecture"]), flush=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
