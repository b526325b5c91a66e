"""Fold a run's LoRA or IA3 adapter into its base (PEFT's merge_and_unload) and save a standalone model: weights,
tokenizer with its chat template, label names in the config, and a model card. Loads with plain transformers."""

from __future__ import annotations

import json
from pathlib import Path

from adaptkit._files import new_folder, staged_folder
from adaptkit.errors import InputError
from adaptkit.methods.base import AUTO, CAUSAL
from adaptkit.runners.predict import load_model, open_run

MERGEABLE = ("LORA", "IA3")


def check(run, dequantize: bool) -> str:
    """Why this run cannot be merged (InputError), or its PEFT type."""
    if not run.adapter:
        raise InputError(f"{run.folder}: this run trained all weights: the folder already is a standalone model "
                         "(AutoModel...from_pretrained it); there is no adapter to merge")
    peft_type = json.loads((run.weights / "adapter_config.json").read_text(encoding="utf-8")).get("peft_type", "?")
    if peft_type not in MERGEABLE:
        raise InputError(f"{run.folder}: a {peft_type} adapter adds virtual tokens at inference, not weight deltas: merging does "
                         "not apply; load it with PeftModel as its README shows")
    if run.recipe.quantization != "none" and not dequantize:
        raise InputError(f"{run.folder}: the base was loaded in {run.recipe.quantization} (QLoRA); merging into quantized weights "
                         "rounds the update away: pass --dequantize to merge into the 16-bit base (it needs that much memory)")
    return peft_type


def merge(run_dir: str, target: str, dequantize: bool = False, trust_remote_code: bool = False) -> dict:
    """Write the merged model to `target` (a new folder; nothing half-written is left behind)."""
    import torch

    run = open_run(run_dir, trust_remote_code=trust_remote_code)
    peft_type = check(run, dequantize)
    out = new_folder(target, "merge")
    dtype = torch.bfloat16 if run.recipe.quantization != "none" else None  # --dequantize: the base in 16 bits
    model, tokenizer = load_model(run, dtype=dtype)
    merged = model.merge_and_unload()
    with staged_folder(out, "merging") as staging:
        merged.save_pretrained(str(staging))
        tokenizer.save_pretrained(str(staging))
        if run.labels:
            (staging / "labels.json").write_text(json.dumps(run.labels, indent=2) + "\n", encoding="utf-8")
        (staging / "README.md").write_text(card(run, peft_type, out), encoding="utf-8")
    return {"merged": str(out), "from": str(run.folder), "base": run.recipe.model, "adapter": peft_type,
            "parameters": sum(p.numel() for p in merged.parameters())}


def card(run, peft_type: str, out: Path) -> str:
    recipe = run.recipe
    auto, reader = AUTO.get(recipe.task, CAUSAL)
    metrics = json.loads((run.folder / "metrics.json").read_text(encoding="utf-8")).get("eval") or {}
    shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float))
    labels = f"\n- Labels (in the config's id2label): {', '.join(run.labels)}" if run.labels else ""
    return (f"---\nbase_model: {recipe.model}\ntags: [adaptkit, {recipe.method}, merged]\n---\n# {out.name}\n\n"
            f"The {peft_type} adapter trained by `adaptkit run` in `{run.folder}` ({recipe.method}, {recipe.task}), merged into "
            f"`{recipe.model}` with PEFT's `merge_and_unload`: a standalone model, no PEFT needed to load it.\n\n"
            f"- Evaluation of the run: {shown or 'none recorded'}{labels}\n\n## Load it\n\n```python\n"
            f"from transformers import {auto}, {reader}\nmodel = {auto}.from_pretrained('{out}')\n"
            f"{'tokenizer' if reader == 'AutoTokenizer' else 'processor'} = {reader}.from_pretrained('{out}')\n```\n")
