"""Every change the estimator suggests is a recipe field the runner honours: pure bf16, the optimizer, chunked loss,
packing and sharding; each step-down suggestion applied as overrides re-estimates to what it said."""

import json
import shlex
import subprocess

import pytest

CASES = [  # (recipe and overrides, estimate flags): together they make every kind of step-down suggestion
    (["instruction_tuning", "model=Qwen/Qwen2.5-7B", "training.batch_size=8", "training.max_length=2048",
      "training.gradient_checkpointing=false"], ["--gpu-memory-gb", "24"]),
    (["instruction_tuning", "model=Qwen/Qwen2.5-1.5B", "training.batch_size=8", "training.max_length=1024",
      "training.gradient_checkpointing=false"], ["--gpu-memory-gb", "40"]),
    (["instruction_tuning", "model=Qwen/Qwen2.5-1.5B", "training.batch_size=2", "training.max_length=1024",
      "training.gradient_checkpointing=true"], ["--gpu-memory-gb", "24"]),
    (["instruction_tuning", "model=Qwen/Qwen2.5-7B", "training.batch_size=2", "training.max_length=1024",
      "training.gradient_checkpointing=true"], ["--gpu-memory-gb", "40", "--num-gpus", "4"]),
    (["lora_sft", "model=meta-llama/Llama-3.1-8B", "training.batch_size=16", "training.max_length=4096"], ["--gpu-memory-gb", "24"]),
    (["lora_sft", "model=meta-llama/Llama-3.1-70B", "training.batch_size=1", "training.max_length=1024"], ["--gpu-memory-gb", "48"]),
    (["dpo", "lora=", "preference.reference=copy", "model=Qwen/Qwen2.5-3B", "training.batch_size=4", "training.max_length=1024"],
     ["--gpu-memory-gb", "40"]),  # full-weight DPO: LoRA keeps the method and switches the reference to adapters off
]


def estimate(invoke, words: list[str], flags: list[str]) -> dict:
    result = invoke("estimate", "--recipe", *words, *flags, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_each_step_down_suggestion_applies_as_overrides_and_moves_the_estimate(invoke):
    fields = set()
    for (ref, *overrides), flags in CASES:
        before = estimate(invoke, [ref, *overrides], flags)
        assert not before["fits"] and before["suggestions"], (ref, overrides, before["peak_memory_gb"])
        for suggestion in before["suggestions"]:
            assert suggestion["overrides"], suggestion["change"]
            run_flags = [word for flag in suggestion["flags"] for word in shlex.split(flag)]
            gpus = ["--num-gpus", run_flags[1]] if run_flags else [f for f in flags if f != "--gpu-memory-gb"][-2:] if "--num-gpus" in flags else []
            after = estimate(invoke, [ref, *overrides, *suggestion["overrides"]], ["--gpu-memory-gb", flags[1], *gpus])
            assert after["peak_memory_gb"] == pytest.approx(suggestion["peak_memory_gb"], abs=0.02), (suggestion, after["setup"])
            assert after["fits"] and after["peak_memory_gb"] < before["peak_memory_gb"]
            fields.update(o.split("=")[0] for o in suggestion["overrides"])
            if run_flags:
                fields.add("--num-processes")
    dpo = estimate(invoke, CASES[-1][0], CASES[-1][1])["suggestions"]
    assert any("preference.reference=adapters_off" in s["overrides"] and "method=lora_adapters" not in s["overrides"] for s in dpo)
    expected = {"training.gradient_checkpointing", "training.chunked_loss", "training.batch_size", "training.precision",
                "training.optimizer", "method", "lora.quantization", "training.max_length", "training.sharding", "--num-processes"}
    assert expected <= fields, expected - fields


def test_the_dry_run_prints_the_command_that_applies_a_suggestion(invoke, tiny_causal_lm):
    args = ["instruction_tuning", f"model={tiny_causal_lm}", "--gpu-memory-gb", "0.52", "--dry-run"]  # just under its peak
    memory = json.loads(invoke("run", *args, "--json").stdout)["memory"]
    assert memory["recipe"] == "instruction_tuning" and memory["recipe_overrides"] == [f"model={tiny_causal_lm}"]
    assert memory["suggestions"] and all(s["overrides"] for s in memory["suggestions"])
    text = invoke("run", *args).stdout
    assert text.count("apply: adaptkit run instruction_tuning") == len(memory["suggestions"])


def training_args(folder):
    import torch

    return torch.load(folder / "training_args.bin", weights_only=False)


def test_pure_bf16_trains_all_weights_in_bf16_on_the_cpu(invoke, tmp_path, tiny_causal_lm):
    out = tmp_path / "bf16"
    result = invoke("run", "instruction_tuning", f"model={tiny_causal_lm}", f"output_dir={out}", "training.precision=bf16",
                    "training.max_steps=3", "training.max_length=64", "data.max_rows=16", "training.learning_rate=0.001", "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["train"]["final_loss"] == metrics["train"]["final_loss"]
    import torch
    from transformers import AutoModelForCausalLM

    saved = AutoModelForCausalLM.from_pretrained(out)
    assert next(saved.parameters()).dtype == torch.bfloat16  # weights (and so AdamW's states) were bf16, no fp32 masters


@pytest.mark.parametrize("optimizer, optim", [("adafactor", "adafactor"), ("sgd", "sgd")])
def test_the_optimizer_is_the_trainers(invoke, tmp_path, optimizer, optim):
    out = tmp_path / optimizer
    result = invoke("run", "lora_cls", f"output_dir={out}", f"training.optimizer={optimizer}", "training.max_steps=2", "data.max_rows=32",
                    "--json")
    assert result.exit_code == 0, result.output
    assert str(training_args(out).optim.value) == optim


def test_packing_reaches_trls_config(invoke, tmp_path, tiny_causal_lm):
    out = tmp_path / "packed"
    result = invoke("run", "lora_sft", f"model={tiny_causal_lm}", f"output_dir={out}", "training.packing=true", "training.max_steps=2",
                    "training.max_length=64", "data.max_rows=16", "--json")
    assert result.exit_code == 0, result.output
    assert training_args(out).packing is True


@pytest.mark.parametrize("recipe, overrides, words", [
    ("lora_cls", ["training.optimizer=adamw_8bit"], "bitsandbytes on a CUDA GPU"),
    ("lora_sft", ["training.chunked_loss=true"], "CUDA kernel"),
    ("lora_cls", ["training.packing=true"], "`training.packing` packs causal-LM SFT examples"),
    ("lora_cls", ["training.chunked_loss=true"], "not a causal LM"),
    ("lora_sft", ["training.optimizer=sgd", "lora.loraplus_lr_ratio=16"], "builds its own AdamW"),
    ("lora_cls", ["training.sharding=zero3"], "--num-processes N"),
    ("lora_cls", ["training.optimizer=lion"], "training.optimizer"),
])
def test_what_the_machine_or_recipe_cannot_do_is_one_line(invoke, tmp_path, recipe, overrides, words):
    result = invoke("run", recipe, f"output_dir={tmp_path / 'out'}", *overrides)
    assert result.exit_code == 2, result.output
    assert words in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "out").exists()


def test_sharding_without_gpus_is_refused_before_anything_is_written(invoke, tmp_path):
    result = invoke("run", "lora_cls", f"output_dir={tmp_path / 'out'}", "training.sharding=fsdp", "--num-processes", "2")
    assert result.exit_code == 2 and "training.sharding=ddp" in result.stderr and not (tmp_path / "out").exists()


@pytest.mark.parametrize("sharding, kind", [("fsdp", "FSDP"), ("zero3", "DEEPSPEED")])
def test_sharding_writes_and_uses_the_accelerate_config(invoke, tmp_path, monkeypatch, sharding, kind):
    import importlib.util

    import adaptkit.api as run_cli
    from adaptkit.estimator import hardware
    from adaptkit.estimator.hardware import GPU

    monkeypatch.setattr(hardware, "detect_gpus", lambda: ([GPU("NVIDIA H100 80GB HBM3", 80.0)] * 4, "test"))
    real_find = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "deepspeed" else real_find(name, *a))
    launched = {}

    class Launch:
        def __init__(self, command, env):
            launched["command"] = command
            config = command[command.index("--config_file") + 1]
            launched["config"] = open(config).read()

        def wait(self):
            return 0
    monkeypatch.setattr(subprocess, "Popen", Launch)
    out = tmp_path / "out"
    result = invoke("run", "lora_cls", f"output_dir={out}", f"training.sharding={sharding}", "--num-processes", "4")
    assert result.exit_code == 0, result.output
    assert f"distributed_type: {kind}" in launched["config"] and "num_processes: 4" in launched["config"]
    assert "accelerate.commands.launch" in launched["command"]
    assert (out / run_cli.LAUNCH_CONFIG).read_text() == launched["config"]  # kept with the run, for the record
