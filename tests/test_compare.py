"""adaptkit compare: one table over recipes and finished runs, failures reported, the cheapest good one recommended."""

import json

import pytest
import yaml

pytest.importorskip("peft")


def test_compare_runs_reads_and_recommends(invoke, tmp_path):
    runs = {}
    for name, steps in (("weak", 1), ("strong", 40)):
        out = tmp_path / name
        result = invoke("run", "lora_cls", f"output_dir={out}", f"training.max_steps={steps}", "data.max_rows=96", "--json")
        assert result.exit_code == 0, result.output
        runs[name] = out
    quick = tmp_path / "quick.yaml"
    recipe = yaml.safe_load(invoke("recipes", "show", "lora_cls").stdout)
    recipe["training"].update(max_steps=2)
    recipe["data"]["max_rows"] = 96  # the same eval rows as the two runs: compare refuses to rank unlike rows
    from adaptkit.recipe.load import project_root

    recipe["data"]["train"] = str(project_root() / recipe["data"]["train"])
    recipe["data"]["eval"] = str(project_root() / recipe["data"]["eval"])
    quick.write_text(yaml.safe_dump(recipe))
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump({**recipe, "data": {"train": str(tmp_path / "missing.jsonl")}}))
    result = invoke("compare", runs["weak"], runs["strong"], quick, broken, "--output-dir", tmp_path / "cmp", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    rows = {row["recipe"]: row for row in report["rows"]}
    assert "no such file" in rows[str(broken)]["error"]
    assert rows[str(runs["strong"])]["value"] > rows[str(runs["weak"])]["value"]
    assert rows[str(quick)]["method"] == "lora_adapters" and rows[str(quick)]["tokens_per_request"] > 0
    assert str(runs["strong"]) in report["recommendation"] or str(quick) in report["recommendation"]
    assert (tmp_path / "cmp" / "compare.png").is_file()
    target = json.loads(invoke("compare", runs["weak"], runs["strong"], "--target", "accuracy=0.99", "--output-dir", tmp_path / "c2",
                               "--json").stdout)
    assert target["recommendation"].startswith("none reaches accuracy 0.99") or "reaches accuracy 0.99" in target["recommendation"]


def test_compare_bad_target(invoke):
    result = invoke("compare", "lora_cls", "--target", "accuracy")
    assert result.exit_code == 2 and "METRIC=VALUE" in result.stderr


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    from click.testing import CliRunner

    from adaptkit.cli import cli

    root = tmp_path_factory.mktemp("cmp")
    runs = {}
    for name, steps, rows in (("small", 2, 48), ("other", 2, 96)):
        out = root / name
        result = CliRunner().invoke(cli, ["run", "lora_cls", f"output_dir={out}", f"training.max_steps={steps}", f"data.max_rows={rows}"])
        assert result.exit_code == 0, result.output
        runs[name] = out
    return runs


def test_runs_scored_on_different_data_are_refused(invoke, two_runs, tmp_path):
    result = invoke("compare", two_runs["small"], two_runs["other"], "--output-dir", tmp_path / "c")
    assert result.exit_code == 2 and "scored on different data" in result.stderr and "--eval-data" in result.stderr
    assert "first 48 rows" in result.stderr and "first 96 rows" in result.stderr
    assert not (tmp_path / "c").exists()


def test_eval_data_rescores_finished_runs_on_one_file(invoke, two_runs, tmp_path):
    from pathlib import Path

    source = Path(__file__).resolve().parents[1] / "examples" / "data" / "support_tickets_test.jsonl"
    mine = tmp_path / "mine.jsonl"
    mine.write_text("".join(source.read_text().splitlines(keepends=True)[:30]))
    result = invoke("compare", two_runs["small"], two_runs["other"], "--eval-data", mine, "--output-dir", tmp_path / "c", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["rows"]
    predicted = json.loads(invoke("predict", two_runs["small"], mine, "-o", tmp_path / "p.jsonl", "--json").stdout)
    assert rows[0]["value"] == pytest.approx(predicted["scores"]["accuracy"])  # scored again on mine.jsonl, not its own rows
    assert all(r["metric"] == "accuracy" for r in rows)


def test_cost_per_request_and_the_break_even(tmp_path):
    from adaptkit.methods.bakeoff import break_even, metric_names, row

    texts = tmp_path / "eval.jsonl"
    texts.write_text("".join(json.dumps({"text": "x" * 100, "label": "a"}) + "\n" for _ in range(4)))  # ~25 tokens each
    few_shot = row("icl", {"method": "in_context_learning", "task": "sequence_classification",
                           "eval": {"accuracy": 0.8, "prompt_tokens": 500}}, {"backend": {"max_new_tokens": 8}}, 0.5)
    assert few_shot["usd_per_1k_requests"] == pytest.approx(1000 * (500 * 0.5 + 8 * 2.0) / 1e6)  # output at 4x the input price
    assert few_shot["training_usd"] == 0.0
    adapter = row("lora", {"method": "lora_adapters", "task": "sequence_classification", "eval": {"accuracy": 0.9},
                           "train": {"runtime_s": 3600, "trainable_params": 1000}}, {"data": {"eval": str(texts)}}, 0.5)
    assert adapter["usd_per_1k_requests"] == pytest.approx(1000 * 25 * 0.5 / 1e6) and adapter["output_tokens"] == 0
    assert adapter["training_usd"] == 1.0  # an hour at $1
    line = break_even([few_shot, adapter], horizon_days=30)
    saving = (few_shot["usd_per_1k_requests"] - adapter["usd_per_1k_requests"]) / 1000
    assert f"~{1.0 / (30 * saving):,.0f} requests a day" in line and line.startswith("lora costs less than icl")
    assert break_even([adapter]) is None
    assert "rougeL" in metric_names()  # a scored causal run ranks by its scorer's primary metric
