"""The tool-use task set, checked before anything runs. Torch-free."""

from __future__ import annotations

from adaptkit.recipe.schema import Recipe
from adaptkit.runners.data import Rows, read_eval, require_columns


def check_tasks(recipe: Recipe) -> Rows:
    """The tool-use task set: a question and an expected answer per row."""
    block = recipe.tools
    rows = read_eval(recipe, "tasks")
    require_columns(rows, [block.question_column], "data.eval", "tools.question_column")
    require_columns(rows, [block.answer_column], "data.eval", "tools.answer_column")
    return Rows(rows, "tasks")
