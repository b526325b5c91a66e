"""The recipe's scorer, resolved once and used by every method on its task: a built-in one from
adaptkit.methods.scorers, or the user's `module:function` (imported only with consent). Every runner that scores
answers, trained or not, goes through `score`, so the bake-off ranks them by one metric."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from adaptkit.errors import InputError
from adaptkit.methods.scorers import FOR_TASK, SCORERS, micro_f1
from adaptkit.recipe.consent import import_function
from adaptkit.recipe.schema import Recipe


@dataclass
class TaskScorer:
    id: str
    primary: str | None  # None: a user function's first metric
    function: Callable[..., dict]
    options: dict

    def _scored(self, predictions: list, references: list, **extra) -> tuple[dict, str]:
        """The scorer's own dict (checked) and the name of its primary metric."""
        try:
            metrics = self.function(predictions, references, **self.options, **extra)
        except InputError:
            raise
        except Exception as exc:
            if self.id in SCORERS:
                raise
            raise InputError(f"scoring.scorer `{self.id}` failed ({exc.__class__.__name__}: {str(exc)[:160]})") from None
        if not isinstance(metrics, dict) or not any(_number(v) for v in metrics.values()):
            raise InputError(f"scoring.scorer `{self.id}` must return a dict of metrics (numbers), got {type(metrics).__name__}")
        primary = self.primary or next(k for k, v in metrics.items() if _number(v))
        if not _number(metrics.get(primary)):
            raise InputError(f"scoring.primary `{primary}` is not a metric the scorer returns ({', '.join(metrics)})")
        return metrics, primary

    def per_row(self, predictions: list, references: list, **extra) -> list[float]:
        """Each prediction's own score on the primary metric: a built-in's per-row values, else the scorer row by row."""
        metrics, primary = self._scored(predictions, references, **extra)
        rows = (metrics.get("rows") or {}).get(primary)
        if isinstance(rows, list) and len(rows) == len(predictions) and all(_number(v) for v in rows):
            return [float(v) for v in rows]
        return [float(self._scored([p], [r], **{k: [v[i]] for k, v in extra.items()})[0][primary])
                for i, (p, r) in enumerate(zip(predictions, references))]

    def __call__(self, predictions: list, references: list, **extra) -> dict:
        """Numeric metrics (rounded) plus the scorer's other fields, and `primary_metric`."""
        metrics, primary = self._scored(predictions, references, **extra)
        rows = metrics.pop("rows", None)  # a built-in's per-row values: the interval is drawn from them, not stored
        result = {**{k: v if isinstance(v, int) and not isinstance(v, bool) else round(float(v), 6) if _number(v) else v
                     for k, v in metrics.items()}, "primary_metric": primary}  # counts stay whole numbers
        if isinstance(rows, dict) and isinstance(rows.get(primary), list) and len(rows[primary]) >= 2:
            values = rows[primary]
            combine = micro_f1 if isinstance(values[0], tuple) else lambda picked: sum(picked) / len(picked)
            result["interval"] = bootstrap(lambda drawn: combine([values[i] for i in drawn]), len(values), primary)
        return result


RESAMPLES = 1000
LEVEL = 0.95


def bootstrap(score: Callable[[list[int]], float], rows: int, metric: str, resamples: int = RESAMPLES, seed: int = 0) -> dict:
    """A 95% percentile-bootstrap interval of a metric over the eval rows: the rows drawn with replacement `resamples`
    times (seeded, so a run reports the same interval twice) and scored each time, from each row's own figures (a
    built-in scorer's `rows`; no model is asked again). Macro-F1 and a user's function get none."""
    import random

    draw = random.Random(seed)
    values = sorted(score([draw.randrange(rows) for _ in range(rows)]) for _ in range(resamples))
    cut = (1 - LEVEL) / 2
    low, high = values[int(cut * resamples)], values[min(resamples - 1, int((1 - cut) * resamples))]
    return {"metric": metric, "low": round(low, 6), "high": round(high, 6), "level": LEVEL, "rows": rows, "resamples": resamples,
            "method": "percentile bootstrap over the eval rows"}


def proportion_interval(value: float, rows: int, metric: str) -> dict:
    """The same interval for a metric that is a share of rows right (accuracy), from its value and the row count: each
    resample of 0/1 outcomes is scored by its mean."""
    right = round(value * rows)
    outcomes = [1.0] * right + [0.0] * (rows - right)
    return bootstrap(lambda picked: sum(outcomes[i] for i in picked) / len(picked), rows, metric)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def task_scorer(recipe: Recipe, judge: Callable[[str], str] | None = None) -> TaskScorer:
    """The scorer this recipe's answers get: `scoring.scorer`, else the task's default."""
    block = recipe.scoring
    name = block.scorer or FOR_TASK.get(recipe.task, "generation")
    options: dict = {}
    if name == "extraction" and block.schema_file:
        path = Path(block.schema_file).expanduser()
        try:
            options["schema"] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"scoring.schema_file {path}: cannot read it as JSON ({exc.__class__.__name__})") from None
    elif name == "code":
        options["timeout_s"] = block.timeout_s
    elif name == "chat":
        if judge is None:
            from adaptkit.runners.backends import make_backend

            backend = make_backend(recipe)
            judge = lambda prompt: backend.chat([{"role": "user", "content": prompt}], 8, 0.0)["content"]  # noqa: E731
        options.update(judge=judge, rubric=block.rubric)
    if name in SCORERS:
        built = SCORERS[name]
        return TaskScorer(name, block.primary or built.primary, built.score, options)
    return TaskScorer(name, block.primary, import_function(name, "scoring.scorer"), options)


def plain(metrics: dict) -> dict:
    """The numbers of a scorer's result (for base / delta)."""
    return {k: v for k, v in metrics.items() if _number(v)}


def delta(metrics: dict, base: dict) -> dict:
    return {k: round(metrics[k] - base[k], 6) for k in plain(metrics) if _number(base.get(k))}
