"""`adaptkit ledger list|show|rm|scan`: the record of every finished run (adaptkit.ledger)."""

from __future__ import annotations

import json

import click


@click.group("ledger")
def ledger():
    """The runs recorded so far: what each measured, on which data, at what cost.

    Every finished `adaptkit run` adds one record (ADAPTKIT_LEDGER=off keeps a run out; ADAPTKIT_LEDGER=PATH puts the
    ledger elsewhere; ADAPTKIT_LEDGER=mlflow+URI keeps it in an MLflow tracking store a team shares). Examples:

    \b
      adaptkit ledger list
      adaptkit ledger list --method lora_adapters --json
      adaptkit ledger scan runs/
    """
    from adaptkit import ledger as store
    from adaptkit.errors import InputError

    if not store.enabled():  # no ledger to read or write: say so rather than read a file named `off`
        raise InputError("the ledger is off (ADAPTKIT_LEDGER=off): unset it, or set ADAPTKIT_LEDGER=PATH, to record and read runs")


@ledger.command("list")
@click.option("--method", help="Only runs of this method.")
@click.option("--task", help="Only runs of this task.")
@click.option("--data", "data_sha256", metavar="SHA256", help="Only runs scored on this data (its sha256, as in metrics.json).")
@click.option("--json", "as_json", is_flag=True, help="Print the records as JSON.")
def list_runs(method, task, data_sha256, as_json):
    """List the recorded runs, newest first."""
    from adaptkit import ledger as store

    found = store.rows(method=method, data_sha256=data_sha256, task=task)
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    if not found:
        click.echo(f"no runs recorded yet in {store.where()}")
        return
    for row in found:
        value = "-" if row["value"] is None else f"{row['value']:.4f}"
        base = "" if row["base"] is None else f" (base {row['base']:.4f})"
        seconds = "" if row["training_s"] is None else f", {row['training_s']:.0f} s"
        cost = f" (${row['cost_usd']:.2f})" if row.get("cost_usd") is not None else ""
        click.echo(f"{str(row['id']):>4}  {row['method'] or '?'} on {row['model'] or '?'}: {row['metric']} {value}{base}{seconds}{cost}  "
                   f"{row['folder']}")


@ledger.command("show")
@click.argument("ident")
def show(ident):
    """Show one record in full (JSON)."""
    from adaptkit import ledger as store

    click.echo(json.dumps(store.one(ident), indent=2))


@ledger.command("rm")
@click.argument("ident")
def rm(ident):
    """Remove one record (the run folder itself is not touched)."""
    from adaptkit import ledger as store

    store.remove(ident)
    click.echo(f"removed run {ident} from the ledger")


@ledger.command("scan")
@click.argument("folder", type=click.Path(file_okay=False))
def scan(folder):
    """Record every finished run under FOLDER (a run already recorded is updated, not doubled)."""
    from adaptkit import ledger as store

    added, skipped = store.scan(folder)
    click.echo(f"recorded {added} run(s) from {folder} in {store.where()}")
    for line in skipped:
        click.echo(f"  skipped: {line}", err=True)
