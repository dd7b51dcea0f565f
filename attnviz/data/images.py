"""Decoding and checking user images: bytes in, RGB uint8 (H, W, 3) out, or a clear error.

Handles JPEG, PNG, WebP and BMP; grayscale, palette, RGBA (composited on
white) and 16-bit images; applies the EXIF orientation; scales very large
images down so the longer side is at most `max_side`.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["ImageError", "decode_image", "ALLOWED_FORMATS", "MAX_UPLOAD_BYTES", "MAX_SIDE"]

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP")
MAX_UPLOAD_BYTES = 20 * 2 ** 20
MAX_SIDE = 1024
MAX_PIXELS = 80_000_000  # refuse decompression bombs before decoding


class ImageError(ValueError):
    """A user image that cannot be used; the message is meant for the user."""


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        high = array.max() if array.size else 1.0
        scale = 65535.0 if high > 255 else 255.0
        image = Image.fromarray(np.clip(array / scale * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def decode_image(data: bytes, max_bytes: int = MAX_UPLOAD_BYTES, max_side: int = MAX_SIDE) -> np.ndarray:
    """RGB uint8 (H, W, 3) from the bytes of an uploaded file, or ImageError."""
    if not data:
        raise ImageError("The file is empty.")
    if len(data) > max_bytes:
        raise ImageError(f"The file is {len(data) / 2 ** 20:.1f} MB; the limit is {max_bytes / 2 ** 20:.0f} MB.")
    try:
        image = Image.open(io.BytesIO(data))
        fmt = image.format
        if fmt not in ALLOWED_FORMATS:
            raise ImageError(f"{fmt or 'This'} files are not supported; use JPEG, PNG, WebP or BMP.")
        if image.width * image.height > MAX_PIXELS:
            raise ImageError(f"The image is {image.width}x{image.height} pixels, too large to decode safely.")
        image.load()
        image = ImageOps.exif_transpose(image)
        image = _to_rgb(image)
    except ImageError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise ImageError(f"This file could not be read as an image ({type(error).__name__}). "
                         "Use a JPEG, PNG, WebP or BMP photo.") from None
    if min(image.size) < 32:
        raise ImageError(f"The image is {image.width}x{image.height} pixels; it needs at least 32 on each side.")
    longest = max(image.size)
    if longest > max_side:
        scale = max_side / longest
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                             Image.Resampling.LANCZOS)
    return np.asarray(image, dtype=np.uint8).copy()
