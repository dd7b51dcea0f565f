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
        yy, xx = np.mgrid[0:size[0], 0:size[1]]
        for split in ("train", "val", "test"):
            (root / split).mkdir(parents=True)
            (root / f"{split}annot").mkdir()
            for i in range(n):
                smooth = np.stack([xx * 4 + i * 10, yy * 5, (xx + yy) * 2], -1).clip(0, 255).astype(np.uint8)
                Image.fromarray(smooth).save(root / split / f"img{i}.png")
                Image.fromarray(rng.integers(0, 12, size, dtype=np.uint8)).save(root / f"{split}annot" / f"img{i}.png")
        return root

    return make
