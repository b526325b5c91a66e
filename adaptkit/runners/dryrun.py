"""--dry-run: the resolved recipe, a data summary, the memory estimate and the launch commands. No weights load.

Each method's definition names its data summary here (`summary`); the memory figure comes from the one conversion
of a recipe into the estimator's Setup (adaptkit.methods.registry.recipe_setup), the same as `estimate --recipe`,
the export headers and advise --emit-recipe.
"""

from __future__ import annotations

import shlex

from adaptkit.errors import InputError
from adaptkit.launch import Launch
from adaptkit.recipe.load import as_yaml
from adaptkit.recipe.schema import Recipe
from adaptkit.runners.data import Splits, response_text
from adaptkit.models import resolve_model


def counts(splits: Splits) -> dict:
    """The rows of each split and where the eval rows came from: the start of a training method's data summary."""
    said = {"train_rows": len(splits.train), "eval_rows": len(splits.eval), "eval_source": splits.eval_source or "none"}
    if splits.balance:
        said["balance"] = splits.balance
    if splits.mix is not None:
        said["sources"] = [dict(source) for source in splits.mix.sources]
    if splits.leaked:
        said["leakage"] = (f"{splits.leaked['rows']} of {splits.leaked['of']} eval rows also in train ({splits.leaked['exact']} exact, "
                           f"{splits.leaked['near']} near; {splits.leaked['method']})" + (
                               (": the real run refuses unless --accept-leakage" if splits.eval_source and "%" not in splits.eval_source
                                else ": the held-out share is drawn from the same file; deduplicate it") if splits.leaked["rows"] else ""))
    return said


def text(value) -> str:
    """A prompt or response as text: a string, or the contents of a message list (anything else as its str)."""
    return response_text(value) if isinstance(value, list) else str(value)


def tokenized(recipe: Recipe, summary: dict, texts: list[str] | None, conversations: list | None = None, mix=None) -> dict:
    """The data summary with its first example tokenized by the model's own tokenizer and the length of every example
    against training.max_length. `texts` None: render `conversations` (chat messages) with the chat template first.
    A mix of sources (`mix`, aligned with the texts): each source's tokens too."""
    tokenizer, why = _tokenizer(recipe)
    if tokenizer is None:
        summary["tokenized"] = why
        return summary
    if texts is None:
        if not getattr(tokenizer, "chat_template", None):
            raise InputError(f"data.messages_column is set but the tokenizer of {recipe.model} has no chat template")
        texts = [tokenizer.apply_chat_template(messages, tokenize=False) for messages in conversations]
        summary["rendered"] = texts[0]
    lengths = [len(ids) for ids in tokenizer(texts, truncation=False)["input_ids"]]
    limit = recipe.training.max_length
    ids = tokenizer(texts[0], truncation=True, max_length=limit)["input_ids"]
    summary["tokenized"] = {"input_ids": ids[:48], "tokens": tokenizer.convert_ids_to_tokens(ids[:48]), "length": len(ids)}
    summary["lengths"] = {"max": max(lengths), "mean": round(sum(lengths) / len(lengths), 1),
                          "truncated_at_max_length": sum(n > limit for n in lengths), "max_length": limit}
    if mix is not None and len(mix.origin) == len(lengths):
        for number, source in enumerate(summary.get("sources", [])):
            source["tokens"] = sum(n for n, came in zip(lengths, mix.origin) if came == number)
    return summary


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


def memory(recipe: Recipe, gpu_name: str | None = None, gpu_memory_gb: float | None = None, recipe_ref: str = "RECIPE",
           processes: int = 1, overrides: tuple[str, ...] = ()) -> dict:
    """The estimate for this recipe on one GPU (given, or detected), or per GPU over `processes` with the recipe's
    sharding; each step-down suggestion with the overrides that apply it."""
    from adaptkit.estimator.architectures import load_model
    from adaptkit.estimator.report import estimate, find_device
    from adaptkit.methods.registry import recipe_setup, with_recipe_changes

    if recipe.adapter == "vendor":
        return {"note": f"trained by the vendor at {recipe.backend.base_url}: nothing runs on this machine"}
    if recipe.task == "text_to_image":
        return {"note": "no memory estimate: a diffusion pipeline's UNet is not modelled yet (the run measures its peak in metrics.json)"}
    device, _ = find_device(gpu_name, gpu_memory_gb)
    try:
        arch = load_model(resolve_model(recipe.model), online=False)
        setup = recipe_setup(recipe, processes)
        result = estimate(arch, setup, device)
    except InputError as exc:
        return {"note": f"no memory estimate: {exc}"}
    with_recipe_changes(recipe, result)
    result["recipe"], result["recipe_overrides"] = recipe_ref, list(overrides)
    if setup.objective == "rl":
        b = result["breakdown"]
        result["rollouts"] = (f"rollouts: {setup.batch_size} prompt(s) x {setup.rollouts_per_prompt} samples of {setup.generation_tokens} "
                              f"new tokens per device, KV cache {b['kv_cache']:.2f} GB; "
                              + (f"reward model {b['reward_model']:.2f} GB" if b["reward_model"] else "reward functions: no reward model"))
    if device is None:
        result["note"] = ("no GPU detected or given (--gpu NAME, --gpu-memory-gb N): the figure is for one GPU; "
                          "on this machine the run uses the CPU and system RAM")
    return result


def launch_commands(recipe_ref: str, overrides: tuple[str, ...], launch: Launch | None = None) -> dict:
    """The commands that run this recipe: for the launch asked (--num-processes, --num-machines), laid out per machine;
    with none asked, one device and examples of each way to spread it."""
    from adaptkit.launch import per_machine_commands

    tail = " ".join(shlex.quote(x) for x in (recipe_ref, *overrides))
    if launch is not None and launch.processes > 1:
        laid = per_machine_commands(tail, launch)
        if launch.machines == 1:
            return {"layout": laid["layout"], "run": laid["adaptkit"]}
        return {"layout": laid["layout"], "on_each_machine": laid["adaptkit"], "same_with_accelerate": laid["accelerate"],
                "note": laid["note"]}
    nodes = per_machine_commands(tail, Launch(processes=16, machines=2, main_ip="$MAIN_IP"))
    return {
        "one_gpu_or_cpu": f"adaptkit run {tail}",
        "multi_gpu": f"adaptkit run {tail} --num-processes 4   # = accelerate launch --num_processes 4 -m adaptkit run {tail}",
        "fsdp_or_deepspeed": f"adaptkit run {tail} --num-processes 8 --accelerate-config fsdp.yaml",
        "multi_node": f"{nodes['adaptkit']}   # 2 machines x 8 GPUs: on each, MACHINE_RANK 0 or 1",
    }


def batch_note(recipe: Recipe, processes: int) -> str:
    """The batch of one optimizer step, and how --num-processes splits it."""
    from adaptkit.methods.base import split_batch

    t = recipe.training
    batch, steps = split_batch(t.batch_size, t.gradient_accumulation, t.batch_scope, processes)
    text = (f"{batch * processes * steps} examples per optimizer step = {batch} per device x {processes} process(es) x "
            f"{steps} accumulation")
    if t.batch_scope == "global":
        return text + "; --num-processes N keeps it (divides the per-device batch or accumulation)"
    return text + "; training.batch_scope=per_device: each added process adds its batch"


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


def dry_run(recipe: Recipe, data, recipe_ref: str, overrides: tuple[str, ...], allowed: bool = False,
            gpu_name: str | None = None, gpu_memory_gb: float | None = None, launch: Launch = Launch()) -> dict:
    """The whole --dry-run report; what the method's definition names summarises the data."""
    from adaptkit.methods.registry import import_ref
    from adaptkit.recipe.consent import describe_code

    definition = recipe.definition
    processes = launch.processes
    served_remotely = not definition.trains and recipe.backend.kind != "local"
    report = {"recipe": as_yaml(recipe), "data": import_ref(definition.summary)(recipe, data, allowed),
              "memory": {"note": "served by the endpoint"} if served_remotely else memory(recipe, gpu_name, gpu_memory_gb,
                                                                                              recipe_ref, processes, overrides),
              "code": describe_code(recipe, allowed),
              "commands": launch_commands(recipe_ref, overrides, launch) if definition.trains and recipe.adapter != "vendor" else
              {"run": " ".join(shlex.quote(x) for x in ("adaptkit", "run", recipe_ref, *overrides))}}
    if recipe.adapter == "vendor":
        report["commands"]["start_job"] = report["commands"]["run"] + " --start-job   # uploads the data and starts the paid job"
    if definition.trains and recipe.adapter != "vendor":
        report["batch"] = batch_note(recipe, processes)
    scoring = scoring_note(recipe)
    if scoring:
        report["scoring"] = scoring
    note = output_note(recipe)
    if note:
        report["output"] = note
    return report


def scoring_note(recipe: Recipe) -> str | None:
    """What scores the run's answers, the metric a bake-off ranks it by, and what its base is."""
    from adaptkit.methods.scorers import FOR_TASK, SCORERS

    definition = recipe.definition
    what = definition.scored(recipe)
    if what is None or recipe.task not in FOR_TASK or definition.objective == "rl":
        return None
    if definition.trains and recipe.task == "causal_lm":
        if not recipe.training.generate_eval:
            return None
        what, base = f"the first {recipe.training.generate_eval} eval rows answered after training", "the unadapted model on the same rows"
    elif definition.trains:
        base = "the majority class of the training labels"
    else:
        base = definition.base
    name = recipe.scoring.scorer or FOR_TASK[recipe.task]
    primary = recipe.scoring.primary or (SCORERS[name].primary if name in SCORERS else "its first metric")
    return f"{name} on {what}, ranked by {primary}; base: {base}"
