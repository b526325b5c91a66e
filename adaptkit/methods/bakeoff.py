"""The bake-off's rules: what each run is ranked by (its method's definition says), what it costs to serve, and which
run wins (the cheapest within a margin of the best, or the cheapest reaching a target). The CLI only renders it."""

from __future__ import annotations

import json
from pathlib import Path

from adaptkit.methods.catalogue import methods


def metric_names() -> tuple[str, ...]:
    """What a target may name: every metric some method is ranked by."""
    from adaptkit.methods.registry import registry

    names: list[str] = []
    for definition in registry().values():
        names.extend(name for name in definition.metrics if name not in names)
    return tuple(names)


def primary(metrics: dict) -> tuple[str, float | None]:
    """The metric a run is ranked by, as its method's definition says (higher is better)."""
    from adaptkit.methods.registry import registry

    definition = registry().get(metrics.get("method"))
    return definition.primary(metrics) if definition else ("none", None)


def tokens_per_request(metrics: dict, recipe: dict) -> float | None:
    """Prompt tokens a request sends once deployed: what a prompting run measured, else the bare input of a trained model."""
    e = metrics.get("eval", {})
    if isinstance(e.get("prompt_tokens"), (int, float)):
        return e["prompt_tokens"]
    data = recipe.get("data", {})
    source = data.get("eval") or data.get("train")
    column = data.get("text_column", "text")
    if source and Path(source).is_file() and source.endswith(".jsonl"):
        texts = [json.loads(line).get(column, "") for line in Path(source).read_text(encoding="utf-8").splitlines() if line.strip()]
        return sum(len(str(t)) for t in texts) / max(1, len(texts)) / 4  # about four characters a token
    return None


def row(ref: str, metrics: dict, recipe: dict, usd_per_1m_input: float) -> dict:
    """One line of the bake-off table."""
    metric, value = primary(metrics)
    train = metrics.get("train") or {}
    parts = [part for part in train.values() if isinstance(part, dict)]  # a staged method: the last stage trains the model used
    train = parts[-1] if parts else train
    tokens = tokens_per_request(metrics, recipe)
    return {"recipe": ref, "method": metrics.get("method"), "metric": metric, "value": value,
            "trainable_params": train.get("trainable_params", 0), "training_s": train.get("runtime_s", 0.0),
            "tokens_per_request": tokens, "usd_per_1k_requests": None if tokens is None else tokens * 1000 * usd_per_1m_input / 1e6}


def winner(rows: list[dict], margin: float, target: tuple[str, float] | None) -> str | None:
    """The cheapest sufficient run: lowest cost tier, then fewest tokens a request, then training time; and why."""
    scored = [r for r in rows if r.get("value") is not None]
    if not scored:
        return None
    best = max(r["value"] for r in scored)
    good = [r for r in scored if (r["value"] >= target[1] if target and r["metric"] == target[0] else r["value"] >= best - margin)]
    rank = {m: meth.cost_rank for m, meth in methods().items()}
    good.sort(key=lambda r: (rank.get(r["method"], 99), r["usd_per_1k_requests"] or 0, r["training_s"]))
    if not good:
        return f"none reaches {target[0]} {target[1]:g}; the best has {best:.4f}" if target else None
    pick = good[0]
    why = f"reaches {target[0]} {target[1]:g}" if target else f"is within {margin:g} of the best {pick['metric']} ({best:.4f})"
    return (f"{pick['recipe']} ({pick['method']}): the cheapest that {why}, with {pick['trainable_params']:,} trainable "
            f"parameters and ~{(pick['tokens_per_request'] or 0):.0f} prompt tokens a request")
