"""The byte-bounded cache of shared results (attnviz.sizedcache): what it counts and what it drops."""

from dataclasses import dataclass

import numpy as np
import torch

from attnviz.sizedcache import SizedCache, held_bytes


@dataclass
class Holder:
    tensor: torch.Tensor
    view: torch.Tensor
    arrays: dict


def test_held_bytes_counts_each_storage_once():
    tensor = torch.zeros(10, 25)  # 1000 bytes
    array = np.zeros(300, np.uint8)
    holder = Holder(tensor, tensor[2:5], {"a": array, "b": array[100:], "name": "abcd"})
    assert held_bytes(holder) == 1000 + 300 + 4 + len("a") + len("b") + len("name")
    assert held_bytes([holder, holder]) == held_bytes(holder)
    assert held_bytes(torch.nn.Linear(100, 100)) == 0  # models are cached apart


def test_least_recently_used_is_dropped_past_the_budget():
    cache = SizedCache(100, size_of=len)
    cache.put("a", b"x" * 40)
    cache.put("b", b"x" * 40)
    assert cache.get("a") is not None  # a is now the most recently used
    cache.put("c", b"x" * 40)
    assert (cache.holds("a"), cache.holds("b"), cache.holds("c")) == (True, False, True)
    assert cache.held == 80
    cache.put("huge", b"x" * 500)  # alone over the budget: kept, everything older dropped
    assert len(cache) == 1 and cache.holds("huge") and cache.held == 500
    cache.put("huge", b"x" * 10)  # a key put again replaces its size
    assert cache.held == 10


def test_get_or_compute_computes_once():
    calls = []
    cache = SizedCache(1000, size_of=len)
    for _ in range(3):
        assert cache.get_or_compute("k", lambda: calls.append(1) or b"abc") == b"abc"
    assert calls == [1]
    cache.clear()
    assert len(cache) == 0 and cache.held == 0


def test_what_a_live_part_keeps_of_an_analysis():
    """A page's live part keeps its arguments for its session: given view_only(), it keeps the maps it draws,
    not the channel layers' input features (most of an analysis's bytes)."""
    from attnviz.analysis.forward import analyse
    from attnviz.data.samples import list_samples, load_sample
    from attnviz.models import load_checkpoint

    model, _ = load_checkpoint("danet-eca")
    analysis = analyse(model.eval(), load_sample(list_samples()[0]).image)
    view = analysis.view_only()
    assert set(view.records) == {"head.pam", "head.cam"}
    assert view.spatial_attention.keys() == analysis.spatial_attention.keys()
    assert view.channel_map == analysis.channel_map
    features = sum(r.features.numel() * 4 for r in analysis.channel_layers().values())
    left_out = held_bytes(analysis) - held_bytes(view)
    assert 0 <= left_out - features < 0.01 * features  # the ECA layers' inputs, and their few weights and names


def test_a_session_on_the_position_page_keeps_no_whole_analysis():
    """What the shared cache drops is gone: a session on the Position page (its parts keep the page's namespace)
    holds the maps it draws, not the analysis with the channel layers' input features (issue 31)."""
    import gc
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from attnviz.analysis.forward import Analysis
    from attnviz.app import resources

    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"), default_timeout=180)
    at.query_params["model"] = "danet-eca"
    at.switch_page("pages/position.py").run()
    assert not at.exception
    resources.ANALYSES.clear()
    gc.unfreeze()  # (the app freezes what is alive after its first runs: look at everything)
    gc.collect()
    whole = [o for o in gc.get_objects() if isinstance(o, Analysis) and o.channel_layers()]
    assert whole == [], f"{len(whole)} whole analyses kept"
    assert at.session_state is not None  # the session is alive to the end
