"""`adaptkit tune`: search a trained recipe's settings with Optuna (its TPE sampler) and the bake-off's pruner. Each
trial first trains on 1/eta of the training rows; Optuna's SuccessiveHalvingPruner stops the trials that score below
the best so far there, and the rest train on all of them. The best trial's settings are written as a recipe; every
run is in the ledger.

With a shared Optuna storage and a study name, several workers (processes, GPUs, machines) search one study at once:
each asks Optuna for its next trial, the pruner judges every trial against all workers' scores, and each worker's
recipe is the best trial of the whole study when it finishes (the last worker to finish writes the study's best)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from adaptkit._files import write_atomic, write_new
from adaptkit.errors import InputError


@dataclass
class Tuning:
    trials: list[dict]
    best: dict | None
    written: Path | None
    metric: str | None
    folder: Path | None = None
    space: dict = field(default_factory=dict)
    study: str | None = None  # a shared study's name (several workers)
    study_trials: int = 0  # the study's trials, every worker's

    def to_dict(self) -> dict:
        return {"trials": self.trials, "best": self.best, "written": str(self.written) if self.written else None,
                "metric": self.metric, "space": self.space, "study": self.study, "study_trials": self.study_trials}


def space_of(recipe) -> dict:
    """The settings searched, from the recipe's own values: the learning rate (a tenth to ten times), the epochs (half
    to twice), and for a LoRA block its rank, alpha and targets (the recipe's, or every linear layer)."""
    t = recipe.training
    space = {"training.learning_rate": ("log", t.learning_rate / 10, t.learning_rate * 10),
             "training.epochs": ("choice", sorted({max(1, round(t.epochs / 2)), max(1, round(t.epochs)), max(1, round(t.epochs * 2))}))}
    lora = getattr(recipe, "lora", None)
    if lora is not None:
        space["lora.r"] = ("choice", [4, 8, 16, 32])
        space["lora.alpha_ratio"] = ("choice", [1, 2])  # alpha = ratio x r
        own = lora.target_modules
        if own != "all-linear":  # choices are strings for Optuna: the recipe's list as YAML, null for PEFT's default
            space["lora.target_modules"] = ("choice", ["null" if own is None else "[" + ", ".join(own) + "]", "all-linear"])
    return space


def _study(optuna, name: str | None, storage: str | None, seed: int, eta: int):
    """The Optuna study, new or (named, in a shared storage) joined; workers starting together on a new database race
    to create its tables (the loser waits and joins)."""
    from adaptkit.halving import pruner
    from adaptkit.halving_shared import opened

    return opened(lambda: optuna.create_study(study_name=name, storage=storage, load_if_exists=bool(name), direction="maximize",
                                              sampler=optuna.samplers.TPESampler(seed=seed), pruner=pruner(optuna, eta)), storage)


def _suggest(trial, space: dict) -> list[str]:
    values = {}
    for name, (kind, *spec) in space.items():
        if kind == "log":
            values[name] = trial.suggest_float(name, spec[0], spec[1], log=True)
        else:
            values[name] = trial.suggest_categorical(name, spec[0])
    overrides = [f"{name}={value:.3g}" if isinstance(value, float) else f"{name}={value}" for name, value in values.items()
                 if name != "lora.alpha_ratio"]
    if "lora.alpha_ratio" in values:
        overrides.append(f"lora.alpha={values['lora.r'] * values['lora.alpha_ratio']}")
    return overrides


def tune(ref: str, overrides: tuple[str, ...] = (), *, run, trials: int = 12, eta: int = 3, eval_data: str | None = None,
         output: str | None = None, output_dir: str = "runs/tune", storage: str | None = None, seed: int = 0,
         allow_code: bool = False, overwrite: bool = False, study: str | None = None, log=lambda line: None) -> Tuning:
    try:
        import optuna
    except ImportError:
        raise InputError("adaptkit tune searches with Optuna: pip install 'adaptkit[train]' (or pip install optuna)") from None
    from adaptkit.comparison import run_one, scored_on
    from adaptkit.methods.bakeoff import primary
    from adaptkit.recipe.load import load_recipe
    from adaptkit.rundir import check_location, expand
    from adaptkit.runners.data import load_data

    loaded, path, _ = load_recipe(ref, overrides)
    if not loaded.definition.trains:
        raise InputError(f"{ref}: {loaded.method} trains nothing to tune (prompt_engineering compares its prompt variants itself: "
                         "list them in prompts.variants)")
    if trials < 1:
        raise InputError("--trials must be 1 or more")
    if study and not storage:
        raise InputError("--study names a study in a shared --storage (sqlite:///tune.db on a shared disk, or a database URL): "
                         "give --storage too")
    root = expand(output_dir)
    check_location(root, "--output-dir")
    if (root / "tune.json").is_file() and not overwrite:
        raise InputError(f"--output-dir {root} holds an earlier search (tune.json): choose another, or pass --overwrite")
    target = Path(output or f"{Path(path).stem}.tuned.yaml").expanduser()
    if target.exists() and not overwrite:
        raise InputError(f"{target} already exists: choose another --output, or pass --overwrite")
    rows = len(load_data(load_recipe(ref, overrides + scored_on(eval_data))[0]).train)  # a share is of these, as trials read them
    space = space_of(loaded)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    searched = _study(optuna, study, storage, seed, eta)
    table: list[dict] = []
    metric = searched.user_attrs.get("metric")
    for _ in range(trials):
        trial = searched.ask()
        searched_here = _suggest(trial, space)
        number = trial.number  # unique across the workers of a shared study
        trial.set_user_attr("overrides", searched_here)
        entry = {"trial": number, "overrides": searched_here}
        for step, share in ((1, 1 / eta), (eta, 1.0)):
            pinned = overrides + tuple(searched_here) + ((f"data.max_rows={max(1, math.ceil(share * rows))}",) if share < 1 else ())
            log(f"[trial {number}: {share:.3g} of the rows] {' '.join(searched_here)}")
            metrics, _, error = run_one(str(path), root / f"trial{number}-{'full' if share == 1 else 'rung0'}", eval_data, allow_code,
                                        run, pinned)
            if error:
                entry["error"] = error
                searched.tell(trial, state=optuna.trial.TrialState.FAIL)
                break
            metric, value = primary(metrics)
            searched.set_user_attr("metric", metric)
            entry[f"value_at_{share:.3g}"] = value
            trial.report(value, step)
            if share < 1 and trial.should_prune():
                entry["outcome"] = f"stopped at 1/{eta} of the rows"
                searched.tell(trial, state=optuna.trial.TrialState.PRUNED)
                break
            if share == 1:
                entry["value"], entry["outcome"] = value, "complete"
                searched.tell(trial, value)
        table.append(entry)
    complete = [{"trial": t.number, "overrides": t.user_attrs.get("overrides", []), "value": t.value, "outcome": "complete"}
                for t in searched.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))]
    best = max(complete, key=lambda e: e["value"]) if complete else None  # of the whole study: every worker's trials
    written = None
    if best is not None:
        from adaptkit.recipe.emit import compact_yaml
        from adaptkit.recipe.load import apply_override, relative_inputs

        data = loaded.model_dump(mode="json", exclude_unset=True)
        for override in best["overrides"]:
            apply_override(data, override)
        data["output_dir"] = f"runs/{target.stem}"
        relative_inputs(data, target.parent)
        total = len(searched.get_trials(deepcopy=False))
        header = (f"# {Path(path).stem} tuned by `adaptkit tune` ({total} trials{f' in study {study}' if study else ''}): {metric} "
                  f"{best['value']:.4f} on the held-out rows with {' '.join(best['overrides'])}\n")
        write_new(target, header + compact_yaml(data), force=overwrite)
        written = target
    root.mkdir(parents=True, exist_ok=True)
    result = Tuning(table, best, written, metric, root, {k: list(v[1:]) if v[0] == "log" else v[1] for k, v in space.items()},
                    study=study, study_trials=len(searched.get_trials(deepcopy=False)))
    write_atomic(root / "tune.json", json.dumps(result.to_dict(), indent=2) + "\n")
    return result
