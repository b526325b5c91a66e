"""The RAG question set, checked before anything is indexed. Torch-free."""

from __future__ import annotations

from adaptkit.errors import InputError
from adaptkit.recipe.schema import Recipe
from adaptkit.runners.data import Rows, check_text, overlap, read_eval, read_rows, require_columns


def check_questions(recipe: Recipe) -> Rows:
    """The RAG question set: rows with a question and the source file that answers it."""
    block = recipe.rag
    rows = read_eval(recipe, "questions")
    require_columns(rows, "data.eval", {"rag.question_column": block.question_column,
                                        "rag.source_column": block.source_column})
    check_text(rows, block.question_column, "data.eval")
    checked = Rows(rows, "questions")
    if block.tune is not None and block.tune.train:  # retriever tuning: its questions, checked alike, and what of eval they repeat
        train = read_rows(block.tune.train, "train", "rag.tune.train")
        if not train:
            raise InputError(f"rag.tune.train: {block.tune.train} has no rows")
        require_columns(train, "rag.tune.train", {"rag.question_column": block.question_column})
        if block.tune.passage_column not in train[0]:
            require_columns(train, "rag.tune.train", {"rag.source_column": block.source_column})
        check_text(train, block.question_column, "rag.tune.train")
        checked.train = train
        checked.leaked = overlap([r[block.question_column] for r in train], [r[block.question_column] for r in rows])
    return checked
