"""The design's own commands, verbatim: every built-in recipe validates given as a path (from the repository root and
from another folder) and by name, a copied recipe validates from its new folder, and `adaptkit run
recipes/lora_cls.yaml` trains from the root."""

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RECIPES = sorted(path.name for path in (ROOT / "recipes").glob("*.yaml"))


@pytest.mark.unit
@pytest.mark.parametrize("name", RECIPES)
def test_every_recipe_validates_as_a_path_from_anywhere_and_by_name(name, invoke, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    from_root = invoke("recipes", "validate", f"recipes/{name}")
    assert from_root.exit_code == 0 and ": valid (" in from_root.stdout, from_root.output
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    relative = os.path.relpath(ROOT / "recipes" / name, elsewhere)
    for given in (relative, str(ROOT / "recipes" / name), Path(name).stem):
        result = invoke("recipes", "validate", given)
        assert result.exit_code == 0 and ": valid (" in result.stdout, (given, result.output)
    dry = invoke("run", relative, "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output


@pytest.mark.unit
@pytest.mark.parametrize("name", RECIPES)
def test_a_copied_recipe_still_validates_from_its_new_folder(name, invoke, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine" / "deep").mkdir(parents=True)
    assert invoke("recipes", "copy", Path(name).stem, "mine/deep/r.yaml").exit_code == 0
    (tmp_path / "other").mkdir()
    monkeypatch.chdir(tmp_path / "other")
    result = invoke("recipes", "validate", "../mine/deep/r.yaml")
    assert result.exit_code == 0, result.output


def test_adaptkit_run_recipes_lora_cls_yaml_from_the_root(invoke, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    out = tmp_path / "run"
    result = invoke("run", "recipes/lora_cls.yaml", "training.max_steps=2", "data.max_rows=64", f"output_dir={out}", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["eval"]["accuracy"] is not None
    assert Path(json.loads(result.stdout)["eval_data"]["source"]) == ROOT / "examples" / "data" / "support_tickets_test.jsonl"
