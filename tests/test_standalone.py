"""The live view as one HTML file (attnviz.viz.standalone, python -m attnviz.export_html): opened from disk in
Chromium with every network request refused, it shows the library's rows of S under the pointer, pins in the
page, shows two models side by side and says what it shows, in both languages; the command refuses what it
cannot show with one line.

The reference is the library's own view of a pixel (attnviz.analysis.views.position_view: the record's row or
column in float32). The page computes in float64 from the float32 factors: they agree to about 1e-6 relative
(attnviz.analysis.hover), the test asks 1e-5."""

import json
from pathlib import Path

import pytest

from attnviz.analysis.forward import analyse
from attnviz.analysis.hover import channel_payload, hover_payload
from attnviz.analysis.views import MAX_PINS, position_view, with_pin
from attnviz.data.samples import load_sample
from attnviz.export_html import main
from attnviz.i18n import section, translate
from attnviz.models import load_checkpoint
from attnviz.viz.standalone import MAX_FILE_BYTES, ChannelPanel, ViewPanel, ViewTooLarge, standalone_html

PHOTO = "Seq05VD_f00540"
MODELS = ("danet-eca", "danet-eca-affinity")
RELATIVE = 1e-5
PIXELS = [(5, 7), (240, 180), (479, 359), (100, 300), (333, 41)]  # corners, centre, elsewhere (x, y)


@pytest.fixture(scope="module")
def analyses():
    image = load_sample(PHOTO).image
    return image, {name: analyse(load_checkpoint(name)[0], image, name) for name in MODELS}


def _panels(analyses, names):
    image, found = analyses
    panels, channels = [], []
    for name in names:
        module, record = next(iter(found[name].spatial_attention.items()))
        panels.append(ViewPanel(name, module, hover_payload(record, image.shape[:2]).data))
        channel_module, channel_record = found[name].channel_map
        channels.append(ChannelPanel(name, channel_module, channel_payload(channel_record)))
    return panels, channels


def _html(analyses, names, language="en", **options):
    panels, channels = _panels(analyses, names)
    return standalone_html(
        panels=panels, photo=analyses[0], photo_name=PHOTO, channels=channels, language=language, **options
    )


def test_the_shipped_danet_eca_photo_makes_a_file_under_2_mb(analyses):
    text = _html(analyses, MODELS[:1])
    assert len(text.encode("utf-8")) <= 2 * 2**20 == MAX_FILE_BYTES


def test_a_file_says_what_it_shows_and_loads_nothing(analyses):
    import attnviz

    text = _html(analyses, MODELS)
    for shown in (*MODELS, PHOTO, "head.pam", "head.cam", f"attnviz {attnviz.__version__}"):
        assert shown in text
    # nothing by address: no http(s) URL, no src= other than the photo's data URL the script sets
    assert "http://" not in text and "https://" not in text and "src=" not in text.replace('src="data:', "")
    assert "default-src 'none'" in text  # the page's own policy forbids any fetch


def test_past_the_cap_the_file_is_refused_with_the_side_that_fits(analyses):
    with pytest.raises(ViewTooLarge) as refused:
        _html(analyses, MODELS, max_bytes=300_000)
    error = refused.value
    assert error.num_bytes > 300_000 and error.max_bytes == 300_000 and "MB" in str(error)
    # payloads and photo grow with the pixels: the side that fits shrinks by sqrt(cap / size), 10% to spare
    assert error.side == int(480 * (300_000 / error.num_bytes) ** 0.5 * 0.9)


def test_a_pin_follows_the_servers_rule():
    pins = [(1, 1), (2, 2), (3, 3), (4, 4)]
    assert with_pin(pins, (2, 2)) == [(1, 1), (3, 3), (4, 4), (2, 2)]  # an equal pin moves to the end
    assert with_pin(pins, (5, 5)) == [(2, 2), (3, 3), (4, 4), (5, 5)]  # the oldest goes past MAX_PINS
    assert len(with_pin(pins, (5, 5))) == MAX_PINS


def _command_status(argv) -> int:
    try:
        return main(argv)
    except SystemExit as exit:
        return exit.code


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "nope", "--photo", PHOTO], "no checkpoint 'nope'"),
        (["--model", "fcn-eca", "--photo", PHOTO], "fcn-eca has no spatial attention"),
        (["--model", "danet-eca", "--photo", "nope.png"], "no sample or image file 'nope.png'"),
        (["--model", "danet-eca", "--photo", PHOTO, "--module", "nope"], "no module 'nope' (its spatial attention: "),
        (["--model", "danet-eca", "--photo", PHOTO, "--language", "fr"], "invalid choice: 'fr'"),
        (["--model", "danet-eca", "--photo", PHOTO, "--max-side", "4"], "must be at least 16 pixels"),
    ],
)
def test_the_command_refuses_what_it_cannot_show(tmp_path, capsys, args, message):
    out = tmp_path / "view.html"
    assert _command_status([*args, "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_the_command_refuses_a_broken_image_file(tmp_path, capsys):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    assert _command_status(["--model", "danet-eca", "--photo", str(broken), "--out", str(tmp_path / "v.html")]) == 2
    assert "broken.png: " in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ in Chromium


def _open_offline(page, path: Path) -> list[str]:
    """Open the file with every request but the file's own refused; returns the list of requests that tried
    to leave the page (data: URLs stay in it)."""
    url = path.resolve().as_uri()
    leaving = []
    page.on(
        "request",
        lambda request: (
            None if request.url in (url,) or request.url.startswith("data:") else leaving.append(request.url)
        ),
    )
    page.route("**/*", lambda route: route.continue_() if route.request.url == url else route.abort())
    page.goto(url)
    page.wait_for_selector("#attnviz-position .attnviz-canvas[data-ready='1']")
    page.wait_for_function("() => [...document.querySelectorAll('.photo')].every((img) => img.complete)")
    return leaving


def _point(page, pixel, image_hw, panel=0):
    """The page coordinates of photo pixel (x, y)'s centre on panel `panel`'s photo."""
    box = page.locator(".stack").nth(panel).bounding_box()
    height, width = image_hw
    return box["x"] + (pixel[0] + 0.5) * box["width"] / width, box["y"] + (pixel[1] + 0.5) * box["height"] / height


def _readouts(page) -> list[dict]:
    return [
        json.loads(view)
        for view in page.eval_on_selector_all(
            "#attnviz-position .readout[data-view]", "r => r.map(e => e.dataset.view)"
        )
    ]


def _assert_is_the_librarys(shown: dict, record, pixel, image_hw, mode):
    view = position_view(record, pixel, image_hw, mode)
    assert (shown["x"], shown["y"], shown["mode"]) == (*pixel, mode)
    assert (shown["row"], shown["col"], shown["index"]) == (*view.cell, view.index)
    width = view.values.shape[1]
    assert [(r, c) for r, c, _ in shown["top"]] == [divmod(t, width) for t in view.top]
    for r, c, value in shown["top"]:
        assert value == pytest.approx(float(view.values[r, c]), rel=RELATIVE)


@pytest.mark.browser
def test_the_saved_file_hovers_pins_and_shows_two_models_offline(analyses, tmp_path):
    from attnviz.browser import CHROMIUM, chromium_page

    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    image, found = analyses
    image_hw = image.shape[:2]
    records = [next(iter(found[name].spatial_attention.values())) for name in MODELS]
    path = tmp_path / "view.html"
    path.write_text(_html(analyses, MODELS), encoding="utf-8")
    with chromium_page(60_000, viewport=(1400, 3000)) as page:  # tall: no scroll bar comes with the pins' maps
        leaving = _open_offline(page, path)
        for pixel in PIXELS:
            page.mouse.move(*_point(page, pixel, image_hw))
            shown = _readouts(page)
            assert len(shown) == 2  # both models, on the same pixel
            for view, record in zip(shown, records, strict=True):
                _assert_is_the_librarys(view, record, pixel, image_hw, "row")
        page.check("input[name='mode'][value='column']")
        page.mouse.move(*_point(page, PIXELS[1], image_hw))
        _assert_is_the_librarys(_readouts(page)[0], records[0], PIXELS[1], image_hw, "column")
        page.check("input[name='mode'][value='row']")
        pins = []
        for pixel in PIXELS[:2]:
            point = _point(page, pixel, image_hw)
            page.mouse.move(*point)
            pins.append((_readouts(page)[0]["x"], _readouts(page)[0]["y"]))  # the pixel under the pointer
            assert abs(pins[-1][0] - pixel[0]) <= 1 and abs(pins[-1][1] - pixel[1]) <= 1
            page.mouse.click(*point)
        assert json.loads(page.get_attribute(".attnviz-canvas", "data-pins")) == [list(p) for p in pins]
        # each panel draws a map of each pin, captioned with its pixel (drawn in the task after the click)
        page.wait_for_function("n => document.querySelectorAll('.pin-map figcaption').length >= n", arg=2 * len(pins))
        captions = page.eval_on_selector_all(".pin-map figcaption", "f => f.map(e => e.textContent)")
        assert len(captions) == 2 * len(pins)
        assert all(
            text.startswith(f"{n}. x {x}, y {y}") for text, (n, (x, y)) in zip(captions, [*enumerate(pins, 1)] * 2)
        )
        page.mouse.move(0, 0)  # away from the photo: the newest pin is shown
        assert (_readouts(page)[0]["x"], _readouts(page)[0]["y"]) == pins[-1]
        # X hovered: its readout row is the record's row of X
        matrix = page.locator(".matrix").first.bounding_box()
        channels = found[MODELS[0]].channel_map[1].attention[0].numpy()
        c = 17
        page.mouse.move(matrix["x"] + matrix["width"] / 2, matrix["y"] + (c + 0.5) * matrix["height"] / len(channels))
        row = json.loads(page.get_attribute(".channel-view .readout", "data-view"))
        assert row["channel"] == c
        assert row["row"] == pytest.approx(channels[c].tolist(), rel=RELATIVE, abs=1e-12)
    assert leaving == []


@pytest.mark.browser
def test_the_command_writes_a_file_in_chinese(tmp_path):
    from attnviz.browser import CHROMIUM, chromium_page

    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    path = tmp_path / "view.html"
    assert main(["--model", "danet-eca", "--photo", PHOTO, "--language", "zh", "--out", str(path)]) == 0
    labels = section("canvas", "zh")
    with chromium_page(60_000) as page:
        leaving = _open_offline(page, path)
        assert page.get_attribute("html", "lang") == "zh-Hans"
        assert page.inner_text("h1") == translate("standalone.title", "zh")
        assert translate("standalone.models", "zh") in page.inner_text("header")
        assert page.inner_text("#attnviz-position .readout-top-title") == labels["top_title"]
        assert page.inner_text("legend >> nth=0") == translate("position.mode_label", "zh")
        head = page.inner_text("#attnviz-position .readout-head")
        assert head.startswith(labels["pixel"].split("{")[0])  # the readout's own words, in Chinese
    assert leaving == []
