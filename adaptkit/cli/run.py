"""`adaptkit run RECIPE [key=value ...]`: train and evaluate a recipe for real."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import threading
from pathlib import Path

import click

from adaptkit.errors import AdaptkitError, Cancelled, InputError

CHILD_ENV = "ADAPTKIT_LAUNCHED"
WORK_ENV = "ADAPTKIT_WORK_DIR"  # where the parent of a multi-process run told its children to write


@click.command("run", context_settings={"ignore_unknown_options": False})
@click.argument("recipe")
@click.argument("overrides", nargs=-1)
@click.option("--dry-run", is_flag=True, help="Show the resolved recipe, data summary, memory estimate and launch commands; load no weights.")
@click.option("--overwrite", is_flag=True,
              help="Replace an earlier adaptkit run in output_dir; the new run is written beside it and swapped in when it finishes.")
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint in output_dir.")
@click.option("--num-processes", type=click.IntRange(min=1), default=1, show_default=True,
              help="Data-parallel processes: relaunches under accelerate launch (GPUs) or torchrun (CPU, gloo).")
@click.option("--accelerate-config", type=click.Path(exists=True, dir_okay=False), help="An accelerate config file (FSDP, DeepSpeed) for --num-processes.")
@click.option("--stage", type=click.Choice(["all", "reward", "policy"]), default="all", show_default=True,
              help="RLHF only: train the reward model, the policy (reusing the reward model), or both.")
@click.option("--allow-code", is_flag=True, help="Allow the recipe to import and run Python code it names (tools.custom, prompts.scorer).")
@click.option("--json", "as_json", is_flag=True, help="Print the dry run or the final metrics as JSON.")
def run(recipe, overrides, dry_run, overwrite, resume, num_processes, accelerate_config, stage, allow_code, as_json):
    """Train and evaluate RECIPE (a built-in name or a path), with optional KEY=VALUE overrides.

    Examples:

      adaptkit run lora_cls
      adaptkit run lora_cls training.epochs=1 data.train=my.jsonl data.eval=my_test.jsonl output_dir=runs/mine
      adaptkit run lora_cls --dry-run
    """
    from adaptkit.recipe.consent import check_consent, describe_code
    from adaptkit.recipe.load import load_recipe

    loaded, path, builtin = load_recipe(recipe, overrides)
    if overwrite and resume:
        raise InputError("--overwrite and --resume contradict each other: pick one")
    if stage != "all" and loaded.method != "rlhf":
        raise InputError(f"--stage is for rlhf recipes; this one is {loaded.method}")
    if loaded.method in ("rag", "prompt_engineering", "in_context_learning", "tool_use") and (resume or num_processes > 1):
        raise InputError(f"{loaded.method} trains nothing: --resume and --num-processes are for training recipes "
                         "(endpoint requests run in parallel with backend.concurrency)")
    allowed = allow_code or loaded.allow_code
    if not dry_run:
        check_consent(loaded, allowed)
        if os.environ.get(CHILD_ENV) != "1":
            for line in describe_code(loaded, allowed):
                click.echo(f"note: {line}", err=True)
    context = RunContext(recipe, tuple(overrides), stage, path if not builtin else None)
    if loaded.method in ("rag", "prompt_engineering", "in_context_learning", "tool_use"):
        TRAINING_FREE[loaded.method](loaded, context, dry_run, overwrite, allowed, as_json)
        return
    from adaptkit.runners.data import load_splits

    splits = load_splits(loaded)  # data problems fail here, before any weights load
    if dry_run:
        _dry_run(loaded, splits, context, allowed, as_json)
        return
    _train(loaded, splits, context, overwrite, resume, num_processes, accelerate_config, as_json)


class RunContext:
    """How the user asked for this run: for resume commands and the multi-process relaunch."""

    def __init__(self, recipe_ref: str, overrides: tuple[str, ...], stage: str, recipe_file: Path | None):
        self.recipe_ref, self.overrides, self.stage, self.recipe_file = recipe_ref, overrides, stage, recipe_file

    def command(self, *flags: str) -> str:
        stage = ("--stage", self.stage) if self.stage != "all" else ()
        return shlex.join(["adaptkit", "run", self.recipe_ref, *self.overrides, *stage, *flags])


def _prepare(recipe, context: RunContext, overwrite: bool, resume: bool = False, keep: tuple[Path, ...] = ()):
    """The run's folder: where it writes now and where its results end up. Nothing is deleted here."""
    from adaptkit.recipe.load import input_paths
    from adaptkit.rundir import RunDir, prepare

    root = Path(recipe.output_dir)
    if os.environ.get(CHILD_ENV) == "1" and os.environ.get(WORK_ENV):  # a relaunched rank: the parent owns the folder
        return RunDir(root, Path(os.environ[WORK_ENV]), resumed=True)
    inputs = input_paths(recipe, context.recipe_file)
    if context.stage == "policy":  # RLHF: replace the policy of a run whose reward model stays
        return prepare(root / "policy", context.recipe_ref, overwrite=overwrite, resume=resume, inputs=inputs, owner=root)
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


def _train(recipe, splits, context: RunContext, overwrite, resume, num_processes, accelerate_config, as_json):
    child = os.environ.get(CHILD_ENV) == "1"
    out = _prepare(recipe, context, overwrite, resume)
    root = out.work if context.stage != "policy" else Path(recipe.output_dir)
    policy_out = out.work if context.stage == "policy" else None
    if num_processes > 1 and not child:
        _guarded(out, lambda: _relaunch(context, resume, num_processes, accelerate_config, out.work), context)
        out.commit()
        metrics_file = Path(recipe.output_dir) / "metrics.json"
        if metrics_file.is_file():
            text = metrics_file.read_text().rstrip()
            click.echo(text if as_json else f"metrics ({metrics_file}):\n{text}")
        return

    def work():
        from adaptkit.runners.models import resolve_model
        from adaptkit.runners.report import write_outputs
        from adaptkit.runners.train import RunOptions, train

        options = RunOptions(out=root, resume=resume, policy_out=policy_out)
        if recipe.method == "dpo":
            from adaptkit.runners.preference import run_dpo

            metrics = run_dpo(recipe, splits, options)
        elif recipe.method == "rlhf":
            from adaptkit.runners.preference import run_rlhf

            metrics = run_rlhf(recipe, splits, options, context.stage)
        else:
            metrics = train(recipe, splits, options)
        if metrics is not None and metrics.get("stage") != "reward":
            write_outputs(recipe, metrics, splits.labels, resolve_model(recipe.model), root)
        return metrics

    metrics = _guarded(out, work, context)
    if metrics is None:  # not the main process
        return
    if not child:
        out.commit()
    if metrics.pop("stage", None) == "reward":  # a reward-only run: its metrics live with the reward model
        metrics.pop("_log_history", None)
        click.echo(json.dumps(metrics, indent=2) if as_json else
                   f"reward model trained: pairwise accuracy {metrics['eval']['reward_model_accuracy']}; next: "
                   f"{shlex.join(['adaptkit', 'run', context.recipe_ref, *context.overrides, '--stage', 'policy'])}")
        return
    if as_json:
        click.echo(json.dumps(metrics, indent=2))
    else:
        from adaptkit.cli.render import show_run_summary

        show_run_summary(recipe, metrics)


def _relaunch(context: RunContext, resume, processes, accelerate_config, work: Path):
    """Run this same command under torchrun (CPU, gloo) or accelerate launch (GPUs, or a given config)."""
    from adaptkit.estimate.hardware import detect_gpus

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


def _dry_run(recipe, splits, context: RunContext, allowed: bool, as_json: bool):
    from adaptkit.runners.dryrun import dry_run

    report = dry_run(recipe, splits, context.recipe_ref, context.overrides, allowed)
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
        return
    from adaptkit.cli.render import show_dry_run

    show_dry_run(report)


def _training_free(recipe, context: RunContext, overwrite: bool, run_fn, keep: tuple[Path, ...] = ()) -> tuple[dict, Path]:
    """Run a training-free recipe into a safely prepared folder; write its recipe and metrics; swap it into place."""
    out = _prepare(recipe, context, overwrite, keep=keep)

    def work():
        metrics = run_fn(out.work)
        _save(recipe, metrics, out.work)
        return metrics

    metrics = _guarded(out, work, context)
    out.commit()
    return metrics, out.final


def _dry_report(recipe, context: RunContext, data: dict, allowed: bool, local_memory: bool = True) -> dict:
    from adaptkit.recipe.consent import describe_code
    from adaptkit.recipe.load import as_yaml
    from adaptkit.runners.dryrun import memory, output_note

    report = {"recipe": as_yaml(recipe), "data": data,
              "memory": memory(recipe) if local_memory else {"note": "served by the endpoint"},
              "code": describe_code(recipe, allowed),
              "commands": {"run": shlex.join(["adaptkit", "run", context.recipe_ref, *context.overrides])}}
    note = output_note(recipe)
    if note:
        report["output"] = note
    return report


def _print_dry(report: dict, as_json: bool, shown: dict) -> None:
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
        return
    for line in report["code"]:
        click.echo(f"note: {line}")
    if report.get("output"):
        click.echo(f"note: {report['output']}")
    click.echo("\n".join(f"{k}: {v}" for k, v in shown.items()))


def _run_rag(recipe, context: RunContext, dry_run, overwrite, allowed, as_json):
    from adaptkit.runners.data import check_questions

    questions = check_questions(recipe)
    corpus = Path(recipe.rag.corpus)
    if not corpus.is_dir():
        raise InputError(f"rag.corpus: {corpus} is not a folder")
    index_dir = Path(recipe.rag.index_dir)
    if index_dir.resolve() == Path(recipe.output_dir).resolve():
        raise InputError("rag.index_dir is output_dir itself: put the index in a folder of its own (e.g. OUTPUT_DIR/index)")
    if dry_run:
        from adaptkit.runners.rag import corpus_files, index_status

        files, skipped = corpus_files(corpus)
        data = {"questions": len(questions), "corpus_files": len(files), "skipped": [f"{p}: {why}" for p, why in skipped],
                "index": str(index_dir), "index_status": index_status(index_dir)}
        _print_dry(_dry_report(recipe, context, data, allowed), as_json, data)
        return
    from adaptkit.runners.backends import make_backend
    from adaptkit.runners.rag import run_rag

    metrics, out = _training_free(recipe, context, overwrite,
                                  lambda work: run_rag(recipe, questions, lambda: make_backend(recipe), work, _progress("embedding", "chunks")),
                                  keep=(index_dir,))
    if as_json:
        click.echo(json.dumps(metrics, indent=2))
        return
    e, index = metrics["eval"], metrics["index"]
    click.echo(f"rag on {index['files']} files ({index['chunks']} chunks; embedded {index['embedded_files']}, reused "
               f"{index['reused_files']}, removed {index['removed_files']}) -> {out}")
    for item in index.get("skipped", []):
        click.echo(f"  skipped {item}")
    click.echo(f"retrieval over {e['questions']} questions: recall@{e['k']} {e['recall_at_k']:.3f}, MRR {e['mrr']:.3f}"
               + (f"; answers containing the expected text {e['answer_contains_expected']:.3f}" if "answer_contains_expected" in e else ""))
    click.echo("files: metrics.json, retrievals.jsonl (top chunks per question), recipe.yaml")


def _run_prompting(recipe, context: RunContext, dry_run, overwrite, allowed, as_json):
    """Prompt engineering and ICL: evaluate prompts on the dev set; nothing trains."""
    from adaptkit.runners.data import prompt_rows

    pool, rows, labels = prompt_rows(recipe)
    if dry_run:
        what = ([v.name for v in recipe.prompts.variants] if recipe.prompts else recipe.icl.shots)
        data = {"dev_rows": len(rows), "pool_rows": len(pool), "labels": labels, "compares": what, "backend": recipe.backend.kind}
        _print_dry(_dry_report(recipe, context, data, allowed, recipe.backend.kind == "local"), as_json, data)
        return
    from adaptkit.runners.backends import make_backend
    from adaptkit.runners.prompting import run_icl, run_prompt_engineering, scorer

    if recipe.prompts:
        scorer(recipe.prompts.scorer)  # a scorer that cannot load fails before the model does
    backend = make_backend(recipe)
    if recipe.method == "prompt_engineering":
        metrics, out = _training_free(recipe, context, overwrite, lambda work: run_prompt_engineering(recipe, rows, labels, backend, work))
    else:
        metrics, out = _training_free(recipe, context, overwrite, lambda work: run_icl(recipe, pool, rows, labels, backend, work))
    if as_json:
        click.echo(json.dumps(metrics, indent=2))
        return
    e = metrics["eval"]
    if recipe.method == "prompt_engineering":
        metric = next(k for k in e if k not in ("variants", "best_variant"))
        for name, row in e["variants"].items():
            click.echo(f"  {name:20} {metric} {row[metric]:.3f}  ({row['mean_prompt_tokens']:.0f} prompt tokens)")
        click.echo(f"best variant: {e['best_variant']} ({metric} {e[metric]:.3f}); saved to {out / 'best_prompt.json'}")
    else:
        click.echo("  k   accuracy  prompt tokens")
        for k, value in e["accuracy_by_k"].items():
            click.echo(f"  {k:>3} {value:9.3f} {e['mean_prompt_tokens_by_k'][k]:14.0f}")
        click.echo(f"best k: {e['best_k']} (accuracy {e['accuracy']:.3f}); chart: {out / 'accuracy_vs_k.png'}")


def _run_tools(recipe, context: RunContext, dry_run, overwrite, allowed, as_json):
    from adaptkit.runners.data import check_tasks
    from adaptkit.runners.tools import load_tools

    block = recipe.tools
    tasks = check_tasks(recipe)
    if dry_run:
        tools = load_tools(recipe, import_custom=allowed)
        specs = {name: tool.spec for name, tool in tools.items()}
        data = {"tasks": len(tasks), "tools": list(specs) + [f"{t.function} (not imported: needs --allow-code)"
                                                             for t in block.custom if not allowed],
                "state_changing": [n for n, t in tools.items() if t.changes_state], "tool_schemas": specs}
        report = _dry_report(recipe, context, data, allowed, recipe.backend.kind == "local")
        _print_dry(report, as_json, {"data": json.dumps(data, indent=2)})
        return
    tools = load_tools(recipe)
    from adaptkit.runners.backends import make_backend
    from adaptkit.runners.tools import run_tool_use

    interactive = block.confirm_changes and _terminal()
    asking = threading.Lock()  # one question at a time, even with requests in parallel

    def confirm(name, arguments):
        if not interactive:
            return False
        with asking:
            call = f"{name}({json.dumps(arguments, ensure_ascii=True)})"
            click.echo(f"\nthe model asks to run a state-changing tool:\n  {call}", err=True)
            return click.confirm(f"run {name} with exactly these arguments?", default=False, err=True)

    metrics, out = _training_free(recipe, context, overwrite, lambda work: run_tool_use(recipe, tasks, make_backend(recipe), confirm, work))
    if as_json:
        click.echo(json.dumps(metrics, indent=2))
        return
    e = metrics["eval"]
    validity = "n/a" if e["tool_call_validity"] is None else f"{e['tool_call_validity']:.3f}"
    click.echo(f"tool use on {e['tasks']} tasks: success {e['success_rate']:.3f}, valid tool calls {validity} "
               f"({e['tool_calls']} calls, {e['refused_calls']} refused), mean steps {e['mean_steps']:.2f}; "
               f"transcripts in {out / 'transcripts.jsonl'}")


def _progress(doing: str, unit: str):
    """A progress line on stderr: redrawn in place on a terminal, one plain line per update in a log."""
    terminal = sys.stderr.isatty()

    def show(done: int, total: int) -> None:
        text = f"{doing}: {done:,}/{total:,} {unit}"
        if terminal:
            click.echo(f"\r{text}" + ("\n" if done >= total else ""), err=True, nl=False)
        else:
            click.echo(text, err=True)

    return show


def _terminal() -> bool:
    """Someone at a terminal can answer a confirmation."""
    return sys.stdin.isatty()


TRAINING_FREE = {"rag": _run_rag, "tool_use": _run_tools, "prompt_engineering": _run_prompting, "in_context_learning": _run_prompting}


def _save(recipe, metrics: dict, out: Path) -> None:
    """A training-free run's files: the resolved recipe and metrics.json, written atomically."""
    from adaptkit._files import write_atomic
    from adaptkit.recipe.load import as_yaml

    write_atomic(out / "recipe.yaml", "# The resolved recipe adaptkit ran.\n" + as_yaml(recipe))
    write_atomic(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
