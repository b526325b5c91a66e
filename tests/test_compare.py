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
    recipe["data"]["max_rows"] = 32
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
