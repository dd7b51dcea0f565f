"""The app's settings, resolved once from the command line and the environment.

`streamlit run app.py -- --checkpoints DIR` (else $ATTNVIZ_CHECKPOINTS, else
the shipped checkpoints/) names the folder the CamVid models come from;
$ATTNVIZ_TIMM_WEIGHTS a folder of timm weights for machines without a hub.

Your own models (`attnviz.models.user`): `-- --model SPEC [--weights FILE]`
(SPEC is `package.module:callable` or `path/to/repo:entry`), or
`-- --models FILE.toml` (one [models.NAME] table per model). Nothing is
imported or run here; a TOML file that does not parse is kept as one message
for the sidebar, and the rest of the app works.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from attnviz.models.checkpoint import DEFAULT_CHECKPOINT_DIR
from attnviz.models.imagenet import WEIGHTS_ENV
from attnviz.models.user import UserModelError, UserModelSpec, load_model_specs, spec_from_command_line

__all__ = ["Settings", "settings"]


@dataclass(frozen=True)
class Settings:
    checkpoint_dir: Path
    imagenet_weights: str  # a folder of timm weights, or "" (the hub)
    user_models: tuple[UserModelSpec, ...] = ()  # --model / --models
    user_models_problem: str = ""  # why --models could not be read ("" when it could)

    def user_model(self, name: str) -> UserModelSpec | None:
        return next((spec for spec in self.user_models if spec.name == name), None)


@lru_cache(maxsize=8)
def _resolve(argv: tuple[str, ...], checkpoints_env: str | None, weights_env: str | None) -> Settings:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--checkpoints", type=Path, default=None)
    parser.add_argument("--model", default=None)
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--models", type=Path, default=None)
    known, _ = parser.parse_known_args(list(argv))
    specs, problem = [], ""
    if known.model:
        try:
            specs.append(spec_from_command_line(known.model, known.weights))
        except UserModelError as error:
            problem = f"--model {known.model}: {error}"
    if known.models:
        try:
            specs += load_model_specs(known.models)
        except UserModelError as error:
            problem = f"--models {known.models}: {error}"
    return Settings(
        Path(known.checkpoints or checkpoints_env or DEFAULT_CHECKPOINT_DIR), weights_env or "", tuple(specs), problem
    )


def settings() -> Settings:
    """The settings of this process (computed once for a given command line and environment)."""
    return _resolve(tuple(sys.argv[1:]), os.environ.get("ATTNVIZ_CHECKPOINTS"), os.environ.get(WEIGHTS_ENV))
