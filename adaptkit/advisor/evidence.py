"""Advice that reads measurements: runs in the ledger on the profile's own data (the same file, by its sha256) are
shown beside the rules, and where they disagree the measurement ranks the methods. Deterministic: among the measured
methods on the same metric, the cheapest whose score is within MARGIN of the best ranks first, then the other
measured ones by score, then the unmeasured in the rules' order. Cheapest: a month at the profile's volume (serving
plus the training run) where every such run priced its requests, else the bake-off's rule (lower cost tier, then
fewer prompt tokens, then less training). Torch-free."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

MARGIN = 0.02  # scores this close to the best count as as good (the same margin `compare` uses)


def data_hashes(profile) -> list[str]:
    """The sha256 of the profile's eval and training files (what a run on them was scored on), where they exist."""
    from adaptkit._files import sha256_of

    return [found for found in (sha256_of(Path(name)) for name in (profile.eval_data, profile.train_data) if name) if found]


def measured(profile) -> list[dict]:
    """Ledger records of runs scored on the profile's data, newest first; [] when there are none or no ledger."""
    from adaptkit import ledger

    if not ledger.enabled():
        return []
    records = []
    for digest in data_hashes(profile):
        records += [r for r in ledger.rows(data_sha256=digest) if r["value"] is not None]
    return records


def _row(record: dict) -> dict:
    """The bake-off's row of a recorded run: from its folder where it is still there, else from the record alone."""
    from adaptkit.comparison import read_run
    from adaptkit.methods.bakeoff import row

    folder = Path(record["folder"])
    metrics, recipe, error = read_run(folder)
    if error is None:
        found = row(str(folder), metrics, recipe, 0.5)
    else:
        found = {"recipe": str(folder), "method": record["method"], "metric": record["metric"], "value": record["value"],
                 "trainable_params": 1 if record.get("training_s") else 0, "training_s": record.get("training_s") or 0.0,
                 "tokens_per_request": None, "usd_per_1k_requests": None, "training_usd": 0.0}
    return {**found, "record": record["id"]}


def apply(advice, records: list[dict]):
    """The advice re-ranked by what was measured, with `evidence` saying what and why; unchanged when nothing was."""
    from adaptkit.methods.bakeoff import cost_order
    from adaptkit.methods.catalogue import methods

    candidates = {rec.method for rec in advice.recommendations}
    best: dict[str, dict] = {}  # per method, its best measured run that beat its own base (or had none to beat)
    unbeaten: dict[str, dict] = {}  # per method, its best run no better than its base: evidence it did not work, not for it
    for record in records:
        kept = unbeaten if isinstance(record.get("delta"), (int, float)) and record["delta"] <= 0 else best
        if record["method"] in candidates and (record["method"] not in kept or record["value"] > kept[record["method"]]["value"]):
            kept[record["method"]] = record
    unbeaten = {method: record for method, record in unbeaten.items() if method not in best}
    if not best:
        return _not_ranked_by(advice, unbeaten) if unbeaten else advice
    metric = max({r["metric"] for r in best.values()}, key=lambda m: sum(r["metric"] == m for r in best.values()))
    best = {m: r for m, r in best.items() if r["metric"] == metric}  # one metric: scores on others do not compare
    rows = [_row(r) for r in best.values()]
    forecasts = _at_your_data(advice.profile, best)
    for row in rows:
        if row["method"] in forecasts:
            row["measured"], row["value"] = row["value"], forecasts[row["method"]]["value"]
    catalogue = methods()
    top = max(r["value"] for r in rows)
    good = [r for r in rows if r["value"] >= top - MARGIN]
    monthly = _a_month(advice.profile, rows)
    priced = all(r["method"] in monthly for r in good)  # then the cheapest at the user's volume, else by cost tier
    first = min(good, key=lambda r: (monthly[r["method"]]["usd"], cost_order(r)) if priced else cost_order(r))
    order = [first["method"]] + [r["method"] for r in sorted(rows, key=lambda r: -r["value"]) if r["method"] != first["method"]]
    rule_order = [rec.method for rec in advice.recommendations]
    by_method = {rec.method: rec for rec in advice.recommendations}
    ranked = [by_method[m] for m in order] + [rec for rec in advice.recommendations if rec.method not in order]
    scores = ", ".join(f"{r['method']} {r['value']:.4f}" + (f" (forecast at your {forecasts[r['method']]['rows']:,} labels; "
                                                            f"measured {r['measured']:.4f})" if r["method"] in forecasts else "")
                       for r in sorted(rows, key=lambda r: -r["value"]))
    said = f"measured on your data ({len(records)} run{'s' if len(records) != 1 else ''} in the ledger, {metric}): {scores}"
    if len(rows) > 1:
        best_row = max(rows, key=lambda r: r["value"])
        cost = _compared(monthly, first, best_row) if priced else f"costs less ({catalogue[first['method']].cost_tier} cost)"
        said += (f"; {first['method']} is within {MARGIN:g} of the best and {cost}, so it ranks first" if first["value"] < top
                 else f"; {first['method']} scored best, so it ranks first")
    if rule_order[0] != ranked[0].method:
        said += f" (the rules alone ranked {rule_order[0]} first)"
    evidence = {"metric": metric, "runs": [{k: r.get(k) for k in ("method", "value", "measured", "record", "recipe",
                                                                     "usd_per_1k_requests", "training_s") if k in r} for r in rows],
                "forecasts": forecasts, "usd_a_month": monthly,
                "first": ranked[0].method, "rules_first": rule_order[0], "said": said}
    if unbeaten:
        evidence["said"] += "; " + _unbeaten_said(unbeaten)
        _note_unbeaten(ranked, unbeaten)
    for rec in ranked:
        if rec.method in best:
            value = best[rec.method]["value"]
            rec.rationale.insert(0, f"measured on your data: {metric} {value:.4f} (ledger run {best[rec.method]['id']})")
            if rec.method in forecasts:
                rec.rationale.insert(1, forecasts[rec.method]["said"])
            rec.why.insert(0, f"measured {metric} {value:.3f}")
    return replace(advice, recommendations=ranked, evidence=evidence)


def _unbeaten_said(unbeaten: dict[str, dict]) -> str:
    return "; ".join(f"{method} {r['metric']} {r['value']:.4f} is no better than its base ({r['base']:.4f}): not ranked by it"
                     for method, r in unbeaten.items())


def _note_unbeaten(recommendations, unbeaten: dict[str, dict]) -> None:
    for rec in recommendations:
        if rec.method in unbeaten:
            r = unbeaten[rec.method]
            rec.rationale.insert(0, f"measured on your data: {r['metric']} {r['value']:.4f}, no better than its base {r['base']:.4f} "
                                    f"(ledger run {r['id']}): a run that did not learn is not ranked by; change its settings "
                                    "(adaptkit tune) or its data")


def _not_ranked_by(advice, unbeaten: dict[str, dict]):
    """The rules' ranking, saying which measured runs did not beat their base (and so rank nothing)."""
    _note_unbeaten(advice.recommendations, unbeaten)
    metric = next(iter(unbeaten.values()))["metric"]
    said = f"measured on your data ({len(unbeaten)} method{'s' if len(unbeaten) != 1 else ''}): {_unbeaten_said(unbeaten)}"
    first = advice.recommendations[0].method
    runs = [{"method": m, "value": r["value"], "base": r["base"], "record": r["id"], "recipe": r["folder"]} for m, r in unbeaten.items()]
    return replace(advice, evidence={"metric": metric, "runs": runs, "unbeaten": sorted(unbeaten), "forecasts": {},
                                     "usd_a_month": {}, "first": first, "rules_first": first, "said": said})


def _a_month(profile, rows: list[dict]) -> dict[str, dict]:
    """Per measured method whose run priced its requests: a month at the profile's volume (the requests a day the
    cost rule assumes for it), serving plus the training run once."""
    from adaptkit.advisor.rules import rules

    per_day = next(rule.assume["requests_per_day"] for rule in rules() if "requests_per_day" in rule.assume)[profile.inference_volume]
    out = {}
    for row in rows:
        if row.get("usd_per_1k_requests") is not None:
            serving = row["usd_per_1k_requests"] * per_day * 30 / 1000
            out[row["method"]] = {"usd": round(serving + (row.get("training_usd") or 0.0), 4), "serving_usd": round(serving, 4),
                                  "training_usd": row.get("training_usd") or 0.0, "requests_per_day": per_day}
    return out


def _compared(monthly: dict, first: dict, best: dict) -> str:
    """What the ranked-first method costs at the user's volume beside the best scorer."""
    mine, theirs = monthly[first["method"]], monthly[best["method"]]
    share = f" ({mine['usd'] / theirs['usd']:.2g}x)" if theirs["usd"] > 0 else ""
    return (f"costs less at your volume: ${mine['usd']:,.2f} a month at ~{mine['requests_per_day']:,} requests a day against "
            f"{best['method']}'s ${theirs['usd']:,.2f}{share}, training included")


def _at_your_data(profile, best: dict[str, dict]) -> dict[str, dict]:
    """Per measured method with a learning curve (a bake-off's), its forecast score at the profile's own labeled
    examples where they differ from the rows it was measured on: a flat curve gains nothing from more labels, a steep
    one does, and fewer labels than measured cost a data-hungry method its lead."""
    from adaptkit.curves import advice as curve_advice
    from adaptkit.curves import forecast_at, rough

    labels = getattr(profile, "labeled_examples", 0) or 0
    out = {}
    for method, record in best.items():
        curve = (record.get("record") or {}).get("curve")
        if not curve or not labels or labels == (curve.get("rows") or {}).get("full") or rough(curve):
            continue  # a rough fit forecasts nothing to rank by: the measured score stands
        value = round(forecast_at(curve, labels), 4)
        out[method] = {"value": value, "rows": labels, "measured_rows": curve["rows"]["full"], "flat": curve.get("flat"),
                       "said": f"learning curve: {record['metric']} {value:.4f} forecast at your {labels:,} labels (measured "
                               f"{record['value']:.4f} on {curve['rows']['full']:,}); " + curve_advice(method, curve, record["metric"])}
    return out
