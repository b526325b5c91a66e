"""adaptkit: choose how to adapt a foundation model, check it fits, and run the recipe.

    import adaptkit
    advice = adaptkit.advise({"task": "classification", "goal": "behavior", "weight_access": "open"})
    result = adaptkit.run("lora_cls", ["training.max_steps=20", "output_dir=runs/mine"])
    adaptkit.predict(result.folder, [{"text": "I was charged twice"}]).rows
    adaptkit.ledger.rows(method="lora_adapters")  # every finished run, recorded

The API is exported lazily (PEP 562): `import adaptkit` loads no torch and nothing else heavy.
"""

__version__ = "0.1.0"

# name -> (module, attribute); attribute None: the module itself
_EXPORTS = {
    "advise": ("adaptkit.api", "advise"),
    "write_recipe": ("adaptkit.api", "write_recipe"),
    "WrittenRecipe": ("adaptkit.api", "WrittenRecipe"),
    "estimate": ("adaptkit.api", "estimate"),
    "load_recipe": ("adaptkit.api", "load_recipe"),
    "dry_run": ("adaptkit.api", "dry_run"),
    "run": ("adaptkit.api", "run"),
    "compare": ("adaptkit.api", "compare"),
    "bakeoff": ("adaptkit.api", "bakeoff"),
    "tune": ("adaptkit.api", "tune"),
    "cluster_job": ("adaptkit.api", "cluster_job"),
    "export_run": ("adaptkit.api", "export_run"),
    "predict": ("adaptkit.api", "predict"),
    "Comparison": ("adaptkit.api", "Comparison"),
    "Predictions": ("adaptkit.api", "Predictions"),
    "Profile": ("adaptkit.advisor.profile", "Profile"),
    "Advice": ("adaptkit.advisor.engine", "Advice"),
    "RunResult": ("adaptkit.methods.base", "RunResult"),
    "AdaptkitError": ("adaptkit.errors", "AdaptkitError"),
    "InputError": ("adaptkit.errors", "InputError"),
    "ledger": ("adaptkit.ledger", None),
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'adaptkit' has no attribute {name!r}")
    import importlib

    module, attribute = _EXPORTS[name]
    value = importlib.import_module(module) if attribute is None else getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # looked up once
    return value


def __dir__():
    return sorted(__all__)
