"""`adaptkit run RECIPE [key=value ...]`: train and evaluate a recipe for real.

The run itself is adaptkit.api.run (checks, consent, the output folder, the runner, recipe.yaml and metrics.json);
this command parses, asks (tool-use confirmations) and renders.
"""

from __future__ import annotations

import json
import os
import sys
import threading

import click

from adaptkit.cli._io import progress_line
from adaptkit.errors import InputError
from adaptkit.launch import DEFAULT_PORT


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
              help="Data-parallel processes (of all machines together): relaunches under accelerate launch (GPUs) or "
                   "torchrun (CPU, gloo); the recipe's global batch is split over them.")
@click.option("--accelerate-config", type=click.Path(exists=True, dir_okay=False), help="An accelerate config file (FSDP, DeepSpeed) for --num-processes.")
@click.option("--num-machines", type=click.IntRange(min=1), default=1, show_default=True,
              help="Machines the --num-processes are spread over, the same number on each; run the same command on every one.")
@click.option("--machine-rank", type=click.IntRange(min=0), default=0, show_default=True,
              help="With --num-machines: this machine's rank (0 on the main machine, which writes the run).")
@click.option("--main-process-ip", metavar="ADDRESS", help="With --num-machines: machine 0's address, reachable from every machine.")
@click.option("--main-process-port", type=click.IntRange(min=1, max=65535), default=DEFAULT_PORT, show_default=True,
              help="With --num-machines: the rendezvous port on machine 0.")
@click.option("--stage", default="all", show_default=True, help="Methods in stages (RLHF: reward, policy): run one stage only.")
@click.option("--start-job", is_flag=True, help="A vendor fine-tuning recipe (a `vendor` block): upload the data and start the "
                                                 "paid job (the key from backend.api_key_env). Without it nothing is sent.")
@click.option("--allow-code", is_flag=True, help="Allow the recipe to run Python code: what it names (tools.custom, scorers) and, "
                                                  "with scoring.scorer: code, what the model generates (boxed).")
@click.option("--send-key", is_flag=True, help="Let the key in backend.api_key_env go to backend.base_url's host when that is "
                                                "not its provider's own (a gateway, a proxy); https only.")
@click.option("--accept-leakage", is_flag=True, help="Run even when eval rows are also in the training data (exact or near "
                                                      "duplicates); their count goes into metrics.json.")
@click.option("--push-to-hub", "push_to_hub", metavar="REPO_ID",
              help="Upload the finished run to this Hub model repo (token from HF_TOKEN or the stored login; checked before training).")
@click.option("--hub-public", is_flag=True, help="With --push-to-hub: create the repo public (default: private).")
@click.option("--hub-license", default="other", show_default=True, help="With --push-to-hub: the model card's license field.")
@click.option("--json", "as_json", is_flag=True, help="Print the dry run or the final metrics as JSON.")
def run(recipe, overrides, dry_run, gpu_name, gpu_memory_gb, overwrite, resume, num_processes, accelerate_config, num_machines,
        machine_rank, main_process_ip, main_process_port, stage, start_job, allow_code, send_key, accept_leakage, push_to_hub, hub_public, hub_license, as_json):
    """Train and evaluate RECIPE (a built-in name or a path), with optional KEY=VALUE overrides.

    Examples:

    \b
      adaptkit run lora_cls
      adaptkit run lora_cls training.epochs=1 data.train=my.jsonl data.eval=my_test.jsonl output_dir=runs/mine
      adaptkit run lora_cls --dry-run --gpu 4090
      adaptkit run cpt --num-processes 16 --num-machines 2 --machine-rank 0 --main-process-ip 10.0.0.1
    """
    if (gpu_name or gpu_memory_gb) and not dry_run:
        raise InputError("--gpu and --gpu-memory-gb size the --dry-run's memory estimate; a run uses the GPU it finds")
    import adaptkit.api as api

    if dry_run:
        report = api.dry_run(recipe, overrides, gpu=gpu_name, gpu_memory_gb=gpu_memory_gb, num_processes=num_processes,
                             num_machines=num_machines, machine_rank=machine_rank, main_process_ip=main_process_ip,
                             main_process_port=main_process_port, accelerate_config=accelerate_config,
                             allow_code=allow_code, stage=stage, resume=resume, overwrite=overwrite, start_job=start_job,
                             send_key=send_key)
        if as_json:
            click.echo(json.dumps(report, indent=2, default=str))
            return
        from adaptkit.cli.render import show_dry_run

        show_dry_run(report)
        return
    child = os.environ.get(api.CHILD_ENV) == "1"
    result = api.run(recipe, overrides, overwrite=overwrite, resume=resume, stage=stage, num_processes=num_processes,
                     accelerate_config=accelerate_config, num_machines=num_machines, machine_rank=machine_rank,
                     main_process_ip=main_process_ip, main_process_port=main_process_port, allow_code=allow_code, start_job=start_job, send_key=send_key,
                     accept_leakage=accept_leakage, push_to_hub=push_to_hub,
                     hub_public=hub_public, hub_license=hub_license, confirm=_confirmer(recipe, overrides),
                     progress=progress_line("embedding", "chunks"), log=lambda line: click.echo(line, err=True), show_training=True)
    if result is None:  # not the main process
        return
    if num_processes > 1 and not child:  # the main rank printed its summary; the result is the finished run's metrics
        text = json.dumps(result.metrics, indent=2)
        click.echo(text if as_json else f"metrics ({result.folder / 'metrics.json'}):\n{text}")
        return
    if result.stage != "all":  # one stage of a staged method: its metrics live with that stage
        click.echo(json.dumps(result.metrics, indent=2) if as_json else
                   f"{result.stage} stage done ({', '.join(f'{k} {v}' for k, v in result.metrics['eval'].items())}); next: {result.next}")
        return
    if as_json:
        click.echo(json.dumps(result.metrics, indent=2))
        return
    from adaptkit.cli.render import show_run_summary

    show_run_summary(result.recipe, result, result.folder, err=child)  # a rank's summary goes to stderr: the launcher prints the result


def _confirmer(ref, overrides):
    """Tool use: ask before a state-changing call runs, one question at a time, showing the exact call."""
    state: dict = {}
    asking = threading.Lock()  # requests run in parallel; questions do not

    def confirm(name, arguments):
        if "interactive" not in state:
            from adaptkit.recipe.load import load_recipe

            tools = getattr(load_recipe(ref, overrides)[0], "tools", None)
            state["interactive"] = bool(tools and tools.confirm_changes) and _terminal()
        if not state["interactive"]:
            return False
        with asking:
            call = f"{name}({json.dumps(arguments, ensure_ascii=True)})"
            click.echo(f"\nthe model asks to run a state-changing tool:\n  {call}", err=True)
            return click.confirm(f"run {name} with exactly these arguments?", default=False, err=True)

    return confirm


def _terminal() -> bool:
    """Someone at a terminal can answer a confirmation."""
    return sys.stdin.isatty()
