"""`adaptkit methods`: the adaptation table."""

from __future__ import annotations

import json

import click

from adaptkit.methods.catalogue import cite, methods


@click.command("methods")
@click.option("--json", "as_json", is_flag=True, help="Print the catalogue as JSON.")
@click.option("--markdown", is_flag=True, help="Print a Markdown table (as in the README).")
def methods_cmd(as_json, markdown):
    """List the ten adaptation methods: what each changes, its cost, and what it needs."""
    catalogue = methods()
    if as_json:
        rows = [m.model_dump() | {"sources": [cite(s) for e in m.evidence for s in e.sources]} for m in catalogue.values()]
        click.echo(json.dumps(rows, indent=2))
        return
    if markdown:
        click.echo("| id | method | changes | cost | typical use | data it needs |")
        click.echo("|---|---|---|---|---|---|")
        for m in catalogue.values():
            click.echo(f"| `{m.id}` | {m.name} | {m.changes} | {m.cost_tier} | {m.typical_use} | {m.data_needs} |")
        return
    from rich.table import Table

    from adaptkit.cli.render import make_console

    table = Table(title="The adaptation table (cheapest first)", title_justify="left")
    for column in ("id", "changes", "cost", "typical use", "data it needs"):
        table.add_column(column, overflow="fold")
    for m in catalogue.values():
        table.add_row(m.id, m.changes, m.cost_tier, m.typical_use, m.data_needs)
    make_console().print(table)
