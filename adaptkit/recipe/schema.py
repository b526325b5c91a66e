"""The recipe schema: one variant per method, each owned by its definition in adaptkit/methods, chosen by `method`.
Every variant is strict (unknown keys fail) with a description on every field; `load.validate` reads it."""

from __future__ import annotations

from adaptkit.methods.base import EMBEDDED, RecipeBase, fill

Recipe = RecipeBase  # the type every recipe variant shares

__all__ = ["EMBEDDED", "Recipe", "fill"]
