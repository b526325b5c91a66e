"""`adaptkit run RECIPE [key=value ...]`: train and evaluate a recipe for real."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import click

from adaptkit.errors import AdaptkitError, InputError

CHILD_ENV = "ADAPTKIT_LAUNCHED"


@click.command("run", context_settings={"ignore_unknown_options": False})
@click.argument("recipe")
@click.argument("overrides", nargs=-1)
@click.option("--dry-run", is_flag=True, help="Show the resolved recipe, data summary, memory estimate and launch commands; load no weights.")
@click.option("--overwrite", is_flag=True, help="Replace the contents of a non-empty output_dir.")
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint in output_dir.")
@click.option("--num-processes", type=click.IntRange(min=1), default=1, show_default=True,
              help="Data-parallel processes: relaunches under accelerate launch (GPUs) or torchrun (CPU, gloo).")
@click.option("--accelerate-config", type=click.Path(exists=True, dir_okay=False), help="An accelerate config file (FSDP, DeepSpeed) for --num-processes.")
@click.option("--stage", type=click.Choice(["all", "reward", "policy"]), default="all", show_default=True,
              help="RLHF only: train the reward model, the policy (reusing the reward model), or both.")
@click.option("--json", "as_json", is_flag=True, help="Print the dry run or the final metrics as JSON.")
def run(recipe, overrides, dry_run, overwrite, resume, num_processes, accelerate_config, stage, as_json):
    """Train and evaluate RECIPE (a built-in name or a path), with optional KEY=VALUE overrides.

    Examples:

      adaptkit run lora_cls
      adaptkit run lora_cls training.epochs=1 data.train=my.jsonl data.eval=my_test.jsonl output_dir=runs/mine
      adaptkit run lora_cls --dry-run
    """
    from adaptkit.recipe.load import load_recipe
    from adaptkit.runners.data import load_splits

    loaded, _, _ = load_recipe(recipe, overrides)
    if overwrite and resume:
        raise InputError("--overwrite and --resume contradict each other: pick one")
    if stage != "all" and loaded.method != "rlhf":
        raise InputError(f"--stage is for rlhf recipes; this one is {loaded.method}")
    if loaded.method in ("rag", "prompt_engineering", "in_context_learning", "tool_use") and (resume or num_processes > 1):
        raise InputError(f"{loaded.method} trains nothing: --resume and --num-processes are for training recipes "
                         "(endpoint requests run in parallel with backend.concurrency)")
    if loaded.method == "rag":
        _run_rag(loaded, recipe, overrides, dry_run, overwrite, as_json)
        return
    if loaded.method == "tool_use":
        _run_tools(loaded, recipe, overrides, dry_run, overwrite, as_json)
        return
    if loaded.method in ("prompt_engineering", "in_context_learning"):
        _run_prompting(loaded, recipe, overrides, dry_run, overwrite, as_json)
        return
    splits = load_splits(loaded)  # data problems fail here, before any weights load
    if dry_run:
        _dry_run(loaded, splits, recipe, overrides, as_json)
        return
    child = os.environ.get(CHILD_ENV) == "1"
    if not child:
        root = Path(loaded.output_dir)
        _check_output_dir(root / "policy" if stage == "policy" else root, overwrite, resume)
    if num_processes > 1 and not child:
        _relaunch(recipe, overrides + (("--stage", stage) if stage != "all" else ()), resume, num_processes, accelerate_config,
                  loaded.output_dir, as_json)
        return
    from adaptkit.runners.models import resolve_model
    from adaptkit.runners.report import write_outputs
    from adaptkit.runners.train import RunOptions, train

    out = Path(loaded.output_dir)
    created = not out.exists()
    try:
        options = RunOptions(resume=resume, recipe_ref=recipe, overrides=tuple(overrides) + (("--stage", stage) if stage != "all" else ()))
        if loaded.method == "dpo":
            from adaptkit.runners.preference import run_dpo

            metrics = run_dpo(loaded, splits, options)
        elif loaded.method == "rlhf":
            from adaptkit.runners.preference import run_rlhf

            metrics = run_rlhf(loaded, splits, options, stage)
        else:
            metrics = train(loaded, splits, options)
    except Exception as exc:
        from adaptkit.runners.train import Interrupted

        finished = any(out.glob("**/checkpoint-*")) or any(out.glob("**/reward_metrics.json"))
        if created and not isinstance(exc, Interrupted) and not finished:
            shutil.rmtree(out, ignore_errors=True)  # leave no half-written output behind
        raise
    if metrics is None:  # not the main process
        return
    if metrics.pop("stage", None) == "reward":  # a reward-only run: its metrics live with the reward model
        metrics.pop("_log_history", None)
        click.echo(json.dumps(metrics, indent=2) if as_json else
                   f"reward model trained: pairwise accuracy {metrics['eval']['reward_model_accuracy']}; next: adaptkit run {recipe} "
                   f"{' '.join(overrides)} --stage policy".replace("  ", " "))
        return
    write_outputs(loaded, metrics, splits.labels, resolve_model(loaded.model))
    if as_json:
        click.echo(json.dumps(metrics, indent=2))
    else:
        _summary(loaded, metrics)


def _check_output_dir(out: Path, overwrite: bool, resume: bool, keep: Path | None = None) -> None:
    if resume:
        if not any(out.glob("checkpoint-*")):
            raise InputError(f"--resume: no checkpoint in {out} to resume from")
        return
    if out.exists() and not out.is_dir():
        raise InputError(f"output_dir {out} is a file: choose a folder")
    contents = [p for p in out.iterdir() if keep is None or p.resolve() != keep.resolve()] if out.is_dir() else []
    if contents:
        if not overwrite:
            raise InputError(f"output_dir {out} is not empty: pass --overwrite to replace it, --resume to continue, "
                             "or set output_dir=NEW_DIR")
        for path in contents:
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def _relaunch(recipe, overrides, resume, processes, accelerate_config, output_dir, as_json):
    """Run this same command under torchrun (CPU, gloo) or accelerate launch (GPUs, or a given config)."""
    from adaptkit.estimate.hardware import detect_gpus

    tail = ["-m", "adaptkit", "run", recipe, *overrides] + (["--resume"] if resume else [])
    gpus, _ = detect_gpus()
    if gpus or accelerate_config:
        command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(processes)]
        command += ["--config_file", accelerate_config] if accelerate_config else ["--multi_gpu"]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes), "--standalone"]
    command += tail
    click.echo("launching: " + " ".join(command[1:]), err=True)
    code = subprocess.call(command, env={**os.environ, CHILD_ENV: "1"})
    if code == 130:
        raise click.exceptions.Exit(130)
    if code != 0:
        raise AdaptkitError(f"the {processes}-process run failed (exit {code}); its output is above")
    metrics_file = Path(output_dir) / "metrics.json"
    if metrics_file.is_file():
        click.echo(metrics_file.read_text().rstrip() if as_json else f"metrics ({metrics_file}):\n{metrics_file.read_text().rstrip()}")


def _dry_run(recipe, splits, recipe_ref, overrides, as_json):
    from adaptkit.runners.dryrun import dry_run

    report = dry_run(recipe, splits, recipe_ref, tuple(overrides))
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
        return
    from adaptkit.cli.render import show_dry_run

    show_dry_run(report)


def _summary(recipe, metrics):
    from adaptkit.cli.render import show_run_summary

    show_run_summary(recipe, metrics)


def _run_rag(recipe, recipe_ref, overrides, dry_run, overwrite, as_json):
    from adaptkit.runners.data import check_questions

    questions = check_questions(recipe)
    corpus = Path(recipe.rag.corpus)
    if not corpus.is_dir():
        raise InputError(f"rag.corpus: {corpus} is not a folder")
    if dry_run:
        from adaptkit.runners.rag import SUFFIXES

        files = [p for p in corpus.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES]
        from adaptkit.recipe.load import as_yaml
        from adaptkit.runners.dryrun import memory

        report = {"recipe": as_yaml(recipe),
                  "data": {"questions": len(questions), "corpus_files": len(files),
                           "index": str(recipe.rag.index_dir), "index_exists": (Path(recipe.rag.index_dir) / "manifest.json").is_file()},
                  "memory": memory(recipe),
                  "commands": {"run": f"adaptkit run {recipe_ref} {' '.join(overrides)}".strip()}}
        click.echo(json.dumps(report, indent=2) if as_json else "\n".join(f"{k}: {v}" for k, v in report["data"].items()))
        return
    _check_output_dir(Path(recipe.output_dir), overwrite, False, keep=Path(recipe.rag.index_dir))
    from adaptkit.runners.backends import make_backend
    from adaptkit.runners.rag import run_rag

    metrics = run_rag(recipe, questions, lambda: make_backend(recipe))
    out = _save(recipe, metrics)
    if as_json:
        click.echo(json.dumps(metrics, indent=2))
        return
    e, index = metrics["eval"], metrics["index"]
    click.echo(f"rag on {index['files']} files ({index['chunks']} chunks; embedded {index['embedded_files']}, reused "
               f"{index['reused_files']}, removed {index['removed_files']}) -> {out}")
    click.echo(f"retrieval over {e['questions']} questions: recall@{e['k']} {e['recall_at_k']:.3f}, MRR {e['mrr']:.3f}"
               + (f"; answers containing the expected text {e['answer_contains_expected']:.3f}" if "answer_contains_expected" in e else ""))
    click.echo("files: metrics.json, retrievals.jsonl (top chunks per question), recipe.yaml")


def _run_prompting(recipe, recipe_ref, overrides, dry_run, overwrite, as_json):
    """Prompt engineering and ICL: evaluate prompts on the dev set; nothing trains."""
    from adaptkit.runners.data import prompt_rows

    pool, rows, labels = prompt_rows(recipe)
    if dry_run:
        from adaptkit.recipe.load import as_yaml
        from adaptkit.runners.dryrun import memory

        what = ([v.name for v in recipe.prompts.variants] if recipe.prompts else recipe.icl.shots)
        report = {"recipe": as_yaml(recipe), "data": {"dev_rows": len(rows), "pool_rows": len(pool), "labels": labels,
                                                       "compares": what, "backend": recipe.backend.kind},
                  "memory": memory(recipe) if recipe.backend.kind == "local" else {"note": "served by the endpoint"},
                  "commands": {"run": f"adaptkit run {recipe_ref} {' '.join(overrides)}".strip()}}
        click.echo(json.dumps(report, indent=2, default=str) if as_json else "\n".join(f"{k}: {v}" for k, v in report["data"].items()))
        return
    _check_output_dir(Path(recipe.output_dir), overwrite, False)
    from adaptkit.recipe.load import as_yaml
    from adaptkit.runners.backends import make_backend
    from adaptkit.runners.prompting import run_icl, run_prompt_engineering

    backend = make_backend(recipe)
    if recipe.method == "prompt_engineering":
        metrics = run_prompt_engineering(recipe, rows, labels, backend)
    else:
        metrics = run_icl(recipe, pool, rows, labels, backend)
    out = _save(recipe, metrics)
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


def _run_tools(recipe, recipe_ref, overrides, dry_run, overwrite, as_json):
    from adaptkit.runners.data import check_tasks
    from adaptkit.runners.tools import load_tools

    block = recipe.tools
    tasks = check_tasks(recipe)
    tools = load_tools(recipe)
    if dry_run:
        from adaptkit.recipe.load import as_yaml
        from adaptkit.runners.dryrun import memory

        specs = {name: tool.spec for name, tool in tools.items()}
        report = {"recipe": as_yaml(recipe),
                  "data": {"tasks": len(tasks), "tools": list(specs), "state_changing": [n for n, t in tools.items() if t.changes_state],
                           "tool_schemas": specs},
                  "memory": memory(recipe) if recipe.backend.kind == "local" else {"note": "served by the endpoint"},
                  "commands": {"run": f"adaptkit run {recipe_ref} {' '.join(overrides)}".strip()}}
        click.echo(json.dumps(report, indent=2) if as_json else json.dumps(report["data"], indent=2))
        return
    _check_output_dir(Path(recipe.output_dir), overwrite, False)
    from adaptkit.recipe.load import as_yaml
    from adaptkit.runners.backends import make_backend
    from adaptkit.runners.tools import run_tool_use

    interactive = block.confirm_changes and sys.stdin.isatty()

    def confirm(name, arguments):
        return interactive and click.confirm(f"run {name}({json.dumps(arguments)}), which changes state?", default=False, err=True)

    metrics = run_tool_use(recipe, tasks, make_backend(recipe), confirm)
    out = _save(recipe, metrics)
    if as_json:
        click.echo(json.dumps(metrics, indent=2))
        return
    e = metrics["eval"]
    validity = "n/a" if e["tool_call_validity"] is None else f"{e['tool_call_validity']:.3f}"
    click.echo(f"tool use on {e['tasks']} tasks: success {e['success_rate']:.3f}, valid tool calls {validity} "
               f"({e['tool_calls']} calls, {e['refused_calls']} refused), mean steps {e['mean_steps']:.2f}; "
               f"transcripts in {out / 'transcripts.jsonl'}")


def _save(recipe, metrics: dict) -> Path:
    """A training-free run's files: the resolved recipe and metrics.json, written atomically."""
    from adaptkit.recipe.load import as_yaml
    from adaptkit.runners.report import write_atomic

    out = Path(recipe.output_dir)
    write_atomic(out / "recipe.yaml", "# The resolved recipe adaptkit ran.\n" + as_yaml(recipe))
    write_atomic(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return out
