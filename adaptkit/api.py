"""adaptkit as a library: advise, estimate, run, compare and predict from Python, as the CLI does.

    import adaptkit

    advice = adaptkit.advise({"task": "classification", "goal": "behavior", "weight_access": "open", "labeled_examples": 2000})
    result = adaptkit.run("lora_cls", ["training.max_steps=20", "output_dir=runs/mine"])
    result.eval["accuracy"], result.folder

Every function returns a typed result, raises `adaptkit.AdaptkitError` subclasses (InputError for what the user can
fix), and prints nothing: the CLI (adaptkit.cli) parses, prompts and renders around these calls. The run lifecycle
lives here: checks, consent, the output-folder guard, the relaunch under torchrun / accelerate, saving recipe.yaml and
metrics.json. Importing this module imports no torch; running a recipe does.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

from adaptkit.comparison import Comparison
from adaptkit.errors import AdaptkitError, Cancelled, InputError
from adaptkit.launch import DEFAULT_PORT, MACHINES_ENV, Launch

__all__ = ["advise", "write_recipe", "WrittenRecipe", "estimate", "load_recipe", "dry_run", "run", "predict", "compare", "bakeoff", "tune",
           "cluster_job", "export_run", "Predictions", "Comparison"]

CHILD_ENV = "ADAPTKIT_LAUNCHED"
WORK_ENV = "ADAPTKIT_WORK_DIR"  # where the parent of a multi-process run told its children to write
SHARDED = ("fsdp", "zero2", "zero3")
LAUNCH_CONFIG = "accelerate_config.yaml"  # what run --num-processes writes into the run for training.sharding

Log = Callable[[str], None]


def _kept_inputs(recipe, overrides: Sequence[str]) -> list[str]:
    """Inputs of a built-in recipe the overrides left in place beside ones they replaced in the same block (data.train
    given, data.eval still the built-in's): each named, with how to replace it."""
    from adaptkit.methods.base import path_values

    given = {override.partition("=")[0].strip() for override in overrides}
    inputs = [(dotted, value) for dotted, role, value in path_values(recipe) if role in ("data", "file")]
    replaced = {dotted.rpartition(".")[0] for dotted, _ in inputs if dotted in given}
    lines = []
    for dotted, value in inputs:
        if dotted.rpartition(".")[0] in replaced and dotted not in given:
            hint = (f"; or {dotted}= data.eval_fraction=0.1 to hold out a share of data.train" if dotted == "data.eval" else "")
            lines.append(f"{dotted} is still the built-in recipe's ({value}): set {dotted}=FILE for yours{hint}")
    return lines


def _quiet(line: str) -> None:
    """The default `log`: a library call says nothing."""


# ------------------------------------------------------------------------------------------------ recipes


def load_recipe(recipe: str | os.PathLike, overrides: Sequence[str] = ()):
    """A built-in recipe name or a recipe file, with KEY=VALUE overrides, validated: the recipe object `run` runs."""
    from adaptkit.recipe.load import load_recipe as load

    return load(str(recipe), tuple(overrides))[0]


# ------------------------------------------------------------------------------------------------ advise


def advise(answers: dict | str | os.PathLike | None = None, *, data: str | os.PathLike | None = None,
           detect_gpus: bool = True, ask: Callable[[dict, list, list], dict] | None = None, where: str | None = None,
           evidence: bool = True, **more):
    """Rank the adaptation methods for a task: `answers` as a dict or an answers file (YAML/JSON), `more` as extra
    answers (`labeled_examples=2000`), `data` a data file whose columns and counts fill what it proves (without it, the
    answers' own train_data or raw_text_data file fills what the answers leave out). Returns the
    Advice (recommendations with rationale and sources, ruled-out methods with reasons, `hardware`: the GPUs
    detected). Nothing is asked unless `ask(answers, gpus, notes) -> answers` is given (the CLI's wizard; `notes`:
    what the data file proved): without it, task, goal and weight_access must be given. Runs in the ledger scored on
    the profile's own data rank the methods where they were measured (`advice.evidence` says how); `evidence=False`
    gives the rules alone."""
    from adaptkit.advisor.engine import advise as run_advisor
    from adaptkit.advisor.profile import check_keys, check_values, missing_required, read_answers, resolve

    if isinstance(answers, (str, os.PathLike)):
        where = where or str(answers)
        answers = read_answers(answers)
        check_keys(answers, where)
    answers = dict(answers or {})
    if more:
        check_values(more, "keyword answers")  # a bad keyword is blamed on it, not on the file
        answers.update(more)
    where = where or "answers"
    check_keys(answers, where)
    notes: list[str] = []
    from adaptkit.runners.data_facts import fill_answers

    if data is not None:
        notes += fill_answers(answers, str(data), keep=set(more))  # the file's facts replace a file's answers, not keywords
    else:  # the answers' own data files fill what the answers leave out (their rows, columns, a corpus's tokens)
        given = {k for k, v in answers.items() if v not in (None, "")}  # the user's, not what the first file filled
        for key in ("train_data", "raw_text_data"):
            named = answers.get(key)
            if isinstance(named, str) and Path(named).expanduser().is_file():
                notes += fill_answers(answers, named, keep={k for k, v in answers.items() if v not in (None, "")},
                                      named=given if key == "train_data" else set())  # the columns name the training file's
    gpus, detection = [], "not run"
    if detect_gpus and answers.get("weight_access") in (None, "open") and not {"gpu_vram_gb", "num_gpus"} <= set(answers):
        from adaptkit.estimator.hardware import detect_gpus as detect

        gpus, detection = detect()
    if ask is not None:
        answers = ask(answers, gpus, notes)
    elif missing_required(answers):
        raise InputError(f"{where}: missing {', '.join(missing_required(answers))} (nothing asks for them here): give them "
                         "as answers")
    profile, said = resolve(answers, gpus, where)
    advice = run_advisor(profile, notes + said)
    if evidence:  # runs already measured on this data (the ledger) outrank the rules where they disagree
        from adaptkit.advisor.evidence import apply, measured

        try:
            records = measured(profile)
        except InputError as exc:  # a ledger that cannot be read: the rules alone, and why
            records = []
            advice.notes.append(f"no evidence from the ledger: {exc}")
        advice = apply(advice, records)
    advice.hardware = {"detected_gpus": [{"name": g.name, "memory_gb": g.memory_gb} for g in gpus], "detection": detection}
    return advice


@dataclass
class WrittenRecipe:
    """A recipe `write_recipe` wrote: where, its fields, and notes on what was chosen and why. Path-like: `run(it)`.
    `then`: the recipe to run after it (continued pre-training is followed by instruction tuning), or None."""

    path: Path
    fields: dict
    notes: list[str]
    then: "WrittenRecipe | None" = None

    def __fspath__(self) -> str:
        return str(self.path)

    __str__ = __fspath__  # str(written) is its path, as for a Path


def write_recipe(advice, path: str | os.PathLike, method: str | None = None, force: bool = False) -> WrittenRecipe:
    """Write the runnable recipe for the advice's top trainable method (or `method`) to `path`, its data checked first
    when it is the user's own; `run(written)` runs it. For a raw corpus the plan has two stages: continued
    pre-training at `path`, then instruction tuning at `<stem>.instruct.yaml` beside it (`written.then`)."""
    from adaptkit._files import write_new
    from adaptkit.recipe.emit import pick, plan_for, render
    from adaptkit.recipe.load import relative_inputs, validate

    stages = plan_for(advice, method=method)
    target = Path(path).expanduser()
    targets = [target, target.with_name(f"{target.stem}.instruct{target.suffix or '.yaml'}")][: len(stages)]
    for where in targets if not force else ():  # every file is checked before any is written
        if where.exists():
            raise InputError(f"{where} already exists: choose another name or pass --force to replace it")
    p = advice.profile
    for recipe, _ in stages:
        if p.train_data or p.eval_data or p.raw_text_data:  # the user's own data: check it now, not after the GPU is booked
            from adaptkit.runners.data import load_data

            load_data(validate(recipe, "emitted recipe"))
    if len(stages) == 2:  # stage 2 reads the model stage 1 writes (output_dir is relative to the working folder)
        stage = stages[1][0]
        stage["model"] = os.path.relpath(Path.cwd() / stage["model"], targets[1].parent.resolve())
        stages[0][1].append(f"then: adaptkit run {targets[1]} (instruction tuning of the model this stage makes)")
    written = None
    for (recipe, notes), where in reversed(list(zip(stages, targets))):
        relative_inputs(recipe, where.parent)  # the recipe reads its files from its own folder, wherever it is run from
        write_new(where, render(recipe, advice, notes, str(where), method or pick(advice)), force=force)
        written = WrittenRecipe(where, recipe, notes, then=written)
    return written


# ------------------------------------------------------------------------------------------------ estimate


def estimate(recipe: str | os.PathLike | None = None, overrides: Sequence[str] = (), *, model: str | None = None,
             method: str = "lora_adapters", gpu: str | None = None, gpu_memory_gb: float | None = None,
             num_gpus: int | None = None, tokens: float | None = None, gpu_hour_usd: float | None = None, calibrate: bool = True,
             image_size: tuple[int, int] | None = None, **setup) -> dict:
    """Peak GPU memory per device, compute, time and cost: for what a recipe would run (`recipe` + `overrides`), or for
    `method` on `model` with estimator settings in `setup` (batch_size=4, seq_len=2048, quantization="4bit", ...).
    Returns `adaptkit estimate --json`'s dict: peak_memory_gb, fits, breakdown, suggestions (each with the recipe
    overrides that apply it when a recipe was given). `image_size` (width, height): a vision-language model's image
    tokens for one image of that size, as its processor counts them. With `calibrate`, runs in the ledger measured on
    the same GPU model correct the peak (`calibration` says by how many and how much)."""
    from adaptkit.estimator.architectures import load_model
    from adaptkit.estimator.report import estimate as run_estimate
    from adaptkit.estimator.report import find_device
    from adaptkit.methods.registry import recipe_setup, setup_for, with_recipe_changes
    from adaptkit.models import resolve_model

    device, detected = find_device(gpu, gpu_memory_gb)
    gpus = num_gpus or detected or 1
    if recipe is not None:
        if model is not None or setup or image_size:
            raise InputError("a recipe sets the model and the setup: change the recipe's fields with overrides instead")
        loaded = load_recipe(recipe, overrides)
        chosen = recipe_setup(loaded, gpus)
        result = run_estimate(load_model(resolve_model(loaded.model)), chosen, device, tokens, gpu_hour_usd)
        with_recipe_changes(loaded, result)
        result = calibrated(result, device, loaded.model) if calibrate else result
        return {**result, "model": loaded.model, "recipe": str(recipe), "recipe_overrides": list(overrides)}  # as the recipe names it
    if model is None:
        raise InputError("give a recipe, or a model (hub id, built-in name or local folder) with a method")
    arch = load_model(model)
    if image_size is not None:
        from adaptkit.estimator.architectures import image_tokens_of_size

        setup["image_tokens"] = image_tokens_of_size(arch, image_size, setup.get("image_tokens"))
    result = run_estimate(arch, setup_for(method, num_gpus=gpus, **setup), device, tokens, gpu_hour_usd)
    return calibrated(result, device, model) if calibrate else result


def calibrated(result: dict, device, model: str) -> dict:
    """The estimate corrected by the runs measured on this GPU model (the ledger): the median of their measured over
    predicted peaks, from runs of the same model where there are any, else of any model. One factor for the whole
    peak: runs record their peak, not its parts."""
    from adaptkit import ledger

    if device is None or device.gpu is None or not ledger.enabled():
        return result
    from adaptkit.estimator.compute import find_gpu

    def same_gpu(record) -> bool:
        name = (record.get("device") or "").partition(" ")[2]
        found = find_gpu(name, strict=False) if name else None
        return found is not None and found.name == device.gpu.name

    try:
        measured = [r for r in ledger.rows() if r.get("measured_peak_gb") and r.get("predicted_peak_gb") and same_gpu(r)]
    except InputError:  # a ledger this version cannot read: the plain estimate
        return result
    own = [r for r in measured if r.get("model") == model]
    used = own or measured
    if not used:
        return result
    import statistics

    factor = statistics.median(r["measured_peak_gb"] / r["predicted_peak_gb"] for r in used)
    peak = round(result["peak_memory_gb"] * factor, 2)
    said = (f"calibrated by {len(used)} measured run{'s' if len(used) != 1 else ''} on {device.gpu.name} "
            f"({'this model' if own else 'other models'}): measured peaks were x{factor:.2f} the estimate's, so "
            f"{result['peak_memory_gb']:.2f} GB becomes {peak:.2f} GB (one factor for the whole peak)")
    fits = None if result["device_memory_gb"] is None else peak <= result["device_memory_gb"]
    return {**result, "peak_memory_gb": peak, "fits": fits, "assumptions": [said, *result["assumptions"]],
            "calibration": {"runs": len(used), "gpu": device.gpu.name, "same_model": bool(own), "factor": round(factor, 4),
                            "uncalibrated_peak_gb": result["peak_memory_gb"], "records": [r["id"] for r in used]}}


# ------------------------------------------------------------------------------------------------ run


def run(recipe: str | os.PathLike, overrides: Sequence[str] = (), *, overwrite: bool = False, resume: bool = False,
        stage: str = "all", num_processes: int = 1, accelerate_config: str | None = None, num_machines: int = 1,
        machine_rank: int = 0, main_process_ip: str | None = None, main_process_port: int = DEFAULT_PORT, allow_code: bool = False,
        start_job: bool = False, send_key: bool = False, accept_leakage: bool = False, push_to_hub: str | None = None,
        hub_public: bool = False, hub_license: str = "other",
        confirm: Callable[[str, dict], bool] | None = None, progress: Callable[[int, int], None] | None = None,
        log: Log = _quiet, show_training: bool = False):
    """Train and evaluate a recipe (built-in name or path) with KEY=VALUE overrides, as `adaptkit run` does.

    Returns a RunResult: `metrics` (metrics.json), `eval` (its evaluation figures), `folder` (the finished run),
    `artifacts`. Data problems fail before any weights load; output_dir is never replaced unless `overwrite` (and
    only an adaptkit run); code the recipe names runs only with `allow_code`. `num_processes` > 1 relaunches under
    torchrun (CPU) or accelerate (GPUs) and reads the finished run's metrics; over `num_machines`, it is all machines'
    processes together, and the same call runs on each with its `machine_rank` and machine 0's `main_process_ip`
    (machine 0 writes the run; the others return None). `confirm(tool, arguments)` answers a
    tool-use recipe's state-changing calls (default: refuse them); `send_key` lets backend.api_key_env's key go to a host
    that is not its provider's own; `accept_leakage` runs even when eval rows are also in train (counted in
    metrics.json); `log` receives the notes the CLI prints;
    `show_training` prints the Trainer's progress bar and loss lines on stderr (else a run prints nothing)."""
    from adaptkit.recipe.consent import check_consent, describe_code
    from adaptkit.recipe.load import load_recipe as load
    from adaptkit.runners.data import load_data

    ref = str(recipe)
    launch = Launch(num_processes, num_machines, machine_rank, main_process_ip, main_process_port, accelerate_config)
    loaded, path, builtin = load(ref, tuple(overrides))
    _check_flags(loaded, overwrite, resume, stage, launch.processes, start_job)
    from adaptkit.models import resolve_model

    resolve_model(loaded.model)  # a local model folder that is not one: one line before anything is read
    if loaded.definition.trains and not accelerate_config:
        _check_sharding(loaded, num_processes)
    allowed = allow_code or loaded.allow_code
    check_consent(loaded, allowed)
    if loaded.contacts_backend or start_job:  # the API key leaves this machine: only where it belongs (or consented)
        from adaptkit.recipe.consent import key_destination

        key_destination(loaded, send_key)
    child = os.environ.get(CHILD_ENV) == "1"
    if not child:
        for line in describe_code(loaded, allowed):
            log(f"note: {line}")
    context = RunContext(ref, tuple(overrides), stage, path if not builtin else None)
    kept = _kept_inputs(loaded, overrides) if builtin else []
    try:
        data = load_data(loaded)  # data problems fail here, before any weights load
    except InputError as exc:
        if kept:  # the failing file may be one the user did not choose: say so
            raise InputError(f"{exc} (note: {kept[0]})") from None
        raise
    leaked = getattr(data, "leaked", None) or {}
    if leaked.get("rows") and loaded.data.eval and not accept_leakage:  # a held-out score on training rows overstates the model
        raise InputError(f"{leaked['rows']} of the {leaked['of']} eval rows are also in the training data ({leaked['exact']} exact, "
                         f"{leaked['near']} near duplicates; first: eval row {leaked['first'][0] + 1}): their score would be "
                         "overstated. Remove them from data.eval, or pass --accept-leakage to run anyway (the count goes into "
                         "metrics.json)")
    token = None
    if push_to_hub and not child:
        untrained = not loaded.definition.trains or loaded.adapter == "vendor"
        if untrained or stage != "all":
            raise InputError("--push-to-hub uploads a trained model: this run trains none here" if untrained
                             else "--push-to-hub uploads a finished run: run every stage (drop --stage)")
        from adaptkit.runners.hub import check_push

        token = check_push(push_to_hub)  # offline, no token, refused: said now, not after the GPU hours
    result = _run(loaded, data, context, overwrite, resume, launch, start_job, confirm, progress, log,
                  show_training, kept)
    if token and result is not None:
        from adaptkit.runners.hub import push

        url = push(Path(loaded.output_dir), push_to_hub, token, private=not hub_public, license=hub_license)
        log(f"pushed {loaded.output_dir} to {url}")
    return result


def dry_run(recipe: str | os.PathLike, overrides: Sequence[str] = (), *, gpu: str | None = None, gpu_memory_gb: float | None = None,
            num_processes: int = 1, num_machines: int = 1, machine_rank: int = 0, main_process_ip: str | None = None,
            main_process_port: int = DEFAULT_PORT, accelerate_config: str | None = None, allow_code: bool = False,
            stage: str = "all", resume: bool = False, overwrite: bool = False, start_job: bool = False,
            send_key: bool = False) -> dict:
    """What `run` would do, with no weights loaded: the resolved recipe, the data summary, the memory estimate, the
    launch commands (`adaptkit run --dry-run --json`'s dict)."""
    from adaptkit.recipe.load import load_recipe as load
    from adaptkit.runners.data import load_data
    from adaptkit.runners.dryrun import dry_run as report

    launch = Launch(num_processes, num_machines, machine_rank, main_process_ip or ("$MAIN_IP" if num_machines > 1 else None),
                    main_process_port, accelerate_config)
    loaded, _, _ = load(str(recipe), tuple(overrides))
    _check_flags(loaded, overwrite, resume, stage, launch.processes, start_job)
    from adaptkit.models import resolve_model

    resolve_model(loaded.model)  # a local model folder that is not one: said by the dry run too
    result = report(loaded, load_data(loaded), str(recipe), tuple(overrides), allow_code or loaded.allow_code, gpu, gpu_memory_gb,
                    launch)
    from adaptkit.recipe.consent import key_destination

    line = None
    if loaded.contacts_backend or start_job:  # what the real run would send, and where
        try:
            line = key_destination(loaded, send_key)
        except InputError as exc:
            line = f"the real run refuses: {exc}"
    if line:
        result["code"] = [*result.get("code", []), line]
    return result


def _check_flags(loaded, overwrite: bool, resume: bool, stage: str, num_processes: int, start_job: bool) -> None:
    """The run's options against its recipe: one clear line before anything is read or written."""
    from adaptkit.methods.base import split_batch

    definition = loaded.definition
    if overwrite and resume:
        raise InputError("--overwrite and --resume contradict each other: pick one")
    if stage != "all" and stage not in definition.stages:
        raise InputError(f"--stage {stage}: {loaded.method} has " + (f"the stages {', '.join(definition.stages)}" if definition.stages
                                                                    else "no stages (--stage is for methods trained in stages, like rlhf)"))
    if not definition.trains and (resume or num_processes > 1):
        raise InputError(f"{loaded.method} trains nothing: --resume and --num-processes are for training recipes "
                         "(endpoint requests run in parallel with backend.concurrency)")
    vendor = loaded.adapter == "vendor"
    if start_job and not vendor:
        raise InputError("--start-job starts a vendor's fine-tuning job: this recipe has no `vendor` block")
    if vendor and (resume or num_processes > 1):
        raise InputError("a vendor fine-tuning job trains on the vendor: --resume and --num-processes do not apply")
    if definition.trains and not vendor:  # the global batch must split over the processes: said now, not by every rank
        t = loaded.training
        split_batch(t.batch_size, t.gradient_accumulation, t.batch_scope, num_processes)


class RunContext:
    """How the user asked for this run: for resume commands and the multi-process relaunch."""

    def __init__(self, recipe_ref: str, overrides: tuple[str, ...], stage: str, recipe_file: Path | None):
        self.recipe_ref, self.overrides, self.stage, self.recipe_file = recipe_ref, overrides, stage, recipe_file

    def command(self, *flags: str, stage: str | None = None) -> str:
        stage = stage or self.stage
        return shlex.join(["adaptkit", "run", self.recipe_ref, *self.overrides, *(("--stage", stage) if stage != "all" else ()), *flags])

    def later_stage(self, recipe) -> bool:
        """A later stage of a staged method (RLHF's policy) writes, and replaces, only its own folder in output_dir."""
        return self.stage != "all" and self.stage == recipe.definition.stages[-1]


def _prepare(recipe, context: RunContext, overwrite: bool, resume: bool):
    """The run's folder: where it writes now and where its results end up. Nothing is deleted here."""
    from adaptkit.methods.base import outputs_kept
    from adaptkit.recipe.load import input_paths
    from adaptkit.rundir import RunDir, prepare

    root = Path(recipe.output_dir)
    if os.environ.get(CHILD_ENV) == "1" and os.environ.get(MACHINES_ENV):  # a rank of a run over several machines
        return RunDir(root, _shared_work(os.environ.get(WORK_ENV, "")), resumed=True)
    if os.environ.get(CHILD_ENV) == "1" and os.environ.get(WORK_ENV):  # a relaunched rank: the parent owns the folder
        return RunDir(root, Path(os.environ[WORK_ENV]), resumed=True)
    inputs = input_paths(recipe, context.recipe_file)
    if context.later_stage(recipe):
        return prepare(root / context.stage, context.recipe_ref, overwrite=overwrite, resume=resume, inputs=inputs, owner=root)
    keep = tuple(Path(path) for path in outputs_kept(recipe))  # a RAG index inside output_dir outlives the run
    return prepare(root, context.recipe_ref, overwrite=overwrite, resume=resume, inputs=inputs, keep=keep)


def _guarded(out, run_fn, context: RunContext):
    """Run `run_fn`; on failure remove what it wrote (a checkpoint stays, for --resume); on Ctrl-C say what was kept."""
    from adaptkit.rundir import has_checkpoint
    from adaptkit.runners.core import Interrupted

    try:
        return run_fn()
    except BaseException as exc:
        kept = has_checkpoint(out.work)
        if not kept:
            out.abandon()
        if isinstance(exc, Interrupted):
            where = f"checkpoint saved in {out.work}" + (
                f" (the previous results in {out.final} stay until the resumed run finishes)" if out.staged else "")
            raise Interrupted(exc.step, f"interrupted at step {exc.step}: {where}; resume with: {context.command('--resume')}") from None
        if isinstance(exc, KeyboardInterrupt) or type(exc).__name__ == "Abort":  # Ctrl-C, or at a confirmation prompt
            raise Cancelled(f"cancelled: the checkpoint in {out.work} was kept; resume with: {context.command('--resume')}"
                            if kept else "cancelled: nothing was written") from None
        raise


def _run(recipe, data, context: RunContext, overwrite, resume, launch: Launch, start_job, confirm, progress,
         log: Log, show_training=False, notes: Sequence[str] = ()):
    from adaptkit.methods.base import RunOptions, RunResult
    from adaptkit.methods.registry import import_ref

    child = os.environ.get(CHILD_ENV) == "1"
    if not launch.main and not child:  # another machine of a multi-machine run: it trains; machine 0 owns the folder
        _relaunch(context, resume, launch, None, recipe, log)
        log(f"machine {launch.machine_rank} of {launch.machines} done: machine 0 ({launch.main_ip}) wrote the run to "
            f"{recipe.output_dir} there")
        return None
    out = _prepare(recipe, context, overwrite, resume)
    for line in notes:  # said once the run is going to start (a refused output folder is the one line then)
        log(f"note: {line}")
    staged_stage = context.later_stage(recipe)
    root = Path(recipe.output_dir) if staged_stage else out.work
    if launch.processes > 1 and not child:
        _guarded(out, lambda: _relaunch(context, resume, launch, out.work, recipe, log), context)
        out.commit()
        metrics_file = Path(recipe.output_dir) / "metrics.json"
        metrics = json.loads(metrics_file.read_text(encoding="utf-8")) if metrics_file.is_file() else {}
        if metrics:
            _record(Path(recipe.output_dir), log)
        return RunResult(metrics, folder=Path(recipe.output_dir), stage=context.stage, recipe=recipe)
    options = RunOptions(out=root, resume=resume, stage=context.stage, policy_out=out.work if staged_stage else None,
                         confirm=confirm or (lambda name, arguments: False), progress=progress, start_job=start_job,
                         show_training=show_training)

    def work():
        from contextlib import nullcontext

        bars = nullcontext()  # a trained run's `datasets` bars follow show_training (datasets loads with the runner)
        if recipe.definition.trains:
            from adaptkit.runners.core import dataset_progress

            bars = dataset_progress(show_training)
        with bars:
            result = import_ref(recipe.definition.runner)(recipe, data, options)
        if result is not None and result.stage == "all":
            from adaptkit.runners.data import eval_identity, train_identity

            result.metrics["eval_data"] = eval_identity(recipe, data)  # compare refuses to rank runs scored on different rows
            if getattr(data, "leaked", None):
                result.metrics["eval_data"]["leaked"] = data.leaked  # what of the eval rows is also in train
            trained_on = train_identity(recipe, data)
            if trained_on:
                result.metrics["train_data"] = trained_on  # rows and file hash (and a mix's sources): the ledger's profile facts
            from adaptkit.runners.report import learning_warnings

            warnings = learning_warnings(result.metrics, result.history)
            if warnings:
                result.metrics["warnings"] = warnings
            if recipe.definition.trains:  # what it used, beside what the estimate said it would
                from adaptkit.methods.base import processes
                from adaptkit.runners.resources import finish

                finish(recipe, result.metrics, processes())
            _save(recipe, result.metrics, root)
        return result

    result = _guarded(out, work, context)
    if result is None:  # not the main process
        return None
    if not child:
        out.commit()
        if result.stage == "all":  # recorded where the run now is (a replacement trained beside the old run)
            _record(Path(recipe.output_dir) if staged_stage else Path(out.final), log)
    result.folder, result.recipe = Path(out.final), recipe
    if result.stage != "all":
        result.next = context.command(stage=recipe.definition.stages[-1])
    return result


def _check_sharding(recipe, processes: int) -> None:
    """training.sharding needs processes to shard over, GPUs, and DeepSpeed for ZeRO: said before anything is written."""
    import importlib.util

    from adaptkit.estimator.hardware import detect_gpus

    sharding = recipe.training.sharding
    if sharding not in SHARDED:
        return
    if processes < 2:
        raise InputError(f"training.sharding={sharding} splits the model over processes: run with --num-processes N (2 or more, "
                         "one per GPU), or set training.sharding=none")
    if not detect_gpus()[0]:
        raise InputError(f"training.sharding={sharding} shards over CUDA GPUs and this machine has none: on the CPU use "
                         "training.sharding=ddp (or none)")
    if sharding.startswith("zero") and importlib.util.find_spec("deepspeed") is None:
        raise InputError(f"training.sharding={sharding} is DeepSpeed ZeRO: pip install deepspeed (or use training.sharding=fsdp)")


def _relaunch(context: RunContext, resume, launch: Launch, work: Path | None, recipe, log: Log):
    """Run this same command under torchrun (CPU, gloo) or accelerate launch (GPUs, or a given config), on this machine's
    share of `launch`. A recipe that shards (training.sharding) gets the accelerate config written into the run (or, on
    a machine other than 0, which owns no run folder, into a temporary file) and used. `work` is None on those machines:
    their ranks learn machine 0's folder when they meet."""
    import tempfile

    from adaptkit.estimator.hardware import detect_gpus

    stage = ["--stage", context.stage] if context.stage != "all" else []
    # the parent checked consent and leakage: its children do not ask again
    tail = ["-m", "adaptkit", "run", context.recipe_ref, *context.overrides, *stage, "--allow-code", "--accept-leakage"] + (["--resume"] if resume else [])
    env = {**os.environ, CHILD_ENV: "1", WORK_ENV: str(work or "")}
    with tempfile.TemporaryDirectory(prefix="adaptkit-launch-") as scratch:  # where a machine that owns no run folder keeps the config
        if launch.config is None and recipe.training.sharding in SHARDED:
            from adaptkit._files import write_atomic
            from adaptkit.recipe.export import launch_config

            config = (work or Path(scratch)) / LAUNCH_CONFIG
            write_atomic(config, launch_config(recipe, context.recipe_ref, launch.per_machine, launch.machines))
            launch = replace(launch, config=str(config))
        gpus, _ = detect_gpus()
        command = [sys.executable, *launch.launcher(bool(gpus), port=_free_port()), *tail]
        log("launching: " + shlex.join(command[1:]))
        if launch.machines > 1:
            env[MACHINES_ENV] = str(launch.machines)
            log(f"machine {launch.machine_rank} of {launch.machines}: training starts when every machine has joined at "
                f"{launch.main_ip}:{launch.main_port} (the same command, with its own --machine-rank, on each)")
        process = subprocess.Popen(command, env=env)
        while True:
            try:
                code = process.wait()
                break
            except KeyboardInterrupt:  # the ranks got the same Ctrl-C and are saving a checkpoint: wait for them
                continue
    where = work or f"{recipe.output_dir} on machine 0"
    if code == 130:
        raise Cancelled(f"interrupted: the ranks saved a checkpoint in {where}; resume with: {context.command('--resume')}")
    if code != 0:
        raise AdaptkitError(f"the {launch.processes}-process run failed (exit {code}); its output is above")


def _shared_work(mine: str) -> Path:
    """Machine 0's work folder, told to every rank of a run over several machines when they first meet (the other
    machines' parents own no folder). On a shared file system, as clusters have, every rank writes in the same place."""
    import torch
    import torch.distributed as dist
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())  # joins the process group the launcher set up
    box = [mine if state.is_main_process else None]
    dist.broadcast_object_list(box, src=0)
    return Path(box[0])


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _record(folder: Path, log: Log) -> None:
    """The finished run into the ledger (adaptkit.ledger); a ledger that cannot be written never fails the run."""
    from adaptkit import ledger

    if not ledger.enabled():
        return
    try:
        ledger.add_run(folder)
    except InputError as exc:  # a ledger that cannot be opened says what to do about it
        log(f"note: the run was not recorded in the ledger: {exc}")
    except Exception as exc:  # a locked, full or unwritable ledger: the run itself is done
        log(f"note: the run was not recorded in the ledger {ledger.where()} ({exc.__class__.__name__}: {str(exc)[:80]})")


def _save(recipe, metrics: dict, out: Path) -> None:
    """Every run's last two files: the resolved recipe, then metrics.json (atomically: its presence means finished)."""
    from adaptkit._files import follow_umask, write_atomic
    from adaptkit.recipe.load import as_yaml

    follow_umask(out)  # the weights files too (safetensors writes them 0600)
    write_atomic(out / "recipe.yaml", "# The resolved recipe adaptkit ran (every default written out).\n" + as_yaml(recipe))
    write_atomic(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")


# ------------------------------------------------------------------------------------------------ predict


@dataclass
class Predictions:
    """What `predict` returns: a row per input with its prediction, and the scores where the rows had the answers."""

    rows: list[dict]
    scores: dict | None
    seconds: float
    notes: list[str] = field(default_factory=list)  # why there is no score, where the run's scorer was left out


def predict(run_dir: str | os.PathLike, rows: list[dict] | str | os.PathLike, *, batch_size: int = 32, max_new_tokens: int = 128,
            allow_code: bool = False, trust_remote_code: bool = False, column: str | None = None, answer_column: str | None = None,
            progress: Callable[[int, int], None] | None = None, images_dir: str | os.PathLike | None = None) -> Predictions:
    """Predict with a finished run on rows (dicts) or a data file: a classifier's label and class probabilities, a
    causal LM's greedy answer; scored with the run's scorer where the rows hold the answers. A run folder is data:
    its scorer code runs only with `allow_code` (else no score, and `notes` says why), a model's own code only with
    `trust_remote_code`, whatever its recipe.yaml says. Image and audio rows name files relative to a data file given
    here (else to the working folder); a text-to-image run draws each prompt into `images_dir`. `column` and
    `answer_column` name the rows' own columns for what the model reads and for the answers, where they differ from
    the run's training data."""
    import time

    from adaptkit.runners.predict import load_model, open_run, unscored
    from adaptkit.runners.predict import predict as run_predict

    run_ = open_run(str(run_dir), allow_code, trust_remote_code, drawing=True, column=column, answer_column=answer_column)
    base = None
    if isinstance(rows, (str, os.PathLike)):
        from adaptkit.runners.data import read_rows

        from adaptkit.methods.supervised.media import files_folder

        base = files_folder(str(rows))
        rows = read_rows(str(rows), "train", "predict input")
    loaded = load_model(run_)
    started = time.perf_counter()
    predicted, scores = run_predict(run_, list(rows), batch_size, max_new_tokens, progress or (lambda done, total: None), loaded,
                                    base, Path(images_dir).expanduser() if images_dir else None)
    note = unscored(run_)
    return Predictions(predicted, scores, time.perf_counter() - started, [note] if note else [])


# ------------------------------------------------------------------------------------------------ compare


def compare(recipes: Sequence[str | os.PathLike], *, eval_data: str | None = None, target: tuple[str, float] | None = None,
            margin: float = 0.02, usd_per_1m_input: float = 0.5, usd_per_1m_output: float | None = None, gpu_hour_usd: float = 1.0,
            requests_per_second: float | None = None, horizon_days: float = 30, output_dir: str | os.PathLike = "runs/compare",
            allow_code: bool = False, log: Log = _quiet, overwrite: bool = False) -> Comparison:
    """Run recipes (names or files) and read finished run folders on the same held-out data, and recommend the
    cheapest one within `margin` of the best (or the cheapest reaching `target`, a (metric, value) pair). Writes
    compare.json and compare.png into `output_dir` (an earlier comparison there only with `overwrite`); each recipe runs
    in its own folder there."""
    from adaptkit.comparison import compare_runs

    return compare_runs([str(r) for r in recipes], run=run, eval_data=eval_data, target=target, margin=margin, usd_per_1m_input=usd_per_1m_input,
                        usd_per_1m_output=usd_per_1m_output, gpu_hour_usd=gpu_hour_usd, requests_per_second=requests_per_second,
                        horizon_days=horizon_days, output_dir=str(output_dir), allow_code=allow_code, log=log, overwrite=overwrite)


def bakeoff(recipes: Sequence[str | os.PathLike], *, eval_data: str | None = None, target: tuple[str, float] | None = None,
            margin: float = 0.02, eta: int = 3, rungs: int = 3, fractions: Sequence[float] | None = None, skip_when_clear: bool = True,
            budget_hours: float | None = None, budget_usd: float | None = None, gpu_hour_usd: float = 1.0,
            usd_per_1m_input: float = 0.5, usd_per_1m_output: float | None = None, requests_per_second: float | None = None,
            output_dir: str | os.PathLike = "runs/bakeoff", storage: str | None = None, study: str | None = None,
            allow_code: bool = False, overwrite: bool = False, workers: int = 1, log: Log = _quiet):
    """The early-stopping bake-off: recipes on the same held-out rows as successive halving (training-free ones scored
    once; trained ones on 1/eta^(rungs-1), ..., 1/eta, then all of their training rows, only the best 1/eta of each rung going on),
    stopping at `target`, at the budget, or when one trained candidate is left (it trains on all its rows). Returns a
    BakeOff: compare's rows and recommendation, every rung, the time spent and each trained candidate's learning curve;
    writes bakeoff.json into `output_dir`. Every run is recorded in the ledger. `workers` > 1 trains that many candidates
    of a rung at once, each in its own process (on its own GPU where there are several). With a shared `storage` and a
    `study` name, this process is one worker of a bake-off spread over machines (the same call on each)."""
    if study:
        from adaptkit.halving_shared import bake_off
    else:
        from adaptkit.halving import bake_off
    return bake_off([str(r) for r in recipes], run=run, eval_data=eval_data, target=target, margin=margin, eta=eta, rungs=rungs,
                    fractions=tuple(fractions) if fractions else None, skip_when_clear=skip_when_clear, budget_hours=budget_hours,
                    budget_usd=budget_usd, gpu_hour_usd=gpu_hour_usd, usd_per_1m_input=usd_per_1m_input,
                    usd_per_1m_output=usd_per_1m_output, requests_per_second=requests_per_second, output_dir=str(output_dir),
                    storage=storage, **({"study": study} if study else {}), allow_code=allow_code, overwrite=overwrite,
                    workers=workers, log=log)


def tune(recipe: str | os.PathLike, overrides: Sequence[str] = (), *, trials: int = 12, eta: int = 3, eval_data: str | None = None,
         output: str | None = None, output_dir: str | os.PathLike = "runs/tune", storage: str | None = None, seed: int = 0,
         allow_code: bool = False, overwrite: bool = False, study: str | None = None, log: Log = _quiet):
    """Search a trained recipe's settings (learning rate, epochs, LoRA rank, alpha and targets; `overrides`, KEY=VALUE,
    hold for every trial) with Optuna's TPE sampler and the bake-off's pruner (each trial first on 1/eta of the
    training rows); write the best trial's recipe to `output` (default RECIPE.tuned.yaml). Returns a Tuning (every
    trial, the best, the file written); writes tune.json. With a shared `storage` and a `study` name, several workers
    search one study (the best is the whole study's)."""
    from adaptkit.tuning import tune as run_tune

    return run_tune(str(recipe), tuple(overrides), run=run, trials=trials, eta=eta, eval_data=eval_data, output=output,
                    output_dir=str(output_dir), storage=storage, seed=seed, allow_code=allow_code, overwrite=overwrite, study=study, log=log)


# ------------------------------------------------------------------------------------------------ export


def cluster_job(recipe: str | os.PathLike, overrides: Sequence[str] = (), *, format: str = "slurm", gpus: int = 8, machines: int = 1,
                main_process_port: int = DEFAULT_PORT, time: str = "24:00:00", partition: str | None = None, gpu: str | None = None,
                bucket: str | None = None) -> str:
    """The cluster job that runs a training recipe on `machines` of `gpus` GPUs, as `export --format slurm|skypilot`
    writes it: an sbatch script, or a SkyPilot task (the cheapest GPUs the estimate fits, or `gpu`; `bucket` mounted
    for the run). Every machine runs `adaptkit run` with its rank; a requeued or recovered job resumes."""
    from adaptkit.recipe import jobs
    from adaptkit.recipe.load import load_recipe as load

    if format not in ("slurm", "skypilot"):
        raise InputError(f"format {format}: a cluster job is slurm or skypilot")
    from adaptkit.rundir import refuse_finished_run

    ref = str(recipe)
    refuse_finished_run(ref, format)
    loaded, _, _ = load(ref, tuple(overrides))
    if not loaded.definition.trains or loaded.adapter == "vendor":
        raise InputError(f"--format {format} is a training job on GPUs: {loaded.method} trains nothing on this machine")
    if format == "slurm":
        return jobs.slurm(loaded, ref, tuple(overrides), gpus, machines, port=main_process_port, time=time, partition=partition)
    return jobs.skypilot(loaded, ref, tuple(overrides), gpus, machines, port=main_process_port, gpu=gpu, bucket=bucket)


def export_run(runs: str | os.PathLike | Sequence[str | os.PathLike], output: str | os.PathLike, *, format: str = "onnx",
               quant: str | None = None, max_drop: float = 0.01, log: Log = _quiet) -> dict:
    """A finished run as a deployable artifact in the new folder `output`, as `export RUN --format FORMAT` writes it:
    ONNX (a classifier; `quant` none or int8), GGUF (a causal LM; f16, q8_0 or q4_k_m) or GPTQ/AWQ (a causal LM's
    weights for vLLM by llm-compressor; w4a16 or w8a16), each scored on the run's eval rows beside the trained model
    (the report, also in export_report.json; `within_threshold` false past `max_drop`); or vLLM's serve command and
    a client (several LoRA runs of one base: `runs` a list)."""
    from adaptkit.runners import deploy

    folders = [str(runs)] if isinstance(runs, (str, os.PathLike)) else [str(r) for r in runs]
    if format == "vllm":
        return deploy.export_vllm(folders, str(output))
    if format not in ("onnx", "gguf", "gptq", "awq"):
        raise InputError(f"format {format}: a run exports as onnx, gguf, gptq, awq or vllm")
    if len(folders) != 1:
        raise InputError(f"--format {format} exports one run; {folders[1]} is extra (overrides do not apply to a finished run)")
    if format in ("gptq", "awq"):
        from adaptkit.runners.quantized import export_quantized

        return export_quantized(folders[0], str(output), algorithm=format, quant=quant or "w4a16", max_drop=max_drop, log=log)
    if format == "gguf":
        return deploy.export_gguf(folders[0], str(output), quant=quant or "q8_0", max_drop=max_drop, log=log)
    return deploy.export_onnx(folders[0], str(output), quant=quant or "none", max_drop=max_drop)

