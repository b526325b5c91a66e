"""The estimator against what adaptkit's own runs use: measured peak memory, predicted peak, error, tokens/s, MFU.

    python benchmarks/gpu_truth.py                       # on a GPU machine: the full table (about 10 minutes on 80 GB)
    python benchmarks/gpu_truth.py --cpu-smoke --out DIR # the same code path on a tiny model on the CPU (the test suite)

Each cell is a real `adaptkit run` (in this process, one after another): a random-weight model built from the
built-in config of Qwen2.5-0.5B / 1.5B / 7B, Llama-3.2-1B or Llama-3.1-8B (no download), trained for a few optimizer
steps with full fine-tuning, LoRA, QLoRA (4-bit, when bitsandbytes is installed), DPO (LoRA, reference = adapters off)
or prompt tuning, at two sequence lengths and two micro-batch sizes, without gradient checkpointing, on synthetic
text long enough that every sequence is full. The measured peak is the run's own `resources.measured_peak_gb`
(torch.cuda.max_memory_allocated over the training phase), the prediction the estimator's figure for the same recipe.
A cell whose prediction exceeds the device is skipped and said so; `--budget-s` stops starting new cells in time.
Writes benchmarks/results/gpu_truth-DATE-DEVICE.{md,json} (or --out).
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODELS = ("Qwen/Qwen2.5-0.5B", "meta-llama/Llama-3.2-1B", "Qwen/Qwen2.5-1.5B", "Qwen/Qwen2.5-7B", "meta-llama/Llama-3.1-8B")
METHODS = {  # name: (built-in recipe, overrides)
    "full": ("instruction_tuning", []),
    "lora": ("lora_sft", []),
    "qlora": ("lora_sft", ["lora.quantization=4bit"]),
    "dpo": ("dpo", []),
    "prompt": ("lora_sft", ["method=prefix_prompt_tuning", "lora=", "prefix_prompt_tuning.kind=prompt",
                            "prefix_prompt_tuning.num_virtual_tokens=20"]),
}
SHAPES = ((512, 1), (512, 4), (2048, 1), (2048, 4))  # (sequence length, micro-batch)
SMOKE_SHAPES = ((32, 1), (64, 2))
WORDS = ("order refund parcel account password invoice shipping warranty battery screen return store credit delivery "
         "payment charge address customer support ticket price discount member points device repair quote label").split()


def tiny_model(folder: Path) -> str:
    """The test suite's tiny causal LM: 2 layers, width 64, the embedded MiniLM tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = _tokenizer()
    config = LlamaConfig(vocab_size=tokenizer.vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.sep_token_id,
                         bos_token_id=tokenizer.cls_token_id, tie_word_embeddings=True)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def _tokenizer():
    from transformers import AutoTokenizer

    from adaptkit.models import embedded_minilm

    tokenizer = AutoTokenizer.from_pretrained(str(embedded_minilm()))  # its ids fit every catalogue vocabulary
    tokenizer.eos_token, tokenizer.bos_token = tokenizer.sep_token, tokenizer.cls_token
    tokenizer.model_max_length = 1_000_000
    tokenizer.chat_template = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}{{ eos_token }}{% endfor %}"
                               "{% if add_generation_prompt %}assistant:{% endif %}")
    return tokenizer


def real_shape_model(name: str, folder: Path) -> str:
    """Random bf16 weights in the shape of a built-in config, built on the GPU (fast) and saved with the tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from adaptkit.estimator.architectures import catalogue

    fields = dict(catalogue()[name.lower()]["config"])
    model_type = fields.pop("model_type")
    tokenizer = _tokenizer()
    config = AutoConfig.for_model(model_type, **fields, pad_token_id=tokenizer.pad_token_id,
                                  eos_token_id=tokenizer.sep_token_id, bos_token_id=tokenizer.cls_token_id)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    del model
    gc.collect()
    torch.cuda.empty_cache()
    return str(folder)


def write_data(folder: Path, seq_len: int, rows: int) -> dict[str, str]:
    """Prompt/response and preference rows: a prompt of a quarter of `seq_len` words and replies of `seq_len` words, so
    every example is truncated to max_length (every sequence the estimate assumes full is full) and keeps a reply."""
    rng = random.Random(seq_len)
    text = lambda words: " ".join(rng.choice(WORDS) for _ in range(words))  # noqa: E731
    files = {}
    for split, count in (("train", rows), ("eval", 4)):
        sft = [{"prompt": text(seq_len // 4), "response": text(seq_len)} for _ in range(count)]
        pairs = [{"prompt": text(seq_len // 4), "chosen": text(seq_len), "rejected": text(seq_len)} for _ in range(count)]
        for kind, data in (("sft", sft), ("pairs", pairs)):
            path = folder / f"{kind}_{seq_len}_{split}.jsonl"
            path.write_text("".join(json.dumps(row) + "\n" for row in data))
            files[f"{kind}_{split}"] = str(path)
    return files


def predicted(recipe_name: str, overrides: list[str]) -> tuple[float, float | None]:
    """The estimator's peak for the recipe on this device, and its training FLOPs per token."""
    from adaptkit.estimator.architectures import load_model
    from adaptkit.estimator.report import estimate, find_device
    from adaptkit.methods.registry import recipe_setup
    from adaptkit.models import resolve_model
    from adaptkit.recipe.load import load_recipe

    recipe, _, _ = load_recipe(recipe_name, overrides)
    result = estimate(load_model(resolve_model(recipe.model), online=False), recipe_setup(recipe), find_device()[0], tokens=1.0)
    return result["peak_memory_gb"], result["train_flops"]


def run_cell(model: str, method: str, seq_len: int, batch: int, data: dict, out: Path, steps: int) -> dict:
    import adaptkit
    from adaptkit.errors import AdaptkitError

    recipe, extra = METHODS[method]
    kind = "pairs" if method == "dpo" else "sft"
    overrides = [f"model={model}", f"output_dir={out}", f"data.train={data[kind + '_train']}", f"data.eval={data[kind + '_eval']}",
                 f"training.max_length={seq_len}", f"training.batch_size={batch}", "training.gradient_accumulation=1",
                 f"training.max_steps={steps}", "training.gradient_checkpointing=false", "training.epochs=1", *extra]
    try:
        resources = adaptkit.run(recipe, overrides).metrics["resources"]
    except AdaptkitError as exc:
        return {"status": f"failed: {str(exc).splitlines()[0][:160]}"}
    return {"status": "ok", "recipe": recipe, "overrides": overrides, **resources}


def device_info(smoke: bool) -> tuple[str, float | None, float | None]:
    """(device name, memory GB, bf16 peak TFLOP/s from the GPU table) of this machine."""
    if smoke:
        return "cpu", None, None
    import torch

    from adaptkit.estimator.compute import find_gpu

    name = torch.cuda.get_device_name(0)
    memory = torch.cuda.get_device_properties(0).total_memory / 1e9
    try:
        peak = find_gpu(name, strict=False).bf16_tflops
    except Exception:  # a GPU the table does not list: no MFU
        peak = None
    return name, memory, peak


def run_all(args, work: Path, smoke: bool, memory, peak_tflops, has_bnb: bool, started: float, rows: list) -> None:
    """Every cell, in order, into `rows`: built models, data and run folders live in `work`."""
    import torch

    models = ["tiny"] if smoke else args.models
    shapes = SMOKE_SHAPES if smoke else SHAPES
    data = {seq: write_data(work, seq, rows=max(s[1] for s in shapes) * args.steps) for seq, _ in shapes}
    for model_name in models:
        folder = work / re.sub(r"[^A-Za-z0-9.]+", "-", model_name)
        built = None
        for method in args.methods:
            for seq_len, batch in shapes:
                cell = {"model": model_name, "method": method, "seq_len": seq_len, "batch": batch}
                if method == "qlora" and (smoke or not has_bnb):
                    rows.append({**cell, "status": "skipped: 4-bit needs bitsandbytes and a CUDA GPU"})
                    continue
                if time.perf_counter() - started > args.budget_s:
                    rows.append({**cell, "status": f"not run: the {args.budget_s:.0f} s budget was spent"})
                    continue
                if built is None:
                    built = tiny_model(folder) if smoke else real_shape_model(model_name, folder)
                recipe, extra = METHODS[method]
                try:
                    peak_gb, flops = predicted(recipe, [f"model={built}", f"training.max_length={seq_len}", f"training.batch_size={batch}",
                                                        "training.gradient_accumulation=1", "training.gradient_checkpointing=false", *extra])
                except Exception as exc:  # an estimator refusal is a row, not a crash
                    rows.append({**cell, "status": f"no estimate: {exc}"})
                    continue
                if memory is not None and peak_gb > memory * 0.97:
                    rows.append({**cell, "predicted_peak_gb": peak_gb, "status": f"skipped: predicted {peak_gb:.0f} GB > {memory:.0f} GB"})
                    continue
                out = work / "runs" / f"{folder.name}-{method}-{seq_len}-{batch}"
                measured = run_cell(built, method, seq_len, batch, data[seq_len], out, args.steps)
                shutil.rmtree(out, ignore_errors=True)  # a full fine-tune saves the whole model: disk for the next cells
                gc.collect()
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                row = {**cell, **{k: measured.get(k) for k in ("status", "measured_peak_gb", "reserved_peak_gb", "predicted_peak_gb",
                                                               "error_pct", "tokens_per_second")}}
                tps = measured.get("tokens_per_second")
                row["mfu"] = round(tps * flops / (peak_tflops * 1e12), 3) if tps and flops and peak_tflops else None
                rows.append(row)
                print(json.dumps(row), flush=True)
        shutil.rmtree(folder, ignore_errors=True)  # a 7-8B model is 15-16 GB on disk


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-smoke", action="store_true", help="the tiny model on the CPU: checks the code path, measures nothing GPU")
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--steps", type=int, default=3, help="optimizer steps per cell")
    parser.add_argument("--budget-s", type=float, default=540, help="start no new cell after this many seconds")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()

    import importlib.util

    import torch

    smoke = args.cpu_smoke
    if not smoke and not torch.cuda.is_available():
        print("no CUDA GPU here: run with --cpu-smoke to check the code path, or on a GPU machine for the table")
        return 2
    name, memory, peak_tflops = device_info(smoke)
    has_bnb = importlib.util.find_spec("bitsandbytes") is not None
    started = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="gpu-truth-") as scratch:  # models, data and runs: removed at the end
        run_all(args, Path(scratch), smoke, memory, peak_tflops, has_bnb, started, rows)
    errors = [abs(r["error_pct"]) for r in rows if r.get("error_pct") is not None]
    stamp = datetime.date.today().isoformat()
    report = {"date": stamp, "device": name, "device_memory_gb": memory, "bitsandbytes": has_bnb, "steps": args.steps,
              "seconds": round(time.perf_counter() - started, 1), "median_abs_error_pct": statistics.median(errors) if errors else None,
              "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    base = args.out / f"gpu_truth-{stamp}-{re.sub(r'[^A-Za-z0-9]+', '-', name).strip('-')}"
    base.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    base.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))
    return 0


def markdown(report: dict) -> str:
    lines = [f"# Estimator vs measured, {report['device']} ({report['date']})", "",
             f"`python benchmarks/gpu_truth.py`: {report['steps']} optimizer steps a cell, no gradient checkpointing, "
             f"{report['seconds']:.0f} s. "
             + (f"Median |error| {report['median_abs_error_pct']:.1f}%." if report["median_abs_error_pct"] is not None else
                "No error figure: on the CPU the measured column is the process's peak RSS, not a GPU figure."), "",
             "| model | method | seq | batch | measured GB | predicted GB | error | tokens/s | MFU | status |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    fmt = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
    for r in report["rows"]:
        lines.append(f"| {r['model']} | {r['method']} | {r['seq_len']} | {r['batch']} | {fmt(r.get('measured_peak_gb'), '.2f')} | "
                     f"{fmt(r.get('predicted_peak_gb'), '.2f')} | {fmt(r.get('error_pct'), '+.1f')} | "
                     f"{fmt(r.get('tokens_per_second'), ',.0f')} | {fmt(r.get('mfu'), '.1%')} | {r['status']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
