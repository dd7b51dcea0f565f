"""One geometry: photo pixels <-> feature-map cells, clicks and links -> pixels, labels pooled to cells.

Every path of the package that goes from the photo to the feature grid or back
uses this module, so that a pixel always lands in the same cell, whichever way
it got there (a click, a link, a class share, an attribution target).

The convention
--------------
* A **pixel** is a pair of integers (x, y): column x in 0..W-1, row y in 0..H-1
  of the photo (H, W). Positions that are not integers (a click on a scaled
  image) are snapped to the pixel that contains them, *once*, where they enter:
  `click_to_pixel` and `parse_pixel`. Everything after that (the text shown,
  the link written, the cell, the attribution target) uses those integers.
* A **feature map** (h, w) covers the whole photo; a stride-8 network on an
  H x W photo has h = ceil(H / 8), w = ceil(W / 8) (`feature_size`).
* The **proportional rule**: pixel (x, y) lies in cell

      row = floor(y * h / H),   col = floor(x * w / W),   flat index = row * w + col,

  computed in integers (no rounding at cell edges). When H = 8 h this is the
  stride rule floor(y / 8); otherwise the grid is stretched over the whole
  photo (as the heat maps drawn over it are), and cells differ by at most one
  pixel in size. Cell c of an axis of n pixels and m cells holds the pixels
  ceil(c n / m) .. ceil((c + 1) n / m) - 1 (`cell_span`); with m <= n no cell
  is empty.
* A cell's **area** is exactly the set of pixels that map to it. Pooling to the
  grid (`cell_counts`, `cell_shares`, `cell_majority`, `cell_means`) averages
  over that set and nothing else: no fractional weights at cell borders, no
  overlapping windows. Each cell's shares therefore sum to 1, and a label that
  marks a single pixel shows up in that pixel's cell only.
* A cell's **centre** (`cell_centre`) is the middle pixel of its pixel set, an
  integer pixel that maps back to the cell.
* Maps are drawn over the photo by bilinear upsampling with half-pixel centres
  (attnviz.viz.overlays, and the live canvas), which places cell c's value at
  (c + 0.5) W / w: the centre of the same cell.

Functions taking label or value arrays accept NumPy arrays and torch tensors
(any leading dimensions, the last two being the photo's H, W); the pixel -> cell
maps are computed once per (photo size, grid size) and cached.
"""

from __future__ import annotations

import math
import operator
from functools import lru_cache

import numpy as np

__all__ = [
    "feature_size",
    "cell_of_pixel",
    "pixel_cell",
    "cell_span",
    "cell_centre",
    "click_to_pixel",
    "parse_pixel",
    "check_pixel",
    "same_place",
    "axis_cells",
    "token_grid",
    "cell_map",
    "pixel_counts",
    "cell_counts",
    "cell_shares",
    "cell_majority",
    "cell_means",
]

Size = tuple[int, int]


def feature_size(image_hw: Size, stride: int = 8) -> Size:
    """(h, w) = (ceil(H / stride), ceil(W / stride)): the feature map of a network of total stride `stride`
    (each stride-2 step of the dilated ResNet rounds up) on a (H, W) photo."""
    height, width = image_hw
    return -(-int(height) // stride), -(-int(width) // stride)


def _size(hw) -> Size:
    h, w = (operator.index(v) for v in hw)
    if h <= 0 or w <= 0:
        raise ValueError(f"sizes must be positive, got {h}x{w}")
    return h, w


def check_pixel(x, y, image_hw: Size) -> tuple[int, int]:
    """(x, y) as Python ints if they are an integer pixel of the photo; TypeError for non-integers (a float
    position must be snapped with `click_to_pixel` / `parse_pixel` first), ValueError outside the photo."""
    height, width = _size(image_hw)
    try:
        px, py = operator.index(x), operator.index(y)
    except TypeError:
        raise TypeError(f"a pixel is a pair of integers, got x={x!r}, y={y!r}") from None
    if not (0 <= px < width and 0 <= py < height):
        raise ValueError(f"pixel x={px}, y={py} is outside the {width}x{height} photo")
    return px, py


def cell_of_pixel(x: int, y: int, image_hw: Size, feature_hw: Size) -> tuple[int, int]:
    """(row, col) of the feature cell that integer pixel (x, y) lies in (the proportional rule)."""
    height, width = _size(image_hw)
    fh, fw = _size(feature_hw)
    px, py = check_pixel(x, y, (height, width))
    return py * fh // height, px * fw // width


def pixel_cell(x: int, y: int, image_hw: Size, feature_hw: Size) -> int:
    """Flat index row * w + col of the feature cell that integer pixel (x, y) lies in."""
    row, col = cell_of_pixel(x, y, image_hw, feature_hw)
    return row * _size(feature_hw)[1] + col


def cell_span(cell: int, pixels: int, cells: int) -> tuple[int, int]:
    """(first, stop) pixels of cell `cell` along an axis of `pixels` pixels and `cells` cells: the pixels p
    with floor(p * cells / pixels) == cell are first .. stop - 1 (empty only when cells > pixels)."""
    return -(-cell * pixels // cells), -(-(cell + 1) * pixels // cells)


def cell_centre(index: int, image_hw: Size, feature_hw: Size) -> tuple[int, int]:
    """The integer pixel (x, y) at the middle of feature cell `index`; it lies in that cell."""
    height, width = _size(image_hw)
    fh, fw = _size(feature_hw)
    index = operator.index(index)
    if not 0 <= index < fh * fw:
        raise ValueError(f"cell {index} is outside a {fh}x{fw} grid")
    _need_pixels((height, width), (fh, fw))
    row, col = divmod(index, fw)
    (x0, x1), (y0, y1) = cell_span(col, width, fw), cell_span(row, height, fh)
    return (x0 + x1 - 1) // 2, (y0 + y1 - 1) // 2


def click_to_pixel(click: dict, image_hw: Size) -> tuple[int, int] | None:
    """A click on the displayed photo ({"x", "y", "width", "height"} of the shown image, as
    streamlit-image-coordinates reports it) -> the integer photo pixel under it; None if unusable.

    The click position is scaled to the photo and snapped to the pixel that contains it (floor), clipped
    to the photo: this is the one place where a fractional position becomes a pixel.
    """
    try:
        shown_w, shown_h = float(click["width"]), float(click["height"])
        x, y = float(click["x"]), float(click["y"])
    except (KeyError, TypeError, ValueError):
        return None
    if not (shown_w > 0 and shown_h > 0 and math.isfinite(x) and math.isfinite(y)):
        return None
    height, width = _size(image_hw)
    return _snap(x * width / shown_w, width), _snap(y * height / shown_h, height)


def _snap(position: float, size: int) -> int:
    return min(max(math.floor(position), 0), size - 1)


def same_place(x: int, y: int, from_hw: Size, to_hw: Size) -> tuple[int, int]:
    """Pixel (x, y) of a (H, W) photo -> the pixel at the same place of a photo of `to_hw` (scaled, floored;
    itself when the sizes agree): where a pointer over one photo points on another shown beside it."""
    (height, width), (h, w) = _size(from_hw), _size(to_hw)
    px, py = check_pixel(x, y, (height, width))
    return px * w // width, py * h // height


def parse_pixel(x, y, image_hw: Size) -> tuple[int, int] | None:
    """A link's x and y (text, or numbers) -> the integer pixel, if both are numbers inside the photo
    (0 <= x < W, 0 <= y < H), else None. A fractional value names the pixel that contains it."""
    height, width = _size(image_hw)
    try:
        px, py = float(x), float(y)
    except (TypeError, ValueError):
        return None
    if not (0 <= px < width and 0 <= py < height):  # also rejects nan and inf
        return None
    return math.floor(px), math.floor(py)


# ----------------------------------------------------------------------------- pooling to the grid


def _need_pixels(image_hw: Size, feature_hw: Size) -> None:
    if feature_hw[0] > image_hw[0] or feature_hw[1] > image_hw[1]:
        raise ValueError(
            f"a {feature_hw[0]}x{feature_hw[1]} grid on a {image_hw[0]}x{image_hw[1]} photo "
            "would have cells without pixels"
        )


@lru_cache(maxsize=64)
def axis_cells(pixels: int, cells: int) -> np.ndarray:
    """(pixels,) int64: the cell of each pixel along one axis, floor(p * cells / pixels) (read-only)."""
    out = np.arange(pixels, dtype=np.int64) * cells // pixels
    out.flags.writeable = False
    return out


@lru_cache(maxsize=4)  # a map is H x W int64 (6 MB for a 1024x768 upload): keep only the photos in use
def _maps(image_hw: Size, feature_hw: Size) -> tuple[np.ndarray, np.ndarray]:
    (height, width), (fh, fw) = image_hw, feature_hw
    _need_pixels(image_hw, feature_hw)
    cells = axis_cells(height, fh)[:, None] * fw + axis_cells(width, fw)[None, :]
    counts = np.bincount(cells.ravel(), minlength=fh * fw).reshape(fh, fw)
    cells.flags.writeable = False
    counts.flags.writeable = False
    return cells, counts


def cell_map(image_hw: Size, feature_hw: Size) -> np.ndarray:
    """(H, W) int64: the flat cell index of every pixel (read-only, cached)."""
    return _maps(_size(image_hw), _size(feature_hw))[0]


def pixel_counts(image_hw: Size, feature_hw: Size) -> np.ndarray:
    """(h, w) int64: how many pixels each cell holds (cells differ by at most one row / column of pixels)."""
    return _maps(_size(image_hw), _size(feature_hw))[1]


@lru_cache(maxsize=4)
def _torch_map(image_hw: Size, feature_hw: Size, device):
    import torch

    return torch.from_numpy(np.array(cell_map(image_hw, feature_hw).ravel())).to(device)


def _is_torch(values) -> bool:
    return type(values).__module__.startswith("torch")


def cell_counts(labels, feature_hw: Size, num_classes: int):
    """Per-class pixel counts of each cell: labels (..., H, W) with values in 0..num_classes-1 ->
    (..., num_classes, h, w) int64 (NumPy in, NumPy out; torch in, torch out on the same device).

    NumPy labels outside that range raise ValueError; torch labels are not checked (no device sync in the
    training loop): clamp them first.
    """
    fh, fw = _size(feature_hw)
    *lead, height, width = labels.shape
    image_hw = _size((height, width))
    n = fh * fw
    if _is_torch(labels):
        import torch

        cells = _torch_map(image_hw, (fh, fw), labels.device)
        flat = labels.reshape(-1, height * width).long()
        offsets = torch.arange(flat.shape[0], device=labels.device)[:, None] * n
        keys = ((offsets + cells[None]) * num_classes + flat).reshape(-1)
        counts = torch.bincount(keys, minlength=flat.shape[0] * n * num_classes)
        return counts.reshape(*lead, fh, fw, num_classes).movedim(-1, -3)
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in 0..{num_classes - 1}, got {labels.min()}..{labels.max()}")
    cells = cell_map(image_hw, (fh, fw)).ravel()
    flat = labels.reshape(-1, height * width).astype(np.int64)
    keys = ((np.arange(flat.shape[0])[:, None] * n + cells[None]) * num_classes + flat).ravel()
    counts = np.bincount(keys, minlength=flat.shape[0] * n * num_classes)
    return np.moveaxis(counts.reshape(*lead, fh, fw, num_classes), -1, -3)


def cell_shares(labels, feature_hw: Size, num_classes: int):
    """(..., num_classes, h, w) float: each class's share of each cell's pixels (the mean of the one-hot
    labels over exactly the pixels that map to the cell); the shares of a cell sum to 1."""
    counts = cell_counts(labels, feature_hw, num_classes)
    per_cell = pixel_counts(tuple(labels.shape[-2:]), feature_hw)
    if _is_torch(counts):
        import torch

        return counts.float() / torch.from_numpy(np.array(per_cell)).to(counts.device, torch.float32)
    return counts / per_cell.astype(np.float64)


def cell_majority(labels, feature_hw: Size, num_classes: int):
    """(..., h, w): the most frequent class of each cell (ties: the smallest class index)."""
    return cell_counts(labels, feature_hw, num_classes).argmax(-3)


def cell_means(values, feature_hw: Size):
    """(..., H, W) values -> (..., h, w): the mean over exactly the pixels of each cell (float64 for NumPy,
    the input's floating dtype for torch)."""
    fh, fw = _size(feature_hw)
    *lead, height, width = values.shape
    image_hw = _size((height, width))
    per_cell = pixel_counts(image_hw, (fh, fw))
    if _is_torch(values):
        import torch

        cells = _torch_map(image_hw, (fh, fw), values.device)
        flat = values.reshape(-1, height * width)
        if not flat.is_floating_point():
            flat = flat.float()
        sums = flat.new_zeros(flat.shape[0], fh * fw).index_add_(1, cells, flat)
        means = sums / torch.from_numpy(np.array(per_cell)).to(sums.device, sums.dtype).reshape(-1)
        return means.reshape(*lead, fh, fw)
    flat = np.asarray(values, dtype=np.float64).reshape(-1, height * width)
    cells = cell_map(image_hw, (fh, fw)).ravel()
    sums = np.stack([np.bincount(cells, weights=row, minlength=fh * fw) for row in flat])
    return (sums / per_cell.reshape(-1)).reshape(*lead, fh, fw)


def _strides(pixels: int, cells: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """The integer strides s (inclusive ranges) that make `cells` cells of an axis of `pixels`: floor(n / s)
    (a convolution with kernel = stride, no padding) and ceil(n / s) (padded to whole patches)."""
    floor = (pixels // (cells + 1) + 1, pixels // cells)
    ceil = (-(-pixels // cells), -(-pixels // (cells - 1)) - 1 if cells > 1 else pixels)
    return floor, ceil


def token_grid(tokens: int, image_hw: Size, max_prefix: int = 16) -> tuple[int, Size] | None:
    """(prefix, (h, w)) for a sequence of `tokens` tokens of a vision transformer on a photo of `image_hw`, when
    the model does not say how they lie: the fewest prefix tokens p <= max_prefix (CLS, a distillation token,
    registers) such that tokens - p = h w is the patch grid of one integer stride s on both axes, rounded the
    same way on both: (floor(H / s), floor(W / s)) or (ceil(H / s), ceil(W / s)). The photo's aspect ratio
    decides between the factorisations of h w (196 on a square photo is 14 x 14, not 7 x 28); None when no
    count fits (the tokens are not a patch grid over this photo)."""
    height, width = _size(image_hw)
    for prefix in range(min(max_prefix, tokens - 1) + 1):
        cells = tokens - prefix
        for rows in (r for r in range(1, math.isqrt(cells) + 1) if cells % r == 0):
            for h, w in {(rows, cells // rows), (cells // rows, rows)}:
                if h > height or w > width:
                    continue
                for (low_h, high_h), (low_w, high_w) in zip(_strides(height, h), _strides(width, w)):
                    if max(low_h, low_w, 1) <= min(high_h, high_w):
                        return prefix, (h, w)
    return None
