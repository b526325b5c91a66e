"""Export a recipe as something to paste elsewhere: a standalone script, accelerate configs, a TRL CLI config."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from adaptkit.errors import InputError, one_line
from adaptkit.recipe.schema import Recipe

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
    """(import line, expression) for the recipe's PEFT config."""
    if recipe.lora:
        b = recipe.lora
        return ("from peft import LoraConfig\n",
                f"LoraConfig(task_type={task!r}, r={b.r}, lora_alpha={b.alpha}, lora_dropout={b.dropout}, target_modules={b.target_modules!r})")
    if recipe.ia3:
        return ("from peft import IA3Config\n",
                f"IA3Config(task_type={task!r}, target_modules={recipe.ia3.target_modules!r}, feedforward_modules={recipe.ia3.feedforward_modules!r})")
    if recipe.prefix_prompt_tuning:
        b = recipe.prefix_prompt_tuning
        if b.kind == "prefix":
            return "from peft import PrefixTuningConfig\n", f"PrefixTuningConfig(task_type={task!r}, num_virtual_tokens={b.num_virtual_tokens})"
        if b.init_text:
            return ("from peft import PromptTuningConfig, PromptTuningInit\n",
                    f"PromptTuningConfig(task_type={task!r}, num_virtual_tokens={b.num_virtual_tokens}, prompt_tuning_init=PromptTuningInit.TEXT, "
                    f"prompt_tuning_init_text={b.init_text!r}, tokenizer_name_or_path=MODEL)")
        return "from peft import PromptTuningConfig\n", f"PromptTuningConfig(task_type={task!r}, num_virtual_tokens={b.num_virtual_tokens})"
    return "", "None"


def script(recipe: Recipe, ref: str, filename: str) -> str:
    """A standalone Python script that does what `adaptkit run` does for this recipe."""
    from adaptkit.runners.models import resolve_model
    from adaptkit.runners.train import common_arguments

    if recipe.method == "rlhf":
        return _rlhf_script(recipe, ref, filename)
    classification = recipe.task == "sequence_classification"
    supported = recipe.method in ("full_finetuning", "lora_adapters", "prefix_prompt_tuning", "instruction_tuning", "dpo")
    if not supported or (recipe.method == "dpo" and recipe.dpo.starting_adapter) or recipe.adapter == "prefix" and not classification:
        raise InputError(f"--format script covers the training recipes (supervised, DPO, RLHF); {recipe.method}/{recipe.task} "
                         "is not exported yet (training-free recipes run with adaptkit run)")
    args = common_arguments(recipe, Path(recipe.output_dir), bool(recipe.data.eval), with_precision=False)
    d, t = recipe.data, recipe.training
    peft_import, peft_expression = _peft(recipe, "SEQ_CLS" if classification else "CAUSAL_LM")
    preference = recipe.method == "dpo"
    extra = f"beta={recipe.dpo.beta}, loss_type={recipe.dpo.loss_type!r}, max_length={t.max_length}, " if preference else \
        f"max_length={t.max_length}, packing=False, "
    values = {
        "__TITLE__": f"{recipe.method} on {recipe.model} for {recipe.task}, exported from the adaptkit recipe {ref}.",
        "__REF__": ref, "__FILE__": filename, "__MODEL__": repr(resolve_model(recipe.model)), "__TRAIN__": repr(d.train),
        "__EVAL__": repr(d.eval), "__TEXT__": repr(d.text_column), "__LABEL__": repr(d.label_column), "__MAX_ROWS__": repr(d.max_rows),
        "__MAX_LENGTH__": repr(t.max_length), "__SEED__": repr(t.seed), "__OUTPUT_DIR__": repr(recipe.output_dir),
        "__PEFT_IMPORT__": peft_import, "__ADAPTER__": peft_expression, "__PRECISION__": repr(t.precision),
        "__ARGS__": "{\n    " + ",\n    ".join(f"{k!r}: {v!r}" for k, v in args.items()) + ",\n}", "__METHOD__": repr(recipe.method),
        "__PROMPT__": repr(d.prompt_column), "__RESPONSE__": repr(d.response_column), "__MESSAGES__": repr(d.messages_column),
        "__CHOSEN__": repr(d.chosen_column), "__REJECTED__": repr(d.rejected_column), "__PREFERENCE__": repr(preference),
        "__QUANTIZATION__": repr(recipe.lora.quantization if recipe.lora else "none"),
        "__CONFIG__": "DPOConfig" if preference else "SFTConfig", "__TRAINER__": "DPOTrainer" if preference else "SFTTrainer",
        "__EXTRA__": extra,
    }
    template = "classification.py.tmpl" if classification else "causal_lm.py.tmpl"
    return _fill((TEMPLATES / template).read_text(encoding="utf-8"), values)


def _rlhf_script(recipe: Recipe, ref: str, filename: str) -> str:
    from adaptkit.runners.models import resolve_model
    from adaptkit.runners.train import common_arguments

    d, t, r, p = recipe.data, recipe.training, recipe.rlhf.reward, recipe.rlhf.policy
    out = Path(recipe.output_dir)
    reward_args = common_arguments(recipe, out / "reward_model", bool(d.eval), with_precision=False, epochs=r.epochs,
                                   learning_rate=r.learning_rate, batch_size=r.batch_size, max_steps=r.max_steps)
    policy_args = common_arguments(recipe, out / "policy", False, with_precision=False, learning_rate=p.learning_rate,
                                   batch_size=p.batch_size, max_steps=p.max_steps)
    policy_args.update(per_device_eval_batch_size=p.batch_size, num_generations=p.num_generations,
                       max_completion_length=p.max_completion_length, temperature=p.temperature, beta=p.kl_coef)
    peft_import, peft_expression = _peft(recipe, "CAUSAL_LM")
    literal = lambda args: "{\n    " + ",\n    ".join(f"{k!r}: {v!r}" for k, v in args.items()) + ",\n}"  # noqa: E731
    values = {
        "__TITLE__": f"rlhf on {recipe.model}, exported from the adaptkit recipe {ref}.", "__REF__": ref, "__FILE__": filename,
        "__MODEL__": repr(resolve_model(recipe.model)), "__REWARD_BASE__": repr(resolve_model(r.model or recipe.model)),
        "__TRAIN__": repr(d.train), "__EVAL__": repr(d.eval), "__PROMPT__": repr(d.prompt_column), "__CHOSEN__": repr(d.chosen_column),
        "__REJECTED__": repr(d.rejected_column), "__MAX_ROWS__": repr(d.max_rows), "__MAX_LENGTH__": repr(t.max_length),
        "__SEED__": repr(t.seed), "__OUTPUT_DIR__": repr(recipe.output_dir), "__PEFT_IMPORT__": peft_import,
        "__ADAPTER__": peft_expression, "__EVAL_PROMPTS__": repr(p.eval_prompts), "__MAX_COMPLETION__": repr(p.max_completion_length),
        "__PRECISION__": repr(t.precision), "__REWARD_ARGS__": literal(reward_args), "__POLICY_ARGS__": literal(policy_args),
        "__POLICY_CONFIG__": "GRPOConfig" if p.algorithm == "grpo" else "RLOOConfig",
        "__POLICY_TRAINER__": "GRPOTrainer" if p.algorithm == "grpo" else "RLOOTrainer",
    }
    return _fill((TEMPLATES / "rlhf.py.tmpl").read_text(encoding="utf-8"), values)


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


def _fits(recipe: Recipe, gpus: int) -> dict[str, str]:
    """The memory estimate for each launch mode, when the model can be sized offline."""
    from adaptkit.estimate.architectures import load_model
    from adaptkit.estimate.memory import Setup, estimate_memory
    from adaptkit.runners.models import resolve_model

    try:
        arch = load_model(resolve_model(recipe.model), online=False)
    except InputError:
        return {}
    adapter = {"lora": "lora", "ia3": "ia3"}.get(recipe.adapter) if recipe.method in ("lora_adapters", "dpo", "rlhf") else None
    common = dict(method=recipe.method if recipe.method in ("full_finetuning", "instruction_tuning", "lora_adapters", "dpo", "rlhf",
                                                            "prefix_prompt_tuning") else "lora_adapters",
                  batch_size=recipe.training.batch_size, seq_len=recipe.training.max_length,
                  gradient_checkpointing=recipe.training.gradient_checkpointing, adapter=adapter)
    out = {}
    for name, gpus_used, sharding in (("single_gpu", 1, "none"), ("ddp", gpus, "none"), ("fsdp", gpus, "fsdp"), ("deepspeed_zero3", gpus, "zero3")):
        if sharding != "none" and gpus_used < 2:
            continue
        try:
            out[name] = f"~{estimate_memory(arch, Setup(num_gpus=gpus_used, sharding=sharding, **common)).peak_gb:.1f} GB"
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


def trl_config(recipe: Recipe, ref: str) -> str:
    """A config for `trl sft|dpo --config FILE`, with every recipe setting TRL's CLI cannot express listed, not dropped."""
    import yaml

    if recipe.method not in ("lora_adapters", "instruction_tuning", "full_finetuning", "dpo") or recipe.task != "causal_lm":
        raise InputError(f"--format trl covers SFT and DPO recipes (causal LM); {recipe.method}/{recipe.task} has no TRL CLI equivalent")
    command = "dpo" if recipe.method == "dpo" else "sft"
    from adaptkit.runners.models import resolve_model

    config: dict = {"model_name_or_path": resolve_model(recipe.model),
                    "datasets": [{"path": "json", "data_files": recipe.data.train, "split": "train"}]}
    lost = []
    values = recipe.model_dump()
    for dotted, name in TRL_FIELDS.items():
        value = values
        for key in dotted.split("."):
            value = value[key]
        if value is not None:
            config[name] = value
    if recipe.training.eval_every:
        config["eval_strategy"] = "steps"
    if recipe.lora:
        config.update(use_peft=True, lora_r=recipe.lora.r, lora_alpha=recipe.lora.alpha, lora_dropout=recipe.lora.dropout,
                      lora_target_modules=recipe.lora.target_modules)
        if recipe.lora.quantization == "4bit":
            config.update(load_in_4bit=True, bnb_4bit_quant_type="nf4", use_bnb_nested_quant=True)
        elif recipe.lora.quantization == "8bit":
            config["load_in_8bit"] = True
    if recipe.dpo:
        config.update(beta=recipe.dpo.beta, loss_type=recipe.dpo.loss_type)
        if recipe.dpo.starting_adapter:
            lost.append(f"dpo.starting_adapter={recipe.dpo.starting_adapter}: the TRL CLI cannot start from an adapter; merge it first")
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
