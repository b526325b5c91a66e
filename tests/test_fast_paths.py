"""`--help` and `advise --json` must never import the training stack."""

import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("torch", "transformers", "peft", "datasets", "trl", "accelerate", "sentence_transformers")
EXAMPLE = Path(__file__).parent.parent / "examples" / "answers" / "support_tickets.yaml"


@pytest.fixture
def poisoned_path(tmp_path):
    """A folder of packages named like the training stack that fail loudly when imported."""
    for name in HEAVY:
        package = tmp_path / name
        package.mkdir()
        (package / "__init__.py").write_text(f"raise ImportError('adaptkit imported {name} on a fast path')\n")
    return tmp_path


@pytest.mark.parametrize("args", [
    ["--help"],
    ["advise", "--help"],
    ["advise", "--answers", str(EXAMPLE), "--json"],
    ["advise", "--answers", str(EXAMPLE), "--explain"],
    ["methods"],
    ["estimate", "--params", "7B", "--json"],
    ["estimate", "--model", "meta-llama/Llama-3.1-8B", "--method", "lora_adapters", "--gpu", "4090", "--json"],
    ["hardware", "--json"],
    ["recipes", "list"],
    ["recipes", "show", "lora_cls"],
    ["recipes", "validate", "lora_cls"],
    ["estimate", "--recipe", "qlora_sft", "--gpu", "4090", "--json"],
    ["run", "--help"],
    ["ledger", "list"],
])
def test_fast_paths_import_no_training_stack(poisoned_path, args):
    code = (
        "import sys; sys.argv = ['adaptkit'] + sys.argv[1:]\n"
        "from adaptkit.cli import main\n"
        "try:\n    main()\n"
        "finally:\n"
        f"    heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "    assert not heavy, heavy\n"
    )
    env = {"PYTHONPATH": str(poisoned_path), "PATH": "/usr/bin:/bin", "ADAPTKIT_FAKE_GPUS": "0",
           "ADAPTKIT_LEDGER": str(poisoned_path / "ledger.sqlite")}  # never the real home
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert "imported" not in result.stderr
