"""The bake-off's rules: what each run is ranked by (its method's definition says), what it costs to serve, and which
run wins (the cheapest within a margin of the best, or the cheapest reaching a target). The CLI only renders it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from adaptkit.methods.catalogue import methods


def metric_names() -> tuple[str, ...]:
    """What a target may name: every metric some method is ranked by."""
    from adaptkit.methods.registry import registry

    from adaptkit.methods.scorers import SCORERS

    names: list[str] = []
    for definition in registry().values():
        names.extend(name for name in definition.metrics if name not in names)
    names.extend(s.primary for s in SCORERS.values() if s.primary not in names)  # what a scored run ranks by
    return tuple(names)


def primary(metrics: dict) -> tuple[str, float | None]:
    """The metric a run is ranked by, as its method's definition says (higher is better)."""
    from adaptkit.methods.registry import registry

    definition = registry().get(metrics.get("method"))
    return definition.primary(metrics) if definition else ("none", None)


def tokens_per_request(metrics: dict, recipe: dict, count: Callable[[str], int] | None = None) -> tuple[float | None, str]:
    """Prompt tokens a request sends once deployed, and how they were counted: what a prompting run measured, else the
    bare input of a trained model, counted with its tokenizer (`count`) or at about four characters a token."""
    e = metrics.get("eval", {})
    if isinstance(e.get("prompt_tokens"), (int, float)):
        return e["prompt_tokens"], "counted by the backend"
    data = recipe.get("data", {})
    source = data.get("eval") or data.get("train")
    column = data.get("text_column", "text") if metrics.get("task") == "sequence_classification" else data.get("prompt_column", "prompt")
    if source and Path(source).is_file() and source.endswith(".jsonl"):
        rows = [json.loads(line) for line in Path(source).read_text(encoding="utf-8").splitlines() if line.strip()]
        texts = [str(r.get(column, "")) for r in rows if isinstance(r, dict)]
        if count is not None:
            return sum(count(t) for t in texts) / max(1, len(texts)), "the run's tokenizer"
        return sum(len(t) for t in texts) / max(1, len(texts)) / 4, "about 4 characters a token"
    return None, "unknown"


def output_tokens(metrics: dict, recipe: dict) -> float:
    """Tokens a request generates once deployed: a prompting method's max_new_tokens, a causal LM's, none for a classifier."""
    from adaptkit.methods.registry import registry

    measured = (metrics.get("eval") or {}).get("output_tokens")
    if isinstance(measured, (int, float)) and not isinstance(measured, bool):
        return measured  # what the run's answers took on average
    definition = registry().get(metrics.get("method"))
    if definition is not None and not definition.trains:
        return int((recipe.get("backend") or {}).get("max_new_tokens", 64))
    if metrics.get("task") == "causal_lm":
        return int((recipe.get("training") or {}).get("max_new_tokens", 64))
    return 0


def row(ref: str, metrics: dict, recipe: dict, usd_per_1m_input: float, usd_per_1m_output: float | None = None,
        gpu_hour_usd: float = 1.0, requests_per_second: float | None = None, count: Callable[[str], int] | None = None) -> dict:
    """One line of the bake-off table: the metric, the serving cost per 1,000 requests, and a trained method's one-time
    cost from its training time at `gpu_hour_usd`. A prompting method pays for its tokens in and out at the given
    prices; a trained one is self-hosted: a GPU hour divided by the requests it serves in that hour (stated, or
    measured on a GPU by the run), else its tokens at the same prices. `cost_basis` says which."""
    metric, value = primary(metrics)
    train = metrics.get("train") or {}
    parts = [part for part in train.values() if isinstance(part, dict)]  # a staged method: the last stage trains the model used
    train = parts[-1] if parts else train
    tokens, counted = tokens_per_request(metrics, recipe, count)
    out = output_tokens(metrics, recipe)
    output_price = usd_per_1m_output if usd_per_1m_output is not None else 4 * usd_per_1m_input
    cost = None if tokens is None else 1000 * (tokens * usd_per_1m_input + out * output_price) / 1e6
    basis = f"tokens ({counted}) at ${usd_per_1m_input:g} / ${output_price:g} per 1M in / out"
    seconds = train.get("runtime_s", 0.0)
    trained = bool(train.get("trainable_params"))
    if trained:
        measured = (metrics.get("eval") or {}).get("throughput") or {}
        rate, where = requests_per_second, "stated"
        if rate is None and measured.get("device") == "cuda" and measured.get("rows_per_second"):
            rate, where = measured["rows_per_second"], f"measured on the GPU ({measured.get('what', 'eval')})"
        if rate:
            cost = 1000 * gpu_hour_usd / (3600 * rate)
            basis = f"self-hosted: ${gpu_hour_usd:g} a GPU hour at {rate:g} requests/s ({where})"
        elif measured.get("rows_per_second"):
            basis += f"; its {measured['device']} throughput ({measured['rows_per_second']:g} rows/s) is no GPU figure: pass --requests-per-second"
    return {"recipe": ref, "method": metrics.get("method"), "metric": metric, "value": value,
            "trainable_params": train.get("trainable_params", 0), "training_s": seconds,
            "tokens_per_request": tokens, "output_tokens": out, "usd_per_1k_requests": cost, "cost_basis": basis,
            "training_usd": round(seconds / 3600 * gpu_hour_usd, 4) if trained else 0.0,
            **_base_delta(metrics, metric), **_interval(metrics, metric)}


def _interval(metrics: dict, metric: str) -> dict:
    """The run's 95% bootstrap interval of its ranking metric over the eval rows, where the run measured one."""
    interval = (metrics.get("eval") or {}).get("interval") or {}
    if interval.get("metric") != metric or "low" not in interval:
        return {}
    return {"low": interval["low"], "high": interval["high"], "eval_rows": interval.get("rows")}


def _base_delta(metrics: dict, metric: str) -> dict:
    """The row's base score on its ranking metric and the change adapting made, where the run measured them."""
    e = metrics.get("eval") or {}
    base = (e.get("base") or {}).get(metric)
    if base is None and metric.startswith("neg_"):  # an error rate ranked by its negation: its base, negated alike
        plain = (e.get("base") or {}).get(metric[4:])
        base = -plain if isinstance(plain, (int, float)) and not isinstance(plain, bool) else None
    if not isinstance(base, (int, float)) or isinstance(base, bool):
        return {}
    return {"base_value": base, "base_kind": (e.get("base") or {}).get("kind", "the unadapted model")}


def break_even(rows: list[dict], horizon_days: float = 30.0) -> list[str]:
    """The daily volume above which a trained row costs less than a prompting row with a longer prompt that scores no
    better, its training paid off over `horizon_days`."""
    priced = [r for r in rows if r.get("usd_per_1k_requests") is not None and r.get("value") is not None]
    trained = [r for r in priced if r["trainable_params"]]
    prompted = [r for r in priced if not r["trainable_params"]]
    lines = []
    for t in trained:
        for p in prompted:
            if t["value"] < p["value"]:
                continue  # cheaper but worse is no substitute
            saving = (p["usd_per_1k_requests"] - t["usd_per_1k_requests"]) / 1000  # per request
            if saving <= 0:
                continue
            volume = t["training_usd"] / (horizon_days * saving)
            lines.append(f"{t['recipe']} costs less than {p['recipe']} above ~{max(volume, 1):,.0f} requests a day "
                         f"(${t['training_usd']:.2f} of training paid off over {horizon_days:g} days; "
                         f"${saving * 1000:.4f} saved per 1,000 requests)")
    return lines


def cost_order(row: dict) -> tuple:
    """How a bake-off row sorts by cost: the method's cost tier, then its cost per 1,000 requests, then training time."""
    return (methods()[row["method"]].cost_rank if row["method"] in methods() else 99, row["usd_per_1k_requests"] or 0,
            row["training_s"] or 0)


def winner(rows: list[dict], margin: float, target: tuple[str, float] | None) -> str | None:
    """The cheapest sufficient run: lowest cost tier, then fewest tokens a request, then training time; and why."""
    scored = [r for r in rows if r.get("value") is not None]
    if not scored:
        return None
    best = max(r["value"] for r in scored)
    good = [r for r in scored if (r["value"] >= target[1] if target and r["metric"] == target[0] else r["value"] >= best - margin)]
    cost = cost_order
    good.sort(key=cost)
    if not good:
        return f"none reaches {target[0]} {target[1]:g}; the best has {best:.4f}" if target else None
    pick = good[0]
    why = f"reaches {target[0]} {target[1]:g}" if target else f"is within {margin:g} of the best {pick['metric']} ({best:.4f})"
    verdict = (f"{pick['recipe']} ({pick['method']}): the cheapest that {why}, with {pick['trainable_params']:,} trainable "
               f"parameters and ~{(pick['tokens_per_request'] or 0):.0f} prompt tokens a request")
    cheaper = [r for r in scored if r not in good and r["metric"] == pick["metric"] and cost(r) < cost(pick)]
    doubts = _indistinguishable(pick, cheaper)
    return verdict + ("; but " + "; ".join(doubts) if doubts else "")


def _indistinguishable(pick: dict, cheaper: list[dict]) -> list[str]:
    """What the pick cannot be told apart from on these eval rows: its own base, or a cheaper run left out for scoring
    lower (their 95% intervals overlap)."""
    if "low" not in pick:
        return []
    said = []
    span = f"{pick['low']:.4f}-{pick['high']:.4f}"
    if isinstance(pick.get("base_value"), (int, float)) and pick["low"] <= pick["base_value"]:
        said.append(f"it is not distinguishable from its base ({pick['base_value']:.4f} lies in its 95% interval {span})")
    for other in cheaper:
        if "high" in other and other["high"] >= pick["low"]:
            said.append(f"it is not distinguishable from {other['recipe']} ({other['method']}, {other['value']:.4f}, interval "
                        f"{other['low']:.4f}-{other['high']:.4f} against {span}): more eval rows would tell them apart")
    return said
