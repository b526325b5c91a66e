"""Write a runnable recipe for the best trainable recommendation, sized to fit the profile's hardware."""

from __future__ import annotations

import shlex

from adaptkit.advisor.engine import Advice
from adaptkit.advisor.profile import COLUMNS as ANSWERED_COLUMNS
from adaptkit.errors import InputError, one_line
from adaptkit.launch import layout, per_machine_commands
from adaptkit.methods.base import MEDIA_TASKS, DataConfig
from adaptkit.recipe.load import apply_override, project_root, validate
from adaptkit.methods.registry import recipe_changes, recipe_setup, registry

DEFAULTS = {  # the demo data and settings of each kind of training data, when the answers name none
    "classification": {"model": "sentence-transformers/all-MiniLM-L6-v2", "train": "examples/data/support_tickets_train.jsonl",
                       "eval": "examples/data/support_tickets_test.jsonl", "batch_size": 16, "max_length": 128},
    "instructions": {"model": "Qwen/Qwen2.5-0.5B-Instruct", "train": "examples/data/instructions_train.jsonl",
                     "eval": "examples/data/instructions_eval.jsonl", "batch_size": 4, "max_length": 1024},
    "pairs": {"model": "Qwen/Qwen2.5-0.5B-Instruct", "train": "examples/data/preferences_train.jsonl",
              "eval": "examples/data/preferences_eval.jsonl", "batch_size": 4, "max_length": 512},
    "answers": {"model": "Qwen/Qwen2.5-0.5B-Instruct", "train": "examples/data/arithmetic_train.jsonl",
                "eval": "examples/data/arithmetic_eval.jsonl", "batch_size": 8, "max_length": 256},
    # an image classifier: your images train a pretrained ViT; the demo's shapes train the tiny one the demo ships (offline)
    "images": {"model": "google/vit-base-patch16-224-in21k", "demo_model": "examples/images/vit-tiny", "train": "examples/images/train.jsonl",
               "eval": "examples/images/eval.jsonl", "batch_size": 32, "max_length": 128},
    # a vision-language model: your images and questions train a pretrained LLaVA; the demo's the small one the demo ships
    "vision": {"model": "llava-hf/llava-1.5-7b-hf", "demo_model": "examples/images/llava-tiny", "train": "examples/images/vqa_train.jsonl",
               "eval": "examples/images/vqa_eval.jsonl", "batch_size": 8, "max_length": 1024},
    # a text-to-image LoRA: your captioned images train Stable Diffusion; the demo's the small pipeline the demo ships
    "captions": {"model": "stable-diffusion-v1-5/stable-diffusion-v1-5", "demo_model": "examples/images/sd-tiny",
                 "train": "examples/images/captions_train.jsonl", "eval": "examples/images/captions_eval.jsonl", "batch_size": 4,
                 "max_length": 77},
    # a speech recogniser: your clips train a pretrained Whisper; the demo's tone-coded digits the small one the demo ships
    "speech": {"model": "openai/whisper-tiny", "demo_model": "examples/audio/whisper-demo", "train": "examples/audio/train.jsonl",
               "eval": "examples/audio/eval.jsonl", "batch_size": 16, "max_length": 128},
}


MIN_STEPS = 60  # optimizer steps an emitted recipe trains at least (where MAX_EPOCHS allow): fewer learn little
MAX_EPOCHS = 20
MIN_HELD_OUT = 30  # held-out rows for a score whose steps (1/rows) are small enough to compare methods
MAX_HELD_OUT = 0.3  # the largest share of one file held out


def held_out(rows: int) -> tuple[float, int]:
    """The share of one data file an emitted recipe holds out (data.eval_fraction), and the rows that makes: a tenth,
    or MIN_HELD_OUT rows where the file is small, up to MAX_HELD_OUT of it."""
    share = round(min(MAX_HELD_OUT, max(0.1, MIN_HELD_OUT / rows)), 2)
    return share, max(1, round(rows * share))


HEADROOM = 0.88  # emitted recipes aim at 88% of device memory: the estimator's error band is about 10-20%


READ_COLUMNS = {  # the data columns each kind of training data is read by: written into emitted recipes, to be renamed
    "classification": ("text_column", "label_column"), "instructions": ("prompt_column", "response_column"),
    "pairs": ("prompt_column", "chosen_column", "rejected_column"), "answers": ("prompt_column",),
    "images": ("image_column", "label_column"), "speech": ("audio_column", "text_column"),
    "vision": ("image_column", "prompt_column", "response_column"), "captions": ("image_column", "text_column"),
}
TASK_OF = {"classification": "sequence_classification", "images": "image_classification", "speech": "speech_recognition",
           "vision": "image_text_to_text", "captions": "text_to_image"}  # else causal_lm


class EmitContext:
    """What a method's `emit` hook may ask for: the profile's data (or the demo's) and notes for the file's header."""

    def __init__(self, profile):
        self.profile = profile
        self.notes: list[str] = []
        self.columns: tuple[str, ...] = ()  # data.*_column fields the recipe shows (with their values) for the user to edit

    def demo(self, relative: str) -> str:
        return str(project_root() / relative)

    def training_data(self, kind: str, trains: bool = True, min_steps: int | None = None) -> dict:
        """task, model, data and training for a kind of training data: the user's files, else the demo's (and a note).
        On the user's data, enough epochs for `min_steps` optimizer steps (default MIN_STEPS). `trains` false (a method
        that only reads the rows, as ICL's demonstrations): no notes on the model, the length and the steps."""
        p = self.profile
        if kind == "classification" and p.modality == "image_text_to_text":  # labels for images: an image classifier
            kind = "images"
        elif p.modality == "speech_to_text":  # clips and transcripts: a speech recogniser
            kind = "speech"
        elif p.modality == "image_text_to_text" and kind == "instructions":  # images with questions, or chats with image parts
            kind = "vision"
        elif p.modality == "text_to_image":  # captioned images: a diffusion LoRA
            kind = "captions"
        defaults = DEFAULTS[kind]
        self.columns = READ_COLUMNS[kind]
        model = p.model or (self.demo(defaults["demo_model"]) if "demo_model" in defaults and not p.train_data else defaults["model"])
        if not p.model and trains:
            self.notes.append(f"model: {model} (no model in the answers; set model=... to change it)")
        if not p.train_data:
            folder = defaults["train"].rpartition("/")[0]
            self.notes.append(f"data: the demo data in {folder} (set data.train=... and data.eval=... for yours)")
        max_length = defaults["max_length"]
        if p.data_p95_tokens:  # cover 95% of the examples whole; the longest 5% are truncated
            max_length = min(8192, max(64, -(-p.data_p95_tokens // 64) * 64))
            if p.context_window_tokens:
                max_length = min(max_length, p.context_window_tokens)
            if trains:
                self.notes.append(f"max_length {max_length}: covers the data's p95 of {p.data_p95_tokens:,} tokens")
        fields = {"task": TASK_OF.get(kind, "causal_lm"), "model": model,
                  "data": {"train": p.train_data or self.demo(defaults["train"]),
                           "eval": p.eval_data or (None if p.train_data else self.demo(defaults["eval"])),
                           "eval_fraction": None},
                  "training": {"epochs": 3, "learning_rate": 2e-4, "batch_size": defaults["batch_size"], "max_length": max_length}}
        if p.train_data:
            self._size(fields, kind, trains, min_steps or MIN_STEPS)
        return fields

    def _size(self, fields: dict, kind: str, trains: bool, min_steps: int) -> None:
        """The user's own data: hold out enough rows for the score to mean something (a share of one file), then enough
        epochs (and a small enough batch) for `min_steps` optimizer steps, so a small file is not 12 steps of noise."""
        rows = {"pairs": self.profile.preference_pairs or self.profile.feedback_labels}.get(kind) or self.profile.labeled_examples
        if not rows:
            return
        data, training = fields["data"], fields["training"]
        train = rows
        if not data["eval"]:
            data["eval_fraction"], held = held_out(rows)
            train = rows - held
            if held < MIN_HELD_OUT:
                self.notes.append(f"held out {held} of {rows} rows ({data['eval_fraction']:.0%}): a score on them moves in steps of "
                                  f"{1 / held:.2f}, so small differences between methods are noise; an eval file of "
                                  f"{MIN_HELD_OUT}+ rows (data.eval) gives a firmer answer")
        batch = training["batch_size"]
        while batch > 4 and train // batch < 8:  # at least 8 steps an epoch where the data allows
            batch //= 2
        steps = max(1, -(-train // batch))
        epochs = min(MAX_EPOCHS, max(3, -(-min_steps // steps)))
        training.update(batch_size=batch, epochs=epochs)
        if trains and (epochs > 3 or batch != DEFAULTS[kind]["batch_size"]):
            self.notes.append(f"{train} training rows: batch {batch} x {epochs} epochs = {steps * epochs} optimizer steps "
                              f"(at least {min_steps} where {MAX_EPOCHS} epochs allow)")

    def dev_data(self, kind: str) -> str:
        """A labeled dev set for prompting: the user's eval or train file, else the demo's (and a note)."""
        p = self.profile
        self.columns = READ_COLUMNS[kind]  # the columns the prompts and their answers are read from
        if not (p.eval_data or p.train_data):
            self.notes.append("data: the demo data (set data.eval=... for your dev set)")
        return p.eval_data or p.train_data or self.demo(DEFAULTS[kind]["eval"])


def _backend(p) -> tuple[dict, list[str]]:
    if p.weight_access == "open":
        return {"kind": "local", "max_new_tokens": 64}, []
    notes = [] if p.api_base_url else ["backend: an OpenAI endpoint by default; set backend.base_url, backend.model and backend.api_key_env for yours"]
    return {"kind": "openai", "base_url": p.api_base_url or "https://api.openai.com/v1", "model": p.api_model or "gpt-4o-mini",
            "api_key_env": p.api_key_env or "OPENAI_API_KEY", "cache_dir": "runs/cache", "max_new_tokens": 128}, notes


TASK_SCORERS = {"extraction": "extraction", "code": "code", "chat": "chat"}  # the profile's task -> scoring.scorer (else by task)


def _emitted(method: str, advice: Advice) -> tuple[dict, list[str]] | None:
    """The recipe a method's definition writes for this profile, and its notes; None where it writes none. The data
    block names the columns the method reads (with their defaults) so that a user sees what to rename."""
    definition = registry().get(method)
    if definition is None or definition.emit is None:
        return None
    context = EmitContext(advice.profile)
    fields = definition.emit(advice.profile, context)
    if fields is None:
        return None
    recipe = {"method": method, **fields}
    if advice.profile.modality != "text" and (recipe.get("task") not in MEDIA_TASKS or recipe.get("task") not in definition.tasks):
        return None  # a text recipe would not run on these rows, and no method trains every kind of model (a diffusion model fully)
    if "data" in recipe:
        recipe["data"] = {**recipe["data"], **_columns(advice.profile, context.columns, recipe["data"])}
    own_data = advice.profile.train_data or advice.profile.eval_data  # the demo data holds neither JSON nor tests
    if recipe.get("task") == "causal_lm" and advice.profile.task in TASK_SCORERS and own_data:
        recipe.setdefault("scoring", {"scorer": TASK_SCORERS[advice.profile.task]})  # every method on this task scores alike
    if not definition.trains or "vendor" in fields:  # served, or tuned, by an endpoint
        backend, notes = _backend(advice.profile)
        if not (advice.profile.model or advice.profile.api_model or "model" in recipe):
            context.notes.append(f"model: {DEFAULTS['instructions']['model']} (no model in the answers; set model=... to change it)")
        recipe.setdefault("model", advice.profile.model or advice.profile.api_model or DEFAULTS["instructions"]["model"])
        recipe["backend"] = {**backend, **fields.get("backend", {})}  # the method may size its answers (max_new_tokens)
        context.notes[:0] = notes
    return recipe, context.notes


def _columns(profile, shown: tuple[str, ...], data: dict) -> dict:
    """The data columns of the recipe: the user's own names (answers, or read from the data file) and the defaults of
    the ones the method reads, so that a user sees what to rename. Chat messages replace prompt and response."""
    columns = {c: data.get(c) or getattr(profile, c, None) or DataConfig.model_fields[c].default for c in shown}
    if "response_column" in columns and not (data.get("response_column") or profile.response_column) and profile.chosen_column \
            and "chosen_column" not in shown:  # preference pairs read by a method that wants answers: the chosen reply is the answer
        columns["response_column"] = profile.chosen_column
    if profile.messages_column and "prompt_column" in columns and "chosen_column" not in columns:
        columns = {c: v for c, v in columns.items() if c not in ("prompt_column", "response_column")}
        columns["messages_column"] = profile.messages_column
    given = {c: getattr(profile, c) for c in ANSWERED_COLUMNS if getattr(profile, c) and c not in columns}
    return {**columns, **given}


def runnable(advice: Advice) -> list[str]:
    """Recommended methods adaptkit can write a recipe for, best first."""
    return [rec.method for rec in advice.recommendations if _emitted(rec.method, advice) is not None]


def pick(advice: Advice) -> str | None:
    """The best-ranked method adaptkit can run."""
    methods = runnable(advice)
    return methods[0] if methods else None


def recipe_for(advice: Advice, output_name: str | None = None, method: str | None = None) -> tuple[dict, list[str]]:
    """Recipe data for the top runnable recommendation (or `method`), and notes on what was chosen and why."""
    modality = advice.profile.modality
    if method in advice.ruled_out:
        raise InputError(f"{method} is ruled out for these answers: {advice.ruled_out[method][0]}")
    method = method or pick(advice)
    emitted = _emitted(method, advice) if method else None
    if emitted is None and modality != "text":  # the advice stands; a recipe of text would not run on these rows
        what = {"image_text_to_text": "an image classifier (task classification) and a vision-language model (full fine-tuning or "
                "LoRA)", "speech_to_text": "a speech recogniser (full fine-tuning or LoRA)",
                "text_to_image": "a Stable Diffusion LoRA"}.get(modality, "none yet")
        raise InputError(f"no built-in recipe of {method or 'a recommended method'} reads {modality} rows (adaptkit's recipes for "
                         f"{modality}: {what}): the advice above stands (drop --emit-recipe / --bake-off)")
    if emitted is None:
        ranked = ", ".join(r.method for r in advice.recommendations) or "none"
        raise InputError(f"no method that adaptkit can run is recommended (ranked: {ranked}); nothing to write")
    recipe, notes = emitted
    recipe["output_dir"] = f"runs/{output_name or method}"
    if registry()[recipe["method"]].trains:
        notes.extend(_fit(recipe, advice))
    validate(recipe, "emitted recipe")
    return recipe, notes


def plan_for(advice: Advice, output_name: str | None = None, method: str | None = None) -> list[tuple[dict, list[str]]]:
    """The recipes to run, in order, with their notes: the top runnable method's recipe, or the stages its definition
    plans for this profile (continued pre-training on a raw corpus, then instruction tuning), each sized to fit."""
    recipe, notes = recipe_for(advice, output_name, method)
    definition = registry()[recipe["method"]]
    if definition.plan is None:
        return [(recipe, notes)]
    context = EmitContext(advice.profile)
    stages = definition.plan(recipe, notes, context, lambda stage: _fit(stage, advice))
    for stage, _ in stages:
        validate(stage, "emitted recipe")
    return stages


def _fit(recipe: dict, advice: Advice) -> list[str]:
    """Apply the estimator's cheapest same-method change when the recipe does not fit the profile's GPUs, then say
    what the finished recipe needs: the one figure `estimate --recipe`, `run --dry-run` and the export headers give."""
    p = advice.profile
    if "vendor" in recipe:
        return []  # the vendor's machines: nothing to size here
    if p.weight_access != "open" or p.vram_total_gb <= 0:
        return ["no GPU in the profile: settings are the defaults (run --dry-run on the training machine)"]
    from adaptkit.estimator.architectures import for_model
    from adaptkit.estimator.fit import suggest
    from adaptkit.estimator.memory import estimate_memory
    from adaptkit.models import resolve_model

    arch = for_model(resolve_model(p.model) if p.model else None, p.model_params_b)
    if arch is None:
        return ["model size unknown: settings are the defaults (run adaptkit run --dry-run to check the fit)"]
    gpus, budget = p.num_gpus, HEADROOM * p.gpu_vram_gb

    def setup_of(data: dict):
        """One GPU's setup; on several, sharded when it trains every weight or its 16-bit base does not fit replicated."""
        checked = validate(data, "emitted recipe")
        single = recipe_setup(checked)
        shard = gpus > 1 and (single.trains_all_weights or estimate_memory(arch, single).peak_gb > budget)
        return recipe_setup(checked, gpus, "zero3") if shard else single

    setup = setup_of(recipe)
    notes = []
    if estimate_memory(arch, setup).peak_gb > budget:
        changes, verdict = suggest(arch, setup, budget)
        # the same method on the same GPUs; a 4-bit base only where the recipe has a LoRA block to put it under
        same = [c for c in changes if c.setup.adapter == setup.adapter and c.setup.num_gpus == setup.num_gpus
                and (c.setup.quantization == setup.quantization or "lora" in recipe)]
        if not same:
            return [f"does not fit on {gpus} x {p.gpu_vram_gb:g} GB ({verdict or 'only as another method'}): check with --dry-run"]
        overrides, _ = recipe_changes(setup, same[0].setup, recipe["training"].get("gradient_accumulation", 1))
        for override in overrides:  # the same overrides `estimate --recipe` prints for this suggestion
            apply_override(recipe, override)
        if "lora" in recipe and same[0].setup.quantization != setup.quantization:
            recipe["lora"]["target_modules"] = "all-linear"
        notes.append(f"sized to fit {gpus} x {p.gpu_vram_gb:g} GB with {1 - HEADROOM:.0%} headroom (the estimate's error band "
                     f"is 10-20%): {same[0].description}")
    t = recipe["training"]
    final = setup_of(recipe)
    one = estimate_memory(arch, recipe_setup(validate(recipe, "emitted recipe"))).peak_gb
    many = estimate_memory(arch, final).peak_gb
    where = f"; ~{many:.1f} GB per GPU with ZeRO-3 over {gpus}" if final.sharding != "none" else ""
    notes.append(f"memory: ~{one:.1f} GB on one GPU{where} (of {p.gpu_vram_gb:g} GB) at batch {t['batch_size']} x "
                 f"{t['max_length']} tokens; `adaptkit estimate --recipe` and `run --dry-run` give the same figure")
    if final.sharding != "none":
        recipe["training"]["sharding"] = final.sharding
    if gpus > 1:
        notes.append(launch_note(layout(gpus, p.gpus_per_node), final.sharding))
    return notes


def launch_note(launch, sharding: str) -> str:
    """How the emitted recipe runs over the profile's GPUs: on one machine, or on each of several."""
    how = f"sharded with training.sharding: {sharding}" if sharding != "none" else "data parallel"
    if launch.machines == 1:
        return (f"{launch.processes} GPUs, {how}: adaptkit run RECIPE --num-processes {launch.processes} "
                + ("writes the accelerate config and launches" if sharding != "none" else "launches one process per GPU"))
    laid = per_machine_commands("RECIPE", launch)
    return (f"{laid['layout']}, {how}: on every machine at once, {laid['adaptkit']} (MACHINE_RANK 0 on the machine at "
            "MAIN_IP); `adaptkit export RECIPE --format slurm` or `--format skypilot` writes the cluster job")


def render(recipe: dict, advice: Advice, notes: list[str], path: str, recommended: str | None = None) -> str:
    """The recipe file: a header saying why, then the YAML."""
    method = recommended or recipe["method"]
    top = next((r for r in advice.recommendations if r.method == method), advice.recommendations[0])
    p = advice.profile
    quoted = shlex.quote(str(path))
    header = [
        f"{recipe['method']} for {p.task} (goal {p.goal}), written by `adaptkit advise`.",
        f"Why: {top.rationale[0]}" if top.rationale else "Why: the best trainable method for these answers.",
        *[f"Note: {note}" for note in notes],
        f"Run: adaptkit run {quoted}   (check first: adaptkit run {quoted} --dry-run)",
    ]
    return "".join(f"# {one_line(line)}\n" for line in header) + compact_yaml(recipe)


def compact_yaml(data: dict) -> str:
    """A recipe as a user edits it: what was written into it (not every default of the schema: `as_yaml` shows what
    runs), each block under a comment saying what it holds, output_dir last."""
    import yaml

    from adaptkit.methods.base import nested_model

    recipe = validate(data, "emitted recipe")
    written = recipe.model_dump(mode="json", exclude_unset=True)
    written = {key: _without_none(value) for key, value in written.items() if value is not None}
    written["output_dir"] = written.pop("output_dir")
    variant, parts = type(recipe), []
    for key, value in written.items():
        described = variant.model_fields[key].description if key in variant.model_fields else None
        if described and nested_model(variant, key) is not None:
            parts.append("\n" + "".join(f"# {line}\n" for line in _wrap(one_line(described))))
        parts.append(yaml.safe_dump({key: value}, sort_keys=False, allow_unicode=True))
    return "".join(parts)


def _without_none(value):
    """The value as a user writes it: no unset (None) fields, and whole numbers without a point (epochs: 6, not 6.0)."""
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return int(value)
    return value


def _wrap(text: str) -> list[str]:
    import textwrap

    return textwrap.wrap(text[:1].upper() + text[1:], 110)
