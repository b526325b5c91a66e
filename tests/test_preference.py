"""DPO and RLHF recipes on a tiny causal LM and a tiny reward model, and every preference-data error."""

import json
from pathlib import Path

import pytest

from tests.conftest import check_resources

pytest.importorskip("trl")

ROOT = Path(__file__).parent.parent
SHORT = ["training.max_length=128", "training.logging_steps=1", "data.max_rows=48"]


def run_ok(invoke, *args):
    result = invoke("run", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def losses(out: Path, stage=None) -> list[float]:
    rows = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if "loss" in r and r.get("stage") == stage]


def test_lora_dpo_trains_and_loads(invoke, tmp_path, tiny_causal_lm):
    out = tmp_path / "dpo"
    metrics = run_ok(invoke, "dpo", f"model={tiny_causal_lm}", f"output_dir={out}", "training.max_steps=8",
                     "training.learning_rate=0.002", "training.gradient_accumulation=1", *SHORT)
    assert metrics["method"] == "dpo" and {"loss", "preference_accuracy", "reward_margin"} <= set(metrics["eval"])
    assert metrics["eval"]["primary_metric"] == "rougeL" and (out / "samples.jsonl").is_file()  # answers scored against chosen
    assert 0 <= metrics["eval"]["preference_accuracy"] <= 1 and metrics["eval"]["reward_margin"] is not None
    check_resources(metrics)
    curve = losses(out)
    assert curve[-1] < curve[0], curve
    from peft import AutoPeftModelForCausalLM

    assert AutoPeftModelForCausalLM.from_pretrained(out) is not None
    assert (out / "README.md").read_text().count("AutoPeftModelForCausalLM") == 2


def test_full_weight_dpo_with_a_reference_copy(invoke, tmp_path, tiny_causal_lm):
    out = tmp_path / "dpo-full"
    metrics = run_ok(invoke, "dpo", f"model={tiny_causal_lm}", f"output_dir={out}", "preference.reference=copy", "lora=",
                     "training.max_steps=3", "training.learning_rate=0.0005", *SHORT)
    assert metrics["train"]["trainable_params"] == metrics["train"]["total_params"]
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(out) is not None


def test_dpo_starts_from_an_sft_adapter(invoke, tmp_path, tiny_causal_lm):
    sft = tmp_path / "sft"
    run_ok(invoke, "lora_sft", f"model={tiny_causal_lm}", f"output_dir={sft}", "training.max_steps=2", "training.max_length=64",
           "data.max_rows=16")
    out = tmp_path / "dpo-from-sft"
    metrics = run_ok(invoke, "dpo", f"model={tiny_causal_lm}", f"output_dir={out}", f"preference.starting_adapter={sft}",
                     "training.max_steps=2", *SHORT)
    assert metrics["train"]["trainable_params"] > 0
    bad = invoke("run", "dpo", f"model={tiny_causal_lm}", f"output_dir={tmp_path / 'x'}", f"preference.starting_adapter={tmp_path}")
    assert bad.exit_code == 2 and "adapter_config.json" in bad.stderr


RLHF = ["training.max_length=128", "training.logging_steps=1", "data.max_rows=48", "rlhf.reward_model.max_steps=8",
        "rlhf.reward_model.learning_rate=0.001", "rlhf.policy.max_steps=3", "rlhf.policy.max_completion_length=8",
        "rlhf.policy.eval_prompts=4", "rlhf.policy.batch_size=4"]


def test_rlhf_reward_then_policy_stage(invoke, tmp_path, tiny_causal_lm):
    out = tmp_path / "rlhf"
    early = invoke("run", "rlhf", f"model={tiny_causal_lm}", f"output_dir={out}", "--stage", "policy", *RLHF)
    assert early.exit_code == 2 and "run --stage reward first" in early.stderr
    reward = run_ok(invoke, "rlhf", f"model={tiny_causal_lm}", f"output_dir={out}", "--stage", "reward", *RLHF)
    assert 0 <= reward["eval"]["reward_model_accuracy"] <= 1
    assert (out / "reward_model" / "reward_metrics.json").is_file() and not (out / "metrics.json").exists()
    assert losses(out, "reward")[-1] < losses(out, "reward")[0]
    metrics = run_ok(invoke, "rlhf", f"model={tiny_causal_lm}", f"output_dir={out}", "--stage", "policy", *RLHF)
    assert set(metrics["train"]) == {"reward_model", "policy"}
    assert {"reward_model_accuracy", "reward_before", "reward_after", "kl"} <= set(metrics["eval"])
    scored = metrics["eval"]  # the policy's answers scored against the preferred ones, the policy before training as base
    assert scored["primary_metric"] == "rougeL" and scored["reference"] == "chosen" and "rougeL" in scored["base"]
    assert scored["delta"]["rougeL"] == pytest.approx(scored["rougeL"] - scored["base"]["rougeL"], abs=1e-6)
    assert metrics["eval"]["reward_model_accuracy"] == reward["eval"]["reward_model_accuracy"]  # reused, not retrained
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 4 and {"before", "after", "reward_before", "reward_after"} <= set(samples[0])
    rewards = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines() if "reward" in line]
    assert any(r.get("stage") == "policy" and "reward" in r for r in rewards)
    assert (out / "reward_curve.png").is_file() and (out / "loss_curve.png").is_file()
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoModelForSequenceClassification

    assert AutoModelForSequenceClassification.from_pretrained(out / "reward_model").config.num_labels == 1
    assert AutoPeftModelForCausalLM.from_pretrained(out / "policy") is not None
    again = invoke("run", "rlhf", f"model={tiny_causal_lm}", f"output_dir={out}", "--stage", "policy", *RLHF)
    assert again.exit_code == 2 and "not empty" in again.stderr
    reward_files = {p.name: p.read_bytes() for p in (out / "reward_model").iterdir() if p.is_file()}
    run_ok(invoke, "rlhf", f"model={tiny_causal_lm}", f"output_dir={out}", "--stage", "policy", "--overwrite", *RLHF)
    assert {p.name: p.read_bytes() for p in (out / "reward_model").iterdir() if p.is_file()} == reward_files  # only the policy is replaced
    assert (out / "policy" / "adapter_config.json").is_file() and not list(out.glob(".policy.adaptkit-*"))


def test_rlhf_all_stages_with_rloo(invoke, tmp_path, tiny_causal_lm):
    out = tmp_path / "rloo"
    metrics = run_ok(invoke, "rlhf", f"model={tiny_causal_lm}", f"output_dir={out}", "rlhf.policy.algorithm=rloo", *RLHF)
    assert metrics["eval"]["reward_after"] is not None and (out / "policy" / "adapter_config.json").is_file()
    resources = check_resources(metrics)
    assert set(resources["stages"]) == {"reward_model", "policy"} and resources["stage"] in ("reward_model", "policy")


def test_stage_is_only_for_rlhf(invoke):
    result = invoke("run", "dpo", "--stage", "reward")
    assert result.exit_code == 2 and "dpo has no stages" in result.stderr


def _jsonl(path: Path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.mark.parametrize("rows, words", [
    ([{"prompt": "p", "chosen": "a"}], "column `rejected` not found"),
    ([{"prompt": "p", "chosen": "", "rejected": "b"}], "empty chosen or rejected"),
    ([{"prompt": "p", "chosen": "same", "rejected": "same"}, {"prompt": "q", "chosen": "x", "rejected": "y"}],
     "1 pair(s) have identical chosen and rejected"),
    ([{"prompt": "p", "response": "r"}], "looks like SFT data"),
    ([{"messages": [{"role": "user", "content": "hi"}]}], "looks like SFT data"),
    ([{"question": "p", "chosen": "a", "rejected": "b"}], "column `prompt` not found"),
])
@pytest.mark.parametrize("recipe", ["dpo", "rlhf"])
def test_bad_preference_data_fails_in_one_line(invoke, tmp_path, monkeypatch, recipe, rows, words):
    monkeypatch.chdir(tmp_path)
    _jsonl(tmp_path / "p.jsonl", rows)
    result = invoke("run", recipe, "data.train=p.jsonl", "data.eval=", "output_dir=out")
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and words in result.stderr
    assert not (tmp_path / "out").exists()


def test_dry_run_counts_long_pairs_and_shows_the_extra_models(invoke, tiny_causal_lm):
    report = json.loads(invoke("run", "dpo", f"model={tiny_causal_lm}", "training.max_length=16", "--dry-run", "--json").stdout)
    assert report["data"]["lengths"]["truncated_at_max_length"] > 0 and "chosen" in report["data"]["sample"]
    rlhf = json.loads(invoke("run", "rlhf", "--dry-run", "--json").stdout)
    breakdown = rlhf["memory"]["breakdown"]
    assert breakdown["reward_model"] > 0 and breakdown["kv_cache"] > 0


def test_advise_emits_a_dpo_recipe_and_checks_the_users_data(invoke, tmp_path):
    answers = ROOT / "examples" / "answers" / "helpful_replies_dpo.yaml"
    target = tmp_path / "dpo.yaml"
    result = invoke("advise", "--answers", answers, "--emit-recipe", target)
    assert result.exit_code == 0, result.output
    assert invoke("recipes", "validate", target).exit_code == 0
    sft = tmp_path / "sft.csv"
    sft.write_text("prompt,response\nhello,hi there\nbye,see you\n")
    bad = invoke("advise", "--answers", answers, "--set", f"train_data={sft}", "--emit-recipe", tmp_path / "other.yaml")
    assert bad.exit_code == 2 and "looks like SFT data" in bad.stderr and not (tmp_path / "other.yaml").exists()


# ----------------------------------------------------------------------------------------------- KTO, ORPO, SimPO, CPO

@pytest.mark.parametrize("recipe, extra", [
    ("kto", []), ("orpo", []), ("simpo", []), ("orpo", ["preference.algorithm=cpo"]),
    ("kto", ["data.train=examples/data/preferences_train.jsonl", "data.eval=", "data.eval_fraction=0.1"]),  # pairs, split
])
def test_each_preference_algorithm_trains_and_loads(invoke, tmp_path, tiny_causal_lm, monkeypatch, recipe, extra):
    monkeypatch.chdir(ROOT)
    out = tmp_path / "out"
    metrics = run_ok(invoke, recipe, f"model={tiny_causal_lm}", f"output_dir={out}", "training.max_steps=4",
                     "training.learning_rate=0.002", "training.gradient_accumulation=1", *SHORT, *extra)
    algorithm = next((e.split("=")[1] for e in extra if e.startswith("preference.algorithm=")), recipe)
    assert metrics["method"] == "dpo" and metrics["algorithm"] == algorithm
    check_resources(metrics)
    curve = losses(out)
    assert len(curve) >= 3 and all(loss == loss for loss in curve) and curve[-1] != curve[0], curve
    assert metrics["eval"]["loss"] is not None and metrics["eval"]["reward_margin"] is not None
    if algorithm != "kto":  # paired losses report how often the chosen reply wins
        assert 0 <= metrics["eval"]["preference_accuracy"] <= 1
    from peft import AutoPeftModelForCausalLM

    assert AutoPeftModelForCausalLM.from_pretrained(out) is not None


def test_reference_free_losses_train_all_weights_without_a_reference(invoke, tmp_path, tiny_causal_lm):
    metrics = run_ok(invoke, "simpo", f"model={tiny_causal_lm}", f"output_dir={tmp_path / 'full'}", "lora=", "training.max_steps=2", *SHORT)
    assert metrics["train"]["trainable_params"] == metrics["train"]["total_params"]
    simpo = json.loads(invoke("run", "simpo", "lora=", "--dry-run", "--json").stdout)["memory"]
    dpo = json.loads(invoke("run", "dpo", "lora=", "preference.reference=copy", "--dry-run", "--json").stdout)["memory"]
    assert simpo["breakdown"]["reference_model"] == 0 and dpo["breakdown"]["reference_model"] > 0
    assert simpo["peak_memory_gb"] < dpo["peak_memory_gb"]
    assert any("reference-free" in a for a in simpo["assumptions"])


@pytest.mark.parametrize("rows, overrides, words", [
    ([{"prompt": "p", "completion": "a", "label": "maybe"}], [], "is not a thumbs-up/down rating"),
    ([{"prompt": "p", "completion": "a", "label": True}, {"prompt": "q", "completion": "b", "label": 1}], [], "every rating is up"),
    ([{"prompt": "p", "completion": "", "label": True}], [], "have no text in `completion`"),
    ([{"prompt": "p", "completion": "a", "label": True}], ["preference.loss_type=ipo"], "`preference.loss_type` is for dpo, not kto"),
    ([{"prompt": "p", "completion": "a", "label": True}], ["preference.algorithm=orpo", "preference.desirable_weight=2"], "is for kto, not orpo"),
])
def test_bad_feedback_data_and_settings_fail_in_one_line(invoke, tmp_path, monkeypatch, rows, overrides, words):
    monkeypatch.chdir(tmp_path)
    _jsonl(tmp_path / "f.jsonl", rows)
    result = invoke("run", "kto", "data.train=f.jsonl", "data.eval=", "output_dir=out", *overrides)
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and words in result.stderr, result.stderr
    assert not (tmp_path / "out").exists()


def test_a_trainer_trl_moved_is_one_clear_error(monkeypatch):
    import importlib

    from adaptkit.recipe.load import load_recipe
    from adaptkit.errors import InputError
    from adaptkit.methods.preference.runner import trainer_classes

    recipe, _, _ = load_recipe("orpo")
    real = importlib.import_module

    def moved(name, *args):
        if name == "trl.experimental.orpo":
            raise ModuleNotFoundError(name)
        return real(name, *args)
    monkeypatch.setattr(importlib, "import_module", moved)
    with pytest.raises(InputError, match=r"preference.algorithm=orpo: trl.experimental.orpo.ORPOConfig is not in the installed trl"):
        trainer_classes(recipe)
