"""--dry-run: the resolved recipe, a data summary, the memory estimate and the launch commands. No weights load."""

from __future__ import annotations

import shlex
from adaptkit.errors import InputError
from adaptkit.recipe.load import as_yaml
from adaptkit.recipe.schema import Recipe
from adaptkit.runners.data import Splits, label_counts
from adaptkit.runners.models import resolve_model


def data_summary(recipe: Recipe, splits: Splits) -> dict:
    d = recipe.data
    summary = {"train_rows": len(splits.train), "eval_rows": len(splits.eval), "eval_source": splits.eval_source or "none"}
    if recipe.task == "sequence_classification":
        summary["labels"] = {str(k): v for k, v in sorted(label_counts(splits.train, d.label_column).items(), key=lambda kv: str(kv[0]))}
        if splits.eval:
            summary["eval_labels"] = {str(k): v for k, v in sorted(label_counts(splits.eval, d.label_column).items(), key=lambda kv: str(kv[0]))}
        texts = [r[d.text_column] for r in splits.train]
        sample = {"text": texts[0], "label": str(splits.train[0][d.label_column])}
    elif recipe.method in ("dpo", "rlhf"):
        texts = [_text(r[d.prompt_column]) + " " + max(_text(r[d.chosen_column]), _text(r[d.rejected_column]), key=len) for r in splits.train]
        sample = {"prompt": splits.train[0][d.prompt_column], "chosen": splits.train[0][d.chosen_column],
                  "rejected": splits.train[0][d.rejected_column]}
    elif d.messages_column:
        texts = None
        sample = {"messages": splits.train[0][d.messages_column]}
    else:
        texts = [r[d.prompt_column] + " " + r[d.response_column] for r in splits.train]
        sample = {"prompt": splits.train[0][d.prompt_column], "response": splits.train[0][d.response_column]}
    summary["sample"] = sample
    tokenizer, why = _tokenizer(recipe)
    if tokenizer is None:
        summary["tokenized"] = why
        return summary
    if texts is None:
        if not getattr(tokenizer, "chat_template", None):
            raise InputError(f"data.messages_column is set but the tokenizer of {recipe.model} has no chat template")
        texts = [tokenizer.apply_chat_template(r[d.messages_column], tokenize=False) for r in splits.train]
        summary["rendered"] = texts[0]
    lengths = [len(ids) for ids in tokenizer(texts, truncation=False)["input_ids"]]
    limit = recipe.training.max_length
    ids = tokenizer(texts[0], truncation=True, max_length=limit)["input_ids"]
    summary["tokenized"] = {"input_ids": ids[:48], "tokens": tokenizer.convert_ids_to_tokens(ids[:48]), "length": len(ids)}
    summary["lengths"] = {"max": max(lengths), "mean": round(sum(lengths) / len(lengths), 1),
                          "truncated_at_max_length": sum(n > limit for n in lengths), "max_length": limit}
    return summary


def _text(value) -> str:
    if isinstance(value, list):
        return " ".join(str(m.get("content", "")) for m in value if isinstance(m, dict))
    return str(value)


def _tokenizer(recipe: Recipe):
    """(tokenizer, None) or (None, why there is no tokenized sample)."""
    try:
        import transformers
    except ImportError:
        return None, "transformers is not installed: no tokenized sample (pip install 'adaptkit[train]')"
    transformers.logging.set_verbosity_error()
    try:  # a dry run never downloads: local folders and the local cache only
        return transformers.AutoTokenizer.from_pretrained(resolve_model(recipe.model), trust_remote_code=recipe.trust_remote_code,
                                                          local_files_only=True), None
    except Exception:
        return None, (f"no tokenized sample: the tokenizer of `{recipe.model}` is not on this machine yet "
                      "(the run downloads it; offline, pass model=PATH to a local copy)")


def memory(recipe: Recipe) -> dict:
    """The estimate for this recipe on the detected hardware, with step-down suggestions."""
    from adaptkit.estimate.architectures import load_model
    from adaptkit.estimate.compute import find_gpu
    from adaptkit.estimate.hardware import detect_gpus
    from adaptkit.estimate.memory import Setup
    from adaptkit.estimate.report import Device, estimate

    try:
        arch = load_model(resolve_model(recipe.model), online=False)
    except InputError as exc:
        return {"note": f"no memory estimate: {exc}"}
    gpus, how = detect_gpus()
    device = Device(min(g.memory_gb for g in gpus), find_gpu(gpus[0].name, strict=False), f"detected by {how}") if gpus else None
    precision = {"auto": "bf16-mixed" if gpus else "fp32", "fp16-mixed": "bf16-mixed"}.get(recipe.training.precision, recipe.training.precision)
    adapter = recipe.adapter
    preference = {}
    if recipe.method == "dpo":
        preference = {"adapter": "lora" if recipe.lora else "none", "dpo_reference": "copy" if recipe.dpo.reference == "copy" else "auto"}
    elif recipe.method == "rlhf":
        policy = recipe.rlhf.policy
        preference = {"adapter": "lora" if recipe.lora else "none", "rl_algorithm": policy.algorithm,
                      "rollouts_per_prompt": policy.num_generations, "generation_tokens": policy.max_completion_length}
    batch = recipe.training.batch_size
    if recipe.method == "rlhf":
        batch = max(1, recipe.rlhf.policy.batch_size // recipe.rlhf.policy.num_generations)
    setup = Setup(
        method=recipe.method,
        precision=precision if adapter == "none" else ("bf16" if gpus else "fp32"),
        quantization=recipe.lora.quantization if recipe.lora else "none",
        batch_size=batch, seq_len=recipe.training.max_length,
        gradient_checkpointing=recipe.training.gradient_checkpointing,
        adapter={"lora": "lora", "ia3": "ia3"}.get(adapter, None) if recipe.method == "lora_adapters" else preference.pop("adapter", None),
        **preference,
        lora_r=recipe.lora.r if recipe.lora else 16,
        lora_targets=_targets(recipe), soft_prompt="prefix" if adapter == "prefix" else "prompt",
        num_virtual_tokens=recipe.prefix_prompt_tuning.num_virtual_tokens if recipe.prefix_prompt_tuning else 20,
        num_gpus=max(1, len(gpus)),
    )
    try:
        result = estimate(arch, setup, device)
    except InputError as exc:
        return {"note": f"no memory estimate: {exc}"}
    if device is None:
        result["note"] = "no GPU detected: this runs on the CPU (system RAM); the GPU figure is for reference"
    return result


def _targets(recipe: Recipe) -> str:
    if not recipe.lora or recipe.lora.target_modules in (None, "all-linear"):
        return "q_proj,v_proj" if recipe.lora and recipe.lora.target_modules is None else "all-linear"
    return ",".join(recipe.lora.target_modules)


def launch_commands(recipe_ref: str, overrides: tuple[str, ...]) -> dict:
    tail = " ".join(shlex.quote(x) for x in (recipe_ref, *overrides))
    return {
        "one_gpu_or_cpu": f"adaptkit run {tail}",
        "multi_gpu": f"adaptkit run {tail} --num-processes 4   # = accelerate launch --num_processes 4 -m adaptkit run {tail}",
        "fsdp_or_deepspeed": f"adaptkit run {tail} --num-processes 8 --accelerate-config fsdp.yaml",
        "multi_node": (f"accelerate launch --num_machines 2 --machine_rank $RANK --main_process_ip $MASTER_ADDR "
                       f"--main_process_port 29500 --num_processes 16 -m adaptkit run {tail}   # run on each node"),
    }


def output_note(recipe: Recipe) -> str | None:
    """What the real run will say about output_dir, said now."""
    from pathlib import Path

    from adaptkit.rundir import MARKER, is_adaptkit_run

    out = Path(recipe.output_dir)
    if not out.is_dir() or not [p for p in out.iterdir() if p.name != MARKER]:
        return None
    if is_adaptkit_run(out):
        return f"output_dir {out} holds an earlier run: the real run refuses unless you pass --overwrite (or --resume)"
    return f"output_dir {out} is not empty and is not an adaptkit run: the real run will refuse it; choose another output_dir"


def dry_run(recipe: Recipe, splits: Splits, recipe_ref: str, overrides: tuple[str, ...], allowed: bool = False) -> dict:
    from adaptkit.recipe.consent import describe_code

    report = {"recipe": as_yaml(recipe), "data": data_summary(recipe, splits), "memory": memory(recipe),
              "code": describe_code(recipe, allowed), "commands": launch_commands(recipe_ref, overrides)}
    note = output_note(recipe)
    if note:
        report["output"] = note
    return report
