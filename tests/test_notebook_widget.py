"""The notebook widgets (attnviz.notebook): their module carries the app's own canvas script, the pins and the chosen
row of X come back from the page as traits (a front-end message simulated as the comm delivers it), and `rows()`
gives the library's rows of those pins. The shipped danet-eca on a sample photo, one forward pass for the file."""

import json
import subprocess
import sys

import pytest
import traitlets

from attnviz.analysis.views import MAX_PINS, position_view
from attnviz.i18n import section
from attnviz.notebook import AttentionView, ChannelView, show, show_channels
from attnviz.viz.canvas import SCRIPT_DIR, page_script

MODEL, PHOTO = "danet-eca", "0001TP_008550"


@pytest.fixture(scope="module")
def views():
    return show(MODEL, PHOTO, device="cpu"), show_channels(MODEL, PHOTO, device="cpu")


def _from_page(widget, **state) -> None:
    """What the comm hands the widget when the page calls model.set(...) and save_changes()."""
    widget._handle_msg({"content": {"data": {"method": "update", "state": state, "buffer_paths": []}}, "buffers": []})


def _inlined_script(esm: str) -> str:
    line = next(line for line in esm.splitlines() if line.startswith("const CANVAS = "))
    return json.loads(line.removeprefix("const CANVAS = ").removesuffix(";"))


def test_the_widget_modules_carry_the_apps_canvas_scripts_unchanged():
    assert _inlined_script(AttentionView._esm) == page_script(SCRIPT_DIR / "attention_canvas.js")
    assert _inlined_script(ChannelView._esm) == page_script(SCRIPT_DIR / "channel_canvas.js")
    assert 'const KIND = "position";' in AttentionView._esm and 'const KIND = "channel";' in ChannelView._esm
    assert "export default" in AttentionView._esm.split("const CANVAS = ")[1].split("\n", 1)[1]  # the adapter's own


def test_the_notebook_layer_imports_without_streamlit():
    code = "import sys, attnviz.notebook; print('streamlit' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_a_pin_from_the_page_is_a_trait_and_its_rows_are_the_librarys(views):
    view, _ = views
    assert view.data["local_pins"] is True and view.data["max_pins"] == MAX_PINS
    _from_page(view, pins=[[100, 200], [479, 0]])
    assert view.pins == [(100, 200), (479, 0)]
    panel = view.panels[0]
    for pin, row in zip(view.pins, view.rows()):
        expected = position_view(panel.record, pin, (360, 480), "row", panel.photo.label)
        assert row.pixel == pin and row.index == expected.index
        assert (row.values == expected.values).all()
        assert row.total == pytest.approx(1.0, abs=1e-5)  # a softmax row in float32, 2700 terms
    view.mode = "column"
    assert (view.rows()[0].values == panel.record.column(view.rows()[0].index).numpy()).all()
    view.mode = "row"


def test_pins_outside_the_photo_or_too_many_are_refused(views):
    view, _ = views
    view.pins = [(10.7, 20.2)]
    assert view.pins == [(10, 20)]  # a fractional value names the pixel that holds it
    for bad in ([(480, 0)], [(0, -1)], [(1, 2, 3)], [(i, i) for i in range(MAX_PINS + 1)]):
        with pytest.raises(traitlets.TraitError):
            view.pins = bad
    assert view.pins == [(10, 20)]


def test_the_language_changes_the_readout_texts_and_rebuilds_the_panels(views):
    view, channels = views
    before = view.data["version"]
    view.language = "zh"
    assert view.data["labels"] == section("canvas", "zh") and view.data["version"] != before
    view.language = "en"
    assert view.data["labels"] == section("canvas", "en") and view.data["version"] == before
    channels.language = "zh"
    assert channels.data["labels"] == section("channel_canvas", "zh")
    channels.language = "en"


def test_a_row_of_x_chosen_in_the_page_is_the_librarys_row(views):
    _, channels = views
    x = channels.record.attention[0].numpy()
    assert channels.channel == int(x.max(1).argmax())  # where the Channel page starts
    _from_page(channels, channel=7)
    assert channels.channel == 7 and (channels.row() == x[7]).all()
    with pytest.raises(traitlets.TraitError, match="channel must be in"):
        channels.channel = x.shape[0]


def test_two_models_side_by_side_share_the_photo_and_each_gives_its_own_rows():
    view = show(MODEL, PHOTO, beside="danet-eca-affinity", device="cpu")
    assert [p["title"] for p in view.data["panels"]] == [MODEL, "danet-eca-affinity"]
    assert all("photo" not in p for p in view.data["panels"])  # one photo, sent once
    view.pins = [(240, 180)]
    left, right = view.rows(0)[0], view.rows(1)[0]
    assert left.index == right.index and not (left.values == right.values).all()


def test_the_view_saves_as_one_offline_html_file(views, tmp_path):
    view, _ = views
    path = view.save_html(tmp_path / "view.html")
    html = path.read_text(encoding="utf-8")
    assert MODEL in html and PHOTO in html and path.stat().st_size <= 2 * 2**20
    assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html
