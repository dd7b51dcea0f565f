"""Real ImageNet classifiers with channel attention or attention over tokens, from timm, and what they predict.

The ECA and SE layers people read about live in ImageNet models, and so do the
vision transformers people inspect today. These are built by timm
(`timm.create_model`) and read by `attnviz.capture`, the gates through hooks on
their own modules (`attnviz.capture.adapters`), the transformers' attention from
the arguments of `F.scaled_dot_product_attention` (`attnviz.capture.dataflow`):

    ecaresnet26t, ecaresnet50d, ecaresnet101d, eca_nfnet_l0   ECA (Wang et al., CVPR 2020)
    seresnet50, efficientnet_b0, mobilenetv3_large_100        SE (Hu et al., CVPR 2018); MobileNetV3 and
                                                              EfficientNet gate with a hard / plain sigmoid
    vit_small_patch16_224                                     ViT (Dosovitskiy et al., ICLR 2021): CLS + 14x14
    deit_small_distilled_patch16_224                          DeiT (Touvron et al., ICML 2021): CLS, distillation
    vit_small_r26_s32_224                                     a hybrid: ResNet-26 stem, then ViT over 7x7 tokens
    swin_tiny_patch4_window7_224                              Swin-T (Liu et al., ICCV 2021): 7x7 windows, shifted
                                                              every other block, on a 56x56 to 7x7 grid
    xcit_nano_12_p16_224                                      XCiT (El-Nouby et al., NeurIPS 2021): attention over
                                                              channels, a d x d map per head, then CLS attention

Weights, in order: a local file for the architecture in the folder
$ATTNVIZ_TIMM_WEIGHTS (`<arch>.safetensors`, `.pth` or `.bin`, or a folder
`<arch>/` holding `model.safetensors` or `pytorch_model.bin`, as the hub
stores them), read without unpickling code (`attnviz.models.user.read_state_dict`:
safetensors, or torch.load(weights_only=True)) and loaded through timm's
`pretrained_cfg_overlay=dict(state_dict=...)`, so timm's own key filters apply; a
file that cannot be read or does not fit the architecture is an
`ImageNetWeightsError` (a `CheckpointError`) with one message naming the keys;
else timm's own pretrained weights from the Hugging Face hub when it can be
reached (checked first with a probe bounded as a whole, name lookup included, by
3 seconds, so an offline machine does not wait for the hub client's retries);
else random weights, and the app says so. Preprocessing is timm's own for each
model (`resolve_model_data_config`, `create_transform`), with one difference for
the transformers (`kind` "token", "window" or "xcit"): the whole photo is resized to the model's input
size, not resized and then centre-cropped, so that the patch grid covers the photo
the page draws on and a patch's row lands on the pixels it came from (the aspect
ratio is not kept: a 360x480 photo's patches are 25.7 x 34.3 photo pixels).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from attnviz.models.checkpoint import CheckpointError, state_dict_mismatch

__all__ = [
    "IMAGENET_MODELS",
    "POSITION_KINDS",
    "TOKEN_KIND",
    "TRANSFORMER_KINDS",
    "WINDOW_KIND",
    "XCIT_KIND",
    "WEIGHTS_ENV",
    "ClassifierWeights",
    "ImageNetWeightsError",
    "find_weights_file",
    "hub_reachable",
    "input_side",
    "load_imagenet_model",
    "preprocess",
    "top_classes",
]

# architecture -> (the attention it uses, a short title)
IMAGENET_MODELS: dict[str, tuple[str, str]] = {
    "ecaresnet26t": ("eca", "ECA-ResNet-26-T"),
    "ecaresnet50d": ("eca", "ECA-ResNet-50-D"),
    "ecaresnet101d": ("eca", "ECA-ResNet-101-D"),
    "eca_nfnet_l0": ("eca", "ECA-NFNet-L0"),
    "seresnet50": ("se", "SE-ResNet-50"),
    "efficientnet_b0": ("se", "EfficientNet-B0"),
    "mobilenetv3_large_100": ("se", "MobileNetV3-Large 1.0"),
    "vit_small_patch16_224": ("token", "ViT-S/16"),
    "deit_small_distilled_patch16_224": ("token", "DeiT-S/16 distilled"),
    "vit_small_r26_s32_224": ("token", "ViT-S hybrid (ResNet-26 stem)"),
    "swin_tiny_patch4_window7_224": ("window", "Swin-T (shifted windows)"),
    "xcit_nano_12_p16_224": ("xcit", "XCiT-N12/16 (cross-covariance attention)"),
}
TOKEN_KIND = "token"  # IMAGENET_MODELS' kind of the transformers: attention over tokens, drawn on the photo
WINDOW_KIND = "window"  # of Swin: attention over the tokens of (shifted) windows, drawn on the photo
XCIT_KIND = "xcit"  # of XCiT: attention over channels, a d x d map per head (the Channel page)
TRANSFORMER_KINDS = (TOKEN_KIND, WINDOW_KIND, XCIT_KIND)  # the whole photo goes in (`preprocess`); maps, not gates
POSITION_KINDS = (TOKEN_KIND, WINDOW_KIND)  # attention over the photo's positions: the Position page draws it
WEIGHTS_ENV = "ATTNVIZ_TIMM_WEIGHTS"
RANDOM_WEIGHTS_SEED = 0  # untrained weights: timm's initialisation from this seed (`load_imagenet_model`)
_SUFFIXES = (".safetensors", ".pth", ".bin")
_HUB = ("huggingface.co", 443)


class ImageNetWeightsError(CheckpointError):
    """A local weights file for a timm classifier that cannot be read or does not fit its architecture."""


@dataclass(frozen=True)
class ClassifierWeights:
    """Where a classifier's weights came from: "file", "hub" or "random", and a sentence for the user."""

    origin: str
    description: str

    @property
    def trained(self) -> bool:
        return self.origin != "random"


def find_weights_file(arch: str, folder: str | Path | None) -> Path | None:
    """The weights file for `arch` in `folder` (see the module docstring), or None."""
    if not folder:
        return None
    folder = Path(folder)
    candidates = [folder / f"{arch}{suffix}" for suffix in _SUFFIXES]
    candidates += [folder / arch / name for name in ("model.safetensors", "pytorch_model.bin")]
    return next((path for path in candidates if path.is_file()), None)


_reachable: dict[str, tuple[float, bool]] = {}


def hub_reachable(timeout: float = 3.0, max_age_s: float = 300.0) -> bool:
    """Whether the model hub answers a TCP connection within `timeout` seconds, name lookup included
    (remembered for `max_age_s`); False when HF_HUB_OFFLINE."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    checked = _reachable.get("hub")
    if checked and time.monotonic() - checked[0] < max_age_s:
        return checked[1]
    answer: list[bool] = []
    # the name lookup (getaddrinfo) has no timeout of its own: the whole probe runs in a daemon thread,
    # and an answer that has not come within `timeout` is a no (the thread ends on its own later)
    probe = threading.Thread(target=_probe, args=(_HUB, timeout, answer), daemon=True, name="attnviz-hub-probe")
    probe.start()
    probe.join(timeout)
    ok = bool(answer and answer[0])
    _reachable["hub"] = (time.monotonic(), ok)
    return ok


def _probe(address: tuple[str, int], timeout: float, answer: list[bool]) -> None:
    try:
        with socket.create_connection(address, timeout=timeout):
            answer.append(True)
    except Exception:  # noqa: BLE001 - OSError, or an odd host name (UnicodeError): not reachable
        answer.append(False)


def load_imagenet_model(
    arch: str, weights_folder: str | Path | None = None, allow_download: bool = True
) -> tuple[torch.nn.Module, ClassifierWeights]:
    """(model in eval mode, where its weights came from) for one of IMAGENET_MODELS."""
    import timm

    if arch not in IMAGENET_MODELS:
        raise ValueError(f"unknown ImageNet model {arch!r}; known: {', '.join(IMAGENET_MODELS)}")
    folder = weights_folder if weights_folder is not None else os.environ.get(WEIGHTS_ENV)
    path = find_weights_file(arch, folder)
    if path is not None:
        model = _model_from_file(timm, arch, path)
        return model.eval(), ClassifierWeights("file", f"ImageNet weights from the local file {path.name}")
    if allow_download and hub_reachable():
        try:
            model = timm.create_model(arch, pretrained=True)
            return model.eval(), ClassifierWeights("hub", "timm's ImageNet weights (downloaded from the hub)")
        except Exception:  # noqa: BLE001 - any hub or file error falls back to random weights, said so below
            pass
    with torch.random.fork_rng(devices=[]):  # the same untrained network in every process (links, classrooms)
        torch.manual_seed(RANDOM_WEIGHTS_SEED)
        model = timm.create_model(arch, pretrained=False)
    where = f"${WEIGHTS_ENV}" + (f" ({folder})" if folder else " (not set)")
    return model.eval(), ClassifierWeights(
        "random",
        f"random weights: the hub cannot be reached and {where} has no {arch} file, so the "
        + ("attention maps" if IMAGENET_MODELS[arch][0] in TRANSFORMER_KINDS else "channel weights")
        + f" below are those of an untrained network (timm's initialisation from seed {RANDOM_WEIGHTS_SEED},"
        + " the same in every process)",
    )


def _model_from_file(timm, arch: str, path: Path) -> torch.nn.Module:
    """timm's `arch` with the weights in `path`; ImageNetWeightsError, one message, when they cannot be."""
    from attnviz.models.user import UserModelError, read_state_dict

    where = f"{path.parent.name}/{path.name}" if path.name in ("model.safetensors", "pytorch_model.bin") else path.name
    try:
        state = read_state_dict(path)
    except UserModelError as error:
        raise ImageNetWeightsError(f"weights for {arch}: {error}".replace(f" {path.name} ", f" {where} ", 1)) from None
    try:
        model = timm.create_model(arch, pretrained=True, pretrained_cfg_overlay=dict(state_dict=state))
    except Exception as error:  # noqa: BLE001 - timm's load_state_dict raises RuntimeError listing every key
        expected = timm.create_model(arch, pretrained=False).state_dict()
        message = state_dict_mismatch(f"{where} does not fit {arch}:", expected, state)
        if message is None:  # the keys fit: something else in timm's loading failed
            lines = str(error).strip().splitlines()
            message = f"{where} could not be loaded into {arch} ({type(error).__name__}: {lines[0] if lines else ''})"
        raise ImageNetWeightsError(message) from None
    for config in (getattr(model, "pretrained_cfg", None), getattr(model, "default_cfg", None)):
        if isinstance(config, dict):
            config.pop("state_dict", None)  # the model keeps its config: not a second copy of the weights
    return model


def input_side(arch: str) -> int:
    """The side of the square photo timm's `arch` takes (its pretrained config's input size)."""
    import timm

    config = timm.get_pretrained_cfg(arch)
    if config is None:
        raise ValueError(f"timm has no pretrained config for {arch!r}")
    return int(config.input_size[-1])


def preprocess(model: torch.nn.Module, image: np.ndarray, whole_photo: bool = False) -> torch.Tensor:
    """timm's evaluation transform for `model` applied to an RGB uint8 photo: (1, 3, S, S). `whole_photo`: the
    whole photo resized to S x S (timm's interpolation, mean and std) instead of resized and centre-cropped."""
    import timm.data

    config = timm.data.resolve_model_data_config(model)
    if whole_photo:
        config = {**config, "crop_pct": 1.0, "crop_mode": "squash"}  # timm's own "squash": resize to S x S
    transform = timm.data.create_transform(**config, is_training=False)
    return transform(Image.fromarray(np.asarray(image, dtype=np.uint8))).unsqueeze(0)


def top_classes(logits: torch.Tensor, k: int = 5) -> list[tuple[int, str, float]]:
    """The k most probable ImageNet classes of logits (1, 1000): (index, description, probability)."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    probabilities = torch.softmax(logits.float()[0], dim=0)
    values, indices = probabilities.topk(k)
    return [(int(i), info.index_to_description(int(i)), float(v)) for v, i in zip(values, indices)]
