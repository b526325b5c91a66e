"""Learning curves: a trained method's score against its training rows, fitted as a saturating power law
score(n) = a - b * n^-c (the form of Hestness et al., arXiv:1712.00409, and of the scaling-law literature), with its
uncertainty, to forecast the score at the full data and at 2x and 5x more. Torch-free (numpy and scipy)."""

from __future__ import annotations

import math

DRAWS = 400  # parametric bootstrap draws for the forecast's interval
FLAT = 0.01  # a forecast gain below this from twice the data: more labels are not the lever
ROUGH = 0.05  # a fit that misses a measured score by more than this: the scores do not saturate as the law assumes
CURVE_FILE = "learning_curve.json"  # in a bake-off candidate's largest run: the ledger keeps it with the run (advise reads it)


def _fit(rows, scores):
    import numpy as np
    from scipy.optimize import curve_fit

    def law(n, a, b, c):
        return a - b * np.power(n, -c)

    x, y = np.asarray(rows, dtype=float), np.asarray(scores, dtype=float)
    start = (min(1.0, y.max() + 0.05), max(1e-3, (y.max() - y.min()) * x.min() ** 0.5 + 1e-3), 0.5)
    import warnings

    with warnings.catch_warnings():  # three points fit three parameters exactly: no covariance, so the interval is bootstrapped
        warnings.simplefilter("ignore")
        params, _ = curve_fit(law, x, y, p0=start, bounds=([0.0, 0.0, 0.05], [1.5, np.inf, 3.0]), maxfev=20000)
    return params, law


def learning_curve(points: list[tuple[int, float, float]], full_rows: int, ceiling: float = 1.0) -> dict | None:
    """Fit (rows, score, score's standard error) points; None with fewer than three. The interval comes from refitting
    on scores drawn within their errors (seeded); forecasts are capped at `ceiling` (a share cannot pass 1)."""
    if len(points) < 3 or len({n for n, _, _ in points}) < 3:
        return None
    import numpy as np

    rows = [n for n, _, _ in points]
    scores = [s for _, s, _ in points]
    try:
        params, law = _fit(rows, scores)
    except (RuntimeError, ValueError):  # no power law through these points
        return None
    targets = {"full": full_rows, "2x": 2 * full_rows, "5x": 5 * full_rows}
    forecast = {name: min(ceiling, float(law(n, *params))) for name, n in targets.items()}
    rng = np.random.default_rng(0)
    drawn: dict[str, list[float]] = {name: [] for name in targets}
    errors = [max(e, 1e-4) for _, _, e in points]
    for _ in range(DRAWS):
        sample = [s + rng.normal(0, e) for s, e in zip(scores, errors)]
        try:
            p, _ = _fit(rows, sample)
        except (RuntimeError, ValueError):
            continue
        for name, n in targets.items():
            drawn[name].append(min(ceiling, float(law(n, *p))))
    interval = {name: [round(float(np.percentile(v, 2.5)), 4), round(float(np.percentile(v, 97.5)), 4)] if len(v) >= 20 else None
                for name, v in drawn.items()}
    gain = forecast["2x"] - forecast["full"]
    missed = max(abs(float(law(n, *params)) - s) for n, s in zip(rows, scores))
    return {"law": "score = a - b * rows^-c", "a": round(float(params[0]), 4), "b": round(float(params[1]), 4),
            "c": round(float(params[2]), 4), "points": [{"rows": n, "score": round(s, 4)} for n, s, _ in points],
            "forecast": {name: round(v, 4) for name, v in forecast.items()}, "interval_95": interval,
            "rows": targets, "gain_at_2x": round(gain, 4), "flat": gain < FLAT, "fit_error": round(missed, 4)}


def forecast_at(curve: dict, rows: int, ceiling: float = 1.0) -> float:
    """The fitted curve's score at `rows` training rows (capped at `ceiling`)."""
    return min(ceiling, curve["a"] - curve["b"] * max(rows, 1) ** -curve["c"])


def standard_error(value: float, interval: dict | None, rows: int | None) -> float:
    """A score's standard error: from its 95% interval where the run measured one, else a proportion's."""
    if interval and "low" in interval and "high" in interval:
        return (interval["high"] - interval["low"]) / 3.92
    if rows:
        return math.sqrt(max(value * (1 - value), 1e-4) / rows)
    return 0.02


def rough(curve: dict) -> bool:
    """Whether the law misses a measured score by more than ROUGH (a curve recorded before fit_error counts as close)."""
    return curve.get("fit_error", 0) > ROUGH


def advice(method: str, curve: dict, metric: str) -> str:
    """What the curve says to do, in a line: the full data's score measured where a rung ran on all of it."""
    gain = curve["gain_at_2x"]
    measured = next((p["score"] for p in curve.get("points", []) if p["rows"] == curve["rows"]["full"]), None)
    said = (f"{method}: {metric} {measured:.3f} measured at the full data" if measured is not None
            else f"{method}: {metric} {curve['forecast']['full']:.3f} forecast at the full data")
    said += f"; twice the labels would add about {gain:+.3f}, five times {curve['forecast']['5x'] - curve['forecast']['full']:+.3f}"
    if rough(curve):
        said += (f"; but the law misses a measured score by {curve['fit_error']:.2f} (the scores do not level off as it assumes): "
                 "read these as rough")
    elif curve["flat"]:
        said += "; the curve is flat: a larger base model or another method is the better lever than more labels"
    return said
