"""The early-stopping bake-off: candidate recipes run on the same held-out rows as successive halving. Training-free
methods are scored once; trained ones train on a small share of the training rows first, and only the better share
(1/eta, Optuna's SuccessiveHalvingPruner deciding from the scores reported at each rung) goes on with more. It stops
when a method reaches the target, when the budget is spent, or when the winner is clear: when one trained candidate
is left it goes straight to the full data. Each trained candidate's rungs are fitted as a learning curve
(adaptkit.curves), which forecasts what more labels would bring. The same table as `compare`, plus every rung.

The runs go one after another in this process, a rung's candidates at once in processes of their own (`workers`),
or over machines through a shared Optuna study (adaptkit.halving_shared). Whichever way, every rung is judged by the
same steps here: each run's result is applied to the bake-off's progress (`apply`), then the rung judged (`judge`)."""

from __future__ import annotations

import json
import math
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from adaptkit._files import write_atomic
from adaptkit.errors import InputError

ETA = 3  # keep the best third at each rung (Hyperband's and ASHA's usual reduction factor)


def fractions_for(eta: int, rungs: int = 3) -> tuple[float, ...]:
    """The training shares of the rungs: 1/eta^(rungs-1), ..., 1/eta, 1."""
    return tuple(1 / eta ** k for k in range(rungs - 1, -1, -1))


def share_said(fraction: float) -> str:
    """A rung's share of the training rows in words: all, 1/3, 1/9 (else its decimal)."""
    from fractions import Fraction

    if fraction >= 1:
        return "all"
    near = Fraction(fraction).limit_denominator(1000)
    return f"1/{near.denominator}" if near.numerator == 1 and abs(float(near) - fraction) < 1e-9 else f"{fraction:.3g}"


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
    study: str | None = None  # a shared study's name (several machines)

    def to_dict(self) -> dict:
        return {"rows": self.rows, "rungs": self.rungs, "recommendation": self.recommendation, "stopped": self.stopped,
                "spent": self.spent, "curves": self.curves, **({"study": self.study} if self.study else {})}


@dataclass
class Plan:
    """What a bake-off was asked: the same on every worker of a shared study (the first one's is kept and compared)."""
    recipes: list[str]
    trained: list[str]
    free: list[str]
    sizes: dict[str, int]  # each trained candidate's training rows, the shares are taken of
    fractions: list[float]
    eta: int
    margin: float
    target: list | None = None  # [metric, value]
    skip_when_clear: bool = True
    budget_hours: float | None = None
    budget_usd: float | None = None
    gpu_hour_usd: float = 1.0
    usd_per_1m_input: float = 0.5
    usd_per_1m_output: float | None = None
    requests_per_second: float | None = None
    eval_data: str | None = None

    def reached(self, line: dict) -> bool:
        value = line.get("value")
        return self.target is not None and line.get("metric") == self.target[0] and value is not None and value >= self.target[1]

    def over_budget(self, seconds: float) -> str:
        hours = seconds / 3600
        if self.budget_hours is not None and hours >= self.budget_hours:
            return f"the budget of {self.budget_hours:g} GPU hours was spent ({hours:.3f} h)"
        if self.budget_usd is not None and hours * self.gpu_hour_usd >= self.budget_usd:
            return f"the budget of ${self.budget_usd:g} was spent (${hours * self.gpu_hour_usd:.4f} of GPU time)"
        return ""


@dataclass
class Progress:
    """What a bake-off knows so far; JSON-able, so that any worker of a shared study can judge the next rung."""
    rows: dict = field(default_factory=dict)  # each candidate's furthest run, as compare's row
    rungs: list = field(default_factory=list)  # every run, in order
    spent: float = 0.0  # training seconds
    points: dict = field(default_factory=dict)  # candidate: [[rows, score, standard error], ...] for its curve
    last_run: dict = field(default_factory=dict)  # each trained candidate's run on the most rows: where its curve is kept
    alive: list = field(default_factory=list)
    rung: int = 0
    stopped: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def make_plan(recipes: list[str], *, eval_data: str | None = None, target: tuple[str, float] | None = None, margin: float = 0.02,
              eta: int = ETA, rungs: int = 3, fractions: tuple[float, ...] | None = None, skip_when_clear: bool = True,
              budget_hours: float | None = None, budget_usd: float | None = None, gpu_hour_usd: float = 1.0,
              usd_per_1m_input: float = 0.5, usd_per_1m_output: float | None = None, requests_per_second: float | None = None) -> Plan:
    """The checked settings and the candidates sorted into trained and training-free (their data read, nothing run)."""
    from adaptkit.comparison import check_same_data, scored_on
    from adaptkit.methods.bakeoff import metric_names
    from adaptkit.recipe.load import load_recipe
    from adaptkit.runners.data import load_data

    if eta < 2:
        raise InputError("--eta must be 2 or more (the share kept at each rung is 1/eta)")
    if rungs < 2:
        raise InputError("--rungs must be 2 or more (a share of the rows, then all of them)")
    fractions = tuple(fractions or fractions_for(eta, rungs))
    if list(fractions) != sorted(set(fractions)) or fractions[0] <= 0 or fractions[-1] != 1:
        raise InputError(f"fractions {list(fractions)}: shares of the training rows, rising, ending at 1 (all of them)")
    if target is not None and target[0] not in metric_names():
        raise InputError(f"target: `{target[0]}` is not a metric a bake-off ranks by (known: {', '.join(metric_names())})")
    seen: dict[str, str] = {}
    for ref in recipes:  # a candidate is a recipe's runs and row: twice would share them
        key = str(Path(ref).resolve()) if Path(ref).is_file() else ref
        if key in seen:
            raise InputError(f"{ref} is listed twice (as {seen[key]} too): give each candidate once")
        seen[key] = ref
    if not eval_data and len(recipes) > 1:
        check_same_data(recipes)
    trained, free, sizes = [], [], {}
    for ref in recipes:
        loaded, _, _ = load_recipe(ref, scored_on(eval_data))  # as its runs read it
        if loaded.definition.trains:
            trained.append(ref)
            sizes[ref] = len(load_data(loaded).train)  # the rows a share is taken of, before anything trains
        else:
            free.append(ref)
    return Plan(list(recipes), trained, free, sizes, list(fractions), eta, margin, list(target) if target else None, skip_when_clear,
                budget_hours, budget_usd, gpu_hour_usd, usd_per_1m_input, usd_per_1m_output, requests_per_second, eval_data)


def start(plan: Plan) -> Progress:
    """The progress before anything ran: every trained candidate alive at the first rung (the last, when there is one)."""
    alive = list(plan.trained)
    rung = len(plan.fractions) - 1 if plan.skip_when_clear and len(alive) == 1 else 0  # one trained candidate: nothing to halve
    return Progress(points={ref: [] for ref in plan.trained}, alive=alive, rung=rung)


def jobs_of(plan: Plan, progress: Progress) -> list[dict]:
    """The runs of the current rung: each alive candidate on its share of the training rows (`name`: its run folder
    under the output folder of whichever worker runs it)."""
    fraction = plan.fractions[progress.rung]
    jobs = []
    for ref in progress.alive:
        take = max(1, math.ceil(fraction * plan.sizes[ref]))
        # a rung is scored once, at its end: no evaluation on the way (the full run keeps the recipe's own)
        pinned = [f"data.max_rows={take}", f"training.eval_every={10**9}"] if fraction < 1 else []
        jobs.append({"kind": "run", "ref": ref, "rung": progress.rung, "fraction": fraction, "take": take,
                     "name": f"rung{progress.rung}-{plan.trained.index(ref)}-{Path(ref).stem}", "pinned": pinned})
    return jobs


def once_jobs(plan: Plan) -> list[dict]:
    """The training-free candidates' runs: each scored once."""
    return [{"kind": "once", "ref": ref, "name": f"once-{index}-{Path(ref).stem}"} for index, ref in enumerate(plan.free)]


def execute(job: dict, plan: Plan, run, allow_code: bool, root: Path) -> dict:
    """Run one job in `root` (its folder's files are read where it ran) and say what came of it, JSON-able."""
    from adaptkit.comparison import run_one, token_counter
    from adaptkit.curves import standard_error
    from adaptkit.methods.bakeoff import row

    out = root / job["name"]
    job = {**job, "out": str(out), "host": socket.gethostname()}
    metrics, recipe, error = run_one(job["ref"], out, plan.eval_data, allow_code, run, tuple(job.get("pinned", ())))
    if error:
        return {**job, "error": error}
    line = row(job["ref"], metrics, recipe or {}, plan.usd_per_1m_input, plan.usd_per_1m_output, plan.gpu_hour_usd,
               plan.requests_per_second, token_counter(out))
    if job["kind"] == "once":
        return {**job, "line": {**line, "rung": "once"}}
    se = None
    if line["value"] is not None:
        se = standard_error(line["value"], (metrics.get("eval") or {}).get("interval"), (metrics.get("eval_data") or {}).get("rows"))
    return {**job, "line": {**line, "rung": job["rung"], "fraction": job["fraction"], "train_rows": job["take"]}, "se": se}


def apply(plan: Plan, progress: Progress, result: dict, trials: dict, optuna) -> int | None:
    """One job's result into the progress (and its score reported to the candidate's Optuna trial); the index of its
    rung entry when it was scored (it takes part in the judging), else None. Sets `stopped` on a target or the budget."""
    ref = result["ref"]
    if result["kind"] == "once":
        line = {"recipe": ref, "error": result["error"]} if "error" in result else result["line"]
        progress.rows[ref] = line
        progress.rungs.append({"recipe": ref, "rung": "once", "fraction": None, "value": line.get("value"), "training_s": 0.0,
                               "outcome": "error: " + result["error"] if "error" in result else "scored once (trains nothing)"})
        if plan.reached(line) and not progress.stopped:
            progress.stopped = f"{ref} reached {plan.target[0]} {plan.target[1]:g} without training"
            progress.alive = []
        return None
    rung, fraction, take = result["rung"], result["fraction"], result["take"]
    if "error" in result:
        progress.rows[ref] = {"recipe": ref, "error": result["error"]}
        progress.rungs.append({"recipe": ref, "rung": rung, "fraction": fraction, "rows": take, "value": None, "training_s": 0.0,
                               "outcome": "error: " + result["error"]})
        trials[ref].study.tell(trials[ref], state=optuna.trial.TrialState.FAIL)
        return None
    line = result["line"]
    progress.last_run[ref] = {"host": result["host"], "folder": result["out"]}
    progress.spent += line["training_s"] or 0.0
    progress.rows[ref] = line
    progress.rungs.append({"recipe": ref, "rung": rung, "fraction": fraction, "rows": take, "value": line["value"],
                           "training_s": line["training_s"], "outcome": ""})
    index = None
    if line["value"] is not None:
        trials[ref].report(line["value"], round(fraction / plan.fractions[0]))  # the pruner's resource: 1, eta, eta^2, ...
        progress.points[ref].append([take, line["value"], result["se"]])
        index = len(progress.rungs) - 1
    if plan.reached(line) and not progress.stopped:
        progress.stopped = f"{ref} reached {plan.target[0]} {plan.target[1]:g} on {fraction:.3g} of its training rows"
    progress.stopped = progress.stopped or plan.over_budget(progress.spent)
    return index


def judge(plan: Plan, progress: Progress, scored: list[int], study, trials: dict, optuna) -> bool:
    """After a rung (its scored entries' indices): True when the bake-off is over (stopped, or the full data run);
    else the best 1/eta promoted (Optuna's pruner) and the progress moved to the next rung."""
    entries = [(progress.rungs[i]["recipe"], progress.rungs[i]) for i in scored]
    if progress.stopped or plan.fractions[progress.rung] == 1:
        for _, entry in entries:
            entry["outcome"] = entry["outcome"] or "final"
        return True
    kept = _promoted(study, {ref: trials[ref] for ref, _ in entries}, progress.rung)
    if not kept and entries:  # the pruner keeps at least the best
        kept = [max(entries, key=lambda item: item[1]["value"])[0]]
    by_score = set(kept)
    kept = in_compare_order(plan, progress, [ref for ref, _ in entries])[: len(kept)]  # as many as the pruner keeps, by compare's rule
    for ref, entry in entries:
        if ref in kept:
            entry["outcome"] = "promoted" if ref in by_score else f"promoted: within {plan.margin:g} of the best and cheaper"
        else:
            entry["outcome"] = (f"stopped: not in the best 1/{plan.eta} at this rung" if ref not in by_score else
                                f"stopped: a cheaper candidate within {plan.margin:g} of it goes on")
            study.tell(trials[ref], state=optuna.trial.TrialState.PRUNED)
    progress.alive = kept
    progress.rung += 1
    if not kept:
        return True
    if plan.skip_when_clear and len(kept) == 1 and plan.fractions[progress.rung] < 1:
        progress.rung = len(plan.fractions) - 1  # the winner is clear: straight to the full data
        next(entry for ref, entry in entries if ref == kept[0])["outcome"] = "promoted to the full data: the one trained candidate left"
    return False


def in_compare_order(plan: Plan, progress: Progress, refs: list[str]) -> list[str]:
    """A rung's scored candidates in the order compare ranks finished runs: those within the margin of the rung's best
    score first, cheapest first (cost tier, then price a request, then training time), then the rest by score. The
    pruner says how many go on; this says which, so a rung calls a near tie as the full runs' comparison would."""
    from adaptkit.methods.bakeoff import cost_order

    rows = {ref: progress.rows[ref] for ref in refs if (progress.rows.get(ref) or {}).get("value") is not None}
    if not rows:
        return []
    best = max(row["value"] for row in rows.values())
    close = sorted((ref for ref, row in rows.items() if row["value"] >= best - plan.margin), key=lambda ref: cost_order(rows[ref]))
    return close + sorted((ref for ref in rows if ref not in close), key=lambda ref: -rows[ref]["value"])


def conclude(plan: Plan, progress: Progress, study, trials: dict, optuna, root: Path, study_name: str | None = None) -> BakeOff:
    """The trials told how they ended, the verdict (compare's rule over the finished rows) and the learning curves: the
    BakeOff, for `write` (each machine keeps the curves of the runs it holds: `keep_local_curves`)."""
    from adaptkit.curves import learning_curve
    from adaptkit.methods.bakeoff import winner

    for ref in progress.alive:
        trial = trials[ref]
        if study.trials[trial.number].state == optuna.trial.TrialState.RUNNING:
            value = progress.rows.get(ref, {}).get("value")
            study.tell(trial, value if value is not None else float("nan"),
                       state=optuna.trial.TrialState.COMPLETE if value is not None else optuna.trial.TrialState.FAIL)
    for ref, trial in trials.items():
        if study.trials[trial.number].state == optuna.trial.TrialState.RUNNING:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    alive = progress.alive
    stopped = progress.stopped or ("no trained candidate" if not plan.trained else "the trained candidates left all ran on the full data"
                                   if len(alive) != 1 else f"the winner was clear: {alive[0]} was the one trained candidate left, and "
                                   "trained on the full data")
    final = [r for r in progress.rows.values() if finished(r)]
    stopped_early = [r for r in progress.rows.values() if not finished(r)]
    target = tuple(plan.target) if plan.target else None
    verdict = winner(final, plan.margin, target)
    curves = {}
    for ref, found in progress.points.items():
        fitted = learning_curve([tuple(p) for p in found], plan.sizes[ref])
        if fitted is not None:
            curves[ref] = {**fitted, "method": progress.rows[ref].get("method"), "metric": progress.rows[ref].get("metric")}
    hours = progress.spent / 3600
    spent = {"training_s": round(progress.spent, 2), "gpu_hours": round(hours, 5), "usd": round(hours * plan.gpu_hour_usd, 5)}
    return BakeOff([*final, *stopped_early], progress.rungs, verdict, stopped, spent, curves, folder=root, study=study_name)


def write(result: BakeOff) -> BakeOff:
    """bakeoff.json into the result's folder."""
    result.folder.mkdir(parents=True, exist_ok=True)
    write_atomic(result.folder / "bakeoff.json", json.dumps(result.to_dict(), indent=2) + "\n")
    return result


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


def pruner(optuna, eta: int):
    """Optuna's successive-halving pruner keeping the best 1/eta at each rung (the bake-off's and tune's)."""
    return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=eta, min_early_stopping_rate=0)


def optuna_or_say():
    try:
        import optuna
    except ImportError:
        raise InputError("the bake-off schedules with Optuna: pip install 'adaptkit[train]' (or pip install optuna)") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def prepare(recipes: list[str], *, output_dir: str = "runs/bakeoff", overwrite: bool = False, **settings) -> tuple[Plan, Path]:
    """(the plan, the output folder): the folder and every setting (make_plan's) checked, the candidates' data read;
    nothing run."""
    from adaptkit.rundir import check_location, expand

    root = expand(output_dir)
    check_location(root, "--output-dir")
    if (root / "bakeoff.json").is_file() and not overwrite:
        raise InputError(f"--output-dir {root} holds an earlier bake-off (bakeoff.json): choose another, or pass --overwrite")
    return make_plan(list(recipes), **settings), root


def bake_off(recipes: list[str], *, run, storage: str | None = None, allow_code: bool = False, workers: int = 1,
             log=lambda line: None, **settings) -> BakeOff:
    """Successive halving over `recipes` on this machine (see the module; `settings`: prepare's); `run` is
    adaptkit.run. `storage`: an Optuna storage URL (sqlite:///bakeoff.db) that keeps the study for later inspection.
    `workers` > 1 trains that many candidates of a rung at once, each `adaptkit run` in its own process, on its own GPU
    where there are several."""
    optuna = optuna_or_say()
    if workers < 1:
        raise InputError("--workers must be 1 or more")
    plan, root = prepare(recipes, **settings)
    searched = optuna.create_study(direction="maximize", storage=storage, study_name=f"adaptkit-bakeoff-{int(time.time())}",
                                   pruner=pruner(optuna, plan.eta))
    progress = start(plan)
    for job in once_jobs(plan):  # scored once: nothing to train, nothing to halve (a target reached: nothing alive)
        log(f"[once] {job['ref']} ...")
        apply(plan, progress, execute(job, plan, run, allow_code, root), {}, optuna)
    trials = {ref: searched.ask() for ref in plan.trained}
    while progress.alive:
        scored = []
        label = f"[rung {progress.rung}: {share_said(plan.fractions[progress.rung])} of the training rows]"
        for job, result in _runs(jobs_of(plan, progress), lambda job, runner: execute(job, plan, runner, allow_code, root), run,
                                 workers, label, log):
            index = apply(plan, progress, result, trials, optuna)
            if index is not None:
                scored.append(index)
            if progress.stopped and workers == 1:
                break  # one after another: the rest of the rung need not run
        if judge(plan, progress, scored, searched, trials, optuna):
            break
    result = conclude(plan, progress, searched, trials, optuna, root, study_name=None)
    keep_local_curves(result.curves, progress.last_run, log)
    return write(result)


def keep_local_curves(curves: dict, last_run: dict, log) -> None:
    """Each curve into its candidate's largest run, where that run is on this machine (a shared study's runs are
    spread over several; bakeoff.json holds every curve)."""
    for ref, curve in curves.items():
        where = last_run.get(ref) or {}
        if where.get("host") == socket.gethostname() and Path(where.get("folder", "")).is_dir():
            _keep_curve(Path(where["folder"]), curve, log)


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
            log(f"{label} {job['ref']} ...")
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
            log(f"{label} {job['ref']} ...")
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
