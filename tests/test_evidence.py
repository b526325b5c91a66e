"""Advice that reads the ledger: runs measured on the profile's own data are shown beside the rules and rank the
methods where they disagree (the cheapest within 0.02 of the best first); --no-evidence gives the rules alone."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import yaml

from adaptkit import ledger

ROOT = Path(__file__).parent.parent


def _record(method: str, value: float, data: Path, training_s: float, curve: dict | None = None, base: float = 0.2) -> None:
    digest = hashlib.sha256(data.read_bytes()).hexdigest()
    ledger.add({"folder": f"/nowhere/{method}", "recorded": 1.0, "method": method, "task": "sequence_classification",
                "model": "m", "data_sha256": digest, "device": "cpu", "metric": "accuracy", "value": value, "base": base,
                "delta": value - base, "training_s": training_s, "record": {"curve": curve} if curve else {}})


def _curve(a: float, b: float, c: float, full: int = 320) -> dict:
    from adaptkit.curves import forecast_at

    curve = {"a": a, "b": b, "c": c, "rows": {"full": full, "2x": 2 * full, "5x": 5 * full}}
    forecast = {name: forecast_at(curve, n) for name, n in curve["rows"].items()}
    return {**curve, "forecast": forecast, "gain_at_2x": forecast["2x"] - forecast["full"],
            "flat": forecast["2x"] - forecast["full"] < 0.01}


def _answers(tmp_path: Path) -> tuple[Path, Path]:
    data = tmp_path / "tickets_eval.jsonl"
    shutil.copy(ROOT / "examples" / "data" / "support_tickets_test.jsonl", data)
    answers = tmp_path / "answers.yaml"
    answers.write_text(yaml.safe_dump({"task": "classification", "goal": "behavior", "weight_access": "open", "model_params_b": 7,
                                       "gpu_vram_gb": 80, "num_gpus": 1, "labeled_examples": 320, "eval_data": str(data),
                                       "inference_volume": "low"}))
    return answers, data


def test_measured_runs_on_the_same_data_rank_the_methods(invoke, tmp_path):
    answers, data = _answers(tmp_path)
    rules = json.loads(invoke("advise", "--answers", answers, "--json", "--no-input").stdout)
    assert rules["evidence"] is None
    rule_order = [r["method"] for r in rules["recommendations"]]
    assert rule_order.index("lora_adapters") < rule_order.index("in_context_learning")
    _record("lora_adapters", 0.93, data, 60.0)
    _record("in_context_learning", 0.92, data, 0.0)  # within 0.02 of the best, and cheaper: it ranks first
    _record("full_finetuning", 0.80, data, 300.0)
    measured = json.loads(invoke("advise", "--answers", answers, "--json", "--no-input").stdout)
    order = [r["method"] for r in measured["recommendations"]]
    assert order[:3] == ["in_context_learning", "lora_adapters", "full_finetuning"]
    evidence = measured["evidence"]
    assert evidence["first"] == "in_context_learning" and evidence["rules_first"] == rule_order[0]
    assert "within 0.02 of the best" in evidence["said"] and f"the rules alone ranked {rule_order[0]} first" in evidence["said"]
    assert measured["recommendations"][0]["rationale"][0].startswith("measured on your data: accuracy 0.9200")
    off = json.loads(invoke("advise", "--answers", answers, "--json", "--no-input", "--no-evidence").stdout)
    assert [r["method"] for r in off["recommendations"]] == rule_order and off["evidence"] is None
    text = invoke("advise", "--answers", answers, "--no-input", "--explain").output
    assert "evidence: measured on your data (3 runs" in text and "Measured runs on this data" in text


def test_the_cheapest_at_your_volume_ranks_first(invoke, tmp_path):
    """Two measured runs within the margin, each folder pricing its requests: few-shot prompting (600 prompt tokens a
    request) against a LoRA run that took 10 hours to train. At 500 requests a day the prompts cost less than the
    training run and ICL ranks first; at 300,000 a day LoRA does, and the evidence says what a month costs each."""
    answers, data = _answers(tmp_path)
    runs = {"in_context_learning": (0.92, {"prompt_tokens": 600, "output_tokens": 3}, {}),
            "lora_adapters": (0.93, {"prompt_tokens": 40}, {"runtime_s": 36000.0, "trainable_params": 75653})}
    for method, (value, scored, train) in runs.items():
        folder = tmp_path / method
        folder.mkdir()
        (folder / "metrics.json").write_text(json.dumps({"method": method, "task": "sequence_classification",
                                                         "eval": {"accuracy": value, **scored}, "train": train}))
        digest = hashlib.sha256(data.read_bytes()).hexdigest()
        ledger.add({"folder": str(folder), "recorded": 1.0, "method": method, "task": "sequence_classification", "model": "m",
                    "data_sha256": digest, "device": "cpu", "metric": "accuracy", "value": value, "training_s": train.get("runtime_s", 0.0)})
    firsts = {}
    for volume in ("low", "high"):
        answered = yaml.safe_load(answers.read_text())
        answers.write_text(yaml.safe_dump({**answered, "inference_volume": volume}))
        advice = json.loads(invoke("advise", "--answers", answers, "--json", "--no-input").stdout)
        firsts[volume], evidence = advice["recommendations"][0]["method"], advice["evidence"]
        month = evidence["usd_a_month"]
        assert month["lora_adapters"]["training_usd"] == 10.0 and month["in_context_learning"]["training_usd"] == 0.0
        if volume == "low":  # 500 a day x 30 at (600 x $0.5 + 3 x $2) per 1M: $4.59; LoRA $10 of training and $0.30 serving
            assert month["in_context_learning"]["usd"] == 4.59 and month["lora_adapters"]["usd"] == 10.3
            assert "in_context_learning is within 0.02 of the best and costs less at your volume: $4.59 a month at ~500 requests a day " \
                   "against lora_adapters's $10.30 (0.45x), training included" in evidence["said"]
    assert firsts == {"low": "in_context_learning", "high": "lora_adapters"}


def test_runs_on_other_data_are_not_evidence(invoke, tmp_path):
    answers, data = _answers(tmp_path)
    other = tmp_path / "other.jsonl"
    other.write_text('{"text": "x", "label": "a"}\n')
    _record("in_context_learning", 0.99, other, 0.0)
    advice = json.loads(invoke("advise", "--answers", answers, "--json", "--no-input").stdout)
    assert advice["evidence"] is None


def test_a_clear_winner_ranks_first_by_its_score(invoke, tmp_path):
    answers, data = _answers(tmp_path)
    _record("in_context_learning", 0.70, data, 0.0)
    _record("full_finetuning", 0.95, data, 300.0)
    advice = json.loads(invoke("advise", "--answers", answers, "--json", "--no-input").stdout)
    assert advice["recommendations"][0]["method"] == "full_finetuning" and "scored best" in advice["evidence"]["said"]


def test_a_measured_run_on_the_gpu_corrects_the_estimate_and_says_so(invoke):
    before = json.loads(invoke("estimate", "--recipe", "lora_sft", "--gpu", "A100-80GB", "--json").stdout)
    assert "calibration" not in before
    ledger.add({"folder": "/nowhere/lora_sft", "recorded": 1.0, "method": "lora_adapters", "task": "causal_lm",
                "model": "Qwen/Qwen2.5-0.5B-Instruct", "data_sha256": None, "device": "cuda:0 NVIDIA A100-SXM4-80GB",
                "metric": "rougeL", "value": 0.3, "measured_peak_gb": 1.25 * before["peak_memory_gb"],
                "predicted_peak_gb": before["peak_memory_gb"], "record": {}})
    after = json.loads(invoke("estimate", "--recipe", "lora_sft", "--gpu", "A100-80GB", "--json").stdout)
    assert after["peak_memory_gb"] == round(1.25 * before["peak_memory_gb"], 2)
    assert after["calibration"]["runs"] == 1 and after["calibration"]["same_model"] and after["calibration"]["factor"] == 1.25
    assert after["assumptions"][0].startswith("calibrated by 1 measured run on A100")
    text = invoke("estimate", "--recipe", "lora_sft", "--gpu", "A100-80GB").output
    assert "calibrated by 1 measured run" in text
    plain = json.loads(invoke("estimate", "--recipe", "lora_sft", "--gpu", "A100-80GB", "--uncalibrated", "--json").stdout)
    assert plain["peak_memory_gb"] == before["peak_memory_gb"]
    other = json.loads(invoke("estimate", "--recipe", "lora_sft", "--gpu", "H100", "--json").stdout)
    assert "calibration" not in other  # another GPU model: its own runs, none yet
    import adaptkit

    assert adaptkit.estimate("lora_sft", gpu="A100-80GB")["calibration"]["runs"] == 1


def test_the_advice_reads_a_team_ledger_in_mlflow(invoke, tmp_path, monkeypatch):
    import pytest

    pytest.importorskip("mlflow")
    monkeypatch.setenv("ADAPTKIT_LEDGER", f"mlflow+sqlite:///{tmp_path / 'team.db'}")
    answers, data = _answers(tmp_path)
    _record("lora_adapters", 0.93, data, 60.0)
    _record("in_context_learning", 0.92, data, 0.0)
    advice = json.loads(invoke("advise", "--answers", answers, "--json", "--no-input").stdout)
    assert advice["evidence"]["first"] == "in_context_learning" and "2 runs in the ledger" in advice["evidence"]["said"]


def test_learning_curves_forecast_each_method_at_your_labels(invoke, tmp_path):
    """Measured on 320 rows: lora 0.93 on a steep curve, icl 0.92 (no curve: it learns from no labels). With 3,200
    labels the curve says lora reaches about 0.97, past icl's margin, so lora ranks first; with 80 labels it falls
    behind, and icl ranks first by more than the cost rule alone."""
    answers, data = _answers(tmp_path)
    steep = _curve(1.0, 1.0, 0.46)  # 1 - 320^-0.46 ~ 0.93 measured; ~0.97 at 3,200; ~0.87 at 80
    _record("lora_adapters", 0.93, data, 60.0, steep)
    _record("in_context_learning", 0.92, data, 0.0)
    more = yaml.safe_load(answers.read_text()) | {"labeled_examples": 3200}
    answers.write_text(yaml.safe_dump(more))
    advice = json.loads(invoke("advise", "--answers", answers, "--json", "--no-input").stdout)
    forecast = advice["evidence"]["forecasts"]["lora_adapters"]
    assert forecast["rows"] == 3200 and forecast["value"] > 0.95 and not forecast["flat"]
    assert advice["recommendations"][0]["method"] == "lora_adapters"
    assert "forecast at your 3,200 labels" in advice["evidence"]["said"]
    assert advice["recommendations"][0]["rationale"][1].startswith("learning curve: accuracy")
    answers.write_text(yaml.safe_dump(more | {"labeled_examples": 80}))
    fewer = json.loads(invoke("advise", "--answers", answers, "--json", "--no-input").stdout)
    assert fewer["evidence"]["forecasts"]["lora_adapters"]["value"] < 0.9
    assert fewer["recommendations"][0]["method"] == "in_context_learning"
    # a flat curve: more labels change nothing, and the rationale says the lever is elsewhere
    ledger.add({"folder": "/nowhere/lora_adapters", "recorded": 2.0, "method": "lora_adapters", "task": "sequence_classification",
                "model": "m", "data_sha256": hashlib.sha256(data.read_bytes()).hexdigest(), "device": "cpu", "metric": "accuracy",
                "value": 0.93, "base": 0.2, "delta": 0.73, "training_s": 60.0, "record": {"curve": _curve(0.931, 0.5, 2.0)}})
    answers.write_text(yaml.safe_dump(more))
    flat = json.loads(invoke("advise", "--answers", answers, "--json", "--no-input").stdout)
    assert flat["evidence"]["forecasts"]["lora_adapters"]["flat"] and flat["recommendations"][0]["method"] == "in_context_learning"
    lora = next(r for r in flat["recommendations"] if r["method"] == "lora_adapters")
    assert "the curve is flat" in lora["rationale"][1]
    # a rough fit (the law misses a measured score by 0.10: the scores rose instead of levelling off) forecasts nothing:
    # the measured score ranks, as without a curve
    ledger.add({"folder": "/nowhere/lora_adapters", "recorded": 3.0, "method": "lora_adapters", "task": "sequence_classification",
                "model": "m", "data_sha256": hashlib.sha256(data.read_bytes()).hexdigest(), "device": "cpu", "metric": "accuracy",
                "value": 0.93, "base": 0.2, "delta": 0.73, "training_s": 60.0,
                "record": {"curve": {**steep, "fit_error": 0.1}}})
    rough = json.loads(invoke("advise", "--answers", answers, "--json", "--no-input").stdout)
    assert "lora_adapters" not in rough["evidence"].get("forecasts", {}) and "forecast at your" not in rough["evidence"]["said"]


@pytest.mark.unit
def test_a_curve_through_the_full_data_says_what_was_measured_and_how_well_the_law_fits():
    from adaptkit.curves import advice, learning_curve

    rising = learning_curve([(16, 0.2333, 0.077), (48, 0.5333, 0.09), (144, 1.0, 0.01)], 144)  # a late bloomer's rungs
    said = advice("lora_cls", rising, "accuracy")
    assert said.startswith("lora_cls: accuracy 1.000 measured at the full data") and "misses a measured score by 0.10" in said
    levelling = learning_curve([(40, 0.80, 0.06), (80, 0.88, 0.04), (160, 0.92, 0.03)], 320)
    said = advice("lora_cls", levelling, "accuracy")
    assert levelling["fit_error"] < 0.01 and said.startswith("lora_cls: accuracy 0.940 forecast at the full data")
    assert "rough" not in said


def test_a_run_no_better_than_its_base_ranks_nothing(invoke, tmp_path):
    """A LoRA run that scored its base (it did not learn) is evidence against its settings, not for the method: the
    rules' order stands and the advice says why; a run that beat its base still ranks."""
    answers, data = _answers(tmp_path)
    rule_order = [r["method"] for r in json.loads(invoke("advise", "--answers", answers, "--json", "--no-input").stdout)["recommendations"]]
    _record("full_finetuning", 0.40, data, 30.0, base=0.40)
    alone = json.loads(invoke("advise", "--answers", answers, "--json", "--no-input").stdout)
    assert [r["method"] for r in alone["recommendations"]] == rule_order
    assert "full_finetuning accuracy 0.4000 is no better than its base (0.4000): not ranked by it" in alone["evidence"]["said"]
    ranked = {r["method"]: r for r in alone["recommendations"]}
    assert ranked["full_finetuning"]["rationale"][0].startswith("measured on your data: accuracy 0.4000, no better than its base")
    _record("in_context_learning", 0.60, data, 0.0, base=0.45)
    both = json.loads(invoke("advise", "--answers", answers, "--json", "--no-input").stdout)
    assert both["recommendations"][0]["method"] == "in_context_learning" and "not ranked by it" in both["evidence"]["said"]
    assert [r["method"] for r in both["evidence"]["runs"]] == ["in_context_learning"]
