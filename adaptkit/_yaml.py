"""Read YAML with the fast C loader when PyYAML has it."""

from __future__ import annotations

from pathlib import Path

import yaml

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(path: Path):
    """Parse one YAML file from disk."""
    with open(path, encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_Loader)


def loads_yaml(text: str):
    """Parse YAML text."""
    return yaml.load(text, Loader=_Loader)
