"""A pin in Chromium (issue 31): it reruns only the page's numbers, sends a few KiB, lands on the pixel under the
pointer, and nothing that changes while hovering moves the photo.

The live photo pins in the page (attnviz/app/attention_canvas.js, `local_pins`) and the server's numbers come from
the Position page's numbers fragment (pages/position.py). The bytes are counted as the browser receives them
(attnviz.browser.COUNT_RECEIVED_JS)."""

import json
import random
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from attnviz.browser import CHROMIUM, COUNT_RECEIVED_JS, chromium, settled
from attnviz.data.samples import list_samples, load_sample
from attnviz.models import list_checkpoints

TIMEOUT_MS = 180_000
MAX_BYTES_PER_PIN = 20 * 1024  # the bound
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (apt-get install chromium)"
    ),
    pytest.mark.skipif(
        not {"danet-eca", "danet-eca-affinity"} <= set(list_checkpoints()),
        reason="needs the danet-eca and danet-eca-affinity checkpoints",
    ),
]


@pytest.fixture(scope="module")
def page():
    with chromium(TIMEOUT_MS) as open_fresh:
        page = open_fresh()
        page.context.add_init_script(COUNT_RECEIVED_JS)
        yield page


def _open(page, url):
    page.goto(url)
    settled(page, TIMEOUT_MS)
    assert page.locator("[data-testid='stException']").count() == 0
    page.wait_for_selector(".attnviz-canvas[data-ready='1'] .stack")
    page.locator(".stack").first.evaluate("s => s.scrollIntoView({block: 'center'})")
    page.wait_for_timeout(300)


def _boxes(page):
    return [page.locator(".stack").nth(k).bounding_box() for k in range(page.locator(".stack").count())]


def _centre_of_pixel(box, image_hw, x, y):
    """The screen point at the centre of photo pixel (x, y): the click rule (scale, floor) maps it back to (x, y)."""
    height, width = image_hw
    return box["x"] + (x + 0.5) * box["width"] / width, box["y"] + (y + 0.5) * box["height"] / height


def _local_pins(page):
    return json.loads(page.locator(".attnviz-canvas").get_attribute("data-pins") or "[]")


def _server_pins(page):
    """The pins the server holds, as it wrote them into the link (?pins=x1xy1,x2xy2), oldest first."""
    query = parse_qs(urlparse(page.url).query)
    return [[int(v) for v in pin.split("x")] for pin in query.get("pins", [""])[0].split(",") if pin]


def test_a_pin_reruns_only_the_numbers_and_receives_under_20_kib_and_a_control_not_the_payload(server, page):
    photo = list_samples()[0]
    _open(page, f"{server}/position?model=danet-eca&photo={photo}")
    image_hw = load_sample(photo).image.shape[:2]
    box = _boxes(page)[0]
    received = []
    for x, y in [(60, 50), (300, 200), (420, 90), (150, 300)]:
        before = page.evaluate("window.__received.bytes")
        page.mouse.click(*_centre_of_pixel(box, image_hw, x, y))
        page.get_by_text(f"Chosen pixel: x = {x}, y = {y}").first.wait_for()
        settled(page, TIMEOUT_MS, start_wait_ms=200, quiet_ms=200)
        received.append(page.evaluate("window.__received.bytes") - before)
        assert f"x={x}&y={y}" in page.url  # the link follows the pin
        # the live photo was not sent again: its last draw is still the pin's own, not a new run's
        assert page.locator(".attnviz-canvas").get_attribute("data-source") == "pin"
    assert max(received) <= MAX_BYTES_PER_PIN, received
    assert all(r > 1000 for r in received), received  # and the numbers did come
    # a control reruns the live photo's part, whose payload (photo, Q, K, L: about 350 KB) comes back as a
    # reference to the browser's copy (Streamlit's forward-message cache), not again
    before = page.evaluate("window.__received.bytes")
    page.get_by_text("who attends to it (column i)").click()
    page.get_by_text("Column i sums to").first.wait_for()
    settled(page, TIMEOUT_MS, start_wait_ms=200, quiet_ms=200)
    control = page.evaluate("window.__received.bytes") - before
    assert control <= 2 * MAX_BYTES_PER_PIN, control
    assert page.locator(".attnviz-canvas").get_attribute("data-source") != "pin"  # the live photo did rerun


def test_the_photo_holds_still_while_hovering_in_both_modes_and_beside_another(server, page):
    photo = list_samples()[2]
    rng = random.Random(31)
    for url, mode in [
        (f"{server}/position?model=danet-eca&photo={photo}", "row"),
        (f"{server}/position?model=danet-eca&photo={photo}&mode=column", "column"),
        (f"{server}/position?model=danet-eca&photo={photo}&beside=danet-eca-affinity", "row"),
    ]:
        _open(page, url)
        boxes = _boxes(page)
        for _ in range(40):
            box = boxes[rng.randrange(len(boxes))]
            draws = int(page.locator(".attnviz-canvas").get_attribute("data-draws") or 0)
            page.mouse.move(box["x"] + box["width"] * rng.random(), box["y"] + box["height"] * rng.random())
            page.locator(".attnviz-canvas").evaluate(
                "(root, before) => new Promise(done => { const check = () => +root.dataset.draws > before ? "
                "done() : requestAnimationFrame(check); check(); })",
                draws,
            )
            assert _boxes(page) == boxes, f"the photo moved while hovering ({mode}, {len(boxes)} panels)"


def test_150_clicks_each_pin_the_pixel_under_the_pointer(server, page):
    photo = list_samples()[1]
    _open(page, f"{server}/position?model=danet-eca&photo={photo}")
    image_hw = load_sample(photo).image.shape[:2]
    rng = random.Random(150)
    box = _boxes(page)[0]
    for _ in range(150):
        x, y = rng.randrange(image_hw[1]), rng.randrange(image_hw[0])
        page.mouse.click(*_centre_of_pixel(box, image_hw, x, y))
        assert _local_pins(page)[-1] == [x, y]  # pinned in the page at once, on the pixel aimed at
        assert _boxes(page)[0] == box  # and nothing moved the photo
        page.wait_for_timeout(rng.choice([0, 20, 60, 150]))  # faster and slower than the server's runs
    settled(page, TIMEOUT_MS, start_wait_ms=500, quiet_ms=500)
    local = _local_pins(page)
    assert len(local) == 4 and local[-1] == [x, y]
    page.get_by_text(f"Chosen pixel: x = {x}, y = {y}").first.wait_for()
    assert _server_pins(page) == local  # the server ends with the page's pins: no click was lost


def test_a_click_on_x_reruns_only_the_rows_numbers(server, page):
    photo = list_samples()[0]
    page.goto(f"{server}/channel_map?model=danet-eca&photo={photo}")
    settled(page, TIMEOUT_MS)
    page.wait_for_selector(".attnviz-channels[data-ready='1'] .matrix")
    matrix = page.locator(".matrix")
    matrix.evaluate("m => m.scrollIntoView({block: 'center'})")
    box = matrix.bounding_box()
    channels = 64  # danet-eca (width 0.5): its CAM mixes 64 channels
    for channel in (4, 40):
        page.mouse.click(box["x"] + box["width"] * 0.5, box["y"] + (channel + 0.5) * box["height"] / channels)
        page.get_by_text(f"Row c = {channel} sums to").first.wait_for()
        settled(page, TIMEOUT_MS, start_wait_ms=200, quiet_ms=200)
        assert page.locator("input[type='number']").first.input_value() == str(channel)  # the box follows
        assert f"channel={channel}" in page.url
        # X was not sent again: the map's last draw is the click's own, not a new run's
        assert page.locator(".attnviz-channels").get_attribute("data-source") == "pin"


def test_clear_empties_the_photos_pins_and_the_next_click_starts_again(server, page):
    """The canvas pins in the page, so its last data from the server can equal what a clear sends (no pins, the
    centre): the clear must still reach the page, and the next click must not bring the cleared pins back."""
    photo = list_samples()[3]
    _open(page, f"{server}/position?model=danet-eca&photo={photo}")
    image_hw = load_sample(photo).image.shape[:2]
    box = _boxes(page)[0]
    for x, y in [(50, 40), (400, 300)]:
        page.mouse.click(*_centre_of_pixel(box, image_hw, x, y))
        page.get_by_text(f"Chosen pixel: x = {x}, y = {y}").first.wait_for()
        settled(page, TIMEOUT_MS, start_wait_ms=200, quiet_ms=200)
    page.get_by_role("button", name="Clear pins").click()
    page.get_by_text("the centre until you click").first.wait_for()
    settled(page, TIMEOUT_MS, start_wait_ms=200, quiet_ms=200)
    assert _local_pins(page) == []  # the photo's pins are gone too
    page.locator(".stack").first.evaluate("s => s.scrollIntoView({block: 'center'})")  # the button scrolled it
    box = _boxes(page)[0]
    page.mouse.click(*_centre_of_pixel(box, image_hw, 200, 100))
    page.get_by_text("Chosen pixel: x = 200, y = 100").first.wait_for()
    settled(page, TIMEOUT_MS, start_wait_ms=200, quiet_ms=200)
    assert _local_pins(page) == [[200, 100]] and _server_pins(page) == []  # one pin: the link has x, y only
    assert "x=200&y=100" in page.url


def test_a_row_typed_in_the_box_is_the_one_x_marks(server, page):
    photo = list_samples()[0]
    page.goto(f"{server}/channel_map?model=danet-eca&photo={photo}")
    settled(page, TIMEOUT_MS)
    page.wait_for_selector(".attnviz-channels[data-ready='1'] .matrix")
    first = page.locator(".attnviz-channels").get_attribute("data-chosen")
    matrix = page.locator(".matrix")
    matrix.evaluate("m => m.scrollIntoView({block: 'center'})")
    box = matrix.bounding_box()
    clicked = 40 if first != "40" else 41
    page.mouse.click(box["x"] + box["width"] * 0.5, box["y"] + (clicked + 0.5) * box["height"] / 64)
    page.get_by_text(f"Row c = {clicked} sums to").first.wait_for()
    settled(page, TIMEOUT_MS, start_wait_ms=200, quiet_ms=200)
    field = page.locator("input[type='number']").first
    field.fill(first)
    field.press("Enter")
    page.get_by_text(f"Row c = {first} sums to").first.wait_for()
    settled(page, TIMEOUT_MS, start_wait_ms=200, quiet_ms=200)
    assert page.locator(".attnviz-channels").get_attribute("data-chosen") == first  # X marks the typed row
