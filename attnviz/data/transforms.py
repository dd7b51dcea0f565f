"""Training augmentation on batches of uint8 tensors: random scale, crop, flip, colour jitter.

All ops run on whole tensors (no per-pixel Python), so that a CPU spends its
time in the network, not in the data pipeline.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from attnviz.data.camvid import IGNORE_INDEX

__all__ = ["augment_pair", "to_float_image"]


def to_float_image(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> float in [0, 1]."""
    return images.float().div_(255.0)


def augment_pair(image: torch.Tensor, label: torch.Tensor, crop: tuple[int, int],
                 scale_range: tuple[float, float], generator: torch.Generator,
                 jitter: float = 0.3) -> tuple[torch.Tensor, torch.Tensor]:
    """One image (3, H, W) uint8 and label (H, W) -> (3, h, w) float in [0, 1], (h, w) long.

    Random scale in scale_range (relative to the stored size), random crop of
    `crop` (padding with the ignore label where the scaled image is smaller),
    horizontal flip with p = 0.5, brightness/contrast/saturation jitter.
    """
    def uniform(low, high):
        return low + (high - low) * torch.rand((), generator=generator).item()

    scale = uniform(*scale_range)
    height, width = image.shape[-2:]
    new_size = (max(1, round(height * scale)), max(1, round(width * scale)))
    img = F.interpolate(to_float_image(image)[None], size=new_size, mode="bilinear",
                        align_corners=False, antialias=scale < 1)[0]
    lab = F.interpolate(label[None, None].float(), size=new_size, mode="nearest")[0, 0].long()

    crop_h, crop_w = crop
    pad_h, pad_w = max(0, crop_h - new_size[0]), max(0, crop_w - new_size[1])
    if pad_h or pad_w:
        img = F.pad(img, (0, pad_w, 0, pad_h), value=0.0)
        lab = F.pad(lab, (0, pad_w, 0, pad_h), value=IGNORE_INDEX)
    top = int(torch.randint(0, img.shape[1] - crop_h + 1, (), generator=generator))
    left = int(torch.randint(0, img.shape[2] - crop_w + 1, (), generator=generator))
    img = img[:, top:top + crop_h, left:left + crop_w]
    lab = lab[top:top + crop_h, left:left + crop_w]

    if torch.rand((), generator=generator) < 0.5:
        img, lab = img.flip(-1), lab.flip(-1)

    if jitter > 0:
        brightness = uniform(1 - jitter, 1 + jitter)
        contrast = uniform(1 - jitter, 1 + jitter)
        saturation = uniform(1 - jitter, 1 + jitter)
        img = img * brightness
        mean = img.mean()
        img = (img - mean) * contrast + mean
        grey = (0.299 * img[0] + 0.587 * img[1] + 0.114 * img[2])[None]
        img = (img - grey) * saturation + grey
        img = img.clamp_(0, 1)
    return img.contiguous(), lab.contiguous()
