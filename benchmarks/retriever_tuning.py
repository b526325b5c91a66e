"""Retriever tuning on the embedded MiniLM, measured before and after in one run, offline.

    python benchmarks/retriever_tuning.py [--seeds 1 2 3] [--out benchmarks/results]

Runs the built-in `rag_tuned` recipe (fine-tune all-MiniLM-L6-v2 on the 36 demo questions with in-batch and one hard
negative, sentence-transformers' trainer) once per seed through `adaptkit.run`, and reads each run's held-out scores on
the 28 paraphrased questions (the same facts asked in other words; none is a near duplicate of a training question):
recall@1, recall@3 and MRR of dense retrieval with the base encoder and with the tuned one, on the same chunks.
Writes retriever_tuning.md and .json to --out and prints the table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()
    import adaptkit

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for seed in args.seeds:
            result = adaptkit.run("rag_tuned", [f"training.seed={seed}", f"output_dir={folder}/run{seed}", f"rag.index_dir={folder}/index"])
            scored = result.eval
            rows.append({"seed": seed, "before": {k: scored["base"][k] for k in ("recall_at_1", "recall_at_k", "mrr")},
                         "after": {k: scored[k] for k in ("recall_at_1", "recall_at_k", "mrr")},
                         "train_s": scored["retriever"]["runtime_s"], "pairs": scored["retriever"]["pairs"]})
    names = {"recall_at_1": "recall@1", "recall_at_k": "recall@3", "mrr": "MRR"}
    lines = ["| seed | " + " | ".join(f"{n} before -> after" for n in names.values()) + " | training |", "|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['seed']} | " + " | ".join(f"{row['before'][k]:.3f} -> {row['after'][k]:.3f}" for k in names)
                     + f" | {row['train_s']:.0f} s, {row['pairs']} pairs |")
    mean = {side: {k: statistics.mean(r[side][k] for r in rows) for k in names} for side in ("before", "after")}
    lines.append("| mean | " + " | ".join(f"{mean['before'][k]:.3f} -> {mean['after'][k]:.3f}" for k in names) + " | |")
    table = "\n".join(lines)
    print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "retriever_tuning.md").write_text(table + "\n", encoding="utf-8")
    (out / "retriever_tuning.json").write_text(json.dumps({"runs": rows, "mean": mean}, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
