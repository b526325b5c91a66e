"""Render advice for people, with rich."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table

from adaptkit.advisor.catalogue import methods

_FORCE_WIDTH = None


def _console() -> Console:
    return Console(width=_FORCE_WIDTH, highlight=False)


def dump_answers(answers: dict) -> str:
    """YAML text for --save-answers."""
    import yaml

    header = "# adaptkit answers: reuse with `adaptkit advise --answers THIS_FILE`\n"
    return header + yaml.safe_dump(answers, sort_keys=False, allow_unicode=True)


def show_advice(advice, explain: bool = False) -> None:
    console = _console()
    catalogue = methods()
    profile = advice.profile
    hardware = (
        f"{profile.num_gpus} x {profile.gpu_vram_gb:g} GB GPU" if profile.num_gpus else "no GPU"
    ) if profile.weight_access == "open" else "closed weights"
    size = f", {profile.model_params_b:g}B" if profile.model_params_b else ""
    console.print(
        f"[bold]Profile[/]: {profile.task}, goal {profile.goal}, {profile.weight_access}{size}, {hardware}, "
        f"{profile.labeled_examples:,} labeled, {profile.preference_pairs:,} pairs, volume {profile.inference_volume}"
    )
    for note in advice.notes:
        console.print(f"  [dim]note: {note}[/]")

    if not advice.recommendations:
        console.print("\n[bold red]No method survives the gates.[/] What rules each out is listed below.")
    else:
        table = Table(box=box.SIMPLE_HEAD, title="Recommended, best first", title_justify="left", expand=True, padding=(0, 1))
        for column, style, ratio in (("#", "bold", None), ("method", "bold cyan", None), ("score", "", None),
                                     ("why", "", 4), ("changes", "dim", 2), ("cost", "", 2), ("feasibility", "", 2)):
            table.add_column(column, style=style, ratio=ratio, no_wrap=ratio is None, overflow="fold")
        for rank, rec in enumerate(advice.recommendations, 1):
            method = catalogue[rec.method]
            why = "\n".join(rec.why[:3]) or "+ cheapest first"
            table.add_row(str(rank), rec.method, f"{rec.score:g}", why, method.touches, method.cost_tier, rec.feasibility)
        console.print(table)

    if advice.ruled_out:
        console.print("[bold]Ruled out[/]")
        for method, reasons in advice.ruled_out.items():
            console.print(f"  [red]x[/] [bold]{method}[/]: {reasons[0]}")
            for reason in reasons[1:]:
                console.print(f"      also: {reason}")
    if advice.combine:
        console.print(f"\n[bold]Combine[/]: {' + '.join(advice.combine)} (goals are mixed: each covers a part)")
    if advice.recommendations:
        top = advice.recommendations[0]
        console.print(f"\n[bold]Why {top.method}[/]")
        for line in top.rationale:
            console.print(f"  - {line}")
        console.print("[bold]Sources[/]")
        for source in top.sources:
            console.print(f"  {source}")
    if explain:
        _show_rules(console, advice)
    else:
        console.print("\n[dim]--explain shows every rule that fired; --json gives the machine-readable answer.[/]")


def _show_rules(console: Console, advice) -> None:
    console.print("\n[bold]Rules that fired[/], in table order")
    for firing in advice.firings:
        rule = firing.rule
        console.print(f"  [bold]{rule.id}[/] {rule.title}  [dim](when {firing.condition})[/]")
        console.print(f"      did: {'; '.join(firing.effects)}")
        console.print(f"      why: {firing.reason}")
        if rule.sources:
            console.print(f"      sources: {', '.join(rule.sources)}")
