"""The method catalogue (the adaptation table) and the sources behind it, read from data files.

Light on purpose: the advisor, `adaptkit methods` and the wizard read it without loading any method definition.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from adaptkit._yaml import load_yaml

DATA = Path(__file__).parent / "data"


class Evidence(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    claim: str
    sources: list[str]


class Method(BaseModel):
    """One row of the adaptation table."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str
    name: str
    trains: bool = Field(description="the method changes model weights (a training run), or only the prompt or pipeline")
    touches: str = Field(description="what it changes, in two or three words (the table's column)")
    changes: str = Field(description="what the method changes in the model or the pipeline")
    cost_tier: str
    typical_use: str
    data_needs: str
    evidence: list[Evidence]
    cost_rank: int = Field(0, description="position in the catalogue, cheapest first (rubric P1)")

    @property
    def trains_weights(self) -> bool:
        return self.trains


@lru_cache(maxsize=1)
def sources() -> dict[str, str]:
    """Return source id -> citation."""
    return dict(load_yaml(DATA / "sources.yaml"))


@lru_cache(maxsize=1)
def methods() -> dict[str, Method]:
    """Return method id -> Method, in catalogue order; fail loudly on a bad table."""
    rows = load_yaml(DATA / "methods.yaml")
    table = {row["id"]: Method(**row, cost_rank=rank) for rank, row in enumerate(rows)}
    if len(table) != len(rows):
        raise ValueError(f"methods.yaml lists an id twice: {[r['id'] for r in rows]}")
    known = sources()
    for method in table.values():
        for evidence in method.evidence:
            missing = [s for s in evidence.sources if s not in known]
            if missing:
                raise ValueError(f"methods.yaml: `{method.id}` cites unknown sources {missing}")
    return table


METHOD_IDS = tuple(methods())  # catalogue order, cheapest first
TRAINING_METHODS = tuple(m.id for m in methods().values() if m.trains)


def cite(source_id: str) -> str:
    """Return '[ID] citation' for one source id."""
    return f"[{source_id}] {sources()[source_id]}"
