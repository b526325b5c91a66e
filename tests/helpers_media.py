"""What the image, speech, vision-language and text-to-image tests share: JSONL rows and the recipe advise writes."""

from __future__ import annotations

import json
from pathlib import Path


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def regenerates(folder: Path, script: str, target: Path, sample: str) -> None:
    """The demo's generator (`folder/script --data-only`) writes into `target` the same split files as the demo's, and
    the same bytes for the media file `sample`."""
    import subprocess
    import sys

    made = subprocess.run([sys.executable, str(folder / script), str(target), "--data-only"], capture_output=True, text=True,
                          timeout=120)
    assert made.returncode == 0, made.stderr
    for split in ("train", "eval"):
        assert rows(target / f"{split}.jsonl") == rows(folder / f"{split}.jsonl")
    assert (target / sample).read_bytes() == (folder / sample).read_bytes()


def rows_from(path: Path, column: str, count: int) -> list[dict]:
    """The first `count` rows of a demo file, their media files (`column`) named by absolute paths, to copy elsewhere."""
    found = rows(path)[:count]
    for row in found:
        row[column] = str(Path(path).parent / row[column])
    return found


def refused(invoke, recipe: str, *args, out: Path) -> str:
    """`adaptkit run RECIPE ARGS output_dir=OUT` on bad input: exit 2 with one line and no traceback, and no run folder
    written. Returns the line."""
    result = invoke("run", recipe, *args, f"output_dir={out}")
    assert result.exit_code == 2, result.output
    message = result.stderr.strip()
    assert "Traceback" not in result.output and len(message.splitlines()) == 1, message
    assert not out.exists()
    return message


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
