"""A home per method family, literally: one folder holding its recipe variant (recipe.py), data check (data.py),
dry-run part (dryrun.py) and runner (runner.py); only the runner imports the training stack, checked file by file."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from adaptkit.methods.registry import FAMILIES, registry

pytestmark = pytest.mark.unit

METHODS = Path(__file__).resolve().parent.parent / "adaptkit" / "methods"
PARTS = ("recipe.py", "data.py", "dryrun.py", "runner.py")
HEAVY = ("torch", "transformers", "peft", "trl", "accelerate", "sentence_transformers", "bitsandbytes", "diffusers")


def _families() -> list[Path]:
    return sorted(p for p in METHODS.iterdir() if (p / "recipe.py").is_file())


def test_every_family_is_one_folder_with_its_four_parts():
    assert [p.name for p in _families()] == sorted(FAMILIES)
    for folder in _families():
        assert [part for part in PARTS if not (folder / part).is_file()] == [], folder.name


def test_every_method_names_its_own_folder():
    """A definition's runner, data check and dry-run part live in the folder of its recipe variant."""
    for method, definition in registry().items():
        home = definition.recipe.__module__.rpartition(".")[0]
        assert definition.recipe.__module__ == f"{home}.recipe", method
        refs = {"runner": definition.runner, "data": definition.data, "dryrun": definition.summary}
        for part, ref in refs.items():
            module = ref.partition(":")[0]
            assert module.startswith(home + "."), f"{method}: {part} {ref} is outside {home}"
        assert refs["runner"].partition(":")[0] == f"{home}.runner", method
        assert refs["data"].partition(":")[0] == f"{home}.data", method
        assert refs["dryrun"].partition(":")[0] == f"{home}.dryrun", method


def _heavy_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else []
        found += [f"{path.name}:{node.lineno} {n}" for n in names if n.split(".")[0] in HEAVY]
    return found


def test_only_the_runner_names_the_training_stack():
    """Every import statement of every file, at module level or inside a function."""
    found = [hit for folder in _families() for path in sorted(folder.glob("*.py")) if path.name != "runner.py"
             for hit in _heavy_imports(path)]
    assert found == []
    assert any(_heavy_imports(folder / "runner.py") for folder in _families())  # the check can fail


def test_importing_a_family_file_loads_no_training_stack():
    """Each non-runner file imported in turn in a fresh interpreter: the first to load torch & co. is named."""
    modules = [f"adaptkit.methods.{folder.name}.{path.stem}" for folder in _families() for path in sorted(folder.glob("*.py"))
               if path.name != "runner.py"]
    code = ("import importlib, json, sys\n"
            f"heavy = {HEAVY!r}\n"
            "for module in json.loads(sys.argv[1]):\n"
            "    importlib.import_module(module)\n"
            "    loaded = sorted(m for m in heavy if m in sys.modules)\n"
            "    if loaded:\n"
            "        print(module, loaded); sys.exit(1)\n")
    done = subprocess.run([sys.executable, "-c", code, json.dumps(modules)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
