"""Write a runnable recipe for the best trainable recommendation, sized to fit the profile's hardware."""

from __future__ import annotations

import shlex

from adaptkit.advisor.engine import Advice
from adaptkit.errors import InputError, one_line
from adaptkit.recipe.load import as_yaml, project_root, validate
from adaptkit.recipe.schema import RUNNABLE

CLASSIFICATION_DEFAULTS = {"model": "sentence-transformers/all-MiniLM-L6-v2", "train": "examples/data/support_tickets_train.jsonl",
                           "eval": "examples/data/support_tickets_test.jsonl", "batch_size": 16, "max_length": 128}
CAUSAL_DEFAULTS = {"model": "Qwen/Qwen2.5-0.5B-Instruct", "train": "examples/data/instructions_train.jsonl",
                   "eval": "examples/data/instructions_eval.jsonl", "batch_size": 4, "max_length": 1024}
PREFERENCE_DEFAULTS = {"model": "Qwen/Qwen2.5-0.5B-Instruct", "train": "examples/data/preferences_train.jsonl",
                       "eval": "examples/data/preferences_eval.jsonl", "batch_size": 4, "max_length": 512}


TRAINING_FREE = ("prompt_engineering", "in_context_learning", "rag", "tool_use")


def runnable(advice: Advice) -> list[str]:
    """Recommended methods adaptkit can run, best first (ICL only for classification, where it is measured)."""
    return [rec.method for rec in advice.recommendations if rec.method in RUNNABLE
            and not (rec.method == "in_context_learning" and advice.profile.task != "classification")]


def pick(advice: Advice) -> str | None:
    """The best-ranked method adaptkit can run."""
    methods = runnable(advice)
    return methods[0] if methods else None


def _backend(p) -> tuple[dict, list[str]]:
    if p.weight_access == "open":
        return {"kind": "local", "max_new_tokens": 64}, []
    notes = [] if p.api_base_url else ["backend: an OpenAI endpoint by default; set backend.base_url, backend.model and backend.api_key_env for yours"]
    return {"kind": "openai", "base_url": p.api_base_url or "https://api.openai.com/v1", "model": p.api_model or "gpt-4o-mini",
            "api_key_env": p.api_key_env or "OPENAI_API_KEY", "cache_dir": "runs/cache", "max_new_tokens": 128}, notes


def training_free_recipe(method: str, advice: Advice) -> tuple[dict, list[str]]:
    """Recipes for the methods that change no weights, filled from the profile."""
    p = advice.profile
    root = project_root()
    backend, notes = _backend(p)
    model = p.model or p.api_model or CAUSAL_DEFAULTS["model"]
    recipe = {"method": method, "model": model, "backend": backend, "output_dir": f"runs/{method}"}
    if method == "rag":
        recipe.update(task="question_answering",
                      data={"eval": p.eval_data or str(root / "examples/rag/questions.jsonl")},
                      rag={"corpus": p.corpus_dir or str(root / "examples/rag/docs"), "index_dir": "runs/rag/index",
                           "top_k": 3, "generate": p.weight_access != "open" or bool(p.model)})
        recipe["model"] = p.model or "sentence-transformers/all-MiniLM-L6-v2"
        if not p.corpus_dir:
            notes.append("rag.corpus: the demo policy documents (set rag.corpus=FOLDER and data.eval=QUESTIONS for yours)")
    elif method == "tool_use":
        recipe.update(task="agent", data={"eval": p.eval_data or str(root / "examples/tools/tasks.jsonl")},
                      tools={"builtins": ["calculator", "table_lookup"], "table": str(root / "examples/tools/prices.csv"), "table_key": "sku"})
        notes.append("tools: the calculator and the demo price table; add your own with tools.custom (module:function, changes_state)")
    elif method == "in_context_learning":
        recipe.update(task="sequence_classification",
                      data={"train": p.train_data or str(root / CLASSIFICATION_DEFAULTS["train"]),
                            "eval": p.eval_data or str(root / CLASSIFICATION_DEFAULTS["eval"])},
                      icl={"shots": [0, 2, 4, 8], "selection": "similar"})
    else:
        classification = p.task == "classification"
        recipe.update(task="sequence_classification" if classification else "causal_lm",
                      data={"eval": p.eval_data or p.train_data or str(root / (CLASSIFICATION_DEFAULTS["eval"] if classification else CAUSAL_DEFAULTS["eval"]))},
                      prompts={"system": "You are a careful assistant. Follow the instructions exactly.",
                               "variants": [{"name": "plain", "template": "{text}" if classification else "{text}"},
                                            {"name": "with_labels", "template": "Choose one of: {labels}.\n\n{text}\n\nAnswer with the label only."}
                                            if classification else {"name": "concise", "template": "{text}\n\nAnswer concisely."}],
                               "scorer": "exact" if classification else "contains"})
    if not (p.eval_data or p.train_data) and method != "rag":
        notes.append("data: the demo data (set data.eval=... for your dev set)")
    validate(recipe, "emitted recipe")
    return recipe, notes


def recipe_for(advice: Advice, output_name: str | None = None, method: str | None = None) -> tuple[dict, list[str]]:
    """Recipe data for the top runnable recommendation (or `method`), and notes on what was chosen and why."""
    method = method or pick(advice)
    if method is None:
        ranked = ", ".join(r.method for r in advice.recommendations) or "none"
        raise InputError(f"no method that adaptkit can run is recommended (ranked: {ranked}); nothing to write")
    if method in TRAINING_FREE:
        return training_free_recipe(method, advice)
    p = advice.profile
    preference = method in ("dpo", "rlhf")
    classification = p.task == "classification" and not preference
    defaults = PREFERENCE_DEFAULTS if preference else CLASSIFICATION_DEFAULTS if classification else CAUSAL_DEFAULTS
    notes = []
    recipe = {
        "method": method if not (method == "full_finetuning" and not classification and p.goal == "instruction_following") else "instruction_tuning",
        "task": "sequence_classification" if classification else "causal_lm",
        "model": p.model or defaults["model"],
        "data": {"train": p.train_data or str(project_root() / defaults["train"]),
                 "eval": p.eval_data or (None if p.train_data else str(project_root() / defaults["eval"])),
                 "eval_fraction": 0.1 if p.train_data and not p.eval_data else None},
        "training": {"epochs": 3, "learning_rate": 2e-4, "batch_size": defaults["batch_size"], "max_length": defaults["max_length"]},
        "output_dir": f"runs/{output_name or method}",
    }
    if not p.model:
        notes.append(f"model: {defaults['model']} (no model in the answers; set model=... to change it)")
    if not p.train_data:
        notes.append("data: the demo data in examples/data (set data.train=... and data.eval=... for yours)")
    if preference:
        recipe["lora"] = {"r": 16, "alpha": 32, "dropout": 0.05, "target_modules": "all-linear", "quantization": "none"}
        recipe["training"].update(learning_rate=5e-5, epochs=1)
        if method == "dpo":
            recipe["dpo"] = {"beta": 0.1, "loss_type": "sigmoid", "reference": "adapters_off"}
        else:
            recipe["rlhf"] = {"reward": {"epochs": 1, "learning_rate": 5e-5, "batch_size": 8},
                              "policy": {"algorithm": "grpo", "num_generations": 4, "max_steps": 200, "batch_size": 8}}
        if p.is_base_model:
            notes.append("the model is a base model: instruction-tune it first (recipe lora_sft), then start from that adapter")
    elif method == "lora_adapters":
        recipe["lora"] = {"r": 8 if classification else 16, "alpha": 16 if classification else 32, "dropout": 0.05,
                          "target_modules": None if classification else "all-linear", "quantization": "none"}
        recipe["training"]["learning_rate"] = 1e-3 if classification else 2e-4
    elif method == "prefix_prompt_tuning":
        recipe["prefix_prompt_tuning"] = {"kind": "prompt", "num_virtual_tokens": 20}
        recipe["training"].update(learning_rate=3e-2, epochs=10)
    else:
        recipe["training"]["learning_rate"] = 5e-5 if classification else 2e-5
    notes.extend(_fit(recipe, advice))
    validate(recipe, "emitted recipe")
    return recipe, notes


def _fit(recipe: dict, advice: Advice) -> list[str]:
    """Apply the estimator's cheapest same-method change when the recipe does not fit the profile's GPU."""
    p = advice.profile
    if p.weight_access != "open" or p.vram_total_gb <= 0:
        return ["no GPU in the profile: settings are the defaults (run --dry-run on the training machine)"]
    from adaptkit.advisor.engine import _architecture
    from adaptkit.estimate.fit import suggest
    from adaptkit.estimate.memory import FULL_METHODS, Setup, estimate_memory

    arch = _architecture(p)
    if arch is None:
        return ["model size unknown: settings are the defaults (run adaptkit run --dry-run to check the fit)"]
    method = recipe["method"]
    t = recipe["training"]
    setup = Setup(method=method, batch_size=t["batch_size"], seq_len=t["max_length"], num_gpus=p.num_gpus,
                  adapter="lora" if "lora" in recipe else None,
                  sharding="zero3" if p.num_gpus > 1 and method in FULL_METHODS else "none",
                  lora_r=recipe.get("lora", {}).get("r", 16)).resolved()
    peak = estimate_memory(arch, setup).peak_gb
    if peak <= p.gpu_vram_gb:
        return [f"fits: ~{peak:.1f} GB per GPU of {p.gpu_vram_gb:g} GB at batch {t['batch_size']} x {t['max_length']} tokens"]
    changes, verdict = suggest(arch, setup, p.gpu_vram_gb)
    expressible = ("method", "adapter", "num_gpus", "chunked_loss", "optimizer", "precision")  # what a recipe cannot change
    same = [c for c in changes if all(getattr(c.setup, key) == getattr(setup, key) for key in expressible)]
    if not same:
        return [f"does not fit on {p.num_gpus} x {p.gpu_vram_gb:g} GB ({verdict or 'only as another method'}): check with --dry-run"]
    fitted = same[0].setup
    t["batch_size"] = fitted.batch_size
    t["gradient_accumulation"] = max(1, setup.batch_size // fitted.batch_size)
    t["max_length"] = fitted.seq_len
    t["gradient_checkpointing"] = fitted.gradient_checkpointing
    if fitted.quantization != "none" and "lora" in recipe:
        recipe["lora"]["quantization"] = fitted.quantization
        recipe["lora"]["target_modules"] = "all-linear"
    return [f"sized to fit {p.num_gpus} x {p.gpu_vram_gb:g} GB: {same[0].description} (~{same[0].peak_gb:.1f} GB per GPU)"]


def render(recipe: dict, advice: Advice, notes: list[str], path: str) -> str:
    """The recipe file: a header saying why, then the YAML."""
    top = next((r for r in advice.recommendations if r.method == recipe["method"] or
                (recipe["method"] == "instruction_tuning" and r.method == "full_finetuning")), advice.recommendations[0])
    p = advice.profile
    quoted = shlex.quote(str(path))
    header = [
        f"{recipe['method']} for {p.task} (goal {p.goal}), written by `adaptkit advise`.",
        f"Why: {top.rationale[0]}" if top.rationale else "Why: the best trainable method for these answers.",
        *[f"Note: {note}" for note in notes],
        f"Run: adaptkit run {quoted}   (check first: adaptkit run {quoted} --dry-run)",
    ]
    body = as_yaml(validate(recipe, "emitted recipe"))
    return "".join(f"# {one_line(line)}\n" for line in header) + body
