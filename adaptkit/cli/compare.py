"""`adaptkit compare`: run several recipes (or read finished runs) on the same held-out data and pick the cheapest
one within a margin of the best."""

from __future__ import annotations

import difflib
import json
import math

import click

from adaptkit.errors import AdaptkitError, InputError, brief


@click.command("compare")
@click.argument("recipes", nargs=-1, required=True)
@click.option("--eval-data", type=click.Path(exists=True, dir_okay=False), help="One held-out file for every recipe (data.eval).")
@click.option("--target", help="METRIC=VALUE: the cheapest recipe reaching it wins (e.g. accuracy=0.9).")
@click.option("--margin", type=click.FloatRange(min=0), default=0.02, show_default=True, help="Within this of the best counts as good enough.")
@click.option("--usd-per-1m-input", type=click.FloatRange(min=0), default=0.5, show_default=True, help="Input token price for the cost per 1,000 requests.")
@click.option("--usd-per-1m-output", type=click.FloatRange(min=0), help="Output token price (default: 4x the input price).")
@click.option("--gpu-hour-usd", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="What an hour of training costs: a trained method's one-time cost, for the break-even.")
@click.option("--requests-per-second", type=click.FloatRange(min=0, min_open=True),
              help="What one GPU serves with a trained model (measure it with `adaptkit serve` and your load): a trained "
                   "method's cost per 1,000 requests becomes --gpu-hour-usd over it. Default: a GPU throughput the run "
                   "measured, else its tokens at the token prices.")
@click.option("--horizon-days", type=click.FloatRange(min=1), default=30, show_default=True,
              help="Days over which training is paid off in the break-even line.")
@click.option("--output-dir", type=click.Path(file_okay=False), default="runs/compare", show_default=True)
@click.option("--allow-code", is_flag=True, help="Let the recipes import the Python code they name (see adaptkit run --allow-code).")
@click.option("--overwrite", is_flag=True, help="Replace an earlier comparison in --output-dir.")
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON.")
def compare(recipes, eval_data, target, margin, usd_per_1m_input, usd_per_1m_output, gpu_hour_usd, requests_per_second,
            horizon_days, output_dir, allow_code, overwrite, as_json):
    """Run RECIPES (built-in names, files, or finished run folders) on the same held-out data and recommend one.

    \b
      adaptkit compare prompt_engineering icl lora_cls --eval-data examples/data/support_tickets_test.jsonl
    """
    wanted = parse_target(target, "compare")
    from adaptkit.api import compare as run_compare

    report = run_compare(recipes, eval_data=eval_data, target=wanted, margin=margin, usd_per_1m_input=usd_per_1m_input,
                         usd_per_1m_output=usd_per_1m_output, gpu_hour_usd=gpu_hour_usd, requests_per_second=requests_per_second,
                         horizon_days=horizon_days, output_dir=output_dir, allow_code=allow_code,
                         log=lambda line: click.echo(line, err=True), overwrite=overwrite)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
        _fail_if_none_ran(report.rows)
        return
    from adaptkit.cli.render import make_console

    for line in table(report, make_console().width):
        click.echo(line)
    _fail_if_none_ran(report.rows)


def parse_target(target: str | None, command: str) -> tuple[str, float] | None:
    """--target METRIC=VALUE as (metric, value), the metric one a bake-off ranks by; None when not given."""
    if not target:
        return None
    from adaptkit.methods.bakeoff import metric_names

    name, sep, value = target.partition("=")
    try:
        wanted = (name.strip(), float(value))
    except ValueError:
        wanted = None
    if not sep or wanted is None or not math.isfinite(wanted[1]):
        raise InputError(f"--target {brief(target)}: write METRIC=VALUE, like accuracy=0.9")
    known = metric_names()
    if wanted[0] not in known:
        close = difflib.get_close_matches(wanted[0], known, n=1)
        raise InputError(f"--target: `{brief(wanted[0])[1:-1]}` is not a metric {command} ranks by"
                         + (f" (did you mean `{close[0]}`?)" if close else f" (known: {', '.join(known)})"))
    return wanted


def _fail_if_none_ran(rows: list[dict]) -> None:
    if rows and all("error" in r for r in rows):
        raise AdaptkitError(f"every recipe failed ({len(rows)} of {len(rows)}); the reasons are in the table above")


def table(report, width: int = 160) -> list[str]:
    """The comparison as the lines `adaptkit compare` prints: one row per recipe (a block per recipe below 120
    columns), the intervals, bases, costs and the recommendation, each line within `width` (words kept whole)."""
    rows, verdict, root, assumed = report.rows, report.recommendation, report.folder, report.assumed
    lines: list[str] = []
    if width >= 120:
        lines += _columns(rows)
    else:
        lines += _blocks(rows)
    spans = [f"{r['recipe']} {r['low']:.4f}-{r['high']:.4f} ({r['eval_rows']} rows)" for r in rows if "low" in r]
    notes = (["95% intervals (bootstrap over the eval rows): " + "; ".join(spans)] if spans else [])
    bases = sorted({f"{r['method']}: {r['base_kind']}" for r in rows if r.get("base_kind")})
    notes += ["base: " + "; ".join(bases)] if bases else []
    notes += [f"cost of {r['recipe']}: {r['cost_basis']}" for r in rows if r.get("cost_basis")]
    notes.append(f"recommendation: {verdict or 'none (no recipe produced a metric)'}")
    notes += ["break-even:"] + [f"  {line}" for line in report.break_even] if report.break_even else []
    notes += [f"assumed: {assumed}", f"table and chart: {root / 'compare.json'}, {root / 'compare.png'}"]
    return lines + [wrapped for line in notes for wrapped in _wrap(line, width)]


def _cells(r: dict) -> dict:
    change = f"{r['value'] - r['base_value']:+.4f}" if "base_value" in r and r["value"] is not None else "-"
    return {"value": "-" if r["value"] is None else f"{r['value']:.4f}", "base": f"{r['base_value']:.4f}" if "base_value" in r else "-",
            "delta": change, "tokens": "-" if r["tokens_per_request"] is None else f"{r['tokens_per_request']:.0f}",
            "cost": "-" if r["usd_per_1k_requests"] is None else f"{r['usd_per_1k_requests']:.4f}"}


def _columns(rows: list[dict]) -> list[str]:
    wide = max([24] + [len(r["recipe"]) for r in rows])
    lines = [f"{'recipe':{wide}} {'method':20} {'metric':10} {'value':>7} {'base':>7} {'delta':>7} {'trainable':>10} {'train s':>8} "
             f"{'tokens/req':>10} {'$/1k req':>9}"]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['recipe']:{wide}} failed: {r['error']}")
            continue
        c = _cells(r)
        lines.append(f"{r['recipe']:{wide}} {r['method']:20} {r['metric']:10} {c['value']:>7} {c['base']:>7} {c['delta']:>7} "
                     f"{r['trainable_params']:>10,} {r['training_s']:>8.1f} {c['tokens']:>10} {c['cost']:>9}")
    return lines


def _blocks(rows: list[dict]) -> list[str]:
    """Narrow terminals: a block per recipe, its figures on indented lines, no cell split across lines."""
    lines = []
    for r in rows:
        if "error" in r:
            lines += [r["recipe"], f"    failed: {r['error']}"]
            continue
        c = _cells(r)
        lines += [f"{r['recipe']}  ({r['method']})",
                  f"    {r['metric']} {c['value']}   base {c['base']}   delta {c['delta']}",
                  f"    trainable {r['trainable_params']:,}   train {r['training_s']:.1f} s   tokens/req {c['tokens']}   $/1k req {c['cost']}"]
    return lines


def _wrap(line: str, width: int) -> list[str]:
    import textwrap

    indent = " " * (len(line) - len(line.lstrip()) + 4)
    return textwrap.wrap(line, width, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False) or [line]
