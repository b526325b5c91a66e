"""export --format gptq|awq: llm-compressor quantizes a trained causal run into the compressed-tensors format vLLM
serves, calibrated on the run's training rows, and the copy is scored on the run's eval rows beside the trained model.
llm-compressor pins an older Transformers than adaptkit's, so it lives in its own venv (made by `make`), where the
export runs; the run itself is trained here."""

import json
import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from adaptkit.cli import cli

ROOT = Path(__file__).resolve().parent.parent
GPTQ_PYTHON = Path(os.environ.get("ADAPTKIT_GPTQ_PYTHON", ROOT / ".venv-gptq" / "bin" / "python"))


def _gptq_venv(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """`python ARGS` in the gptq venv (adaptkit[gptq]: llm-compressor and the Transformers it pins)."""
    if not GPTQ_PYTHON.is_file():
        pytest.fail(f"llm-compressor's venv is not installed at {GPTQ_PYTHON}: run `make .venv-gptq/.installed` (make test does)")
    return subprocess.run([str(GPTQ_PYTHON), *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="module")
def sft_run(tiny_causal_lm, tmp_path_factory):
    run = tmp_path_factory.mktemp("gptq") / "answers"
    result = CliRunner().invoke(cli, ["run", "lora_sft", f"model={tiny_causal_lm}", f"output_dir={run}", "training.max_steps=30",
                                      "training.batch_size=8", "training.max_length=96", "training.learning_rate=0.01",
                                      "data.max_rows=64", "training.generate_eval=0"])
    assert result.exit_code == 0, result.output
    return run


CHECK = """import json, sys, torch
from safetensors import safe_open
from transformers import AutoModelForCausalLM
from peft import PeftModel
out, run, base = sys.argv[1:4]
with safe_open(f"{out}/model.safetensors", "pt") as f:
    packed = {k: f.get_tensor(k).dtype for k in f.keys() if k.endswith("weight_packed")}
quantized = AutoModelForCausalLM.from_pretrained(out).eval()
with torch.no_grad():
    quantized(input_ids=torch.zeros((1, 1), dtype=torch.long))
trained = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), run).merge_and_unload()
a = quantized.model.layers[0].self_attn.q_proj.weight.float()
b = trained.model.layers[0].self_attn.q_proj.weight.float()
print(json.dumps({"packed": sorted({str(d) for d in packed.values()}), "layers": len(packed),
                  "differs": bool((a != b).any()), "error": float((a - b).abs().max() / b.abs().max())}))
"""


def test_a_gptq_export_is_4bit_and_answers_as_the_trained_model(sft_run, tiny_causal_lm, tmp_path):
    out = tmp_path / "w4a16"
    done = _gptq_venv("-m", "adaptkit", "export", str(sft_run), "--format", "gptq", "-o", str(out), "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report == json.loads((out / "export_report.json").read_text())
    assert report["format"] == "gptq" and report["quant"] == "w4a16" and report["rows"] == 80
    assert report["group_size"] == 64 and report["calibration_rows"] == 64  # 64-wide layers: groups of 64; data.max_rows=64
    assert report["exported"]["size_mb"] < report["trained"]["size_mb"]
    # 4-bit weights of a lightly trained 64-wide model keep its greedy answers nearly everywhere
    assert report["agreement"] >= 0.8 and report["within_threshold"] == (-report["difference"] <= 0.01)
    assert report["serve"].startswith(f"vllm serve {out.resolve()} --served-model-name answers")
    config = json.loads((out / "config.json").read_text())["quantization_config"]
    assert config["quant_method"] == "compressed-tensors" and config["ignore"] == ["lm_head"]
    assert config["config_groups"]["group_0"]["weights"]["num_bits"] == 4
    assert (out / "chat_template.jinja").read_text() == (sft_run / "chat_template.jinja").read_text()  # chat as trained
    assert "not an adaptkit recipe" in (out / "README.md").read_text()
    # the files hold packed integers for all 14 linear layers (7 a block), and unpacked they are close to, not equal
    # to, the trained (merged) weights
    checked = _gptq_venv("-c", CHECK, str(out), str(sft_run), str(tiny_causal_lm))
    assert checked.returncode == 0, checked.stderr[-3000:]
    weights = json.loads(checked.stdout.strip().splitlines()[-1])
    assert weights["packed"] == ["torch.int32"] and weights["layers"] == 14
    assert weights["differs"] and weights["error"] < 0.25, weights


AWQ_ON_CPU = """import json, sys, torch
torch.Tensor.pin_memory = lambda self, *args, **kwargs: self  # AWQ's one GPU-only step; the rest runs as on a GPU
from adaptkit.runners import quantized
quantized.available = lambda algorithm: None
print(json.dumps(quantized.export_quantized(sys.argv[1], sys.argv[2], algorithm="awq")))
"""


def test_awq_quantizes_the_same_way_where_memory_can_be_pinned(sft_run, tmp_path):
    out = tmp_path / "awq"
    done = _gptq_venv("-c", AWQ_ON_CPU, str(sft_run), str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["format"] == "awq" and report["quant"] == "w4a16" and report["agreement"] >= 0.8
    weights = json.loads((out / "config.json").read_text())["quantization_config"]["config_groups"]["group_0"]["weights"]
    assert weights["num_bits"] == 4 and weights["symmetric"] is False and weights["group_size"] == 64  # AWQ: zero points


def test_awq_without_a_gpu_and_a_second_export_into_it_are_one_line(sft_run, tmp_path):
    awq = _gptq_venv("-m", "adaptkit", "export", str(sft_run), "--format", "awq", "-o", str(tmp_path / "awq"))
    assert awq.returncode == 2 and "--format awq needs a CUDA GPU" in awq.stderr and "use --format gptq" in awq.stderr
    assert "Traceback" not in awq.stderr and not (tmp_path / "awq").exists()
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "mine.txt").write_text("keep")
    again = _gptq_venv("-m", "adaptkit", "export", str(sft_run), "--format", "gptq", "-o", str(taken))
    assert again.returncode == 2 and "already exists" in again.stderr and (taken / "mine.txt").read_text() == "keep"


@pytest.mark.unit
def test_without_llm_compressor_gptq_says_how_to_install_it(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llmcompressor" else real(name, *a))
    result = CliRunner().invoke(cli, ["export", str(tmp_path), "--format", "gptq", "-o", str(tmp_path / "out")])
    assert result.exit_code == 2 and "pip install 'adaptkit[gptq]'" in result.stderr and "transformers<=5.17" in result.stderr
    bad = CliRunner().invoke(cli, ["export", str(tmp_path), "--format", "gptq", "--quant", "q4_k_m", "-o", str(tmp_path / "o")])
    assert bad.exit_code == 2 and "--format gptq takes w4a16 or w8a16" in bad.stderr
