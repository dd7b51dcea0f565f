"""Write the live view as one self-contained HTML file: python -m attnviz.export_html --model danet-eca --photo
Seq05VD_f00540 --out view.html

The file (attnviz.viz.standalone) works opened from disk with no network: hover a pixel to see its row or column
of DANet's position map S, pin up to 4 points, a second model beside the first (--beside) and the channel map X.
The models are the shipped checkpoints (or --checkpoints DIR), run once through the analysis entry
(attnviz.analysis.forward.analyse); the photo is a shipped sample by name or an image file.

Past the file's size cap (attnviz.viz.standalone.MAX_FILE_BYTES) the command runs the models again on the photo
scaled down to the side that fits, and the file's header says so: a coarser grid, every number exact for the
smaller photo. --max-side scales the photo first.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from attnviz.analysis.forward import analyse
from attnviz.analysis.hover import channel_payload, hover_payload
from attnviz.analysis.views import MODES
from attnviz.data.images import ImageError, decode_image
from attnviz.data.samples import list_samples, load_sample
from attnviz.i18n import LANGUAGES, translate
from attnviz.models.checkpoint import DEFAULT_CHECKPOINT_DIR, CheckpointError, list_checkpoints, load_checkpoint
from attnviz.viz.standalone import MAX_FILE_BYTES, ChannelPanel, ViewPanel, ViewTooLarge, standalone_html

__all__ = ["main", "read_photo", "export_view", "ExportError"]


class ExportError(ValueError):
    """A model, photo or module the command cannot use, said in one line."""


def _positive(text: str) -> int:
    value = int(text)
    if value < 16:
        raise argparse.ArgumentTypeError(f"must be at least 16 pixels, got {value}")
    return value


def _parse(argv):
    parser = argparse.ArgumentParser(prog="python -m attnviz.export_html", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a checkpoint with position attention (danet-eca, ...)")
    parser.add_argument("--photo", required=True, help=f"a sample ({', '.join(list_samples())}) or an image file")
    parser.add_argument("--module", default=None, help="the spatial attention module (default: the model's first)")
    parser.add_argument("--beside", default=None, help="a second checkpoint shown beside the first")
    parser.add_argument("--language", default="en", choices=sorted(LANGUAGES))
    parser.add_argument("--mode", default="row", choices=MODES, help="row (where it attends) or column first")
    parser.add_argument("--max-side", type=_positive, default=None, help="scale the photo to this longer side first")
    parser.add_argument("--checkpoints", type=Path, default=DEFAULT_CHECKPOINT_DIR)
    parser.add_argument("--out", type=Path, required=True, help="the HTML file to write")
    return parser, parser.parse_args(argv)


def read_photo(photo: str) -> tuple[str, np.ndarray]:
    """(name for the header, RGB uint8 photo) of a sample's name or an image file (the app's bounded decoding)."""
    if photo in list_samples():
        return photo, load_sample(photo).image
    path = Path(photo)
    if not path.is_file():
        raise ExportError(f"no sample or image file {photo!r} (samples: {', '.join(list_samples())})")
    try:
        return path.name, decode_image(path.read_bytes())
    except ImageError as error:
        raise ExportError(f"{path.name}: {error}") from None


def scaled_to(image: np.ndarray, side: int) -> np.ndarray:
    """The photo with its longer side at most `side` (area averaging; unchanged when already smaller)."""
    height, width = image.shape[:2]
    factor = side / max(height, width)
    if factor >= 1:
        return image
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _load(name: str, directory: Path):
    known = list_checkpoints(directory)
    if name not in known:
        raise ExportError(f"no checkpoint {name!r} in {directory} (checkpoints: {', '.join(known) or 'none'})")
    try:
        return load_checkpoint(name, directory)[0]
    except CheckpointError as error:
        raise ExportError(f"{name}: {error}") from None


def _view(models: dict, image: np.ndarray, module: str | None) -> tuple[list[ViewPanel], list[ChannelPanel]]:
    """Each model's analysis of the photo as the file's panels (the chosen module's map) and channel views."""
    panels, channels = [], []
    for name, model in models.items():
        analysis = analyse(model, image, name)
        spatial = analysis.spatial_attention
        if not spatial:
            raise ExportError(f"{name} has no spatial attention to show (a DANet has: danet-eca, danet-none, ...)")
        chosen = module or next(iter(spatial))
        if chosen not in spatial:
            raise ExportError(f"{name} has no module {chosen!r} (its spatial attention: {', '.join(spatial)})")
        payload = hover_payload(spatial[chosen], image.shape[:2])
        if payload.data is None:
            raise ExportError(f"{name} {chosen}: {payload.reason}")
        panels.append(ViewPanel(name, chosen, payload.data))
        if analysis.channel_map is not None:
            channel_name, record = analysis.channel_map
            channels.append(ChannelPanel(name, channel_name, channel_payload(record)))
    return panels, channels


def export_view(
    model_names: list[str],
    photo: str,
    *,
    module: str | None = None,
    language: str = "en",
    mode: str = "row",
    max_side: int | None = None,
    checkpoints: Path = DEFAULT_CHECKPOINT_DIR,
    max_bytes: int = MAX_FILE_BYTES,
) -> str:
    """The HTML text of the view of `model_names` (one, or two side by side) on `photo`; past `max_bytes` the
    models run again on the photo scaled to the side that fits, said in the header, unless `max_side` was given
    (ExportError: a model, photo or module that cannot be shown, or a view that does not fit)."""
    name, image = read_photo(photo)
    models = {n: _load(n, checkpoints) for n in dict.fromkeys(model_names)}

    def html_of(shown: np.ndarray) -> str:
        note = ""
        if shown.shape != image.shape:
            (height, width), (new_height, new_width) = image.shape[:2], shown.shape[:2]
            values = dict(width=width, height=height, new_width=new_width, new_height=new_height)
            note = translate("standalone.scaled", language, **values, cap=max_bytes / 2**20)
        panels, channels = _view(models, shown, module)
        return standalone_html(
            panels=panels,
            photo=shown,
            photo_name=name,
            channels=channels,
            language=language,
            mode=mode,
            note=note,
            max_bytes=max_bytes,
        )

    try:
        try:
            return html_of(image if max_side is None else scaled_to(image, max_side))
        except ViewTooLarge as error:
            if max_side is not None:
                raise
            return html_of(scaled_to(image, error.side))
    except ViewTooLarge as error:
        raise ExportError(str(error)) from None


def main(argv=None) -> int:
    parser, args = _parse(argv)
    try:
        names = [args.model] + ([args.beside] if args.beside else [])
        text = export_view(
            names,
            args.photo,
            module=args.module,
            language=args.language,
            mode=args.mode,
            max_side=args.max_side,
            checkpoints=args.checkpoints,
        )
    except ExportError as error:
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out} ({len(text.encode('utf-8')) / 2**20:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
