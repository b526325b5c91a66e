"""`adaptkit run RECIPE [key=value ...]`: train and evaluate a recipe for real.

Every method runs the same way: its definition's data check (before any weights load), its runner (which returns
a RunResult and prints nothing), then the run's recipe.yaml and metrics.json, written here, and a summary.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import threading
from pathlib import Path

import click

from adaptkit.cli._io import progress_line
from adaptkit.errors import AdaptkitError, Cancelled, InputError

CHILD_ENV = "ADAPTKIT_LAUNCHED"
WORK_ENV = "ADAPTKIT_WORK_DIR"  # where the parent of a multi-process run told its children to write


@click.command("run", context_settings={"ignore_unknown_options": False})
@click.argument("recipe")
@click.argument("overrides", nargs=-1)
@click.option("--dry-run", is_flag=True, help="Show the resolved recipe, data summary, memory estimate and launch commands; load no weights.")
@click.option("--gpu", "gpu_name", help="--dry-run: estimate memory on this GPU type (e.g. A100-80GB, 4090). Default: detected.")
@click.option("--gpu-memory-gb", type=click.FloatRange(min=0, min_open=True), help="--dry-run: memory per GPU, when not a listed GPU.")
@click.option("--overwrite", is_flag=True,
              help="Replace an earlier adaptkit run in output_dir; the new run is written beside it and swapped in when it finishes.")
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint in output_dir.")
@click.option("--num-processes", type=click.IntRange(min=1), default=1, show_default=True,
              help="Data-parallel processes: relaunches under accelerate launch (GPUs) or torchrun (CPU, gloo).")
@click.option("--accelerate-config", type=click.Path(exists=True, dir_okay=False), help="An accelerate config file (FSDP, DeepSpeed) for --num-processes.")
@click.option("--stage", default="all", show_default=True, help="Methods in stages (RLHF: reward, policy): run one stage only.")
@click.option("--start-job", is_flag=True, help="A vendor fine-tuning recipe (a `vendor` block): upload the data and start the "
                                                 "paid job (the key from backend.api_key_env). Without it nothing is sent.")
@click.option("--allow-code", is_flag=True, help="Allow the recipe to import and run Python code it names (tools.custom, prompts.scorer).")
@click.option("--push-to-hub", "push_to_hub", metavar="REPO_ID",
              help="Upload the finished run to this Hub model repo (token from HF_TOKEN or the stored login; checked before training).")
@click.option("--hub-public", is_flag=True, help="With --push-to-hub: create the repo public (default: private).")
@click.option("--hub-license", default="other", show_default=True, help="With --push-to-hub: the model card's license field.")
@click.option("--json", "as_json", is_flag=True, help="Print the dry run or the final metrics as JSON.")
def run(recipe, overrides, dry_run, gpu_name, gpu_memory_gb, overwrite, resume, num_processes, accelerate_config, stage, start_job,
        allow_code, push_to_hub, hub_public, hub_license, as_json):
    """Train and evaluate RECIPE (a built-in name or a path), with optional KEY=VALUE overrides.

    Examples:

      adaptkit run lora_cls
      adaptkit run lora_cls training.epochs=1 data.train=my.jsonl data.eval=my_test.jsonl output_dir=runs/mine
      adaptkit run lora_cls --dry-run --gpu 4090
    """
    from adaptkit.recipe.consent import check_consent, describe_code
    from adaptkit.recipe.load import load_recipe
    from adaptkit.runners.data import load_data

    loaded, path, builtin = load_recipe(recipe, overrides)
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
    if (gpu_name or gpu_memory_gb) and not dry_run:
        raise InputError("--gpu and --gpu-memory-gb size the --dry-run's memory estimate; a run uses the GPU it finds")
    if definition.trains and not dry_run and not accelerate_config:
        _check_sharding(loaded, num_processes)
    if definition.trains and not vendor:  # the global batch must split over the processes: said now, not by every rank
        from adaptkit.methods.base import split_batch

        t = loaded.training
        split_batch(t.batch_size, t.gradient_accumulation, t.batch_scope, num_processes)
    allowed = allow_code or loaded.allow_code
    if not dry_run:
        check_consent(loaded, allowed)
        if os.environ.get(CHILD_ENV) != "1":
            for line in describe_code(loaded, allowed):
                click.echo(f"note: {line}", err=True)
    context = RunContext(recipe, tuple(overrides), stage, path if not builtin else None)
    data = load_data(loaded)  # data problems fail here, before any weights load
    token = None
    if push_to_hub and not dry_run and os.environ.get(CHILD_ENV) != "1":
        if not definition.trains or vendor or stage != "all":
            raise InputError("--push-to-hub uploads a trained model: this run trains none here" if not definition.trains or vendor
                             else "--push-to-hub uploads a finished run: run every stage (drop --stage)")
        from adaptkit.runners.hub import check_push

        token = check_push(push_to_hub)  # offline, no token, refused: said now, not after the GPU hours
    if dry_run:
        from adaptkit.runners.dryrun import dry_run as report_dry_run

        report = report_dry_run(loaded, data, recipe, tuple(overrides), allowed, gpu_name, gpu_memory_gb, num_processes)
        if as_json:
            click.echo(json.dumps(report, indent=2, default=str))
            return
        from adaptkit.cli.render import show_dry_run

        show_dry_run(report)
        return
    _run(loaded, data, context, overwrite, resume, num_processes, accelerate_config, as_json, start_job)
    if token:
        from adaptkit.runners.hub import push

        url = push(Path(loaded.output_dir), push_to_hub, token, private=not hub_public, license=hub_license)
        click.echo(f"pushed {loaded.output_dir} to {url}", err=True)


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

    try:
        return run_fn()
    except BaseException as exc:
        from adaptkit.runners.train import Interrupted

        kept = has_checkpoint(out.work)
        if not kept:
            out.abandon()
        if isinstance(exc, Interrupted):
            where = f"checkpoint saved in {out.work}" + (
                f" (the previous results in {out.final} stay until the resumed run finishes)" if out.staged else "")
            raise Interrupted(exc.step, f"interrupted at step {exc.step}: {where}; resume with: {context.command('--resume')}") from None
        if isinstance(exc, (KeyboardInterrupt, click.Abort)):
            raise Cancelled(f"cancelled: the checkpoint in {out.work} was kept; resume with: {context.command('--resume')}"
                            if kept else "cancelled: nothing was written") from None
        raise


def _run(recipe, data, context: RunContext, overwrite, resume, num_processes, accelerate_config, as_json, start_job=False):
    from adaptkit.methods.base import RunOptions
    from adaptkit.methods.registry import import_ref

    child = os.environ.get(CHILD_ENV) == "1"
    out = _prepare(recipe, context, overwrite, resume)
    staged_stage = context.later_stage(recipe)
    root = Path(recipe.output_dir) if staged_stage else out.work
    if num_processes > 1 and not child:
        _guarded(out, lambda: _relaunch(context, resume, num_processes, accelerate_config, out.work, recipe), context)
        out.commit()
        metrics_file = Path(recipe.output_dir) / "metrics.json"
        if metrics_file.is_file():
            text = metrics_file.read_text().rstrip()
            click.echo(text if as_json else f"metrics ({metrics_file}):\n{text}")
        return
    options = RunOptions(out=root, resume=resume, stage=context.stage, policy_out=out.work if staged_stage else None,
                         confirm=_confirmer(recipe), progress=progress_line("embedding", "chunks"), start_job=start_job)

    def work():
        result = import_ref(recipe.definition.runner)(recipe, data, options)
        if result is not None and result.stage == "all":
            from adaptkit.runners.data import eval_identity

            result.metrics["eval_data"] = eval_identity(recipe, data)  # compare refuses to rank runs scored on different rows
            if recipe.definition.trains:  # what it used, beside what the estimate said it would
                from adaptkit.methods.base import processes
                from adaptkit.runners.resources import finish

                finish(recipe, result.metrics, processes())
            _save(recipe, result.metrics, root)
        return result

    result = _guarded(out, work, context)
    if result is None:  # not the main process
        return
    if not child:
        out.commit()
    if result.stage != "all":  # one stage of a staged method: its metrics live with that stage
        click.echo(json.dumps(result.metrics, indent=2) if as_json else
                   f"{result.stage} stage done ({', '.join(f'{k} {v}' for k, v in result.metrics['eval'].items())}); next: "
                   f"{context.command(stage=recipe.definition.stages[-1])}")
        return
    if as_json:
        click.echo(json.dumps(result.metrics, indent=2))
        return
    from adaptkit.cli.render import show_run_summary

    show_run_summary(recipe, result, out.final, err=child)  # a rank's summary goes to stderr: the launcher prints the result


def _confirmer(recipe):
    """Tool use: ask before a state-changing call runs, one question at a time, showing the exact call."""
    tools = getattr(recipe, "tools", None)
    interactive = bool(tools and tools.confirm_changes) and _terminal()
    asking = threading.Lock()  # requests run in parallel; questions do not

    def confirm(name, arguments):
        if not interactive:
            return False
        with asking:
            call = f"{name}({json.dumps(arguments, ensure_ascii=True)})"
            click.echo(f"\nthe model asks to run a state-changing tool:\n  {call}", err=True)
            return click.confirm(f"run {name} with exactly these arguments?", default=False, err=True)

    return confirm


def _terminal() -> bool:
    """Someone at a terminal can answer a confirmation."""
    return sys.stdin.isatty()


SHARDED = ("fsdp", "zero2", "zero3")
LAUNCH_CONFIG = "accelerate_config.yaml"  # what run --num-processes writes into the run for training.sharding


def _check_sharding(recipe, processes: int) -> None:
    """training.sharding needs processes to shard over, GPUs, and DeepSpeed for ZeRO: said before anything is written."""
    import importlib.util

    from adaptkit.estimate.hardware import detect_gpus

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


def _relaunch(context: RunContext, resume, processes, accelerate_config, work: Path, recipe=None):
    """Run this same command under torchrun (CPU, gloo) or accelerate launch (GPUs, or a given config). A recipe that
    shards (training.sharding) gets the accelerate config written into the run and used."""
    from adaptkit.estimate.hardware import detect_gpus

    if accelerate_config is None and recipe is not None and recipe.training.sharding in SHARDED:
        from adaptkit._files import write_atomic
        from adaptkit.recipe.export import launch_config

        accelerate_config = str(work / LAUNCH_CONFIG)
        write_atomic(Path(accelerate_config), launch_config(recipe, context.recipe_ref, processes))
    stage = ["--stage", context.stage] if context.stage != "all" else []
    tail = ["-m", "adaptkit", "run", context.recipe_ref, *context.overrides, *stage, "--allow-code"] + (["--resume"] if resume else [])
    gpus, _ = detect_gpus()
    if gpus or accelerate_config:
        command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(processes)]
        command += ["--config_file", accelerate_config] if accelerate_config else ["--multi_gpu"]
    else:  # one machine over loopback by address: no name lookup of `localhost`, which some sandboxes cannot do
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes), "--nnodes", "1",
                   "--master_addr", "127.0.0.1", "--master_port", str(_free_port())]
    command += tail
    click.echo("launching: " + shlex.join(command[1:]), err=True)
    process = subprocess.Popen(command, env={**os.environ, CHILD_ENV: "1", WORK_ENV: str(work)})
    while True:
        try:
            code = process.wait()
            break
        except KeyboardInterrupt:  # the ranks got the same Ctrl-C and are saving a checkpoint: wait for them
            continue
    if code == 130:
        raise Cancelled(f"interrupted: the ranks saved a checkpoint in {work}; resume with: {context.command('--resume')}")
    if code != 0:
        raise AdaptkitError(f"the {processes}-process run failed (exit {code}); its output is above")


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _save(recipe, metrics: dict, out: Path) -> None:
    """Every run's last two files: the resolved recipe, then metrics.json (atomically: its presence means finished)."""
    from adaptkit._files import write_atomic
    from adaptkit.recipe.load import as_yaml

    write_atomic(out / "recipe.yaml", "# The resolved recipe adaptkit ran (every default written out).\n" + as_yaml(recipe))
    write_atomic(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
