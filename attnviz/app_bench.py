"""What a click costs in the browser: python -m attnviz.app_bench [--model danet-eca] [--clicks 30]

The Position page of app.py in headless Chromium against a bare Streamlit app
that holds only the same `streamlit-image-coordinates` component on a photo of
the same size and writes the clicked point as text. Both servers run at once;
clicks alternate between them (app, bare, app, bare, ...) so that whatever
else the machine does falls on both alike. A click is timed from Playwright's
click to the moment the page's text shows the new pixel (the app: its "Chosen
pixel" line; the bare app: its one line), after the first run of each has
loaded and cached everything. The ratio of the medians is what the app's own
work adds to a click over Streamlit's floor (a rerun of a script with one
component). It goes into bench.json under "page_click", beside the library's
figures.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from attnviz.browser import chromium_page, settled, streamlit_server
from attnviz.data.samples import list_samples
from attnviz.machine import machine_info
from attnviz.models.checkpoint import DEFAULT_CHECKPOINT_DIR

__all__ = ["BARE_APP", "click_ratio", "main"]

ROOT = Path(__file__).resolve().parents[1]
BARE_APP = ROOT / "attnviz" / "app" / "bare_click_app.py"  # a Streamlit script: the component and one line
_COMPONENT = "iframe[title*='streamlit_image_coordinates']"


# JavaScript: the text of the first Markdown block that contains `marker` ('' when none)
_TEXT_WITH = ("[...document.querySelectorAll('[data-testid=\"stMarkdownContainer\"]')]"
              ".map(e => e.innerText).find(t => t.includes(marker)) || ''")


def _timed_click(page, marker: str, fraction: tuple[float, float]) -> float:
    """Seconds from a click at `fraction` of the shown photo to the text with `marker` changing."""
    page.bring_to_front()
    image = page.frame_locator(_COMPONENT).locator("img")
    box = image.bounding_box()
    before = page.evaluate(f"(marker) => {_TEXT_WITH}", marker)
    start = time.perf_counter()
    image.click(position={"x": box["width"] * fraction[0], "y": box["height"] * fraction[1]})
    page.wait_for_function(f"([marker, before]) => {{ const t = {_TEXT_WITH}; return t !== '' && t !== before; }}",
                           arg=[marker, before], polling="raf")
    elapsed = time.perf_counter() - start
    settled(page, start_wait_ms=200, quiet_ms=100)
    return elapsed


def click_ratio(model: str = "danet-eca", clicks: int = 30, checkpoints: Path | None = None) -> dict:
    """Median seconds per click of the app's Position page and of the bare app, alternating, and their ratio."""
    args = ("--checkpoints", str(checkpoints)) if checkpoints else ()
    photo = list_samples()[0]
    with tempfile.TemporaryDirectory() as folder:
        # the bare app runs from an empty folder: no pages/ beside it, no .streamlit/config.toml
        with streamlit_server(ROOT / "app.py", ROOT, args) as app_url, \
                streamlit_server(BARE_APP, Path(folder)) as bare_url, \
                chromium_page() as app_page:
            bare_page = app_page.context.new_page()
            app_page.goto(f"{app_url}/position?model={model}&photo={photo}")
            settled(app_page)
            bare_page.goto(bare_url)
            settled(bare_page)
            times = {"app": [], "bare": []}
            for i in range(clicks + 1):  # the first pair warms both up and is not counted
                fraction = (0.1 + 0.8 * ((i * 0.37) % 1), 0.1 + 0.8 * ((i * 0.61) % 1))
                app_s = _timed_click(app_page, "Chosen pixel", fraction)
                bare_s = _timed_click(bare_page, "Clicked:", fraction)
                if i:
                    times["app"].append(app_s)
                    times["bare"].append(bare_s)
    app_median, bare_median = statistics.median(times["app"]), statistics.median(times["bare"])
    return {"model": model, "clicks": clicks, "app_median_s": round(app_median, 4),
            "bare_median_s": round(bare_median, 4), "ratio": round(app_median / bare_median, 3),
            "app_max_s": round(max(times["app"]), 4), "bare_max_s": round(max(times["bare"]), 4)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m attnviz.app_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="danet-eca")
    parser.add_argument("--clicks", type=int, default=30)
    parser.add_argument("--checkpoints", type=Path, default=None, help="the app's checkpoint folder")
    parser.add_argument("--out", type=Path, default=DEFAULT_CHECKPOINT_DIR / "bench.json")
    args = parser.parse_args(argv)
    if args.clicks < 1:
        parser.error("--clicks must be at least 1")
    report = json.loads(args.out.read_text()) if args.out.exists() else {}
    report["page_click"] = {**click_ratio(args.model, args.clicks, args.checkpoints), "machine": machine_info(),
                            "browser": "Debian chromium, headless, Playwright",
                            "command": "python -m attnviz.app_bench " + " ".join(argv or sys.argv[1:])}
    print(json.dumps(report["page_click"]), flush=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
