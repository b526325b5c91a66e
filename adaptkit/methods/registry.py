"""The method registry: one definition per method, registered once, read by every layer.

Like PEFT's `register_peft_method`, a method module ends in `register(MethodDef(...))`, and a duplicate id, an id
without a catalogue row, or a catalogue row without a definition is an error when the registry loads. Nothing
outside the method modules compares method ids: code asks the registry.
"""

from __future__ import annotations

import difflib
import importlib

from adaptkit.errors import InputError
from adaptkit.methods.base import MethodDef, RecipeBase
from adaptkit.methods.catalogue import methods

FAMILIES = ("supervised", "preference", "prompting", "rag", "tools")  # adaptkit/methods/<family>/: one folder per family
MODULES = tuple(f"adaptkit.methods.{family}.recipe" for family in FAMILIES)

_REGISTRY: dict[str, MethodDef] = {}
_LOADED = False


def register(definition: MethodDef) -> MethodDef:
    """Add a method; refuses a duplicate id and a definition that disagrees with its catalogue row or recipe."""
    catalogue = methods()
    if definition.id in _REGISTRY:
        raise ValueError(f"method `{definition.id}` is registered twice")
    if definition.id not in catalogue:
        raise ValueError(f"method `{definition.id}` has no row in the catalogue (methods/data/methods.yaml)")
    if definition.trains != catalogue[definition.id].trains:
        raise ValueError(f"method `{definition.id}`: objective `{definition.objective}` disagrees with the catalogue's trains")
    if definition.recipe.model_fields["method"].annotation.__args__ != (definition.id,):
        raise ValueError(f"method `{definition.id}`: its recipe's `method` field must be Literal[{definition.id!r}]")
    definition.recipe.DEFINITION = definition
    _REGISTRY[definition.id] = definition
    return definition


def _load() -> None:
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    for module in MODULES:
        importlib.import_module(module)
    missing = [m for m in methods() if m not in _REGISTRY]
    if missing:
        raise ValueError(f"catalogue methods without a definition: {', '.join(missing)}")


def registry() -> dict[str, MethodDef]:
    """Every method's definition, in catalogue order (cheapest first)."""
    _load()
    return {method: _REGISTRY[method] for method in methods()}


def get(method: str) -> MethodDef:
    """One method's definition; an unknown id is a clear error with a did-you-mean."""
    _load()
    if method not in _REGISTRY:
        close = difflib.get_close_matches(str(method), list(_REGISTRY), n=1)
        raise InputError(f"`{str(method)[:60]}` is not a method" + (f" (did you mean `{close[0]}`?)" if close else
                                                                     f" (methods: {', '.join(_REGISTRY)})"))
    return _REGISTRY[method]


def import_ref(ref: str):
    """The function a definition names as "module:function", imported now."""
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


def block_owners() -> dict[str, list[str]]:
    """Recipe block name -> the methods that own it."""
    owners: dict[str, list[str]] = {}
    for definition in registry().values():
        for block in definition.recipe.blocks():
            owners.setdefault(block, []).append(definition.id)
    return owners


# ------------------------------------------------------------------------------------------ the estimator's view


def setup_for(method: str, **fields):
    """The estimator's Setup for a method: its objective and default adapter, then `fields`."""
    from adaptkit.estimator.memory import Setup

    definition = get(method)
    adapter = fields.pop("adapter", None) or definition.adapters[0]
    if adapter not in definition.adapters:
        choices = " or ".join(a if a != "none" else "none (all weights)" for a in definition.adapters)
        raise InputError(f"{method} takes the adapter {choices}, not {adapter}")
    return Setup(method=method, objective=definition.objective, adapter=adapter, **fields)


OPTIMIZER_STATES = {"adamw_torch": "adamw", "adamw_8bit": "adamw8bit", "paged_adamw_8bit": "adamw8bit", "adafactor": "adafactor",
                    "sgd": "sgd"}  # the recipe's optimizer -> the estimator's view of its states
SHARDING = {"none": "none", "ddp": "none", "fsdp": "fsdp", "zero2": "zero2", "zero3": "zero3"}  # recipe -> estimator (DDP replicates)


def recipe_setup(recipe: RecipeBase, num_gpus: int = 1, sharding: str | None = None):
    """The one conversion from a recipe to the estimator's Setup, used by estimate --recipe, run --dry-run, the
    export headers, advise --emit-recipe and the advisor's memory gate. The figure is for a GPU: `precision: auto`
    is bf16 there (fp32 only when the recipe says so). `sharding` None: the recipe's own, over `num_gpus`."""
    definition = recipe.definition
    if not definition.trains:
        return setup_for(definition.id, seq_len=definition.serve_tokens, num_gpus=num_gpus)
    t = recipe.training
    fields = {"batch_size": t.batch_size, "seq_len": t.max_length, "gradient_checkpointing": t.gradient_checkpointing,
              "chunked_loss": t.chunked_loss, "optimizer": OPTIMIZER_STATES[t.optimizer], **definition.setup(recipe)}
    full = fields.get("adapter", definition.adapters[0]) == "none"
    precision = {"fp32": "fp32", "bf16": "bf16"}.get(t.precision, "bf16-mixed" if full else "bf16")
    if sharding is None:
        sharding = SHARDING[t.sharding] if num_gpus > 1 else "none"
    return setup_for(definition.id, precision=precision, num_gpus=num_gpus, sharding=sharding, **fields)


def recipe_changes(before, after, accumulation: int = 1, to_lora: list[str] | None = None) -> tuple[list[str], list[str]]:
    """A step-down change of the estimator (Setup `before` -> `after`) as recipe overrides and run flags: what
    `estimate --recipe` and `run --dry-run` print for each suggestion and `advise --emit-recipe` applies. `to_lora`:
    what the recipe's own method needs to take a LoRA block (None: it cannot, so the change is lora_adapters)."""
    overrides: list[str] = []
    if after.adapter != before.adapter:  # full weights -> LoRA (or QLoRA)
        overrides += ["method=lora_adapters"] if to_lora is None else to_lora
        overrides += [f"lora.r={after.lora_r}", f"lora.alpha={2 * after.lora_r}", "lora.target_modules=all-linear"]
    if after.quantization != before.quantization:
        overrides.append(f"lora.quantization={after.quantization}")
    if after.gradient_checkpointing != before.gradient_checkpointing:
        overrides.append(f"training.gradient_checkpointing={str(after.gradient_checkpointing).lower()}")
    if after.chunked_loss != before.chunked_loss:
        overrides.append(f"training.chunked_loss={str(after.chunked_loss).lower()}")
    if after.batch_size != before.batch_size:
        steps = accumulation * max(1, before.batch_size // after.batch_size)  # the same examples per optimizer step
        overrides += [f"training.batch_size={after.batch_size}", f"training.gradient_accumulation={steps}"]
    if after.resolution is None and after.text_tokens != before.text_tokens:  # a diffusion UNet's size is its images
        overrides.append(f"training.max_length={after.text_tokens}")
    if after.freeze_vision and not before.freeze_vision and after.adapter == "none":
        overrides.append("freeze_vision_tower=true")
    if after.resolution is not None and after.resolution != before.resolution:
        overrides.append(f"data.image_size={after.resolution}")
    if after.precision != before.precision and after.adapter == before.adapter:
        overrides.append(f"training.precision={after.precision}")
    if after.optimizer != before.optimizer and after.adapter == before.adapter:
        overrides.append(f"training.optimizer={next(k for k, v in OPTIMIZER_STATES.items() if v == after.optimizer)}")
    if after.sharding != before.sharding:
        overrides.append(f"training.sharding={after.sharding}")
    flags = [f"--num-processes {after.num_gpus}"] if after.num_gpus > 1 else []
    return overrides, flags


def with_recipe_changes(recipe: RecipeBase, result: dict) -> list[dict]:
    """Each step-down suggestion of an estimate for a recipe (`result`, the estimate's answer: its setup as the model
    resolved it, with a VLM's image tokens and a UNet's resolution), with the overrides and run flags that apply it."""
    from adaptkit.estimator.memory import Setup

    definition = recipe.definition
    before = Setup(method=result.get("method") or definition.id, **result["setup"])
    accumulation = recipe.training.gradient_accumulation if definition.trains else 1
    to_lora = definition.to_lora(recipe) if "lora" in definition.adapters else None
    for suggestion in result["suggestions"]:
        overrides, flags = recipe_changes(before, Setup(**suggestion["setup"]), accumulation, to_lora)
        suggestion.update(overrides=overrides, flags=flags)
    return result["suggestions"]
