"""The Compare page claims only what one photo and one training seed per model can show: it ranks the shown
models on this photo and on the test split, and says when the two disagree."""

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from attnviz.analysis.forward import analyse
from attnviz.analysis.metrics import score_prediction
from attnviz.data.samples import list_samples, load_sample
from attnviz.i18n import LANGUAGES, translate
from attnviz.models import list_checkpoints, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
SHOWN = ["fcn-none", "fcn-cbam", "fcn-se"]


def test_no_text_says_the_differences_all_come_from_the_module():
    for language in LANGUAGES:
        intuition = translate("compare.intuition", language)
        assert ("seed" if language == "en" else "种子") in intuition
    assert "comes from the module" not in translate("compare.intuition", "en")
    assert "都来自注意力模块" not in translate("compare.intuition", "zh")


@pytest.mark.skipif(not set(SHOWN) <= set(list_checkpoints()), reason="needs the shipped fcn models")
def test_the_page_says_which_model_is_best_on_the_photo_and_which_on_the_test_split():
    sample = load_sample(list_samples()[0])
    photo = {}
    for name in SHOWN:
        network, _ = load_checkpoint(name)
        photo[name] = float(score_prediction(analyse(network, sample.image, name).prediction, sample.label)["miou"])
    test = {
        name: json.loads((ROOT / "checkpoints" / "results.json").read_text())["models"][name]["miou"] for name in SHOWN
    }
    photo_best, test_best = max(photo, key=photo.get), max(test, key=test.get)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.run()
    at.switch_page("pages/compare.py").run()
    at.multiselect(key="compare_models").set_value(SHOWN).run()
    for language in LANGUAGES:
        at.session_state["language"] = language
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        text = " ".join(m.value for m in at.main.markdown)
        if photo_best == test_best:
            expected = translate(
                "compare.ranking_same", language, model=photo_best, photo=photo[photo_best], test=test[test_best]
            )
        else:
            expected = translate(
                "compare.ranking_differs",
                language,
                photo_best=photo_best,
                photo=photo[photo_best],
                test_best=test_best,
                test=test[test_best],
                photo_best_test=test[photo_best],
            )
        assert expected in text, (photo, test)
