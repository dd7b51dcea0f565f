"""AppTest: every page renders with a shipped model and a sample, and shows what matters."""

import re
from pathlib import Path

import numpy as np
import pytest
from streamlit.runtime.pages_manager import PagesManager
from streamlit.testing.v1 import AppTest

from attnviz.analysis.forward import analyse, feature_index
from attnviz.app.sidebar import UPLOAD_CHOICE
from attnviz.data.samples import list_samples, load_sample
from attnviz.models import list_checkpoints, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]  # the project: app.py, pages/, checkpoints/

pytestmark = pytest.mark.skipif(not list_checkpoints(), reason="no checkpoints")


@pytest.fixture(autouse=True)
def every_run_enters_through_app_py(monkeypatch):
    """As in the served app once any session has called st.navigation: every run executes app.py.

    AppTest builds a fresh PagesManager for each run, which sees pages/ and starts the run in Streamlit's
    older mode (the page file alone). attnviz.app.pagesmode turns such a run into a rerun of app.py, as on a
    fresh server (tests/test_browser.py checks that); here every run enters through app.py directly, so
    that one-shot widgets (buttons) keep their click.
    """
    original = PagesManager.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init)


def _app(model: str | None = None, page: str = "pages/overview.py") -> AppTest:
    """The app, on `page`, with `model` picked in the sidebar (every run goes through app.py)."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    at.switch_page(page).run()
    if model is not None:
        at.selectbox(key="model").set_value(model).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _text(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown) + "\n".join(c.value for c in at.caption)


def test_overview_shows_prediction_and_scores():
    at = _app()
    text = _text(at)
    assert "pixel accuracy" in text and "mean IoU" in text
    assert at.selectbox(key="model").value in list_checkpoints()
    assert at.selectbox(key="sample").value == list_samples()[0]


@pytest.mark.parametrize(
    "page,model,expect",
    [
        ("pages/eca.py", "fcn-eca", "most weighted channel"),
        ("pages/eca.py", "danet-eca", "most weighted channel"),
        ("pages/eca_kernel.py", "fcn-eca", "ECA layers of fcn-eca"),
        ("pages/flexible.py", "fcn-flexible", "max-pool branch has the larger magnitude"),
        ("pages/flexible.py", "fcn-cbam", "spatial gate"),
        ("pages/channel_map.py", "danet-eca", "sums to 1.000000"),
        ("pages/compare.py", "fcn-none", ""),
    ],
)
def test_every_page_renders(page, model, expect):
    if model not in list_checkpoints():
        pytest.skip(f"{model} not shipped")
    at = _app(model, page)
    assert expect in _text(at)


def test_page_explains_when_model_lacks_the_module():
    at = _app("fcn-none", "pages/position.py")
    assert any("has no position attention module" in i.value for i in at.info)
    names = [b.label for b in at.button]
    assert "danet-eca" in names
    at.button(key="switch-danet-eca").click().run()
    assert at.selectbox(key="model").value == "danet-eca"
    assert "Row i sums to" in _text(at)


@pytest.mark.parametrize(("page", "shown"), [("pages/flexible.py", "fcn-flexible"), ("pages/coord.py", "fcn-ca")])
def test_a_page_the_default_model_lacks_shows_a_model_that_has_it_and_says_so(page, shown):
    if shown not in list_checkpoints():
        pytest.skip(f"needs the {shown} checkpoint")
    at = _app("danet-eca", page)
    assert any(f"so this page shows **{shown}** on the same photo" in i.value for i in at.info)
    assert at.selectbox(key="model").value == "danet-eca"  # the sidebar is left as it was
    assert len(at.get("plotly_chart")) > 0  # the page is drawn, not only the buttons
    assert any(b.key == f"switch-{shown}" for b in at.button)


def test_position_pins_are_kept_per_photo_and_a_new_photo_starts_at_its_centre():
    at = _app("danet-eca", "pages/position.py")
    for point in [(10, 20), (200, 100), (300, 250)]:
        at.session_state["chosen_pixel"] = point  # what a pin on the live photo sets (a browser test clicks)
        at.run()
    assert not at.exception
    assert at.session_state["pam_pins"] == [(10, 20), (200, 100), (300, 250)]
    assert "Pinned points** (3 of 4" in _text(at)
    for point in [(1, 2), (3, 4)]:  # a fifth pin drops the oldest
        at.session_state["chosen_pixel"] = point
        at.run()
    assert at.session_state["pam_pins"] == [(200, 100), (300, 250), (1, 2), (3, 4)]
    at.selectbox(key="sample").set_value(list_samples()[1]).run()
    assert not at.exception
    assert at.session_state["pam_pins"] == [] and "the centre until you click" in _text(at)


def test_position_click_shows_that_pixels_attention_and_it_sums_to_one():
    at = _app("danet-eca", "pages/position.py")
    at.session_state["pam_click"] = {"x": 50, "y": 30, "width": 240, "height": 180}  # displayed at half size
    at.run()
    assert not at.exception
    text = _text(at)
    assert "x = 100, y = 60 in the photo" in text
    sample = load_sample(list_samples()[0])
    model, _ = load_checkpoint("danet-eca")
    analysis = analyse(model, sample.image)
    _, record = analysis.position
    index = feature_index(100, 60, sample.image.shape[:2], (record.height, record.width))
    assert f"index i = {index} of N = {record.num_pixels}" in text
    assert "Row i sums to **1.000000**" in text
    top = record.row(index).numpy().ravel()
    best = int(np.argmax(top))
    assert f"1. row {best // record.width}, col {best % record.width}: {top[best]:.4f}" in text
    formula = next(x.value.strip("$\n") for x in at.latex if f"S_{{{index},{best}}}" in x.value)
    assert formula.endswith(f"= {top[best]:.4f}")
    # the column view of the same pixel
    at.radio(key="pam_mode").set_value("column").run()
    column_sum = float(record.column(index).sum())
    assert f"Column i sums to **{column_sum:.3f}**" in _text(at)


def test_channel_map_chosen_row_shows_its_numbers():
    at = _app("danet-eca", "pages/channel_map.py")
    at.session_state["cam_channel"] = 5  # what a click on row 5 of X in the page sets (a browser test clicks)
    at.run()
    assert not at.exception
    assert at.number_input(key="cam_channel_box_5").value == 5
    text = _text(at)
    assert "**Row c = 5** sums to 1.000000" in text
    # the formula with this photo's numbers reproduces the recorded X
    model, _ = load_checkpoint("danet-eca")
    _, record = analyse(model, load_sample(list_samples()[0]).image).channel_map
    row = record.attention[0, 5].numpy()
    top = int(np.argmax(row))
    formula = next(x.value.strip("$\n") for x in at.latex if f"X_{{5,{top}}}" in x.value)
    assert formula.endswith(f"= {row[top]:.4f}")


def test_compare_page_table_matches_results():
    at = _app(None, "pages/compare.py")
    assert len(at.multiselect(key="compare_models").value) >= 2
    frames = at.dataframe
    assert frames, "no results table"
    table = frames[-1].value
    assert set(table["model"]) == set(list_checkpoints())
    assert table["test mIoU (%)"].astype(float).gt(0).all()
    assert not table.isna().any().any() and not table.isin(["None", "nan"]).any().any()
    assert (table.loc[table["model"] == "fcn-none", "vs fcn-none (points)"] == "–").all()


def _jpeg(width=200, height=100) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (40, 120, 200)).save(buffer, "JPEG")
    return buffer.getvalue()


def test_upload_a_photo_and_a_broken_file():
    at = _app("danet-eca", "pages/position.py")
    at.selectbox(key="sample").set_value(UPLOAD_CHOICE).run()
    assert any("No usable upload yet" in i.value for i in at.info)
    at.file_uploader(key="upload").set_value(("street.jpg", _jpeg(), "image/jpeg")).run()
    assert not at.exception and not at.error
    text = _text(at)
    assert "x = 100, y = 50 in the photo" in text  # the centre of the 200x100 upload
    assert "Row i sums to **1.000000**" in text
    at.file_uploader(key="upload").set_value(("notes.png", b"this is not a png", "image/png")).run()
    assert not at.exception
    assert any(r"notes\.png" in e.value and "could not be read" in e.value for e in at.error)
    # and the page itself says so at its top, not only the sidebar
    assert any(r"notes\.png" in w.value and "was refused" in w.value for w in at.main.warning)
    # a file name is user text: shown literally, never as Markdown, LaTeX or coloured text
    at.file_uploader(key="upload").set_value(("$\\huge x$ :red[boo] [a](http://x).png", b"nope", "image/png")).run()
    shown = next(e.value for e in at.error if "could not be read" in e.value)
    # the word joiner (invisible) after :// keeps remark-gfm from turning the URL into a link
    assert shown.startswith(r"\$\\huge x\$ \:red\[boo\] \[a\]\(http\:\/\/" "\u2060" r"x\)\.png:"), shown
    assert "Row i sums to **1.000000**" in _text(at)  # falls back to a sample and keeps working


def _linked(params: dict, page: str) -> AppTest:
    """The app opened by a link to `page` holding `params` (the first run already on that page)."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.query_params.update(params)
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_a_link_restores_model_photo_pixel_and_mode():
    photo = list_samples()[1]
    at = _linked({"model": "danet-none", "photo": photo, "x": "100", "y": "200", "mode": "column"}, "pages/position.py")
    assert at.selectbox(key="model").value == "danet-none" and at.selectbox(key="sample").value == photo
    mode = at.radio(key="pam_mode")  # the option's key, its text from the catalog
    assert mode.value == "column" and mode.options[1] == "who attends to it (column i)"
    assert "x = 100, y = 200 in the photo" in _text(at)
    assert not at.toast
    # the address bar follows the view
    assert at.query_params["model"] == ["danet-none"] or at.query_params["model"] == "danet-none"
    assert str(at.query_params["x"]).strip("[]'") == "100"


def test_a_link_that_does_not_fit_is_ignored_with_a_note():
    at = _linked(
        {"model": "no-such-model", "photo": "nope", "x": "9999", "y": "5", "mode": "sideways"}, "pages/position.py"
    )
    notes = " ".join(t.value for t in at.toast)
    for part in ("model=no\\-such\\-model ignored", "photo=nope ignored", "x=9999", "mode=sideways ignored"):
        assert part in notes, notes
    assert at.selectbox(key="model").value in list_checkpoints()
    assert "(the centre until you click)" in _text(at)
    at = _linked({"model": "danet-eca", "channel": "100000"}, "pages/channel_map.py")
    assert "channel=100000 ignored" in " ".join(t.value for t in at.toast)
    at = _linked({"model": "danet-eca", "channel": "3"}, "pages/channel_map.py")
    assert at.number_input(key="cam_channel_box_3").value == 3


def test_bad_checkpoints_are_listed_with_a_reason_and_every_page_still_works(tmp_path, monkeypatch):
    import json
    import shutil

    from attnviz.models.checkpoint import DEFAULT_CHECKPOINT_DIR

    for suffix in (".json", ".safetensors"):
        shutil.copy(DEFAULT_CHECKPOINT_DIR / f"danet-eca{suffix}", tmp_path / f"my danet{suffix}")
    card = json.loads((tmp_path / "my danet.json").read_text())
    # a loadable model whose card was edited by hand: odd types below the top level must not break a page
    odd = {**card, "evaluation": {"miou": "high"}, "training": {"settings": [], "history": "lost", "epochs": None}}
    (tmp_path / "my danet.json").write_text(json.dumps(odd))
    bad_cards = {
        "null-card": None,
        "list-card": [1, 2],
        "wide": {**card, "config": {**card["config"], "width": "wide"}},
        "escape": {**card, "weights": "../danet-eca.safetensors"},
    }
    for name, bad in bad_cards.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(bad))
        shutil.copy(tmp_path / "my danet.safetensors", tmp_path / f"{name}.safetensors")
    monkeypatch.setenv("ATTNVIZ_CHECKPOINTS", str(tmp_path))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="model").options == ["my danet"], [e.value for e in at.sidebar.error] + [
        m.value for m in at.markdown
    ][:3]
    listed = "\n".join(t.value for t in at.sidebar.text)
    assert "4 checkpoint(s) cannot be loaded" in at.sidebar.expander[0].label
    for name, reason in (
        ("null-card", "not a JSON object"),
        ("list-card", "not a JSON object"),
        ("wide", "width must be a number"),
        ("escape", "must be a file name"),
    ):
        assert f"{name}: " in listed and reason in listed, listed
    for page in ("pages/overview.py", "pages/position.py", "pages/compare.py", "pages/eca_kernel.py"):
        at.switch_page(page).run()
        assert not at.exception, (page, [e.value for e in at.exception])


def test_the_checkpoint_folder_comes_from_the_command_line_then_the_environment(monkeypatch, tmp_path):
    from attnviz.app.settings import settings
    from attnviz.models.checkpoint import DEFAULT_CHECKPOINT_DIR

    monkeypatch.setenv("ATTNVIZ_CHECKPOINTS", str(tmp_path / "env"))
    monkeypatch.setattr("sys.argv", ["app.py"])
    assert settings().checkpoint_dir == tmp_path / "env"
    monkeypatch.setattr("sys.argv", ["app.py", "--checkpoints", str(tmp_path / "cli")])
    assert settings().checkpoint_dir == tmp_path / "cli"
    monkeypatch.delenv("ATTNVIZ_CHECKPOINTS")
    monkeypatch.setattr("sys.argv", ["app.py"])
    assert settings().checkpoint_dir == DEFAULT_CHECKPOINT_DIR


@pytest.mark.slow
def test_attribution_page_for_a_click_and_on_request():
    at = _app("danet-eca", "pages/attribution.py")
    text = _text(at)
    assert "(the centre until you click)" in text and "rank correlation" in text
    at.session_state["attr_click"] = {"x": 60, "y": 120, "width": 240, "height": 180}
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    text = _text(at)
    assert "x = 120, y = 240" in text and "Integrated Gradients" not in " ".join(
        m.value for m in at.markdown if "rank correlation" in m.value
    )
    at.select_slider(key="ig_steps").set_value(8).run()
    at.button(key="ig_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    agreement = [m.value for m in at.markdown if "rank correlation" in m.value]
    assert len(agreement) == 2 and "Integrated Gradients" in agreement[1]
    # FCN: attributions, and a plain note instead of the attention row
    at = _app("fcn-eca", "pages/attribution.py")
    assert any("no position attention" in i.value for i in at.info)


def test_an_imagenet_classifier_from_timm_on_the_overview_eca_and_se_pages(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no network here: random weights, and the app must say so
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.query_params.update({"source": "timm", "model": "ecaresnet26t"})
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.radio(key="source").value == "timm" and at.selectbox(key="timm_model").value == "ecaresnet26t"
    assert any("random weights" in w.value for w in at.sidebar.warning)
    table = at.dataframe[0].value
    assert len(table) == 5 and table["probability"].is_monotonic_decreasing
    at.switch_page("pages/eca.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="eca_layer").value == "layer4.1.se"  # timm names its ECA module 'se'
    at.switch_page("pages/eca_kernel.py").run()
    assert any("Red crosses: the ECA layers of ecaresnet26t" in c.value for c in at.caption)
    at.switch_page("pages/position.py").run()
    assert any("has no position attention module" in i.value for i in at.info)
    at.selectbox(key="timm_model").set_value("efficientnet_b0").run()
    at.switch_page("pages/flexible.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert "is an SE layer" in _text(at)
    at.switch_page("pages/attribution.py").run()
    assert any("no per-pixel output and spatial attention module to attribute at" in i.value for i in at.info)
    assert "source=timm" in str(at.query_params) or at.query_params.get("source") in ("timm", ["timm"])


def test_plain_danet_offers_the_affinity_model_and_keeps_the_pixel():
    at = _app("danet-eca", "pages/position.py")
    at.session_state["pam_click"] = {"x": 300, "y": 250, "width": 480, "height": 360}
    at.run()
    at.button(key="switch-danet-eca-affinity-training").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="model").value == "danet-eca-affinity"
    text = _text(at)
    assert "x = 300, y = 250 in the photo" in text and "PAM supervised with class affinity" in " ".join(
        i.value for i in at.info
    )
    import json

    from attnviz.models.checkpoint import DEFAULT_CHECKPOINT_DIR

    ratio = json.loads((DEFAULT_CHECKPOINT_DIR / "results.json").read_text())["models"]["danet-eca-affinity"]
    assert f"{ratio['pam_own_class_ratio']['mean']:.2f}x chance on average" in text  # the model's own figure


def _notice(language: str, fits: str) -> str:
    """The Position page's "what to notice" text with its note on classes `fits`, in `language`."""
    from attnviz.i18n import translate

    return translate("position.notice", language, model=translate(f"position.notice_{fits}", language))


def test_position_notes_fit_the_model_shown_in_the_pages_language():
    if "danet-eca-affinity" not in list_checkpoints():
        pytest.skip("danet-eca-affinity is not shipped")
    at = _app("danet-eca-affinity", "pages/position.py")
    assert _notice("en", "affinity") in [m.value for m in at.markdown]
    at.session_state["language"] = "zh"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    shown = [m.value for m in at.markdown]
    assert _notice("zh", "affinity") in shown and "观察要点" in _notice("zh", "affinity")
    at.selectbox(key="model").set_value("danet-eca").run()  # a plain DANet: no claim of the affinity's grouping
    assert not at.exception, [e.value for e in at.exception]
    shown = "\n".join(m.value for m in at.markdown)
    assert _notice("zh", "plain") in shown and _notice("zh", "affinity") not in shown


# ----------------------------------------------------------------------------- your model
def _user_app(monkeypatch, *args: str, page: str = "pages/overview.py") -> AppTest:
    monkeypatch.setattr("sys.argv", ["app.py", *args])
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_your_model_from_a_hubconf_lists_what_was_found_and_verified(monkeypatch, user_model_repo):
    repo, weights = user_model_repo
    at = _user_app(monkeypatch, "--model", f"{repo}:streetnet", "--weights", str(weights))
    assert at.radio(key="source").value == "user"
    table = at.dataframe[0].value
    found = dict(zip(table["module"], table["family"]))
    assert set(found) == {"pam", "se"}, found
    assert table["drawn"].tolist() == ["yes", "yes"] and table["check"].str.startswith("verified").all()


def test_your_model_on_the_position_page_shows_the_clicked_row(monkeypatch, user_model_repo):
    repo, weights = user_model_repo
    at = _user_app(monkeypatch, "--model", f"{repo}:streetnet", "--weights", str(weights), page="pages/position.py")
    at.session_state["pam_click"] = {"x": 100, "y": 60, "width": 480, "height": 360}
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    text = _text(at)
    assert "x = 100, y = 60 in the photo → feature pixel row 7, column 12" in text, text
    assert "Row i sums to **1.000000**" in text
    assert any("verified" in c.value for c in at.caption)
    assert _notice("en", "user") in text and _notice("en", "affinity") not in text  # nothing known of its training
    at.session_state["language"] = "zh"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert _notice("zh", "user") in [m.value for m in at.markdown]
    at.session_state["language"] = "en"
    at.switch_page("pages/flexible.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="flex_layer").value == "se"
    at.switch_page("pages/channel_map.py").run()
    assert any("has no channel attention module that attnviz recognised" in i.value for i in at.info)


def test_a_spec_that_does_not_resolve_is_one_message_and_the_rest_works(monkeypatch):
    at = _user_app(monkeypatch, "--model", "no_such_package.models:build")
    errors = [e.value.replace("\\", "") for e in at.sidebar.error]  # as shown: Markdown escapes resolved
    assert len(errors) == 1 and "no module 'no_such_package'" in errors[0], errors
    at.radio(key="source").set_value("camvid").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="model").value in list_checkpoints()


def test_your_model_on_the_attribution_page_attributes_at_the_input_of_its_attention(monkeypatch, user_model_repo):
    repo, weights = user_model_repo
    at = _user_app(monkeypatch, "--model", f"{repo}:streetnet", "--weights", str(weights), page="pages/attribution.py")
    at.session_state["attr_click"] = {"x": 200, "y": 100, "width": 480, "height": 360}
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    text = _text(at)
    assert "x = 200, y = 100; predicted" in text and "class " in text, text
    assert "**Grad-CAM** (input of pam)" in text
    assert "rank correlation (Spearman)" in text, text


def test_your_model_from_a_module_callable_in_the_working_folder(monkeypatch, user_model_repo):
    repo, weights = user_model_repo
    monkeypatch.chdir(repo)
    at = _user_app(monkeypatch, "--model", "streetnet:StreetNet", "--weights", weights.name)
    assert at.selectbox(key="user_model").value == "StreetNet"
    assert set(at.dataframe[0].value["module"]) == {"pam", "se"}
    assert any("weights streetnet.safetensors" in c.value.replace("\\", "") for c in at.sidebar.caption)


def test_your_model_with_every_family_on_the_overview(monkeypatch, tmp_path):
    """A user's net holding every copied family (the fixtures of test_families, behind a stride-8 stem): the
    Overview lists each as verified, draws the spatial gate and the coordinate attention, names the look-alike."""
    (tmp_path / "zoo_of_copies.py").write_text(
        "import torch.nn.functional as F\nfrom torch import nn\n"
        "from fixtures_attention import UserNet, randomise\n\n\n"
        "class Strided(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.down = nn.Conv2d(3, 3, 8, stride=8)\n"
        "        self.net = randomise(UserNet(16))\n\n"
        "    def forward(self, x):\n"
        "        return F.interpolate(self.net(self.down(x)), size=x.shape[-2:], mode='bilinear')\n\n\n"
        "def build():\n"
        "    return Strided()\n"
    )
    monkeypatch.chdir(tmp_path)
    at = _user_app(monkeypatch, "--model", "zoo_of_copies:build")
    table = at.dataframe[0].value
    families = " ".join(table["family"])
    for family in ("se", "eca", "cbam", "ca", "gcnet", "non-local", "pam", "cam", "criss-cross"):
        assert family in families, (family, families)
    structure = table[table["reader"] != "what it computes"]
    assert (structure["drawn"] == "yes").all(), table[["module", "check"]].to_string()
    assert "**Spatial gates**" in _text(at)
    charts = [chart.key for chart in at.get("plotly_chart")]
    # the coordinate attention; the look-alike of no family, read by what it computes (a gate on every element)
    assert charts == ["user_net.coord", "user_net.odd"], charts
    odd = table[table["module"].str.endswith("odd")]
    assert len(odd) == 1, table[["module", "reader", "check"]].to_string()
    assert list(odd["reader"]) == ["what it computes"] and "per element" in odd["check"].iloc[0]
    assert list(odd["drawn"]) == ["yes"] and odd["map"].iloc[0].startswith("C 16 x H"), odd.to_string()
    assert "Found by what they compute" in [
        h.value for h in at.subheader
    ] and "**Gates on elements or planes**" in _text(at)
    assert not any("odd" in w.value for w in at.warning)
    at.switch_page("pages/position.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.selectbox(key="pam_module_group").options) >= 5  # pam, nl, cc, cc#1, sagan, context


def test_your_model_with_long_tail_modules_draws_every_kind_found_by_what_it_computes(monkeypatch, tmp_path):
    """Modules of no known family, as people copy them (External-Attention-pytorch's SKAttention,
    TripletAttention and 4-head token attention, timm's GatherExcite) beside timm's EcaModule (read by the
    library reader, and listed as such): each is found by what it computes and
    drawn: channel gates, branch weights and gate planes on the Overview, each head on the Position page,
    where a row of the chosen head sums to 1 on its own."""
    (tmp_path / "long_tail.py").write_text(
        "import torch.nn.functional as F\nfrom torch import nn\nfrom timm.layers import EcaModule\n"
        "from timm.layers.gather_excite import GatherExcite\n"
        "from fixtures_attention import randomise\n"
        "from fixtures_dataflow import ScaledDotProductAttention, SKAttention, TripletAttention\n\n\n"
        "class Tokens(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.pa = ScaledDotProductAttention(32, h=4)\n\n"
        "    def forward(self, x):\n"
        "        b, c, h, w = x.shape\n"
        "        y = x.flatten(2).transpose(1, 2)\n"
        "        return x + self.pa(y, y, y).transpose(1, 2).reshape(b, c, h, w)\n\n\n"
        "class LongTail(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.down = nn.Conv2d(3, 32, 16, stride=16)\n"
        "        self.sk = SKAttention(32)\n"
        "        self.eca = EcaModule(32)\n"
        "        self.excite = GatherExcite(32, use_mlp=False)\n"
        "        self.triplet = TripletAttention()\n"
        "        self.attn = Tokens()\n"
        "        self.head = nn.Conv2d(32, 11, 1)\n\n"
        "    def forward(self, x):\n"
        "        y = self.attn(self.triplet(self.excite(self.eca(self.sk(self.down(x))))))\n"
        "        return F.interpolate(self.head(y), size=x.shape[-2:], mode='bilinear')\n\n\n"
        "def long_tail():\n"
        "    return randomise(LongTail())\n"
    )
    monkeypatch.chdir(tmp_path)
    at = _user_app(monkeypatch, "--model", "long_tail:long_tail")  # a name of its own: models are cached by name
    table = at.dataframe[0].value
    readers = dict(zip(table["module"], table["reader"]))
    assert readers.pop("eca") == "library (timm / torchvision)" and set(readers.values()) == {"what it computes"}
    assert (table["drawn"] == "yes").all(), table.to_string()
    kinds = dict(zip(table["module"], table["family"]))
    assert kinds["sk"] == "branch weights" and kinds["excite"] == "channel weights", kinds  # the records' types
    assert {f"attn.pa:head{h}" for h in range(4)} <= set(kinds) and kinds["attn.pa:head0"] == "position attention"
    planes = [name for name, family in kinds.items() if family == "gate"]
    assert len(planes) == 2 and all(name.startswith("triplet.") for name in planes), kinds  # C x W, H x C
    charts = [chart.key for chart in at.get("plotly_chart")]
    assert {"overview_channel_gates", "user_sk", f"user_{planes[0]}"} <= set(charts), charts
    assert [o.split()[0] for o in at.selectbox(key="overview_gate_layer").options] == planes
    text = _text(at)
    assert "Found by what they compute" in [h.value for h in at.subheader] and "**Branch weights**" in text

    at.switch_page("pages/position.py").run()
    assert not at.exception, [e.value for e in at.exception]
    heads = at.selectbox(key="pam_head")
    assert heads.options == [f"head {h}" for h in range(4)] and heads.value == "attn.pa:head0"  # shown as labels
    heads.set_value("attn.pa:head2").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["pam_module"] == "attn.pa:head2"
    at.session_state["pam_click"] = {"x": 100, "y": 60, "width": 480, "height": 360}
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="pam_head").value == "attn.pa:head2"
    total = re.search(r"Row i sums to \*\*([0-9.]+)\*\*", _text(at))  # the head's own softmax (float32)
    assert total and abs(float(total.group(1)) - 1) <= 2e-6, _text(at)


def test_coordinate_attention_page_reads_the_factor_of_the_clicked_cell():
    from attnviz.capture.records import CoordinateAttentionRecord

    at = _app("fcn-ca", "pages/coord.py")
    assert not at.exception, [e.value for e in at.exception]
    at.session_state["ca_click"] = {"x": 120, "y": 45, "width": 240, "height": 180}  # shown at half size
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    model, _ = load_checkpoint("fcn-ca")
    analysis = analyse(model, load_sample(list_samples()[0]).image)
    layer, record = list(analysis.of_type(CoordinateAttentionRecord).items())[-1]
    channel = at.number_input(key="ca_channel").value
    h, w = record.height_weights.shape[-1], record.width_weights.shape[-1]
    row, col = 90 * h // 360, 240 * w // 480  # photo pixel (240, 90)
    a_h, a_w = float(record.height_weights[0, channel, row]), float(record.width_weights[0, channel, col])
    formula = next(x.value for x in at.latex if f"y_{{{channel}}}({row}, {col})" in x.value)
    assert f"{a_h:.4f}" in formula and f"{a_w:.4f}" in formula and f"= {a_h * a_w:.4f}" in formula
    assert "x = 240, y = 90" in _text(at)
    assert at.query_params["channel"] in (str(channel), [str(channel)]) and at.query_params["layer"] in (layer, [layer])


def test_eca_page_shows_a_channel_before_and_after_and_its_weight_on_several_photos():
    import json

    at = _app("fcn-eca", "pages/eca.py")
    at.session_state["eca_focus_channel"] = 5
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    charts = {c.proto.id: json.loads(c.proto.spec) for c in at.get("plotly_chart")}
    across = next(
        spec for spec in charts.values() if spec["layout"].get("title", {}).get("text", "").startswith("ω_5 of")
    )
    photos, shown = across["data"][0]["x"], across["data"][0]["y"]
    model, _ = load_checkpoint("fcn-eca")
    layer = across["layout"]["title"]["text"].split(" of ")[1].split(" on ")[0]
    for photo, weight in zip(photos, shown):
        record = analyse(model, load_sample(photo).image).records[layer]
        assert weight == pytest.approx(float(record.weights[0, 5]), abs=1e-6)
    assert len(set(np.round(shown, 4))) > 1  # the weight moves from photo to photo


def test_se_layers_show_their_squeeze_and_excitation_with_this_photos_numbers():
    from attnviz.modules.se import pre_sigmoid

    at = _app("fcn-se", "pages/flexible.py")
    assert not at.exception, [e.value for e in at.exception]
    model, _ = load_checkpoint("fcn-se")
    analysis = analyse(model, load_sample(list_samples()[0]).image)
    layer, record = list(analysis.channel_layers(("se",)).items())[-1]
    top = int(record.weights[0].argmax())
    formula = next(x.value for x in at.latex if f"z_{{{top}}}" in x.value)
    mean = float(record.features[0, top].mean())  # z_c rebuilt from the layer's input
    assert f"= {mean:.3f}" in formula
    assert f"\\sigma({pre_sigmoid(float(record.weights[0, top])):.3f}) = {float(record.weights[0, top]):.4f}" in formula


def test_cbams_spatial_gate_has_a_colour_bar_that_shows_its_range():
    import json

    at = _app("fcn-cbam", "pages/flexible.py")
    assert not at.exception, [e.value for e in at.exception]
    gate = next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if "M_s from" in c.proto.spec)
    assert gate["data"][0]["colorbar"]["title"]["text"] == "M_s"
