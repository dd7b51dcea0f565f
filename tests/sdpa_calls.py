"""The independent hook the transformer tests share: F.scaled_dot_product_attention wrapped for a test, keeping
every call's inputs and output (tests/test_sdpa.py, test_swin_windows.py, test_rollout.py)."""

import torch.nn.functional as F


class KeptSdpa:
    """`calls`: (args, kwargs, output) of every call made while the monkeypatch holds; the op itself runs as it is."""

    def __init__(self, monkeypatch):
        self.calls = []
        original = F.scaled_dot_product_attention

        def kept(*args, **kwargs):
            out = original(*args, **kwargs)
            self.calls.append((args, kwargs, out.detach().clone()))
            return out

        monkeypatch.setattr(F, "scaled_dot_product_attention", kept)  # also the name MHA's slow path calls
