"""The Compare page's first answer to "which module helps": the table of what switching each attention kind off
or flattening it does to test mIoU, in English and Chinese, with the words of its intervals (AppTest)."""

import pytest
from test_app import _app, every_run_enters_through_app_py  # noqa: F401 (the fixture: every run enters app.py)
from test_views import _switch_results

from attnviz.analysis.views import switch_table
from attnviz.i18n import translate
from attnviz.models import list_checkpoints
from attnviz.results import EFFECTS, switch_figures

pytestmark = pytest.mark.skipif(not list_checkpoints(), reason="no checkpoints")


def test_the_compare_page_shows_what_switching_each_module_does_in_both_languages(monkeypatch):
    import attnviz.app

    results = _switch_results()
    monkeypatch.setattr(attnviz.app, "results", lambda: results)
    at = _app(None, "pages/compare.py")
    for language in ("en", "zh"):
        at.session_state["language"] = language
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        words = {effect: translate(f"compare.switches.effects.{effect}", language) for effect in EFFECTS}
        assert at.subheader[len(at.multiselect(key="compare_models").value)].value == translate(
            "compare.switches.title", language
        )  # after the models' columns, before the table of the separately trained models
        shown = at.dataframe[0].value
        kinds = {kind: translate(f"switch.kinds.{kind}", language) for kind in ("eca", "pam")}
        assert shown.equals(switch_table(switch_figures(results), words, kinds))
        assert (shown["off_effect"] == translate("compare.switches.effects.higher", language)).sum() == 1
        assert translate("compare.switches.effects.unmeasurable", language) in shown["flat_effect"].tolist()
        text = "\n".join(m.value for m in at.markdown) + "\n".join(c.value for c in at.caption)
        assert translate("compare.switches.modes.off", language) in text and "-2.00" in text
        assert at.dataframe[1].value.equals(switch_table(switch_figures(results, "stages"), words, kinds))
