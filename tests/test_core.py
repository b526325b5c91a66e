"""The one training core: every trained method loads its model through one loader, which builds the quantization
config a recipe asks for (checked with the loader's call captured: CI has no GPU)."""

import re
from pathlib import Path

import pytest

from adaptkit.methods.base import RunOptions
from adaptkit.methods.registry import import_ref
from adaptkit.recipe.load import load_recipe
from adaptkit.runners.data import load_data

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent


class Loaded(Exception):
    """Raised by the captured from_pretrained: the run stops where the weights would load."""


CASES = [  # (name, recipe, overrides, --stage, which load is checked)
    ("lora_sft", "lora_sft", [], "all", "causal"),
    ("instruction_tuning", "instruction_tuning", ["method=lora_adapters", "lora.r=8", "lora.alpha=16"], "all", "causal"),
    ("qlora_sft", "qlora_sft", [], "all", "causal"),
    ("dpo", "dpo", [], "all", "causal"),
    ("kto", "kto", [], "all", "causal"),
    ("orpo", "orpo", ["lora.r=8", "lora.alpha=16"], "all", "causal"),
    ("simpo", "simpo", ["lora.r=8", "lora.alpha=16"], "all", "causal"),
    ("cpo", "simpo", ["preference.algorithm=cpo", "preference.simpo_gamma=0.5", "lora.r=8", "lora.alpha=16"], "all", "causal"),
    ("rlhf reward", "rlhf", [], "reward", "classifier"),
    ("rlhf policy", "rlhf", [], "policy", "causal"),
    ("rlvr policy", "rlvr_math", [], "all", "causal"),
]


@pytest.mark.parametrize("name, ref, overrides, stage, kind", CASES, ids=[c[0] for c in CASES])
def test_every_trained_method_loads_a_4bit_base_when_asked(name, ref, overrides, stage, kind, tiny_causal_lm, tmp_path, monkeypatch):
    pytest.importorskip("transformers")
    import transformers

    import adaptkit.runners.core as core
    import adaptkit.methods.preference.runner as preference

    monkeypatch.chdir(tmp_path)
    calls = []

    def capture(model_class):
        def from_pretrained(path, *args, **kwargs):
            calls.append((model_class, kwargs))
            raise Loaded()
        return from_pretrained

    for model_class in ("AutoModelForCausalLM", "AutoModelForSequenceClassification"):
        monkeypatch.setattr(getattr(transformers, model_class), "from_pretrained", capture(model_class))
    monkeypatch.setattr(core, "check_quantization", lambda recipe: None)  # no GPU here: the check is tested on its own
    monkeypatch.setattr(preference, "reward_done", lambda root: True)  # --stage policy: as if the reward stage had run
    monkeypatch.setattr(preference, "ModelScorer", lambda root, recipe: None)
    lora = [] if any(o.startswith("lora.") for o in overrides) or ref == "qlora_sft" else ["lora.r=8", "lora.alpha=16"]
    recipe, _, _ = load_recipe(ref, [f"model={tiny_causal_lm}", *lora, *overrides, "lora.quantization=4bit", "output_dir=out"])
    assert recipe.quantization == "4bit"
    with pytest.raises(Loaded):
        import_ref(recipe.definition.runner)(recipe, load_data(recipe), RunOptions(out=tmp_path / "out", stage=stage))
    model_class, kwargs = calls[-1]
    assert model_class == {"causal": "AutoModelForCausalLM", "classifier": "AutoModelForSequenceClassification"}[kind]
    config = kwargs.get("quantization_config")
    assert config is not None and config.load_in_4bit and config.bnb_4bit_quant_type == "nf4", kwargs
    assert kwargs["device_map"] == {"": 0}


def test_quantization_is_refused_on_a_machine_without_cuda(tiny_causal_lm, tmp_path, monkeypatch):
    from adaptkit.errors import InputError

    monkeypatch.chdir(tmp_path)
    recipe, _, _ = load_recipe("dpo", [f"model={tiny_causal_lm}", "lora.quantization=4bit", "output_dir=out"])
    with pytest.raises(InputError, match="needs a CUDA GPU"):
        import_ref(recipe.definition.runner)(recipe, load_data(recipe), RunOptions(out=tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_one_place_loads_a_model_being_trained():
    """Only the core calls from_pretrained for a model in training; the runners ask it (inference code loads its own)."""
    for path in (ROOT / "adaptkit" / "runners").glob("*.py"):
        if path.name in ("core.py", "predict.py", "backends.py", "merge.py", "report.py", "dryrun.py", "quantized.py"):
            continue
        code = re.sub(r'f"[^"]*"', '""', path.read_text())  # load instructions written into model cards are text
        assert "from_pretrained(" not in code, f"{path.name} loads a model itself: use adaptkit.runners.core.load_model"


def test_the_exported_script_loads_as_the_run_does():
    """The script carries the loader's own source and the recipe's loading spec."""
    from adaptkit.methods.loading import load_code, load_spec
    from adaptkit.recipe.export import script

    recipe, _, _ = load_recipe("qlora_sft")
    text = script(recipe, "qlora_sft", "train.py")
    assert load_code() in text
    assert "'load_in_4bit': True" in text and "**load_kwargs(LOAD)" in text
    assert load_spec(recipe)["quantization"]["bnb_4bit_quant_type"] == "nf4"
