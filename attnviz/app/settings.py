"""The app's settings, resolved once from the command line and the environment.

`streamlit run app.py -- --checkpoints DIR` (else $ATTNVIZ_CHECKPOINTS, else
the shipped checkpoints/) names the folder the CamVid models come from;
$ATTNVIZ_IMAGENET_WEIGHTS a folder of timm weights for machines without a hub.
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

__all__ = ["Settings", "settings"]


@dataclass(frozen=True)
class Settings:
    checkpoint_dir: Path
    imagenet_weights: str      # a folder of timm weights, or "" (the hub)


@lru_cache(maxsize=8)
def _resolve(argv: tuple[str, ...], checkpoints_env: str | None, weights_env: str | None) -> Settings:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--checkpoints", type=Path, default=None)
    known, _ = parser.parse_known_args(list(argv))
    return Settings(Path(known.checkpoints or checkpoints_env or DEFAULT_CHECKPOINT_DIR), weights_env or "")


def settings() -> Settings:
    """The settings of this process (computed once for a given command line and environment)."""
    return _resolve(tuple(sys.argv[1:]), os.environ.get("ATTNVIZ_CHECKPOINTS"), os.environ.get(WEIGHTS_ENV))
