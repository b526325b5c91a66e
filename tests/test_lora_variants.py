"""LoRA variants as recipe options: DoRA, rsLoRA, PiSSA / OLoRA starts, LoRA+; each trains, reloads and exports, and the
estimator's DoRA memory is checked against the tensors PEFT really keeps for the backward pass."""

import json
import weakref
from pathlib import Path

import pytest

pytest.importorskip("peft")

QUICK = ["training.max_steps=4", "training.max_length=64", "data.max_rows=16", "training.logging_steps=1",
         "training.learning_rate=0.01"]


def run_ok(invoke, *args) -> dict:
    result = invoke("run", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def losses(out: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (out / "train_log.jsonl").read_text().splitlines() if '"loss"' in line]


def lora_b_norm(folder: Path) -> float:
    from safetensors.torch import load_file

    tensors = load_file(str(folder / "adapter_model.safetensors"))
    return sum(float(t.float().norm()) for name, t in tensors.items() if "lora_B" in name)


@pytest.mark.parametrize("variant, config", [
    ("lora.use_dora=true", {"use_dora": True}),
    ("lora.use_rslora=true", {"use_rslora": True}),
    ("lora.init=pissa", {"init_lora_weights": True, "r": 32}),  # converted to plain LoRA of rank 2r: loads on the original base
    ("lora.init=olora", {"init_lora_weights": True, "r": 32}),
    ("lora.loraplus_lr_ratio=16", {}),
])
def test_each_variant_trains_and_reloads(invoke, tmp_path, tiny_causal_lm, variant, config):
    out = tmp_path / "out"
    metrics = run_ok(invoke, "lora_sft", f"model={tiny_causal_lm}", f"output_dir={out}", *QUICK, variant)
    curve = losses(out)
    assert len(curve) == 4 and all(loss == loss for loss in curve) and curve[-1] != curve[0], curve
    assert metrics["eval"]["loss"] == metrics["eval"]["loss"]
    saved = json.loads((out / "adapter_config.json").read_text())
    for key, value in config.items():
        assert saved[key] == value, (key, saved[key])
    assert not (out / "initial_adapter").exists()  # the start point adaptkit kept for the conversion is gone
    from peft import AutoPeftModelForCausalLM

    assert AutoPeftModelForCausalLM.from_pretrained(out) is not None


def test_loraplus_moves_b_faster_than_plain_lora(invoke, tmp_path, tiny_causal_lm):
    plain, plus = tmp_path / "plain", tmp_path / "plus"
    run_ok(invoke, "lora_sft", f"model={tiny_causal_lm}", f"output_dir={plain}", *QUICK, "training.learning_rate=0.0005")
    run_ok(invoke, "lora_sft", f"model={tiny_causal_lm}", f"output_dir={plus}", *QUICK, "training.learning_rate=0.0005",
           "lora.loraplus_lr_ratio=16")
    assert lora_b_norm(plus) > 3 * lora_b_norm(plain)


def test_variants_on_a_classifier(invoke, tmp_path):
    out = tmp_path / "cls"
    metrics = run_ok(invoke, "lora_cls", f"output_dir={out}", "training.max_steps=3", "data.max_rows=48", "lora.use_dora=true",
                     "lora.loraplus_lr_ratio=8", "lora.use_rslora=true")
    assert 0 <= metrics["eval"]["accuracy"] <= 1
    saved = json.loads((out / "adapter_config.json").read_text())
    assert saved["use_dora"] and saved["use_rslora"]


@pytest.mark.parametrize("overrides, words", [
    (["lora.init=pissa", "lora.quantization=4bit"], "lora.init=pissa decomposes the base weights"),
    (["lora.loraplus_lr_ratio=0.5"], "loraplus_lr_ratio"),
    (["lora.init=loftq"], "lora.init"),
])
def test_impossible_variants_fail_in_one_line(invoke, overrides, words):
    result = invoke("run", "lora_sft", *overrides, "--dry-run")
    assert result.exit_code == 2 and words in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_trl_config_lists_what_the_cli_cannot_express(invoke):
    text = invoke("export", "lora_sft", "lora.use_dora=true", "lora.init=pissa", "lora.loraplus_lr_ratio=16", "--format", "trl").stdout
    assert "use_dora: true" in text and "lora.init=pissa" in text and "loraplus_lr_ratio=16" in text


def _saved_activation_bytes(folder: Path, dora: bool, targets) -> int:
    """Bytes of the tensors autograd still holds for backward after one forward pass (weights excluded)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(folder),
                           LoraConfig(task_type="CAUSAL_LM", r=8, target_modules=targets, use_dora=dora, lora_dropout=0.0))
    held = []

    def pack(tensor):
        held.append(weakref.ref(tensor))
        return tensor
    ids = torch.randint(0, 1000, (2, 64))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        output = model(input_ids=ids, labels=ids)
    weights = {p.data_ptr() for p in model.parameters()}
    live = {(t.data_ptr(), tuple(t.shape)): t.numel() * t.element_size() for t in (r() for r in held)
            if t is not None and t.data_ptr() not in weights}
    del output
    return sum(live.values())


@pytest.mark.parametrize("targets, names", [("all-linear", "all-linear"), (["q_proj", "v_proj"], "q_proj,v_proj")])
def test_dora_activation_memory_matches_what_peft_keeps(tiny_causal_lm, targets, names):
    from adaptkit.estimator.architectures import load_model
    from adaptkit.estimator.memory import Setup, _dora_activations, lora_targets

    measured = _saved_activation_bytes(tiny_causal_lm, True, targets) - _saved_activation_bytes(tiny_causal_lm, False, targets)
    arch = load_model(str(tiny_causal_lm), online=False)
    setup = Setup(method="lora_adapters", adapter="lora", dora=True, lora_targets=names, precision="fp32")
    transient = max(lin.d_in * lin.d_in + 2 * lin.d_out * lin.d_in for _, lin in lora_targets(arch, names)) * 4
    predicted = _dora_activations(arch, setup, 2 * 64, 4) - transient  # what stays for backward; the transient is freed
    assert predicted == pytest.approx(measured, rel=0.05), (predicted, measured)


def test_dora_costs_memory_in_the_estimate(invoke):
    def peak(*flags):
        result = invoke("estimate", "--model", "meta-llama/Llama-3.1-8B", "--method", "lora_adapters", "--seq-len", "2048",
                        "--batch-size", "4", "--gradient-checkpointing", *flags, "--json")
        return json.loads(result.stdout)
    lora, dora = peak(), peak("--dora")
    assert dora["trainable_params"] > lora["trainable_params"]
    assert 1.0 < dora["peak_memory_gb"] - lora["peak_memory_gb"] < 4.0
    assert any("DoRA" in a for a in dora["assumptions"])
