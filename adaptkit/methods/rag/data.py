"""The RAG question set, checked before anything is indexed. Torch-free."""

from __future__ import annotations

from adaptkit.recipe.schema import Recipe
from adaptkit.runners.data import Rows, check_text, read_eval, require_columns


def check_questions(recipe: Recipe) -> Rows:
    """The RAG question set: rows with a question and the source file that answers it."""
    block = recipe.rag
    rows = read_eval(recipe, "questions")
    require_columns(rows, [block.question_column], "data.eval", "rag.question_column")
    require_columns(rows, [block.source_column], "data.eval", "rag.source_column")
    check_text(rows, block.question_column, "data.eval")
    return Rows(rows, "questions")
