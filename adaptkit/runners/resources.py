"""What a training run used, beside what the estimator predicted for it.

Each trainer's figures (`measure`, called by `train_metrics`) go in its `train` block; `finish` turns them into the
run's `resources` block: the measured peak (CUDA: torch.cuda.max_memory_allocated of the training phase, with the
reserved figure; CPU: the process's peak RSS, labelled as such and never compared with a GPU prediction), the
tokens per second the Trainer counted, and the estimator's prediction for the same recipe on the same device, with
the error and, past MISS_PCT, the components the estimate assumed.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from pathlib import Path

from adaptkit.errors import InputError
from adaptkit.recipe.schema import Recipe

MISS_PCT = 25.0  # a larger error is pointed out, with what the estimate assumed


def reset_peak() -> None:
    """Start the training phase's peak from here (weights loaded; loading peaks are not what the estimate predicts)."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def _peak_rss_gb() -> float:
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / 1e9 if sys.platform == "darwin" else peak * 1024 / 1e9


def measure(trainer, runtime: float) -> dict:
    """This process's figures for the training that just finished."""
    import torch

    tokens = int(getattr(trainer.state, "num_input_tokens_seen", 0) or 0)
    seconds = max(runtime, 1e-9)
    if torch.cuda.is_available():
        device = torch.cuda.current_device()
        measured = {"device": f"cuda:{device} {torch.cuda.get_device_name(device)}",
                    "measured_peak_gb": round(torch.cuda.max_memory_allocated(device) / 1e9, 3),
                    "reserved_peak_gb": round(torch.cuda.max_memory_reserved(device) / 1e9, 3),
                    "measured_as": "torch.cuda.max_memory_allocated during training (this process)"}
    else:
        measured = {"device": "cpu", "measured_peak_gb": round(_peak_rss_gb(), 3),
                    "measured_as": "peak RSS of the process (CPU run: weights, data, Python and libraries; not a GPU figure)"}
    measured["tokens"] = tokens or None
    measured["tokens_per_second"] = round(tokens / seconds, 1) if tokens else None
    return measured


def predict(recipe: Recipe, tokens: int | None, processes: int = 1, detect: bool = True) -> dict:
    """The estimator's figures for this recipe on the device this machine has (peak GB, its components, tokens/s).
    detect=False: no device (the peak does not depend on it; the speed does)."""
    from adaptkit.estimator.architectures import load_model
    from adaptkit.estimator.report import estimate, find_device
    from adaptkit.methods.registry import recipe_setup
    from adaptkit.models import resolve_model

    device = find_device()[0] if detect else None
    arch = load_model(resolve_model(recipe.model), online=False)
    result = estimate(arch, recipe_setup(recipe, processes), device, tokens=float(tokens) if tokens else None)
    hours = result["estimated_hours"]
    rate = None
    if tokens and hours and hours["low"] > 0:  # the middle of the MFU range, geometrically
        rate = round(tokens / (math.sqrt(hours["low"] * hours["high"]) * 3600), 1)
    return {"predicted_peak_gb": result["peak_memory_gb"], "predicted_device": result["device"],
            "predicted_breakdown": {k: round(v, 3) for k, v in result["breakdown"].items() if v},
            "predicted_tokens_per_second": rate}


def finish(recipe: Recipe, metrics: dict, processes: int = 1) -> None:
    """Move the trainers' measured figures into `metrics["resources"]`, beside the prediction. The run's largest
    stage (RLHF: the policy, usually) is the one compared; every stage's figures are kept."""
    train = metrics.get("train") or {}
    parts = {"": train.pop("resources")} if isinstance(train.get("resources"), dict) else {
        name: part.pop("resources") for name, part in train.items() if isinstance(part, dict) and isinstance(part.get("resources"), dict)}
    if not parts:
        return
    name, measured = max(parts.items(), key=lambda item: item[1]["measured_peak_gb"])
    resources = {**measured, "processes": processes}
    if len(parts) > 1:
        resources["stage"] = name
        resources["stages"] = parts
    try:
        resources.update(predict(recipe, measured.get("tokens"), processes))
    except (InputError, OSError, ValueError) as exc:
        resources["predicted_peak_gb"] = None
        resources["note"] = f"no prediction: {exc}"
    resources["error_pct"] = _error(resources)
    if resources["device"] == "cpu":
        resources["note"] = "a CPU run: its peak RSS is not compared with the GPU estimate"
    if resources["error_pct"] is not None and abs(resources["error_pct"]) > MISS_PCT:
        assumed = ", ".join(f"{k.replace('_', ' ')} {v:.2f}" for k, v in resources["predicted_breakdown"].items())
        resources["miss"] = (f"the measured peak is {resources['error_pct']:+.0f}% off the estimate; it assumed (GB): {assumed}. "
                             "Check the precision, batch, sequence length and checkpointing the run really used")
    metrics["resources"] = resources


def _error(resources: dict) -> float | None:
    """Measured over predicted, in percent; None for a CPU run (its RSS is not a GPU figure) or without a prediction."""
    if resources["device"] == "cpu" or not resources.get("predicted_peak_gb"):
        return None
    return round((resources["measured_peak_gb"] / resources["predicted_peak_gb"] - 1) * 100, 1)


def calibrate(folders: list[str]) -> dict:
    """The estimator's error on finished runs: each run's recipe estimated again now, beside the peak it measured."""
    from adaptkit.recipe.load import load_recipe

    rows = []
    for folder in folders:
        path = Path(folder).expanduser()
        if not (path / "metrics.json").is_file() or not (path / "recipe.yaml").is_file():
            raise InputError(f"{folder}: no metrics.json and recipe.yaml here: give the output folders of finished adaptkit runs")
        metrics = json.loads((path / "metrics.json").read_text(encoding="utf-8"))
        measured = metrics.get("resources")
        row = {"run": str(folder), "method": metrics.get("method"), "model": None}
        if not isinstance(measured, dict):
            rows.append({**row, "skipped": "no resources block: a method that trains nothing, or a run from before adaptkit recorded them"})
            continue
        recipe, _, _ = load_recipe(str(path / "recipe.yaml"))
        row["model"] = recipe.model
        try:
            predicted = predict(recipe, None, measured.get("processes", 1), detect=False)["predicted_peak_gb"]
        except (InputError, OSError, ValueError) as exc:
            rows.append({**row, "skipped": f"no estimate: {exc}"})
            continue
        figures = {"device": measured["device"], "measured_peak_gb": measured["measured_peak_gb"], "predicted_peak_gb": predicted}
        rows.append({**row, **figures, "error_pct": _error(figures)})
    errors = [abs(r["error_pct"]) for r in rows if r.get("error_pct") is not None]
    return {"runs": rows, "compared": len(errors),
            "median_abs_error_pct": round(statistics.median(errors), 1) if errors else None,
            "within_25_pct": sum(e <= MISS_PCT for e in errors),
            "note": "GPU runs only: a CPU run's peak RSS is not compared with a GPU estimate"}


def summary(resources: dict) -> list[str]:
    """The run summary's lines for the resources block."""
    tps = resources.get("tokens_per_second")
    speed = f"; {tps:,.0f} tokens/s" if tps else ""
    if resources.get("predicted_tokens_per_second") and tps:
        speed += f" (predicted {resources['predicted_tokens_per_second']:,.0f})"
    predicted = resources.get("predicted_peak_gb")
    if resources["device"] == "cpu":
        line = (f"memory: peak RSS {resources['measured_peak_gb']:.2f} GB on the CPU"
                + (f" (the estimate, {predicted:.2f} GB, is for a GPU)" if predicted else "") + speed)
    else:
        line = (f"memory: measured peak {resources['measured_peak_gb']:.2f} GB on {resources['device']}"
                + (f" vs {predicted:.2f} GB predicted ({resources['error_pct']:+.1f}%)" if predicted else "") + speed)
    return [line] + ([f"  {resources['miss']}"] if resources.get("miss") else [])
