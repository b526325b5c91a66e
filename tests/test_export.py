"""adaptkit export: a standalone script that reproduces adaptkit run without importing adaptkit."""

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("peft")

QUICK = ["training.max_steps=4", "data.max_rows=48"]


@pytest.mark.parametrize("recipe", ["lora_cls", "ia3_cls", "full_cls"])
def test_exported_script_matches_adaptkit_run(invoke, tmp_path, recipe):
    script = tmp_path / "train.py"
    exported = invoke("export", recipe, *QUICK, f"output_dir={tmp_path / 'script_out'}", "-o", script)
    assert exported.exit_code == 0, exported.output
    text = script.read_text()
    assert "import adaptkit" not in text and "from adaptkit" not in text
    poison = tmp_path / "poison" / "adaptkit"
    poison.mkdir(parents=True)
    (poison / "__init__.py").write_text("raise ImportError('the exported script imported adaptkit')\n")
    env = {**os.environ, "PYTHONPATH": str(poison.parent), "HF_HUB_OFFLINE": "1"}
    ran = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert ran.returncode == 0, ran.stderr[-2000:]
    from_script = json.loads((tmp_path / "script_out" / "metrics.json").read_text())
    result = invoke("run", recipe, *QUICK, f"output_dir={tmp_path / 'run_out'}", "--json")
    from_run = json.loads(result.stdout)
    assert from_script["eval"] == pytest.approx(from_run["eval"], rel=1e-6)
    assert from_script["train"]["final_loss"] == pytest.approx(from_run["train"]["final_loss"], rel=1e-6)
    assert from_script["train"]["trainable_params"] == from_run["train"]["trainable_params"]


def test_export_refuses_what_it_cannot_write_yet(invoke, tmp_path):
    result = invoke("export", "lora_sft")
    assert result.exit_code == 2 and "not exported yet" in result.stderr
    target = tmp_path / "t.py"
    target.write_text("keep")
    again = invoke("export", "lora_cls", "-o", target)
    assert again.exit_code == 2 and "already exists" in again.stderr and target.read_text() == "keep"
