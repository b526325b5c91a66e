"""The rules table: loaded from data/rules.yaml, checked when loaded, evaluated against facts."""

from __future__ import annotations

import operator
import typing
from functools import lru_cache
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

from adaptkit._yaml import load_yaml
from adaptkit.advisor.profile import Profile
from adaptkit.errors import AdaptkitError
from adaptkit.methods.catalogue import METHOD_IDS, sources

MethodId = Literal[METHOD_IDS]  # type: ignore[valid-type]
DERIVED_FACTS = ("vram_total_gb", "has_gpu", "corpus_fits_context", "rl_from_rewards")
FACT_NAMES = tuple(Profile.model_fields) + DERIVED_FACTS
MAX_WEIGHT = 10.0

_OPS = {
    "lt": (operator.lt, "<"),
    "le": (operator.le, "<="),
    "gt": (operator.gt, ">"),
    "ge": (operator.ge, ">="),
    "eq": (operator.eq, "="),
    "ne": (operator.ne, "!="),
}


class Rule(BaseModel):
    """One row of the rules table."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str
    kind: Literal["gate", "score", "memory", "cost"]
    title: str
    when: dict = Field(default_factory=dict)
    rule_out: list[MethodId] = Field(default_factory=list)
    score: dict[MethodId, float] = Field(default_factory=dict)
    note: list[MethodId] = Field(default_factory=list)
    combine: list[MethodId] = Field(default_factory=list)
    defaults: dict = Field(default_factory=dict, description="memory rules: setup fields shared by every method")
    setups: dict[MethodId, dict] = Field(default_factory=dict, description="memory rules: the setup each method is checked with")
    setups_if: dict[str, dict[MethodId, dict]] = Field(default_factory=dict, description="memory rules: setup fields that change "
                                                                                         "when a fact holds")
    penalty: float = Field(0.0, ge=-MAX_WEIGHT, le=MAX_WEIGHT, description="memory rules: score change when a method fits only with changes")
    assume: dict = Field(default_factory=dict, description="cost rules: the assumptions behind the comparison")
    reason: str
    reasons: dict[MethodId, str] = Field(default_factory=dict, description="the reason shown next to a method, where the rule's is about another")
    sources: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self):
        for method, weight in self.score.items():
            if not -MAX_WEIGHT <= weight <= MAX_WEIGHT:
                raise ValueError(f"rule `{self.id}`: weight {weight} for `{method}` is outside +-{MAX_WEIGHT}")
        if self.kind == "gate" and not self.rule_out:
            raise ValueError(f"rule `{self.id}`: a gate must rule something out")
        if self.kind != "gate" and self.rule_out:
            raise ValueError(f"rule `{self.id}`: only gates rule out")
        if self.kind == "cost" and not {"against", "shots", "tokens_per_example", "requests_per_day", "usd_per_1m_input"} <= set(self.assume):
            raise ValueError(f"rule `{self.id}`: a cost rule needs assume: against, shots, tokens_per_example, requests_per_day, "
                             "usd_per_1m_input")
        if self.kind == "cost" and self.assume["against"] not in METHOD_IDS:
            raise ValueError(f"rule `{self.id}`: assume.against `{self.assume['against']}` is not a method")
        if self.kind == "memory":
            if not self.setups:
                raise ValueError(f"rule `{self.id}`: a memory rule needs `setups`")
            from adaptkit.estimator.memory import Setup

            unknown = [fact for fact in self.setups_if if fact not in FACT_NAMES]
            if unknown:
                raise ValueError(f"rule `{self.id}`: setups_if names an unknown fact `{unknown[0]}`")
            for method, fields in self.setups.items():
                try:
                    for extra in [{}] + [changes.get(method, {}) for changes in self.setups_if.values()]:
                        Setup(method=method, **{**self.defaults, **fields, **extra}).resolved()
                except (TypeError, AdaptkitError) as exc:
                    raise ValueError(f"rule `{self.id}`: bad setup for `{method}`: {exc}") from None
        if self.kind == "score" and not (self.score or self.note or self.combine):
            raise ValueError(f"rule `{self.id}`: a score rule needs `score`, `note` or `combine`")
        stray = [m for m in self.reasons if m not in self.score and m not in self.note]
        if stray:
            raise ValueError(f"rule `{self.id}`: reasons for {stray}, which the rule neither scores nor notes")
        unknown = [s for s in self.sources if s not in sources()]
        if unknown:
            raise ValueError(f"rule `{self.id}`: unknown sources {unknown}")
        _check_condition(self.id, self.when)
        return self


def _check_condition(rule_id: str, cond: dict) -> None:
    if not isinstance(cond, dict):
        raise ValueError(f"rule `{rule_id}`: a condition must be a mapping")
    for key, spec in cond.items():
        if key in ("any", "all"):
            if not isinstance(spec, list) or not spec:
                raise ValueError(f"rule `{rule_id}`: `{key}` takes a non-empty list of conditions")
            for sub in spec:
                _check_condition(rule_id, sub)
            continue
        if key not in FACT_NAMES:
            raise ValueError(f"rule `{rule_id}`: unknown fact `{key}`")
        allowed = _allowed_values(key)
        if isinstance(spec, dict):
            bad = [op for op in spec if op not in _OPS]
            if bad:
                raise ValueError(f"rule `{rule_id}`: unknown operators {bad} on `{key}`")
            values = [v for v in spec.values() if v is not None]
        else:
            values = [v for v in (spec if isinstance(spec, list) else [spec]) if v is not None]
        if allowed and any(v not in allowed for v in values):
            raise ValueError(f"rule `{rule_id}`: `{key}` can only be one of {sorted(allowed)}, got {values}")


def _allowed_values(key: str) -> Optional[set]:
    if key in DERIVED_FACTS:
        return None
    annotation = Profile.model_fields[key].annotation
    if typing.get_origin(annotation) is Literal:
        return set(typing.get_args(annotation))
    return None


def matches(cond: dict, facts: dict) -> bool:
    """Return whether every clause of `cond` holds for `facts`."""
    for key, spec in cond.items():
        if key == "any":
            if not any(matches(sub, facts) for sub in spec):
                return False
            continue
        if key == "all":
            if not all(matches(sub, facts) for sub in spec):
                return False
            continue
        value = facts[key]
        if isinstance(spec, dict):
            for op, arg in spec.items():
                if op == "ne":  # unknown differs from any known value; `ne: null` means "is known"
                    if value == arg:
                        return False
                    continue
                if value is None or not _OPS[op][0](value, arg):
                    return False
        elif isinstance(spec, list):
            if value not in spec:
                return False
        elif value != spec:
            return False
    return True


def describe(cond: dict) -> str:
    """Render a condition for people: `goal = behavior, labeled_examples > 50`."""
    if not cond:
        return "always"
    parts = []
    for key, spec in cond.items():
        if key in ("any", "all"):
            joiner = " or " if key == "any" else " and "
            parts.append("(" + joiner.join(describe(sub) for sub in spec) + ")")
        elif isinstance(spec, dict):
            parts.extend(f"{key} {_OPS[op][1]} {_show(arg)}" for op, arg in spec.items())
        elif isinstance(spec, list):
            parts.append(f"{key} in {{{', '.join(_show(v) for v in spec)}}}")
        else:
            parts.append(f"{key} = {_show(spec)}")
    return ", ".join(parts)


def _show(value) -> str:
    if value is None:
        return "unknown"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and value >= 10000:
        return f"{value:,}"
    return str(value)


@lru_cache(maxsize=1)
def rules() -> tuple[Rule, ...]:
    """Load and check the rules table; a broken table fails here, loudly."""
    rows = load_yaml(Path(__file__).parent / "data" / "rules.yaml")
    table = tuple(Rule(**row) for row in rows)
    seen = set()
    for rule in table:
        if rule.id in seen:
            raise ValueError(f"rules.yaml: duplicate rule id `{rule.id}`")
        seen.add(rule.id)
    return table
