"""Browser tests: the real app in Debian's Chromium, driven by Playwright (never `playwright install`)."""

import re
import tempfile
from pathlib import Path

import pytest

from attnviz.browser import CHROMIUM, SCRIPT_STATE, chromium_page, settled, streamlit_server
from attnviz.models import list_checkpoints

ROOT = Path(__file__).resolve().parents[1]  # the project: app.py, pages/, checkpoints/

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (apt-get install chromium)"
    ),
    pytest.mark.skipif(not {"danet-eca"} <= set(list_checkpoints()), reason="needs the danet-eca checkpoint"),
]
TIMEOUT_MS = 180_000


@pytest.fixture(scope="module")
def browser_page():
    with chromium_page(TIMEOUT_MS) as page:
        yield page


def _settled(page):
    """Wait until Streamlit has finished the run that the last action started, and it raised nothing."""
    settled(page, TIMEOUT_MS)
    assert page.evaluate(f"() => {SCRIPT_STATE}") == "notRunning"
    assert page.locator("[data-testid='stException']").count() == 0, page.locator(
        "[data-testid='stException']"
    ).first.inner_text()


def _open(page, url, link_text):
    page.goto(url)
    _settled(page)
    page.get_by_role("link", name=link_text).first.click()
    _settled(page)


def test_click_on_photo_moves_position_attention(server, browser_page):
    page = browser_page
    _open(page, server, "Position attention module (S)")
    page.get_by_text("the centre until you click").wait_for()
    stack = page.locator(".attnviz-canvas .stack").first  # the live photo (a component in a shadow root)
    stack.wait_for()
    box = stack.bounding_box()
    # click a quarter in from the top-left corner of the displayed photo: it pins the pixel
    page.mouse.click(box["x"] + box["width"] * 0.25, box["y"] + box["height"] * 0.25)
    expected_x, expected_y = round(480 * 0.25), round(360 * 0.25)
    text = page.get_by_text(re.compile(r"Chosen pixel: x = \d+, y = \d+"))
    text.wait_for(timeout=TIMEOUT_MS)
    _settled(page)
    match = re.search(r"x = (\d+), y = (\d+) in the photo", text.inner_text())
    assert abs(int(match.group(1)) - expected_x) <= 3 and abs(int(match.group(2)) - expected_y) <= 3
    assert "Row i sums to 1.000000" in page.inner_text("body")
    page.screenshot(path=str(Path(tempfile.gettempdir()) / "attnviz-position-click.png"), full_page=True)


def test_a_link_restores_the_view_and_the_csv_download_holds_the_library_numbers(server, browser_page):
    import csv
    import io

    import numpy as np

    from attnviz.analysis.forward import analyse, feature_index
    from attnviz.data.samples import list_samples, load_sample
    from attnviz.models import load_checkpoint

    page = browser_page
    photo = list_samples()[1]
    page.goto(f"{server}/position?model=danet-none&photo={photo}&x=100&y=200&mode=column")
    _settled(page)
    page.get_by_text(re.compile(r"Chosen pixel: x = 100, y = 200 in the photo")).wait_for()
    _settled(page)
    chosen = page.locator("[data-testid='stSidebar'] [data-testid='stSelectbox'] input").evaluate_all(
        "inputs => inputs.map(i => i.value)"
    )
    assert chosen == ["danet-none", photo]
    assert page.get_by_role("radio", name="who attends to it (column i)").is_checked()
    assert "mode=column" in page.url and "x=100" in page.url  # the address bar keeps the view

    with page.expect_download() as download:
        page.get_by_role("button", name=re.compile(r"Column \d+ of S \(CSV\)")).click()
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))

    model, _ = load_checkpoint("danet-none")
    sample = load_sample(photo)
    _, pam = analyse(model, sample.image).position
    index = feature_index(100, 200, sample.image.shape[:2], (pam.height, pam.width))
    expected = pam.column(index).numpy()
    assert len(rows) == pam.num_pixels
    got = np.array([float(r[f"S_column_{index}"]) for r in rows]).reshape(pam.height, pam.width)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-7)
    assert page.locator("[data-testid='stException']").count() == 0


def test_an_uploaded_file_name_is_shown_literally(server, browser_page, tmp_path):
    page = browser_page
    page.goto(server)
    _settled(page)
    photo = page.locator("[data-testid='stSidebar'] [data-testid='stSelectbox']").nth(1)
    photo.click()
    # type to filter the list and pick with Enter: a click on the option raced the list's rendering
    photo.locator("input").fill("Upload")
    page.get_by_role("option", name="Upload your own photo…").wait_for()
    page.keyboard.press("Enter")
    _settled(page)
    name = "$x^2$ :red[boo] _it_.png"
    (tmp_path / "upload.png").write_bytes(b"not an image")
    page.locator("[data-testid='stSidebar'] input[type='file']").set_input_files(
        files=[{"name": name, "mimeType": "image/png", "buffer": b"not an image"}]
    )
    _settled(page)
    error = page.locator("[data-testid='stSidebar'] [data-testid='stAlertContentError']").first
    error.wait_for()
    assert error.inner_text().startswith(name + ":"), error.inner_text()


def test_a_fresh_server_opened_at_a_page_url_runs_the_app_entry(browser_page):
    """Streamlit runs pages/*.py on their own until st.navigation was called once; the app must still
    show its own navigation and sidebar, not the folder's file names."""
    with streamlit_server(ROOT / "app.py", ROOT) as url:
        page = browser_page
        page.goto(f"{url}/eca_kernel")
        _settled(page)
        page.get_by_text("ECA kernel size").first.wait_for()
        navigation = page.locator("[data-testid='stSidebarNav']").inner_text()
        assert "Position attention module (S)" in navigation and "eca kernel" not in navigation, navigation
        assert page.locator("[data-testid='stSidebar'] [data-testid='stSelectbox']").count() == 2


def test_click_on_the_attribution_page_moves_the_pixel_and_compares(server, browser_page):
    page = browser_page
    page.goto(f"{server}/attribution?model=danet-eca")
    _settled(page)
    page.get_by_text("the centre until you click").wait_for()
    image = page.frame_locator("iframe[title*='streamlit_image_coordinates']").locator("img")
    image.wait_for()
    box = image.bounding_box()
    image.click(position={"x": box["width"] * 0.75, "y": box["height"] * 0.5})
    page.get_by_text(re.compile(r"Chosen pixel: x = \d+, y = \d+")).wait_for(timeout=TIMEOUT_MS)
    _settled(page)
    match = re.search(r"x = (\d+), y = (\d+);", page.inner_text("body"))
    assert abs(int(match.group(1)) - 360) <= 3 and abs(int(match.group(2)) - 180) <= 3
    page.get_by_role("button", name="Compute Integrated Gradients").click()
    page.get_by_text(re.compile(r"Attention row vs Integrated Gradients")).wait_for(timeout=TIMEOUT_MS)
    _settled(page)
    body = page.inner_text("body")
    assert re.search(
        r"Attention row vs Grad-CAM over the 45x60 feature grid: rank correlation \(Spearman\) [+-]\d", body
    )
    page.screenshot(path=str(Path(tempfile.gettempdir()) / "attnviz-attribution.png"), full_page=True)


def test_integrated_gradients_shows_its_progress_and_cancel_stops_it(server, browser_page):
    """IG runs in the shared pool behind a progress bar over its steps and a Cancel button; Cancel gives the
    page back at once, with the IG not computed (the pool stops it within one internal batch: test_workpool)."""
    page = browser_page
    page.goto(f"{server}/attribution?model=danet-eca&x=100&y=100")  # a pixel no other test computed
    _settled(page)
    page.get_by_role("button", name="Compute Integrated Gradients").click()
    page.get_by_text(re.compile(r"\d+ of 32 steps done")).wait_for(timeout=TIMEOUT_MS)
    assert page.locator("[data-testid='stProgress']").count() == 1
    page.get_by_role("button", name="Cancel").click()
    _settled(page)
    body = page.inner_text("body")
    assert "Not computed yet for this pixel" in body and "Attention row vs Integrated Gradients" not in body
    assert page.locator("[data-testid='stProgress']").count() == 0
    assert page.get_by_role("button", name="Compute Integrated Gradients").is_enabled()


@pytest.mark.parametrize("parameter", ["photo", "model"])
def test_a_link_with_a_bare_url_shows_it_as_plain_text_not_a_link(server, browser_page, parameter):
    """A crafted link must not turn the app's own toast into a phishing link."""
    from urllib.parse import quote

    page = browser_page
    lure = "Session expired, log in again at https://evil.example/login or www.evil.example"
    page.goto(f"{server}/?{parameter}={quote(lure)}")
    _settled(page)
    toast = page.locator("[data-testid='stToast']").filter(has_text="evil").first
    toast.wait_for()
    shown = toast.inner_text().replace("\u2060", "")
    assert "https://evil.example/login" in shown and "www.evil.example" in shown, shown
    assert toast.locator("a").count() == 0, toast.inner_html()
    assert page.locator("a[href*='evil']").count() == 0


def test_your_model_from_a_hubconf_click_a_pixel_and_see_its_row(browser_page, user_model_repo):
    """`streamlit run app.py -- --model REPO:entry --weights FILE`: the Position page of the user's own model."""
    repo, weights = user_model_repo
    with streamlit_server(ROOT / "app.py", ROOT, ("--model", f"{repo}:streetnet", "--weights", str(weights))) as url:
        page = browser_page
        page.goto(f"{url}/position")
        _settled(page)
        page.get_by_text("the centre until you click").wait_for()
        stack = page.locator(".attnviz-canvas .stack").first
        stack.wait_for()
        box = stack.bounding_box()
        page.mouse.click(box["x"] + box["width"] * 0.75, box["y"] + box["height"] * 0.25)
        _settled(page)
        text = page.get_by_text(re.compile(r"Chosen pixel: x = \d+, y = \d+")).inner_text()
        x, y = map(int, re.search(r"x = (\d+), y = (\d+) in the photo", text).groups())
        assert abs(x - 360) <= 2 and abs(y - 90) <= 2, text
        assert f"row {y * 45 // 360}, column {x * 60 // 480}" in text, text
        page.get_by_text(re.compile(r"Row i sums to 1\.0000")).first.wait_for()
        assert "verified" in page.inner_text("body")
        page.screenshot(path=str(Path(tempfile.gettempdir()) / "attnviz-your-model-position.png"), full_page=True)
