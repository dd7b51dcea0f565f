"""Model sources (attnviz.models.sources): each of the three implements the one interface, and a selection of
each kind reaches its analysis through one job of the work pool, loading and analysing once."""

from pathlib import Path

import numpy as np
import pytest

from attnviz.analysis.forward import Analysis, analyse
from attnviz.capture.interventions import FLAT, OFF, Intervention
from attnviz.i18n import LANGUAGES, catalog, translate
from attnviz.models import list_checkpoints, load_checkpoint
from attnviz.models.checkpoint import DEFAULT_CHECKPOINT_DIR
from attnviz.models.sources import SOURCE_KEYS, CamVidSource, LoadedModel, ModelSource, TimmSource, UserSource, Weights
from attnviz.models.user import spec_from_command_line

ROOT = Path(__file__).resolve().parents[1]
SOURCES = (CamVidSource, TimmSource, UserSource)


def _photo(height: int = 64, width: int = 96) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_the_three_sources_have_the_three_keys_and_every_text_in_both_languages():
    assert SOURCE_KEYS == ("camvid", "timm", "user")
    assert tuple(source.key for source in SOURCES) == SOURCE_KEYS
    for source in SOURCES:
        assert issubclass(source, ModelSource) and source.failures
        texts = {f"sources.{source.key}", f"sources.running_{source.key}", f"sources.failed_{source.key}"}
        for language in LANGUAGES:
            assert texts <= set(catalog(language))


def _check_loaded(source: ModelSource, name: str, loaded: LoadedModel, analysis: Analysis) -> None:
    assert isinstance(source, ModelSource)
    for language in LANGUAGES:  # the texts the sidebar and the guard show
        assert translate(source.title_key, language) and translate(source.running_key, language)
        assert translate(source.failed_key, language, model=source.key, error="broken")
    assert source == type(source)(*vars(source).values()) and hash(source)  # equal sources: one cache key
    assert isinstance(loaded, LoadedModel) and isinstance(loaded.weights, Weights)
    for language in LANGUAGES:
        assert loaded.weights.phrase.text(language)
    assert isinstance(analysis, Analysis) and analysis.model_name == name


@pytest.mark.skipif(not list_checkpoints(), reason="no checkpoints")
def test_a_camvid_checkpoint_loads_with_its_file_and_is_analysed_as_analyse_does():
    name = list_checkpoints()[0]
    source = CamVidSource(DEFAULT_CHECKPOINT_DIR)
    loaded = source.load(name, "cpu")
    image = _photo()
    analysis = source.analyse(loaded.model, image, name)
    _check_loaded(source, name, loaded, analysis)
    assert loaded.weights.trained and dict(loaded.weights.phrase.values)["file"] == f"{name}.safetensors"
    reference = analyse(load_checkpoint(name, DEFAULT_CHECKPOINT_DIR)[0], image, name)
    np.testing.assert_array_equal(analysis.prediction, reference.prediction)
    assert analysis.records.keys() == reference.records.keys()


def test_a_timm_classifier_without_file_or_hub_has_random_weights_and_its_top_5(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    source = TimmSource(str(tmp_path))  # an empty weights folder
    loaded = source.load("efficientnet_b0", "cpu")
    analysis = source.analyse(loaded.model, _photo(), "efficientnet_b0")
    _check_loaded(source, "efficientnet_b0", loaded, analysis)
    assert not loaded.weights.trained and loaded.weights.phrase.key == "sources.weights_random"
    assert len(analysis.top_classes) == 5 and analysis.prediction is None


def test_a_users_model_loads_its_weights_file_and_is_analysed_with_its_checks(user_model_repo):
    repo, weights = user_model_repo
    source = UserSource((spec_from_command_line(f"{repo}:streetnet", weights),))
    loaded = source.load("streetnet", "cpu")
    analysis = source.analyse(loaded.model, _photo(), "streetnet")
    _check_loaded(source, "streetnet", loaded, analysis)
    assert dict(loaded.weights.phrase.values)["name"] == weights.name
    assert {"pam", "se"} <= set(analysis.records)  # both verified, as tests/test_app.py finds them
    with pytest.raises(UserSource.failures, match="no model named 'other'"):
        source.load("other", "cpu")


@pytest.mark.parametrize("key", SOURCE_KEYS)
def test_a_selection_of_each_kind_reaches_its_analysis_in_one_pool_job(monkeypatch, key):
    """analysis_for -> one pooled job -> the source's load and analyse, once each; asked again, the caches answer."""
    from attnviz.app import guards, resources
    from attnviz.app.selection import Selection

    jobs, calls = [], []

    def pooled(job_key, work, running, cached=None):
        if not cached:  # what the pool would run (a cached analysis is read in the page)
            jobs.append(job_key)
        return work()

    def load(self, name, device):
        calls.append(("load", self.key, name, device))
        return LoadedModel(f"{self.key} model", Weights(None))

    def analyse_stub(self, model, image, name, intervention=None):
        calls.append(("analyse", self.key, model, name) + ((intervention,) if intervention else ()))
        return f"{name}'s analysis" + (f" {intervention.mode}" if intervention else "")

    monkeypatch.setattr(guards, "pooled", pooled)
    for source in SOURCES:
        monkeypatch.setattr(source, "load", load)
        monkeypatch.setattr(source, "analyse", analyse_stub)
    resources.loaded_model.clear()
    resources.ANALYSES.clear()
    selection = Selection(
        model_name="m",
        device="cpu",
        image=_photo(8, 8),
        image_key="photo",
        image_title="photo",
        label=None,
        card={},
        source=key,
    )
    assert guards.analysis_for(selection) == "m's analysis"
    assert len(jobs) == 1 and jobs[0][0].key == key and jobs[0][1:] == ("m", "cpu", "photo", None)
    assert calls == [("load", key, "m", "cpu"), ("analyse", key, f"{key} model", "m")]
    assert guards.analysis_for(selection) == "m's analysis" and len(calls) == 2  # cached: nothing runs again
    assert len(jobs) == 1  # and no job is queued for it
    # a switch (attnviz.app.switch) is one more pass, keyed by its intervention, run once however often asked
    switch = Intervention(OFF, ("head.pam",))
    for _ in range(2):
        assert guards.analysis_for(selection, intervention=switch) == "m's analysis off"
    assert calls[2:] == [("analyse", key, f"{key} model", "m", switch)] and jobs[-1][1:] == (
        "m",
        "cpu",
        "photo",
        switch,
    )
    assert guards.analysis_for(selection, intervention=Intervention(FLAT, ("head.pam",))) == "m's analysis flat"
    assert len(calls) == 4
    resources.loaded_model.clear()
    resources.ANALYSES.clear()


@pytest.mark.parametrize(
    "key,error", [("camvid", "CheckpointError"), ("timm", "ImageNetWeightsError"), ("user", "RuntimeError")]
)
def test_a_source_that_fails_is_one_message_not_a_crash(monkeypatch, key, error):
    from attnviz.app import guards, resources
    from attnviz.app.selection import Selection
    from attnviz.models.checkpoint import CheckpointError
    from attnviz.models.imagenet import ImageNetWeightsError

    raised = {
        "CheckpointError": CheckpointError,
        "ImageNetWeightsError": ImageNetWeightsError,
        "RuntimeError": RuntimeError,
    }[error]
    shown = []

    def load(self, name, device):
        raise raised("broken")

    monkeypatch.setattr(guards, "pooled", lambda job_key, work, running, cached=None: work())
    monkeypatch.setattr(guards.st, "error", shown.append)
    for source in SOURCES:
        monkeypatch.setattr(source, "load", load)
    resources.loaded_model.clear()
    resources.ANALYSES.clear()
    selection = Selection(
        model_name="m",
        device="cpu",
        image=_photo(8, 8),
        image_key="photo",
        image_title="photo",
        label=None,
        card={},
        source=key,
    )
    assert guards.analysis_for(selection) is None
    assert len(shown) == 1 and "broken" in shown[0]


def test_a_link_or_an_older_session_may_name_the_source_by_key_title_or_index():
    from attnviz.app.sources import source_key

    for index, key in enumerate(SOURCE_KEYS):
        assert source_key(key) == source_key(str(index)) == source_key(translate(f"sources.{key}", "en")) == key
    for other in ("", "3", "CamVid", None):
        with pytest.raises(KeyError):
            source_key(other)


def test_the_radio_holds_the_key_and_shows_the_title_in_the_pages_language(monkeypatch):
    """An old link (?source= the English title) still opens the classifier; the radio's value is its key, its
    options the titles in Chinese."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.query_params.update({"source": "ImageNet classifier (timm)", "model": "efficientnet_b0", "lang": "zh"})
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    radio = at.radio(key="source")
    assert radio.value == "timm" and at.selectbox(key="timm_model").value == "efficientnet_b0"
    assert radio.options == [translate(f"sources.{key}", "zh") for key in SOURCE_KEYS[:2]]
    assert at.query_params.get("source") in ("timm", ["timm"])


def test_the_user_source_is_offered_only_when_the_app_was_given_models(monkeypatch, tmp_path):
    from attnviz.app.sources import offered_sources

    monkeypatch.setattr("sys.argv", ["app.py"])
    assert offered_sources() == ("camvid", "timm")
    monkeypatch.setattr("sys.argv", ["app.py", "--models", str(tmp_path / "missing.toml")])  # a problem to show
    assert offered_sources() == SOURCE_KEYS


def test_where_the_weights_came_from_shows_the_file_name_literally_in_each_language():
    from attnviz.app.sources import weights_text
    from attnviz.i18n import Phrase

    weights = Weights(Phrase.of("sources.weights_checkpoint", file="danet_*x*.safetensors"))
    for language in LANGUAGES:  # each of the name's marks escaped, so that Markdown shows it as it is
        expected = translate("sources.weights_checkpoint", language, file=r"danet\_\*x\*\.safetensors")
        assert weights_text(weights, language) == expected
