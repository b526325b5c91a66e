"""The data part of --dry-run for prompt engineering and ICL: the dev and pool rows, the labels, what is compared."""

from __future__ import annotations

from adaptkit.recipe.schema import Recipe
from adaptkit.runners.data import PromptData


def prompting_summary(recipe: Recipe, data: PromptData, allowed: bool = False) -> dict:
    block = getattr(recipe, "prompts", None)
    compares = [v.name for v in block.variants] if block else recipe.icl.shots
    return {"dev_rows": len(data.rows), "pool_rows": len(data.pool), "labels": data.labels, "compares": compares,
            "backend": recipe.backend.kind}
