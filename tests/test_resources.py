"""Measured beside estimated: the resources block, its comparison, and estimate --calibrate on finished runs."""

import json

import pytest

from adaptkit.recipe.load import load_recipe
from adaptkit.runners import resources


def _measured(device="cuda:0 NVIDIA L4", peak=10.0, tokens=4096):
    return {"device": device, "measured_peak_gb": peak, "measured_as": "torch.cuda.max_memory_allocated", "tokens": tokens,
            "tokens_per_second": 2048.0}


@pytest.mark.parametrize("peak, error, missed", [(10.5, 5.0, False), (14.0, 40.0, True), (6.0, -40.0, True)])
def test_a_gpu_run_is_compared_and_a_large_miss_names_the_assumptions(monkeypatch, peak, error, missed):
    monkeypatch.setattr(resources, "predict", lambda recipe, tokens, processes=1, detect=True: {
        "predicted_peak_gb": 10.0, "predicted_device": "L4", "predicted_breakdown": {"weights": 6.0, "activations": 4.0},
        "predicted_tokens_per_second": 1800.0})
    recipe, _, _ = load_recipe("lora_cls")
    metrics = {"train": {"steps": 3, "resources": _measured(peak=peak)}}
    resources.finish(recipe, metrics)
    block = metrics["resources"]
    assert "resources" not in metrics["train"] and block["error_pct"] == pytest.approx(error)
    assert ("miss" in block) is missed
    if missed:
        assert "weights 6.00" in block["miss"] and "activations 4.00" in block["miss"]
    line = resources.summary(block)[0]
    assert "predicted" in line and f"{error:+.1f}%" in line and "2,048 tokens/s (predicted 1,800)" in line


def test_a_cpu_run_is_measured_but_never_compared(monkeypatch):
    recipe, _, _ = load_recipe("lora_cls")
    metrics = {"train": {"steps": 3, "resources": _measured(device="cpu", peak=0.8)}}
    resources.finish(recipe, metrics)
    block = metrics["resources"]
    assert block["error_pct"] is None and block["predicted_peak_gb"] > 0 and "miss" not in block
    assert "peak RSS 0.80 GB on the CPU" in resources.summary(block)[0]


def test_the_largest_stage_is_compared_and_every_stage_kept(monkeypatch):
    recipe, _, _ = load_recipe("lora_cls")
    metrics = {"train": {"reward": {"resources": _measured(peak=3.0)}, "policy": {"resources": _measured(peak=7.0)}}}
    resources.finish(recipe, metrics)
    assert metrics["resources"]["stage"] == "policy" and metrics["resources"]["measured_peak_gb"] == 7.0
    assert set(metrics["resources"]["stages"]) == {"reward", "policy"}


def test_calibrate_reports_the_error_on_finished_runs(invoke, tmp_path):
    recipe, _, _ = load_recipe("lora_cls")
    predicted = resources.predict(recipe, None, detect=False)["predicted_peak_gb"]
    from adaptkit.recipe.load import as_yaml

    for name, device, peak in (("gpu-run", "cuda:0 NVIDIA L4", predicted * 1.1), ("cpu-run", "cpu", 0.9)):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "recipe.yaml").write_text(as_yaml(recipe))
        (folder / "metrics.json").write_text(json.dumps({"method": "lora_adapters", "resources": _measured(device, peak)}))
    (tmp_path / "rag-run").mkdir()
    (tmp_path / "rag-run" / "recipe.yaml").write_text(as_yaml(load_recipe("rag")[0]))
    (tmp_path / "rag-run" / "metrics.json").write_text(json.dumps({"method": "rag", "eval": {}}))
    result = invoke("estimate", "--calibrate", tmp_path / "gpu-run", tmp_path / "cpu-run", tmp_path / "rag-run", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["compared"] == 1 and report["median_abs_error_pct"] == pytest.approx(10.0, abs=0.2)
    rows = {r["run"].rsplit("/", 1)[-1]: r for r in report["runs"]}
    assert rows["cpu-run"]["error_pct"] is None and "skipped" in rows["rag-run"]
    text = invoke("estimate", "--calibrate", tmp_path / "gpu-run").stdout
    assert "+10.0%" in text and "median |error| over 1 GPU run(s): 10.0%" in text
    missing = invoke("estimate", "--calibrate", tmp_path / "nowhere")
    assert missing.exit_code == 2 and "finished adaptkit runs" in missing.stderr


def test_a_measured_throughput_gives_the_time(invoke):
    args = ("estimate", "--method", "lora_adapters", "--model", "Qwen/Qwen2.5-7B", "--gpu", "H100", "--tokens", "36M", "--json")
    measured = json.loads(invoke(*args, "--tokens-per-second", "2000").stdout)
    assert measured["estimated_hours"] == {"low": 5.0, "high": 5.0} and measured["estimated_cost_usd"]["low"] == 15.0
    assert any("measured 2,000 tokens/s" in line for line in measured["assumptions"])


def test_a_finished_gpu_run_of_the_recipe_gives_the_time(invoke, tmp_path):
    out = tmp_path / "done"
    out.mkdir()
    (out / "metrics.json").write_text(json.dumps({"resources": _measured(device="cuda:0 NVIDIA H100 80GB HBM3", peak=30.0)}))
    args = ("estimate", "--recipe", "lora_sft", f"output_dir={out}", "--gpu", "H100", "--tokens", "7.3728M", "--json")
    result = json.loads(invoke(*args).stdout)
    assert result["estimated_hours"] == {"low": 1.0, "high": 1.0}  # 7,372,800 tokens at the measured 2,048 a second
    assert any("measured by the finished run" in line for line in result["assumptions"])
    other = json.loads(invoke(*args[:-5], "--gpu", "A100-80GB", "--tokens", "7.3728M", "--json").stdout)
    assert other["estimated_hours"]["low"] != other["estimated_hours"]["high"]  # another GPU: the MFU range again
