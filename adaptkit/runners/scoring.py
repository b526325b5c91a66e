"""The recipe's scorer, resolved once and used by every method on its task: a built-in one from
adaptkit.methods.scorers, or the user's `module:function` (imported only with consent). Every runner that scores
answers, trained or not, goes through `score`, so the bake-off ranks them by one metric."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from adaptkit.errors import InputError
from adaptkit.methods.scorers import FOR_TASK, SCORERS
from adaptkit.recipe.consent import import_function
from adaptkit.recipe.schema import Recipe


@dataclass
class TaskScorer:
    id: str
    primary: str | None  # None: a user function's first metric
    function: Callable[..., dict]
    options: dict

    def __call__(self, predictions: list, references: list, **extra) -> dict:
        """Numeric metrics (rounded) plus the scorer's other fields, and `primary_metric`."""
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
        return {**{k: round(float(v), 6) if _number(v) else v for k, v in metrics.items()}, "primary_metric": primary}


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
