"""Decoding and checking user images: bytes in, RGB uint8 (H, W, 3) out, or a clear error.

Handles JPEG, PNG, WebP and BMP; grayscale, palette, RGBA (composited on
white) and 16-bit images; applies the EXIF orientation; scales very large
images down so the longer side is at most `max_side`. Sizes are checked from
the header before decoding (at most MAX_PIXELS; at least MIN_SIDE pixels on
each side after scaling), and large images are shrunk while they decode.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["ImageError", "decode_image", "ALLOWED_FORMATS", "MAX_UPLOAD_BYTES", "MAX_SIDE", "MAX_PIXELS", "MIN_SIDE"]

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP")
MAX_UPLOAD_BYTES = 20 * 2 ** 20
MAX_SIDE = 1024
MIN_SIDE = 32
MAX_PIXELS = 40_000_000  # larger images are refused from their header, before any decoding


class ImageError(ValueError):
    """A user image that cannot be used; the message is meant for the user."""


def _check_size(width: int, height: int, max_side: int) -> None:
    """Refuse from the header: too many pixels, too small, or so long and thin that scaling kills a side."""
    if width * height > MAX_PIXELS:
        raise ImageError(f"The image is {width}x{height} pixels ({width * height / 1e6:.0f} megapixels); "
                         f"the limit is {MAX_PIXELS / 1e6:.0f} megapixels. Scale it down and upload again.")
    scale = min(1.0, max_side / max(width, height))
    scaled = (round(width * scale), round(height * scale))
    if min(scaled) < MIN_SIDE:
        shown = f" (scaled to {scaled[0]}x{scaled[1]} to fit {max_side} pixels)" if scale < 1 else ""
        raise ImageError(f"The image is {width}x{height} pixels{shown}; it needs at least {MIN_SIDE} pixels on "
                         f"each side after scaling, so its sides can differ at most {max_side // MIN_SIDE}:1.")


def _shrink_while_decoding(image: Image.Image, max_side: int) -> Image.Image:
    """Decode to at most about 2x the final size: JPEG by its own DCT scaling (draft), others by an
    integer box reduction right after decoding, so no full-size float copy is ever made."""
    if image.format == "JPEG":
        image.draft(image.mode, (2 * max_side, 2 * max_side))
    image.load()
    factor = max(image.size) // (2 * max_side)
    if factor >= 2:
        exif = image.getexif()
        if image.mode.startswith("I"):  # Pillow cannot reduce 16/32-bit grey: average the blocks in numpy
            array = np.asarray(image)
            height, width = (side // factor * factor for side in array.shape)
            blocks = array[:height, :width].reshape(height // factor, factor, width // factor, factor)
            image = Image.fromarray(blocks.mean(axis=(1, 3)).round().astype(np.int32), "I")
        else:
            image = image.reduce(factor)
        image.info["exif"] = exif.tobytes()  # reduce() drops it; the orientation is applied afterwards
    return image


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image)
        if array.dtype.byteorder == ">" or array.dtype.itemsize > 2:
            array = array.astype(np.int64)
        high = int(array.max()) if array.size else 0
        # integer maths: 16-bit values map onto 0..255 by their full range, 8-bit-range values keep theirs
        divisor = 257 if high > 255 else 1
        image = Image.fromarray(((np.clip(array, 0, 65535) + divisor // 2) // divisor).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def decode_image(data: bytes, max_bytes: int = MAX_UPLOAD_BYTES, max_side: int = MAX_SIDE) -> np.ndarray:
    """RGB uint8 (H, W, 3) from the bytes of an uploaded file, or ImageError.

    Memory stays bounded by the header checks (at most MAX_PIXELS) and by shrinking while decoding.
    """
    if not data:
        raise ImageError("The file is empty.")
    if len(data) > max_bytes:
        raise ImageError(f"The file is {len(data) / 2 ** 20:.1f} MB; the limit is {max_bytes / 2 ** 20:.0f} MB.")
    try:
        image = Image.open(io.BytesIO(data))
        fmt = image.format
        if fmt not in ALLOWED_FORMATS:
            raise ImageError(f"{fmt or 'This'} files are not supported; use JPEG, PNG, WebP or BMP.")
        _check_size(image.width, image.height, max_side)
        image = _shrink_while_decoding(image, max_side)
        image = ImageOps.exif_transpose(image)
        image = _to_rgb(image)
    except ImageError:
        raise
    except Image.DecompressionBombError as error:
        raise ImageError(f"The image declares far more pixels than it could hold ({error}); it is refused "
                         f"(the limit is {MAX_PIXELS / 1e6:.0f} megapixels).") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ImageError(f"This file could not be read as an image ({type(error).__name__}). "
                         "Use a JPEG, PNG, WebP or BMP photo.") from None
    longest = max(image.size)
    if longest > max_side:
        scale = max_side / longest
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                             Image.Resampling.LANCZOS)
    return np.asarray(image, dtype=np.uint8).copy()
