"""What a run leaves behind besides the model: metrics.json (atomic), the model card, the loss curve, the recipe."""

from __future__ import annotations

import json
from pathlib import Path

from adaptkit._files import write_atomic
from adaptkit.recipe.schema import Recipe


def loss_curve(log_history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(e["step"], e["loss"]) for e in log_history if "loss" in e and "step" in e]
    evals = [(e["step"], e["eval_loss"]) for e in log_history if "eval_loss" in e and "step" in e]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=110)
    if train:
        ax.plot(*zip(*train), label="train loss", color="#1f77b4")
    if evals:
        ax.plot(*zip(*evals), "o-", label="eval loss", color="#d62728")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def reward_curve(log_history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [(e["step"], e["reward"]) for e in log_history if "reward" in e and "step" in e]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=110)
    if points:
        ax.plot(*zip(*points), label="mean reward of rollouts", color="#2ca02c")
    ax.set_xlabel("policy step")
    ax.set_ylabel("reward")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _digest(reference: str | None) -> str:
    """` (sha256 0123abcd...)` of a local data file: which data trained it, checkable later; empty for a hub dataset."""
    from adaptkit._files import sha256_of

    found = sha256_of(Path(reference)) if reference else None
    return f" (sha256 {found[:16]})" if found else ""


def model_card(recipe: Recipe, metrics: dict, labels: list, where: str = "", extra_load: str = "", train: dict | None = None) -> str:
    """The model card: what was trained, how well, and the calls that load it (`where`: the folder inside output_dir)."""
    adapter = recipe.adapter
    e = metrics["eval"]
    scores = ", ".join(f"{k} {v:.4f}" for k, v in e.items() if isinstance(v, (int, float)) and not isinstance(v, bool))
    folder = f"{recipe.output_dir}/{where}" if where else recipe.output_dir
    if recipe.task == "sequence_classification":
        if adapter == "none":
            load = (f"from transformers import AutoModelForSequenceClassification, AutoTokenizer\n"
                    f"model = AutoModelForSequenceClassification.from_pretrained({folder!r})\n"
                    f"tokenizer = AutoTokenizer.from_pretrained({folder!r})")
        else:
            load = (f"from transformers import AutoModelForSequenceClassification, AutoTokenizer\n"
                    f"from peft import PeftModel\n"
                    f"labels = {[str(x) for x in labels]}\n"
                    f"base = AutoModelForSequenceClassification.from_pretrained(\n"
                    f"    {recipe.model!r}, num_labels=len(labels),\n"
                    f"    id2label=dict(enumerate(labels)), label2id={{l: i for i, l in enumerate(labels)}})\n"
                    f"model = PeftModel.from_pretrained(base, {folder!r})\n"
                    f"tokenizer = AutoTokenizer.from_pretrained({folder!r})")
    elif recipe.task == "text_to_image":
        load = (f"import torch\nfrom diffusers import StableDiffusionPipeline\n"
                f"pipe = StableDiffusionPipeline.from_pretrained({recipe.model!r}, safety_checker=None)\n"
                f"pipe.load_lora_weights({folder!r})\n"
                f"image = pipe('a red circle', generator=torch.Generator().manual_seed(0)).images[0]")
    elif recipe.task in ("image_text_to_text", "speech_recognition"):
        from adaptkit.methods.base import AUTO

        auto, reader = AUTO[recipe.task]
        load = f"from transformers import {auto}, {reader}\nprocessor = {reader}.from_pretrained({folder!r})\n"
        if adapter == "none":
            load += f"model = {auto}.from_pretrained({folder!r})"
        else:
            load += f"from peft import PeftModel\nmodel = PeftModel.from_pretrained({auto}.from_pretrained({recipe.model!r}), {folder!r})"
    elif recipe.task == "image_classification":
        load = (f"from transformers import AutoImageProcessor, AutoModelForImageClassification\n"
                f"processor = AutoImageProcessor.from_pretrained({folder!r})\n")
        if adapter == "none":
            load += f"model = AutoModelForImageClassification.from_pretrained({folder!r})"
        else:
            load += (f"from peft import PeftModel\n"
                     f"labels = {[str(x) for x in labels]}\n"
                     f"base = AutoModelForImageClassification.from_pretrained(\n"
                     f"    {recipe.model!r}, num_labels=len(labels), ignore_mismatched_sizes=True,\n"
                     f"    id2label=dict(enumerate(labels)), label2id={{l: i for i, l in enumerate(labels)}})\n"
                     f"model = PeftModel.from_pretrained(base, {folder!r})")
    elif adapter == "none":
        load = (f"from transformers import AutoModelForCausalLM, AutoTokenizer\n"
                f"model = AutoModelForCausalLM.from_pretrained({folder!r})\n"
                f"tokenizer = AutoTokenizer.from_pretrained({folder!r})")
    else:
        load = (f"from peft import AutoPeftModelForCausalLM\nfrom transformers import AutoTokenizer\n"
                f"model = AutoPeftModelForCausalLM.from_pretrained({folder!r})\n"
                f"tokenizer = AutoTokenizer.from_pretrained({folder!r})")
    t = train or metrics["train"]
    return f"""---
library_name: {"peft" if adapter != "none" else "transformers"}
base_model: {recipe.model}
tags: [adaptkit, {recipe.method}, {recipe.task}]
---
# {Path(recipe.output_dir).name}

Trained by `adaptkit run` with method `{recipe.method}` ({"full weights" if adapter == "none" else adapter}) on
`{recipe.model}` for `{recipe.task}`.

- Training data: `{recipe.data.training_set}`{_digest(recipe.data.train)}; evaluation data: `{recipe.data.eval or "held out from training"}`{_digest(recipe.data.eval)}
- Trainable parameters: {t["trainable_params"]:,} of {t["total_params"]:,}
- Training: {t["runtime_s"]:.1f} s, {t["samples_per_second"]:.1f} samples/s, final loss {t["final_loss"]:.4f}
- Evaluation: {scores or "none"}
{f"- Labels: {', '.join(str(x) for x in labels)}" if labels else ""}

## Load it

```python
{load}{extra_load}
```

## Files

`metrics.json` (the numbers above), `recipe.yaml` (the exact recipe that ran; `adaptkit run recipe.yaml`
repeats it), `train_log.jsonl` (every logged step), `loss_curve.png`.

Re-run safety and regression evaluations before deploying any fine-tuned model.
"""


def name_the_base(recipe: Recipe, folder: Path) -> None:
    """PEFT records the folder the base was loaded from (in adapter_config.json, and its card in each checkpoint); a run
    names it by its hub id instead, so the adapter loads anywhere and no file points inside this environment."""
    from adaptkit.models import resolve_model

    loaded_from = resolve_model(recipe.model)
    if loaded_from == recipe.model:
        return
    for config in [folder / "adapter_config.json", *folder.glob("checkpoint-*/adapter_config.json")]:
        data = json.loads(config.read_text(encoding="utf-8")) if config.is_file() else {}
        if data.get("base_model_name_or_path") == loaded_from:
            data["base_model_name_or_path"] = recipe.model
            write_atomic(config, json.dumps(data, indent=2) + "\n")
    for card in folder.glob("checkpoint-*/README.md"):
        text = card.read_text(encoding="utf-8")
        if loaded_from in text:
            write_atomic(card, text.replace(loaded_from, recipe.model))


def write_training_files(recipe: Recipe, metrics: dict, history: list[dict], labels: list, out: Path, where: str = "",
                         extra_load: str = "", train: dict | None = None, curves: tuple = (loss_curve,)) -> list[str]:
    """A training run's own files in `out`: the model card, labels, curves. The CLI writes recipe.yaml and metrics.json."""
    files = ["README.md"]
    if labels:
        write_atomic(out / "labels.json", json.dumps([str(x) for x in labels], indent=2) + "\n")
        files.append("labels.json")
    for curve in curves:
        name = curve.__name__ + ".png"
        curve(history, out / name)
        files.append(name)
    name_the_base(recipe, out / where if where else out)
    write_atomic(out / "README.md", model_card(recipe, metrics, labels, where, extra_load, train))
    weights = "adapter" if recipe.adapter != "none" else "model"
    samples = [name for name in ("samples.jsonl", "samples.png") if (out / name).is_file()]  # eval answers, scored; drawn captions
    if recipe.task == "text_to_image":
        return ["pytorch_lora_weights.safetensors (diffusers' load_lora_weights)"] + files + ["train_log.jsonl"] + samples
    return [f"{where + '/' if where else ''}{weights} + tokenizer (from_pretrained)"] + files + ["train_log.jsonl"] + samples


SMALL_EVAL = 30  # held-out rows below which one row moves a score by more than 3 points
FLAT_LOSS = 0.98  # the last logged training losses above this share of the first ones: the loss did not fall


def learning_warnings(metrics: dict, history: list[dict]) -> list[str]:
    """What a finished run should say about whether it learned: a training loss that did not fall, a score at or below
    its base, an eval set too small to tell methods apart."""
    said = []
    losses = [entry["loss"] for entry in history if isinstance(entry.get("loss"), (int, float))]
    if len(losses) >= 4:
        head, tail = losses[: max(1, len(losses) // 4)], losses[-max(1, len(losses) // 4):]
        first, last = sum(head) / len(head), sum(tail) / len(tail)
        if last > FLAT_LOSS * first:
            said.append(f"the training loss did not fall ({first:.4f} at the start, {last:.4f} at the end): the model learned little; "
                        "train longer (training.epochs, max_steps) or raise training.learning_rate")
    evaluation = metrics.get("eval") or {}
    name = evaluation.get("primary_metric")
    value, base = evaluation.get(name), (evaluation.get("base") or {}).get(name)
    from adaptkit.methods.base import LOWER_IS_BETTER

    lower = name in LOWER_IS_BETTER
    if isinstance(value, (int, float)) and isinstance(base, (int, float)) and (value >= base if lower else value <= base):
        said.append(f"{name} {value:.4f} is not {'below' if lower else 'above'} the base ({base:.4f}, {(evaluation.get('base') or {}).get('kind') or 'without the change'})"
                    ": this run does not beat what it started from")
    leaked = (metrics.get("eval_data") or {}).get("leaked") or {}
    if leaked.get("rows"):
        said.append(f"{leaked['rows']} of the {leaked['of']} eval rows are also in the training data ({leaked['exact']} exact, "
                    f"{leaked['near']} near duplicates): the score on them is overstated; deduplicate the data")
    index, k = metrics.get("index") or {}, evaluation.get("k")
    if isinstance(index.get("chunks"), int) and isinstance(k, int) and k >= index["chunks"]:
        said.append(f"top_k {k} retrieves every one of the corpus's {index['chunks']} chunks: recall_at_k is 1 whatever the "
                    "retrieval; lower rag.top_k or rag.chunk_size to measure it")
    elif index.get("files") == 1 and isinstance(k, int):
        said.append("the corpus is one file: recall_at_k counts files, so it is 1 whatever the retrieval; "
                    + ("answer_in_top_k measures the passages" if "answer_in_top_k" in evaluation else
                       "give the questions their expected answers (rag.answer_column) to measure the passages"))
    rows = (metrics.get("eval_data") or {}).get("rows") or (evaluation.get("interval") or {}).get("rows")
    if isinstance(rows, int) and 0 < rows < SMALL_EVAL:
        interval = evaluation.get("interval") or {}
        spread = f" (95% interval {interval['low']:.2f}-{interval['high']:.2f})" if "low" in interval else ""
        counted = isinstance(value, (int, float)) and 0 <= value <= 1 and abs(value * rows - round(value * rows)) < 1e-6  # a share of rows
        if counted:
            said.append(f"only {rows} eval rows: {name or 'the score'} moves in steps of {1 / rows:.2f}{spread}; differences between "
                        f"methods smaller than that are noise. Give {SMALL_EVAL}+ held-out rows (data.eval) to compare methods")
        else:
            said.append(f"only {rows} eval rows: {name or 'the score'} on so few rows{spread} varies with which rows they are; "
                        f"small differences between methods are noise. Give {SMALL_EVAL}+ held-out rows (data.eval) to compare methods")
    return said

