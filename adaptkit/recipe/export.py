"""Export a recipe as something to paste elsewhere: a standalone script, accelerate configs, a TRL CLI config."""

from __future__ import annotations

from pathlib import Path

from adaptkit.errors import InputError
from adaptkit.recipe.schema import Recipe

TEMPLATES = Path(__file__).parent / "templates"


def _peft(recipe: Recipe) -> tuple[str, str]:
    """(import line, expression) for the recipe's PEFT config, for sequence classification."""
    if recipe.lora:
        b = recipe.lora
        return ("from peft import LoraConfig\n",
                f"LoraConfig(task_type='SEQ_CLS', r={b.r}, lora_alpha={b.alpha}, lora_dropout={b.dropout}, target_modules={b.target_modules!r})")
    if recipe.ia3:
        return ("from peft import IA3Config\n",
                f"IA3Config(task_type='SEQ_CLS', target_modules={recipe.ia3.target_modules!r}, feedforward_modules={recipe.ia3.feedforward_modules!r})")
    if recipe.prefix_prompt_tuning:
        b = recipe.prefix_prompt_tuning
        if b.kind == "prefix":
            return "from peft import PrefixTuningConfig\n", f"PrefixTuningConfig(task_type='SEQ_CLS', num_virtual_tokens={b.num_virtual_tokens})"
        if b.init_text:
            return ("from peft import PromptTuningConfig, PromptTuningInit\n",
                    f"PromptTuningConfig(task_type='SEQ_CLS', num_virtual_tokens={b.num_virtual_tokens}, prompt_tuning_init=PromptTuningInit.TEXT, "
                    f"prompt_tuning_init_text={b.init_text!r}, tokenizer_name_or_path=MODEL)")
        return "from peft import PromptTuningConfig\n", f"PromptTuningConfig(task_type='SEQ_CLS', num_virtual_tokens={b.num_virtual_tokens})"
    return "", "None"


def script(recipe: Recipe, ref: str, filename: str) -> str:
    """A standalone Python script that does what `adaptkit run` does for this recipe."""
    if recipe.task != "sequence_classification" or recipe.method not in ("full_finetuning", "lora_adapters", "prefix_prompt_tuning"):
        raise InputError(f"--format script covers classification recipes so far; {recipe.method}/{recipe.task} is not exported yet")
    from adaptkit.runners.models import resolve_model
    from adaptkit.runners.train import common_arguments

    args = common_arguments(recipe, Path(recipe.output_dir), bool(recipe.data.eval), with_precision=False)
    peft_import, peft_expression = _peft(recipe)
    d, t = recipe.data, recipe.training
    values = {
        "__TITLE__": f"{recipe.method} on {recipe.model} for {recipe.task}, exported from the adaptkit recipe {ref}.",
        "__REF__": ref, "__FILE__": filename, "__MODEL__": repr(resolve_model(recipe.model)), "__TRAIN__": repr(d.train),
        "__EVAL__": repr(d.eval), "__TEXT__": repr(d.text_column), "__LABEL__": repr(d.label_column), "__MAX_ROWS__": repr(d.max_rows),
        "__MAX_LENGTH__": repr(t.max_length), "__SEED__": repr(t.seed), "__OUTPUT_DIR__": repr(recipe.output_dir),
        "__PEFT_IMPORT__": peft_import, "__ADAPTER__": peft_expression, "__PRECISION__": repr(t.precision),
        "__ARGS__": "{\n    " + ",\n    ".join(f"{k!r}: {v!r}" for k, v in args.items()) + ",\n}", "__METHOD__": repr(recipe.method),
    }
    text = (TEMPLATES / "classification.py.tmpl").read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace(key, value)
    return text
