"""A bake-off spread over machines through a shared Optuna study: `adaptkit bakeoff RECIPES --storage URL --study NAME`
on each machine (one process per GPU), with the same recipes and settings. Every process is a worker.

- The first worker to create study NAME sets it up: one Optuna trial per trained candidate (the pruner's, as in a
  bake-off on one machine), and the first rung's runs queued in a second study, NAME:jobs, as Optuna's enqueued
  trials. A later worker joins, after checking that it was asked the same.
- Workers take queued runs one at a time (Optuna hands each waiting trial to one `ask()`); a run's result (compare's
  row for it) goes back into its trial. Behind each rung's runs a judging job is queued: the worker that takes it
  waits for the rung to finish (running what is still waiting meanwhile), applies the results, judges the rung with
  the pruner (adaptkit.halving's own steps), and queues the next rung, or writes the bake-off's result into the study.
- A worker that dies stops sending Optuna heartbeats; after GRACE_S its run is failed and queued again (Optuna's
  RetryFailedTrialCallback) for another worker.
- Each worker writes its runs under its own --output-dir and, at the end, the same bakeoff.json."""

from __future__ import annotations

import contextlib
import threading
import time
import warnings
from dataclasses import asdict
from pathlib import Path

from adaptkit.errors import InputError

POLL_S = 1.0  # how often an idle worker looks for work
HEARTBEAT_S = 20  # a working worker's heartbeat
GRACE_S = 120  # no heartbeat for this long: the worker is taken for dead and its run queued again
SETUP_WAIT_S = 120  # how long a joining worker waits for the first to set the study up
COMPARED = ("recipes", "sizes", "eta", "fractions", "margin", "target", "skip_when_clear", "budget_hours", "budget_usd",
            "gpu_hour_usd", "eval_data")  # what every worker must have been asked alike


def storage_of(optuna, url: str):
    """The shared storage, with heartbeats (a dead worker's run is queued again, twice at most)."""
    def made():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna marks heartbeats and the retry callback experimental
            return optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                                              heartbeat_stale_trial_callback=optuna.storages.RetryFailedTrialCallback(max_retry=2))

    return opened(made, url)


def opened(call, url: str | None):
    """`call()`, which opens a study or storage at `url`: retried while another worker is creating the same database
    tables; a malformed URL, a missing driver or an unreachable database is one line."""
    for attempt in range(6):
        try:
            return call()
        except (ValueError, ImportError, RuntimeError) as exc:
            raise InputError(f"--storage {url}: {exc.__class__.__name__}: {str(exc).splitlines()[0][:160]}") from None
        except Exception as exc:
            if not exc.__class__.__module__.startswith("sqlalchemy"):
                raise
            racing = exc.__class__.__name__ in ("IntegrityError", "OperationalError") and "unable to open" not in str(exc)
            if not racing or attempt == 5:
                raise InputError(f"--storage {url}: {exc.__class__.__name__}: {str(exc).splitlines()[0][:160]}") from None
            time.sleep(0.5 * (attempt + 1))


def join(plan, storage, name: str):
    """(study, queue, leader): the bake-off's study and its job queue, created and set up by the first worker, else
    joined once set up, with this worker's settings checked against the first's."""
    import optuna

    from adaptkit.halving import once_jobs, pruner, start

    try:
        study = opened(lambda: optuna.create_study(study_name=name, storage=storage, direction="maximize",
                                                   pruner=pruner(optuna, plan.eta)), storage.url)
        leader = True
    except optuna.exceptions.DuplicatedStudyError:
        study, leader = optuna.load_study(study_name=name, storage=storage, pruner=pruner(optuna, plan.eta)), False
    queue = opened(lambda: optuna.create_study(study_name=f"{name}:jobs", storage=storage, load_if_exists=True), storage.url)
    if leader:
        numbers = {}
        for ref in plan.trained:
            numbers[ref] = study.ask().number
        progress = start(plan)
        study.set_user_attr("plan", asdict(plan))
        study.set_user_attr("candidates", numbers)
        study.set_user_attr("progress", progress.to_dict())
        _queue_rung(queue, plan, progress, once_jobs(plan))
        study.set_user_attr("ready", True)
        return study, queue, True
    waited = 0.0
    while not study.user_attrs.get("ready"):
        if waited >= SETUP_WAIT_S:
            raise InputError(f"--study {name}: the study exists but its first worker never finished setting it up (it stopped?): "
                             "start again with a new --study name")
        time.sleep(POLL_S)
        waited += POLL_S
    theirs = study.user_attrs["plan"]
    mine = asdict(plan)
    for key in COMPARED:
        if theirs.get(key) != mine.get(key):
            raise InputError(f"--study {name} was started with other settings ({key}: {theirs.get(key)!r} there, {mine.get(key)!r} "
                             "here): run the same bakeoff command on every machine, or use a new --study name")
    return study, queue, False


def _queue_rung(queue, plan, progress, first: list[dict]) -> None:
    """The current rung's runs (after `first`, the training-free ones at the start), then its judging job, in order:
    Optuna hands out waiting trials oldest first, so the judge is taken after every run of its rung was."""
    from adaptkit.halving import jobs_of

    jobs = [*first, *(jobs_of(plan, progress) if progress.alive else [])]
    for order, job in enumerate(jobs):
        queue.enqueue_trial({}, user_attrs={"job": {**job, "batch": progress.rung, "order": order}})
    queue.enqueue_trial({}, user_attrs={"job": {"kind": "judge", "batch": progress.rung, "runs": len(jobs)}})


def bake_off(recipes: list[str], *, run, storage: str | None, study: str, allow_code: bool = False, workers: int = 1,
             log=lambda line: None, **settings):
    """This process as one worker of the bake-off shared as `study` in `storage` (settings: adaptkit.halving.prepare's),
    until it is over: its BakeOff (the same on every worker), written into this worker's output folder."""
    from adaptkit.halving import optuna_or_say, prepare, write

    optuna_or_say()
    if not storage:
        raise InputError("--study names a bake-off shared by several machines in one --storage (a database every machine "
                         "reaches, or sqlite:/// on a shared disk): give --storage too")
    if workers > 1:
        raise InputError("--workers trains a rung's candidates at once on this machine; with --study every process is a worker: "
                         "start one `adaptkit bakeoff ... --study NAME` per GPU (CUDA_VISIBLE_DEVICES) on each machine")
    plan, root = prepare(recipes, **settings)
    return write(work(plan, root, storage, study, run=run, allow_code=allow_code, log=log))


def work(plan, root: Path, url: str, name: str, *, run, allow_code: bool, log):
    """This process as one worker of study NAME, until the bake-off is over: its BakeOff (the same on every worker)."""
    import optuna

    storage = storage_of(optuna, url)
    with warnings.catch_warnings():  # Optuna would have heartbeats used through Study.optimize; ask and tell serve here
        warnings.filterwarnings("ignore", message="Heartbeat of storage")
        study, queue, leader = join(plan, storage, name)
        log(f"[study {name}] {'started' if leader else 'joined'}: {len(plan.trained)} trained and {len(plan.free)} training-free "
            "candidates")
        return _loop(plan, study, queue, storage, root, name, run, allow_code, log)


def _loop(plan, study, queue, storage, root: Path, name: str, run, allow_code: bool, log):
    import optuna

    while True:
        said = study.user_attrs
        if said.get("failed"):
            raise InputError(said["failed"])
        if said.get("result") is not None:
            return _finished(said["result"], study, root, name, log)
        trial = _take(queue, optuna)
        if trial is None:
            _reclaim(queue)
            time.sleep(POLL_S)
            continue
        job = trial.user_attrs["job"]
        with _heartbeat(storage, trial):
            if job["kind"] == "judge":
                _judge(plan, study, queue, trial, job, root, run, allow_code, storage, log)
            else:
                _run(plan, queue, trial, job, root, run, allow_code, log)


def _take(queue, optuna):
    """A waiting job's trial, now this worker's; None when there is none. Optuna's ask() hands each waiting trial to one
    worker; when another took the last between the look and the ask, the fresh trial it made instead is closed."""
    if not queue.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)):
        return None
    trial = queue.ask()
    if "job" not in trial.user_attrs:
        trial.set_user_attr("idle", True)
        queue.tell(trial, state=optuna.trial.TrialState.FAIL)
        return None
    return trial


def _reclaim(queue) -> None:
    """Fail the runs whose worker stopped sending heartbeats; Optuna's callback queues each again."""
    from optuna.storages import fail_stale_trials

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fail_stale_trials(queue)


@contextlib.contextmanager
def _heartbeat(storage, trial):
    """Heartbeats for `trial` while this worker holds it."""
    done = threading.Event()

    def beat():
        while not done.is_set():
            with contextlib.suppress(Exception):  # a busy database: the next beat will do
                storage.record_heartbeat(trial._trial_id)
            done.wait(HEARTBEAT_S)

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _run(plan, queue, trial, job: dict, root: Path, run, allow_code: bool, log) -> None:
    import optuna

    from adaptkit.halving import execute

    where = "once" if job["kind"] == "once" else f"rung {job['rung']}: {job['fraction']:.3g} of the training rows"
    log(f"[{where}] {job['ref']} ...")
    result = execute(job, plan, run, allow_code, root)
    try:
        trial.set_user_attr("result", result)
        queue.tell(trial, 0.0)
    except optuna.exceptions.UpdateFinishedTrialError:
        log(f"note: {job['ref']}'s run took over {GRACE_S} s without a heartbeat; another worker runs it again")


def _judge(plan, study, queue, trial, job: dict, root: Path, run, allow_code: bool, storage, log) -> None:
    """Wait for the rung's runs (running what still waits), apply their results, judge the rung; queue the next rung
    or write the result. A judging job queued again after its worker stopped finishes what that worker left."""
    import optuna

    from adaptkit.halving import Progress

    progress = Progress(**study.user_attrs["progress"])
    if study.user_attrs.get("result") is not None or progress.rung != job["batch"]:  # judged already
        if study.user_attrs.get("result") is None and not _batch(queue, progress.rung):
            _queue_rung(queue, plan, progress, [])  # the judge stopped between saving the progress and queueing
        queue.tell(trial, 0.0)
        return
    state = optuna.trial.TrialState
    while True:
        runs = [t for t in _batch(queue, job["batch"]) if t.user_attrs["job"]["kind"] != "judge"]
        done = {t.user_attrs["job"]["order"]: t.user_attrs["result"] for t in runs if t.state == state.COMPLETE and "result" in t.user_attrs}
        if len(done) == job["runs"]:
            break
        waiting = _take(queue, optuna)
        if waiting is not None:
            with _heartbeat(storage, waiting):
                if waiting.user_attrs["job"]["kind"] == "judge":  # a judge queued again: this one judges already
                    queue.tell(waiting, 0.0)
                else:
                    _run(plan, queue, waiting, waiting.user_attrs["job"], root, run, allow_code, log)
            continue
        if any(t.state in (state.RUNNING, state.WAITING) for t in runs):
            _reclaim(queue)
            time.sleep(POLL_S)
            continue
        failed = (f"study {study.study_name}: a run of rung {job['batch']} was lost on every worker it was given to (each stopped "
                  "sending heartbeats); see the workers' logs, and start again with a new --study name")
        study.set_user_attr("failed", failed)
        raise InputError(failed)
    try:
        _settle(plan, study, queue, progress, done, job, root, log)
    except optuna.exceptions.UpdateFinishedTrialError:
        failed = (f"study {study.study_name}: rung {job['batch']} was judged in part by a worker that stopped; start again with a new "
                  "--study name (every run is kept in the workers' output folders)")
        study.set_user_attr("failed", failed)
        raise InputError(failed) from None
    queue.tell(trial, 0.0)


def _settle(plan, study, queue, progress, done: dict, job: dict, root: Path, log) -> None:
    """The rung's results applied and judged (adaptkit.halving's steps); the progress saved, then the next rung queued,
    or the bake-off's result written into the study."""
    import optuna

    from adaptkit.halving import apply, conclude, judge

    trials = {ref: optuna.trial.Trial(study, study.trials[number]._trial_id) for ref, number in study.user_attrs["candidates"].items()}
    scored = []
    for order in sorted(done):
        index = apply(plan, progress, done[order], trials, optuna)
        if index is not None:
            scored.append(index)
    over = judge(plan, progress, scored, study, trials, optuna)
    result = conclude(plan, progress, study, trials, optuna, root, study_name=study.study_name) if over else None
    study.set_user_attr("progress", progress.to_dict())
    if result is not None:  # every worker, this one too, takes it from the study (_finished)
        study.set_user_attr("result", result.to_dict())
        return
    _queue_rung(queue, plan, progress, [])
    log(f"[study {study.study_name}] rung {job['batch']} judged: {', '.join(Path(r).stem for r in progress.alive)} go on")


def _batch(queue, batch: int) -> list:
    """The queue's jobs of one rung (its runs and its judge, with any queued again)."""
    return [t for t in queue.get_trials(deepcopy=False) if (t.user_attrs.get("job") or {}).get("batch") == batch]


def _finished(result: dict, study, root: Path, name: str, log):
    """The bake-off's result as this worker's BakeOff; the learning curves kept in the runs this machine holds."""
    from adaptkit.halving import BakeOff, keep_local_curves

    progress = study.user_attrs.get("progress") or {}
    keep_local_curves(result.get("curves") or {}, progress.get("last_run") or {}, log)
    return BakeOff(result["rows"], result["rungs"], result["recommendation"], result["stopped"], result["spent"],
                   result.get("curves") or {}, folder=root, study=name)
