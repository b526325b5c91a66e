"""The estimator: parameter counts, each memory component on hand-checked cases, step-down, the CLI."""

import json
import re

import pytest

from adaptkit.errors import InputError
from adaptkit.estimator.architectures import from_params, load_model
from adaptkit.estimator.compute import find_gpu, flops_per_token
from adaptkit.estimator.fit import suggest
from adaptkit.estimator.memory import estimate_memory, trainable_params
from adaptkit.methods.registry import setup_for

GB = 1e9


@pytest.mark.parametrize("name, published", [
    ("meta-llama/Llama-2-7b-hf", 6.74e9), ("meta-llama/Llama-3.1-8B", 8.03e9), ("mistralai/Mistral-7B-v0.1", 7.24e9),
    ("bert-base-uncased", 110e6), ("sentence-transformers/all-MiniLM-L6-v2", 22.7e6), ("gpt2", 124e6),
    ("t5-small", 60.5e6), ("Qwen/Qwen2.5-7B-Instruct", 7.62e9), ("google/gemma-7b", 8.54e9), ("microsoft/phi-2", 2.78e9),
    ("EleutherAI/pythia-160m", 162e6), ("bigscience/bloom-560m", 559e6), ("meta-llama/Llama-3.2-1B", 1.24e9),
])
def test_parameter_counts_match_published_totals(name, published):
    assert load_model(name).total_params == pytest.approx(published, rel=0.006)


def test_a_local_config_json_is_read(tmp_path):
    config = {"model_type": "llama", "vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 11008,
              "num_hidden_layers": 32, "num_attention_heads": 32}
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert load_model(str(tmp_path)).total_params == 6_738_415_616
    assert load_model(str(tmp_path / "config.json")).total_params == 6_738_415_616


@pytest.mark.parametrize("content, words", [
    ('{"model_type": "mamba"}', "not one adaptkit can size"),
    ('{"model_type": "llama"}', "lacks `hidden_size`"),
    ("not json", "not a readable config.json"),
    ("[1, 2]", "expected a JSON object"),
])
def test_bad_configs(tmp_path, content, words):
    (tmp_path / "config.json").write_text(content)
    with pytest.raises(InputError, match=words):
        load_model(str(tmp_path))


def test_unknown_name_offline_says_what_to_pass(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InputError, match="--params 13B"):
        load_model("acme/secret-13B-chat")


@pytest.mark.parametrize("raised, words", [("RepositoryNotFoundError", "the hub has no such model (or it is private: log in)"),
                                            ("GatedRepoError", "it is gated on the hub (accept its license and log in"),
                                            ("ConnectError", "the hub cannot be reached (ConnectError)")])
def test_a_hub_id_the_hub_does_not_give_says_why(monkeypatch, raised, words):
    import huggingface_hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def refuse(*args, **kwargs):
        raise type(raised, (Exception,), {})("nope")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", refuse)
    with pytest.raises(InputError, match=re.escape(f"`acme/secret-13B-chat` is not built in and {words}")):
        load_model("acme/secret-13B-chat")


def test_params_only_states_its_assumptions():
    arch = from_params(7)
    assert arch.total_params == pytest.approx(7e9, rel=0.05)
    assert "Llama-style" in arch.notes[0]


LLAMA2 = "meta-llama/Llama-2-7b-hf"
N = 6_738_415_616


def mem(setup, model=LLAMA2):
    return estimate_memory(load_model(model), setup)


def test_weights_by_precision_and_quantization():
    arch = load_model(LLAMA2)
    assert mem(setup_for("prompt_engineering")).breakdown["weights"] == pytest.approx(2 * N / GB, rel=1e-3)
    assert mem(setup_for("prompt_engineering", precision="fp32")).breakdown["weights"] == pytest.approx(4 * N / GB, rel=1e-3)
    four = mem(setup_for("prompt_engineering", quantization="4bit")).breakdown["weights"]
    rest = N - arch.linear_params  # embeddings, head and norms stay 16-bit
    assert four == pytest.approx((arch.linear_params * 4.127 / 8 + rest * 2) / GB, rel=1e-3)
    assert rest == 2 * 32000 * 4096 + 65 * 4096


@pytest.mark.parametrize("precision, optimizer, per_param", [
    ("bf16-mixed", "adamw", 18), ("fp32", "adamw", 16), ("bf16", "adamw", 8), ("bf16", "adamw8bit", 6),
    ("bf16", "sgd", 4), ("fp32", "sgd", 8), ("bf16", "adafactor", 4),  # torch SGD without momentum, Adafactor factored: no state
])
def test_model_states_per_parameter(precision, optimizer, per_param):
    b = mem(setup_for("full_finetuning", precision=precision, optimizer=optimizer)).breakdown
    states = b["weights"] + b["master_weights"] + b["gradients"] + b["optimizer_states"]
    assert states == pytest.approx(per_param * N / GB, rel=1e-3)


def test_lora_trainable_parameters_match_peft():
    arch = load_model(LLAMA2)
    assert trainable_params(arch, setup_for("lora_adapters", lora_r=8, lora_targets="q_proj,v_proj").resolved()) == 4_194_304
    assert trainable_params(arch, setup_for("lora_adapters", lora_r=16).resolved()) == 39_976_960
    gpt2 = load_model("gpt2")  # fused c_attn, as PEFT's target for GPT-2
    assert trainable_params(gpt2, setup_for("lora_adapters", lora_r=8, lora_targets="c_attn").resolved()) == 12 * 8 * (768 + 2304)
    assert trainable_params(arch, setup_for("prefix_prompt_tuning", num_virtual_tokens=20).resolved()) == 20 * 4096
    assert trainable_params(arch, setup_for("lora_adapters", adapter="ia3").resolved()) == 32 * (4096 + 4096 + 11008)


def test_adapters_cost_16_bytes_per_trainable_parameter():
    b = mem(setup_for("lora_adapters", lora_r=8, lora_targets="q_proj,v_proj")).breakdown
    assert b["adapters"] == pytest.approx(4_194_304 * 16 / GB, abs=1e-3)
    assert b["gradients"] == b["optimizer_states"] == b["master_weights"] == 0


def test_activations_and_checkpointing_by_hand():
    # Llama-2-7B, 1 x 1024 tokens, bf16: per token per layer 6h + 2h*kv/a + 4i elements (SwiGLU, flash attention)
    per_layer = 1024 * (6 * 4096 + 2 * 4096 + 4 * 11008) * 2
    plain = mem(setup_for("lora_adapters", seq_len=1024)).breakdown["activations"]
    assert plain == pytest.approx(32 * per_layer / GB, rel=1e-3)
    checkpointed = mem(setup_for("lora_adapters", seq_len=1024, gradient_checkpointing=True)).breakdown["activations"]
    assert checkpointed == pytest.approx((1024 * 4096 * 2 * 32 + per_layer) / GB, rel=1e-3)


def test_logits_and_chunked_loss():
    b = mem(setup_for("lora_adapters", batch_size=4, seq_len=768), "meta-llama/Llama-3.1-8B").breakdown
    assert b["logits"] == pytest.approx(4 * 768 * 128256 * 10 / GB, rel=1e-3)  # ~3.9 GB, memory-model.md
    chunked = mem(setup_for("lora_adapters", batch_size=4, seq_len=768, chunked_loss=True), "meta-llama/Llama-3.1-8B").breakdown
    assert chunked["logits"] < b["logits"] / 3


def test_kv_cache_for_inference():
    b = mem(setup_for("rag", seq_len=131072), "meta-llama/Llama-3.1-8B").breakdown
    assert b["kv_cache"] == pytest.approx(131072 * 128 * 1024 / GB, rel=1e-3)  # 128 KiB per token: 16 GiB


def test_dpo_reference_and_doubled_sequences():
    lora = mem(setup_for("dpo", seq_len=512)).breakdown
    sft = mem(setup_for("lora_adapters", seq_len=512)).breakdown
    assert lora["reference_model"] == 0 and lora["activations"] == pytest.approx(2 * sft["activations"], rel=1e-3)
    full = mem(setup_for("dpo", adapter="none", seq_len=512)).breakdown
    assert full["reference_model"] == pytest.approx(2 * N / GB, rel=1e-3)
    assert mem(setup_for("dpo", adapter="none", dpo_reference="precomputed")).breakdown["reference_model"] == 0


def test_rlhf_models():
    ppo_full = mem(setup_for("rlhf", adapter="none", precision="bf16")).breakdown
    assert ppo_full["reward_model"] == pytest.approx(2 * N / GB, rel=1e-3)
    assert ppo_full["reference_model"] == pytest.approx(2 * N / GB, rel=1e-3)
    assert ppo_full["value_model"] == pytest.approx(8 * N / GB, rel=1e-3)  # a second trainable copy
    grpo = mem(setup_for("rlhf", rl_algorithm="grpo")).breakdown
    assert grpo["value_model"] == 0 and grpo["reference_model"] == 0 and grpo["kv_cache"] > 0
    assert mem(setup_for("rlhf", adapter="none")).peak_gb > 2 * mem(setup_for("full_finetuning")).peak_gb  # four models


def test_sharding_divides_states():
    one = mem(setup_for("full_finetuning")).breakdown
    zero3 = mem(setup_for("full_finetuning", num_gpus=8, sharding="zero3")).breakdown
    zero2 = mem(setup_for("full_finetuning", num_gpus=8, sharding="zero2")).breakdown
    assert zero3["optimizer_states"] == pytest.approx(one["optimizer_states"] / 8, rel=1e-3)
    assert zero2["weights"] == one["weights"] and zero3["weights"] < one["weights"] / 4
    states = sum(zero3[k] for k in ("weights", "master_weights", "gradients", "optimizer_states"))
    # DeepSpeed's estimator (memory-model.md 1.6): 18*P/gpus plus ~4 bytes x the largest layer
    assert states == pytest.approx(18 * N / 8 / GB + 4 * load_model(LLAMA2).largest_layer_params / GB, rel=0.02)
    ddp = mem(setup_for("full_finetuning", num_gpus=2)).breakdown
    assert ddp["gradients"] == pytest.approx(2 * one["gradients"], rel=1e-3)


def test_context_and_slack_are_counted():
    m = mem(setup_for("lora_adapters"))
    assert m.breakdown["cuda_context"] == 0.5
    assert m.peak_gb == pytest.approx(sum(m.breakdown.values()), rel=1e-3)
    assert m.allocated_gb < m.reserved_gb < m.peak_gb


def test_impossible_setups_are_clear_errors():
    with pytest.raises(InputError, match="cannot be trained directly"):
        mem(setup_for("full_finetuning", quantization="4bit"))
    with pytest.raises(InputError, match="needs --num-gpus 2"):
        mem(setup_for("full_finetuning", sharding="zero3"))
    with pytest.raises(InputError, match="lora-targets"):
        mem(setup_for("lora_adapters", lora_targets="qq_proj"))


def test_flops_per_token():
    arch = load_model(LLAMA2)
    attention = 6 * 32 * 4096 * 1024
    assert flops_per_token(arch, setup_for("full_finetuning")) == 6 * N + attention
    assert flops_per_token(arch, setup_for("lora_adapters", gradient_checkpointing=True)) == 6 * N + attention


def test_step_down_lists_changes_that_fit():
    arch = load_model("meta-llama/Llama-3.1-8B")
    changes, verdict = suggest(arch, setup_for("lora_adapters", batch_size=2, seq_len=2048), 24)
    assert verdict is None and changes
    assert all(c.peak_gb <= 24 for c in changes)
    assert "gradient checkpointing" in changes[0].description
    costs = [c.cost for c in changes]
    assert costs == sorted(costs)


def test_step_down_reaches_qlora_and_more_gpus():
    arch = load_model("meta-llama/Llama-3.1-8B")
    changes, _ = suggest(arch, setup_for("full_finetuning", batch_size=4, seq_len=2048), 24)
    text = " | ".join(c.description for c in changes)
    assert "QLoRA" in text and "GPUs with ZeRO-3" in text


def test_does_not_fit_at_all_is_said_plainly():
    changes, verdict = suggest(load_model("meta-llama/Llama-3.1-405B"), setup_for("prompt_engineering"), 0.2)
    assert changes == [] and verdict.startswith("does not fit at all")


@pytest.mark.parametrize("name, expected", [("A100-80GB", "A100-80GB"), ("4090", "RTX-4090"), ("NVIDIA H100 80GB HBM3", "H100"),
                                            ("NVIDIA A100-SXM4-40GB", "A100-40GB"), ("NVIDIA L4", "L4")])
def test_gpu_lookup(name, expected):
    assert find_gpu(name).name == expected


def test_unknown_gpu():
    with pytest.raises(InputError, match="unknown GPU"):
        find_gpu("Voodoo 2")


# --- the CLI

def test_estimate_json_has_every_field(invoke):
    result = invoke("estimate", "--model", "meta-llama/Llama-3.1-8B", "--method", "lora_adapters", "--gpu", "4090",
                    "--seq-len", "2048", "--batch-size", "2", "--tokens", "50M", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    for key in ("total_params", "trainable_params", "peak_memory_gb", "breakdown", "fits", "device_memory_gb", "train_flops",
                "estimated_hours", "estimated_cost_usd", "assumptions", "suggestions"):
        assert key in data
    assert data["fits"] is False and data["suggestions"] and data["device_memory_gb"] == 24
    assert data["estimated_hours"]["low"] < data["estimated_hours"]["high"]
    assert data["estimated_cost_usd"]["low"] > 0


@pytest.mark.parametrize("method", ["full_finetuning", "instruction_tuning", "rlhf", "dpo", "lora_adapters", "prefix_prompt_tuning",
                                    "in_context_learning", "prompt_engineering", "rag", "tool_use"])
def test_every_method_estimates(invoke, method):
    result = invoke("estimate", "--params", "7B", "--method", method, "--gpu-memory-gb", "80", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["method"] == method and data["peak_memory_gb"] > 13 and data["fits"] in (True, False)


def test_no_device_means_fits_is_null(invoke):
    data = json.loads(invoke("estimate", "--params", "1B", "--method", "lora_adapters", "--json").stdout)
    assert data["fits"] is None and data["device_memory_gb"] is None


def test_estimate_all_methods_table(invoke):
    result = invoke("estimate", "--model", "gpt2", "--gpu", "T4")
    assert result.exit_code == 0 and "lora_adapters" in result.stdout and "rlhf" in result.stdout


def test_estimate_one_method_table(invoke):
    result = invoke("estimate", "--model", "meta-llama/Llama-3.1-8B", "--method", "full_finetuning", "--gpu", "4090", "--tokens", "1e8")
    assert result.exit_code == 0
    for text in ("Peak memory per device", "master weights", "does NOT fit", "Changes that make it fit", "Assumptions", "cost $"):
        assert text in result.stdout


@pytest.mark.parametrize("args, words", [
    (["--method", "lora_adapters"], "--model NAME|PATH or its size as --params"),
    (["--params", "7B", "--model", "gpt2"], "one of them"),
    (["--params", "lots"], "expected a number"),
    (["--params", "7B", "--method", "lora"], "Invalid value for '--method'"),
    (["--params", "7B", "--gpu", "Voodoo"], "unknown GPU"),
    (["--params", "7B", "--method", "full_finetuning", "--quantization", "4bit"], "cannot be trained directly"),
    (["--params", "7B", "--sharding", "zero3"], "needs --num-gpus 2"),
    (["--params", "7B", "--batch-size", "0"], "--batch-size"),
    (["--model", "no/such-model-3B"], "--params 3B"),
    (["--params", "7B", "--method", "lora_adapters", "--lora-targets", "qkv_weird"], "lora-targets"),
])
def test_bad_flags_exit_2(invoke, monkeypatch, args, words):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = invoke("estimate", *args)
    assert result.exit_code == 2, result.output
    assert words in result.stderr and "Traceback" not in result.output


def test_bad_config_folder_exits_2(invoke, tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "mamba"}')
    result = invoke("estimate", "--model", tmp_path)
    assert result.exit_code == 2 and "mamba" in result.stderr


def test_lists(invoke):
    assert "meta-llama/Llama-3.1-8B" in invoke("estimate", "--list-models").stdout
    assert "H100" in invoke("estimate", "--list-gpus").stdout


def test_detected_gpu_is_the_default_device(invoke, monkeypatch):
    monkeypatch.setenv("ADAPTKIT_FAKE_GPUS", "2x24")
    data = json.loads(invoke("estimate", "--params", "7B", "--method", "lora_adapters", "--json").stdout)
    assert data["device_memory_gb"] == 24 and data["setup"]["num_gpus"] == 2


def test_hardware(invoke, monkeypatch):
    data = json.loads(invoke("hardware", "--json").stdout)
    for key in ("gpus", "cpu_cores", "ram_gb", "disk_free_gb", "packages", "apple_silicon"):
        assert key in data
    assert data["gpus"] == [] and data["cpu_cores"] >= 1
    assert "none found" in invoke("hardware").stdout
    monkeypatch.setenv("ADAPTKIT_FAKE_GPUS", "1x80")
    assert "80 GB" in invoke("hardware").stdout


def test_calibration_beats_the_rules_of_thumb():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parent.parent / "benchmarks" / "memory_calibration.py"
    spec = importlib.util.spec_from_file_location("memory_calibration", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.run()
    medians = result["median_abs_error"]
    assert result["modeled"] >= 30
    assert medians["adaptkit"] < 0.20
    assert medians["adaptkit"] < medians["rule_of_thumb"] and medians["adaptkit"] < medians["weights_only"]


# Mixtures of experts: the built-in reader against transformers' own models (tiny shapes, random weights).
MOE_CONFIGS = {
    "mixtral": dict(model_type="mixtral", vocab_size=512, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, num_local_experts=4, num_experts_per_tok=2, tie_word_embeddings=False),
    "qwen2_moe": dict(model_type="qwen2_moe", vocab_size=512, hidden_size=64, intermediate_size=96, moe_intermediate_size=32,
                      shared_expert_intermediate_size=48, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      num_experts=6, num_experts_per_tok=2, tie_word_embeddings=False),
    "qwen3_moe": dict(model_type="qwen3_moe", vocab_size=512, hidden_size=64, intermediate_size=96, moe_intermediate_size=32,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16, num_experts=6,
                      num_experts_per_tok=2, tie_word_embeddings=False),
    "deepseek_v3": dict(model_type="deepseek_v3", vocab_size=512, hidden_size=64, intermediate_size=96, moe_intermediate_size=32,
                        num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=4, q_lora_rank=24, kv_lora_rank=16,
                        qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=8, n_routed_experts=8, n_shared_experts=1,
                        num_experts_per_tok=2, first_k_dense_replace=1, n_group=1, topk_group=1, tie_word_embeddings=False),
    "deepseek_v2": dict(model_type="deepseek_v2", vocab_size=512, hidden_size=64, intermediate_size=96, moe_intermediate_size=32,
                        num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=4, q_lora_rank=None, kv_lora_rank=16,
                        qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=8, n_routed_experts=8, n_shared_experts=2,
                        num_experts_per_tok=2, first_k_dense_replace=1, n_group=1, topk_group=1, tie_word_embeddings=False),
}


@pytest.mark.parametrize("family", sorted(MOE_CONFIGS))
def test_mixture_of_experts_counts_match_transformers(family):
    import transformers

    from adaptkit.estimator.architectures import from_config

    config = MOE_CONFIGS[family]
    model = transformers.AutoModelForCausalLM.from_config(transformers.AutoConfig.for_model(**config))
    arch = from_config(config, family)
    assert arch.total_params == sum(p.numel() for p in model.parameters())
    assert arch.is_moe and 0 < arch.active_params < arch.total_params
    if family == "qwen2_moe":  # PEFT wraps its attention, shared expert and shared-expert gate, not the stacked experts
        from peft import LoraConfig, get_peft_model

        peft = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear", task_type="CAUSAL_LM"))
        measured = sum(p.numel() for p in peft.parameters() if p.requires_grad)
        assert trainable_params(arch, setup_for("lora_adapters", lora_r=4).resolved()) == measured


@pytest.mark.parametrize("name, total, active", [
    ("mistralai/Mixtral-8x7B-v0.1", 46.7e9, 12.9e9), ("mistralai/Mixtral-8x22B-v0.1", 141e9, 39e9),
    ("Qwen/Qwen1.5-MoE-A2.7B", 14.3e9, 2.7e9), ("Qwen/Qwen2-57B-A14B", 57.4e9, 14.2e9),
    ("Qwen/Qwen3-30B-A3B", 30.5e9, 3.3e9), ("Qwen/Qwen3-235B-A22B", 235e9, 22e9), ("deepseek-ai/DeepSeek-V3", 671e9, 37e9),
])
def test_mixture_of_experts_published_totals(name, total, active):
    arch = load_model(name, online=False)
    assert arch.total_params == pytest.approx(total, rel=0.01)
    assert arch.active_params == pytest.approx(active, rel=0.03)


def test_mixture_of_experts_memory_follows_total_and_compute_active():
    mixtral = load_model("mistralai/Mixtral-8x7B-v0.1", online=False)
    lora = setup_for("lora_adapters", lora_r=16).resolved()
    assert estimate_memory(mixtral, lora).breakdown["weights"] == pytest.approx(2 * 46.7, rel=0.01)  # every expert resident
    dense_13b = from_params(12.9)
    assert flops_per_token(mixtral, lora) == pytest.approx(flops_per_token(dense_13b, lora), rel=0.05)
    sized = from_params(46.7, 12.9)  # only the sizes known: a Mixtral-style stand-in of the same total and active size
    assert sized.total_params == pytest.approx(46.7e9, rel=0.05) and sized.active_params == pytest.approx(12.9e9, rel=0.05)


def test_unknown_mixture_of_experts_name_offline_suggests_both_sizes(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InputError, match=r"--params 45.2B --active-params 12.5B"):
        load_model("acme/Frankenmoe-8x7B")


@pytest.mark.parametrize("args, code, words", [
    (["--params", "47B", "--active-params", "13B", "--method", "lora_adapters", "--json"], 0, '"active_params": 1'),
    (["--active-params", "13B", "--method", "lora_adapters"], 2, "--active-params goes with --params"),
    (["--params", "7B", "--active-params", "13B"], 2, "more than the model's 7B"),
])
def test_estimate_active_params_option(invoke, args, code, words):
    result = invoke("estimate", *args)
    assert result.exit_code == code, result.output
    assert words in (result.stdout if code == 0 else result.stderr)


@pytest.mark.parametrize("typed, hint", [("qlora", "lora_adapters --quantization 4bit"), ("grpo", "rlhf --rl-algorithm grpo"),
                                         ("ICL", "in_context_learning"), ("lora_adaptrs", "did you mean lora_adapters")])
def test_other_names_of_a_method_get_the_id_and_option(invoke, typed, hint):
    result = invoke("estimate", "--method", typed, "--params", "7B")
    assert result.exit_code == 2 and hint in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_tight_fit_says_so_and_offers_room(invoke):
    """94% of the device fits only if the estimate is not 6% low: its +-20% error band says to leave room."""
    result = json.loads(invoke("estimate", "--method", "lora_adapters", "--model", "meta-llama/Llama-3.1-8B-Instruct",
                               "--gpu-memory-gb", "28", "--json").stdout)
    assert result["fits"] is True and result["tight"] is True and result["suggestions"]
    assert result["model"] == "meta-llama/Llama-3.1-8B-Instruct" and result["config_of"] == "meta-llama/Llama-3.1-8B"
    text = invoke("estimate", "--method", "lora_adapters", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--gpu-memory-gb", "28").stdout
    assert "but tightly" in text and "Changes that leave room" in text
    roomy = json.loads(invoke("estimate", "--method", "lora_adapters", "--model", "meta-llama/Llama-3.1-8B", "--gpu-memory-gb", "80",
                              "--json").stdout)
    assert roomy["fits"] and not roomy["tight"] and not roomy["suggestions"]


def test_the_header_names_the_model_as_the_recipe_does_and_sizes_it_readably(invoke):
    """`estimate --recipe lora_cls` names the hub id (not the embedded copy's folder) and 22.7M parameters, not 0.02B."""
    said = invoke("estimate", "--recipe", "lora_cls")
    assert said.exit_code == 0, said.output
    assert said.stdout.splitlines()[0].startswith("lora_adapters on sentence-transformers/all-MiniLM-L6-v2: 22.7M parameters")
    from adaptkit.cli.render import _count

    assert (_count(7.62e9), _count(22_713_216), _count(185_152)) == ("7.62B", "22.7M", "185,152")
