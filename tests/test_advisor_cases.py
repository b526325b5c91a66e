"""Advisor corrections for cases the rules used to get wrong: few examples on a very large model (prompt first),
preference tuning that fits only with adapters (said, and written into the recipe)."""

from __future__ import annotations

import pytest

import adaptkit


def _advice(**answers):
    return adaptkit.advise({"task": "generation", "weight_access": "open", "gpu_vram_gb": 80, **answers}, detect_gpus=False)


@pytest.mark.parametrize("params, examples, first", [(70, 100, "in_context_learning"), (405, 40, "in_context_learning"),
                                                     (8, 100, "lora_adapters"), (70, 300, "lora_adapters")])
def test_few_examples_on_a_very_large_model_prompt_first(params, examples, first):
    advice = _advice(goal="behavior", model_params_b=params, labeled_examples=examples, num_gpus=8)
    assert advice.recommendations[0].method == first
    fired = {f.rule.id for f in advice.firings}
    assert ("P1-large-model-few-examples" in fired) == (params >= 60 and examples <= 200)


def test_preference_tuning_that_fits_only_with_adapters_says_so_and_writes_lora(tmp_path):
    advice = _advice(goal="alignment", model_params_b=8, preference_pairs=5000, labeled_examples=0, num_gpus=1)
    top = advice.recommendations[0]
    assert top.method == "dpo" and any(line.startswith("runs with LoRA") and "all weights would need" in line for line in top.rationale)
    assert top.feasibility.startswith("with LoRA")
    written = adaptkit.write_recipe(advice, tmp_path / "dpo.yaml")
    assert written.fields["method"] == "dpo" and "lora" in written.fields
