"""advise writes a runnable recipe for its top trainable recommendation, sized to the profile's GPU."""

import json
from pathlib import Path

import pytest
import yaml

from adaptkit.advisor.engine import advise
from adaptkit.advisor.profile import build_profile
from adaptkit.errors import InputError
from adaptkit.recipe.emit import recipe_for
from adaptkit.recipe.load import load_recipe, validate

ANSWERS = "task: classification\ngoal: behavior\nweight_access: open\nmodel_params_b: 0.0227\ngpu_vram_gb: 0\nnum_gpus: 0\nlabeled_examples: 400\n"


def test_emit_recipe_from_answers(invoke, tmp_path):
    answers = tmp_path / "a.yaml"
    answers.write_text(ANSWERS)
    target = tmp_path / "recipe.yaml"
    result = invoke("advise", "--answers", answers, "--emit-recipe", target)
    assert result.exit_code == 0, result.output
    assert f"adaptkit run {target}" in result.stdout
    text = target.read_text()
    assert text.startswith("# lora_adapters for classification") and "# Run: adaptkit run" in text
    recipe, _, _ = load_recipe(str(target))
    assert recipe.method == "lora_adapters" and recipe.model == "sentence-transformers/all-MiniLM-L6-v2"
    assert invoke("recipes", "validate", target).exit_code == 0
    again = invoke("advise", "--answers", answers, "--emit-recipe", target)
    assert again.exit_code == 2 and "already exists" in again.stderr


def test_emitted_recipe_is_sized_to_the_gpu():
    profile = build_profile({"task": "chat", "goal": "behavior", "weight_access": "open", "model": "meta-llama/Llama-3.1-8B-Instruct",
                             "gpu_vram_gb": 24, "num_gpus": 1, "labeled_examples": 3000})
    recipe, notes = recipe_for(advise(profile))
    assert recipe["method"] == "lora_adapters" and recipe["task"] == "causal_lm"
    assert any("sized to fit" in n for n in notes), notes
    t = recipe["training"]
    assert t["batch_size"] * t.get("gradient_accumulation", 1) >= 4


def test_user_data_paths_and_eval_fraction():
    profile = build_profile({"task": "classification", "goal": "behavior", "weight_access": "open", "model_params_b": 0.02,
                             "labeled_examples": 500, "train_data": "mine.csv"})
    recipe, _ = recipe_for(advise(profile))
    assert recipe["data"]["train"] == "mine.csv" and recipe["data"]["eval"] is None and recipe["data"]["eval_fraction"] == 0.1


def test_the_split_advise_reports_is_the_one_its_recipe_holds_out(invoke, tmp_path):
    """200 rows: advise's note and the written recipe agree (30 held out, 0.15), and an ICL recipe, which trains nothing,
    carries no notes on steps or max_length."""
    rows = [{"review": f"order {i}: the {['kettle', 'lamp', 'tent'][i % 3]} {['broke', 'is fine', 'is great'][i % 3]}",
             "sentiment": ["negative", "neutral", "positive"][i % 3]} for i in range(200)]
    data = tmp_path / "reviews.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    icl, lora = tmp_path / "icl.yaml", tmp_path / "lora.yaml"
    said = invoke("advise", "--data", data, "--set", "goal=behavior", "--set", "weight_access=open", "--no-input",
                  "--emit-recipe", icl, "--method", "in_context_learning")
    assert said.exit_code == 0, said.output
    assert "split: 170 train / 30 eval (eval_fraction 0.15)" in said.stdout
    assert yaml.safe_load(icl.read_text())["data"]["eval_fraction"] == 0.15
    notes = [line for line in icl.read_text().splitlines() if line.startswith("# Note:")]
    assert notes and not any("optimizer steps" in n or "max_length" in n for n in notes), notes
    trained = invoke("advise", "--data", data, "--set", "goal=behavior", "--set", "weight_access=open", "--no-input",
                     "--emit-recipe", lora, "--method", "lora_adapters")
    assert trained.exit_code == 0 and yaml.safe_load(lora.read_text())["data"]["eval_fraction"] == 0.15
    assert "# Note: max_length 64" in lora.read_text()
    # a LoRA classifier trains its head from scratch: the shipped lora_cls's 2e-3 and at least 150 steps (66 steps at
    # 1e-3 left it at chance on rows like these); the epochs a whole number as a user writes it (14, not 14.0)
    assert "170 training rows: batch 16 x 14 epochs = 154 optimizer steps (at least 150" in lora.read_text()
    assert yaml.safe_load(lora.read_text())["training"]["learning_rate"] == 0.002 and "\n  epochs: 14\n" in lora.read_text()
    soft = tmp_path / "soft.yaml"
    assert invoke("advise", "--data", data, "--set", "goal=behavior", "--set", "weight_access=open", "--no-input",
                  "--emit-recipe", soft, "--method", "prefix_prompt_tuning").exit_code == 0
    assert "x 14 epochs = 154 optimizer steps" in soft.read_text() and yaml.safe_load(soft.read_text())["training"]["epochs"] == 14
    split = invoke("advise", "--data", data, "--set", "goal=behavior", "--set", "weight_access=open", "--no-input",
                   "--bake-off", tmp_path / "bo")
    assert split.exit_code == 0 and "30 of the 200 rows" in split.stdout  # the bake-off holds out as many
    assert len((tmp_path / "bo" / "heldout.jsonl").read_text().splitlines()) == 30


def test_nothing_runnable_to_emit():
    profile = build_profile({"task": "qa", "goal": "knowledge", "weight_access": "closed_api", "privacy_on_prem": True})
    with pytest.raises(InputError, match="nothing to write"):
        recipe_for(advise(profile))


@pytest.mark.parametrize("answers, method", [
    ({"task": "qa", "goal": "knowledge", "weight_access": "closed_api", "knowledge_changes_often": True}, "rag"),
    ({"task": "agent", "goal": "actions", "weight_access": "closed_api", "needs_actions_or_live_data": True}, "tool_use"),
    ({"task": "classification", "goal": "behavior", "weight_access": "closed_api", "labeled_examples": 20}, "in_context_learning"),
    ({"task": "generation", "goal": "behavior", "weight_access": "closed_api"}, "prompt_engineering"),
])
def test_training_free_recipes_are_emitted_when_they_win(invoke, tmp_path, answers, method):
    path = tmp_path / "a.yaml"
    path.write_text(yaml.safe_dump({**answers, "api_base_url": "http://127.0.0.1:8000/v1", "api_model": "m", "api_key_env": "K"}))
    target = tmp_path / "r.yaml"
    result = invoke("advise", "--answers", path, "--emit-recipe", target, "--json")
    assert result.exit_code == 0, result.output
    recipe, _, _ = load_recipe(str(target))
    assert recipe.method == method and recipe.backend.kind == "openai" and recipe.backend.base_url == "http://127.0.0.1:8000/v1"
    assert invoke("recipes", "validate", target).exit_code == 0


def test_wizard_offers_the_recipe_last(invoke, monkeypatch, tmp_path):
    from adaptkit.cli import advise as advise_cli
    from tests.test_wizard import Script

    monkeypatch.chdir(tmp_path)
    script = Script({"task": "classification", "goal": "behavior", "weight_access": "open", "model": None, "model_params_b": 0.0227,
                     "num_gpus": 0, "labeled_examples": 400, "force": True, "path": "mine.yaml", "train_data": None, "eval_data": None})
    monkeypatch.setattr(advise_cli, "_interactive", lambda: True)
    monkeypatch.setattr(advise_cli, "_prompter", lambda: script)
    result = invoke("advise")
    assert result.exit_code == 0, result.output
    assert "adaptkit run mine.yaml" in result.stdout
    assert yaml.safe_load((tmp_path / "mine.yaml").read_text())["method"] == "lora_adapters"


def test_advise_then_run_is_two_commands(invoke, tmp_path, monkeypatch):
    pytest.importorskip("peft")
    monkeypatch.chdir(tmp_path)
    answers = tmp_path / "a.yaml"
    answers.write_text(ANSWERS)
    assert invoke("advise", "--answers", answers, "--emit-recipe", "mine.yaml").exit_code == 0
    result = invoke("run", "mine.yaml", "training.max_steps=3", "data.max_rows=48", "--json")
    assert result.exit_code == 0, result.output
    import json

    metrics = json.loads(result.stdout)
    assert metrics["method"] == "lora_adapters" and metrics["eval"]["accuracy"] is not None
    assert (tmp_path / "runs" / "lora_adapters" / "adapter_config.json").is_file()


def test_bake_off_writes_the_top_recipes_and_the_compare_command(invoke, tmp_path):
    answers = tmp_path / "a.yaml"
    answers.write_text(ANSWERS)
    result = invoke("advise", "--answers", answers, "--bake-off", tmp_path / "bo")
    assert result.exit_code == 0, result.output
    files = sorted(p.name for p in (tmp_path / "bo").glob("*.yaml"))
    assert len(files) == 3 and "lora_adapters.yaml" in files
    assert f"adaptkit compare {tmp_path / 'bo'}" in result.stdout and "--eval-data" in result.stdout
    for name in files:
        assert invoke("recipes", "validate", tmp_path / "bo" / name).exit_code == 0
    closed = tmp_path / "closed.yaml"
    closed.write_text("task: qa\ngoal: knowledge\nweight_access: closed_api\nprivacy_on_prem: true\n")
    refused = invoke("advise", "--answers", closed, "--bake-off", tmp_path / "none")
    assert refused.exit_code == 2 and "bake-off needs two" in refused.stderr


@pytest.mark.parametrize("model, vram, gpus", [
    ("meta-llama/Llama-3.1-8B-Instruct", 24, 1), ("meta-llama/Llama-3.1-8B-Instruct", 40, 1), ("Qwen/Qwen2.5-14B-Instruct", 48, 1),
    ("Qwen/Qwen2.5-7B-Instruct", 16, 1), ("meta-llama/Llama-3.1-70B-Instruct", 80, 8), ("mistralai/Mixtral-8x7B-Instruct-v0.1", 80, 8),
    ("mistralai/Mixtral-8x7B-Instruct-v0.1", 80, 1), ("Qwen/Qwen3-30B-A3B", 48, 2),
])
def test_emitted_recipes_leave_headroom(model, vram, gpus):
    from adaptkit.estimator.architectures import load_model
    from adaptkit.estimator.memory import estimate_memory
    from adaptkit.methods.registry import recipe_setup
    from adaptkit.recipe.emit import HEADROOM

    profile = build_profile({"task": "chat", "goal": "behavior", "weight_access": "open", "model": model,
                             "gpu_vram_gb": vram, "num_gpus": gpus, "labeled_examples": 3000})
    recipe, notes = recipe_for(advise(profile))
    loaded = validate(recipe, "test")
    single = recipe_setup(loaded)
    arch = load_model(model, online=False)
    sharded = gpus > 1 and estimate_memory(arch, single).peak_gb > HEADROOM * vram
    peak = estimate_memory(arch, recipe_setup(loaded, gpus, "zero3") if sharded else single).peak_gb
    assert peak <= HEADROOM * vram, (peak, notes)
    if sharded:  # on several GPUs a sharded 16-bit base comes before a 4-bit one
        assert recipe["lora"].get("quantization", "none") == "none" and any("ZeRO-3 over" in n for n in notes), notes


def test_several_gpus_shard_a_16_bit_base_before_quantizing():
    answers = {"task": "chat", "goal": "behavior", "weight_access": "open", "model": "mistralai/Mixtral-8x7B-Instruct-v0.1",
               "gpu_vram_gb": 80, "labeled_examples": 3000}
    one, _ = recipe_for(advise(build_profile({**answers, "num_gpus": 1})))
    eight, notes = recipe_for(advise(build_profile({**answers, "num_gpus": 8})))
    assert one["lora"]["quantization"] == "4bit"
    assert eight["lora"].get("quantization", "none") == "none" and eight["training"]["sharding"] == "zero3"
    assert any("--num-processes 8" in n for n in notes) and "sharding" not in one["training"]


def test_what_was_written_is_said_last_under_the_table(invoke, tmp_path):
    answers = tmp_path / "a.yaml"
    answers.write_text(ANSWERS)
    result = invoke("advise", "--answers", answers, "--emit-recipe", tmp_path / "r.yaml", "--bake-off", tmp_path / "bake")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.index("Recommended") < out.index("wrote ") and out.rstrip().splitlines()[-1].startswith("settle it on your data:")


def test_an_emitted_rag_recipe_reads_your_documents_and_leaves_room_for_cited_answers(tmp_path):
    docs = tmp_path / "handbook"
    docs.mkdir()
    (docs / "leave.md").write_text("Employees get 25 days of paid leave a year.\n")
    questions = tmp_path / "questions.jsonl"
    questions.write_text('{"question": "How many days of leave?", "source": "leave.md", "answer": "25 days"}\n')
    answers = {"task": "qa", "goal": "knowledge", "weight_access": "closed_api", "knowledge_changes_often": True,
               "needs_citations": True, "corpus_tokens": 3_000_000, "labeled_examples": 40}
    recipe, notes = recipe_for(advise(build_profile({**answers, "corpus_dir": str(docs), "eval_data": str(questions)})), method="rag")
    assert recipe["rag"]["corpus"] == str(docs) and recipe["data"]["eval"] == str(questions)
    assert recipe["rag"]["index_dir"] == "runs/rag-index-handbook" and recipe["rag"]["retrieval"] == "hybrid"
    assert recipe["backend"]["max_new_tokens"] >= 256 and recipe["backend"]["kind"] == "openai"
    assert not any("demo" in note for note in notes)
    alone, notes = recipe_for(advise(build_profile({**answers, "corpus_dir": str(docs)})), method="rag")
    assert alone["rag"]["corpus"] == str(docs) and any("data.eval" in note and "your documents" in note for note in notes)


def test_a_bake_off_writes_only_recipes_that_read_the_users_data(invoke, tmp_path):
    root = Path(__file__).resolve().parents[1] / "examples" / "data"
    result = invoke("advise", "--set", "task=classification", "--set", "goal=knowledge", "--set", "weight_access=open",
                    "--set", "model_params_b=0.0227", "--set", "num_gpus=0", "--set", "labeled_examples=400",
                    "--set", "knowledge_changes_often=true", "--set", f"train_data={root / 'support_tickets_train.jsonl'}",
                    "--set", f"eval_data={root / 'support_tickets_test.jsonl'}", "--no-input", "--bake-off", tmp_path / "bo")
    assert result.exit_code == 0, result.output
    written = sorted(p.stem for p in (tmp_path / "bo").glob("*.yaml"))
    assert "rag" not in written and len(written) == 3 and "lora_adapters" in written
    assert "skipped rag: data.eval: columns `question`, `source` not found" in result.stdout
    command = next(line for line in result.stdout.splitlines() if line.startswith("settle it"))
    assert "rag.yaml" not in command


def test_a_bake_off_on_one_training_file_holds_rows_out_for_every_method(invoke, tmp_path, monkeypatch):
    source = Path(__file__).resolve().parents[1] / "examples" / "data" / "instructions_train.jsonl"
    monkeypatch.chdir(tmp_path)
    args = ("advise", "--data", source, "--set", "goal=behavior", "--set", "weight_access=open", "--no-input", "--bake-off", "bo")
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    train = (tmp_path / "bo" / "train.jsonl").read_text().splitlines()
    held = (tmp_path / "bo" / "heldout.jsonl").read_text().splitlines()
    assert len(train) + len(held) == len(source.read_text().splitlines()) and len(held) == 32 and not set(train) & set(held)
    assert f"--eval-data {tmp_path / 'bo' / 'heldout.jsonl'}" in result.stdout and "32 of the 320 rows" in result.stdout
    from adaptkit.runners.data import overlap

    prompts = lambda lines: [json.loads(line)["prompt"] for line in lines]  # noqa: E731
    assert overlap(prompts(train), prompts(held))["rows"] == 0  # near copies stay on one side: the runs' leak check passes
    for recipe in (tmp_path / "bo").glob("*.yaml"):
        data = yaml.safe_load(recipe.read_text())["data"]
        assert data["eval"] == str(tmp_path / "bo" / "heldout.jsonl") and data.get("train") in (None, str(tmp_path / "bo" / "train.jsonl"))
        assert invoke("run", recipe, "--dry-run").exit_code == 0  # the recipe finds its files from any folder
    again = invoke(*args)
    assert again.exit_code == 2 and "already exists" in again.stderr
