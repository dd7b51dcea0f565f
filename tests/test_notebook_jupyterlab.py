"""The notebook widget in a real JupyterLab (the pinned one of requirements.txt) driven by Debian's Chromium.

A notebook in a temporary folder makes the view of the shipped danet-eca model on a sample photo; the test runs its
cell in the browser, hovers one point and checks the readout against the library's row of S (attnviz.analysis.views,
computed here in float32; the page computes in float64 from the same float32 projections: 1e-5 relative, as the
app's browser tests), then clicks to pin and runs the next cell, which prints `view.pins` in the kernel."""

import ast
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

MODEL, PHOTO = "danet-eca", "0001TP_008550"
RELATIVE = 1e-5
HOVER, PIN = (0.3, 0.4), (0.7, 0.6)  # where on the photo, as fractions of its shown width and height


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _notebook(folder: Path) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.cells = [
        nbformat.v4.new_code_cell(f"from attnviz.notebook import show\nview = show({MODEL!r}, {PHOTO!r})\nview"),
        nbformat.v4.new_code_cell('print("PINS", view.pins)'),
    ]
    nbformat.write(notebook, folder / "view.ipynb")


def _wait_until_up(url: str, process: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.time() + timeout_s
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            if process.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"JupyterLab at {url} did not come up") from None
            time.sleep(0.25)


def _library_view(pixel):
    """The library's row of S at `pixel`, from a pass of its own on the same photo."""
    from attnviz.analysis.views import position_view
    from attnviz.notebook.widget import analyse_model, read_photo

    photo = read_photo(PHOTO)
    record = analyse_model(MODEL, photo, "cpu").position[1]
    return position_view(record, pixel, photo.image.shape[:2], "row")


def _run_cell(page, index: int) -> None:
    page.locator(".jp-Notebook .jp-Cell").nth(index).locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")


def _point(box, fraction) -> tuple[float, float]:
    return box["x"] + fraction[0] * box["width"], box["y"] + fraction[1] * box["height"]


def test_the_widget_in_jupyterlab_hovers_the_librarys_row_and_a_pin_reaches_the_kernel(tmp_path):
    from attnviz.browser import CHROMIUM, chromium_page

    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    root, settings = tmp_path / "root", tmp_path / "settings"
    root.mkdir()
    _notebook(root)
    port, token = _free_port(), "attnviz-test-token"
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        f"--LabApp.user_settings_dir={settings}",
        f"--LabApp.workspaces_dir={settings}",
        "--LabApp.news_url=",
        "--LabApp.extension_manager=readonly",  # no look-ups on PyPI
        *(["--allow-root"] if os.geteuid() == 0 else []),
    ]
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "config"), "PYTHONUNBUFFERED": "1"}
    log = open(tmp_path / "jupyterlab.log", "w")  # noqa: SIM115 - closed below, after the server
    server = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_until_up(f"{url}/api/status?token={token}", server)
        with chromium_page(60_000) as page:
            page.goto(f"{url}/lab/tree/view.ipynb?token={token}")
            page.wait_for_selector(".jp-Notebook .jp-Cell .jp-InputArea-editor")
            # a cell run before the kernel is ready is dropped: wait for the status bar's "Python 3 (ipykernel) | Idle"
            page.wait_for_function(
                "() => /ipykernel\\) \\| Idle/.test(document.querySelector('#jp-main-statusbar').innerText)"
            )
            _run_cell(page, 0)
            canvas = page.wait_for_selector(".attnviz-canvas[data-ready='1'] .stack", timeout=90_000)
            page.wait_for_function("() => document.querySelector('.attnviz-canvas .photo')?.naturalWidth > 0")
            box = canvas.bounding_box()

            page.mouse.move(*_point(box, HOVER))
            page.wait_for_function("() => document.querySelector('.attnviz-canvas').dataset.source === 'hover'")
            shown = page.eval_on_selector(".attnviz-canvas .readout", "e => JSON.parse(e.dataset.view)")
            library = _library_view((shown["x"], shown["y"]))
            assert shown["mode"] == "row" and shown["index"] == library.index
            assert (shown["row"], shown["col"]) == library.cell
            assert [(r, c) for r, c, _ in shown["top"]] == [(r, c) for r, c, _ in library.top_cells]
            assert [v for *_, v in shown["top"]] == pytest.approx([v for *_, v in library.top_cells], rel=RELATIVE)
            assert shown["total"] == pytest.approx(library.total, rel=RELATIVE)

            page.mouse.click(*_point(box, PIN))
            page.wait_for_function("() => JSON.parse(document.querySelector('.attnviz-canvas').dataset.pins).length")
            pinned = page.eval_on_selector(".attnviz-canvas", "e => JSON.parse(e.dataset.pins)")
            _run_cell(page, 1)
            output = page.locator(".jp-Notebook .jp-Cell").nth(1).locator(".jp-OutputArea-output")
            output.wait_for()
            printed = output.inner_text().strip()
        assert printed.startswith("PINS "), printed
        assert ast.literal_eval(printed.removeprefix("PINS ")) == [tuple(p) for p in pinned], (printed, pinned)
        assert len(pinned) == 1
    finally:
        server.send_signal(signal.SIGTERM)  # the server shuts its kernel down as it stops
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)  # the server, in the session it leads
        log.close()
