import os

import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def rng():
    return torch.Generator().manual_seed(0)


@pytest.fixture
def make_camvid():
    """make_camvid(root, n, size): a tiny CamVid folder (train/val/test, smooth photos, random labels)."""
    import numpy as np
    from PIL import Image

    def make(root, n=3, size=(36, 48)):
        rng = np.random.default_rng(0)
        yy, xx = np.mgrid[0 : size[0], 0 : size[1]]
        for split in ("train", "val", "test"):
            (root / split).mkdir(parents=True)
            (root / f"{split}annot").mkdir()
            for i in range(n):
                smooth = np.stack([xx * 4 + i * 10, yy * 5, (xx + yy) * 2], -1).clip(0, 255).astype(np.uint8)
                Image.fromarray(smooth).save(root / split / f"img{i}.png")
                Image.fromarray(rng.integers(0, 12, size, dtype=np.uint8)).save(root / f"{split}annot" / f"img{i}.png")
        return root

    return make


# A user's own model as people write it: DANet's PAM_Module and an SE layer with their usual attribute names,
# in a folder with a hubconf.py (torch.hub's convention) and weights saved as safetensors.
USER_MODEL_SOURCE = '''
import torch
import torch.nn.functional as F
from torch import nn


class PAM_Module(nn.Module):
    def __init__(self, in_dim):
        super().__init__()
        self.query_conv = nn.Conv2d(in_dim, in_dim // 8, 1)
        self.key_conv = nn.Conv2d(in_dim, in_dim // 8, 1)
        self.value_conv = nn.Conv2d(in_dim, in_dim, 1)
        self.gamma = nn.Parameter(torch.zeros(1))
        self.softmax = nn.Softmax(dim=-1)

    def forward(self, x):
        b, c, h, w = x.size()
        query = self.query_conv(x).view(b, -1, w * h).permute(0, 2, 1)
        key = self.key_conv(x).view(b, -1, w * h)
        attention = self.softmax(torch.bmm(query, key))
        value = self.value_conv(x).view(b, -1, w * h)
        out = torch.bmm(value, attention.permute(0, 2, 1)).view(b, c, h, w)
        return self.gamma * out + x


class SELayer(nn.Module):
    def __init__(self, channel, reduction=4):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(nn.Linear(channel, channel // reduction, bias=False), nn.ReLU(inplace=True),
                                nn.Linear(channel // reduction, channel, bias=False), nn.Sigmoid())

    def forward(self, x):
        b, c, _, _ = x.size()
        y = self.fc(self.avg_pool(x).view(b, c)).view(b, c, 1, 1)
        return x * y.expand_as(x)


class StreetNet(nn.Module):
    """Stride 8, an SE layer, then DANet's position attention, then a 1x1 classifier."""

    def __init__(self, num_classes=4):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU(),
                                  nn.Conv2d(32, 32, 3, 2, 1), nn.ReLU())
        self.se = SELayer(32)
        self.pam = PAM_Module(32)
        self.classifier = nn.Conv2d(32, num_classes, 1)

    def forward(self, x):
        return F.interpolate(self.classifier(self.pam(self.se(self.stem(x)))), size=x.shape[-2:], mode="bilinear",
                             align_corners=False)
'''

USER_HUBCONF = '''
dependencies = ["torch"]

from streetnet import StreetNet


def streetnet(**kwargs):
    """A small segmentation net with an SE layer and DANet's PAM_Module."""
    return StreetNet(**kwargs)
'''


@pytest.fixture(scope="session")
def user_model_repo(tmp_path_factory):
    """(folder with hubconf.py, its weights .safetensors): a user-style model with a PAM whose gamma is not 0."""
    import sys

    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("user-repo")
    (folder / "streetnet.py").write_text(USER_MODEL_SOURCE)
    (folder / "hubconf.py").write_text(USER_HUBCONF)
    sys.path.insert(0, str(folder))
    try:
        from streetnet import StreetNet
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop("streetnet", None)
    torch.manual_seed(3)
    model = StreetNet()
    with torch.no_grad():
        model.pam.gamma.fill_(0.7)
    weights = folder / "streetnet.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    return folder, weights


@pytest.fixture(scope="module")
def server():
    """The app (app.py, shipped checkpoints) on a free local port, one server per test module (browser tests)."""
    from pathlib import Path

    from attnviz.browser import streamlit_server

    root = Path(__file__).resolve().parents[1]
    with streamlit_server(root / "app.py", root) as url:
        yield url
