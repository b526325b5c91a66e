"""The data part of --dry-run for preference methods: pairs, ratings or prompts, a sample, token lengths, and the
reward functions resolved (a user's own imported only with consent)."""

from __future__ import annotations

from adaptkit.methods.preference.data import rating
from adaptkit.recipe.schema import Recipe
from adaptkit.runners.data import Splits
from adaptkit.runners.dryrun import counts, text, tokenized


def data_summary(recipe: Recipe, splits: Splits, allowed: bool = False) -> dict:
    d, summary = recipe.data, counts(splits)
    rows, first = splits.train, splits.train[0]
    if splits.kind == "pairs":
        texts = [text(r[d.prompt_column]) + " " + max(text(r[d.chosen_column]), text(r[d.rejected_column]), key=len) for r in rows]
        summary["sample"] = {"prompt": first[d.prompt_column], "chosen": first[d.chosen_column], "rejected": first[d.rejected_column]}
    elif splits.kind == "feedback":
        texts = [text(r[d.prompt_column]) + " " + text(r[d.completion_column]) for r in rows]
        up = sum(bool(rating(r[d.label_column])) for r in rows)
        summary["ratings"] = {"up": up, "down": len(rows) - up}
        summary["sample"] = {"prompt": first[d.prompt_column], "completion": first[d.completion_column], "label": first[d.label_column]}
    else:  # prompts for reward functions
        texts = [text(r[d.prompt_column]) for r in rows]
        summary["rewards"] = reward_summary(recipe, allowed)
        summary["sample"] = dict(first)
    return tokenized(recipe, summary, texts, mix=splits.mix)


def reward_summary(recipe: Recipe, allowed: bool) -> list[str]:
    """rlhf.reward_functions resolved: each function, its settings and weight; a user function is imported only with consent."""
    from adaptkit.methods.preference.rewards import BUILTINS
    from adaptkit.recipe.consent import import_function

    lines = []
    for number, r in enumerate(recipe.rlhf.reward_functions):
        if r.builtin:
            used = {"exact_match": ("column",), "numeric": ("column", "tolerance"), "regex": ("pattern",),
                    "length_penalty": ("max_chars",)}.get(r.function, ())
            settings = ", ".join(f"{k}={getattr(r, k)!r}" for k in used)
            doc = (BUILTINS[r.function].__doc__ or "").strip().splitlines()[0]
            lines.append(f"{r.weight:g} x {r.function}({settings}): {doc}")
        elif allowed:
            function = import_function(r.function, f"rlhf.reward_functions.{number}.function")
            lines.append(f"{r.weight:g} x {r.function}: imported ({function.__module__}.{function.__name__})")
        else:
            lines.append(f"{r.weight:g} x {r.function}: not imported (needs --allow-code)")
    return lines
