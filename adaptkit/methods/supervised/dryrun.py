"""The data part of --dry-run for supervised methods: rows, labels, a sample, tokenized with the model's tokenizer."""

from __future__ import annotations

from adaptkit.recipe.schema import Recipe
from adaptkit.runners.data import Splits, label_counts
from adaptkit.runners.dryrun import counts, tokenized


def _labels(rows: list[dict], column: str) -> dict:
    return {str(k): v for k, v in sorted(label_counts(rows, column).items(), key=lambda kv: str(kv[0]))}


def data_summary(recipe: Recipe, splits: Splits, allowed: bool = False) -> dict:
    d, summary = recipe.data, counts(splits)
    first = splits.train[0]
    if splits.kind in ("images", "image_questions", "captions"):
        from adaptkit.methods.supervised.images import summary as images

        return images(recipe, splits, summary)
    if splits.kind == "speech":
        from adaptkit.methods.supervised.speech import summary as speech

        return speech(recipe, splits, summary)
    if splits.kind == "classification":
        summary["labels"] = _labels(splits.train, d.label_column)
        if splits.eval:
            summary["eval_labels"] = _labels(splits.eval, d.label_column)
        summary["sample"] = {"text": first[d.text_column], "label": str(first[d.label_column])}
        return tokenized(recipe, summary, [r[d.text_column] for r in splits.train], mix=splits.mix)
    if splits.kind == "text":
        summary["sample"] = {"text": first[d.text_column]}
        summary["objective"] = "raw text (continued pre-training): every token is trained on; scored by held-out perplexity"
        return tokenized(recipe, summary, [r[d.text_column] for r in splits.train], mix=splits.mix)
    if d.messages_column:
        summary["sample"] = {"messages": first[d.messages_column]}
        return tokenized(recipe, summary, None, [r[d.messages_column] for r in splits.train], mix=splits.mix)
    summary["sample"] = {"prompt": first[d.prompt_column], "response": first[d.response_column]}
    return tokenized(recipe, summary, [r[d.prompt_column] + " " + r[d.response_column] for r in splits.train], mix=splits.mix)
