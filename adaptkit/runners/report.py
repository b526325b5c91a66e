"""What a run leaves behind besides the model: metrics.json (atomic), the model card, the loss curve, the recipe."""

from __future__ import annotations

import json
from pathlib import Path

from adaptkit._files import write_atomic
from adaptkit.recipe.load import as_yaml
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


def model_card(recipe: Recipe, metrics: dict, base_path: str, labels: list) -> str:
    adapter = recipe.adapter
    e = metrics["eval"]
    scores = ", ".join(f"{k} {v:.4f}" for k, v in e.items() if isinstance(v, (int, float)))
    if recipe.task == "sequence_classification":
        if adapter == "none":
            load = (f"from transformers import AutoModelForSequenceClassification, AutoTokenizer\n"
                    f"model = AutoModelForSequenceClassification.from_pretrained(\"{recipe.output_dir}\")\n"
                    f"tokenizer = AutoTokenizer.from_pretrained(\"{recipe.output_dir}\")")
        else:
            load = (f"from transformers import AutoModelForSequenceClassification, AutoTokenizer\n"
                    f"from peft import PeftModel\n"
                    f"labels = {[str(x) for x in labels]}\n"
                    f"base = AutoModelForSequenceClassification.from_pretrained(\n"
                    f"    \"{base_path}\", num_labels=len(labels),\n"
                    f"    id2label=dict(enumerate(labels)), label2id={{l: i for i, l in enumerate(labels)}})\n"
                    f"model = PeftModel.from_pretrained(base, \"{recipe.output_dir}\")\n"
                    f"tokenizer = AutoTokenizer.from_pretrained(\"{recipe.output_dir}\")")
    else:
        where = f"{recipe.output_dir}/policy" if recipe.method == "rlhf" else recipe.output_dir
        if adapter == "none":
            load = (f"from transformers import AutoModelForCausalLM, AutoTokenizer\n"
                    f"model = AutoModelForCausalLM.from_pretrained(\"{where}\")\n"
                    f"tokenizer = AutoTokenizer.from_pretrained(\"{where}\")")
        else:
            load = (f"from peft import AutoPeftModelForCausalLM\nfrom transformers import AutoTokenizer\n"
                    f"model = AutoPeftModelForCausalLM.from_pretrained(\"{where}\")\n"
                    f"tokenizer = AutoTokenizer.from_pretrained(\"{where}\")")
        if recipe.method == "rlhf":
            load += (f"\n# the reward model:\nfrom transformers import AutoModelForSequenceClassification\n"
                     f"reward_model = AutoModelForSequenceClassification.from_pretrained(\"{recipe.output_dir}/reward_model\")")
    t = metrics["train"]
    if recipe.method == "rlhf":
        t = t["policy"]
    return f"""---
library_name: {"peft" if adapter != "none" else "transformers"}
base_model: {recipe.model}
tags: [adaptkit, {recipe.method}, {recipe.task}]
---
# {Path(recipe.output_dir).name}

Trained by `adaptkit run` with method `{recipe.method}` ({"full weights" if adapter == "none" else adapter}) on
`{recipe.model}` for `{recipe.task}`.

- Training data: `{recipe.data.train}`; evaluation data: `{recipe.data.eval or "held out from training"}`
- Trainable parameters: {t["trainable_params"]:,} of {t["total_params"]:,}
- Training: {t["runtime_s"]:.1f} s, {t["samples_per_second"]:.1f} samples/s, final loss {t["final_loss"]:.4f}
- Evaluation: {scores or "none"}
{f"- Labels: {', '.join(str(x) for x in labels)}" if labels else ""}

## Load it

```python
{load}
```

## Files

`metrics.json` (the numbers above), `recipe.yaml` (the exact recipe that ran; `adaptkit run recipe.yaml`
repeats it), `train_log.jsonl` (every logged step), `loss_curve.png`.

Re-run safety and regression evaluations before deploying any fine-tuned model.
"""


def write_outputs(recipe: Recipe, metrics: dict, labels: list, base_path: str, out: Path) -> Path:
    """Write the run's files into `out` (where the run writes; the model card names the final output_dir)."""
    history = metrics.pop("_log_history", [])
    write_atomic(out / "recipe.yaml", "# The resolved recipe adaptkit ran (every default written out).\n" + as_yaml(recipe))
    if labels:
        write_atomic(out / "labels.json", json.dumps([str(x) for x in labels], indent=2) + "\n")
    loss_curve(history, out / "loss_curve.png")
    if recipe.method == "rlhf":
        reward_curve(history, out / "reward_curve.png")
    write_atomic(out / "README.md", model_card(recipe, metrics, base_path, labels))
    write_atomic(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return out
