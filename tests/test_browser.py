"""Browser tests: the real app in Debian's Chromium, driven by Playwright (never `playwright install`)."""
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from attnviz.models import list_checkpoints

from conftest import ROOT

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (apt-get install chromium)"),
    pytest.mark.skipif(not {"danet-eca"} <= set(list_checkpoints()), reason="needs the danet-eca checkpoint"),
]
TIMEOUT_MS = 180_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    port = _free_port()
    log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        raise RuntimeError("streamlit did not start:\n" + Path(log.name).read_text())
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def browser_page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
        context = p.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, viewport={"width": 1400, "height": 1100},
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"])
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        yield page
        context.close()


_SCRIPT_STATE = "document.querySelector('[data-testid=\"stApp\"]')?.getAttribute('data-test-script-state')"


def _settled(page):
    """Wait until Streamlit has finished the run that the last action started.

    The app root carries the script state (running / notRunning / rerunRequested). A run may start a
    moment after the action that caused it, so first give it a chance to start, then wait until it
    has stopped, nothing shows a spinner, and the state stays put for a short while.
    """
    page.wait_for_selector("[data-testid='stApp']")
    try:
        page.wait_for_function(f"() => {_SCRIPT_STATE} !== 'notRunning'", timeout=1500)
    except PlaywrightTimeout:
        pass  # the run was over before we looked, or none was needed
    for _ in range(2):  # a widget written by the run itself may request one more run
        page.wait_for_function(f"() => {_SCRIPT_STATE} === 'notRunning'"
                               " && !document.querySelector('[data-testid=\"stSpinner\"]')", timeout=TIMEOUT_MS)
        page.wait_for_timeout(300)
    assert page.evaluate(f"() => {_SCRIPT_STATE}") == "notRunning"
    assert page.locator("[data-testid='stException']").count() == 0, page.locator(
        "[data-testid='stException']").first.inner_text()


def _open(page, url, link_text):
    page.goto(url)
    _settled(page)
    page.get_by_role("link", name=link_text).first.click()
    _settled(page)


def test_click_on_photo_moves_position_attention(server, browser_page):
    page = browser_page
    _open(page, server, "Position attention (S)")
    page.get_by_text("the centre until you click").wait_for()
    frame_element = page.frame_locator("iframe[title*='streamlit_image_coordinates']")
    image = frame_element.locator("img")
    image.wait_for()
    before = image.get_attribute("src")
    box = image.bounding_box()
    # click a quarter in from the top-left corner of the displayed photo
    image.click(position={"x": box["width"] * 0.25, "y": box["height"] * 0.25})
    expected_x, expected_y = round(480 * 0.25), round(360 * 0.25)
    text = page.get_by_text(re.compile(r"Chosen pixel: x = \d+, y = \d+"))
    text.wait_for(timeout=TIMEOUT_MS)
    _settled(page)
    match = re.search(r"x = (\d+), y = (\d+) in the photo", text.inner_text())
    assert abs(int(match.group(1)) - expected_x) <= 3 and abs(int(match.group(2)) - expected_y) <= 3
    after = frame_element.locator("img").get_attribute("src")
    assert after != before, "the attention overlay did not change after the click"
    assert "Row i sums to 1.000000" in page.inner_text("body")
    page.screenshot(path=str(Path(tempfile.gettempdir()) / "attnviz-position-click.png"), full_page=True)


def test_click_on_channel_map_selects_cell(server, browser_page):
    page = browser_page
    _open(page, server, "Channel attention (X)")
    chart = page.locator("[data-testid='stPlotlyChart']").first
    chart.wait_for()
    drag = chart.locator(".nsewdrag").first
    box = drag.bounding_box()
    channels = int(page.locator("input[type='number']").first.get_attribute("max")) + 1
    row, col = 2, 5
    drag.click(position={"x": (col + 0.5) * box["width"] / channels, "y": (row + 0.5) * box["height"] / channels})
    page.get_by_text(re.compile(r"Clicked cell: row \d+, column \d+")).wait_for(timeout=TIMEOUT_MS)
    _settled(page)
    body = page.inner_text("body")
    found = re.search(r"Clicked cell: row \d+, column \d+", body).group(0)
    page.screenshot(path=str(Path(tempfile.gettempdir()) / "attnviz-channel-click.png"), full_page=True)
    assert found == f"Clicked cell: row {row}, column {col}", f"{found}; plot box {box}, C = {channels}"
    assert page.locator("input[type='number']").first.input_value() == str(row)
