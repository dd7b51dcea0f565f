"""Where a model comes from, one interface for all three: a shipped CamVid checkpoint, a timm ImageNet
classifier, or the user's own model (--model / --models).

A `ModelSource` turns a model's name into a loaded model (`load`), and a loaded model and a photo into an
`Analysis` (`analyse`: the entry of attnviz.analysis.forward that fits the model). What it loaded says where
its weights came from (`Weights`); its title, and what the app says while it runs or when it fails, are texts
of the [sources] catalog (attnviz/locales/*/sources.toml), which the source names by their keys (`title_key`,
`running_key`, `failed_key`). The app caches `load` and `analyse` (attnviz.app.resources) and runs a source's
analysis as one job of its work pool (attnviz.app.guards); nothing here knows Streamlit.

A source is a frozen dataclass of what decides which model a name loads (a folder, the --model specs), so
that it is its own cache key: two sources that are equal load the same models.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from attnviz.analysis.forward import Analysis, analyse, analyse_classifier, analyse_user_model
from attnviz.capture.interventions import Intervention
from attnviz.i18n import Phrase
from attnviz.models.checkpoint import CheckpointError, load_checkpoint, weights_path
from attnviz.models.imagenet import IMAGENET_MODELS, RANDOM_WEIGHTS_SEED, TRANSFORMER_KINDS, load_imagenet_model
from attnviz.models.user import UserModelError, UserModelSpec

__all__ = ["Weights", "LoadedModel", "ModelSource", "CamVidSource", "TimmSource", "UserSource", "SOURCE_KEYS"]


@dataclass(frozen=True)
class Weights:
    """Where a loaded model's weights came from (a catalog phrase), and whether they were learned (False: a
    classifier on random weights, when neither a file nor the hub had them)."""

    phrase: Phrase
    trained: bool = True


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A model as its source loaded it: what its `analyse` runs (an nn.Module, or a UserModel), and its weights."""

    model: Any
    weights: Weights


class ModelSource(ABC):
    """One place models come from; see the module docstring."""

    key: ClassVar[str]  # the stable option key: the sidebar's radio, the link's ?source=, Selection.source
    failures: ClassVar[tuple[type[BaseException], ...]]  # what `load` or `analyse` raise that is one message

    @property
    def title_key(self) -> str:
        """The catalog key of the source's name in the sidebar."""
        return f"sources.{self.key}"

    @property
    def running_key(self) -> str:
        """The catalog key of what the page says while the source's analysis runs."""
        return f"sources.running_{self.key}"

    @property
    def failed_key(self) -> str:
        """The catalog key of the message when a model cannot be loaded or run ({model}, {error}: `failure`)."""
        return f"sources.failed_{self.key}"

    @abstractmethod
    def load(self, name: str, device: str) -> LoadedModel:
        """Model `name` in eval mode on `device`."""

    @abstractmethod
    def analyse(self, model: Any, image: np.ndarray, name: str, intervention: Intervention | None = None) -> Analysis:
        """One forward pass with capture of `model` (a LoadedModel's model) on `image` (H, W, 3 uint8), with
        `intervention`'s modules switched off or flattened when one is given (attnviz.capture.interventions)."""

    def failure(self, error: BaseException) -> str:
        """What went wrong, for the message `sources.failed_<key>`."""
        return str(error)


@dataclass(frozen=True)
class CamVidSource(ModelSource):
    """Our segmentation models: the checkpoints of `directory` (attnviz.models.checkpoint)."""

    directory: Path
    key: ClassVar[str] = "camvid"
    failures: ClassVar[tuple[type[BaseException], ...]] = (CheckpointError,)

    def load(self, name: str, device: str) -> LoadedModel:
        model, card = load_checkpoint(name, self.directory, device=device)
        return LoadedModel(
            model, Weights(Phrase.of("sources.weights_checkpoint", file=weights_path(card, name, self.directory).name))
        )

    def analyse(self, model: Any, image: np.ndarray, name: str, intervention: Intervention | None = None) -> Analysis:
        return analyse(model, image, name, intervention=intervention)


@dataclass(frozen=True)
class TimmSource(ModelSource):
    """An ImageNet classifier from timm (attnviz.models.imagenet): its weights from `weights_folder`, else the hub
    ("" : the hub only), else random."""

    weights_folder: str
    key: ClassVar[str] = "timm"
    failures: ClassVar[tuple[type[BaseException], ...]] = (CheckpointError,)  # weights that do not fit or read

    def load(self, name: str, device: str) -> LoadedModel:
        model, weights = load_imagenet_model(name, self.weights_folder or None)
        transformer = IMAGENET_MODELS[name][0] in TRANSFORMER_KINDS
        maps = "_tokens" if weights.origin == "random" and transformer else ""  # attention maps, not gates
        said = Phrase.of(f"sources.weights_{weights.origin}{maps}", seed=RANDOM_WEIGHTS_SEED)
        return LoadedModel(model.to(device), Weights(said, weights.trained))

    def analyse(self, model: Any, image: np.ndarray, name: str, intervention: Intervention | None = None) -> Analysis:
        return analyse_classifier(model, image, name, intervention=intervention)


@dataclass(frozen=True)
class UserSource(ModelSource):
    """The user's models (attnviz.models.user), one per spec given with --model or --models."""

    specs: tuple[UserModelSpec, ...]
    key: ClassVar[str] = "user"
    failures: ClassVar[tuple[type[BaseException], ...]] = (Exception,)  # the user's own code may raise anything

    def load(self, name: str, device: str) -> LoadedModel:
        spec = next((spec for spec in self.specs if spec.name == name), None)
        if spec is None:
            raise UserModelError(f"no model named {name!r} was given with --model or --models")
        model = spec.load(device)
        phrase = (
            Phrase.of("sources.weights_user", name=model.weights.name)
            if model.weights
            else Phrase.of("sources.weights_none")
        )
        return LoadedModel(model, Weights(phrase))

    def analyse(self, model: Any, image: np.ndarray, name: str, intervention: Intervention | None = None) -> Analysis:
        return analyse_user_model(model, image, name, intervention=intervention)

    def failure(self, error: BaseException) -> str:
        """Our own UserModelError says what went wrong; anything else came from the user's code: its type too."""
        return str(error) if isinstance(error, UserModelError) else f"{type(error).__name__}: {error}"


SOURCE_KEYS = tuple(source.key for source in (CamVidSource, TimmSource, UserSource))
