"""The early-stopping bake-off against running every method to the end, and the learning-curve forecast, in one run.

    python benchmarks/halving.py [--out benchmarks/results]

On the support-ticket demo (320 training, 80 held-out tickets), with the built-in recipes as shipped:
1. Every candidate to the end: prompt_engineering and icl on a local causal LM (a random 2-layer Llama built here:
   no instruct model offline, so they score at chance), lora_cls, full_cls, ia3_cls and prompt_tuning_cls on all
   their training rows; `adaptkit.compare` picks the winner. Training time: the sum of the runs' training seconds.
2. `adaptkit.bakeoff` on the same candidates (eta 3, --rungs 2 by default: a third of the training rows, then all of
   them for the best third): its winner and the training time it spent.
3. The learning curve of lora_cls from rungs on 1/8, 1/4 and 1/2 of its training rows, forecasting its accuracy on
   all of them, against the accuracy the full run measured in step 1.
Writes halving.md and halving.json to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TRAINED = ("lora_cls", "full_cls", "ia3_cls", "prompt_tuning_cls")


def recipes(folder: Path, model: str, trained: tuple[str, ...] = TRAINED) -> list[str]:
    """The candidates as recipe files: the built-ins, the prompting ones pointed at the local causal LM."""
    import yaml

    from adaptkit.recipe.load import builtin_recipes

    made = []
    for name in ("prompt_engineering", "icl", *trained):
        data = yaml.safe_load(builtin_recipes()[name].read_text())
        for key in ("train", "eval"):
            if data["data"].get(key):
                data["data"][key] = str((builtin_recipes()[name].parent / data["data"][key]).resolve())
        if name in ("prompt_engineering", "icl"):
            data["model"] = model
            data.setdefault("backend", {})["max_new_tokens"] = 8
        path = folder / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        made.append(str(path))
    return made


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--rungs", type=int, default=2, help="the bake-off's rungs (2: a third of the rows, then all)")
    parser.add_argument("--trained", nargs="+", default=list(TRAINED), choices=TRAINED,
                        help="the trained candidates beside prompt_engineering and icl (issue 27's done-when: lora_cls full_cls)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ["ADAPTKIT_LEDGER"] = "off"  # a benchmark's runs are not the user's evidence
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import adaptkit
    from adaptkit.curves import learning_curve, standard_error
    from gpu_truth import tiny_model

    with tempfile.TemporaryDirectory(prefix="adaptkit-halving-") as tmp:
        root = Path(tmp)
        import torch

        torch.manual_seed(0)
        candidates = recipes(root, tiny_model(root / "tiny-llama"), tuple(args.trained))
        eval_data = str(ROOT / "examples" / "data" / "support_tickets_test.jsonl")
        print("every method to the end:", file=sys.stderr)
        everything = adaptkit.compare(candidates, eval_data=eval_data, output_dir=root / "all", log=lambda line: print(line, file=sys.stderr))
        full_s = sum(r.get("training_s") or 0 for r in everything.rows)
        print("the bake-off:", file=sys.stderr)
        halving = adaptkit.bakeoff(candidates, eval_data=eval_data, rungs=args.rungs, output_dir=root / "halving",
                                   log=lambda line: print(line, file=sys.stderr))
        print("lora_cls at 1/8, 1/4 and 1/2:", file=sys.stderr)
        lora = next(c for c in candidates if c.endswith("lora_cls.yaml"))
        points = []
        for share in (8, 4, 2):
            rows = 320 // share
            result = adaptkit.run(lora, [f"data.max_rows={rows}", f"output_dir={root / f'lora-{rows}'}"])
            accuracy = result.eval["accuracy"]
            points.append((rows, accuracy, standard_error(accuracy, result.eval.get("interval"), 80)))
        curve = learning_curve(points, 320)
        measured = next(r["value"] for r in everything.rows if r["recipe"] == lora)

    def winner_of(text: str | None) -> str:
        return Path(text.split(" ", 1)[0]).stem if text else "none"

    report = {"all": {"winner": winner_of(everything.recommendation), "training_s": round(full_s, 1),
                      "rows": [{"recipe": Path(r["recipe"]).stem, "value": r.get("value"), "training_s": r.get("training_s")}
                               for r in everything.rows]},
              "halving": {"winner": winner_of(halving.recommendation), "training_s": halving.spent["training_s"],
                          "rungs": [{**e, "recipe": Path(e["recipe"]).stem} for e in halving.rungs], "stopped": halving.stopped},
              "learning_curve": {"points": points, "forecast_full": curve["forecast"]["full"] if curve else None,
                                 "interval_95": curve["interval_95"]["full"] if curve else None, "measured_full": measured,
                                 "error": round(abs(curve["forecast"]["full"] - measured), 4) if curve else None}}
    share = report["halving"]["training_s"] / report["all"]["training_s"]
    lines = ["| | winner | training time |", "|---|---|---|",
             f"| every method to the end (`adaptkit compare`) | {report['all']['winner']} | {report['all']['training_s']:.0f} s |",
             f"| successive halving (`adaptkit bakeoff --rungs {args.rungs}`, eta 3) | {report['halving']['winner']} | {report['halving']['training_s']:.0f} s "
             f"({share:.0%}) |", "",
             "| rung | " + " | ".join(f"{e['recipe']}" for e in report["halving"]["rungs"]) + " |",
             "|---|" + "---|" * len(report["halving"]["rungs"]),
             "| share, score | " + " | ".join("once, " + f"{e['value']:.3f}" if e["rung"] == "once" else
                                           f"{e['fraction']:.2f}, {e['value']:.3f}" for e in report["halving"]["rungs"]) + " |", ""]
    lc = report["learning_curve"]
    if lc["forecast_full"] is not None:
        lines.append(f"lora_cls learning curve from 40, 80 and 160 rows: forecast {lc['forecast_full']:.3f} at 320 rows "
                     f"(95% {lc['interval_95']}), measured {lc['measured_full']:.3f}: error {lc['error']:.3f}")
    text = "\n".join(lines)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "" if tuple(args.trained) == TRAINED else "-" + "-".join(args.trained)
    (args.out / f"halving{suffix}.md").write_text(text + "\n")
    (args.out / f"halving{suffix}.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
