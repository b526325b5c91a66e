"""Continued pre-training on raw text (the cpt recipe): language modelling on every token with packing, LoRA with
trainable embeddings and output layer (or all weights), scored by held-out perplexity before and after; the estimator
counts the trained embeddings; advise writes it, followed by an instruction-tuning stage, for a raw corpus."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adaptkit.runners.data import read_rows


def test_a_txt_file_is_raw_text_one_row_per_paragraph(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("First paragraph,\nstill the first.\n\n\nSecond one.\n  \nThird.\n", encoding="utf-8")
    assert read_rows(str(path), "train", "data.train") == [{"text": "First paragraph,\nstill the first."}, {"text": "Second one."},
                                                           {"text": "Third."}]


def test_the_dry_run_says_raw_text_is_trained_on_every_token(invoke, tiny_causal_lm):
    result = invoke("run", "cpt", f"model={tiny_causal_lm}", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)["data"]
    assert data["train_rows"] > 300 and data["eval_rows"] > 40 and "continued pre-training" in data["objective"]
    assert data["leakage"].startswith("0 of") and data["lengths"]["max"] > 20


def test_the_estimator_counts_embeddings_trained_beside_the_adapters(invoke):
    plain = json.loads(invoke("estimate", "--recipe", "cpt", "lora.modules_to_save=", "--json").stdout)
    saved = json.loads(invoke("estimate", "--recipe", "cpt", "--json").stdout)
    # Qwen2.5-0.5B: a 151,936 x 896 embedding, tied to the head; PEFT trains a copy of each
    assert saved["trainable_params"] - plain["trainable_params"] == 2 * 151_936 * 896
    assert saved["peak_memory_gb"] > plain["peak_memory_gb"] + 2 * 151_936 * 896 * 16 / 1e9 * 0.9


@pytest.mark.train
@pytest.mark.parametrize("variant", [[], ["method=full_finetuning", "lora="]])
def test_continued_pretraining_lowers_held_out_perplexity(invoke, tmp_path, tiny_causal_lm, variant):
    out = tmp_path / "cpt"
    result = invoke("run", "cpt", f"model={tiny_causal_lm}", f"output_dir={out}", "training.max_steps=12", "training.batch_size=4",
                    "training.max_length=128", "training.learning_rate=0.003", "training.logging_steps=1", *variant, "--json")
    assert result.exit_code == 0, result.output
    scored = json.loads(result.stdout)["eval"]
    assert scored["base"]["perplexity"] > scored["perplexity"] > 1 and scored["delta"]["perplexity"] < 0
    assert "generated_rows" not in scored  # raw text has no prompts to answer
    if not variant:
        from peft import PeftConfig

        assert sorted(PeftConfig.from_pretrained(out).modules_to_save) == ["embed_tokens", "lm_head"]


def _raw_corpus_advice(model, **more):
    import adaptkit

    root = Path(__file__).parent.parent / "examples" / "data"
    return adaptkit.advise({"task": "generation", "goal": "domain_adaptation", "weight_access": "open", "model": str(model),
                            "unlabeled_corpus_tokens": 200_000_000, "labeled_examples": 320, "raw_text_data": str(root / "domain_train.txt"),
                            "train_data": str(root / "instructions_train.jsonl"), "eval_data": str(root / "instructions_eval.jsonl"),
                            **more}, detect_gpus=False)


def test_the_advice_for_a_raw_corpus_is_cpt_then_instruction_tuning(tmp_path, monkeypatch, tiny_causal_lm):
    import adaptkit

    monkeypatch.chdir(tmp_path)
    advice = _raw_corpus_advice(tiny_causal_lm)
    fired = {f.rule.id for f in advice.firings}
    assert "P4-cpt-then-instruct" in fired and "instruction_tuning" in advice.combine
    written = adaptkit.write_recipe(advice, tmp_path / "plans" / "plan.yaml", method="lora_adapters")
    assert written.fields["data"]["text_column"] == "text" and written.fields["training"]["packing"] is True
    assert written.fields["lora"]["modules_to_save"] == ["embed_tokens", "lm_head"]
    stage = written.then
    assert stage.path.name == "plan.instruct.yaml" and stage.fields["model"] == "../runs/lora_adapters-cpt-merged"
    assert any("adaptkit merge runs/lora_adapters-cpt -o runs/lora_adapters-cpt-merged" in n for n in stage.notes)
    again = pytest.raises(adaptkit.InputError, adaptkit.write_recipe, advice, tmp_path / "plans" / "plan.yaml", method="lora_adapters")
    assert "already exists" in str(again.value)
    plain = adaptkit.advise({"task": "generation", "goal": "behavior", "weight_access": "open", "model": str(tiny_causal_lm),
                             "labeled_examples": 320}, detect_gpus=False)
    assert adaptkit.write_recipe(plain, tmp_path / "one.yaml", method="lora_adapters").then is None


@pytest.mark.train
def test_both_stages_of_the_emitted_plan_run(tmp_path, monkeypatch, tiny_causal_lm):
    import adaptkit

    monkeypatch.chdir(tmp_path)
    written = adaptkit.write_recipe(_raw_corpus_advice(tiny_causal_lm), tmp_path / "plan.yaml", method="full_finetuning")
    assert written.fields["method"] == "full_finetuning" and written.then.fields["method"] == "instruction_tuning"
    quick = ["training.max_steps=6", "training.batch_size=4", "training.max_length=96", "training.learning_rate=0.003",
             "training.epochs=1", "training.generate_eval=4", "training.max_new_tokens=8"]
    first = adaptkit.run(written, quick)
    assert first.eval["base"]["perplexity"] > first.eval["perplexity"]
    second = adaptkit.run(written.then, quick)
    import yaml

    trained_from = yaml.safe_load((tmp_path / "runs" / "full_finetuning" / "recipe.yaml").read_text())["model"]
    assert trained_from == str(tmp_path / "runs" / "full_finetuning-cpt") and second.eval["generated_rows"] == 4


def test_advise_reads_a_txt_corpus_as_raw_text_for_the_cpt_stage(invoke, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    corpus = Path(__file__).parent.parent / "examples" / "data" / "domain_train.txt"
    result = invoke("advise", "--data", corpus, "--set", "goal=domain_adaptation", "--set", "weight_access=open",
                    "--set", "task=generation", "--set", "model=Qwen/Qwen2.5-0.5B", "--set", "unlabeled_corpus_tokens=200000000", "--emit-recipe", "plan.yaml", "--method", "lora_adapters")
    assert result.exit_code == 0, result.output
    assert "unlabeled_corpus_tokens" in result.output and "instruction-tune it next" in result.output
    assert not (tmp_path / "plan.instruct.yaml").exists()  # no instruction pairs: the plan is continued pre-training alone
    import yaml

    first = yaml.safe_load((tmp_path / "plan.yaml").read_text())
    assert (tmp_path / first["data"]["train"]).resolve() == corpus.resolve()  # relative to the recipe's folder, or absolute
    assert first["lora"]["modules_to_save"] == ["embed_tokens", "lm_head"]


def test_replay_of_general_text_is_a_second_weighted_source(invoke, tmp_path, tiny_causal_lm):
    general = tmp_path / "general.txt"
    general.write_text("\n\n".join(f"General paragraph {i} about weather, travel and cooking on day {i}." for i in range(200)))
    domain = Path(__file__).parent.parent / "examples" / "data" / "domain_train.txt"
    sources = f"data.sources=[{{path: {domain}, weight: 0.8}}, {{path: {general}, weight: 0.2}}]"
    result = invoke("run", "cpt", f"model={tiny_causal_lm}", "data.train=", sources, "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)["data"]
    assert [s["format"] for s in data["sources"]] == ["text", "text"] and "continued pre-training" in data["objective"]
    assert 0.1 < data["sources"][1]["share"] < 0.3
