"""adaptkit as a library: the lazy exports, typed results, adaptkit's own errors, nothing printed by adaptkit."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

import adaptkit
from adaptkit.errors import InputError

ROOT = Path(__file__).resolve().parent.parent
ANSWERS = {"task": "classification", "goal": "behavior", "weight_access": "open", "labeled_examples": "2k",
           "model": "sentence-transformers/all-MiniLM-L6-v2", "gpu_vram_gb": 0, "num_gpus": 0}


@pytest.mark.unit
def test_import_adaptkit_stays_light_and_exports_the_api():
    code = ("import sys, adaptkit; names = sorted(adaptkit.__all__); "
            "print(json.dumps({'torch': 'torch' in sys.modules, 'click': 'click' in sys.modules, 'names': names}))")
    done = subprocess.run([sys.executable, "-c", "import json; " + code], capture_output=True, text=True, check=True)
    seen = json.loads(done.stdout)
    assert seen["torch"] is False and seen["click"] is False
    assert {"advise", "estimate", "run", "compare", "predict", "load_recipe", "Profile", "RunResult", "WrittenRecipe",
            "ledger"} <= set(seen["names"])
    with pytest.raises(AttributeError):
        adaptkit.no_such_thing  # noqa: B018


@pytest.mark.unit
def test_advise_returns_the_ranked_advice_without_asking():
    advice = adaptkit.advise(ANSWERS)
    assert advice.recommendations and advice.recommendations[0].method in {"lora_adapters", "in_context_learning",
                                                                             "prompt_engineering", "full_finetuning"}
    assert advice.recommendations[0].rationale and advice.recommendations[0].sources
    assert isinstance(advice.profile, adaptkit.Profile)
    with pytest.raises(InputError, match="missing"):
        adaptkit.advise({"task": "classification"})
    with pytest.raises(InputError, match="did you mean"):
        adaptkit.advise({**ANSWERS, "labled_examples": 10})


@pytest.mark.unit
def test_estimate_and_load_recipe(tmp_path):
    result = adaptkit.estimate(model="meta-llama/Llama-3.1-8B", method="lora_adapters", gpu="4090", batch_size=1, seq_len=1024)
    assert result["peak_memory_gb"] > 16 and result["fits"] in (True, False)
    by_recipe = adaptkit.estimate("qlora_sft", ["training.max_length=2048"], gpu="4090")
    assert by_recipe["setup"]["quantization"] == "4bit" and by_recipe["recipe_overrides"] == ["training.max_length=2048"]
    recipe = adaptkit.load_recipe(ROOT / "recipes" / "lora_cls.yaml", ["training.epochs=1"])
    assert recipe.training.epochs == 1 and Path(recipe.data.train).is_file()
    with pytest.raises(InputError, match="unknown key"):
        adaptkit.load_recipe("lora_cls", ["training.epoch=1"])


def test_run_then_predict_from_python(tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    result = adaptkit.run("lora_cls", ["training.max_steps=2", "data.max_rows=64", "output_dir=runs/api-check"])
    assert isinstance(result, adaptkit.RunResult)
    assert result.folder == Path("runs/api-check") and (result.folder / "metrics.json").is_file()
    assert result.eval["accuracy"] is not None and result.metrics["method"] == "lora_adapters"
    assert json.loads((result.folder / "metrics.json").read_text())["eval"]["accuracy"] == result.eval["accuracy"]
    printed = capfd.readouterr()
    assert printed.out == "" and "loss" not in printed.err and "it/s" not in printed.err  # a library call prints no log
    predictions = adaptkit.predict(result.folder, [{"text": "I was charged twice"}, {"text": "the app crashes on start"}])
    assert len(predictions.rows) == 2 and all("prediction" in row for row in predictions.rows)
    with pytest.raises(InputError, match="not empty|already"):  # never replaces a folder silently
        adaptkit.run("lora_cls", ["training.max_steps=1", "output_dir=runs/api-check"])


def test_the_notebook_example_runs(tmp_path, monkeypatch):
    """examples/notebook/advise_run_predict.ipynb, its code cells run in order (fewer steps)."""
    notebook = json.loads((ROOT / "examples" / "notebook" / "advise_run_predict.ipynb").read_text())
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            source = "".join(cell["source"]).replace("STEPS = 30", "STEPS = 2")
            exec(compile(source, "notebook", "exec"), namespace)
    assert namespace["result"].eval["accuracy"] is not None
    assert len(namespace["predictions"].rows) == 2
