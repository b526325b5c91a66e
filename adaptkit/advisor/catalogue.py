"""The method catalogue (adaptation table) and the sources behind it, loaded from data files."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from adaptkit._yaml import load_yaml

DATA = Path(__file__).parent / "data"

METHOD_IDS = (
    "full_finetuning",
    "instruction_tuning",
    "rlhf",
    "dpo",
    "lora_adapters",
    "prefix_prompt_tuning",
    "in_context_learning",
    "prompt_engineering",
    "rag",
    "tool_use",
)
TRAINING_METHODS = (
    "full_finetuning",
    "instruction_tuning",
    "rlhf",
    "dpo",
    "lora_adapters",
    "prefix_prompt_tuning",
)


class Evidence(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    claim: str
    sources: list[str]


class Method(BaseModel):
    """One row of the adaptation table."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str
    name: str
    touches: str = Field(description="what it changes, in two or three words (the table's column)")
    changes: str = Field(description="what the method changes in the model or the pipeline")
    cost_tier: str
    typical_use: str
    data_needs: str
    evidence: list[Evidence]
    cost_rank: int = Field(0, description="position in the catalogue, cheapest first (rubric P1)")

    @property
    def trains_weights(self) -> bool:
        return self.id in TRAINING_METHODS


@lru_cache(maxsize=1)
def sources() -> dict[str, str]:
    """Return source id -> citation."""
    return dict(load_yaml(DATA / "sources.yaml"))


@lru_cache(maxsize=1)
def methods() -> dict[str, Method]:
    """Return method id -> Method, in catalogue order; fail loudly on a bad table."""
    rows = load_yaml(DATA / "methods.yaml")
    table = {row["id"]: Method(**row, cost_rank=rank) for rank, row in enumerate(rows)}
    if set(table) != set(METHOD_IDS) or len(rows) != len(METHOD_IDS):
        raise ValueError(f"methods.yaml must list exactly {METHOD_IDS}, got {[r['id'] for r in rows]}")
    known = sources()
    for method in table.values():
        for evidence in method.evidence:
            missing = [s for s in evidence.sources if s not in known]
            if missing:
                raise ValueError(f"methods.yaml: `{method.id}` cites unknown sources {missing}")
    return table


def cite(source_id: str) -> str:
    """Return '[ID] citation' for one source id."""
    return f"[{source_id}] {sources()[source_id]}"
