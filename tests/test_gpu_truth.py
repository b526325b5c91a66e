"""benchmarks/gpu_truth.py --cpu-smoke: the GPU truth script's whole code path (build, data, adaptkit run, table)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_truth_cpu_smoke_writes_the_table(tmp_path):
    pytest.importorskip("torch")
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_truth.py"), "--cpu-smoke", "--out", str(tmp_path),
                           "--methods", "lora", "qlora", "dpo"],  # full and prompt tuning run through the same cell code
                          capture_output=True, text=True, timeout=900, env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    (report_file,) = tmp_path.glob("gpu_truth-*-cpu.json")
    report = json.loads(report_file.read_text())
    rows = {(r["method"], r["seq_len"], r["batch"]): r for r in report["rows"]}
    assert len(rows) == 6 and report["device"] == "cpu"
    for (method, _, _), row in rows.items():
        if method == "qlora":
            assert row["status"].startswith("skipped") and "bitsandbytes" in row["status"]
            continue
        assert row["status"] == "ok", row
        assert row["measured_peak_gb"] > 0 and row["predicted_peak_gb"] > 0 and row["tokens_per_second"] > 0
        assert row["error_pct"] is None  # a CPU's RSS is never compared with a GPU estimate
    assert rows[("lora", 64, 2)]["predicted_peak_gb"] > rows[("lora", 32, 1)]["predicted_peak_gb"]
    table = report_file.with_suffix(".md").read_text()
    assert "| tiny | dpo | 64 | 2 |" in table and "peak RSS" in table
