"""What the image, speech, vision-language and text-to-image tests share: JSONL rows and the recipe advise writes."""

from __future__ import annotations

import json
from pathlib import Path


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def write(path: Path, data: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in data))
    return path


def advised_recipe(invoke, data: Path, target: Path, *extra: str) -> dict:
    """The recipe `advise --data DATA --emit-recipe TARGET` writes for an open model and goal behavior, checked to validate."""
    import yaml

    result = invoke("advise", "--data", data, "--set", "weight_access=open", "--set", "goal=behavior", *extra, "--no-input",
                    "--emit-recipe", target)
    assert result.exit_code == 0, result.output
    assert invoke("recipes", "validate", target).exit_code == 0
    return {**yaml.safe_load(target.read_text()), "said": result.output}
