"""Run a model once on a photo and keep what the pages need; helpers on the result.

No Streamlit here: the app caches `analyse(...)` per (image, model), and a
click only calls the cheap helpers (one row or column of S, one pixel lookup).
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, replace

import numpy as np
import torch

from attnviz.analysis import geometry
from attnviz.capture import capture, families
from attnviz.capture.interventions import Intervention, intervened
from attnviz.capture.recorder import split_name
from attnviz.capture.records import (
    BranchWeightRecord,
    ChannelAttentionRecord,
    ChannelMapRecord,
    CoordinateAttentionRecord,
    GateRecord,
    PositionAttentionRecord,
    Record,
    SpatialAttentionRecord,
    SpatialMap,
    of_type,
)
from attnviz.data.camvid import IGNORE_INDEX, NUM_CLASSES
from attnviz.data.transforms import to_float_image
from attnviz.i18n import Phrase

__all__ = [
    "Analysis",
    "Check",
    "record_type",
    "analyse",
    "analyse_classifier",
    "analyse_user_model",
    "image_to_tensor",
    "pick_device",
    "feature_index",
    "feature_centre",
    "click_to_image_point",
    "parse_image_point",
    "mean_weight_spread",
    "classes_present",
    "class_fractions",
    "class_shares",
    "attention_share_on_class",
    "own_class_ratio",
    "top_locations",
]


def pick_device(name: str = "auto") -> torch.device:
    """ "auto": the GPU when there is one, else the CPU; any other name as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def image_to_tensor(image: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, H, W) float in [0, 1]."""
    # np.array copies: decoded images may be read-only, which torch.from_numpy warns about
    return to_float_image(torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)[None]).to(device)


@dataclass(frozen=True)
class Check:
    """One attention module attnviz found in a user's model, as the Overview lists it (`Analysis.checks`)."""

    name: str  # the record's name ("layer3.attn", "attn:head0"), or the module's path
    reader: str  # who found it (attnviz.capture.readers): "own", "library", "structure", "dataflow"
    family: str  # by structure: the family ("pam", "se"); own and library: the record's kind ("eca");
    #                          dataflow: the record's type, a key of overview.records ("gate", "branch_weight"),
    #                          said in the page's language (attnviz.analysis.views.findings_rows); "–" if not drawn
    drawn: bool  # drawn on the pages: every record read (own, library, dataflow); by structure, if verified
    form: str = ""  # by structure: the variant ("embedded", "gaussian")
    max_error: float | None = None  # by structure: the reconstruction error (None: nothing rebuilt)
    map: str = ""  # what its map is over: "45x60", "C = 64", "K = 3, C = 32", "C 16 x H 8 x W 8"
    keys: str = ""  # the grid of the keys where it is not the queries' ("23x30")
    found_by: Phrase | None = None  # dataflow: how it was found, or what was seen and why it is not drawn
    reason: Phrase | None = None  # by structure, not verified: why (attnviz.capture.families' words)


@dataclass
class Analysis:
    """One forward pass of a model on a photo: its output and every attention record (on the CPU).

    A segmentation model gives `prediction` (H, W); an ImageNet classifier gives `top_classes`
    [(index, description, probability)] instead, and its records are of the photo as timm preprocessed it.
    """

    model_name: str
    device: str
    image: np.ndarray  # (H, W, 3) uint8
    prediction: np.ndarray | None  # (H, W) uint8 class indices (segmentation models)
    records: dict[str, Record]
    forward_s: float
    top_classes: list[tuple[int, str, float]] | None = None  # (ImageNet classifiers, user classifiers)
    class_names: tuple[str, ...] | None = None  # a user model's classes (None: CamVid's, or not given)
    checks: list[Check] | None = None  # user models: every module found, drawn or not, by every reader
    lookalikes: list[str] | None = None  # user models: "path (Class)" of modules that look like attention, no family
    intervention: Intervention | None = None  # the modules switched in this pass (None: the model as it is)

    def of_type(self, record_type) -> dict[str, Record]:
        return of_type(self.records, record_type)

    def channel_layers(self, kinds: tuple[str, ...] | None = None) -> dict[str, ChannelAttentionRecord]:
        return {k: v for k, v in self.of_type(ChannelAttentionRecord).items() if kinds is None or v.kind in kinds}

    @property
    def position(self) -> tuple[str, PositionAttentionRecord] | None:
        found = self.of_type(PositionAttentionRecord)
        return next(iter(found.items())) if found else None

    @property
    def spatial_attention(self) -> dict[str, Record]:
        """Every spatial self-attention of the pass: DANet / SAGAN / non-local (PositionAttentionRecord),
        criss-cross (CrissCrossAttentionRecord) and GCNet's one map (GlobalContextRecord), by module name; a
        transformer's heads, their means and rollout. Not a map no patch queries (class attention: CLS alone asks,
        `TokenAttentionRecord.prefix_row` reads it): the Position page draws a pixel's row."""
        return {name: r for name, r in self.records.items() if isinstance(r, SpatialMap) and r.num_pixels > 0}

    @property
    def channel_map(self) -> tuple[str, ChannelMapRecord] | None:
        found = self.of_type(ChannelMapRecord)
        return next(iter(found.items())) if found else None

    @property
    def channel_maps(self) -> dict[str, ChannelMapRecord]:
        """Every channel map of the pass (DANet's X; each head of each XCiT layer), by record name."""
        return self.of_type(ChannelMapRecord)

    def view_only(self) -> Analysis:
        """This analysis with only the records the interactive view draws (the spatial maps and X). What a page's
        live part (st.fragment) is given: Streamlit keeps a part's arguments for its session until the next
        whole run, and a part given the whole analysis kept the channel layers' input features alive (54 MB of
        a 768x1024 upload's 61 MB) after the shared cache had dropped them: 200 sessions of which 40 upload
        reached 5.2 GB (python -m attnviz.load_bench, issue 31)."""
        kept = set(self.spatial_attention) | set(self.channel_maps)
        return replace(self, records={name: r for name, r in self.records.items() if name in kept})


@torch.no_grad()
def _captured_forward(
    model: torch.nn.Module, x: torch.Tensor, keep_features: bool, intervention: Intervention | None = None
):
    """(output, every attention record moved to the CPU, seconds, what the readers saw and did not record) of one
    forward pass with capture, with `intervention`'s modules switched (attnviz.capture.interventions) when one
    is given."""
    started = time.perf_counter()
    with capture(model, keep_features=keep_features) as rec, intervened(model, intervention):
        output = model(x)
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - started
    return output, {name: _to_cpu(r) for name, r in rec.records().items()}, elapsed, list(rec.skipped)


def analyse(
    model: torch.nn.Module,
    image: np.ndarray,
    model_name: str = "",
    keep_features: bool = True,
    intervention: Intervention | None = None,
) -> Analysis:
    """One forward pass with capture: prediction and every attention record, moved to the CPU (with
    `intervention`'s modules switched off or flattened, when one is given)."""
    device = next(model.parameters()).device
    logits, records, elapsed, _ = _captured_forward(model, image_to_tensor(image, device), keep_features, intervention)
    prediction = logits.argmax(1)[0].to(torch.uint8).cpu().numpy()
    return Analysis(model_name, str(device), image, prediction, records, elapsed, intervention=intervention)


def analyse_classifier(
    model: torch.nn.Module,
    image: np.ndarray,
    model_name: str = "",
    keep_features: bool = True,
    intervention: Intervention | None = None,
) -> Analysis:
    """One forward pass of a timm ImageNet classifier, with timm's own preprocessing: the top-5 classes
    and every attention record (read through the modules' own gates, or from SDPA's arguments); a transformer
    sees the whole photo resized (attnviz.models.imagenet), so that its patch grid covers the photo; `intervention`
    as for `analyse`."""
    from attnviz.analysis.rollout import with_rollout
    from attnviz.analysis.tokens import with_heads_means
    from attnviz.capture.dataflow import is_attention_call
    from attnviz.models.imagenet import IMAGENET_MODELS, TRANSFORMER_KINDS, preprocess, top_classes

    device = next(model.parameters()).device
    x = preprocess(model, image, whole_photo=IMAGENET_MODELS.get(model_name, ("",))[0] in TRANSFORMER_KINDS).to(device)
    logits, records, elapsed, skipped = _captured_forward(model, x, keep_features, intervention)
    top = top_classes(logits.cpu())
    records = with_heads_means(records)  # each transformer layer's heads, then their mean (attnviz.analysis.tokens)
    if not any(is_attention_call(item.what) for item in skipped):  # rollout over every layer, or none: a layer
        records = with_rollout(records)  # left unread would drop out of the product without a word
    return Analysis(model_name, str(device), image, None, records, elapsed, top, intervention=intervention)


@torch.no_grad()
def analyse_user_model(
    user_model, image: np.ndarray, model_name: str = "", intervention: Intervention | None = None
) -> Analysis:
    """One forward pass of a user's model (`attnviz.models.user.UserModel`) with capture.

    Segmentation models run on the photo at its own size (so that a photo pixel maps to a feature cell as
    for our models), their logits resized to the photo if they come out smaller; classifiers run on the
    photo resized to the model's input size. `checks` lists every attention module found, with its family,
    map size and reconstruction error, drawn or not; only the drawn ones are in `records`. `intervention` as
    for `analyse`.
    """
    x = image_to_tensor(image, user_model.device)
    if user_model.task == "classification":
        x = torch.nn.functional.interpolate(
            x, size=user_model.input_size, mode="bilinear", antialias=True, align_corners=False
        )
    started = time.perf_counter()
    with capture(user_model.model) as rec, intervened(user_model.model, intervention):
        logits = user_model.forward_logits(x)
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - started
    checks = _checks(rec)
    found = {split_name(check.name)[0] for check in checks if check.reader == "dataflow"}
    lookalikes = [
        f"{item.path} ({item.class_name})"
        for item in families.unrecognised_attention(user_model.model)
        if item.path not in found
    ]
    records = {name: _to_cpu(r) for name, r in rec.records().items()}
    names = user_model.classes
    if user_model.task == "classification":
        probabilities = torch.softmax(logits.float()[0], dim=0).cpu()
        values, indices = probabilities.topk(min(5, probabilities.numel()))
        top = [(int(i), names[int(i)] if names else f"class {int(i)}", float(v)) for v, i in zip(values, indices)]
        return Analysis(
            model_name, user_model.device, image, None, records, elapsed, top, names, checks, lookalikes, intervention
        )
    if logits.shape[-2:] != x.shape[-2:]:
        logits = torch.nn.functional.interpolate(
            logits.float(), size=x.shape[-2:], mode="bilinear", align_corners=False
        )
    prediction = logits.argmax(1)[0].cpu().numpy().astype(np.int32)
    return Analysis(
        model_name,
        user_model.device,
        image,
        prediction,
        records,
        elapsed,
        None,
        names,
        checks,
        lookalikes,
        intervention,
    )


def _checks(recorder) -> list[Check]:
    """Every module the readers found in one capture: own and library modules (read, not rebuilt: nothing to
    verify), those recognised by structure, verified or not, then the dataflow reader's records (every kind is
    drawn: spatial maps on the Position page, gates, channel and branch weights on the Overview) and each
    softmax / gate it saw and did not draw."""
    checks = [
        Check(name, r.reader, str(r.kind), True, **_map_size(r))
        for name, r in recorder.items()
        if r.reader in ("own", "library")
    ]
    checks += [
        Check(
            row["name"],
            "structure",
            row["family"],
            row["verified"],
            row["form"],
            row["max_error"],
            reason=row["reason"],
            **_map_size(row["record"]),
        )
        for row in families.verification_table(recorder)
    ]
    checks += [
        Check(name, "dataflow", record_type(type(r)), True, found_by=r.found_by, **_map_size(r))
        for name, r in recorder.items()
        if r.reader == "dataflow"
    ]
    checks += [Check(item.module, "dataflow", "–", False, found_by=item.what) for item in recorder.skipped]
    return checks


def record_type(record_class: type) -> str:
    """The key of a record class in the catalogs' overview.records: BranchWeightRecord -> "branch_weight"."""
    return re.sub(r"(?<=[a-z])(?=[A-Z])", "_", record_class.__name__.removesuffix("Record")).lower()


def _map_size(record: Record | None) -> dict[str, str]:
    """What a record's map is over, as `Check`'s map and keys: "h x w" of a spatial map (and its keys' grid where
    that differs), of a spatial gate or a coordinate pair; the axes of a gate; "C = n" for channel weights,
    "K x C" for branches."""
    if record is None:
        return {}
    if isinstance(record, SpatialMap):
        keys = tuple(record.key_grid)
        own = (record.height, record.width)
        return {"map": f"{own[0]}x{own[1]}", "keys": "" if keys == own else f"{keys[0]}x{keys[1]}"}
    if isinstance(record, SpatialAttentionRecord):
        return {"map": "x".join(str(v) for v in record.map.shape[-2:])}
    if isinstance(record, CoordinateAttentionRecord):
        return {"map": f"{record.height_weights.shape[-1]}x{record.width_weights.shape[-1]}"}
    if isinstance(record, GateRecord):
        return {"map": " x ".join(f"{axis} {size}" for axis, size in zip(record.axes, record.gate.shape[1:]))}
    if isinstance(record, BranchWeightRecord):
        return {"map": f"K = {record.branches}, C = {record.channels}"}
    if isinstance(record, ChannelMapRecord):
        return {"map": f"{record.attention.shape[-1]}x{record.attention.shape[-1]}"}
    if isinstance(record, ChannelAttentionRecord):
        return {"map": f"C = {record.weights.shape[-1]}"}
    return {}


def _to_cpu(record):
    """A copy of `record` with its tensors as float32 on the CPU: its state copied as it is (a part a record
    computes when first read, a token record's log-sum-exps, stays unread)."""
    state = {}
    for name, value in vars(record).items():
        if isinstance(value, torch.Tensor):
            value = value.float().cpu()
        elif isinstance(value, dict):
            value = {k: v.float().cpu() if isinstance(v, torch.Tensor) else v for k, v in value.items()}
        state[name] = value
    copy = object.__new__(type(record))
    copy.__dict__.update(state)
    return copy


# the photo <-> feature grid geometry lives in attnviz.analysis.geometry; these names are kept for the pages
click_to_image_point = geometry.click_to_pixel  # click on the shown photo -> integer pixel (x, y)
parse_image_point = geometry.parse_pixel  # a link's x, y -> integer pixel (x, y)
feature_index = geometry.pixel_cell  # integer pixel (x, y) -> flat cell index
feature_centre = geometry.cell_centre  # flat cell index -> the integer pixel at its middle


def class_fractions(label: np.ndarray, feature_hw: tuple[int, int]) -> np.ndarray:
    """(NUM_CLASSES + 1, h, w): share of each feature cell's image pixels in each class (last: unlabelled).

    A cell's pixels are exactly those `feature_index` maps to it (attnviz.analysis.geometry); values above
    IGNORE_INDEX (or below 0) count as unlabelled. Read-only, and remembered for the last few label maps:
    a click asks for the same photo's shares several times."""
    label = np.ascontiguousarray(label)
    digest = hashlib.blake2b(label.tobytes(), digest_size=16).digest()
    return _class_fractions(digest, label.shape, str(label.dtype), tuple(int(v) for v in feature_hw), label)


_fractions_cache: OrderedDict[tuple, np.ndarray] = OrderedDict()  # (label digest, shape, dtype, grid) -> shares
_fractions_lock = threading.Lock()  # sessions run in threads


def _class_fractions(
    digest: bytes, shape: tuple, dtype: str, feature_hw: tuple[int, int], label: np.ndarray
) -> np.ndarray:
    key = (digest, shape, dtype, feature_hw)
    with _fractions_lock:
        cached = _fractions_cache.get(key)
    if cached is None:
        label = np.asarray(label, dtype=np.int64)
        label = np.where((label < 0) | (label > IGNORE_INDEX), IGNORE_INDEX, label)
        cached = geometry.cell_shares(label, feature_hw, NUM_CLASSES + 1)
        cached.flags.writeable = False
        with _fractions_lock:
            _fractions_cache[key] = cached
            while len(_fractions_cache) > 8:
                _fractions_cache.popitem(last=False)
    return cached


def class_shares(rows: np.ndarray, label: np.ndarray, classes) -> tuple[np.ndarray, np.ndarray]:
    """For rows of S (R, h, w) and one class per row: (share of each row that falls on labelled pixels of
    its class, among the labelled pixels; that class's share of the labelled photo, the chance level)."""
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, *np.shape(rows)[-2:])
    classes = np.asarray(classes, dtype=np.int64).reshape(-1)
    fractions = class_fractions(label, rows.shape[-2:]).reshape(NUM_CLASSES + 1, -1)
    flat = rows.reshape(rows.shape[0], -1)
    on_labelled = flat @ (1.0 - fractions[IGNORE_INDEX])
    on_class = np.einsum("rn,rn->r", flat, fractions[classes])
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(on_labelled > 0, on_class / on_labelled, np.nan)
        counts = np.bincount(label.reshape(-1).astype(np.int64), minlength=NUM_CLASSES + 1)[:NUM_CLASSES]
        chance = counts[classes] / counts.sum() if counts.sum() else np.full(classes.shape, np.nan)
    return share, chance


def attention_share_on_class(attention: np.ndarray, label: np.ndarray, class_id: int) -> tuple[float, float]:
    """(share of the attention that falls on labelled pixels of `class_id`, share of the labelled image
    that is `class_id`). attention: (h, w), one row of S; the second value is the chance level."""
    share, chance = class_shares(attention[None], label, [class_id])
    return float(share[0]), float(chance[0])


def own_class_ratio(rows: np.ndarray, label: np.ndarray, classes) -> np.ndarray:
    """Share of each row of S on its query's class / that class's share of the photo (1.0 = chance)."""
    share, chance = class_shares(rows, label, classes)
    return share / chance


def mean_weight_spread(records) -> float:
    """Mean over channel-attention layers of the standard deviation of their weights (first image)."""
    spreads = [float(r.weights[0].std()) for r in records]
    return float(np.mean(spreads)) if spreads else float("nan")


def classes_present(*label_maps: np.ndarray | None) -> np.ndarray:
    """Sorted class indices that occur in any of the given (H, W) maps (None entries skipped)."""
    return np.unique(np.concatenate([np.asarray(m).ravel() for m in label_maps if m is not None]))


def top_locations(values: np.ndarray, k: int = 5) -> list[int]:
    """Flat indices of the k largest values, largest first."""
    flat = values.reshape(-1)
    k = min(k, flat.size)
    top = np.argpartition(-flat, k - 1)[:k]
    return top[np.argsort(-flat[top])].tolist()
