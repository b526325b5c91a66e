"""`adaptkit export RECIPE --format script`: the recipe as code you can read, paste and change."""

from __future__ import annotations

import click

from adaptkit.cli._io import write_new


@click.command("export")
@click.argument("recipe")
@click.argument("overrides", nargs=-1)
@click.option("--format", "fmt", type=click.Choice(["script"]), default="script", show_default=True,
              help="script: one standalone Python file that imports transformers/peft/datasets, never adaptkit.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to this file (default: print).")
@click.option("--force", is_flag=True, help="Replace an existing --output file.")
def export(recipe, overrides, fmt, output, force):
    """Export RECIPE (with optional KEY=VALUE overrides) as a standalone script."""
    from adaptkit.recipe.export import script
    from adaptkit.recipe.load import load_recipe

    loaded, _, _ = load_recipe(recipe, overrides)
    text = script(loaded, recipe, output or "train.py")
    if output:
        write_new(output, text, force=force)
        click.echo(f"wrote {output}; run it with: python {output}", err=True)
    else:
        click.echo(text)
