"""Decoding and checking user images: bytes in, RGB uint8 (H, W, 3) out, or a clear error.

Handles JPEG, PNG, WebP and BMP; grayscale, palette, RGBA (composited on
white) and 16-bit images; applies the EXIF orientation; scales very large
images down so the longer side is at most `max_side`. Sizes are checked from
the header before decoding (at most MAX_PIXELS; at least MIN_SIDE pixels on
each side after scaling).

Memory: an accepted upload costs under 300 MB. Decoding is estimated from the
header and refused over DECODE_BUDGET (this bites WebP, which decodes through
four full-size buffers, and progressive JPEGs, buffered whole as DCT
coefficients). JPEGs decode at a reduced DCT scale; other images decode once
at full size and are then converted and box-reduced a strip of rows at a
time, so no second full-size copy exists (Pillow's own reduce() copies RGBA
images whole, and cannot reduce palette or 16-bit images).
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["ImageError", "decode_image", "ALLOWED_FORMATS", "MAX_UPLOAD_BYTES", "MAX_SIDE", "MAX_PIXELS",
           "DECODE_BUDGET", "MIN_SIDE"]

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP")
_FORMAT_NAMES = {"JPEG": "JPEG", "PNG": "PNG", "WEBP": "WebP", "BMP": "BMP"}  # as the messages name them
MAX_UPLOAD_BYTES = 20 * 2 ** 20
MAX_SIDE = 1024
MIN_SIDE = 32
MAX_PIXELS = 40_000_000  # larger images are refused from their header, before any decoding
DECODE_BUDGET = 240_000_000  # bytes a decode may hold at once: with the strips and the output, under 300 MB
_STRIP_PIXELS = 2 ** 18  # pixels converted at a time: about 1 MB a copy, whatever the image's size
_DEEP_MODES = ("I;16", "I;16B", "I;16L", "I")  # 16/32-bit grey
_WEBP_BYTES_PER_PIXEL = 16  # libwebp's two RGBA canvases, Pillow's copy of one, the image


class ImageError(ValueError):
    """A user image that cannot be used; the message is meant for the user."""


def _scaled_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(width, height) with the longer side scaled down to at most `max_side` (never up)."""
    scale = min(1.0, max_side / max(width, height))
    return round(width * scale), round(height * scale)


def _check_size(width: int, height: int, max_side: int) -> None:
    """Refuse from the header: too many pixels, too small, or so long and thin that scaling kills a side."""
    if width * height > MAX_PIXELS:
        raise ImageError(f"The image is {width}x{height} pixels ({width * height / 1e6:.0f} megapixels); "
                         f"the limit is {MAX_PIXELS / 1e6:.0f} megapixels. Scale it down and upload again.")
    scaled = _scaled_size(width, height, max_side)
    if min(scaled) < MIN_SIDE:
        shown = f" (scaled to {scaled[0]}x{scaled[1]} to fit {max_side} pixels)" if scaled != (width, height) else ""
        raise ImageError(f"The image is {width}x{height} pixels{shown}; it needs at least {MIN_SIDE} pixels on "
                         f"each side after scaling, so its sides can differ at most {max_side // MIN_SIDE}:1.")


def _webp_canvas_size(data: bytes) -> tuple[int, int] | None:
    """The canvas size in a WebP file's header, or None when `data` is no WebP (or an unusual one).

    Read by hand because Image.open allocates a WebP's whole canvas before the size could be checked.
    """
    if len(data) < 30 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return None
    chunk = data[12:16]
    if chunk == b"VP8X":  # extended format: 24-bit canvas sides, minus one
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    if chunk == b"VP8L" and data[20] == 0x2F:  # lossless: two 14-bit sides, minus one
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":  # lossy key frame: two 14-bit sides
        return int.from_bytes(data[26:28], "little") & 0x3FFF, int.from_bytes(data[28:30], "little") & 0x3FFF
    return None


def _check_memory(width: int, height: int, needs: float, kind: str) -> None:
    """Refuse an image whose decoding would hold more than DECODE_BUDGET bytes (`needs`) at once."""
    if needs > DECODE_BUDGET:
        raise ImageError(f"The image is {width}x{height} pixels ({width * height / 1e6:.0f} megapixels); decoding "
                         f"a {kind} that large takes about {needs / 1e6:.0f} MB of memory, over the "
                         f"{DECODE_BUDGET / 1e6:.0f} MB allowed. Scale it down and upload again.")


def _decode_bytes(image: Image.Image, header_pixels: int) -> float:
    """About the most bytes decoding the opened (for a JPEG: drafted) `image` holds at once."""
    if image.format == "WEBP":
        return _WEBP_BYTES_PER_PIXEL * header_pixels
    stored = 1 if image.mode in ("1", "L", "P") else 2 if image.mode.startswith("I;16") else 4  # Pillow's layout
    needs = stored * image.width * image.height
    if image.format == "JPEG" and image.info.get("progressive"):
        # all scans are buffered as DCT coefficients, 2 bytes each, of every component at its sampling
        samples = sum(h * v for _, h, v, _ in image.layer)
        full = max(1, max(h for _, h, _, _ in image.layer) * max(v for _, _, v, _ in image.layer))
        needs += 2 * header_pixels * samples / full
    return needs


def _deep_divisor(image: Image.Image) -> int:
    """What 16/32-bit grey values are divided by: 257 when they use the 16-bit range, else 1 (8-bit range)."""
    if image.mode not in _DEEP_MODES:
        return 1
    return 257 if image.getextrema()[1] > 255 else 1


def _to_rgb(image: Image.Image, divisor: int) -> Image.Image:
    """An RGB copy of `image`: transparency composited on white, 16/32-bit grey divided by `divisor`."""
    if image.mode in _DEEP_MODES:
        array = np.asarray(image).astype(np.int64)  # a strip: cheap; uint16 would overflow when rounding
        # integer maths: rounded, clipped to what 16 bits hold
        image = Image.fromarray(((np.clip(array, 0, 65535) + divisor // 2) // divisor).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _reduced_rgb(image: Image.Image, factor: int) -> Image.Image:
    """`image` as RGB, averaged over factor x factor blocks (partial blocks at the edges), made a strip of
    rows at a time so that only strip-sized copies exist beside the decoded image. An RGB image that
    needs no reduction is returned as it is."""
    if image.mode == "RGB" and factor == 1:
        return image
    divisor = _deep_divisor(image)
    width, height = image.size
    out = Image.new("RGB", (-(-width // factor), -(-height // factor)))
    rows = max(1, _STRIP_PIXELS // (width * factor)) * factor  # a multiple of factor: strips reduce seamlessly
    for top in range(0, height, rows):
        strip = _to_rgb(image.crop((0, top, width, min(height, top + rows))), divisor)
        out.paste(strip.reduce(factor) if factor > 1 else strip, (0, top // factor))
    return out


def decode_image(data: bytes, max_bytes: int = MAX_UPLOAD_BYTES, max_side: int = MAX_SIDE) -> np.ndarray:
    """RGB uint8 (H, W, 3) from the bytes of an uploaded file, or ImageError.

    Memory stays bounded by the header checks and by holding one decoded image at most: JPEGs decode
    at a DCT scale of at least twice the final size, other images are reduced strip by strip to at least
    twice the final size, and the last step to the final size is Lanczos.
    """
    if not data:
        raise ImageError("The file is empty.")
    if len(data) > max_bytes:
        raise ImageError(f"The file is {len(data) / 2 ** 20:.1f} MB; the limit is {max_bytes / 2 ** 20:.0f} MB.")
    try:
        if canvas := _webp_canvas_size(data):  # opening a WebP allocates its canvas: check the header first
            _check_size(*canvas, max_side)
            _check_memory(*canvas, _WEBP_BYTES_PER_PIXEL * canvas[0] * canvas[1], _FORMAT_NAMES["WEBP"])
        image = Image.open(io.BytesIO(data))
        fmt = image.format
        if fmt not in ALLOWED_FORMATS:
            raise ImageError(f"{fmt or 'This'} files are not supported; use JPEG, PNG, WebP or BMP.")
        width, height = image.size
        _check_size(width, height, max_side)
        size = _scaled_size(width, height, max_side)
        if fmt == "JPEG":
            image.draft(image.mode, (2 * size[0], 2 * size[1]))  # decodes at 1/2, 1/4 or 1/8 scale
        kind = ("progressive " if image.info.get("progressive") else "") + _FORMAT_NAMES[fmt]
        _check_memory(width, height, _decode_bytes(image, width * height), kind)
        image.load()
        exif = image.getexif()  # EXIF orientation (or XMP's): applied to the final, small image
        image = _reduced_rgb(image, max(1, max(image.size) // (2 * max(size))))
        if image.size != size:
            image = image.resize(size, Image.Resampling.LANCZOS)
        image.info["exif"] = exif.tobytes()
        image = ImageOps.exif_transpose(image)
    except ImageError:
        raise
    except Image.DecompressionBombError as error:
        raise ImageError(f"The image declares far more pixels than it could hold ({error}); it is refused "
                         f"(the limit is {MAX_PIXELS / 1e6:.0f} megapixels).") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ImageError(f"This file could not be read as an image ({type(error).__name__}). "
                         "Use a JPEG, PNG, WebP or BMP photo.") from None
    return np.asarray(image, dtype=np.uint8).copy()
