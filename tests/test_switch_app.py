"""AppTest: "switch it off" (attnviz.app.switch) on every module page, a lecture step, a classifier and a user's
model; what each shows equals the library's switch_effect (attnviz.analysis.switch) for that photo, in English
and in Chinese."""

import base64
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.runtime.pages_manager import PagesManager
from streamlit.testing.v1 import AppTest

from attnviz.analysis.forward import analyse, analyse_classifier, analyse_user_model
from attnviz.analysis.switch import cbam_parents, changed_grid, effect_words, switch_effect, switch_groups
from attnviz.capture.interventions import FLAT, OFF, Intervention
from attnviz.data.samples import list_samples, load_sample
from attnviz.i18n import LANGUAGES, translate
from attnviz.models import list_checkpoints, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not list_checkpoints(), reason="no checkpoints")


@pytest.fixture(autouse=True)
def every_run_enters_through_app_py(monkeypatch):
    """As in tests/test_app.py: every run executes app.py, as in the served app."""
    original = PagesManager.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init)


def _app(page: str, model: str | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.run()
    at.switch_page(page).run()
    if model is not None:
        at.selectbox(key="model").set_value(model).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _switched(at: AppTest, context: str, mode: str) -> None:
    assert any(s.value == translate("switch.title", "en") for s in at.subheader)
    at.radio(key=f"switch_{context}_mode").set_value(mode).run()
    assert not at.exception, [e.value for e in at.exception]


def _effect(analyse_with, kind: str, mode: str, label):
    """(before, after, the library's effect) of switching every module of `kind` `mode`, and how many modules
    that is: `analyse_with(intervention)` analyses."""
    before = analyse_with(None)
    paths = switch_groups(before.records, cbam_parents(before.records))[kind]
    after = analyse_with(Intervention(mode, paths))
    return before, after, switch_effect(before, after, label), len(paths)


def _plotted_changes(at: AppTest) -> int:
    """The changed cells the page's map draws: its heatmap's cells that hold a value (Plotly sends the array as
    base64 of its dtype, or as a list)."""
    charts = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    (heatmap,) = [
        trace for spec in charts for trace in spec["data"] if trace.get("hovertemplate", "").startswith("%{customdata}")
    ]
    z = heatmap["z"]
    if isinstance(z, dict):
        shape = [int(size) for size in str(z["shape"]).split(",")]  # "180, 240"
        z = np.frombuffer(base64.b64decode(z["bdata"]), dtype=z["dtype"]).reshape(shape)
    return int(np.isfinite(np.asarray(z, dtype=float)).sum())


def _assert_segmentation_shown(at: AppTest, effect, before, after, language: str, action: str) -> None:
    metrics = {metric.label: metric for metric in at.metric}
    assert metrics[translate("switch.share", language)].value == f"{effect.changed_share:.2%}"
    miou = metrics[translate("switch.miou", language)]
    assert miou.value == f"{effect.miou_before:.1%} → {effect.miou_after:.1%}"
    assert miou.delta == translate("switch.points", language, change=effect.miou_change * 100)
    table = next(frame.value for frame in at.dataframe if list(frame.value.columns) == ["class", "change"])
    expected = {
        translate(f"classes.{name}", language): round(change * 100, 2)
        for name, change in effect.class_iou_change.items()
    }
    assert dict(zip(table["class"], table["change"])) == pytest.approx(expected, abs=1e-9)
    sentence = translate(f"switch.effect.{effect_words(effect)}", language, action=action, share=effect.changed_share)
    assert sentence in [markdown.value for markdown in at.markdown]
    assert _plotted_changes(at) == int(changed_grid(before.prediction, after.prediction).changed.sum())


CASES = [  # (page, a shipped model with its module, the kind it switches, the mode)
    ("pages/eca.py", "fcn-eca", "eca", OFF),
    ("pages/flexible.py", "fcn-cbam", "cbam", FLAT),
    ("pages/coord.py", "fcn-ca", "ca", OFF),
    ("pages/channel_map.py", "danet-eca", "cam", FLAT),
    ("pages/position.py", "danet-eca-affinity", "pam", OFF),
    ("pages/position.py", "danet-eca-affinity", "pam", FLAT),
]


@pytest.mark.parametrize("page,model,kind,mode", CASES, ids=[f"{p[6:-3]}-{m}-{mode}" for p, m, _, mode in CASES])
def test_each_module_page_switches_its_modules_as_the_library_does(page, model, kind, mode):
    if model not in list_checkpoints():
        pytest.skip(f"{model} is not shipped")
    context = Path(page).stem
    at = _app(page, model)
    _switched(at, context, mode)
    assert at.selectbox(key=f"switch_{context}_modules").value == kind  # every module of the kind by default
    sample = load_sample(list_samples()[0])
    network, _ = load_checkpoint(model)
    before, after, effect, count = _effect(
        lambda switch: analyse(network, sample.image, model, intervention=switch), kind, mode, sample.label
    )
    for language in LANGUAGES:
        at.session_state["language"] = language
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        words = dict(kind=translate(f"switch.kinds.{kind}", language), count=count)
        every = translate("switch.all" if count > 1 else "switch.only", language, **words)
        action = translate(f"switch.action.{mode}", language, module=every)
        _assert_segmentation_shown(at, effect, before, after, language, action)


def test_a_lecture_step_says_what_flattening_its_module_showed():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.run()
    at.switch_page("pages/lecture.py")
    at.session_state["lecture_step"] = "pam"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.radio(key="switch_lecture_pam_mode").value == FLAT  # a lecture step shows the switch at once
    sample = load_sample(list_samples()[0])
    network, _ = load_checkpoint("danet-eca-affinity")
    before, after, effect, count = _effect(
        lambda switch: analyse(network, sample.image, "danet-eca-affinity", intervention=switch),
        "pam",
        FLAT,
        sample.label,
    )
    for language in LANGUAGES:
        at.session_state["language"] = language
        at.run()
        action = translate("switch.action.flat", language, module=translate("switch.only", language, kind="PAM"))
        _assert_segmentation_shown(at, effect, before, after, language, action)


def test_a_classifiers_top_five_with_and_without_its_eca(monkeypatch, tmp_path):
    import timm

    from attnviz.models.imagenet import WEIGHTS_ENV, load_imagenet_model

    torch.manual_seed(0)
    model = timm.create_model("ecaresnet26t", pretrained=False).eval()
    torch.save(model.state_dict(), tmp_path / "ecaresnet26t.pth")
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.query_params.update({"source": "timm", "model": "ecaresnet26t"})
    at.run()
    at.switch_page("pages/eca.py").run()
    assert not at.exception, [e.value for e in at.exception]
    _switched(at, "eca", OFF)
    network, _ = load_imagenet_model("ecaresnet26t", tmp_path)
    image = load_sample(list_samples()[0]).image
    before, after, effect, count = _effect(
        lambda switch: analyse_classifier(network, image, "ecaresnet26t", intervention=switch), "eca", OFF, None
    )
    tables = [frame.value for frame in at.dataframe if list(frame.value.columns) == ["class", "probability"]]
    assert [list(table["class"]) for table in tables[-2:]] == [
        [c for _, c, _ in top] for top in (before.top_classes, after.top_classes)
    ]
    assert np.allclose(tables[-1]["probability"], [p for _, _, p in after.top_classes], atol=1e-6)
    (metric,) = [m for m in at.metric if m.label == translate("switch.top_change", "en")]
    if effect.top_probability_change is None:
        assert metric.value == translate("switch.not_in_top", "en")
    else:
        assert metric.delta == translate("switch.points", "en", change=effect.top_probability_change * 100)


def test_a_users_model_lists_what_can_be_switched_and_switches_its_copied_pam(monkeypatch, user_model_repo):
    from attnviz.models.user import spec_from_command_line

    repo, weights = user_model_repo
    monkeypatch.setattr("sys.argv", ["app.py", "--model", f"{repo}:streetnet", "--weights", str(weights)])
    at = _app("pages/overview.py")
    listed = next(frame.value for frame in at.dataframe if list(frame.value.columns) == ["kind", "count", "modules"])
    assert dict(zip(listed["kind"], listed["modules"])) == {"SE": "se", "PAM": "pam"}
    at.radio(key="switch_overview_mode").set_value(OFF).run()
    at.selectbox(key="switch_overview_modules").set_value("pam").run()
    assert not at.exception, [e.value for e in at.exception]
    user_model = spec_from_command_line(f"{repo}:streetnet", str(weights)).load("cpu")
    image = load_sample(list_samples()[0]).image
    _, _, effect, _ = _effect(
        lambda switch: analyse_user_model(user_model, image, "streetnet", intervention=switch), "pam", OFF, None
    )
    metrics = {metric.label: metric.value for metric in at.metric}
    assert metrics[translate("switch.share", "en")] == f"{effect.changed_share:.2%}"
    captions = [c.value for c in at.caption]
    assert (translate("switch.changed_none", "en") in captions) == (not effect.changed.any())
    assert translate("switch.no_label", "en") in [c.value for c in at.caption]  # its classes are not CamVid's
