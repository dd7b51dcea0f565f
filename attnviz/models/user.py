"""Load a model you wrote: a factory in your own package, or a folder with a `hubconf.py`, plus weights.

SPEC names where the model comes from:

    package.module:callable   imported from the current working folder (put on sys.path for the
                              import and the call), and called with no arguments
    path/to/repo:entry        a folder holding a hubconf.py (the PyTorch Hub convention), loaded with
                              torch.hub.load(repo, entry, source="local"): no network

The two are told apart by whether the part before the last ':' is an existing folder with a
hubconf.py. Either must give a torch.nn.Module. A factory's module is imported once per process
(Python's import cache): edits to it show after a restart; a hubconf.py is read afresh each time. A factory or a
hubconf runs your own code, as
torch.hub does; a weights file never runs code:

    .safetensors              safetensors.torch.load_file
    .pt / .pth / .bin         torch.load(..., weights_only=True): tensors and plain containers only

A checkpoint may wrap its state dict as {"state_dict": ...}, {"model_state_dict": ...},
{"model_state": ...}, {"model": ...} or {"net": ...} (the first of these keys that holds a dict
of tensors wins, nesting allowed), and its keys may carry the `module.` prefix of DataParallel /
DistributedDataParallel or torch.compile's `_orig_mod.`, stripped only when every key has it. The
weights are then loaded with strict=True; keys that do not fit give one message naming them.

The task is read from what the model returns for one dummy photo of `input_size` (default
224x224): (B, K, H, W) is segmentation (H, W may be smaller than the input), (B, K) is
classification. Other outputs are unwrapped by one rule, also applied by `UserModel.forward_logits`:
a dict gives its "out" entry (torchvision's segmentation models return {"out", "aux"}), else its
"logits" entry; a tuple or list gives its first tensor. Anything else is refused, naming what
came out.

Inputs: the model is fed RGB in [0, 1], as attnviz's own models are; when `mean` / `std` are given,
`forward_logits` normalises with them first ((x - mean) / std).

Several models at once: a TOML file (`load_model_specs`), one table per model under [models]:

    [models.my-danet]
    factory = "mynet.models:build"         # or: hub = "path/to/repo:entry"
    weights = "weights/danet.safetensors"  # optional
    input_size = [360, 480]                # optional: [height, width]
    mean = [0.485, 0.456, 0.406]           # optional: 3 numbers
    std = [0.229, 0.224, 0.225]            # optional: 3 positive numbers
    classes = "classes.txt"                # optional: a text file, one class name a line

Relative paths (weights, classes, a hub folder) are read from the TOML file's folder, and factory
modules are imported from that folder (then the current working folder).
"""

from __future__ import annotations

import importlib
import math
import os
import re
import sys
import threading
import tomllib
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from attnviz.models.checkpoint import state_dict_mismatch

__all__ = [
    "UserModelError",
    "UserModel",
    "UserModelSpec",
    "load_user_model",
    "load_model_specs",
    "spec_from_command_line",
    "read_state_dict",
    "unwrap_output",
    "load_weights_strict",
    "DEFAULT_INPUT_SIZE",
    "WEIGHTS_SUFFIXES",
    "STATE_DICT_KEYS",
]

DEFAULT_INPUT_SIZE = (224, 224)
WEIGHTS_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")
STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model_state", "model", "net")
_PREFIXES = ("module.", "_orig_mod.")
_TOML_KEYS = ("factory", "hub", "weights", "input_size", "mean", "std", "classes")
_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_PATH_LOCK = threading.RLock()  # re-entrant: a factory may load another user model


class UserModelError(ValueError):
    """A user model that cannot be loaded or run; the message says what failed, in one place."""


def _describe(error: BaseException) -> str:
    """'Type: first line of the message' (never a traceback)."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


# -- weights -------------------------------------------------------------------------------------------


def _is_state_dict(value: Any) -> bool:
    return (
        isinstance(value, Mapping)
        and bool(value)
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())
    )


def _unwrap_state(obj: Any, name: str) -> dict[str, torch.Tensor]:
    seen = []
    for _ in range(4):  # {"model": {"state_dict": ...}} at most a few levels deep
        if _is_state_dict(obj):
            return dict(obj)
        if not isinstance(obj, Mapping):
            break
        key = next((k for k in STATE_DICT_KEYS if isinstance(obj.get(k), Mapping)), None)
        if key is None:
            break
        seen.append(key)
        obj = obj[key]
    if isinstance(obj, Mapping):
        keys = list(obj)
        bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
        where = "".join(f"[{k!r}]" for k in seen)
        if not keys:
            raise UserModelError(f"{name}{where} is empty: no weights in it")
        raise UserModelError(
            f"{name}{where} is not a state dict of tensors: {len(bad)} of its {len(keys)} entries are not tensors "
            f"(e.g. {', '.join(map(repr, bad[:5]))}); a checkpoint should hold the state dict itself or under one of "
            f"{', '.join(STATE_DICT_KEYS)}"
        )
    raise UserModelError(f"{name} holds {type(obj).__name__}, not a state dict of tensors")


def _strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    changed = True
    while changed and state:
        changed = False
        for prefix in _PREFIXES:
            if all(k.startswith(prefix) for k in state):
                state = {k[len(prefix) :]: v for k, v in state.items()}
                changed = True
    return state


def _torch_load(path: Path) -> Any:
    with path.open("rb") as file:
        head = file.read(8)
    # torch.save writes a zip archive (PK..) or, in the legacy format, a pickle (protocol byte 0x80)
    if not (head.startswith(b"PK\x03\x04") or head.startswith(b"\x80")):
        shown = "an empty file" if not head else f"a file starting with {head!r}"
        raise UserModelError(
            f"{path.name} is not a PyTorch weights file (torch.save writes a zip archive): it is {shown}"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch raises many types; all become one message
        text = str(error)
        if "Weights only load failed" in text:
            # torch's message suggests another way to load; name only the object the file asked for
            detail = next((line.strip() for line in text.splitlines() if "GLOBAL" in line or "Unsupported" in line), "")
            raise UserModelError(
                f"{path.name} holds pickled Python objects, not only tensors"
                + (f" ({detail.rstrip('.')})" if detail else "")
                + ": attnviz reads .pt/.pth/.bin files with torch.load(weights_only=True) and never runs code "
                "from a weights file. Save the state dict (torch.save(model.state_dict(), path)) or a "
                ".safetensors file instead"
            ) from None
        raise UserModelError(f"{path.name} could not be read as PyTorch weights ({_describe(error)})") from None


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict in a weights file (CPU tensors), unwrapped and without a DataParallel prefix.

    Never unpickles code: .safetensors via safetensors, .pt/.pth/.bin via torch.load(weights_only=True).
    UserModelError, one message, for a missing, unreadable or unsupported file.
    """
    path = Path(path)
    if path.suffix.lower() not in WEIGHTS_SUFFIXES:
        raise UserModelError(f"weights file {path.name}: the name must end in one of {', '.join(WEIGHTS_SUFFIXES)}")
    if not path.is_file():
        raise UserModelError(f"weights file {path} does not exist")
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        try:
            obj = load_file(str(path), device="cpu")
        except Exception as error:  # noqa: BLE001 - safetensors raises its own error types
            raise UserModelError(f"{path.name} is not a readable safetensors file ({_describe(error)})") from None
    else:
        obj = _torch_load(path)
    return _strip_prefixes(_unwrap_state(obj, path.name))


def load_weights_strict(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """model.load_state_dict(state, strict=True), with one message naming the keys that do not fit."""
    problem = state_dict_mismatch(f"{source} does not fit the model:", model.state_dict(), state)
    if problem:
        raise UserModelError(problem)
    try:
        model.load_state_dict(state, strict=True)
    except Exception as error:  # noqa: BLE001 - e.g. a custom _load_from_state_dict that refuses
        raise UserModelError(f"loading {source} into the model failed ({_describe(error)})") from None


# -- building the model ----------------------------------------------------------------------------------


@contextmanager
def _on_sys_path(folders: Sequence[Path]):
    """`folders` at the front of sys.path (those not already on it) for the block; removed afterwards."""
    with _PATH_LOCK:
        added = []
        for folder in folders:
            entry = str(folder)
            if entry not in sys.path and entry not in added:
                added.append(entry)
        sys.path[:0] = added
        try:
            yield
        finally:
            for entry in added:
                try:
                    sys.path.remove(entry)
                except ValueError:
                    pass


def _parse_spec(spec: str) -> tuple[str, str, str]:
    """("hub" | "factory", the part before the last ':', the part after)."""
    if not isinstance(spec, str) or ":" not in spec:
        raise UserModelError(
            f"model spec {spec!r} must be 'package.module:callable' or 'path/to/repo:entry' "
            "(a folder with a hubconf.py)"
        )
    target, _, attr = spec.rpartition(":")
    if not target or not attr:
        raise UserModelError(
            f"model spec {spec!r} must name both sides of the ':' ('package.module:callable' or 'path/to/repo:entry')"
        )
    folder = Path(target).expanduser()
    if folder.is_dir() and (folder / "hubconf.py").is_file():
        return "hub", str(folder), attr
    if not _DOTTED.match(target) or not _DOTTED.match(attr):
        hint = (
            f"; the folder {target} has no hubconf.py"
            if folder.is_dir()
            else ""
            if _DOTTED.match(target)
            else f"; {target!r} is neither a module name nor a folder"
        )
        raise UserModelError(
            f"model spec {spec!r} is not 'package.module:callable' (dotted Python names) nor 'path/to/repo:entry'{hint}"
        )
    return "factory", target, attr


def _from_factory(module_name: str, attr: str, spec: str, folders: Sequence[Path]) -> Any:
    with _on_sys_path(folders):
        importlib.invalidate_caches()  # files written since the last import are found
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name and (module_name == error.name or module_name.startswith(error.name + ".")):
                raise UserModelError(
                    f"model spec {spec!r}: no module {error.name!r} importable from "
                    f"{', '.join(map(str, folders))} or sys.path"
                ) from None
            raise UserModelError(
                f"model spec {spec!r}: importing {module_name!r} failed ({_describe(error)})"
            ) from None
        except Exception as error:  # noqa: BLE001 - the user's module may raise anything while importing
            raise UserModelError(
                f"model spec {spec!r}: importing {module_name!r} failed ({_describe(error)})"
            ) from None
        factory: Any = module
        for part in attr.split("."):
            if not hasattr(factory, part):
                raise UserModelError(f"model spec {spec!r}: module {module_name!r} has no attribute {attr!r}")
            factory = getattr(factory, part)
        if not callable(factory):
            raise UserModelError(
                f"model spec {spec!r}: {module_name}.{attr} is a {type(factory).__name__}, not a callable"
            )
        try:
            return factory()
        except Exception as error:  # noqa: BLE001 - the user's factory may raise anything
            raise UserModelError(
                f"model spec {spec!r}: calling {module_name}.{attr}() failed ({_describe(error)})"
            ) from None


def _hub_entries(repo: str) -> str:
    """The public callables of a hubconf.py, as torch.hub.list names them (it reads only GitHub repos)."""
    import importlib.util

    try:
        with _on_sys_path([Path(repo)]):
            spec = importlib.util.spec_from_file_location("hubconf", Path(repo) / "hubconf.py")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
    except Exception:  # noqa: BLE001 - it loaded a moment ago; a second failure leaves the list out
        return "?"
    return ", ".join(n for n in dir(module) if callable(getattr(module, n)) and not n.startswith("_")) or "none"


def _from_hub(repo: str, entry: str, spec: str) -> Any:
    try:
        return torch.hub.load(repo, entry, source="local")
    except Exception as error:  # noqa: BLE001 - the hubconf or its entry may raise anything
        if isinstance(error, RuntimeError) and str(error).startswith("Cannot find callable"):
            raise UserModelError(
                f"model spec {spec!r}: {Path(repo) / 'hubconf.py'} has no entry {entry!r} "
                f"(its entries: {_hub_entries(repo)})"
            ) from None
        raise UserModelError(
            f"model spec {spec!r}: torch.hub.load of entry {entry!r} from {repo} failed ({_describe(error)})"
        ) from None


# -- the output -------------------------------------------------------------------------------------------


def _shape(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    if isinstance(value, Mapping):
        return f"a dict with keys {', '.join(map(repr, list(value)[:8]))}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)} ({', '.join(type(v).__name__ for v in value[:5])})"
    return f"a {type(value).__name__}"


def unwrap_output(output: Any) -> tuple[torch.Tensor, str]:
    """(the logits in a model's output, the rule that found them): a tensor as it is; a dict's "out", else its
    "logits"; a tuple's or list's first tensor. UserModelError naming what came out otherwise."""
    if isinstance(output, torch.Tensor):
        return output, "tensor"
    if isinstance(output, Mapping):
        for key in ("out", "logits"):
            if isinstance(output.get(key), torch.Tensor):
                return output[key], f'dict["{key}"]'
        raise UserModelError(f"the model returned {_shape(output)}: a dict needs an 'out' or 'logits' tensor")
    if isinstance(output, (tuple, list)):
        for index, value in enumerate(output):
            if isinstance(value, torch.Tensor):
                return value, f"{type(output).__name__}[{index}]"
        raise UserModelError(f"the model returned {_shape(output)} with no tensor in it")
    raise UserModelError(f"the model returned {_shape(output)}, not a tensor")


def _task(logits: torch.Tensor, batch: int) -> str:
    shape = tuple(logits.shape)
    if logits.ndim in (2, 4) and shape[0] == batch and shape[1] >= 1 and logits.is_floating_point():
        return "segmentation" if logits.ndim == 4 else "classification"
    dtype = "" if logits.is_floating_point() else f" of {logits.dtype}"
    raise UserModelError(
        f"the model returned {_shape(logits)}{dtype} for a batch of {batch}: expected float "
        "logits (B, K) for classification or (B, K, H, W) for segmentation"
    )


@dataclass(frozen=True, eq=False)
class UserModel:
    """A user's model in eval mode and what attnviz knows of it.

    task: "segmentation" (logits (B, K, H, W)) or "classification" ((B, K)); num_classes: K;
    output_shape: what the probe at input_size gave; output_rule: how the logits were read ("tensor",
    'dict["out"]', 'dict["logits"]', "tuple[0]", ...); input_size: (H, W) of the probe (the size given, or
    DEFAULT_INPUT_SIZE); mean / std: the normalisation forward_logits applies (None: none, the model gets
    RGB in [0, 1]); classes: class names or None; weights: the file loaded or None.
    """

    name: str
    spec: str
    model: nn.Module
    task: str
    num_classes: int
    output_shape: tuple[int, ...]
    output_rule: str
    input_size: tuple[int, int]
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    classes: tuple[str, ...] | None = None
    weights: Path | None = None
    device: str = "cpu"

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """RGB in [0, 1] (B, 3, H, W) -> what the model takes: (x - mean) / std where they are set."""
        return _normalise(x, self.mean, self.std)

    def forward_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The logits for RGB in [0, 1] (B, 3, H, W): normalised, run, and unwrapped by `unwrap_output`'s rule.
        Gradients follow the caller's grad mode."""
        logits, _ = unwrap_output(self.model(self.normalise(x)))
        return logits


def _normalise(x: torch.Tensor, mean, std) -> torch.Tensor:
    if mean is not None:
        x = x - torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    if std is not None:
        x = x / torch.tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return x


def _triple(value: Any, what: str, positive: bool = False) -> tuple[float, float, float] | None:
    if value is None:
        return None
    problem = _triple_problem(value, positive)
    if problem:
        raise UserModelError(f"{what} {problem}")
    return tuple(float(v) for v in value)


def _triple_problem(value: Any, positive: bool) -> str | None:
    if (
        isinstance(value, (str, bytes))
        or not isinstance(value, Sequence)
        or len(value) != 3
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    ):
        return f"must be 3 numbers (R, G, B), got {value!r}"
    if positive and not all(v > 0 for v in value):
        return f"must be 3 positive numbers, got {value!r}"
    return None


def _size_problem(value: Any) -> str | None:
    if (
        isinstance(value, (str, bytes))
        or not isinstance(value, Sequence)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 8192 for v in value)
    ):
        return f"must be [height, width], two integers from 1 to 8192, got {value!r}"
    return None


def _read_classes(path: Path) -> tuple[str, ...]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserModelError(f"classes file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UserModelError(f"classes file {path} cannot be read as UTF-8 text ({_describe(error)})") from None
    names = tuple(line.strip() for line in text.splitlines() if line.strip())
    if not names:
        raise UserModelError(f"classes file {path} names no class (one name a line)")
    return names


def _classes(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, (str, os.PathLike)):
        return _read_classes(Path(value))
    if isinstance(value, Sequence) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise UserModelError(f"classes must be a text file (one name a line) or a list of names, got {value!r}")


def load_user_model(
    spec: str,
    weights: str | Path | None = None,
    *,
    device: str | torch.device = "cpu",
    input_size: Sequence[int] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    classes: str | Path | Sequence[str] | None = None,
    name: str | None = None,
    import_from: Sequence[str | Path] = (),
) -> UserModel:
    """Build the model SPEC names, load `weights` into it (strict), and read its task from one dummy photo.

    spec: 'package.module:callable' (imported from `import_from` folders, then the current working folder)
    or 'path/to/repo:entry' (a folder with a hubconf.py). classes: a text file (one name a line) or names.
    UserModelError, one message, on any problem.
    """
    kind, target, attr = _parse_spec(spec)
    return _load(
        kind,
        target,
        attr,
        spec,
        weights,
        device=device,
        input_size=input_size,
        mean=mean,
        std=std,
        classes=classes,
        name=name,
        import_from=import_from,
    )


def _load(
    kind: str, target: str, attr: str, spec: str, weights, *, device, input_size, mean, std, classes, name, import_from
) -> UserModel:
    if input_size is not None and _size_problem(input_size):
        raise UserModelError(f"input_size {_size_problem(input_size)}")
    size = tuple(int(v) for v in input_size) if input_size is not None else DEFAULT_INPUT_SIZE
    mean, std = _triple(mean, "mean"), _triple(std, "std", positive=True)
    class_names = _classes(classes)
    state = read_state_dict(weights) if weights is not None else None  # a bad file fails before user code runs

    if kind == "hub":
        model = _from_hub(target, attr, spec)
    else:
        folders = list(dict.fromkeys([Path(f).resolve() for f in import_from] + [Path.cwd()]))
        model = _from_factory(target, attr, spec, folders)
    if not isinstance(model, nn.Module):
        raise UserModelError(f"model spec {spec!r} gave {_shape(model)}, not a torch.nn.Module")
    if state is not None:
        load_weights_strict(model, state, Path(weights).name)
    try:
        model = model.to(device).eval()
    except Exception as error:  # noqa: BLE001 - e.g. no such device
        raise UserModelError(f"moving the model to {device!r} failed ({_describe(error)})") from None

    probe = torch.full((1, 3, *size), 0.5, device=device)
    try:
        with torch.no_grad():
            output = model(_normalise(probe, mean, std))
    except Exception as error:  # noqa: BLE001 - the user's forward may raise anything
        raise UserModelError(
            f"running {spec!r} on a dummy photo (1, 3, {size[0]}, {size[1]}) failed "
            f"({_describe(error)}); set input_size if it needs another size"
        ) from None
    logits, rule = unwrap_output(output)
    task = _task(logits, 1)
    if class_names is not None and len(class_names) != logits.shape[1]:
        raise UserModelError(f"{len(class_names)} class names given but the model outputs {logits.shape[1]} classes")
    return UserModel(
        name=name or attr,
        spec=spec,
        model=model,
        task=task,
        num_classes=int(logits.shape[1]),
        output_shape=tuple(logits.shape),
        output_rule=rule,
        input_size=size,
        mean=mean,
        std=std,
        classes=class_names,
        weights=Path(weights) if weights is not None else None,
        device=str(device),
    )


# -- several models: a TOML file --------------------------------------------------------------------------


@dataclass(frozen=True)
class UserModelSpec:
    """One [models.NAME] table of a models TOML file, checked and with its paths made absolute.

    kind: "factory" or "hub"; target: the module name or the hub folder; entry: the callable or hub entry;
    source: the TOML file; classes: the names read from its classes file."""

    name: str
    kind: str
    target: str
    entry: str
    source: Path
    weights: Path | None = None
    input_size: tuple[int, int] | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    classes: tuple[str, ...] | None = None

    @property
    def spec(self) -> str:
        return f"{self.target}:{self.entry}"

    def load(self, device: str | torch.device = "cpu") -> UserModel:
        """load_user_model for this table (factory modules imported from the TOML file's folder, then cwd)."""
        return _load(
            self.kind,
            self.target,
            self.entry,
            self.spec,
            self.weights,
            device=device,
            input_size=self.input_size,
            mean=self.mean,
            std=self.std,
            classes=self.classes,
            name=self.name,
            import_from=[self.source.parent],
        )


def spec_from_command_line(spec: str, weights: str | Path | None = None) -> UserModelSpec:
    """The UserModelSpec of `--model SPEC [--weights FILE]` (named after the callable or hub entry).

    Only the SPEC's shape is checked here; nothing is imported or run until `.load()`. A relative hub
    folder or weights file is taken from the current working folder, as the command line means it.
    """
    kind, target, attr = _parse_spec(spec)
    cwd = Path.cwd()
    if kind == "hub":
        target = str(Path(target).expanduser().resolve())
    return UserModelSpec(
        name=attr,
        kind=kind,
        target=target,
        entry=attr,
        source=cwd / "command-line",
        weights=(cwd / Path(weights).expanduser()) if weights is not None else None,
    )


def _spec_from_table(name: str, table: Any, source: Path, problems: list[str]) -> UserModelSpec | None:
    where, folder = f"[models.{name}]", source.parent
    start = len(problems)
    if not isinstance(table, dict):
        problems.append(f"{where} must be a table, got {type(table).__name__}")
        return None
    unknown = [k for k in table if k not in _TOML_KEYS]
    if unknown:
        problems.append(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; known: {', '.join(_TOML_KEYS)}")
    kind = target = entry = None
    sources = [k for k in ("factory", "hub") if k in table]
    if len(sources) != 1:
        problems.append(
            f"{where} needs exactly one of 'factory' (\"package.module:callable\") or 'hub' "
            f'("path/to/repo:entry"), got {len(sources) or "neither"}'
        )
    else:
        kind, value = sources[0], table[sources[0]]
        if not isinstance(value, str) or ":" not in value or value.startswith(":") or value.endswith(":"):
            problems.append(
                f"{where}: '{kind}' must be a string "
                f"{'package.module:callable' if kind == 'factory' else 'path/to/repo:entry'}, "
                f"got {value!r}"
            )
        else:
            target, _, entry = value.rpartition(":")
            if kind == "factory" and not (_DOTTED.match(target) and _DOTTED.match(entry)):
                problems.append(
                    f"{where}: 'factory' must be package.module:callable (dotted Python names), got {value!r}"
                )
            elif kind == "hub":
                repo = (folder / Path(target).expanduser()).resolve()
                if not (repo / "hubconf.py").is_file():
                    problems.append(
                        f"{where}: 'hub' folder {repo} " + ("has no hubconf.py" if repo.is_dir() else "does not exist")
                    )
                target = str(repo)

    def path_of(key: str) -> Path | None:
        value = table.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            problems.append(f"{where}: '{key}' must be a file path (a string), got {value!r}")
            return None
        return (folder / Path(value).expanduser()).resolve()

    weights = path_of("weights")
    if weights is not None:
        if weights.suffix.lower() not in WEIGHTS_SUFFIXES:
            problems.append(f"{where}: 'weights' {weights.name} must end in one of {', '.join(WEIGHTS_SUFFIXES)}")
        elif not weights.is_file():
            problems.append(f"{where}: 'weights' file {weights} does not exist")
    input_size = table.get("input_size")
    if input_size is not None and _size_problem(input_size):
        problems.append(f"{where}: 'input_size' {_size_problem(input_size)}")
    triples = {}
    for key in ("mean", "std"):
        value = table.get(key)
        if value is not None and _triple_problem(value, positive=key == "std"):
            problems.append(f"{where}: '{key}' {_triple_problem(value, positive=key == 'std')}")
        triples[key] = value
    classes = None
    classes_path = path_of("classes")
    if classes_path is not None:
        try:
            classes = _read_classes(classes_path)
        except UserModelError as error:
            problems.append(f"{where}: {error}")
    if len(problems) > start:
        return None
    return UserModelSpec(
        name=name,
        kind=kind,
        target=target,
        entry=entry,
        source=source,
        weights=weights,
        input_size=tuple(input_size) if input_size is not None else None,
        mean=tuple(map(float, triples["mean"])) if triples["mean"] is not None else None,
        std=tuple(map(float, triples["std"])) if triples["std"] is not None else None,
        classes=classes,
    )


def load_model_specs(path: str | Path) -> list[UserModelSpec]:
    """The [models.NAME] tables of a TOML file, in file order, checked (see the module docstring).

    UserModelError listing every problem, one line each, when any table is wrong; nothing is imported or run.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserModelError(f"models file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise UserModelError(f"models file {path.name} is not valid TOML ({_describe(error)})") from None
    models = data.get("models")
    problems: list[str] = []
    other = [k for k in data if k != "models"]
    if other:
        problems.append(f"unknown top-level key(s) {', '.join(map(repr, other))}: each model is a [models.NAME] table")
    if not isinstance(models, dict) or not models:
        problems.append(
            'no [models.NAME] table: each model is one, e.g. [models.mine] with factory = "package.module:callable"'
        )
        models = {}
    specs = []
    for name, table in models.items():
        spec = _spec_from_table(name, table, path.resolve(), problems)
        if spec is not None:
            specs.append(spec)
    if problems:
        heading = f"{path.name}: {len(problems)} problem{'s' if len(problems) > 1 else ''}:"
        raise UserModelError("\n".join([heading] + [f"  {p}" for p in problems]))
    return specs
