"""`adaptkit bakeoff`: candidate recipes on the same held-out rows as successive halving, stopping early."""

from __future__ import annotations

import json

import click


@click.command("bakeoff")
@click.argument("recipes", nargs=-1, required=True)
@click.option("--eval-data", type=click.Path(exists=True, dir_okay=False), help="One held-out file for every recipe (data.eval).")
@click.option("--target", help="METRIC=VALUE: stop when a method reaches it; the cheapest reaching it wins (e.g. accuracy=0.9).")
@click.option("--budget-hours", type=click.FloatRange(min=0, min_open=True), help="Stop when this much GPU (or CPU) training time is spent.")
@click.option("--budget-usd", type=click.FloatRange(min=0, min_open=True), help="Stop when training has cost this much at --gpu-hour-usd.")
@click.option("--eta", type=click.IntRange(min=2), default=3, show_default=True,
              help="Keep the best 1/eta at each rung; rungs train on 1/eta^2, 1/eta and all of the training rows.")
@click.option("--rungs", type=click.IntRange(min=2), default=3, show_default=True,
              help="How many rungs: 1/eta^(rungs-1) of the training rows first, ..., then all of them.")
@click.option("--every-rung", is_flag=True, help="Run every rung even when one trained candidate is left (for its learning curve).")
@click.option("--margin", type=click.FloatRange(min=0), default=0.02, show_default=True, help="Within this of the best counts as good enough.")
@click.option("--gpu-hour-usd", type=click.FloatRange(min=0), default=1.0, show_default=True, help="What an hour of training costs.")
@click.option("--usd-per-1m-input", type=click.FloatRange(min=0), default=0.5, show_default=True, help="Input token price for the cost per 1,000 requests.")
@click.option("--storage", help="An Optuna storage URL (e.g. sqlite:///bakeoff.db) that keeps the study.")
@click.option("--study", help="Share the bake-off over machines: run the same command with this study name and one --storage "
                              "every machine reaches; each process takes runs from the queue.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Train this many candidates of a rung at once, each in its own process, on its own GPU where there are "
                   "several (else sharing the CPU cores). 1: one after another, in this process.")
@click.option("--output-dir", type=click.Path(file_okay=False), default="runs/bakeoff", show_default=True)
@click.option("--allow-code", is_flag=True, help="Let the recipes import the Python code they name (see adaptkit run --allow-code).")
@click.option("--overwrite", is_flag=True, help="Replace an earlier bake-off in --output-dir.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def bakeoff(recipes, eval_data, target, budget_hours, budget_usd, eta, rungs, every_rung, margin, gpu_hour_usd, usd_per_1m_input, storage,
            study, workers, output_dir, allow_code, overwrite, as_json):
    """Run RECIPES on the same held-out rows as successive halving: each trained one first on a small share of its
    training rows, only the best third going on with more; training-free ones scored once.

    \b
      adaptkit bakeoff prompt_engineering icl lora_cls full_cls ia3_cls --eval-data examples/data/support_tickets_test.jsonl
    """
    from adaptkit.cli.compare import parse_target

    wanted = parse_target(target, "a bake-off")
    from adaptkit.api import bakeoff as run_bakeoff

    report = run_bakeoff(recipes, eval_data=eval_data, target=wanted, margin=margin, eta=eta, rungs=rungs, skip_when_clear=not every_rung,
                         budget_hours=budget_hours, budget_usd=budget_usd, gpu_hour_usd=gpu_hour_usd, usd_per_1m_input=usd_per_1m_input,
                         storage=storage, study=study, output_dir=output_dir, allow_code=allow_code, overwrite=overwrite, workers=workers,
                         log=lambda line: click.echo(line, err=True))
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
        return
    for line in lines(report):
        click.echo(line)


def lines(report) -> list[str]:
    """The rungs, the comparison of each candidate's furthest run, the learning curves and the recommendation."""
    from adaptkit.cli.compare import _columns
    from adaptkit.curves import advice
    from adaptkit.halving import share_said

    said = ["rungs:"]
    for entry in report.rungs:
        where = "once" if entry["rung"] == "once" else f"rung {entry['rung']} ({share_said(entry['fraction'])} = {entry['rows']} rows)"
        value = "-" if entry["value"] is None else f"{entry['value']:.4f}"
        said.append(f"  {entry['recipe']:28} {where:26} {value:>7}  {entry['training_s']:7.1f} s  {entry['outcome']}")
    from adaptkit.halving import finished

    final = [r for r in report.rows if finished(r)]
    early = [r for r in report.rows if not finished(r)]
    said += ["", *_columns(final)]
    if early:
        said.append("stopped early (scored after training on a share of their rows; not comparable with the rows above): "
                    + ", ".join(f"{r['recipe']} {r['value']:.4f} on {r['train_rows']} rows" for r in early))
    said.append("")
    for ref, curve in report.curves.items():
        said.append("learning curve: " + advice(ref, curve, curve.get("metric") or "score"))
    said += [f"stopped: {report.stopped}",
             f"spent: {report.spent['training_s']:.1f} s of training (${report.spent['usd']:.4f})",
             f"recommendation: {report.recommendation or 'none (no recipe produced a metric)'}",
             f"table: {report.folder / 'bakeoff.json'}"]
    return said
