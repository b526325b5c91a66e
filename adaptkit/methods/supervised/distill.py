"""Distillation: a teacher (an OpenAI-compatible endpoint, closed or served, or a local causal LM) answers the training
prompts; its answers, filtered by the task's scorer where the rows hold references, are the student's training data.
The teacher is scored on the same eval rows as the student, and both are priced per 1,000 requests, so the report
says what the user is deciding: how much of the teacher's score the student keeps, and after how many requests the
student's training has paid for itself."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from adaptkit.errors import InputError
from adaptkit.recipe.schema import Recipe
from adaptkit.runners.data import Splits

ANSWERS_FILE = "teacher_answers.jsonl"
SUBSTITUTE = 0.9  # the share of the teacher's score below which a cheaper student is said to be no substitute


@dataclass
class Teacher:
    """What the teacher did: its name, prices, the training answers' tokens, and its eval scores."""

    name: str
    prices: tuple[float, float] | None  # USD per 1M input and output tokens; None: unknown
    price_basis: str
    training: dict = field(default_factory=dict)
    eval: dict = field(default_factory=dict)

    def usd(self, prompt_tokens: float, completion_tokens: float) -> float | None:
        if self.prices is None:
            return None
        return (prompt_tokens * self.prices[0] + completion_tokens * self.prices[1]) / 1e6


def _backend(recipe: Recipe):
    block = recipe.distill
    if block.teacher_model:
        from adaptkit.models import check_reachable
        from adaptkit.runners.backends import LocalBackend

        check_reachable(block.teacher_model)
        return LocalBackend(block.teacher_model, recipe.trust_remote_code), block.teacher_model
    from adaptkit.runners.backends import make_backend

    return make_backend(recipe), recipe.backend.model or recipe.model


def _prices(recipe: Recipe, name: str) -> tuple[tuple[float, float] | None, str]:
    block = recipe.distill
    if block.usd_per_1m_input_tokens is not None and block.usd_per_1m_output_tokens is not None:
        return (block.usd_per_1m_input_tokens, block.usd_per_1m_output_tokens), "the recipe's distill prices"
    if block.teacher_model:  # a local teacher costs its GPU time, not tokens: say so rather than guess
        return None, "a local teacher: priced by its GPU time (set distill.usd_per_1m_*_tokens to price its tokens)"
    from adaptkit.advisor.profile import api_price

    found = api_price(name)
    if found is None:
        return None, f"no price for `{name}`: set distill.usd_per_1m_input_tokens and distill.usd_per_1m_output_tokens"
    matched, prices, checked = found
    return (block.usd_per_1m_input_tokens if block.usd_per_1m_input_tokens is not None else prices["input"],
            block.usd_per_1m_output_tokens if block.usd_per_1m_output_tokens is not None else prices["output"]), \
        f"list prices of `{matched}` in adaptkit's table (checked {checked})"


def _ask(backend, prompts: list[str], max_tokens: int, temperature: float) -> list[dict]:
    return backend.map(lambda prompt: backend.chat([{"role": "user", "content": prompt}], max_tokens, temperature), prompts)


def teach(recipe: Recipe, splits: Splits, out: Path) -> tuple[Splits, Teacher]:
    """The teacher answers every training prompt (cached by the backend: a rerun asks nothing again) and the first
    `training.generate_eval` eval prompts; returns the student's training rows (the kept answers) and the teacher."""
    from adaptkit.runners.scoring import task_scorer

    d, block = recipe.data, recipe.distill
    backend, name = _backend(recipe)
    prices, basis = _prices(recipe, name)
    teacher = Teacher(name, prices, basis)
    prompts = [row[d.prompt_column] for row in splits.train]
    replies = _ask(backend, prompts, block.max_new_tokens, recipe.backend.temperature)
    answers = [reply["content"].strip() for reply in replies]
    references = [row.get(d.response_column) for row in splits.train]
    scored = [i for i, ref in enumerate(references) if isinstance(ref, str) and ref.strip() and answers[i]]
    scores: dict[int, float] = {}
    if block.min_score is not None and scored:
        values = task_scorer(recipe).per_row([answers[i] for i in scored], [references[i] for i in scored],
                                             requests=[prompts[i] for i in scored])
        scores = dict(zip(scored, values))
    kept = [i for i, answer in enumerate(answers) if answer and (i not in scores or scores[i] >= block.min_score)]  # no reference: kept
    out.mkdir(parents=True, exist_ok=True)
    chosen = set(kept)
    with open(out / ANSWERS_FILE, "w", encoding="utf-8") as handle:
        for i, (prompt, answer) in enumerate(zip(prompts, answers)):
            handle.write(json.dumps({"prompt": prompt, "answer": answer, "reference": references[i], "score": scores.get(i),
                                     "kept": i in chosen}, ensure_ascii=False) + "\n")
    if not kept:
        raise InputError(f"distill: none of the teacher's {len(answers)} answers was kept (distill.min_score={block.min_score}; "
                         f"see {out / ANSWERS_FILE}): lower min_score, or check the teacher")
    prompt_tokens = sum(r.get("prompt_tokens") or 0 for r in replies)
    completion_tokens = sum(r.get("completion_tokens") or 0 for r in replies)
    teacher.training = {"answers": len(answers), "kept": len(kept), "filtered": len(answers) - len(kept),
                        "filter": f"{task_scorer(recipe).primary or 'score'} >= {block.min_score:g} against the references"
                        if block.min_score is not None else "none (every non-empty answer)",
                        "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                        "usd": _round(teacher.usd(prompt_tokens, completion_tokens))}
    teacher.eval = _teacher_eval(recipe, backend, teacher, splits.eval)
    rows = [{d.prompt_column: prompts[i], d.response_column: answers[i]} for i in kept]
    return Splits(rows, splits.eval, [], splits.eval_source, kind=splits.kind, leaked=splits.leaked, mix=splits.mix), teacher


def _teacher_eval(recipe: Recipe, backend, teacher: Teacher, rows: list[dict]) -> dict:
    """The teacher on the rows the student is scored on (the first training.generate_eval with a reference), by the
    same scorer; its tokens and price per request."""
    from adaptkit.runners.scoring import task_scorer

    d = recipe.data
    rows = [r for r in rows if isinstance(r.get(d.response_column), str)][: recipe.training.generate_eval]
    if not rows:
        return {}
    prompts = [r[d.prompt_column] for r in rows]
    replies = _ask(backend, prompts, recipe.training.max_new_tokens, recipe.backend.temperature)
    metrics = task_scorer(recipe)([r["content"].strip() for r in replies], [r[d.response_column] for r in rows], requests=prompts)
    tokens_in = sum(r.get("prompt_tokens") or 0 for r in replies) / len(replies)
    tokens_out = sum(r.get("completion_tokens") or 0 for r in replies) / len(replies)
    per_request = teacher.usd(tokens_in, tokens_out)
    return {**{k: v for k, v in metrics.items() if k != "interval"}, "rows": len(rows), "tokens_per_request": round(tokens_in, 1),
            "output_tokens": round(tokens_out, 1), "usd_per_1k_requests": _round(per_request * 1000 if per_request is not None else None)}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def report(recipe: Recipe, teacher: Teacher, metrics: dict) -> dict:
    """The decision: teacher's and student's scores (and the student's base), each one's cost per 1,000 requests, and
    the requests after which the student's one-time cost (the teacher's training answers and the training's GPU time)
    is paid back by its cheaper requests."""
    block = recipe.distill
    scored = metrics.get("eval") or {}
    metric = scored.get("primary_metric")
    train = metrics.get("train") or {}
    rate, where = block.student_requests_per_second, "stated by distill.student_requests_per_second"
    measured = scored.get("throughput") or {}
    if rate is None and measured.get("device") == "cuda" and measured.get("rows_per_second"):
        rate, where = measured["rows_per_second"], "measured on the GPU after training"
    student_1k = 1000 * block.gpu_hour_usd / (3600 * rate) if rate else None
    student_basis = (f"self-hosted: ${block.gpu_hour_usd:g} a GPU hour at {rate:g} requests/s ({where})" if rate else
                     "no GPU throughput: set distill.student_requests_per_second (this run's is a CPU figure)")
    training_usd = (train.get("runtime_s") or 0.0) / 3600 * block.gpu_hour_usd
    one_time = None if teacher.training.get("usd") is None else teacher.training["usd"] + training_usd
    teacher_1k = teacher.eval.get("usd_per_1k_requests")
    said = {"teacher": {"model": teacher.name, metric: teacher.eval.get(metric), "eval_rows": teacher.eval.get("rows"),
                        "usd_per_1k_requests": teacher_1k, "price_basis": teacher.price_basis, "training_answers": teacher.training},
            "student": {"model": recipe.model, metric: scored.get(metric), "base": (scored.get("base") or {}).get(metric),
                        "usd_per_1k_requests": _round(student_1k), "cost_basis": student_basis},
            "metric": metric, "one_time_usd": _round(one_time), "training_usd": _round(training_usd)}
    teacher_score, student_score = teacher.eval.get(metric), scored.get(metric)
    if isinstance(teacher_score, (int, float)) and isinstance(student_score, (int, float)) and teacher_score:
        said["student_keeps"] = round(student_score / teacher_score, 4)  # the share of the teacher's score
    if teacher_1k is not None and student_1k is not None and one_time is not None:
        saving = (teacher_1k - student_1k) / 1000
        said["break_even_requests"] = round(one_time / saving) if saving > 0 else None
        said["break_even"] = (f"the student pays back ${one_time:.4f} of one-time cost after ~{one_time / saving:,.0f} requests "
                              f"(${saving * 1000:.4f} saved per 1,000)" if saving > 0 else
                              "the student costs no less per request than the teacher: distilling saves nothing at these prices")
        if saving > 0 and said.get("student_keeps") is not None and said["student_keeps"] < SUBSTITUTE:
            said["break_even"] += (f"; but it keeps only {said['student_keeps']:.0%} of the teacher's {metric}: no substitute yet "
                                   "(more or better answers, a larger student, or more training)")
    return said
