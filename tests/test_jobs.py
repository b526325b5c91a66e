"""Cluster job files: the sbatch script and the SkyPilot task, checked by their own parsers and run on one host as two
machines (a fake srun starts one task per "node", as SLURM does; SkyPilot's run section is run once per node)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SKY_PYTHON = Path(os.environ.get("ADAPTKIT_SKYPILOT_PYTHON", ROOT / ".venv-sky" / "bin" / "python"))
TRAIN = ("training.max_steps=4", "training.batch_size=8", "training.logging_steps=1", "data.max_rows=64")

FAKE_SRUN = """#!/bin/bash
# srun as SLURM runs a one-task-per-node step: the command once per node, SLURM_NODEID set, all at once
while [[ "$1" == --* ]]; do shift; done
pids=()
for ((node = 0; node < SLURM_NNODES; node++)); do
  SLURM_NODEID=$node "$@" > "$FAKE_LOGS/node$node.out" 2> "$FAKE_LOGS/node$node.err" &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
exit $status
"""
FAKE_SCONTROL = """#!/bin/bash
# `scontrol show hostnames NODELIST`: one host per node; every "node" here is this host. A big cluster's list is
# long: the script must read it whole, or scontrol dies of a closed pipe (exit 141, which pipefail passes on)
for ((node = 0; node < SLURM_NNODES; node++)); do echo 127.0.0.1; done
for ((line = 0; line < 20000; line++)); do echo 127.0.0.1; done
"""
ECHO_SRUN = """#!/bin/bash
while [[ "$1" == --* ]]; do shift; done
echo "RESUME=[$RESUME]"
"""


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _tools(folder: Path, **scripts: str) -> Path:
    folder.mkdir()
    for name, text in scripts.items():
        (folder / name).write_text(text)
        (folder / name).chmod(0o755)
    return folder


def _env(tmp_path: Path, tools: Path, **extra) -> dict:
    venv_bin = str(Path(sys.executable).parent)  # `adaptkit` as installed beside this Python
    return {**os.environ, "PATH": f"{tools}:{venv_bin}:{os.environ['PATH']}", "ADAPTKIT_FAKE_GPUS": "0", "HF_HUB_OFFLINE": "1",
            "OMP_NUM_THREADS": "1", **extra}


def _sbatch_lines(text: str) -> dict:
    lines = {}
    for line in text.splitlines():
        if line.startswith("#SBATCH "):
            key, _, value = line[len("#SBATCH "):].partition("=")
            lines[key] = value
    return lines


@pytest.mark.train
def test_the_sbatch_script_parses_and_runs_two_machines(invoke, tmp_path):
    out, port, script = tmp_path / "run", _free_port(), tmp_path / "job.sbatch"
    result = invoke("export", "lora_cls", f"output_dir={out}", *TRAIN, "--format", "slurm", "--machines", "2", "--gpus", "1",
                    "--main-process-port", port, "--partition", "gpu", "--time", "2:00:00", "-o", script)
    assert result.exit_code == 0, result.output
    text = script.read_text()
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    assert _sbatch_lines(text) == {"--job-name": "adaptkit-run", "--nodes": "2", "--ntasks-per-node": "1", "--gpus-per-node": "1",
                                   "--time": "2:00:00", "--requeue": "", "--open-mode": "append",
                                   "--output": "adaptkit-run-%j.out", "--partition": "gpu"}
    # every #SBATCH line comes before the first command, where sbatch reads them
    first_command = next(i for i, line in enumerate(text.splitlines()) if line and not line.startswith("#"))
    assert all(i < first_command for i, line in enumerate(text.splitlines()) if line.startswith("#SBATCH"))
    tools = _tools(tmp_path / "bin", srun=FAKE_SRUN, scontrol=FAKE_SCONTROL)
    logs = tmp_path / "logs"
    logs.mkdir()
    env = _env(tmp_path, tools, SLURM_NNODES="2", SLURM_JOB_NODELIST="node[1-2]", FAKE_LOGS=str(logs))
    job = subprocess.run(["bash", str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert job.returncode == 0, job.stderr[-2000:] + "".join(p.read_text()[-3000:] for p in sorted(logs.glob("*.err")))
    assert "--nnodes 2 --node_rank 1 --master_addr 127.0.0.1" in (logs / "node1.err").read_text()
    train = json.loads((out / "metrics.json").read_text())["train"]
    assert (train["processes"], train["machines"], train["global_batch"]) == (2, 2, 8)


@pytest.mark.parametrize("restarts, checkpoint, expected", [
    ("0", False, ""), ("1", False, "--overwrite"), ("1", True, "--resume"), ("0", True, ""),
])
def test_a_requeued_job_resumes_from_a_complete_checkpoint(invoke, tmp_path, restarts, checkpoint, expected):
    out, script = tmp_path / "runs" / "mine", tmp_path / "job.sbatch"
    assert invoke("export", "lora_cls", f"output_dir={out}", "--format", "slurm", "-o", script).exit_code == 0
    if checkpoint:
        (out / "checkpoint-2").mkdir(parents=True)
        (out / "checkpoint-2" / "trainer_state.json").write_text("{}")
    (out.parent / ".mine.adaptkit-pending" / "checkpoint-9").mkdir(parents=True)  # incomplete: no trainer_state.json
    tools = _tools(tmp_path / "bin", srun=ECHO_SRUN, scontrol=FAKE_SCONTROL)
    env = _env(tmp_path, tools, SLURM_NNODES="1", SLURM_JOB_NODELIST="node1", SLURM_RESTART_COUNT=restarts)
    job = subprocess.run(["bash", str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert job.returncode == 0 and f"RESUME=[{expected}]" in job.stdout, job.stderr


def _sky_parse(path: Path) -> dict:
    """The task as SkyPilot's own parser reads it (SkyPilot lives in its own venv, made by `make`)."""
    if not SKY_PYTHON.is_file():
        pytest.fail(f"SkyPilot's parser is not installed at {SKY_PYTHON}: run `make .venv-sky/.installed` (make test does)")
    code = ("import json, sys, sky\n"
            "task = sky.Task.from_yaml(sys.argv[1])\n"
            "print(json.dumps({'nodes': task.num_nodes, 'accelerators': sorted(str(r.accelerators) for r in task.resources),\n"
            "                  'mounts': sorted(task.storage_mounts), 'run': task.run, 'setup': task.setup,\n"
            "                  'files': {k: v for k, v in (task.file_mounts or {}).items()}}))")
    parsed = subprocess.run([str(SKY_PYTHON), "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert parsed.returncode == 0, parsed.stderr[-2000:]
    return json.loads(parsed.stdout.strip().splitlines()[-1])


@pytest.mark.train
def test_the_skypilot_task_parses_and_its_run_trains_on_two_nodes(invoke, tmp_path):
    path, port = tmp_path / "job.sky.yaml", _free_port()
    result = invoke("export", "lora_cls", *TRAIN, "--format", "skypilot", "--machines", "2", "--gpus", "1",
                    "--main-process-port", port, "--bucket", "team-runs", "-o", path)
    assert result.exit_code == 0, result.output
    task = _sky_parse(path)
    assert task["nodes"] == 2 and task["mounts"] == ["/runs"] and task["files"] == {"/opt/adaptkit": str(ROOT)}
    assert "pip install -e '/opt/adaptkit[train]'" in task["setup"]  # this clone, synced to the nodes and installed
    # the embedded MiniLM fits every listed GPU: the three cheapest, one GPU per node each
    assert task["accelerators"] == ["{'RTX3090': 1}", "{'RTX4090': 1}", "{'T4': 1}"]
    assert "--machine-rank \"$SKYPILOT_NODE_RANK\"" in task["run"] and "output_dir=/runs/lora_cls" in task["run"]
    # SkyPilot runs `run` on every node with its variables; here both "nodes" are this host and /runs a folder
    runs = tmp_path / "bucket"
    run = task["run"].replace("/runs", str(runs))
    env = {**_env(tmp_path, tmp_path), "SKYPILOT_NODE_IPS": "127.0.0.1\n127.0.0.1", "SKYPILOT_NUM_NODES": "2"}
    nodes = [subprocess.Popen(["bash", "-c", run], cwd=ROOT, env={**env, "SKYPILOT_NODE_RANK": str(rank)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for rank in (0, 1)]
    finished = [node.communicate(timeout=300) for node in nodes]
    assert all(node.returncode == 0 for node in nodes), [err[-2000:] for _, err in finished]
    train = json.loads((runs / "lora_cls" / "metrics.json").read_text())["train"]
    assert (train["processes"], train["machines"]) == (2, 2)


def test_the_skypilot_gpu_is_the_one_the_estimate_fits(invoke):
    text = invoke("export", "cpt", "model=Qwen/Qwen2.5-7B", "method=full_finetuning", "lora=", "training.sharding=zero3",
                  "training.gradient_accumulation=2", "--format", "skypilot", "--machines", "2", "--gpus", "8").stdout
    accelerators = re.search(r"accelerators: \{(.*)\}", text).group(1)
    assert "T4" not in accelerators and all(name in accelerators for name in ("A100-80GB", "H100")), accelerators
    asked = invoke("export", "cpt", "--format", "skypilot", "--gpu", "H100-PCIe")
    assert asked.exit_code == 2 and "does not name it apart" in asked.stderr
    too_big = invoke("export", "cpt", "model=Qwen/Qwen2.5-7B", "method=full_finetuning", "lora=", "--format", "skypilot", "--gpus", "1")
    assert too_big.exit_code == 2 and "fits no listed GPU" in too_big.stderr and "zero3" in too_big.stderr


def test_jobs_refuse_what_trains_nothing_and_bad_settings(invoke, tmp_path):
    assert "trains nothing" in invoke("export", "icl", "--format", "slurm").stderr
    uneven = invoke("export", "cpt", "--format", "slurm", "--machines", "2", "--gpus", "8")  # a batch of 8 over 16 GPUs
    assert uneven.exit_code == 2 and "cannot be split evenly over 16 processes" in uneven.stderr
    bad_time = invoke("export", "lora_cls", "--format", "slurm", "--time", "tomorrow")
    assert bad_time.exit_code == 2 and "--time tomorrow" in bad_time.stderr
    existing = tmp_path / "job.sbatch"
    existing.write_text("mine")
    kept = invoke("export", "lora_cls", "--format", "slurm", "-o", existing)
    assert kept.exit_code != 0 and existing.read_text() == "mine"


def test_the_python_api_writes_the_same_job(invoke):
    import adaptkit
    from adaptkit.errors import InputError

    text = adaptkit.cluster_job("lora_cls", ["training.max_steps=4"], format="slurm", machines=2, gpus=1)
    assert text == invoke("export", "lora_cls", "training.max_steps=4", "--format", "slurm", "--machines", "2", "--gpus", "1").stdout
    with pytest.raises(InputError, match="trains nothing"):
        adaptkit.cluster_job("icl", format="skypilot")
