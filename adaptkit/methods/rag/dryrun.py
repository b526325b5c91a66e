"""The data part of --dry-run for RAG: the questions, the corpus files (and what is skipped), the index's state.
Loads no model."""

from __future__ import annotations

from pathlib import Path

from adaptkit.methods.rag.index import corpus_files, index_status
from adaptkit.recipe.schema import Recipe
from adaptkit.runners.data import Rows


def rag_summary(recipe: Recipe, data: Rows, allowed: bool = False) -> dict:
    corpus = Path(recipe.rag.corpus)
    files, skipped = corpus_files(corpus)
    summary = {"questions": len(data.rows), "corpus_files": len(files), "skipped": [f"{p}: {why}" for p, why in skipped],
               "index": recipe.rag.index_dir, "index_status": index_status(Path(recipe.rag.index_dir))}
    tune = recipe.rag.tune
    if tune is not None:
        summary["retriever_tuning"] = {"training_questions": len(data.train), "synthetic": tune.synthetic,
                                       "hard_negatives": tune.hard_negatives, "saved_to": f"{recipe.output_dir}/retriever"}
        if data.leaked:
            summary["leakage"] = (f"{data.leaked['rows']} of {data.leaked['of']} eval questions also in rag.tune.train "
                                  f"({data.leaked['exact']} exact, {data.leaked['near']} near; {data.leaked['method']})")
    return summary
