"""`adaptkit run lora_cls` against a minimal hand-written PEFT training loop, in one run.

    python benchmarks/runner_vs_peft_loop.py [--epochs N]

Same model (the embedded all-MiniLM-L6-v2), data (the support-ticket demo), LoRA settings, learning
rate, batch size, max length, seed, linear schedule, gradient clipping and per-epoch evaluation. Each
side runs in its own process so its peak RSS is its own; the two alternate, --repeats times each, since
a 2-core machine's throughput wanders by several percent between identical runs. Prints the median
samples per second (and the ratio), mean eval accuracy and peak RSS; exits 1 if the ratio is below 0.95
or adaptkit's mean accuracy is lower.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

LOOP = r'''
import json, resource, sys, time
import numpy as np, torch
from torch.utils.data import DataLoader
from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, get_linear_schedule_with_warmup, set_seed
from peft import LoraConfig, TaskType, get_peft_model

cfg = json.loads(sys.argv[1])
set_seed(cfg["seed"])
rows = lambda p: [json.loads(l) for l in open(p, encoding="utf-8") if l.strip()]
train, test = rows(cfg["train"]), rows(cfg["eval"])
labels = sorted({r["label"] for r in train})
ids = {l: i for i, l in enumerate(labels)}
tok = AutoTokenizer.from_pretrained(cfg["model"])
model = AutoModelForSequenceClassification.from_pretrained(cfg["model"], num_labels=len(labels))
model = get_peft_model(model, LoraConfig(task_type=TaskType.SEQ_CLS, r=cfg["r"], lora_alpha=cfg["alpha"],
                                         lora_dropout=cfg["dropout"], target_modules=cfg["targets"]))
def encode(rs):
    return [{**tok(r["text"], truncation=True, max_length=cfg["max_length"]), "labels": ids[r["label"]]} for r in rs]
collate = DataCollatorWithPadding(tok)
generator = torch.Generator().manual_seed(cfg["seed"])
train_loader = DataLoader(encode(train), batch_size=cfg["batch_size"], shuffle=True, collate_fn=collate, generator=generator)
test_loader = DataLoader(encode(test), batch_size=max(16, cfg["batch_size"]), collate_fn=collate)
optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg["lr"], weight_decay=0.0)
steps = len(train_loader) * cfg["epochs"]
schedule = get_linear_schedule_with_warmup(optimizer, 0, steps)

def evaluate():
    model.eval(); right = 0
    with torch.no_grad():
        for batch in test_loader:
            right += (model(**batch).logits.argmax(-1) == batch["labels"]).sum().item()
    model.train()
    return right / len(test)

model.train()
start = time.perf_counter()
for epoch in range(cfg["epochs"]):
    for batch in train_loader:
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step(); schedule.step(); optimizer.zero_grad()
    accuracy = evaluate()
seconds = time.perf_counter() - start
print(json.dumps({"samples_per_second": len(train) * cfg["epochs"] / seconds, "accuracy": accuracy,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
'''

ADAPTKIT = r'''
import json, resource, sys
import adaptkit
result = adaptkit.run(sys.argv[1], sys.argv[2:])
print(json.dumps({**result.metrics, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
'''  # a process of its own (like the loop's): its peak memory is its own


def run_adaptkit(epochs: int, env: dict) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        run = subprocess.run([sys.executable, "-c", ADAPTKIT, "lora_cls", f"output_dir={tmp}/out", f"training.epochs={epochs}"],
                             capture_output=True, text=True, env=env, cwd=ROOT)
    if run.returncode != 0:
        raise SystemExit(run.stderr[-3000:])
    metrics = json.loads(run.stdout.strip().splitlines()[-1])
    return {"samples_per_second": metrics["train"]["samples_per_second"], "accuracy": metrics["eval"]["accuracy"],
            "peak_rss_mb": metrics["peak_rss_mb"]}


def run_loop(config: dict, env: dict) -> dict:
    loop = subprocess.run([sys.executable, "-c", LOOP, json.dumps(config)], capture_output=True, text=True, env=env)
    if loop.returncode != 0:
        raise SystemExit(loop.stderr[-3000:])
    return json.loads(loop.stdout.strip().splitlines()[-1])


def summarise(rows: list[dict]) -> dict:
    return {"samples_per_second": statistics.median(r["samples_per_second"] for r in rows),
            "accuracy": statistics.mean(r["accuracy"] for r in rows), "peak_rss_mb": max(r["peak_rss_mb"] for r in rows)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None, help="default: the recipe's")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from adaptkit.recipe.load import load_recipe
    from adaptkit.models import resolve_model

    recipe, _, _ = load_recipe("lora_cls")
    epochs = args.epochs or int(recipe.training.epochs)
    t, lora = recipe.training, recipe.lora
    env = {**os.environ, "ADAPTKIT_FAKE_GPUS": "0", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    config = {"model": resolve_model(recipe.model), "train": recipe.data.train, "eval": recipe.data.eval, "seed": t.seed,
              "r": lora.r, "alpha": lora.alpha, "dropout": lora.dropout, "targets": lora.target_modules, "lr": t.learning_rate,
              "batch_size": t.batch_size, "max_length": t.max_length, "epochs": epochs}
    ours_runs, loop_runs = [], []
    for repeat in range(args.repeats):  # alternate which goes first
        pair = [lambda: ours_runs.append(run_adaptkit(epochs, env)), lambda: loop_runs.append(run_loop(config, env))]
        for step in (pair if repeat % 2 == 0 else pair[::-1]):
            step()
    ours, baseline = summarise(ours_runs), summarise(loop_runs)
    ratio = ours["samples_per_second"] / baseline["samples_per_second"]
    print(f"lora_cls, {epochs} epochs, {args.repeats} runs each (alternating), {os.cpu_count()} CPUs")
    print(f"{'':28} {'samples/s':>10} {'accuracy':>9} {'peak RSS MB':>12}")
    for name, row in (("adaptkit run lora_cls", ours), ("hand-written PEFT loop", baseline)):
        print(f"{name:28} {row['samples_per_second']:10.1f} {row['accuracy']:9.4f} {row['peak_rss_mb']:12.0f}")
    print(f"throughput ratio (adaptkit / loop, medians): {ratio:.3f}; accuracy difference (means): "
          f"{ours['accuracy'] - baseline['accuracy']:+.4f}")
    print("runs: adaptkit " + ", ".join(f"{r['samples_per_second']:.1f}/{r['accuracy']:.4f}" for r in ours_runs)
          + "; loop " + ", ".join(f"{r['samples_per_second']:.1f}/{r['accuracy']:.4f}" for r in loop_runs))
    return 0 if ratio >= 0.95 and ours["accuracy"] >= baseline["accuracy"] else 1


if __name__ == "__main__":
    sys.exit(main())
