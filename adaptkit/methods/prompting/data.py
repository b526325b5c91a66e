"""Prompt engineering and ICL data: the demonstration pool, the dev rows scored and the labels. Torch-free."""

from __future__ import annotations

from adaptkit.methods.supervised.data import classification, instructions, load_splits
from adaptkit.recipe.schema import Recipe
from adaptkit.runners.data import PromptData, read_eval


def prompt_rows(recipe: Recipe) -> PromptData:
    """The demonstration pool, the dev rows and the labels for prompt engineering and ICL, checked like training data."""
    d = recipe.data
    if d.training_set:
        splits = load_splits(recipe)
        pool, rows = splits.train, splits.eval or splits.train
        labels = splits.labels
    else:
        rows = read_eval(recipe, "rows")
        pool = []
        if recipe.task == "sequence_classification":
            labels = classification(rows, [], recipe, "").labels
        else:
            instructions(rows, [], recipe, "")
            labels = []
    return PromptData(pool, rows, [str(label) for label in labels])
