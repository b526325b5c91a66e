"""Training-free recipes on a labeled dev set: prompt variants (prompt engineering) and k-shot prompts (ICL)."""

from __future__ import annotations

import json
import random
import re
from collections import defaultdict
from pathlib import Path

from adaptkit._files import write_atomic
from adaptkit.methods.base import RunOptions, RunResult
from adaptkit.recipe.consent import import_function
from adaptkit.recipe.schema import Recipe, fill
from adaptkit.runners.backends import make_backend
from adaptkit.runners.data import PromptData


def _norm(text) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s.%$-]", " ", str(text).lower())).strip()


def scorer(name: str):
    """exact, contains, or a function the recipe names (module:function or file.py:function; only with consent)."""
    if name == "exact":
        return lambda prediction, expected: float(_norm(prediction) == _norm(expected))
    if name == "contains":
        return lambda prediction, expected: float(_norm(expected) in _norm(prediction))
    return import_function(name, "prompts.scorer")


def _parse_label(text: str, labels: list[str]) -> str | None:
    """The label a free-text answer names: an exact match first, else the first label it mentions."""
    normalised = _norm(text)
    for label in labels:
        if normalised == _norm(label):
            return label
    positions = [(normalised.find(_norm(label)), label) for label in labels if _norm(label) in normalised]
    return min(positions)[1] if positions else None


def _predict_label(backend, messages: list[dict], labels: list[str], max_tokens: int, temperature: float) -> tuple[str | None, int]:
    """Score each label's likelihood with a local model; parse the reply of an endpoint. Returns (label, prompt tokens)."""
    if hasattr(backend, "option_scores"):
        scores = backend.option_scores(messages, labels)
        return labels[max(range(len(labels)), key=scores.__getitem__)], backend.count_tokens(backend.render(messages))
    reply = backend.chat(messages, max_tokens, temperature)
    return _parse_label(reply["content"], labels), reply.get("prompt_tokens") or 0


def run_prompt_engineering(recipe: Recipe, data: PromptData, options: RunOptions) -> RunResult:
    """Score every prompt variant on the dev rows; save the best prompt."""
    block, d, b, out = recipe.prompts, recipe.data, recipe.backend, options.out
    rows, labels = data.rows, data.labels
    score = scorer(block.scorer)  # a scorer that cannot load fails before the model does
    backend = make_backend(recipe)
    classification = recipe.task == "sequence_classification"
    results, predictions = {}, []
    for variant in block.variants:
        def one(row, variant=variant):
            text = row[d.text_column] if classification else row[d.prompt_column]
            user = fill(variant.template, text=text, labels=", ".join(labels))
            messages = ([{"role": "system", "content": block.system}] if block.system else []) + [{"role": "user", "content": user}]
            if classification:
                label, tokens = _predict_label(backend, messages, labels, b.max_new_tokens, b.temperature)
                return {"prediction": label, "expected": str(row[d.label_column]), "score": float(label == str(row[d.label_column])), "prompt_tokens": tokens}
            reply = backend.chat(messages, b.max_new_tokens, b.temperature)
            expected = row[d.response_column]
            return {"prediction": reply["content"], "expected": expected, "score": float(score(reply["content"], expected)),
                    "prompt_tokens": reply.get("prompt_tokens") or 0}
        scored = backend.map(one, rows)
        metric = "accuracy" if classification else block.scorer
        results[variant.name] = {metric: sum(s["score"] for s in scored) / len(scored),
                                 "mean_prompt_tokens": sum(s["prompt_tokens"] for s in scored) / len(scored), "n": len(scored)}
        predictions.extend({"variant": variant.name, **s} for s in scored)
    metric = "accuracy" if classification else block.scorer
    best = max(results, key=lambda name: results[name][metric])
    chosen = next(v for v in block.variants if v.name == best)
    write_atomic(out / "predictions.jsonl", "".join(json.dumps(p) + "\n" for p in predictions))
    write_atomic(out / "best_prompt.json", json.dumps({"system": block.system, "name": chosen.name, "template": chosen.template}, indent=2) + "\n")
    return RunResult({"method": recipe.method, "task": recipe.task,
                      "eval": {"variants": results, "best_variant": best, metric: results[best][metric],
                               "prompt_tokens": results[best]["mean_prompt_tokens"]}},
                     artifacts=["predictions.jsonl", "best_prompt.json"])


class Selector:
    """Demonstrations for a query: random, label-balanced, or the most similar (embeddings)."""

    def __init__(self, recipe: Recipe, pool: list[dict]):
        self.block, self.pool, self.d = recipe.icl, pool, recipe.data
        self.rng = random.Random(recipe.training.seed)
        self.vectors = None
        if self.block.selection == "similar":
            from sentence_transformers import SentenceTransformer

            from adaptkit.models import resolve_model

            self.encoder = SentenceTransformer(resolve_model(self.block.embedding_model), device="cpu")
            self.vectors = self.encoder.encode([r[self.d.text_column] for r in pool], normalize_embeddings=True, show_progress_bar=False)
        self.by_label = defaultdict(list)
        for row in pool:
            self.by_label[str(row[self.d.label_column])].append(row)

    def pick(self, query: str, k: int) -> list[dict]:
        if k == 0:
            return []
        if self.block.selection == "similar":
            import numpy as np

            q = self.encoder.encode([query], normalize_embeddings=True, show_progress_bar=False)[0]
            order = np.argsort(-(self.vectors @ q))[:k]
            return [self.pool[i] for i in order][::-1]  # the most similar right before the query
        if self.block.selection == "balanced":
            labels = sorted(self.by_label)
            chosen = [self.rng.choice(self.by_label[labels[i % len(labels)]]) for i in range(k)]
            self.rng.shuffle(chosen)
            return chosen
        return self.rng.sample(self.pool, min(k, len(self.pool)))


def run_icl(recipe: Recipe, data: PromptData, options: RunOptions) -> RunResult:
    """Accuracy against k demonstrations on the dev rows, with the prompt shrunk to its token budget."""
    block, d, b, out = recipe.icl, recipe.data, recipe.backend, options.out
    pool, rows, labels = data.pool, data.rows, data.labels
    backend = make_backend(recipe)
    selector = Selector(recipe, pool)
    budget = block.max_prompt_tokens or (backend.context - b.max_new_tokens - 8)
    accuracy, tokens, shrunk, predictions = {}, {}, {}, []
    for k in block.shots:
        def one(row, k=k):
            demos = selector.pick(row[d.text_column], k)
            while True:  # shrink k until the prompt fits the token budget
                parts = [fill(block.instruction, labels=", ".join(labels))]
                parts += [fill(block.example_template, text=r[d.text_column], label=r[d.label_column]) for r in demos]
                parts.append(fill(block.query_template, text=row[d.text_column]))
                prompt = "\n\n".join(parts)
                if not demos or backend.count_tokens(prompt) <= budget:
                    break
                demos = demos[1:]  # drop the least similar (first) demonstration
            label, used = _predict_label(backend, [{"role": "user", "content": prompt}], labels, b.max_new_tokens, b.temperature)
            return {"k": k, "used_k": len(demos), "prediction": label, "expected": str(row[d.label_column]),
                    "correct": label == str(row[d.label_column]), "prompt_tokens": used}
        scored = backend.map(one, rows)
        accuracy[str(k)] = sum(s["correct"] for s in scored) / len(scored)
        tokens[str(k)] = sum(s["prompt_tokens"] for s in scored) / len(scored)
        shrunk[str(k)] = sum(s["used_k"] < k for s in scored)
        predictions.extend(scored)
    best = max(accuracy, key=lambda k: (accuracy[k], -int(k)))
    write_atomic(out / "predictions.jsonl", "".join(json.dumps(p) + "\n" for p in predictions))
    _plot(accuracy, out / "accuracy_vs_k.png")
    return RunResult({"method": recipe.method, "task": recipe.task,
                      "eval": {"accuracy_by_k": accuracy, "mean_prompt_tokens_by_k": tokens, "queries_where_k_shrank": shrunk,
                               "best_k": int(best), "accuracy": accuracy[best], "prompt_tokens": tokens[best],
                               "selection": block.selection}},
                     artifacts=["predictions.jsonl", "accuracy_vs_k.png"])


def _plot(accuracy: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = [int(k) for k in accuracy]
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=110)
    ax.plot(ks, list(accuracy.values()), "o-", color="#9467bd")
    ax.set_xlabel("demonstrations (k)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
