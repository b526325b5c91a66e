"""Supervised data, checked before any weights load: classification rows (text, label) or instruction pairs (prompt,
response, or chat messages). Torch-free."""

from __future__ import annotations

from adaptkit.errors import InputError
from adaptkit.recipe.schema import Recipe
from adaptkit.runners.data import Splits, balance, check_labels, check_text, label_set, nonempty_splits, read_splits, require_columns


def load_splits(recipe: Recipe) -> Splits:
    """Supervised data: classification rows or instruction pairs, checked against the task before any weights load."""
    train, eval_rows, eval_source, mix = read_splits(recipe)
    if recipe.task == "image_classification":
        from adaptkit.methods.supervised.images import load as read
    elif recipe.task == "image_text_to_text":
        from adaptkit.methods.supervised.images import load_questions as read
    elif recipe.task == "text_to_image":
        from adaptkit.methods.supervised.images import load_captions as read
    elif recipe.task == "speech_recognition":
        from adaptkit.methods.supervised.speech import load as read
    else:
        read = classification if recipe.task == "sequence_classification" else instructions
    splits = read(train, eval_rows, recipe, eval_source)
    splits.mix = mix
    return splits


def classification(train, eval_rows, recipe: Recipe, eval_source: str) -> Splits:
    d = recipe.data
    for rows, where in nonempty_splits(train, eval_rows):
        require_columns(rows, where, {"data.text_column": d.text_column, "data.label_column": d.label_column})
        check_text(rows, d.text_column, where)
        check_labels(rows, d.label_column, where)
    labels = label_set(train, eval_rows, d.label_column)
    return Splits(train, eval_rows, labels, eval_source, kind="classification", balance=balance(train, d.label_column))


def raw_text(recipe: Recipe, rows: list[dict]) -> bool:
    """A causal LM's rows of raw text (continued pre-training): the text column and no prompt or messages."""
    d = recipe.data
    return (recipe.task == "causal_lm" and bool(rows) and d.text_column in rows[0] and d.prompt_column not in rows[0]
            and not d.messages_column)


def instructions(train, eval_rows, recipe: Recipe, eval_source: str) -> Splits:
    d = recipe.data
    if raw_text(recipe, train):  # continued pre-training: every token is trained on
        for rows, where in nonempty_splits(train, eval_rows):
            require_columns(rows, where, {"data.text_column": d.text_column})
            check_text(rows, d.text_column, where)
        return Splits(train, eval_rows, [], eval_source, kind="text")
    for rows, where in nonempty_splits(train, eval_rows):
        if d.messages_column:
            require_columns(rows, where, {"data.messages_column": d.messages_column})
            for number, row in enumerate(rows, 1):
                messages = row[d.messages_column]
                if not isinstance(messages, list) or not messages or not all(
                        isinstance(m, dict) and "role" in m and "content" in m for m in messages):
                    raise InputError(f"{where}: row {number}: `{d.messages_column}` must be a list of {{role, content}} messages")
        else:
            # distillation: the teacher writes the responses; any the training rows hold are references for filtering
            distilled = where == "data.train" and getattr(recipe, "distill", None) is not None
            require_columns(rows, where, {"data.prompt_column": d.prompt_column,
                                          **({} if distilled else {"data.response_column": d.response_column})})
            check_text(rows, d.prompt_column, where)
            if not distilled:
                check_text(rows, d.response_column, where)
    return Splits(train, eval_rows, [], eval_source)
