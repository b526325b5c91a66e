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

    from rich.markup import escape

    from adaptkit.cli.render import hanging, make_console

    console = make_console()
    if console.width < 120:  # one block per method: five prose columns do not fit side by side
        console.print("[bold]The adaptation table[/] (cheapest first)")
        for m in catalogue.values():
            console.print(f"\n[bold cyan]{m.id}[/]  {escape(m.name)}; cost {escape(m.cost_tier)}")
            for label, text in (("changes", m.changes), ("typical use", m.typical_use), ("data it needs", m.data_needs)):
                hanging(console, f"[dim]{label}:[/] {escape(text)}", 4)
        return
    table = Table(title="The adaptation table (cheapest first)", title_justify="left")
    table.add_column("id", no_wrap=True)  # ids are never split
    for column in ("changes", "cost", "typical use", "data it needs"):
        table.add_column(column)
    for m in catalogue.values():
        table.add_row(m.id, escape(m.changes), escape(m.cost_tier), escape(m.typical_use), escape(m.data_needs))
    console.print(table)
