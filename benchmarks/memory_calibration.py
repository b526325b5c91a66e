"""Run the memory estimator over the published measurements in calibration.yaml.

    python benchmarks/memory_calibration.py [--json]

For every point: the measured peak, adaptkit's estimate (read at the counter the source used), the
LLaMA-Factory rule of thumb (18x/8x/2x/1x/0.5x GB per billion parameters; 2x/1x/0.5x for inference)
and a weights-only estimate (as `accelerate estimate-memory` gives), each with its relative error;
then the median absolute error of each over the modeled points. Exits 1 if adaptkit's median error is
20% or more, or not below both baselines.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adaptkit._yaml import load_yaml  # noqa: E402
from adaptkit.estimator.architectures import load_model  # noqa: E402
from adaptkit.estimator.memory import Setup, estimate_memory  # noqa: E402
from adaptkit.methods.registry import setup_for  # noqa: E402

UNITS = {"GB": 1.0, "GiB": 2**30 / 1e9, "MiB": 2**20 / 1e9, "MB": 1e-3}
POINTS = Path(__file__).with_name("calibration.yaml")


def rule_of_thumb(params_b: float, setup: Setup) -> float:
    """LLaMA-Factory's table (GB = factor x billions of parameters), per device."""
    s = setup.resolved()
    if not s.trains:
        factor = {"none": 2.0, "8bit": 1.0, "4bit": 0.5}[s.quantization]
    elif s.trains_all_weights:
        factor = 8.0 if s.precision == "bf16" else 18.0
    else:
        factor = {"none": 2.0, "8bit": 1.0, "4bit": 0.5}[s.quantization]
    return factor * params_b / _split(s)


def weights_only(total_params: int, setup: Setup) -> float:
    """Parameters times bytes per parameter in the run's dtype (accelerate estimate-memory's 'Total Size')."""
    s = setup.resolved()
    per = {"none": 4.0 if s.precision == "fp32" else 2.0, "8bit": 1.0, "4bit": 0.5}[s.quantization]
    return total_params * per / 1e9 / _split(s)


def _split(s: Setup) -> int:
    return s.num_gpus if (s.sharding in ("zero3", "fsdp") or not s.trains) else 1


def run() -> dict:
    rows = []
    for point in load_yaml(POINTS):
        arch = load_model(point["model"])
        fields = dict(point["setup"])
        setup = setup_for(fields.pop("method"), **fields)
        memory = estimate_memory(arch, setup)
        ours = {"alloc": memory.allocated_gb, "active": memory.allocated_gb, "reserved": memory.reserved_gb,
                "nvml": memory.peak_gb}[point["metric"]]
        measured = point["measured"] * UNITS[point["unit"]]
        row = {
            "id": point["id"], "source": point["source"], "metric": point["metric"], "modeled": point.get("modeled", True),
            "note": point.get("note", ""), "measured_gb": measured, "adaptkit_gb": ours,
            "rule_of_thumb_gb": rule_of_thumb(arch.total_params / 1e9, setup),
            "weights_only_gb": weights_only(arch.total_params, setup),
        }
        for key in ("adaptkit", "rule_of_thumb", "weights_only"):
            row[f"{key}_error"] = row[f"{key}_gb"] / measured - 1
        rows.append(row)
    modeled = [r for r in rows if r["modeled"]]
    medians = {key: statistics.median(abs(r[f"{key}_error"]) for r in modeled) for key in ("adaptkit", "rule_of_thumb", "weights_only")}
    return {"points": rows, "modeled": len(modeled), "median_abs_error": medians}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{'point':28} {'counter':8} {'measured':>9} {'adaptkit':>9} {'err':>6} {'thumb':>8} {'err':>6} {'weights':>8} {'err':>6}")
        for r in result["points"]:
            mark = "" if r["modeled"] else "  (not modeled: " + r["note"] + ")"
            print(f"{r['id']:28} {r['metric']:8} {r['measured_gb']:9.2f} {r['adaptkit_gb']:9.2f} {r['adaptkit_error']:+6.0%} "
                  f"{r['rule_of_thumb_gb']:8.2f} {r['rule_of_thumb_error']:+6.0%} {r['weights_only_gb']:8.2f} {r['weights_only_error']:+6.0%}{mark}")
        m = result["median_abs_error"]
        print(f"\nmedian absolute error over {result['modeled']} modeled points: adaptkit {m['adaptkit']:.1%}, "
              f"LLaMA-Factory rule of thumb {m['rule_of_thumb']:.1%}, weights only {m['weights_only']:.1%}")
    m = result["median_abs_error"]
    ok = m["adaptkit"] < 0.20 and m["adaptkit"] < m["rule_of_thumb"] and m["adaptkit"] < m["weights_only"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
