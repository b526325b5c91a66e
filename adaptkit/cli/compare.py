"""`adaptkit compare`: run several recipes (or read finished runs) on the same held-out data and pick the cheapest
one within a margin of the best."""

from __future__ import annotations

import difflib
import json
import math
import subprocess
import sys
from pathlib import Path

import click

from adaptkit._files import write_atomic
from adaptkit.errors import AdaptkitError, InputError, brief


def _finished(folder: Path) -> tuple[dict | None, dict | None, str | None]:
    """(metrics, recipe, error) read from a finished run folder."""
    from adaptkit._yaml import loads_yaml

    try:
        metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
        recipe = loads_yaml((folder / "recipe.yaml").read_text(encoding="utf-8")) if (folder / "recipe.yaml").is_file() else {}
    except Exception as exc:  # a damaged run folder is a failed row, not a crash
        return None, None, f"{folder}: cannot read its metrics.json or recipe.yaml ({exc.__class__.__name__})"
    if not isinstance(metrics, dict) or not isinstance(metrics.get("eval"), dict):
        return None, None, f"{folder}: metrics.json is not an adaptkit run's metrics"
    return metrics, recipe if isinstance(recipe, dict) else {}, None


def _rescore(folder: Path, eval_data: str, out: Path, allow_code: bool) -> tuple[dict | None, dict | None, str | None]:
    """A finished run scored again on `eval_data`: a trained model or adapter loaded from its folder and run with
    predict (a classifier's labels, a causal LM's greedy answers scored by the recipe's scorer); a method that trains
    nothing run again from its recipe.yaml."""
    metrics, recipe, error = _finished(folder)
    if error:
        return None, None, error
    from adaptkit.methods.registry import registry

    definition = registry().get(metrics.get("method"))
    if definition is not None and not definition.trains:
        return _run(str(folder / "recipe.yaml"), out, eval_data, allow_code)
    from adaptkit.recipe.consent import check_consent
    from adaptkit.runners.data import eval_identity, read_rows
    from adaptkit.runners.predict import base_on, load_model, open_run, predict

    run = open_run(str(folder))
    check_consent(run.recipe, allow_code or run.recipe.allow_code)  # its scorer may be the user's code
    classifier = run.recipe.task == "sequence_classification"
    rows = read_rows(eval_data, "test", "--eval-data")
    loaded = load_model(run)
    predicted, scores = predict(run, rows, max_new_tokens=run.recipe.training.max_new_tokens, loaded=loaded)
    if scores is None:
        wanted = run.recipe.data.label_column if classifier else (run.recipe.data.messages_column or run.recipe.data.response_column)
        return None, None, f"--eval-data {eval_data}: no `{wanted}` column to score {folder} with"
    rescored = run.recipe.model_copy(update={"data": run.recipe.data.model_copy(update={"eval": eval_data})})
    keep = ("accuracy", "f1_macro", "primary_metric") if classifier else tuple(k for k in scores if k not in ("rows", "judge_prompt"))
    eval_metrics = {k: v for k, v in scores.items() if k in keep}
    if not classifier:
        eval_metrics.update(base_on(run, loaded, rows, eval_metrics))
    recipe = {**recipe, "data": {**(recipe.get("data") or {}), "eval": eval_data}}  # its tokens a request: the new rows'
    return {**metrics, "eval": eval_metrics, "eval_data": {**eval_identity(rescored), "rows": len(predicted)}, "rescored": True}, recipe, None


def _counter(folder: Path):
    """Token counts with the run's own tokenizer (its tokenizer.json, read without torch), or None."""
    for candidate in (folder / "tokenizer.json", folder / "policy" / "tokenizer.json"):
        if candidate.is_file():
            try:
                from tokenizers import Tokenizer

                tokenizer = Tokenizer.from_file(str(candidate))
            except Exception:  # an unreadable tokenizer: fall back to characters
                return None
            return lambda text: len(tokenizer.encode(text, add_special_tokens=False).ids)
    return None


UNREADABLE = object()  # a run folder that fails in its own row


def _identity(ref: str):
    """What a ref would be scored on without --eval-data: a finished run's record, or a recipe's own data."""
    folder = Path(ref)
    if folder.is_dir():
        metrics, _, error = _finished(folder) if (folder / "metrics.json").is_file() else (None, None, "no run")
        return UNREADABLE if error else metrics.get("eval_data")
    from adaptkit.recipe.load import load_recipe
    from adaptkit.runners.data import eval_identity

    try:
        identity = eval_identity(load_recipe(ref)[0])
    except AdaptkitError:
        return None  # a recipe that does not load fails in its own row
    if "sha256" not in identity and Path(str(identity["source"])).suffix and not Path(str(identity["source"])).expanduser().exists():
        return None  # its data file is missing: it fails in its own row
    return identity


def _check_same_data(recipes) -> None:
    """Without --eval-data, every row must have been (or be) scored on the same rows; else say which differ."""
    from adaptkit.runners.data import same_eval

    identities = {ref: identity for ref in recipes if (identity := _identity(ref)) is not UNREADABLE}  # those fail in their rows
    if not identities:
        return
    first_ref, first = next(iter(identities.items()))
    for ref, identity in identities.items():
        if identity is None and Path(ref).is_dir():
            raise InputError(f"{ref}: the run does not record what it was scored on (made before adaptkit kept it): pass "
                             "--eval-data FILE to score every run on one file")
        if identity is not None and first is not None and not same_eval(first, identity):
            raise InputError(f"{first_ref} and {ref} were scored on different data ({_said(first)} vs {_said(identity)}): "
                             "their numbers do not compare; pass --eval-data FILE to score every run on one file")


def _said(identity: dict) -> str:
    where = identity.get("source")
    if identity.get("held_out_fraction"):
        where = f"{identity['held_out_fraction']:g} held out of {where} with seed {identity.get('seed')}"
    return where + (f", {identity['rows']} rows scored" if identity.get("rows") else "")


def _run(ref: str, out: Path, eval_data: str | None, allow_code: bool = False) -> tuple[dict | None, dict | None, str | None]:
    """(metrics, recipe, error) for a finished run folder (scored again when eval_data is given) or a recipe run now."""
    folder = Path(ref)
    if folder.is_dir() and (folder / "metrics.json").is_file():
        return _rescore(folder, eval_data, out, allow_code) if eval_data else _finished(folder)
    if folder.is_dir():
        return None, None, f"{folder}: a folder without metrics.json (not a finished run)"
    overrides = [f"output_dir={out}"] + ([f"data.eval={eval_data}"] if eval_data else [])
    command = [sys.executable, "-m", "adaptkit", "run", ref, *overrides, "--overwrite", "--json"] + (["--allow-code"] if allow_code else [])
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        return None, None, (lines[-1] if lines else f"exit {done.returncode}")[:300]
    from adaptkit._yaml import loads_yaml

    try:
        recipe = loads_yaml((out / "recipe.yaml").read_text(encoding="utf-8")) if (out / "recipe.yaml").is_file() else {}
        return json.loads(done.stdout), recipe, None
    except ValueError as exc:
        return None, None, f"the run's output could not be read ({exc.__class__.__name__})"


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
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON.")
def compare(recipes, eval_data, target, margin, usd_per_1m_input, usd_per_1m_output, gpu_hour_usd, requests_per_second,
            horizon_days, output_dir, allow_code, as_json):
    """Run RECIPES (built-in names, files, or finished run folders) on the same held-out data and recommend one.

      adaptkit compare prompt_engineering icl lora_cls --eval-data examples/data/support_tickets_test.jsonl
    """
    from adaptkit.methods.bakeoff import break_even, metric_names, row, winner

    wanted = None
    if target:
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
            raise InputError(f"--target: `{brief(wanted[0])[1:-1]}` is not a metric compare ranks by"
                             + (f" (did you mean `{close[0]}`?)" if close else f" (known: {', '.join(known)})"))
    if not eval_data and len(recipes) > 1:
        _check_same_data(recipes)  # before anything runs
    from adaptkit.rundir import check_location, expand

    root = expand(output_dir)
    check_location(root, "--output-dir")
    rows = []
    for index, ref in enumerate(recipes):
        out = root / f"{index}-{Path(ref).stem}"
        click.echo(f"[{index + 1}/{len(recipes)}] {ref} ...", err=True)
        metrics, recipe, error = _run(ref, out, eval_data, allow_code)
        if error:
            rows.append({"recipe": ref, "error": error})
            continue
        folder = Path(ref) if Path(ref).is_dir() else out
        rows.append(row(ref, metrics, recipe or {}, usd_per_1m_input, usd_per_1m_output, gpu_hour_usd, requests_per_second,
                        _counter(folder)))
    scored = [r for r in rows if r.get("value") is not None]
    verdict = winner(rows, margin, wanted)
    root.mkdir(parents=True, exist_ok=True)
    output_price = usd_per_1m_output if usd_per_1m_output is not None else 4 * usd_per_1m_input
    assumed = (f"input ${usd_per_1m_input:g} and output ${output_price:g} per 1M tokens; a GPU hour ${gpu_hour_usd:g} (training, "
               f"and serving where a throughput is known); each row's cost basis is in compare.json")
    report = {"rows": rows, "recommendation": verdict, "break_even": break_even(rows, horizon_days), "assumed": assumed}
    write_atomic(root / "compare.json", json.dumps(report, indent=2) + "\n")
    _chart(scored, root / "compare.png")
    if as_json:
        click.echo(json.dumps(report, indent=2))
        _fail_if_none_ran(rows)
        return
    wide = max([24] + [len(r["recipe"]) for r in rows])
    click.echo(f"{'recipe':{wide}} {'method':20} {'metric':10} {'value':>7} {'base':>7} {'delta':>7} {'trainable':>10} {'train s':>8} "
               f"{'tokens/req':>10} {'$/1k req':>9}")
    for r in rows:
        if "error" in r:
            click.echo(f"{r['recipe']:{wide}} failed: {r['error']}")
            continue
        tokens = "-" if r["tokens_per_request"] is None else f"{r['tokens_per_request']:.0f}"
        cost = "-" if r["usd_per_1k_requests"] is None else f"{r['usd_per_1k_requests']:.4f}"
        value = "-" if r["value"] is None else f"{r['value']:.4f}"
        base = f"{r['base_value']:.4f}" if "base_value" in r else "-"
        change = f"{r['value'] - r['base_value']:+.4f}" if "base_value" in r and r["value"] is not None else "-"
        click.echo(f"{r['recipe']:{wide}} {r['method']:20} {r['metric']:10} {value:>7} {base:>7} {change:>7} {r['trainable_params']:>10,} "
                   f"{r['training_s']:>8.1f} {tokens:>10} {cost:>9}")
    bases = sorted({f"{r['method']}: {r['base_kind']}" for r in rows if r.get("base_kind")})
    if bases:
        click.echo("base: " + "; ".join(bases))
    for r in rows:
        if r.get("cost_basis"):
            click.echo(f"cost of {r['recipe']}: {r['cost_basis']}")
    click.echo(f"recommendation: {verdict or 'none (no recipe produced a metric)'}")
    if report["break_even"]:
        click.echo("break-even:")
        for line in report["break_even"]:
            click.echo(f"  {line}")
    click.echo(f"assumed: {assumed}")
    click.echo(f"table and chart: {root / 'compare.json'}, {root / 'compare.png'}")
    _fail_if_none_ran(rows)


def _fail_if_none_ran(rows: list[dict]) -> None:
    if rows and all("error" in r for r in rows):
        raise AdaptkitError(f"every recipe failed ({len(rows)} of {len(rows)}); the reasons are in the table above")


def _chart(rows: list[dict], path: Path) -> None:
    if not rows:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=110)
    ax.bar([r["recipe"] for r in rows], [r["value"] for r in rows], color="#1f77b4")
    ax.set_ylabel(rows[0]["metric"])
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
