"""`adaptkit export RECIPE --format script`: the recipe as code you can read, paste and change, or as a cluster job."""

from __future__ import annotations

import click

from adaptkit.cli._io import write_new
from adaptkit.errors import InputError


@click.command("export")
@click.argument("recipe")
@click.argument("overrides", nargs=-1)
@click.option("--format", "fmt", type=click.Choice(["script", "accelerate", "trl", "slurm", "skypilot"]), default="script",
              show_default=True,
              help="script: a standalone Python file (no adaptkit import); accelerate: config files and launch commands "
                   "(-o is a folder); trl: a config for the TRL command line (SFT and DPO); slurm: an sbatch script; "
                   "skypilot: a SkyPilot task.")
@click.option("-o", "--output", type=click.Path(), help="Write to this file (a folder for accelerate; default: print).")
@click.option("--gpus", type=click.IntRange(min=1), default=8, show_default=True, help="accelerate, slurm, skypilot: GPUs per machine.")
@click.option("--machines", type=click.IntRange(min=1), default=1, show_default=True, help="accelerate, slurm, skypilot: machines.")
@click.option("--main-process-port", "port", type=click.IntRange(min=1, max=65535), default=29500, show_default=True,
              help="slurm, skypilot: the rendezvous port on machine 0.")
@click.option("--time", "time_limit", default="24:00:00", show_default=True, help="slurm: the job's time limit.")
@click.option("--partition", help="slurm: the partition to submit to (default: the cluster's).")
@click.option("--gpu", "gpu_name", metavar="NAME", help="skypilot: this GPU type (default: the cheapest the estimate fits).")
@click.option("--bucket", help="skypilot: the bucket mounted at /runs for the run (default: adaptkit-runs-USER).")
@click.option("--force", is_flag=True, help="Replace existing output files.")
def export(recipe, overrides, fmt, output, gpus, machines, port, time_limit, partition, gpu_name, bucket, force):
    """Export RECIPE (with optional KEY=VALUE overrides) as a script, accelerate configs, a TRL CLI config, or a
    cluster job (slurm, skypilot) that runs it on every machine and resumes when the job comes back.

    \b
      adaptkit export lora_cls -o train.py
      adaptkit export cpt --format slurm --machines 2 --gpus 8 -o cpt.sbatch
      adaptkit export cpt --format skypilot --machines 2 --gpus 8 -o cpt.sky.yaml
    """
    from pathlib import Path

    from adaptkit.recipe.export import accelerate_configs, script, trl_config
    from adaptkit.recipe.load import load_recipe

    loaded, _, _ = load_recipe(recipe, overrides)
    if fmt in ("slurm", "skypilot"):
        from adaptkit.recipe import jobs

        if not loaded.definition.trains or loaded.adapter == "vendor":
            raise InputError(f"--format {fmt} is a training job on GPUs: {loaded.method} trains nothing on this machine")
        overrides = tuple(overrides)
        text = (jobs.slurm(loaded, recipe, overrides, gpus, machines, port=port, time=time_limit, partition=partition)
                if fmt == "slurm" else
                jobs.skypilot(loaded, recipe, overrides, gpus, machines, port=port, gpu=gpu_name, bucket=bucket))
        if output:
            write_new(output, text, force=force)
            submit = f"sbatch {output}" if fmt == "slurm" else f"sky launch -c adaptkit {output}"
            click.echo(f"wrote {output}; submit it with: {submit}", err=True)
        else:
            click.echo(text, nl=False)
        return
    if fmt == "accelerate":
        files = accelerate_configs(loaded, recipe, gpus, machines)
        if not output:
            for name, text in files.items():
                click.echo(f"==> {name} <==\n{text}")
            return
        from adaptkit.rundir import check_location

        folder = Path(output).expanduser()
        check_location(folder, "-o")
        clashes = [name for name in files if (folder / name).exists()]
        if clashes and not force:  # check every file first: never write half of the set
            raise InputError(f"{folder / clashes[0]} already exists ({len(clashes)} of the {len(files)} files): "
                             "choose another folder or pass --force to replace them")
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            write_new(folder / name, text, force=True)
        click.echo(f"wrote {', '.join(files)} to {folder}; see {folder / 'LAUNCH.md'}", err=True)
        return
    text = trl_config(loaded, recipe) if fmt == "trl" else script(loaded, recipe, output or "train.py")
    if output:
        write_new(output, text, force=force)
        click.echo(f"wrote {output}; run it with: python {output}", err=True)
    else:
        click.echo(text)
