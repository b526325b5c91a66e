"""Verifiable rewards: the built-in reward functions of RL from verifiable rewards (the `rlhf` recipe's `rlhf.reward_functions`).

Each built-in is a factory: `make(name, **settings)` returns a function with the signature TRL's GRPOTrainer calls
reward functions with, `f(prompts, completions, **columns) -> list[float]`, where `columns` carries every data column
(the reference answers among them). A user function given as `module:function` has the same signature.

This module imports only the standard library: `adaptkit export` copies it whole into the exported script.
"""

from __future__ import annotations

import json
import math
import re

NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
MARKERS = re.compile(r"(?:####|final answer\s*[:=]|answer\s*[:=]|=)\s*", re.IGNORECASE)


def completion_text(completion) -> str:
    """A completion as text: a string, or the last message of a conversational completion."""
    if isinstance(completion, list):
        return str(completion[-1].get("content", "")) if completion and isinstance(completion[-1], dict) else ""
    return str(completion)


def final_answer(text: str) -> str:
    """The final answer a completion states: what follows its last `####` / `answer:` / `=` marker, else its last line."""
    markers = list(MARKERS.finditer(text))
    tail = text[markers[-1].end():] if markers else text
    lines = [line.strip() for line in tail.strip().splitlines() if line.strip()]
    return (lines[0] if markers else lines[-1]) if lines else ""


def final_number(text: str) -> float | None:
    """The number a completion ends on: the first number after its last answer marker, else its last number."""
    markers = list(MARKERS.finditer(text))
    found = NUMBER.findall(text[markers[-1].end():]) if markers else []
    found = found[:1] or NUMBER.findall(text)[-1:]
    if not found:
        return None
    try:
        return float(found[0].replace(",", ""))
    except ValueError:
        return None


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", str(text)).strip().strip(".").lower()


def exact_match(column: str = "answer", **_):
    """1.0 when the completion's final answer equals the reference (case, spacing and a closing full stop ignored)."""
    def exact_match(prompts, completions, **columns):
        return [float(_normalise(final_answer(completion_text(c))) == _normalise(ref)) for c, ref in zip(completions, columns[column])]
    return exact_match


def numeric(column: str = "answer", tolerance: float = 1e-6, **_):
    """1.0 when the completion's final number is within `tolerance` (absolute, or relative to the reference) of it."""
    def numeric(prompts, completions, **columns):
        scores = []
        for c, ref in zip(completions, columns[column]):
            got, want = final_number(completion_text(c)), final_number(str(ref))
            scores.append(float(got is not None and want is not None and math.isclose(got, want, rel_tol=tolerance, abs_tol=tolerance)))
        return scores
    return numeric


def regex(pattern: str = "", **_):
    """1.0 when the completion matches `pattern` anywhere (a format check: re.search, multiline and dot-all)."""
    compiled = re.compile(pattern, re.MULTILINE | re.DOTALL)

    def regex(prompts, completions, **columns):
        return [float(compiled.search(completion_text(c)) is not None) for c in completions]
    return regex


def json_valid(**_):
    """1.0 when the completion (or the ```json block in it) parses as JSON."""
    fence = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)

    def json_valid(prompts, completions, **columns):
        scores = []
        for c in completions:
            text = completion_text(c)
            block = fence.search(text)
            try:
                json.loads(block.group(1) if block else text)
                scores.append(1.0)
            except ValueError:
                scores.append(0.0)
        return scores
    return json_valid


def length_penalty(max_chars: int = 400, **_):
    """0 up to `max_chars` characters, then minus the share over it (-1 at twice the length and beyond)."""
    def length_penalty(prompts, completions, **columns):
        return [-min(1.0, max(0, len(completion_text(c)) - max_chars) / max_chars) for c in completions]
    return length_penalty


BUILTINS = {"exact_match": exact_match, "numeric": numeric, "regex": regex, "json_valid": json_valid, "length_penalty": length_penalty}
CHECKS_ANSWERS = ("exact_match", "numeric")  # the built-ins that say whether an answer is correct


def make(name: str, **settings):
    """A built-in reward function, configured."""
    return BUILTINS[name](**settings)
