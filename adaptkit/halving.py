"""The early-stopping bake-off: candidate recipes run on the same held-out rows as successive halving. Training-free
methods are scored once; trained ones train on a small share of the training rows first, and only the better share
(1/eta, Optuna's SuccessiveHalvingPruner deciding from the scores reported at each rung) goes on with more. It stops
when a method reaches the target, when the budget is spent, or when the winner is clear: when one trained candidate
is left it goes straight to the full data. Each trained candidate's rungs are fitted as a learning curve
(adaptkit.curves), which forecasts what more labels would bring. The same table as `compare`, plus every rung."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from adaptkit._files import write_atomic
from adaptkit.errors import InputError

ETA = 3  # keep the best third at each rung (Hyperband's and ASHA's usual reduction factor)


def fractions_for(eta: int, rungs: int = 3) -> tuple[float, ...]:
    """The training shares of the rungs: 1/eta^(rungs-1), ..., 1/eta, 1."""
    return tuple(1 / eta ** k for k in range(rungs - 1, -1, -1))


def finished(row: dict) -> bool:
    """Whether a bake-off row is a candidate's last word: scored once, trained on all its rows, or failed (not stopped
    early on a share of its rows, whose score is not comparable)."""
    return "error" in row or row.get("rung") == "once" or row.get("fraction") == 1


@dataclass
class BakeOff:
    rows: list[dict]  # one per candidate: its furthest rung, as compare's rows
    rungs: list[dict]  # every run: candidate, rung, share of the training rows, score, seconds, what became of it
    recommendation: str | None
    stopped: str
    spent: dict
    curves: dict = field(default_factory=dict)
    folder: Path | None = None

    def to_dict(self) -> dict:
        return {"rows": self.rows, "rungs": self.rungs, "recommendation": self.recommendation, "stopped": self.stopped,
                "spent": self.spent, "curves": self.curves}


def _promoted(study, trials: dict, rung: int) -> list[str]:
    """The candidates Optuna's SuccessiveHalvingPruner promotes from `rung`, each judged with every candidate's value at
    that rung in view (synchronous successive halving: the best 1/eta, at least one). The pruner judges a trial against
    the values other trials registered at the rung before it, so every value is registered first (should_prune), and
    then each trial is judged as if its own rung were still open (its registration left out of its own copy)."""
    for trial in trials.values():
        trial.should_prune()  # registers the trial's value at this rung with the pruner
    key = f"completed_rung_{rung}"  # the pruner's own record of a trial's value at a rung
    kept = []
    for ref, trial in trials.items():
        frozen = study.trials[trial.number]
        frozen.system_attrs = {name: value for name, value in frozen.system_attrs.items() if name != key}
        if not study.pruner.prune(study, frozen):
            kept.append(ref)
    return kept


def bake_off(recipes: list[str], *, run, eval_data: str | None = None, target: tuple[str, float] | None = None, margin: float = 0.02,
             eta: int = ETA, rungs: int = 3, fractions: tuple[float, ...] | None = None, skip_when_clear: bool = True,
             budget_hours: float | None = None, budget_usd: float | None = None, gpu_hour_usd: float = 1.0,
             usd_per_1m_input: float = 0.5, usd_per_1m_output: float | None = None, requests_per_second: float | None = None,
             output_dir: str = "runs/bakeoff", storage: str | None = None, allow_code: bool = False, overwrite: bool = False,
             workers: int = 1, log=lambda line: None) -> BakeOff:
    """Successive halving over `recipes` (see the module); `run` is adaptkit.run. `storage`: an Optuna storage URL
    (sqlite:///bakeoff.db) that keeps the study for later inspection. `workers` > 1 trains that many candidates of a
    rung at once, each `adaptkit run` in its own process, on its own GPU where there are several."""
    try:
        import optuna
    except ImportError:
        raise InputError("the bake-off schedules with Optuna: pip install 'adaptkit[train]' (or pip install optuna)") from None
    from adaptkit.comparison import check_same_data, run_one, token_counter
    from adaptkit.curves import learning_curve, standard_error
    from adaptkit.methods.bakeoff import metric_names, row, winner
    from adaptkit.recipe.load import load_recipe
    from adaptkit.rundir import check_location, expand
    from adaptkit.runners.data import load_data

    if eta < 2:
        raise InputError("--eta must be 2 or more (the share kept at each rung is 1/eta)")
    if workers < 1:
        raise InputError("--workers must be 1 or more")
    if rungs < 2:
        raise InputError("--rungs must be 2 or more (a share of the rows, then all of them)")
    fractions = tuple(fractions or fractions_for(eta, rungs))
    if list(fractions) != sorted(set(fractions)) or fractions[0] <= 0 or fractions[-1] != 1:
        raise InputError(f"fractions {list(fractions)}: shares of the training rows, rising, ending at 1 (all of them)")
    if target is not None and target[0] not in metric_names():
        raise InputError(f"target: `{target[0]}` is not a metric a bake-off ranks by (known: {', '.join(metric_names())})")
    if not eval_data and len(recipes) > 1:
        check_same_data(recipes)
    root = expand(output_dir)
    check_location(root, "--output-dir")
    if (root / "bakeoff.json").is_file() and not overwrite:
        raise InputError(f"--output-dir {root} holds an earlier bake-off (bakeoff.json): choose another, or pass --overwrite")
    trained, free, sizes = [], [], {}
    for ref in recipes:
        loaded, _, _ = load_recipe(ref, ())
        if loaded.definition.trains:
            trained.append(ref)
            sizes[ref] = len(load_data(loaded).train)  # the rows a share is taken of, before anything trains
        else:
            free.append(ref)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", storage=storage, study_name=f"adaptkit-bakeoff-{int(time.time())}",
                                pruner=optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=eta,
                                                                              min_early_stopping_rate=0))
    rows: dict[str, dict] = {}
    rungs: list[dict] = []
    spent = {"training_s": 0.0}
    stopped = ""

    def price(metrics, recipe, folder, ref):
        return row(ref, metrics, recipe or {}, usd_per_1m_input, usd_per_1m_output, gpu_hour_usd, requests_per_second, token_counter(folder))

    def over_budget() -> str:
        hours = spent["training_s"] / 3600
        if budget_hours is not None and hours >= budget_hours:
            return f"the budget of {budget_hours:g} GPU hours was spent ({hours:.3f} h)"
        if budget_usd is not None and hours * gpu_hour_usd >= budget_usd:
            return f"the budget of ${budget_usd:g} was spent (${hours * gpu_hour_usd:.4f} of GPU time)"
        return ""

    def reached(line: dict) -> bool:
        value = line.get("value")
        return target is not None and line.get("metric") == target[0] and value is not None and value >= target[1]

    for index, ref in enumerate(free):  # scored once: nothing to train, nothing to halve
        log(f"[once] {ref} ...")
        out = root / f"once-{index}-{Path(ref).stem}"
        metrics, recipe, error = run_one(ref, out, eval_data, allow_code, run)
        line = {"recipe": ref, "error": error} if error else {**price(metrics, recipe, out, ref), "rung": "once"}
        rows[ref] = line
        rungs.append({"recipe": ref, "rung": "once", "fraction": None, "value": line.get("value"), "training_s": 0.0,
                      "outcome": "error: " + error if error else "scored once (trains nothing)"})
        if reached(line):
            stopped = f"{ref} reached {target[0]} {target[1]:g} without training"
    trials = {ref: study.ask() for ref in trained}
    alive = [] if stopped else list(trained)
    points: dict[str, list[tuple[int, float, float]]] = {ref: [] for ref in trained}
    last_run: dict[str, Path] = {}  # each trained candidate's run on the most rows: where its learning curve is kept
    rung = len(fractions) - 1 if skip_when_clear and len(alive) == 1 else 0  # one trained candidate: nothing to halve
    while alive and not stopped:
        fraction = fractions[rung]
        step = round(fraction / fractions[0])  # the pruner's resource: 1, eta, eta^2, ...
        this_rung = []
        jobs = []
        for ref in alive:
            take = max(1, math.ceil(fraction * sizes[ref]))
            out = root / f"rung{rung}-{trained.index(ref)}-{Path(ref).stem}"
            # a rung is scored once, at its end: no evaluation on the way (the full run keeps the recipe's own)
            pinned = (f"data.max_rows={take}", f"training.eval_every={10**9}") if fraction < 1 else ()
            jobs.append((ref, take, out, pinned))
        runs = _runs(jobs, lambda job, runner: run_one(job[0], job[2], eval_data, allow_code, runner, job[3]), run, workers,
                     f"[rung {rung}: {fraction:.3g} of the training rows]", log)
        for (ref, take, out, pinned), (metrics, recipe, error) in runs:
            if error:
                rows[ref] = {"recipe": ref, "error": error}
                rungs.append({"recipe": ref, "rung": rung, "fraction": fraction, "rows": take, "value": None, "training_s": 0.0,
                              "outcome": "error: " + error})
                study.tell(trials[ref], state=optuna.trial.TrialState.FAIL)
                continue
            line = {**price(metrics, recipe, out, ref), "rung": rung, "fraction": fraction, "train_rows": take}
            last_run[ref] = out
            spent["training_s"] += line["training_s"] or 0.0
            rows[ref] = line
            entry = {"recipe": ref, "rung": rung, "fraction": fraction, "rows": take, "value": line["value"],
                     "training_s": line["training_s"], "outcome": ""}
            rungs.append(entry)
            if line["value"] is not None:
                trials[ref].report(line["value"], step)
                interval = (metrics.get("eval") or {}).get("interval")
                points[ref].append((take, line["value"], standard_error(line["value"], interval,
                                                                         (metrics.get("eval_data") or {}).get("rows"))))
                this_rung.append((ref, entry))
            if reached(line):
                stopped = f"{ref} reached {target[0]} {target[1]:g} on {fraction:.3g} of its training rows"
                break
            stopped = over_budget()
            if stopped:
                break
        if stopped or fraction == 1:
            for ref, entry in this_rung:
                entry["outcome"] = entry["outcome"] or "final"
            break
        kept = _promoted(study, {ref: trials[ref] for ref, _ in this_rung}, rung)
        if not kept and this_rung:  # the pruner keeps at least the best
            kept = [max(this_rung, key=lambda item: item[1]["value"])[0]]
        for ref, entry in this_rung:
            if ref in kept:
                entry["outcome"] = "promoted"
            else:
                entry["outcome"] = f"stopped: not in the best 1/{eta} at this rung"
                study.tell(trials[ref], state=optuna.trial.TrialState.PRUNED)
        alive = kept
        rung += 1
        if skip_when_clear and len(alive) == 1 and fractions[rung] < 1:
            rung = len(fractions) - 1  # the winner is clear: straight to the full data
            next(entry for ref, entry in this_rung if ref == alive[0])["outcome"] = "promoted to the full data: the one trained candidate left"
    for ref in alive:
        trial = trials[ref]
        if study.trials[trial.number].state == optuna.trial.TrialState.RUNNING:
            value = rows.get(ref, {}).get("value")
            study.tell(trial, value if value is not None else float("nan"),
                       state=optuna.trial.TrialState.COMPLETE if value is not None else optuna.trial.TrialState.FAIL)
    for ref, trial in trials.items():
        if study.trials[trial.number].state == optuna.trial.TrialState.RUNNING:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    stopped = stopped or ("no trained candidate" if not trained else "the trained candidates left all ran on the full data"
                          if len(alive) != 1 else f"the winner was clear: {alive[0]} was the one trained candidate left, and "
                          "trained on the full data")
    final = [r for r in rows.values() if finished(r)]
    stopped_early = [r for r in rows.values() if not finished(r)]
    verdict = winner(final, margin, target)
    curves = {}
    for ref, found in points.items():
        fitted = learning_curve(found, sizes[ref])
        if fitted is not None:
            curves[ref] = {**fitted, "method": rows[ref].get("method"), "metric": rows[ref].get("metric")}
            _keep_curve(last_run[ref], curves[ref], log)
    hours = spent["training_s"] / 3600
    spent.update(training_s=round(spent["training_s"], 2), gpu_hours=round(hours, 5), usd=round(hours * gpu_hour_usd, 5))
    result = BakeOff([*final, *stopped_early], rungs, verdict, stopped, spent, curves, folder=root)
    root.mkdir(parents=True, exist_ok=True)
    write_atomic(root / "bakeoff.json", json.dumps(result.to_dict(), indent=2) + "\n")
    return result


def _keep_curve(folder: Path, curve: dict, log) -> None:
    """The curve into the candidate's run folder, and that run's ledger record updated to carry it."""
    from adaptkit import ledger
    from adaptkit.curves import CURVE_FILE

    write_atomic(folder / CURVE_FILE, json.dumps(curve, indent=2) + "\n")
    if not ledger.enabled():
        return
    try:
        ledger.add_run(folder)
    except Exception as exc:  # a locked or unwritable ledger: the bake-off itself is done
        log(f"note: the learning curve of {folder} was not recorded in the ledger ({exc.__class__.__name__})")


def _runs(jobs: list, one, run, workers: int, label: str, log):
    """(job, run_one's result) for each job, in order, each said under `label`. One worker: each runs in this process
    when its turn comes (so a target reached stops the rest). More: all at once, each `adaptkit run` in its own
    process, on its own GPU where there are several (CUDA_VISIBLE_DEVICES), or sharing the CPU cores."""
    if workers == 1 or len(jobs) < 2:
        for job in jobs:
            log(f"{label} {job[0]} ...")
            yield job, one(job, run)
        return
    import os
    import queue
    from concurrent.futures import ThreadPoolExecutor

    from adaptkit.estimator.hardware import detect_gpus

    gpus, _ = detect_gpus()
    count = min(workers, len(jobs), len(gpus) or workers)
    slots: queue.Queue = queue.Queue()
    for index in range(count):
        slots.put(str(index) if gpus else None)
    threads = str(max(1, (os.cpu_count() or 1) // count))
    log(f"{label} {len(jobs)} candidates, {count} at once ...")

    def in_a_process(job):
        device = slots.get()
        try:
            log(f"{label} {job[0]} ...")
            return one(job, _process_runner(device, threads))
        finally:
            slots.put(device)

    with ThreadPoolExecutor(max_workers=count) as pool:
        results = list(pool.map(in_a_process, jobs))
    yield from zip(jobs, results)


def _process_runner(device: str | None, threads: str):
    """adaptkit.run's signature (as run_one calls it), in a child process: `python -m adaptkit run ... --json`."""
    import os
    import subprocess
    import sys
    from types import SimpleNamespace

    from adaptkit.errors import AdaptkitError

    def run(ref, overrides, overwrite=False, allow_code=False):
        command = [sys.executable, "-m", "adaptkit", "run", ref, *overrides, "--json", *(["--overwrite"] if overwrite else []),
                   *(["--allow-code"] if allow_code else [])]
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", threads)}
        if device is not None:
            env["CUDA_VISIBLE_DEVICES"] = device
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            said = [line for line in done.stderr.strip().splitlines() if line.strip()]
            raise AdaptkitError((said or [f"exit {done.returncode}"])[-1].removeprefix("error: "))
        return SimpleNamespace(metrics=json.loads(done.stdout))

    return run
