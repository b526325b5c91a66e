"""`adaptkit recipes`: list, show, copy and validate recipes."""

from __future__ import annotations

import shlex
from pathlib import Path

import click


@click.group("recipes")
def recipes():
    """List, show, copy and validate recipes (built-ins live in recipes/)."""


@recipes.command("list")
def list_cmd():
    """Built-in recipes: name, method, task and what each is for."""
    from adaptkit._yaml import load_yaml
    from adaptkit.recipe.load import builtin_recipes, purpose

    rows = []
    for name, path in builtin_recipes().items():
        data = load_yaml(path) or {}
        rows.append((name, str(data.get("method", "?")), str(data.get("task", "?")), purpose(path)))
    width = max((len(r[0]) for r in rows), default=4)
    for name, method, task, text in rows:
        click.echo(f"{name:{width}}  {method:20}  {task:23}  {text}")


@recipes.command("show")
@click.argument("name")
def show(name):
    """Print a recipe file as it is (comments included)."""
    from adaptkit.recipe.load import find_recipe

    path, _ = find_recipe(name)
    click.echo(path.read_text(encoding="utf-8").rstrip())


@recipes.command("copy")
@click.argument("name")
@click.argument("dest", type=click.Path())
@click.option("--force", is_flag=True, help="Replace DEST if it exists.")
def copy(name, dest, force):
    """Copy a recipe to DEST to edit it (relative paths are rewritten to reach the same files); run it with `adaptkit run DEST`."""
    from adaptkit.cli._io import write_new
    from adaptkit.recipe.load import find_recipe, portable_copy

    path, builtin = find_recipe(name)
    target = Path(dest).expanduser()
    if target.is_dir():
        target = target / path.name
    write_new(target, portable_copy(path, builtin, target), force=force)  # its relative paths still reach the same files
    click.echo(f"copied {path.name} to {target}; edit it, then: adaptkit run {shlex.quote(str(target))}")


@recipes.command("validate")
@click.argument("recipe")
@click.argument("overrides", nargs=-1)
def validate(recipe, overrides):
    """Check a recipe (and its data) without running it; every problem is listed."""
    from adaptkit.recipe.consent import describe_code
    from adaptkit.recipe.load import load_recipe
    from adaptkit.runners.data import describe_data

    loaded, path, _ = load_recipe(recipe, overrides)
    click.echo(f"{path}: valid ({loaded.method}, {loaded.task}, {describe_data(loaded)})")
    for line in describe_code(loaded, loaded.allow_code):
        click.echo(f"note: {line}")
