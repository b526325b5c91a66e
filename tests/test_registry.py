"""One definition per method: the registry, the layers that read it, and one memory figure for one recipe everywhere."""

import ast
import json
import re
import sys
from pathlib import Path

import pytest
import yaml

from adaptkit.methods.catalogue import METHOD_IDS
from adaptkit.methods.registry import get, register, registry

ROOT = Path(__file__).parent.parent
PACKAGE = ROOT / "adaptkit"
TRAINING_BUILTINS = ["lora_cls", "full_cls", "prompt_tuning_cls", "prefix_tuning_cls", "ia3_cls", "instruction_tuning", "lora_sft",
                     "qlora_sft", "dpo", "rlhf"]
ANSWERS = sorted((ROOT / "examples" / "answers").glob("*.yaml"))


def test_every_catalogue_method_has_one_definition():
    assert list(registry()) == list(METHOD_IDS)
    for method, definition in registry().items():
        assert definition.id == method and definition.recipe.model_fields["method"].annotation.__args__ == (method,)
        assert definition.tasks and definition.metrics and definition.runner and definition.data and definition.summary
    with pytest.raises(ValueError, match="registered twice"):
        register(get("rag"))


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path, ast.parse(path.read_text(encoding="utf-8"))


def test_method_ids_are_compared_only_in_the_method_definitions():
    literals = []
    for path, tree in _modules():
        if "methods" in path.relative_to(PACKAGE).parts[:1]:
            continue
        literals += [f"{path.relative_to(ROOT)}:{node.lineno} {node.value}" for node in ast.walk(tree)
                     if isinstance(node, ast.Constant) and node.value in METHOD_IDS]
    assert len(literals) <= 3, literals  # the brief allows a handful; there are none


LAYERS = ["cli", "runners", "recipe", "advisor", "methods", "estimator"]  # each imports only what is to its right (or base modules)


def _definition_side() -> set[str]:
    """The modules of the method families' folders that their recipe.py needs (itself included); the rest of a
    family's folder (data check, dry-run part, runner) is on the runners' side of the layers."""
    imports = {}
    for path, tree in _modules():
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        imports[module] = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    side, todo = set(), [m for m in imports if m.startswith("adaptkit.methods.") and m.endswith(".recipe")]
    while todo:
        module = todo.pop()
        if module not in side:
            side.add(module)
            todo += [m for m in imports.get(module, ()) if m.startswith("adaptkit.methods.") and m.count(".") == 3]
    return side


def _layer(module: str, definitions: set[str]) -> int | None:
    parts = module.split(".")
    if parts[:2] == ["adaptkit", "methods"] and len(parts) == 4 and module not in definitions:
        return LAYERS.index("runners")  # a family's run side
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[0] == "adaptkit" and parts[1] in LAYERS else None


def _package(module: str) -> list[str]:
    parts = module.split(".")
    return parts[:3] if parts[:2] == ["adaptkit", "methods"] and len(parts) == 4 else parts[:2]


def test_layers_point_one_way_and_nothing_private_crosses():
    wrong, definitions = [], _definition_side()
    for path, tree in _modules():
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        own = _layer(module, definitions)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("adaptkit"):
                target = _layer(node.module, definitions)
                if own is not None and target is not None and target < own:
                    wrong.append(f"{module} imports {node.module}")
                if _package(node.module) != _package(module) and any(a.name.startswith("_") and not a.name.startswith("__") for a in node.names):
                    wrong.append(f"{module} imports a private name from {node.module}")
    assert wrong == []


def test_a_recipe_copy_validates_from_a_sibling_folder(invoke, tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path)
    assert invoke("recipes", "copy", "lora_cls", "a/mine.yaml").exit_code == 0
    monkeypatch.chdir(tmp_path / "b")
    result = invoke("recipes", "validate", "../a/mine.yaml")
    assert result.exit_code == 0 and "320 train / 80 eval rows" in result.stdout, result.output


def test_relative_paths_in_a_recipe_resolve_against_its_folder(invoke, tmp_path, monkeypatch):
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "data" / "t.jsonl").write_text((ROOT / "examples/data/support_tickets_train.jsonl").read_text())
    recipe = yaml.safe_load((ROOT / "recipes" / "lora_cls.yaml").read_text())
    recipe["data"] = {"train": "data/t.jsonl", "eval_fraction": 0.2}
    (project / "r.yaml").write_text(yaml.safe_dump(recipe))
    monkeypatch.chdir(tmp_path)
    assert invoke("recipes", "validate", "project/r.yaml").exit_code == 0
    (tmp_path / "mine.jsonl").write_text((ROOT / "examples/data/support_tickets_test.jsonl").read_text())
    result = invoke("recipes", "validate", "project/r.yaml", "data.train=mine.jsonl")  # an override is the shell's: the working folder
    assert result.exit_code == 0 and "64 train / 16 eval rows" in result.stdout, result.output


def _estimate(invoke, ref, gpu="A100-80GB"):
    result = invoke("estimate", "--recipe", ref, "--gpu", gpu, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["peak_memory_gb"]


def _dry_run(invoke, ref, gpu="A100-80GB"):
    result = invoke("run", ref, "--dry-run", "--gpu", gpu, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["memory"].get("peak_memory_gb")


def _export_header(invoke, ref, tmp_path):
    folder = tmp_path / "accelerate"
    assert invoke("export", ref, "--format", "accelerate", "--gpus", "1", "-o", folder).exit_code == 0
    return float(re.search(r"estimated peak per GPU: ~([\d.]+) GB", (folder / "single_gpu.yaml").read_text()).group(1))


@pytest.mark.parametrize("recipe", TRAINING_BUILTINS)
def test_one_recipe_one_memory_figure(invoke, tmp_path, recipe):
    figures = [_estimate(invoke, recipe), _dry_run(invoke, recipe), _export_header(invoke, recipe, tmp_path)]
    assert max(figures) - min(figures) <= 0.1, figures


@pytest.mark.parametrize("answers", ANSWERS, ids=lambda p: p.stem)
def test_emitted_recipes_carry_the_same_figure(invoke, tmp_path, answers):
    path = tmp_path / "emitted.yaml"
    assert invoke("advise", "--answers", answers, "--emit-recipe", path).exit_code == 0
    data = yaml.safe_load(path.read_text())
    figures = [_estimate(invoke, path)]
    dry = _dry_run(invoke, path)
    if dry is not None:  # an endpoint serves closed models: no memory of ours
        figures.append(dry)
    if get(data["method"]).trains:
        comment = re.search(r"memory: ~([\d.]+) GB on one GPU", path.read_text())
        assert comment, path.read_text()
        figures += [float(comment.group(1)), _export_header(invoke, path, tmp_path)]
    assert max(figures) - min(figures) <= 0.1, (answers.name, figures)


def test_a_finished_run_names_no_path_inside_the_environment(invoke, tmp_path):
    out = tmp_path / "run"
    result = invoke("run", "lora_cls", f"output_dir={out}", "training.max_steps=1", "data.max_rows=16", "--json")
    assert result.exit_code == 0, result.output
    from adaptkit.models import embedded_minilm

    inside = [sys.prefix, str(embedded_minilm())]
    for file in out.rglob("*"):
        if file.is_file() and file.suffix in (".json", ".yaml", ".md", ".jsonl", ".txt"):
            text = file.read_text(errors="replace")
            assert not any(place in text for place in inside), file
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == "sentence-transformers/all-MiniLM-L6-v2"
