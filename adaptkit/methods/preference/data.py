"""Preference data, checked before any weights load: chosen/rejected pairs, thumbs-up/down feedback (KTO), or prompts
with reference answers for reward functions. Torch-free."""

from __future__ import annotations

from adaptkit.errors import InputError
from adaptkit.methods.preference.rewards import final_number
from adaptkit.recipe.schema import Recipe
from adaptkit.runners.data import Splits, check_text, nonempty_splits, read_splits, require_columns, response_text


def load_pairs(recipe: Recipe) -> Splits:
    """Preference data, checked before any weights load: prompt, chosen and rejected; for an algorithm that learns from
    feedback (KTO), rated single responses too (prompt, completion, a thumbs-up/down label)."""
    train, eval_rows, eval_source, mix = read_splits(recipe)
    block = getattr(recipe, "preference", None)
    if block is not None and block.spec.data == "feedback" and recipe.data.completion_column in train[0]:
        splits = feedback(train, eval_rows, eval_source, recipe)
    else:
        splits = preferences(train, eval_rows, eval_source, recipe)
    splits.mix = mix
    return splits


def feedback(train, eval_rows, eval_source: str, recipe: Recipe) -> Splits:
    d = recipe.data
    for rows, where in nonempty_splits(train, eval_rows):
        require_columns(rows, where, {"data.prompt_column": d.prompt_column, "data.completion_column": d.completion_column,
                                      "data.label_column": d.label_column})
        check_text(rows, d.completion_column, where)
        bad = [n for n, r in enumerate(rows, 1) if rating(r[d.label_column]) is None]
        if bad:
            raise InputError(f"{where}: row {bad[0]}: `{d.label_column}` = {str(rows[bad[0] - 1][d.label_column])[:30]!r} is not a "
                             f"thumbs-up/down rating (true/false, 1/0, up/down, good/bad, yes/no; {len(bad)} such row(s))")
        kinds = {rating(r[d.label_column]) for r in rows}
        if where == "data.train" and len(kinds) < 2:
            raise InputError(f"{where}: every rating is {'up' if True in kinds else 'down'}: KTO needs both desirable and undesirable "
                             "examples")
    return Splits(train, eval_rows, [], eval_source, kind="feedback")


def load_rl(recipe: Recipe) -> Splits:
    """RLHF's data: preference pairs for a reward model, or prompts with reference answers for reward functions."""
    if not getattr(recipe, "verifiable", False):
        return load_pairs(recipe)
    train, eval_rows, eval_source, mix = read_splits(recipe)
    d = recipe.data
    for rows, where in nonempty_splits(train, eval_rows):
        require_columns(rows, where, {"data.prompt_column": d.prompt_column})
        if isinstance(rows[0][d.prompt_column], str):  # conversational prompts are message lists
            check_text(rows, d.prompt_column, where)
        for number, reward in enumerate(recipe.rlhf.reward_functions):
            if reward.function not in ("exact_match", "numeric"):
                continue
            require_columns(rows, where, {f"rlhf.reward_functions.{number}.column": reward.column})
            if reward.function == "numeric":
                bad = [n for n, r in enumerate(rows, 1) if final_number(str(r[reward.column])) is None]
                if bad:
                    raise InputError(f"{where}: row {bad[0]}: `{reward.column}` = {str(rows[bad[0] - 1][reward.column])[:40]!r} holds no "
                                     f"number for the numeric reward ({len(bad)} such row(s))")
    return Splits(train, eval_rows, [], eval_source, kind="prompts", mix=mix)


def preferences(train, eval_rows, eval_source: str, recipe: Recipe) -> Splits:
    d = recipe.data
    for rows, where in nonempty_splits(train, eval_rows):
        present = set(rows[0])
        if d.chosen_column not in present and d.rejected_column not in present and (
                d.response_column in present or d.messages_column in present or "messages" in present or "completion" in present):
            raise InputError(f"{where}: this looks like SFT data (columns: {', '.join(rows[0])}), not preference pairs: "
                             f"{recipe.method} needs `{d.chosen_column}` and `{d.rejected_column}`; for SFT use the recipes lora_sft or instruction_tuning")
        require_columns(rows, where, {"data.prompt_column": d.prompt_column, "data.chosen_column": d.chosen_column,
                                      "data.rejected_column": d.rejected_column})
        pairs = [(response_text(r[d.chosen_column]).strip(), response_text(r[d.rejected_column]).strip()) for r in rows]
        empty = [n for n, (chosen, rejected) in enumerate(pairs, 1) if not chosen or not rejected]
        if empty:
            raise InputError(f"{where}: {len(empty)} pair(s) have an empty chosen or rejected response (first: row {empty[0]})")
        same = [n for n, (chosen, rejected) in enumerate(pairs, 1) if chosen == rejected]
        if same:
            raise InputError(f"{where}: {len(same)} pair(s) have identical chosen and rejected responses (first: row {same[0]}): "
                             "they teach nothing; remove them")
        if isinstance(rows[0][d.prompt_column], str):  # conversational prompts are message lists
            check_text(rows, d.prompt_column, where)
    return Splits(train, eval_rows, [], eval_source, kind="pairs")


THUMBS = {"true": True, "false": False, "1": True, "0": False, "up": True, "down": False, "good": True, "bad": False,
          "yes": True, "no": False}


def rating(value) -> bool | None:
    """A thumbs-up / thumbs-down label as True / False; None when it is neither."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    return THUMBS.get(value.strip().lower()) if isinstance(value, str) else None
