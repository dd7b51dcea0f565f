"""Attention under the cursor, in Chromium: what the page computes while hovering equals the library, and
hovering costs the server nothing (no script run, no websocket message). Pins live in the link."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from attnviz.analysis.forward import analyse
from attnviz.analysis.views import position_view
from attnviz.browser import CHROMIUM, chromium, settled, streamlit_server
from attnviz.data.samples import list_samples, load_sample
from attnviz.i18n import translate
from attnviz.models import list_checkpoints, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_MS = 180_000
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

# Before any page script: count websocket messages sent, and every script state the app root takes.
WATCH = """
(() => {
  window.__sent = 0;
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (...args) { window.__sent += 1; return send.apply(this, args); };
  window.__states = [];
  const watch = () => {
    const app = document.querySelector('[data-testid="stApp"]');
    if (!app) return setTimeout(watch, 50);
    new MutationObserver(() => window.__states.push(app.getAttribute('data-test-script-state')))
      .observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
  };
  watch();
})();
"""
WAIT_FOR_DRAW = (
    "(root, before) => new Promise(done => { const check = () => +root.dataset.draws > before ? done() : "
    "requestAnimationFrame(check); check(); })"
)
# hover points as fractions of the shown photo
POINTS = [(0.12, 0.2), (0.5, 0.5), (0.83, 0.31), (0.3, 0.85), (0.66, 0.72)]


@pytest.fixture(scope="module")
def open_page():
    """Each call: a page in a fresh browser context (its own new profile), watched by WATCH."""
    with chromium(TIMEOUT_MS) as open_fresh:

        def watched():
            page = open_fresh()
            page.context.add_init_script(WATCH)
            return page

        yield watched


@pytest.fixture(scope="module")
def page(open_page):
    return open_page()


def _settled(page):
    settled(page, TIMEOUT_MS)
    assert page.locator("[data-testid='stException']").count() == 0, page.locator(
        "[data-testid='stException']"
    ).first.inner_text()


def _open(page, url):
    page.goto(url)
    _settled(page)
    page.wait_for_selector(".attnviz-canvas[data-ready='1'] .stack")
    page.wait_for_timeout(300)


def _records(model_name, photo):
    model, _ = load_checkpoint(model_name)
    return analyse(model, load_sample(photo).image).spatial_attention


def _hover(page, fraction, panel=0):
    stack = page.locator(".stack").nth(panel)
    box = stack.bounding_box()
    draws = int(page.locator(".attnviz-canvas").get_attribute("data-draws") or 0)
    page.mouse.move(box["x"] + box["width"] * fraction[0], box["y"] + box["height"] * fraction[1])
    _wait_for_draw(page, ".attnviz-canvas", draws)
    return [json.loads(r) for r in page.locator(".readout").evaluate_all("rs => rs.map(r => r.dataset.view)")]


def _wait_for_draw(page, selector, before):
    """Until the component (inside its shadow root) has drawn more than `before` times."""
    page.locator(selector).evaluate(WAIT_FOR_DRAW, before)


def _assert_view_equals_library(shown, record, image_hw, mode="row"):
    expected = position_view(record, (shown["x"], shown["y"]), image_hw, mode)
    assert (shown["row"], shown["col"]) == expected.cell and shown["index"] == expected.index
    got = [(r, c) for r, c, _ in shown["top"]]
    assert got == [(r, c) for r, c, _ in expected.top_cells]
    np.testing.assert_allclose([v for *_, v in shown["top"]], [v for *_, v in expected.top_cells], rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(shown["total"], expected.total, rtol=1e-5)


def _server_quiet_since(page, sent_before):
    assert page.evaluate("window.__sent") == sent_before, "hovering sent messages to the server"
    assert "running" not in page.evaluate("window.__states"), "hovering ran the script"


def test_hover_computes_the_librarys_rows_in_the_page_and_sends_nothing(server, page):
    photo = list_samples()[0]
    _open(page, f"{server}/position?model=danet-eca&photo={photo}")
    record = _records("danet-eca", photo)["head.pam"]
    image_hw = load_sample(photo).image.shape[:2]
    sent = page.evaluate("window.__sent")
    page.evaluate("window.__states = []")
    box = page.locator(".stack").first.bounding_box()
    for fraction in POINTS:
        (shown,) = _hover(page, fraction)
        # the pixel under the pointer, by the click rule of attnviz.analysis.geometry (scale, floor)
        assert abs(shown["x"] - fraction[0] * image_hw[1]) <= 1 and abs(shown["y"] - fraction[1] * image_hw[0]) <= 1
        _assert_view_equals_library(shown, record, image_hw)
    text = page.locator(".readout").first.inner_text()
    assert re.search(r"x = \d+, y = \d+ in the photo → feature row \d+, column \d+", text), text
    assert "Top locations:" in text
    _server_quiet_since(page, sent)
    assert box == page.locator(".stack").first.bounding_box()  # nothing moved: no rerun redrew the page
    # column mode: who attends to the hovered pixel; the readout says column, not row, statistics
    page.get_by_text("who attends to it (column i)").click()
    _settled(page)
    (shown,) = _hover(page, POINTS[1])
    _assert_view_equals_library(shown, record, image_hw, mode="column")
    text = page.locator(".readout").first.inner_text()
    assert "Column i sums to" in text and "Row i sums" not in text


def test_three_pins_show_three_maps_and_the_link_restores_them(server, page, open_page):
    photo = list_samples()[1]
    _open(page, f"{server}/position?model=danet-eca&photo={photo}")
    for fraction in POINTS[:3]:
        stack = page.locator(".stack").first
        box = stack.bounding_box()
        page.mouse.click(box["x"] + box["width"] * fraction[0], box["y"] + box["height"] * fraction[1])
        _settled(page)
    page.get_by_text(re.compile(r"Pinned points \(3 of 4")).wait_for()
    titles = _pin_titles(page)
    assert len(titles[0]) == 3 and len(titles[1]) == 3, titles
    url = page.url
    assert "pins=" in url
    body = page.inner_text("body")
    chosen = re.search(r"Chosen pixel: x = \d+, y = \d+", body).group(0)
    fresh = open_page()  # a fresh browser context: nothing but the link is shared
    _open(fresh, url)
    fresh.get_by_text(re.compile(r"Pinned points \(3 of 4")).wait_for()
    assert _pin_titles(fresh) == titles  # the same pixels with the same numbers (each map's max)
    assert chosen in fresh.inner_text("body")


def _pin_titles(page):
    """The pinned maps drawn in the page (their captions), and the server's numbers of each pin."""
    page.locator(".pin-map").first.wait_for()
    captions = page.locator(".pin-map figcaption").all_text_contents()
    numbers = re.findall(
        r"x = \d+, y = \d+ → row \d+, column \d+ \(i = \d+\): largest [\d.]+ at row \d+, col \d+",
        page.inner_text("body"),
    )
    return captions, numbers


def test_side_by_side_hover_drives_both_models(server, page):
    photo = list_samples()[0]
    _open(page, f"{server}/position?model=danet-eca&photo={photo}&beside=danet-eca-affinity")
    assert page.locator(".stack").count() == 2
    records = [_records(name, photo)["head.pam"] for name in ("danet-eca", "danet-eca-affinity")]
    image_hw = load_sample(photo).image.shape[:2]
    for fraction in POINTS[:3]:
        first, second = _hover(page, fraction)
        assert (first["x"], first["y"]) == (second["x"], second["y"])
        _assert_view_equals_library(first, records[0], image_hw)
        _assert_view_equals_library(second, records[1], image_hw)
    # the second panel's photo drives both as well
    first, second = _hover(page, POINTS[3], panel=1)
    _assert_view_equals_library(first, records[0], image_hw)
    _assert_view_equals_library(second, records[1], image_hw)


def test_the_same_model_on_a_second_photo_beside_the_first(server, page):
    photo, other = list_samples()[:2]
    _open(page, f"{server}/position?model=danet-eca&photo={photo}&beside=photo {other}")
    assert page.locator(".stack").count() == 2
    records = [_records("danet-eca", p)["head.pam"] for p in (photo, other)]
    for fraction in POINTS[:3]:
        first, second = _hover(page, fraction)
        _assert_view_equals_library(first, records[0], load_sample(photo).image.shape[:2])
        _assert_view_equals_library(second, records[1], load_sample(other).image.shape[:2])


def test_hovering_x_shows_the_row_of_the_library(server, page):
    photo = list_samples()[0]
    page.goto(f"{server}/channel_map?model=danet-eca&photo={photo}")
    _settled(page)
    page.wait_for_selector(".attnviz-channels[data-ready='1'] .matrix")
    model, _ = load_checkpoint("danet-eca")
    _, record = analyse(model, load_sample(photo).image).channel_map
    attention = record.attention[0].numpy()
    channels = attention.shape[0]
    matrix = page.locator(".matrix")
    matrix.evaluate("m => m.scrollIntoView({block: 'center'})")  # every row on the screen, whatever is above
    box = matrix.bounding_box()
    sent = page.evaluate("window.__sent")
    page.evaluate("window.__states = []")
    for channel in (3, channels // 2, channels - 1):
        before = int(page.locator(".attnviz-channels").get_attribute("data-draws"))
        page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + (channel + 0.5) * box["height"] / channels)
        _wait_for_draw(page, ".attnviz-channels", before)
        shown = json.loads(page.locator(".attnviz-channels .readout").get_attribute("data-view"))
        assert shown["channel"] == channel
        np.testing.assert_allclose(shown["row"], attention[channel], rtol=1e-6, atol=1e-9)  # two processes' forwards
        assert shown["top"][0] == int(np.argmax(attention[channel]))
    _server_quiet_since(page, sent)
    # a click chooses the row on the server
    page.mouse.click(box["x"] + box["width"] * 0.5, box["y"] + (4 + 0.5) * box["height"] / channels)
    _settled(page)
    assert page.locator("input[type='number']").first.input_value() == "4"
    assert "Row c = 4 sums to" in page.inner_text("body")


def test_the_hovered_x_reads_out_in_the_pages_language(server, page):
    page.goto(f"{server}/channel_map?model=danet-eca&lang=zh")
    _settled(page)
    page.wait_for_selector(".attnviz-channels[data-ready='1'] .matrix")
    box = page.locator(".matrix").bounding_box()
    before = int(page.locator(".attnviz-channels").get_attribute("data-draws"))
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.1)
    _wait_for_draw(page, ".attnviz-channels", before)
    canvas = page.locator(".attnviz-channels")
    c = json.loads(canvas.locator(".readout").get_attribute("data-view"))["channel"]
    head = canvas.locator(".readout-head").inner_text()
    assert head.startswith(translate("channel_canvas.row", "zh", c=c, sum="", uniform="").split("：")[0])
    assert canvas.locator(".readout-top-title").inner_text() == translate("channel_canvas.top_title", "zh")
    assert canvas.locator(".axis-y").inner_text() == translate("channel_canvas.axis_y", "zh")


HOVERNET = '''
import torch.nn.functional as F
from torch import nn

from attention_blocks import Context, Cross, Nonlocal2d


class HoverNet(nn.Module):
    """Stride 8, a sub-sampled embedded non-local block (keys on a 23x30 grid), criss-cross attention, a
    dot-product non-local block and GCNet's context block."""

    def __init__(self, num_classes=4):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU(),
                                  nn.Conv2d(32, 32, 3, 2, 1), nn.ReLU())
        self.nonlocal_block = Nonlocal2d(32, sub_sample=True)
        self.cross = Cross(32)
        self.dot_block = Nonlocal2d(32, sub_sample=False, mode="dot")
        self.context = Context(32)
        self.classifier = nn.Conv2d(32, num_classes, 1)

    def forward(self, x):
        y = self.context(self.dot_block(self.cross(self.nonlocal_block(self.stem(x)))))
        return F.interpolate(self.classifier(y), size=x.shape[-2:], mode="bilinear", align_corners=False)
'''
HUBCONF = """
dependencies = ["torch"]

from hovernet import HoverNet


def hovernet(**kwargs):
    return HoverNet(**kwargs)
"""


@pytest.fixture(scope="module")
def hover_repo(tmp_path_factory):
    """A user's repository (hubconf.py) whose model holds a sub-sampled non-local block and criss-cross
    attention, written from the test fixtures' modules (themselves written from the published maths)."""
    import sys

    import torch
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("hover-repo")
    (folder / "attention_blocks.py").write_text((Path(__file__).parent / "fixtures_attention.py").read_text())
    (folder / "hovernet.py").write_text(HOVERNET)
    (folder / "hubconf.py").write_text(HUBCONF)
    sys.path.insert(0, str(folder))
    try:
        from hovernet import HoverNet

        torch.manual_seed(5)
        model = HoverNet()
        for parameter in model.parameters():
            parameter.data.normal_(0, 0.2)  # energies of tens, as in trained models (0.3 gave hundreds)
        with torch.no_grad():
            model.cross.gamma.fill_(0.5)
    finally:
        sys.path.remove(str(folder))
        for name in ("hovernet", "attention_blocks"):
            sys.modules.pop(name, None)
    weights = folder / "hovernet.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    return folder, weights, model


def test_a_user_models_non_local_dot_gcnet_and_criss_cross_hover_like_the_library(hover_repo, page):
    from attnviz.analysis.forward import analyse_user_model
    from attnviz.models.user import load_user_model

    folder, weights, _ = hover_repo
    spec = f"{folder}:hovernet"
    photo = list_samples()[0]
    image = load_sample(photo).image
    records = analyse_user_model(load_user_model(spec, weights=str(weights)), image).spatial_attention

    def named(kind, **where):
        return next(
            n
            for n, r in records.items()
            if type(r).__name__ == kind and all(getattr(r, k, None) == v for k, v in where.items())
        )

    nonlocal_name = named("PositionAttentionRecord", normalisation="softmax")
    dot_name = named("PositionAttentionRecord", normalisation="dot")
    cross_name, context_name = named("CrissCrossAttentionRecord"), named("GlobalContextRecord")
    assert records[nonlocal_name].key_grid != (records[nonlocal_name].height, records[nonlocal_name].width)
    with streamlit_server(ROOT / "app.py", ROOT, ("--model", spec, "--weights", str(weights))) as url:
        # GCNet in row mode only: its columns are constant, so their top 5 is any 5 cells
        for module, mode in (
            (nonlocal_name, "row"),
            (nonlocal_name, "column"),
            (dot_name, "row"),
            (dot_name, "column"),
            (context_name, "row"),
            (cross_name, "row"),
        ):
            _open(page, f"{url}/position?module={module}&mode={mode}")
            sent = page.evaluate("window.__sent")
            page.evaluate("window.__states = []")
            for fraction in POINTS:
                (shown,) = _hover(page, fraction)
                _assert_view_equals_library(shown, records[module], image.shape[:2], mode)
            _server_quiet_since(page, sent)
        # the cross's uniform baseline is its H + W - 1 keys, not N
        record = records[cross_name]
        assert f"uniform 1/{record.height + record.width - 1}" in page.locator(".readout").first.inner_text()
        page.screenshot(path=str(Path(tempfile_dir()) / "attnviz-hover-cross.png"))


def tempfile_dir():
    import tempfile

    return tempfile.gettempdir()


def test_a_vit_patch_is_hovered_like_the_library_with_nothing_sent(open_page, tmp_path_factory):
    """Issue 32: a ViT from the ImageNet source (its weights a file this test writes, read the way the app reads
    local weights), hovered patch by patch: the page's row and top 5 are the library's, computed in the page."""
    import os

    import timm
    import torch
    from safetensors.torch import save_file

    from attnviz.analysis.forward import analyse_classifier
    from attnviz.models.imagenet import load_imagenet_model

    arch, folder = "vit_small_patch16_224", tmp_path_factory.mktemp("timm-weights")
    torch.manual_seed(0)
    state = timm.create_model(arch, pretrained=False).state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / f"{arch}.safetensors"))
    model, weights = load_imagenet_model(arch, folder, allow_download=False)
    assert weights.origin == "file"
    photo = list_samples()[0]
    image = load_sample(photo).image
    record = analyse_classifier(model, image, arch).spatial_attention["blocks.0.attn:head0"]
    env = {**os.environ, "ATTNVIZ_TIMM_WEIGHTS": str(folder)}
    with streamlit_server(ROOT / "app.py", ROOT, env=env) as url:
        page = open_page()
        _open(page, f"{url}/position?source=timm&model={arch}&photo={photo}")
        sent = page.evaluate("window.__sent")
        page.evaluate("window.__states = []")
        for fraction in POINTS:
            (shown,) = _hover(page, fraction)
            _assert_view_equals_library(shown, record, image.shape[:2])
            assert len(shown["top"]) >= 5
        _server_quiet_since(page, sent)
        page.close()
