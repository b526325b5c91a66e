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


def _score_answers(scorer, recipe: Recipe, scored: list[dict]) -> dict:
    """The task scorer over one pass of answers (labels for classification, replies otherwise)."""
    predictions = [s["prediction"] if s["prediction"] is not None else "" for s in scored]
    return scorer(predictions, [s["expected"] for s in scored], requests=[s.get("request", "") for s in scored])


def _bare(template: str, system) -> bool:
    return template.strip() == "{text}" and not system


def run_prompt_engineering(recipe: Recipe, data: PromptData, options: RunOptions) -> RunResult:
    """Score every prompt variant on the dev rows with the task's scorer, and the bare input (no system prompt, no
    instructions) as the base; save the best prompt."""
    from adaptkit.runners.scoring import delta, plain, task_scorer

    block, d, b, out = recipe.prompts, recipe.data, recipe.backend, options.out
    rows, labels = data.rows, data.labels
    row_score = scorer(block.scorer)  # a scorer that cannot load fails before the model does
    task = task_scorer(recipe, judge=lambda prompt: _judge(backend, prompt))  # a scorer that cannot load fails before the model
    backend = make_backend(recipe)
    classification = recipe.task == "sequence_classification"

    def answer(template: str, system) -> list[dict]:
        def one(row):
            text = row[d.text_column] if classification else row[d.prompt_column]
            user = fill(template, text=text, labels=", ".join(labels))
            messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
            if classification:
                label, tokens = _predict_label(backend, messages, labels, b.max_new_tokens, b.temperature)
                return {"prediction": label, "expected": str(row[d.label_column]), "score": float(label == str(row[d.label_column])),
                        "prompt_tokens": tokens, "request": user}
            reply = backend.chat(messages, b.max_new_tokens, b.temperature)
            expected = row[d.response_column]
            return {"prediction": reply["content"], "expected": expected, "score": float(row_score(reply["content"], expected)),
                    "prompt_tokens": reply.get("prompt_tokens") or 0, "output_tokens": reply.get("completion_tokens"), "request": user}
        return backend.map(one, rows)

    bare_variant = next((v.name for v in block.variants if _bare(v.template, block.system)), None)
    base_answers = None if bare_variant else answer("{text}", None)
    pairwise = task.id == "chat" and not recipe.scoring.rubric
    results, predictions, answers = {}, [], {}
    for variant in block.variants:
        scored = answer(variant.template, block.system)
        answers[variant.name] = scored
        results[variant.name] = {"mean_prompt_tokens": sum(s["prompt_tokens"] for s in scored) / len(scored), "n": len(scored)}
        if not classification:
            results[variant.name][block.scorer] = sum(s["score"] for s in scored) / len(scored)  # the per-row check, beside the task's
        predictions.extend({"variant": variant.name, **{k: v for k, v in s.items() if k != "request"}} for s in scored)
    base_answers = base_answers or answers[bare_variant]
    for name, scored in answers.items():
        if pairwise:  # each variant's replies judged against the bare prompt's
            metrics = task([s["prediction"] for s in scored], [s["expected"] for s in scored],
                           requests=[s["request"] for s in scored], baseline=[s["prediction"] for s in base_answers])
        else:
            metrics = _score_answers(task, recipe, scored)
        results[name].update(metrics)
    primary = results[block.variants[0].name]["primary_metric"]
    base = {"win_rate": 0.5} if pairwise else plain(_score_answers(task, recipe, base_answers))
    best = max(results, key=lambda name: results[name][primary])
    chosen = next(v for v in block.variants if v.name == best)
    outputs = [s.get("output_tokens") for s in answers[best] if isinstance(s.get("output_tokens"), int)]
    write_atomic(out / "predictions.jsonl", "".join(json.dumps(p) + "\n" for p in predictions))
    write_atomic(out / "best_prompt.json", json.dumps({"system": block.system, "name": chosen.name, "template": chosen.template}, indent=2) + "\n")
    best_metrics = {k: v for k, v in results[best].items() if k not in ("mean_prompt_tokens", "n")}
    return RunResult({"method": recipe.method, "task": recipe.task,
                      "eval": {"variants": results, "best_variant": best, **best_metrics, "prompt_tokens": results[best]["mean_prompt_tokens"],
                               **({"output_tokens": sum(outputs) / len(outputs)} if outputs else {}),
                               "base": {**base, "kind": recipe.definition.base},
                               "delta": delta(best_metrics, base)}},
                     artifacts=["predictions.jsonl", "best_prompt.json"])


def _judge(backend, prompt: str) -> str:
    """The chat scorer's judge: the recipe's own backend (a local model, or the endpoint it names)."""
    return backend.chat([{"role": "user", "content": prompt}], 8, 0.0)["content"]


class Selector:
    """Demonstrations for a query: random, label-balanced, or the most similar (embeddings)."""

    def __init__(self, recipe: Recipe, pool: list[dict], source: str, target: str):
        self.block, self.pool, self.source = recipe.icl, pool, source
        self.rng = random.Random(recipe.training.seed)
        self.vectors = None
        if self.block.selection == "similar":
            from sentence_transformers import SentenceTransformer

            from adaptkit.models import resolve_model

            self.encoder = SentenceTransformer(resolve_model(self.block.embedding_model), device="cpu")
            self.vectors = self.encoder.encode([r[source] for r in pool], normalize_embeddings=True, show_progress_bar=False)
        self.by_label = defaultdict(list)
        for row in pool:
            self.by_label[str(row[target])].append(row)

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
    """The task's scores against k demonstrations on the dev rows, with the prompt shrunk to its token budget; k = 0
    (the instruction alone) is the base. Classification scores each label's likelihood; a causal LM generates."""
    from adaptkit.runners.scoring import delta, plain, task_scorer

    block, d, b, out = recipe.icl, recipe.data, recipe.backend, options.out
    pool, rows, labels = data.pool, data.rows, data.labels
    classification = recipe.task == "sequence_classification"
    source, target = (d.text_column, d.label_column) if classification else (d.prompt_column, d.response_column)
    task = task_scorer(recipe, judge=lambda prompt: _judge(backend, prompt))  # a scorer that cannot load fails before the model
    backend = make_backend(recipe)
    selector = Selector(recipe, pool, source, target)
    budget = block.max_prompt_tokens or (backend.context - b.max_new_tokens - 8)
    instruction, example, query = block.templates(recipe.task)

    def answer(k: int) -> list[dict]:
        def one(row):
            demos = selector.pick(row[source], k)
            while True:  # shrink k until the prompt fits the token budget
                parts = [fill(instruction, labels=", ".join(labels))]
                parts += [fill(example, text=r[source], label=r[target]) for r in demos]
                parts.append(fill(query, text=row[source]))
                prompt = "\n\n".join(parts)
                if not demos or backend.count_tokens(prompt) <= budget:
                    break
                demos = demos[1:]  # drop the least similar (first) demonstration
            messages = [{"role": "user", "content": prompt}]
            if classification:
                prediction, used = _predict_label(backend, messages, labels, b.max_new_tokens, b.temperature)
                produced = None
            else:
                reply = backend.chat(messages, b.max_new_tokens, b.temperature)
                prediction, used, produced = reply["content"], reply.get("prompt_tokens") or 0, reply.get("completion_tokens")
            return {"k": k, "used_k": len(demos), "prediction": prediction, "expected": str(row[target]),
                    "correct": prediction == str(row[target]), "prompt_tokens": used, "output_tokens": produced,
                    "request": row[source]}
        return backend.map(one, rows)

    passes = {k: answer(k) for k in block.shots}
    base_answers = passes.get(0) or answer(0)
    pairwise = task.id == "chat" and not recipe.scoring.rubric
    by_k, tokens, shrunk, predictions = {}, {}, {}, []
    for k, scored in passes.items():
        if pairwise:
            by_k[str(k)] = task([s["prediction"] for s in scored], [s["expected"] for s in scored],
                                requests=[s["request"] for s in scored], baseline=[s["prediction"] for s in base_answers])
        else:
            by_k[str(k)] = _score_answers(task, recipe, scored)
        tokens[str(k)] = sum(s["prompt_tokens"] for s in scored) / len(scored)
        shrunk[str(k)] = sum(s["used_k"] < k for s in scored)
        predictions.extend({key: v for key, v in s.items() if key != "request"} for s in scored)
    primary = by_k[str(block.shots[0])]["primary_metric"]
    best = max(by_k, key=lambda k: (by_k[k][primary], -int(k)))
    base = {"win_rate": 0.5} if pairwise else plain(_score_answers(task, recipe, base_answers))
    best_metrics = {key: v for key, v in by_k[best].items() if key != "judge_prompt"}
    outputs = [s["output_tokens"] for s in passes[int(best)] if isinstance(s.get("output_tokens"), int)]
    write_atomic(out / "predictions.jsonl", "".join(json.dumps(p) + "\n" for p in predictions))
    _plot({k: m[primary] for k, m in by_k.items()}, primary, out / "score_vs_k.png")
    scores = {f"{primary}_by_k": {k: m[primary] for k, m in by_k.items()}, "metrics_by_k": {k: plain(m) for k, m in by_k.items()}}
    return RunResult({"method": recipe.method, "task": recipe.task,
                      "eval": {**scores, "mean_prompt_tokens_by_k": tokens, "queries_where_k_shrank": shrunk, "best_k": int(best),
                               **best_metrics, "prompt_tokens": tokens[best],
                               **({"output_tokens": sum(outputs) / len(outputs)} if outputs else {}),
                               "selection": block.selection,
                               "base": {**base, "kind": recipe.definition.base},
                               "delta": delta(best_metrics, base)}},
                     artifacts=["predictions.jsonl", "score_vs_k.png"])


def _plot(accuracy: dict, metric: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = [int(k) for k in accuracy]
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=110)
    ax.plot(ks, list(accuracy.values()), "o-", color="#9467bd")
    ax.set_xlabel("demonstrations (k)")
    ax.set_ylabel(metric)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
