"""Your own data, end to end: a 60-row `review,sentiment` CSV goes advise -> an emitted recipe in nested folders ->
a run from another folder -> predict -> merge, without renaming a column; the run says what it learned."""

import csv
import json
import random

import pytest


POSITIVE = ["Loved it, works perfectly", "Great value and fast delivery", "Excellent quality, would buy again",
            "Five stars, very happy with it", "Does exactly what it says, great"]
NEGATIVE = ["Broke after two days", "Terrible, I asked for a refund", "Poor quality and it arrived late",
            "A waste of money, do not buy", "Stopped working, very disappointed"]
NEUTRAL = ["It is okay, nothing special", "An average product that does the job", "Fine for the price",
           "Neither good nor bad", "Decent but it could be better"]


def reviews(path, rows: int = 60) -> None:
    draw = random.Random(7)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["review", "sentiment"])
        writer.writeheader()
        for number in range(rows):
            label, phrases = [("positive", POSITIVE), ("negative", NEGATIVE), ("neutral", NEUTRAL)][number % 3]
            writer.writerow({"review": f"{draw.choice(phrases)} {draw.choice(['overall.', 'really.', '', '(order %d)' % number])}",
                             "sentiment": label})


def test_a_review_csv_goes_from_advice_to_a_merged_model(invoke, tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    reviews(tmp_path / "data" / "reviews.csv")
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    advised = invoke("advise", "--data", "../data/reviews.csv", "--set", "goal=behavior", "--set", "weight_access=open",
                     "--set", "model=sentence-transformers/all-MiniLM-L6-v2", "--set", "gpu_vram_gb=0", "--no-input",
                     "--emit-recipe", "../out/deep/reviews.yaml", "--method", "lora_adapters")
    assert advised.exit_code == 0, advised.output
    recipe = (tmp_path / "out" / "deep" / "reviews.yaml").read_text()
    assert "text_column: review" in recipe and "label_column: sentiment" in recipe  # the file's own column names
    assert "train: ../../data/reviews.csv" in recipe  # relative to the recipe's folder
    assert "adaptkit run ../out/deep/reviews.yaml" in advised.stdout

    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    ran = invoke("run", "../out/deep/reviews.yaml")  # the recipe as written, from a third folder
    assert ran.exit_code == 0, ran.output
    metrics = json.loads((tmp_path / "elsewhere" / "runs" / "lora_adapters" / "metrics.json").read_text())
    assert metrics["train"]["steps"] >= 60  # sized to learn, not 12 steps
    losses = [row["loss"] for row in map(json.loads, open("runs/lora_adapters/train_log.jsonl")) if "loss" in row]
    assert losses[-1] < losses[0]
    evaluation = metrics["eval"]
    assert evaluation["accuracy"] > evaluation["base"]["accuracy"] and evaluation["interval"]["rows"] == 18
    assert any("only 18 eval rows" in line for line in metrics["warnings"])  # says how much the score can be trusted
    assert "next:" in ran.stdout and "adaptkit predict runs/lora_adapters" in ran.stdout

    predicted = invoke("predict", "runs/lora_adapters", "../data/reviews.csv", "-o", "out/predictions.jsonl")
    assert predicted.exit_code == 0, predicted.output
    rows = [json.loads(line) for line in open("out/predictions.jsonl")]
    assert len(rows) == 60 and {row["prediction"] for row in rows} <= {"positive", "negative", "neutral"}
    merged = invoke("merge", "runs/lora_adapters", "-o", "models/reviews/merged")  # nested folders are made
    assert merged.exit_code == 0, merged.output
    assert (tmp_path / "elsewhere" / "models" / "reviews" / "merged" / "config.json").is_file()
    from adaptkit.runners.serve import Served  # what `adaptkit serve` answers on /classify (tests/test_serve.py: over HTTP)

    served, _ = Served(["runs/lora_adapters"]).classify("lora_adapters", ["Loved it, works perfectly"])
    assert served[0]["prediction"] in {"positive", "negative", "neutral"}


def test_a_recipe_with_too_few_rows_to_learn_from_says_so(invoke, tmp_path):
    rows = [{"text": f"ticket {n}", "label": "a" if n % 2 else "b"} for n in range(40)]  # nothing to learn: labels are noise
    data = tmp_path / "noise.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = invoke("run", "lora_cls", f"data.train={data}", "data.eval=", "data.eval_fraction=0.2", "training.max_steps=6",
                    "training.learning_rate=1e-7", "training.logging_steps=1", f"output_dir={tmp_path / 'run'}", "--json")
    assert result.exit_code == 0, result.output
    warnings = json.loads(result.stdout)["warnings"]
    assert any("did not fall" in w for w in warnings) and any("eval rows" in w for w in warnings)


def test_an_offline_hub_id_fails_in_one_line_within_a_second(invoke, tmp_path):
    import time

    started = time.perf_counter()
    result = invoke("run", "lora_sft", f"output_dir={tmp_path / 'run'}")  # Qwen/Qwen2.5-0.5B-Instruct: not on this machine
    assert time.perf_counter() - started < 1.0
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "Qwen/Qwen2.5-0.5B-Instruct is not on this machine" in result.stderr and "model=PATH" in result.stderr
    assert not (tmp_path / "run").exists()


def test_a_built_in_with_only_its_training_file_replaced_names_the_rest(invoke, tmp_path):
    mine = tmp_path / "mine.csv"
    mine.write_text("text,label\nthe app crashes,bug\nplease refund me,billing\nlogin fails,bug\ncharged twice,billing\n")
    result = invoke("run", "lora_cls", f"data.train={mine}", f"output_dir={tmp_path / 'run'}")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "labels not in the training data" in result.stderr
    assert "data.eval is still the built-in recipe's" in result.stderr and "data.eval_fraction=0.1" in result.stderr


@pytest.mark.unit
def test_a_tsv_file_reads_like_a_csv(tmp_path):
    from adaptkit.runners.data import read_rows

    (tmp_path / "reviews.tsv").write_text("review\tsentiment\ngreat, really great\tpositive\nbroke, sadly\tnegative\n")
    assert read_rows(str(tmp_path / "reviews.tsv"), "train", "data.train") == [
        {"review": "great, really great", "sentiment": "positive"}, {"review": "broke, sadly", "sentiment": "negative"}]


@pytest.mark.unit
def test_data_on_the_command_line_beats_the_answers_file(invoke, tmp_path):
    answers = tmp_path / "answers.yaml"
    answers.write_text("task: generation\ngoal: behavior\nweight_access: open\nlabeled_examples: 5000\ngpu_vram_gb: 0\n")
    reviews(tmp_path / "reviews.csv")
    result = invoke("advise", "--answers", answers, "--data", tmp_path / "reviews.csv", "--set", "goal=knowledge", "--no-input", "--json")
    assert result.exit_code == 0, result.output
    profile = json.loads(result.stdout)["profile"]
    assert profile["task"] == "classification" and profile["labeled_examples"] == 60  # the file's facts beat the answers file
    assert profile["goal"] == "knowledge" and profile["text_column"] == "review"  # --set beats both
    assert any("(the answers said 5000)" in note for note in json.loads(result.stdout)["notes"])


@pytest.mark.unit
def test_compare_never_replaces_an_earlier_comparison_silently(invoke, tmp_path):
    (tmp_path / "cmp").mkdir()
    (tmp_path / "cmp" / "compare.json").write_text("{}")
    result = invoke("compare", "lora_cls", "--output-dir", tmp_path / "cmp")
    assert result.exit_code == 2 and "holds an earlier comparison" in result.stderr and "--overwrite" in result.stderr
    assert (tmp_path / "cmp" / "compare.json").read_text() == "{}"


@pytest.mark.unit
def test_a_tiny_cost_is_not_printed_as_zero_dollars():
    import adaptkit

    advice = adaptkit.advise({"task": "classification", "goal": "behavior", "weight_access": "open", "labeled_examples": 200,
                              "model": "sentence-transformers/all-MiniLM-L6-v2", "gpu_vram_gb": 24, "num_gpus": 1,
                              "inference_volume": "high"}, detect_gpus=False)
    text = " ".join(line for rec in advice.recommendations for line in rec.rationale)
    assert "a LoRA run on your 200 examples costs under $0.01 once" in text and "$0.00" not in text


@pytest.mark.unit
def test_the_wizard_does_not_ask_the_size_of_a_model_it_knows():
    from adaptkit.cli.wizard import _size_unknown

    assert not _size_unknown({"weight_access": "open", "model": "sentence-transformers/all-MiniLM-L6-v2"})  # its config
    assert not _size_unknown({"weight_access": "open", "model": "Qwen/Qwen2.5-0.5B-Instruct"})  # its name
    assert _size_unknown({"weight_access": "open", "model": "acme/house-model"})

@pytest.mark.unit
def test_a_small_eval_set_is_said_in_steps_only_for_a_share_of_rows():
    """'denoising_loss moves in steps of 0.08' was said of a loss on 12 rows: a loss has no steps; accuracy does."""
    from adaptkit.runners.report import learning_warnings

    def said(name, value):
        return learning_warnings({"eval": {"primary_metric": name, name: value}, "eval_data": {"rows": 12}}, [])[0]

    assert "accuracy moves in steps of 0.08" in said("accuracy", 0.75)
    assert "steps of" not in said("denoising_loss", 0.1234) and "on so few rows" in said("denoising_loss", 0.1234)
