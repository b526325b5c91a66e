"""The tool-use task set, checked before anything runs. Torch-free."""

from __future__ import annotations

from adaptkit.recipe.schema import Recipe
from adaptkit.runners.data import Rows, read_eval, require_columns


def check_tasks(recipe: Recipe) -> Rows:
    """The tool-use task set: a question and an expected answer per row."""
    block = recipe.tools
    rows = read_eval(recipe, "tasks")
    require_columns(rows, "data.eval", {"tools.question_column": block.question_column,
                                        "tools.answer_column": block.answer_column})
    return Rows(rows, "tasks")
