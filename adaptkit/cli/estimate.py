"""`adaptkit estimate`: will this method fit, how long will it take, and what to change if it does not."""

from __future__ import annotations

import json

import click

from adaptkit.methods.catalogue import METHOD_IDS
from adaptkit.errors import InputError
from adaptkit.units import parse_gigabytes, parse_number, parse_params_b

SETUP_OPTIONS = ("precision", "quantization", "batch_size", "seq_len", "gradient_checkpointing", "chunked_loss", "adapter", "lora_r",
                 "lora_targets", "dora", "soft_prompt", "num_virtual_tokens", "optimizer", "rl_algorithm", "dpo_reference", "image_tokens",
                 "image_size", "resolution", "cached_inputs")


def _size(value: str | None) -> tuple[int, int] | None:
    """--image-size WxH as (width, height) in pixels."""
    if value is None:
        return None
    width, _, height = value.lower().partition("x")
    if not (width.isdigit() and height.isdigit()) or not (0 < int(width) <= 100_000 and 0 < int(height) <= 100_000):
        raise click.BadParameter(f"{value!r}: width x height in pixels, such as 1024x768", param_hint="--image-size")
    return int(width), int(height)


def _number(parse, flag):
    def convert(ctx, param, value):
        if value is None:
            return None
        try:
            return parse(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint=flag) from None
    return convert


@click.command("estimate")
@click.argument("overrides", nargs=-1)
@click.option("--recipe", help="A recipe (built-in name or path): the setup it would run, sized on --gpu / --num-gpus.")
@click.option("--model", help="Hub id, built-in name or local folder with config.json.")
@click.option("--params", callback=_number(parse_params_b, "--params"), help="Model size when only that is known: 7B, 770M.")
@click.option("--active-params", callback=_number(parse_params_b, "--active-params"),
              help="With --params, for a mixture of experts: parameters active per token (e.g. --params 47B --active-params 13B).")
@click.option("--method", callback=lambda ctx, param, value: _method(value), default="all", show_default=True, metavar="METHOD",
              help=f"A catalogue id ({', '.join(METHOD_IDS)}); training-free methods estimate inference. `all` compares every "
                   "method. Other names (qlora, dora, kto, grpo, ...) are answered with the id and option they mean.")
@click.option("--precision", type=click.Choice(["fp32", "bf16-mixed", "bf16"]),
              help="bf16 = pure bf16 weights and states. Default: bf16-mixed for full weights, bf16 otherwise.")
@click.option("--quantization", type=click.Choice(["none", "8bit", "4bit"]), default="none", show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=1, show_default=True, help="Micro-batch per device.")
@click.option("--seq-len", type=click.IntRange(min=1, max=1_048_576),
              help="Tokens per sequence, up to 1,048,576 (default 1024 for training; 2-4k prompts for inference).")
@click.option("--image-tokens", type=click.IntRange(min=0, max=1_048_576),
              help="A vision-language model: image tokens per example, added to --seq-len (default: one image at the model's count).")
@click.option("--image-size", metavar="WxH", callback=lambda ctx, param, value: _size(value),
              help="A vision-language model: one image of this size, as its processor counts its tokens (Qwen2-VL: one per 28 x 28 "
                   "pixels; LLaVA and Qwen-VL: a fixed count). Instead of --image-tokens.")
@click.option("--resolution", type=click.IntRange(min=8, max=16_384),
              help="A diffusion UNet: training images' side in pixels, a multiple of 8 (default: the model's own, 1024 for SDXL).")
@click.option("--cached-inputs", is_flag=True,
              help="A diffusion UNet: latents and text embeddings computed beforehand (the VAE and text encoders off the GPU).")
@click.option("--gradient-checkpointing/--no-gradient-checkpointing", default=False, show_default=True)
@click.option("--chunked-loss", is_flag=True, help="Chunked/fused cross-entropy (Liger, torchtune).")
@click.option("--adapter", type=click.Choice(["lora", "ia3", "none"]), help="For lora_adapters, dpo, rlhf: none = full weights.")
@click.option("--lora-r", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--lora-targets", default="all-linear", show_default=True, help="q_proj,v_proj or all-linear.",
              callback=lambda ctx, param, value: _targets(value))
@click.option("--dora", is_flag=True, help="DoRA (lora.use_dora): magnitude vectors and their extra activations.")
@click.option("--soft-prompt", type=click.Choice(["prompt", "prefix"]), default="prompt", show_default=True)
@click.option("--num-virtual-tokens", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--optimizer", type=click.Choice(["adamw", "adamw8bit", "adafactor", "sgd"]), default="adamw", show_default=True,
              help="adamw8bit: bitsandbytes 8-bit states; adafactor: factored states; sgd: no momentum, no state.")
@click.option("--num-gpus", type=click.IntRange(min=1), help="Default: the detected count, or 1.")
@click.option("--sharding", type=click.Choice(["none", "zero2", "zero3", "fsdp"]), default="none", show_default=True)
@click.option("--rl-algorithm", type=click.Choice(["ppo", "rloo", "grpo"]), default="ppo", show_default=True)
@click.option("--dpo-reference", type=click.Choice(["auto", "copy", "precomputed", "none"]), default="auto", show_default=True,
              help="none: a reference-free loss (ORPO, SimPO, CPO)")
@click.option("--gpu", "gpu_name", help="GPU type for memory and speed (e.g. A100-80GB, H100, 4090). Default: detected.")
@click.option("--gpu-memory-gb", callback=_number(parse_gigabytes, "--gpu-memory-gb"), help="Memory per device, when not a listed GPU.")
@click.option("--tokens", callback=_number(parse_number, "--tokens"), help="Training tokens over all epochs (e.g. 50M), for time and cost.")
@click.option("--gpu-hour-usd", type=click.FloatRange(min=0), help="Price per GPU-hour (default: the table's indicative price).")
@click.option("--shots", type=click.IntRange(min=0), default=0, show_default=True, help="ICL: demonstrations per prompt.")
@click.option("--tokens-per-example", type=click.IntRange(min=1), default=60, show_default=True, help="ICL: tokens per demonstration (and per query).")
@click.option("--retrieved-chunks", type=click.IntRange(min=0), default=0, show_default=True, help="RAG: chunks put in each prompt.")
@click.option("--chunk-tokens", type=click.IntRange(min=1), default=150, show_default=True, help="RAG: tokens per chunk.")
@click.option("--prompt-tokens", type=click.IntRange(min=0), default=200, show_default=True, help="Instructions and system prompt per request.")
@click.option("--output-tokens", type=click.IntRange(min=1), default=64, show_default=True, help="Tokens generated per request.")
@click.option("--requests-per-day", callback=_number(parse_number, "--requests-per-day"), help="For cost per day (e.g. 100k).")
@click.option("--usd-per-1m-input", type=click.FloatRange(min=0), help="API price per 1M input tokens (else: self-served on --gpu).")
@click.option("--usd-per-1m-output", type=click.FloatRange(min=0), help="API price per 1M output tokens (default: the input price).")
@click.option("--tokens-per-second", type=click.FloatRange(min=0, min_open=True),
              help="Measured training throughput (a run's metrics.json resources.tokens_per_second): time from it, not from MFU.")
@click.option("--calibrate", is_flag=True, help="The arguments are finished run folders: the estimator's error on their measured peaks.")
@click.option("--uncalibrated", is_flag=True, help="Ignore runs in the ledger measured on the same GPU model (the plain estimate).")
@click.option("--json", "as_json", is_flag=True, help="Print the estimate as JSON.")
@click.option("--list-models", is_flag=True, help="List the built-in model configs and exit.")
@click.option("--list-gpus", is_flag=True, help="List the GPU table and exit.")
def estimate(overrides, recipe, model, params, active_params, method, precision, quantization, batch_size, seq_len, image_tokens,
             image_size, resolution, cached_inputs, gradient_checkpointing, chunked_loss,
             adapter, lora_r, lora_targets, dora, soft_prompt, num_virtual_tokens, optimizer, num_gpus, sharding, rl_algorithm,
             dpo_reference, gpu_name, gpu_memory_gb, tokens, gpu_hour_usd, shots, tokens_per_example, retrieved_chunks,
             chunk_tokens, prompt_tokens, output_tokens, requests_per_day, usd_per_1m_input, usd_per_1m_output,
             tokens_per_second, calibrate, uncalibrated, as_json, list_models, list_gpus):
    """Predict peak GPU memory per device, compute, time and cost for a method, and what to change if it does not fit.

    Examples:

    \b
      adaptkit estimate --model meta-llama/Llama-3.1-8B --method lora_adapters --gpu 4090
      adaptkit estimate --params 70B --method full_finetuning --gpu H100 --num-gpus 8 --sharding zero3 --tokens 1B
      adaptkit estimate --recipe qlora_sft --gpu 4090
      adaptkit estimate --recipe lora_sft training.max_length=2048 --gpu 4090
      adaptkit estimate --calibrate runs/lora_cls runs/qlora_sft
    """
    if calibrate:
        _calibrate(overrides, as_json)
        return
    from adaptkit.estimator.architectures import from_params, known_models, load_model
    from adaptkit.estimator.compute import gpu_table, request_cost
    from adaptkit.estimator.compute import prompt_tokens as count_prompt
    from adaptkit.estimator.report import estimate as run_estimate
    from adaptkit.estimator.report import find_device

    if list_models:
        click.echo("\n".join(known_models()))
        return
    if list_gpus:
        for gpu in gpu_table().values():
            click.echo(f"{gpu.name:10} {gpu.memory_gb:>5g} GB  {gpu.bf16_tflops:>5g} TFLOP/s bf16  ~${gpu.hour_usd:g}/h")
        return
    from adaptkit.methods.registry import get, setup_for

    device, detected_count = find_device(gpu_name, gpu_memory_gb)
    gpus = num_gpus or detected_count or 1
    if recipe:
        ctx = click.get_current_context()
        given = [f"--{name.replace('_', '-')}" for name in ("model", "params", "active_params", "method", *SETUP_OPTIONS)
                 if ctx.get_parameter_source(name).name == "COMMANDLINE"]
        if given:
            raise InputError(f"--recipe sets the model and the setup: drop {', '.join(given)} (change the recipe's fields instead)")
        chosen = sharding if ctx.get_parameter_source("sharding").name == "COMMANDLINE" else None  # else the recipe's own
        results = [_recipe_estimate(recipe, tuple(overrides), device, gpus, chosen, tokens, gpu_hour_usd, tokens_per_second,
                                    not uncalibrated)]
        method = results[0]["method"]
    else:
        if overrides:
            raise InputError(f"KEY=VALUE overrides ({overrides[0]}) change a recipe: give it with --recipe")
        if active_params is not None and params is None:
            raise InputError("--active-params goes with --params (a named model's config already says how many are active)")
        if bool(model) == (params is not None):
            raise InputError("give the model as --model NAME|PATH or its size as --params 7B (one of them), or a --recipe")
        arch = load_model(model) if model else from_params(params, active_params)
        if image_size:
            from adaptkit.estimator.architectures import image_tokens_of_size

            image_tokens = image_tokens_of_size(arch, image_size, image_tokens)
        results = []
    for one in (() if recipe else METHOD_IDS if method == "all" else (method,)):
        definition = get(one)
        parts = definition.prompt_parts
        uses_tools = "tools" in parts
        sent, how = count_prompt(prompt_tokens, tokens_per_example, shots=shots if "shots" in parts else 0, per_example=tokens_per_example,
                                 chunks=retrieved_chunks if "chunks" in parts else 0, per_chunk=chunk_tokens,
                                 tool_tokens=300 if uses_tools else 0, steps=2 if uses_tools else 1)
        grows = (shots and "shots" in parts) or (retrieved_chunks and "chunks" in parts) or uses_tools
        context = (sent + output_tokens if grows else definition.serve_tokens) if not definition.trains else 1024
        # Comparing every method, a 4/8-bit base applies where it can; asked for one method, Setup's check explains why not.
        all_weights_only = definition.trains and definition.adapters == ("none",)
        quantized = quantization if method != "all" or not all_weights_only else "none"
        chosen = adapter if adapter and (method != "all" or adapter in definition.adapters) else None
        setup = setup_for(
            one, adapter=chosen, precision=precision, quantization=quantized,
            batch_size=batch_size, seq_len=seq_len or context,
            gradient_checkpointing=gradient_checkpointing, chunked_loss=chunked_loss,
            lora_r=lora_r, lora_targets=lora_targets, dora=dora,
            soft_prompt=soft_prompt, num_virtual_tokens=num_virtual_tokens, optimizer=optimizer, num_gpus=gpus,
            sharding=sharding if definition.trains else "none", rl_algorithm=rl_algorithm, dpo_reference=dpo_reference,
            image_tokens=image_tokens, resolution=resolution, cached_inputs=cached_inputs,
        )
        result = run_estimate(arch, setup, device, tokens, gpu_hour_usd, tokens_per_second)
        if model and definition.trains and not uncalibrated:  # runs measured on this GPU model (the ledger) correct the peak
            from adaptkit.api import calibrated

            result = calibrated(result, device, model)
        if model and arch.name != model:  # the name asked for (an -Instruct variant), not the config it was read from
            result.update(model=model, config_of=arch.name)
        if not definition.trains:
            cost = request_cost(arch, sent, output_tokens, requests_per_day, usd_per_1m_input, usd_per_1m_output,
                                device.gpu if device else None, gpu_hour_usd)
            result["inference"] = {**cost.to_dict(), "prompt_breakdown": how}
        results.append(result)
    if as_json:
        click.echo(json.dumps(results[0] if method != "all" else {"model": arch.name, "estimates": results}, indent=2))
        return
    from adaptkit.cli.render import show_estimate, show_estimates

    if method == "all":
        show_estimates(results)
    else:
        show_estimate(results[0])




def _recipe_estimate(ref: str, overrides: tuple[str, ...], device, gpus: int, sharding: str | None, tokens, gpu_hour_usd,
                     tokens_per_second=None, calibrate: bool = True) -> dict:
    """The estimate for what a recipe would run: the same conversion as run --dry-run and the export headers; each
    step-down suggestion carries the overrides (and run flags) that apply it."""
    from adaptkit.estimator.architectures import load_model
    from adaptkit.estimator.report import estimate as run_estimate
    from adaptkit.methods.registry import recipe_setup, with_recipe_changes
    from adaptkit.models import resolve_model
    from adaptkit.recipe.load import load_recipe

    loaded, _, _ = load_recipe(ref, overrides)
    setup = recipe_setup(loaded, gpus, sharding)
    measured_in = None
    if tokens_per_second is None and tokens:  # a finished GPU run of this recipe measured its speed: time from that
        tokens_per_second, measured_in = _measured_rate(loaded.output_dir, device)
    result = run_estimate(load_model(resolve_model(loaded.model)), setup, device, tokens, gpu_hour_usd, tokens_per_second)
    if measured_in:
        result["assumptions"].append(f"tokens/s measured by the finished run in {measured_in}")
    with_recipe_changes(loaded, result)
    if calibrate:  # runs measured on this GPU model (the ledger) correct the peak
        from adaptkit.api import calibrated

        result = calibrated(result, device, loaded.model)
    result["model"] = loaded.model  # as the recipe names it, not the embedded copy's folder
    result["recipe"] = ref
    result["recipe_overrides"] = list(overrides)
    return result


def _measured_rate(output_dir: str, device) -> tuple[float | None, str | None]:
    """The tokens/s a finished GPU run in `output_dir` measured, when it ran on the device being estimated."""
    from pathlib import Path

    try:
        resources = json.loads((Path(output_dir).expanduser() / "metrics.json").read_text(encoding="utf-8")).get("resources") or {}
    except (OSError, ValueError):
        return None, None
    rate, ran_on = resources.get("tokens_per_second"), str(resources.get("device", "cpu"))
    same = device is not None and device.gpu is not None and device.gpu.name.lower().replace("-", " ") in ran_on.lower().replace("-", " ")
    return (float(rate), output_dir) if rate and ran_on != "cpu" and same else (None, None)


def _calibrate(folders: tuple[str, ...], as_json: bool) -> None:
    """`estimate --calibrate RUN_DIR...`: each run's measured peak beside the estimate for its recipe, made now."""
    if not folders:
        raise InputError("--calibrate reads finished runs: give their output folders, e.g. adaptkit estimate --calibrate runs/*")
    from adaptkit.runners.resources import calibrate

    report = calibrate(list(folders))
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    for row in report["runs"]:
        if "skipped" in row:
            click.echo(f"{row['run']}: skipped ({row['skipped']})")
            continue
        error = f"{row['error_pct']:+.1f}%" if row["error_pct"] is not None else "not compared (CPU run: peak RSS)"
        click.echo(f"{row['run']}: {row['method']} on {row['model']}, {row['device']}: measured {row['measured_peak_gb']:.2f} GB, "
                   f"estimated {row['predicted_peak_gb']:.2f} GB, {error}")
    if report["compared"]:
        click.echo(f"median |error| over {report['compared']} GPU run(s): {report['median_abs_error_pct']:.1f}%; "
                   f"{report['within_25_pct']} within 25%")
    else:
        click.echo("no GPU run to compare: " + report["note"])


def _method(value: str) -> str:
    """--method: a method id (or all); a common other name gets the id and option it means."""
    if value == "all" or value in METHOD_IDS:
        return value
    from adaptkit.methods.registry import registry

    key = value.strip().lower().replace("-", "_")
    spellings = {alias: f"{method} {options}".strip() for method, d in registry().items() for alias, options in d.aliases}
    if key in spellings:
        raise click.BadParameter(f"{value!r} is not a method id here: use --method {spellings[key]}")
    import difflib

    close = difflib.get_close_matches(key, list(METHOD_IDS), n=1)
    raise click.BadParameter(f"{value!r} is not a method" + (f" (did you mean {close[0]}?)" if close else "")
                             + f"; one of: all, {', '.join(METHOD_IDS)}")


def _targets(value: str) -> str:
    """--lora-targets: all-linear, or module names separated by commas (never empty)."""
    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names:
        raise click.BadParameter("give all-linear or module names, like q_proj,v_proj")
    return value if value == "all-linear" else ",".join(names)

