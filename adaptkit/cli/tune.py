"""`adaptkit tune`: search a trained recipe's settings with Optuna and write the best as a recipe."""

from __future__ import annotations

import json

import click


@click.command("tune")
@click.argument("recipe")
@click.argument("overrides", nargs=-1)
@click.option("--trials", type=click.IntRange(min=1), default=12, show_default=True, help="Settings tried.")
@click.option("--eta", type=click.IntRange(min=2), default=3, show_default=True,
              help="Each trial first trains on 1/eta of the rows; those below the best so far stop there.")
@click.option("--eval-data", type=click.Path(exists=True, dir_okay=False), help="The held-out file every trial is scored on.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Where the best recipe goes (default: RECIPE.tuned.yaml).")
@click.option("--output-dir", type=click.Path(file_okay=False), default="runs/tune", show_default=True, help="The trials' runs.")
@click.option("--storage", help="An Optuna storage URL (e.g. sqlite:///tune.db) that keeps the study.")
@click.option("--study", help="A study name in --storage to search together: run the same command on several GPUs or machines.")
@click.option("--seed", type=int, default=0, show_default=True, help="The sampler's seed.")
@click.option("--allow-code", is_flag=True, help="Let the recipe import the Python code it names.")
@click.option("--overwrite", is_flag=True, help="Replace an earlier search and its recipe.")
@click.option("--json", "as_json", is_flag=True, help="Print the trials as JSON.")
def tune(recipe, overrides, trials, eta, eval_data, output, output_dir, storage, study, seed, allow_code, overwrite, as_json):
    """Search RECIPE's (with optional KEY=VALUE overrides) learning rate, epochs and (for LoRA) rank, alpha and
    targets; write the best trial as a recipe. The overrides hold for every trial and go into the written recipe.

    With --storage and --study, every worker running the same command adds its trials to one study (each on its
    own GPU or machine, with its own --output-dir); the pruner judges them all together, and each worker writes the
    study's best so far.

    \b
      adaptkit tune lora_cls --trials 12
      adaptkit tune lora_cls data.train=mine.csv data.text_column=review --trials 12
      adaptkit tune lora_cls --trials 6 --storage postgresql://db/tune --study tickets --output-dir runs/tune-$HOSTNAME
    """
    from adaptkit.api import tune as run_tune

    result = run_tune(recipe, overrides, trials=trials, eta=eta, eval_data=eval_data, output=output, output_dir=output_dir, storage=storage,
                      seed=seed, allow_code=allow_code, overwrite=overwrite, study=study, log=lambda line: click.echo(line, err=True))
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    for entry in result.trials:
        score = entry.get("value", entry.get(f"value_at_{1 / eta:.3g}"))
        shown = "-" if score is None else f"{score:.4f}"
        click.echo(f"trial {entry['trial']:>3}  {shown:>7}  {entry.get('outcome') or 'failed: ' + entry.get('error', '')}  "
                   f"{' '.join(entry['overrides'])}")
    if result.best is None:
        click.echo("no trial completed: nothing written")
        return
    across = f" of {result.study_trials} in study {result.study}" if result.study else ""
    click.echo(f"best{across}: trial {result.best['trial']}, {result.metric} {result.best['value']:.4f}: {' '.join(result.best['overrides'])}")
    click.echo(f"wrote {result.written}; run it: adaptkit run {result.written}")
