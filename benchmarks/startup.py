"""Measure how fast the commands users wait on answer, against `python -c pass` in the same run.

    python benchmarks/startup.py [--runs 20] [--max-seconds 0.3]

Prints the median wall time of each command and its ratio to the bare interpreter start,
and exits 1 when a command's median is over --max-seconds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "answers" / "support_tickets.yaml"


def adaptkit() -> list[str]:
    script = Path(sys.executable).with_name("adaptkit")
    return [str(script)] if script.exists() else [sys.executable, "-m", "adaptkit"]


def median_wall(command: list[str], runs: int) -> float:
    env = dict(os.environ, ADAPTKIT_FAKE_GPUS=os.environ.get("ADAPTKIT_FAKE_GPUS", "0"))
    subprocess.run(command, capture_output=True, env=env, check=True)  # warm the disk cache
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, env=env, check=True, stdin=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--max-seconds", type=float, default=0.3)
    args = parser.parse_args()

    baseline = median_wall([sys.executable, "-c", "pass"], args.runs)
    cases = {
        "adaptkit --help": adaptkit() + ["--help"],
        "adaptkit advise --answers F --json": adaptkit() + ["advise", "--answers", str(EXAMPLE), "--json"],
        "adaptkit advise --answers F (table)": adaptkit() + ["advise", "--answers", str(EXAMPLE)],
        "adaptkit methods": adaptkit() + ["methods"],
        "adaptkit estimate --method M --json": adaptkit() + ["estimate", "--model", "meta-llama/Llama-3.1-8B", "--method",
                                                           "lora_adapters", "--gpu", "4090", "--json"],
        "adaptkit estimate (all methods) --json": adaptkit() + ["estimate", "--model", "meta-llama/Llama-3.1-70B", "--gpu", "A100-80GB",
                                                              "--json"],
        "adaptkit hardware --json": adaptkit() + ["hardware", "--json"],
    }
    print(f"{'command':40} {'median s':>9} {'x python -c pass':>17}")
    print(f"{'python -c pass':40} {baseline:9.3f} {1.0:17.1f}")
    slow = []
    for name, command in cases.items():
        seconds = median_wall(command, args.runs)
        print(f"{name:40} {seconds:9.3f} {seconds / baseline:17.1f}")
        if seconds > args.max_seconds:
            slow.append(name)
    print(f"({args.runs} runs each, {os.cpu_count()} CPUs, Python {sys.version.split()[0]})")
    if slow:
        print(f"over {args.max_seconds} s: {', '.join(slow)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
