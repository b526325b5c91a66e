"""Compare runs on the same held-out data: run recipes (through adaptkit.run, in this process) or read finished run
folders, score them alike, price them, and pick the cheapest good one. `adaptkit compare` renders what this returns."""

from __future__ import annotations

import json
from pathlib import Path

from dataclasses import dataclass, field

from adaptkit._files import write_atomic
from adaptkit.errors import AdaptkitError, InputError, one_line


@dataclass
class Comparison:
    """What `compare` returns (compare.json): a row per recipe or run, the recommendation, the break-even lines."""

    rows: list[dict]
    recommendation: str | None
    break_even: list[str] = field(default_factory=list)
    assumed: str = ""
    folder: Path | None = None

    def to_dict(self) -> dict:
        return {"rows": self.rows, "recommendation": self.recommendation, "break_even": self.break_even, "assumed": self.assumed}


def compare_runs(recipes: list[str], *, run, eval_data=None, target=None, margin=0.02, usd_per_1m_input=0.5, usd_per_1m_output=None,
                 gpu_hour_usd=1.0, requests_per_second=None, horizon_days=30, output_dir="runs/compare", allow_code=False,
                 log=lambda line: None, overwrite=False):
    """The comparison behind adaptkit.compare (see there); `run` is adaptkit.run."""
    from adaptkit.methods.bakeoff import break_even, row, winner
    from adaptkit.rundir import check_location, expand

    if target is not None:
        from adaptkit.methods.bakeoff import metric_names

        if target[0] not in metric_names():
            raise InputError(f"target: `{target[0]}` is not a metric compare ranks by (known: {', '.join(metric_names())})")
    if not eval_data and len(recipes) > 1:
        check_same_data(recipes)  # before anything runs
    root = expand(output_dir)
    check_location(root, "--output-dir")
    if (root / "compare.json").is_file() and not overwrite:  # an earlier comparison is not replaced silently
        raise InputError(f"--output-dir {root} holds an earlier comparison (compare.json): choose another --output-dir, or pass "
                         "--overwrite to replace it")
    rows = []
    for index, ref in enumerate(recipes):
        out = root / f"{index}-{Path(ref).stem}"
        log(f"[{index + 1}/{len(recipes)}] {ref} ...")
        metrics, recipe, error = run_one(ref, out, eval_data, allow_code, run)
        if error:
            rows.append({"recipe": ref, "error": error})
            continue
        folder = Path(ref) if Path(ref).is_dir() else out
        rows.append(row(ref, metrics, recipe or {}, usd_per_1m_input, usd_per_1m_output, gpu_hour_usd, requests_per_second,
                        token_counter(folder)))
    scored = [r for r in rows if r.get("value") is not None]
    verdict = winner(rows, margin, target)
    root.mkdir(parents=True, exist_ok=True)
    output_price = usd_per_1m_output if usd_per_1m_output is not None else 4 * usd_per_1m_input
    assumed = (f"input ${usd_per_1m_input:g} and output ${output_price:g} per 1M tokens; a GPU hour ${gpu_hour_usd:g} (training, "
               f"and serving where a throughput is known); each row's cost basis is in compare.json")
    comparison = Comparison(rows, verdict, break_even(rows, horizon_days), assumed, root)
    write_atomic(root / "compare.json", json.dumps(comparison.to_dict(), indent=2) + "\n")
    _chart(scored, root / "compare.png")
    return comparison


def read_run(folder: Path) -> tuple[dict | None, dict | None, str | None]:
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


def _rescore(folder: Path, eval_data: str, out: Path, allow_code: bool, run) -> tuple[dict | None, dict | None, str | None]:
    """A finished run scored again on `eval_data`: a trained model or adapter loaded from its folder and run with
    predict (a classifier's labels, a causal LM's greedy answers scored by the recipe's scorer); a method that trains
    nothing run again from its recipe.yaml."""
    metrics, recipe, error = read_run(folder)
    if error:
        return None, None, error
    from adaptkit.methods.registry import registry

    definition = registry().get(metrics.get("method"))
    if definition is not None and not definition.trains:  # run again from its recipe.yaml, which may allow nothing itself
        return run_one(str(folder / "recipe.yaml"), out, eval_data, allow_code, run, ("allow_code=false", "trust_remote_code=false"))
    from adaptkit.recipe.consent import check_consent
    from adaptkit.runners.data import eval_identity, read_rows
    from adaptkit.runners.predict import base_on, load_model, open_run, predict

    run = open_run(str(folder), allow_code)
    check_consent(run.recipe, allow_code)  # its scorer may be code: the caller's --allow-code, never the folder's own say
    classifier = run.recipe.task in ("sequence_classification", "image_classification")
    rows = read_rows(eval_data, "test", "--eval-data")
    rescored = run.recipe.model_copy(update={"data": run.recipe.data.model_copy(update={"eval": eval_data})})
    leaked = _leaked(run.recipe, rows)
    if leaked.get("rows"):  # as a run refuses: a score on rows it trained on overstates it
        return None, None, (f"{leaked['rows']} of the {leaked['of']} --eval-data rows are in this run's training data ({leaked['exact']} "
                            f"exact, {leaked['near']} near duplicates): its score would be overstated; score it on rows it did not train on")
    loaded = load_model(run)
    predicted, scores = predict(run, rows, max_new_tokens=run.recipe.training.max_new_tokens, loaded=loaded)
    if scores is None:
        wanted = run.recipe.data.label_column if classifier else (run.recipe.data.messages_column or run.recipe.data.response_column)
        return None, None, f"--eval-data {eval_data}: no `{wanted}` column to score {folder} with"
    keep = ("accuracy", "f1_macro", "primary_metric") if classifier else tuple(k for k in scores if k not in ("rows", "judge_prompt"))
    eval_metrics = {k: v for k, v in scores.items() if k in keep}
    if not classifier:
        eval_metrics.update(base_on(run, loaded, rows, eval_metrics))
    recipe = {**recipe, "data": {**(recipe.get("data") or {}), "eval": eval_data}}  # its tokens a request: the new rows'
    return {**metrics, "eval": eval_metrics, "eval_data": {**eval_identity(rescored), "rows": len(predicted)}, "rescored": True}, recipe, None


def _leaked(recipe, rows: list[dict]) -> dict:
    """The rows the run trained on (its recipe's own split, read again) against new eval `rows`, as a run checks its
    eval rows; {} when its training data is not on this machine (a run made elsewhere: nothing to check against)."""
    from adaptkit.runners.data import Splits, leaks, load_data

    try:
        data = load_data(recipe)
    except AdaptkitError:
        return {}
    return leaks(recipe, data.kind, data.train, rows) if isinstance(data, Splits) and data.train else {}


def token_counter(folder: Path):
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
        metrics, _, error = read_run(folder) if (folder / "metrics.json").is_file() else (None, None, "no run")
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


def check_same_data(recipes) -> None:
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


def scored_on(eval_data: str | None) -> tuple[str, ...]:
    """The overrides that score a recipe on a shared held-out file (beside it, data.eval_fraction holds out nothing):
    what compare, the bake-off and tune run a recipe with, and so what they count its training rows with."""
    return (f"data.eval={eval_data}",) if eval_data else ()


def run_one(ref: str, out: Path, eval_data: str | None, allow_code: bool, run,
         pinned: tuple[str, ...] = ()) -> tuple[dict | None, dict | None, str | None]:
    """(metrics, recipe, error) for a finished run folder (scored again when eval_data is given) or a recipe run now."""
    folder = Path(ref)
    if folder.is_dir() and (folder / "metrics.json").is_file():
        return _rescore(folder, eval_data, out, allow_code, run) if eval_data else read_run(folder)
    if folder.is_dir():
        return None, None, f"{folder}: a folder without metrics.json (not a finished run)"
    overrides = [f"output_dir={out}", *pinned, *scored_on(eval_data)]

    try:
        result = run(ref, overrides, overwrite=True, allow_code=allow_code)
    except AdaptkitError as exc:
        return None, None, one_line(str(exc).strip().splitlines()[-1] if str(exc).strip() else exc.__class__.__name__)[:300]
    except Exception as exc:  # one recipe's crash is its row's failure, not the comparison's
        return None, None, one_line(f"unexpected {exc.__class__.__name__}: {exc}")[:300]
    from adaptkit._yaml import loads_yaml

    try:
        recipe = loads_yaml((out / "recipe.yaml").read_text(encoding="utf-8")) if (out / "recipe.yaml").is_file() else {}
    except ValueError as exc:
        return None, None, f"the run's recipe.yaml could not be read ({exc.__class__.__name__})"
    return result.metrics, recipe, None


def _chart(rows: list[dict], path: Path) -> None:
    if not rows:
        return
    import matplotlib.pyplot as plt

    fig = figure(rows)
    fig.savefig(path)
    plt.close(fig)


def figure(rows: list[dict]):
    """compare.png: a horizontal bar per run (names on their own lines, never overlapping), its 95% interval as an
    error bar, its base as a tick."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [Path(r["recipe"]).name if len(r["recipe"]) > 40 else r["recipe"] for r in rows]
    fig, ax = plt.subplots(figsize=(7.5, 0.55 * len(rows) + 1.3), dpi=110)
    values = [r["value"] for r in rows]
    low = [r["value"] - r.get("low", r["value"]) for r in rows]
    high = [r.get("high", r["value"]) - r["value"] for r in rows]
    ax.barh(range(len(rows)), values, xerr=[low, high], color="#1f77b4", capsize=3, height=0.6)
    based = [(i, r["base_value"]) for i, r in enumerate(rows) if isinstance(r.get("base_value"), (int, float))]
    if based:
        ax.scatter([b for _, b in based], [i for i, _ in based], marker="|", s=300, color="black", label="base", zorder=3)
        ax.legend(loc="lower right", fontsize=8)
    ax.set_yticks(range(len(rows)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"{rows[0]['metric']} (bars: 95% interval over the eval rows)")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig
