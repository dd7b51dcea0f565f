"""What a click costs the app's server: python -m attnviz.app_bench [--model danet-eca] [--clicks 10]

The app layer measures itself (the library's `python -m attnviz.bench` knows
nothing of app.py): Streamlit's AppTest runs app.py on the Position page, a
first run loads the model and analyses the photo (cached afterwards), then
each injected click reruns the whole page (one row of S from the cached
capture, the overlay image, the figures) and is timed. The figures go into
bench.json under "page_click", beside the library's.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from attnviz.machine import machine_info
from attnviz.models.checkpoint import DEFAULT_CHECKPOINT_DIR

__all__ = ["page_click", "main"]

APP = Path(__file__).resolve().parents[1] / "app.py"


def page_click(name: str, clicks: int = 10) -> dict:
    """Server-side seconds of a click on the Position page: the whole page rerun, median and maximum."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=300)
    at.switch_page("pages/position.py").run()
    at.selectbox(key="model").set_value(name).run()  # model load + forward, cached after
    times = []
    for i in range(clicks):
        at.session_state["pam_click"] = {"x": 40 + 40 * i, "y": 30 + 30 * i, "width": 480, "height": 360}
        start = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - start)
        if at.exception:
            raise RuntimeError(at.exception[0].value)
    return {"model": name, "clicks": clicks, "rerun_median_s": statistics.median(times), "rerun_max_s": max(times)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m attnviz.app_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="danet-eca")
    parser.add_argument("--clicks", type=int, default=10)
    parser.add_argument("--out", type=Path, default=DEFAULT_CHECKPOINT_DIR / "bench.json")
    args = parser.parse_args(argv)
    if args.clicks < 1:
        parser.error("--clicks must be at least 1")
    report = json.loads(args.out.read_text()) if args.out.exists() else {}
    report["page_click"] = {**page_click(args.model, args.clicks), "machine": machine_info(),
                            "command": "python -m attnviz.app_bench " + " ".join(argv or sys.argv[1:])}
    print(json.dumps(report["page_click"]), flush=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
