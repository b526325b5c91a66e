"""`adaptkit predict` against a plain batched loop over the same model, in one run.

    python benchmarks/predict.py [--rows 800] [--repeats 3]

Trains the demo classifier briefly (lora_cls, 30 steps) once, then times, alternately, `adaptkit predict` (the
runner's code: load, batch, softmax, label names, scores) and a hand-written loop (PeftModel on the base, the same
tokenizer, batch size and max_length, argmax only) on the same rows. Model loading is outside both timings. Prints
the median rows per second of each and the ratio; exits 1 if adaptkit keeps less than 0.9 of the loop's rate or
their predicted labels differ.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def plain_loop(folder: Path, texts: list[str], batch_size: int, max_length: int) -> tuple[list[str], float]:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from adaptkit.models import embedded_minilm

    labels = json.loads((folder / "labels.json").read_text())
    base = AutoModelForSequenceClassification.from_pretrained(str(embedded_minilm()), num_labels=len(labels))
    model = PeftModel.from_pretrained(base, str(folder)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    started = time.perf_counter()
    out = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(texts[start:start + batch_size], truncation=True, max_length=max_length, padding=True, return_tensors="pt")
            out.extend(labels[int(i)] for i in model(**batch).logits.argmax(-1))
    return out, time.perf_counter() - started


def adaptkit_predict(folder: Path, rows: list[dict], batch_size: int) -> tuple[list[str], float]:
    from adaptkit.runners.predict import load_model, open_run, predict

    run = open_run(str(folder))
    loaded = load_model(run)
    started = time.perf_counter()
    predicted, _ = predict(run, rows, batch_size=batch_size, loaded=loaded)
    return [r["prediction"] for r in predicted], time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=800)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    import torch

    import adaptkit

    torch.set_num_threads(max(1, torch.get_num_threads()))
    source = [json.loads(line) for line in (ROOT / "examples/data/support_tickets_test.jsonl").read_text().splitlines()]
    rows = [source[i % len(source)] for i in range(args.rows)]
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "lora_cls"
        adaptkit.run("lora_cls", [f"output_dir={folder}", "training.max_steps=30", "training.batch_size=8"])
        max_length = 64  # the recipe's training.max_length, which predict uses too
        ours, theirs, same = [], [], True
        for _ in range(args.repeats):
            labels_a, seconds_a = adaptkit_predict(folder, rows, args.batch_size)
            labels_b, seconds_b = plain_loop(folder, [r["text"] for r in rows], args.batch_size, max_length)
            ours.append(len(rows) / seconds_a)
            theirs.append(len(rows) / seconds_b)
            same = same and labels_a == labels_b
    a, b = statistics.median(ours), statistics.median(theirs)
    print(f"{len(rows)} rows, batch {args.batch_size}, median of {args.repeats}: adaptkit predict {a:,.1f} rows/s, "
          f"plain loop {b:,.1f} rows/s, ratio {a / b:.2f}; same labels: {same}")
    return 0 if a / b >= 0.9 and same else 1


if __name__ == "__main__":
    sys.exit(main())
