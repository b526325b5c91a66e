"""Renamed settings: the new names say what they hold (`preference` with its `algorithm`; RL's `reward_model` or
`reward_functions`), and recipes written with the old names keep working, with a note that names the new one."""

import warnings

import pytest

from adaptkit.errors import RenamedSetting
from adaptkit.methods.registry import registry
from adaptkit.methods.base import nested_model
from adaptkit.recipe.load import load_recipe, project_root

pytestmark = pytest.mark.unit

OLD_DPO = """
method: dpo
task: causal_lm
model: sentence-transformers/all-MiniLM-L6-v2
data: {train: ../examples/data/preferences_train.jsonl}
dpo: {algorithm: kto, beta: 0.2}
lora: {r: 8}
output_dir: runs/old-dpo
"""
OLD_RL = """
method: rlhf
task: causal_lm
model: sentence-transformers/all-MiniLM-L6-v2
data: {train: ../examples/data/arithmetic_train.jsonl}
rlhf:
  rewards: [{function: numeric, column: answer}]
  policy: {num_generations: 2, batch_size: 4}
lora: {r: 8}
output_dir: runs/old-rl
"""


def _write(tmp_path, text: str):
    path = tmp_path / "old.yaml"
    path.write_text(text.replace("../examples", str(project_root() / "examples")))
    return path


def test_the_old_dpo_block_reads_as_preference_with_a_note(tmp_path):
    path = _write(tmp_path, OLD_DPO)
    with pytest.warns(RenamedSetting, match="`dpo` is now called `preference`"):
        recipe, _, _ = load_recipe(str(path))
    assert recipe.preference.algorithm == "kto" and recipe.preference.beta == 0.2
    with warnings.catch_warnings(record=True) as caught:  # an old override too
        warnings.simplefilter("always")
        recipe, _, _ = load_recipe(str(path), ["dpo.beta=0.3"])
    assert any("override 'dpo.beta=0.3'" in str(w.message) for w in caught if w.category is RenamedSetting)
    assert recipe.preference.beta == 0.3


def test_rl_says_whether_its_reward_is_a_model_or_functions(tmp_path):
    path = _write(tmp_path, OLD_RL)
    with pytest.warns(RenamedSetting, match="`rlhf.rewards` is now called `rlhf.reward_functions`"):
        recipe, _, _ = load_recipe(str(path))
    assert recipe.verifiable and recipe.rlhf.reward_functions[0].function == "numeric"
    with pytest.warns(RenamedSetting, match="`rlhf.reward` is now called `rlhf.reward_model`"):
        recipe, _, _ = load_recipe("rlhf", ["rlhf.reward.epochs=2"])
    assert recipe.rlhf.reward_model.epochs == 2 and not recipe.verifiable


def test_both_spellings_at_once_is_an_error(tmp_path):
    path = _write(tmp_path, OLD_DPO + "preference: {beta: 0.1}\n")
    with pytest.raises(Exception, match="`dpo` is the old name of `preference`: keep one of them"):
        load_recipe(str(path))


def test_new_spellings_load_without_a_note():
    with warnings.catch_warnings():
        warnings.simplefilter("error", RenamedSetting)
        for name in ("dpo", "kto", "orpo", "simpo", "rlhf", "rlvr_math"):
            load_recipe(name)


def test_the_cli_prints_one_note_line_and_runs(invoke, tmp_path):
    path = _write(tmp_path, OLD_DPO)
    result = invoke("recipes", "validate", path)
    assert result.exit_code == 0, result.output
    assert result.stderr.count("note:") == 1 and "`dpo` is now called `preference`" in result.stderr
    assert "Traceback" not in result.output


def test_every_rename_targets_a_real_field():
    for definition in registry().values():
        for old, new in definition.recipe.RENAMED.items():
            assert old.split(".")[:-1] == new.split(".")[:-1]  # a rename stays inside its block
            model = definition.recipe
            for key in new.split(".")[:-1]:
                model = nested_model(model, key)
            assert new.split(".")[-1] in model.model_fields and old.split(".")[-1] not in model.model_fields
