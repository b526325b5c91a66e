"""--dry-run: the resolved recipe, a data summary, the memory estimate and the launch commands. No weights load.

Each method's definition names its data summary here (`summary`); the memory figure comes from the one conversion
of a recipe into the estimator's Setup (adaptkit.methods.registry.recipe_setup), the same as `estimate --recipe`,
the export headers and advise --emit-recipe.
"""

from __future__ import annotations

import shlex

from adaptkit.errors import InputError
from adaptkit.recipe.load import as_yaml
from adaptkit.recipe.schema import Recipe
from adaptkit.runners.data import PromptData, Rows, Splits, label_counts
from adaptkit.models import resolve_model


def data_summary(recipe: Recipe, splits: Splits, allowed: bool = False) -> dict:
    """Training data: rows, labels, a sample, and the sample tokenized with the model's own tokenizer."""
    d = recipe.data
    summary = {"train_rows": len(splits.train), "eval_rows": len(splits.eval), "eval_source": splits.eval_source or "none"}
    if splits.kind == "classification":
        summary["labels"] = {str(k): v for k, v in sorted(label_counts(splits.train, d.label_column).items(), key=lambda kv: str(kv[0]))}
        if splits.eval:
            summary["eval_labels"] = {str(k): v for k, v in sorted(label_counts(splits.eval, d.label_column).items(), key=lambda kv: str(kv[0]))}
        texts = [r[d.text_column] for r in splits.train]
        sample = {"text": texts[0], "label": str(splits.train[0][d.label_column])}
    elif splits.kind == "pairs":
        texts = [_text(r[d.prompt_column]) + " " + max(_text(r[d.chosen_column]), _text(r[d.rejected_column]), key=len) for r in splits.train]
        sample = {"prompt": splits.train[0][d.prompt_column], "chosen": splits.train[0][d.chosen_column],
                  "rejected": splits.train[0][d.rejected_column]}
    elif splits.kind == "feedback":
        from adaptkit.methods.preference import rating

        texts = [_text(r[d.prompt_column]) + " " + _text(r[d.completion_column]) for r in splits.train]
        up = sum(bool(rating(r[d.label_column])) for r in splits.train)
        summary["ratings"] = {"up": up, "down": len(splits.train) - up}
        sample = {"prompt": splits.train[0][d.prompt_column], "completion": splits.train[0][d.completion_column],
                  "label": splits.train[0][d.label_column]}
    elif splits.kind == "prompts":
        texts = [_text(r[d.prompt_column]) for r in splits.train]
        sample = dict(splits.train[0])
        summary["rewards"] = reward_summary(recipe, allowed)
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


def reward_summary(recipe: Recipe, allowed: bool) -> list[str]:
    """rlhf.rewards resolved: each function, its settings and weight; a user function is imported only with consent."""
    from adaptkit.methods.rewards import BUILTINS
    from adaptkit.recipe.consent import import_function

    lines = []
    for number, r in enumerate(recipe.rlhf.rewards):
        if r.builtin:
            used = {"exact_match": ("column",), "numeric": ("column", "tolerance"), "regex": ("pattern",),
                    "length_penalty": ("max_chars",)}.get(r.function, ())
            settings = ", ".join(f"{k}={getattr(r, k)!r}" for k in used)
            doc = (BUILTINS[r.function].__doc__ or "").strip().splitlines()[0]
            lines.append(f"{r.weight:g} x {r.function}({settings}): {doc}")
        elif allowed:
            function = import_function(r.function, f"rlhf.rewards.{number}.function")
            lines.append(f"{r.weight:g} x {r.function}: imported ({function.__module__}.{function.__name__})")
        else:
            lines.append(f"{r.weight:g} x {r.function}: not imported (needs --allow-code)")
    return lines


def prompting_summary(recipe: Recipe, data: PromptData, allowed: bool = False) -> dict:
    block = getattr(recipe, "prompts", None)
    compares = [v.name for v in block.variants] if block else recipe.icl.shots
    return {"dev_rows": len(data.rows), "pool_rows": len(data.pool), "labels": data.labels, "compares": compares,
            "backend": recipe.backend.kind}


def rag_summary(recipe: Recipe, data: Rows, allowed: bool = False) -> dict:
    from pathlib import Path

    from adaptkit.runners.rag import corpus_files, index_status

    corpus = Path(recipe.rag.corpus)
    if not corpus.is_dir():
        raise InputError(f"rag.corpus: {corpus} is not a folder")
    files, skipped = corpus_files(corpus)
    return {"questions": len(data.rows), "corpus_files": len(files), "skipped": [f"{p}: {why}" for p, why in skipped],
            "index": recipe.rag.index_dir, "index_status": index_status(Path(recipe.rag.index_dir))}


def tools_summary(recipe: Recipe, data: Rows, allowed: bool = False) -> dict:
    """The tools and their JSON schemas; custom tools are imported only with the user's consent."""
    from adaptkit.runners.tools import load_tools

    tools = load_tools(recipe, import_custom=allowed)
    specs = {name: tool.spec for name, tool in tools.items()}
    skipped = [f"{t.function} (not imported: needs --allow-code)" for t in recipe.tools.custom if not allowed]
    return {"tasks": len(data.rows), "tools": list(specs) + skipped,
            "state_changing": [n for n, t in tools.items() if t.changes_state], "tool_schemas": specs}


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


def memory(recipe: Recipe, gpu_name: str | None = None, gpu_memory_gb: float | None = None, recipe_ref: str = "RECIPE",
           processes: int = 1, overrides: tuple[str, ...] = ()) -> dict:
    """The estimate for this recipe on one GPU (given, or detected), or per GPU over `processes` with the recipe's
    sharding; each step-down suggestion with the overrides that apply it."""
    from adaptkit.estimator.architectures import load_model
    from adaptkit.estimator.report import estimate, find_device
    from adaptkit.methods.registry import recipe_setup, with_recipe_changes

    if recipe.adapter == "vendor":
        return {"note": f"trained by the vendor at {recipe.backend.base_url}: nothing runs on this machine"}
    device, _ = find_device(gpu_name, gpu_memory_gb)
    try:
        arch = load_model(resolve_model(recipe.model), online=False)
        setup = recipe_setup(recipe, processes)
        result = estimate(arch, setup, device)
    except InputError as exc:
        return {"note": f"no memory estimate: {exc}"}
    with_recipe_changes(recipe, setup.resolved(), result["suggestions"])
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


def launch_commands(recipe_ref: str, overrides: tuple[str, ...]) -> dict:
    tail = " ".join(shlex.quote(x) for x in (recipe_ref, *overrides))
    return {
        "one_gpu_or_cpu": f"adaptkit run {tail}",
        "multi_gpu": f"adaptkit run {tail} --num-processes 4   # = accelerate launch --num_processes 4 -m adaptkit run {tail}",
        "fsdp_or_deepspeed": f"adaptkit run {tail} --num-processes 8 --accelerate-config fsdp.yaml",
        "multi_node": (f"accelerate launch --num_machines 2 --machine_rank $RANK --main_process_ip $MASTER_ADDR "
                       f"--main_process_port 29500 --num_processes 16 -m adaptkit run {tail}   # run on each node"),
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
            gpu_name: str | None = None, gpu_memory_gb: float | None = None, processes: int = 1) -> dict:
    """The whole --dry-run report; what the method's definition names summarises the data."""
    from adaptkit.methods.registry import import_ref
    from adaptkit.recipe.consent import describe_code

    definition = recipe.definition
    served_remotely = not definition.trains and recipe.backend.kind != "local"
    report = {"recipe": as_yaml(recipe), "data": import_ref(definition.summary)(recipe, data, allowed),
              "memory": {"note": "served by the endpoint"} if served_remotely else memory(recipe, gpu_name, gpu_memory_gb,
                                                                                              recipe_ref, processes, overrides),
              "code": describe_code(recipe, allowed),
              "commands": launch_commands(recipe_ref, overrides) if definition.trains and recipe.adapter != "vendor" else
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
