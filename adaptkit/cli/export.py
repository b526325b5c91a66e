"""`adaptkit export RECIPE --format script`: the recipe as code you can read, paste and change."""

from __future__ import annotations

import click

from adaptkit.cli._io import write_new
from adaptkit.errors import InputError


@click.command("export")
@click.argument("recipe")
@click.argument("overrides", nargs=-1)
@click.option("--format", "fmt", type=click.Choice(["script", "accelerate", "trl"]), default="script", show_default=True,
              help="script: a standalone Python file (no adaptkit import); accelerate: config files and launch commands "
                   "(-o is a folder); trl: a config for the TRL command line (SFT and DPO).")
@click.option("-o", "--output", type=click.Path(), help="Write to this file (a folder for accelerate; default: print).")
@click.option("--gpus", type=click.IntRange(min=1), default=8, show_default=True, help="accelerate: GPUs per machine.")
@click.option("--machines", type=click.IntRange(min=1), default=1, show_default=True, help="accelerate: machines.")
@click.option("--force", is_flag=True, help="Replace existing output files.")
def export(recipe, overrides, fmt, output, gpus, machines, force):
    """Export RECIPE (with optional KEY=VALUE overrides) as a script, accelerate configs or a TRL CLI config."""
    from pathlib import Path

    from adaptkit.recipe.export import accelerate_configs, script, trl_config
    from adaptkit.recipe.load import load_recipe

    loaded, _, _ = load_recipe(recipe, overrides)
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
