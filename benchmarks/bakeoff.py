"""Two real bake-offs through `adaptkit run` and `adaptkit compare`, offline, for the README's compare tables.

    python benchmarks/bakeoff.py [--sft-steps 60] [--full-steps 200] [--model HUB_ID] [--out benchmarks/results]

1. Classification (the support-ticket demo, 80 held-out tickets): prompt_engineering and in_context_learning on a
   local causal LM against lora_cls (LoRA on the embedded MiniLM, the demo recipe as shipped). Ranked by accuracy.
2. Generation (the instruction demo, the first 24 held-out rows): prompt_engineering, in_context_learning, LoRA SFT
   (lora_sft, --sft-steps steps) and full-weight SFT (instruction_tuning, --full-steps steps) on the same causal LM.
   Ranked by ROUGE-L.

No instruction-tuned causal LM can be downloaded here, so the causal LM is a randomly initialised 2-layer Llama built
by this script (the embedded MiniLM's tokenizer): the prompting rows show the mechanics, the costs and a chance-level
score, not what an instruct model would reach. Pass --model HUB_ID_OR_PATH to use a real one (online or local).
Writes bakeoff.md and bakeoff.json to --out and prints both tables.
"""

from __future__ import annotations

import argparse
import json
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "examples" / "data"


def tiny_causal_lm(folder: Path) -> str:
    """The test suite's tiny causal LM (benchmarks/gpu_truth.py builds it), seeded."""
    import torch

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from gpu_truth import tiny_model

    torch.manual_seed(0)
    return tiny_model(folder)


@contextlib.contextmanager
def working_folder(folder: Path):
    """Compare's table names runs by the folders given: short relative ones, from the scratch root."""
    before = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def run_all(runs: dict[str, list[str]], root: Path) -> list[str]:
    """Each run through the library API (adaptkit.run), in this process."""
    import adaptkit

    folders = []
    for name, (recipe, *overrides) in runs.items():
        started = time.perf_counter()
        adaptkit.run(recipe, [*overrides, f"output_dir={root / name}"])
        print(f"  {name}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
        folders.append(str(root / name))
    return folders


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="the causal LM for the prompting rows and SFT (default: a tiny random one)")
    parser.add_argument("--sft-steps", type=int, default=60, help="LoRA SFT steps")
    parser.add_argument("--full-steps", type=int, default=200, help="full-weight SFT (instruction_tuning) steps")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import adaptkit
    from adaptkit.cli.compare import table

    report = {}
    with tempfile.TemporaryDirectory(prefix="adaptkit-bakeoff-") as tmp:
        root = Path(tmp)
        model = args.model or tiny_causal_lm(root / "tiny-llama")
        held = root / "instructions_dev.jsonl"
        held.write_text("".join((DATA / "instructions_eval.jsonl").read_text().splitlines(keepends=True)[:24]))
        causal = [f"model={model}", "backend.max_new_tokens=16"]
        tables = {
            "classification": {
                "prompt_engineering": ["prompt_engineering", *causal],
                "icl": ["icl", *causal, "icl.shots=[0,2,4]"],
                "lora_cls": ["lora_cls"],
            },
            "generation": {
                "prompt_engineering": ["prompt_engineering", *causal, "task=causal_lm", f"data.eval={held}", "prompts.scorer=contains",
                                       "prompts.variants=[{name: plain, template: '{text}'}, {name: concise, template: "
                                       "'{text} Answer in one short sentence.'}]"],
                "icl": ["icl", *causal, "task=causal_lm", f"data.train={DATA / 'instructions_train.jsonl'}", f"data.eval={held}",
                        "icl.shots=[0,2]", "icl.instruction=null", "icl.example_template=null", "icl.query_template=null"],
                "lora_sft": ["lora_sft", f"model={model}", f"data.eval={held}", f"training.max_steps={args.sft_steps}",
                             "training.learning_rate=0.01", "training.batch_size=16", "training.max_new_tokens=16",
                             "training.generate_eval=24", "lora.r=16"],
                "full_sft": ["instruction_tuning", f"model={model}", f"data.eval={held}", f"training.max_steps={args.full_steps}",
                             "training.learning_rate=0.003", "training.batch_size=16", "training.gradient_accumulation=1",
                             "training.max_length=128", "training.gradient_checkpointing=false", "training.max_new_tokens=16",
                             "training.generate_eval=24"],
            },
        }
        for task, runs in tables.items():
            print(f"{task}:", file=sys.stderr)
            folders = [str(Path(f).relative_to(root)) for f in run_all(runs, root / task)]  # short names in the table
            with working_folder(root):
                comparison = adaptkit.compare(folders, output_dir=f"compare-{task}")
            report[task] = {"compare": comparison.to_dict(), "table": "\n".join(table(comparison))}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bakeoff.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [f"# Bake-offs (`python benchmarks/bakeoff.py --sft-steps {args.sft_steps} --full-steps {args.full_steps}`)", "",
             f"causal LM: {args.model or 'a random-weight 2-layer Llama (no instruct model offline)'}", ""]
    for task, part in report.items():
        lines += [f"## {task}", "", "```", part["table"].rstrip(), "```", ""]
    (args.out / "bakeoff.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
