"""Runs over several machines: the launch flags, the per-machine layout, and a real two-machine launch on one host."""

import json
import os
import subprocess
import sys

import pytest

from adaptkit.errors import InputError
from adaptkit.launch import Launch, layout


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.train
def test_two_machines_on_one_host_train_one_model_with_the_combined_batch(tmp_path):
    """Two launchers, ranks 0 and 1, meeting on 127.0.0.1 over gloo (one process each), as two machines would."""
    out, port = tmp_path / "run", _free_port()
    env = {**os.environ, "ADAPTKIT_FAKE_GPUS": "0", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    common = [sys.executable, "-m", "adaptkit", "run", "lora_cls", f"output_dir={out}", "training.max_steps=4",
              "training.batch_size=8", "training.logging_steps=1", "data.max_rows=64", "--num-processes", "2",
              "--num-machines", "2", "--main-process-ip", "127.0.0.1", "--main-process-port", str(port)]
    second = subprocess.Popen(common + ["--machine-rank", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    first = subprocess.run(common + ["--machine-rank", "0", "--json"], capture_output=True, text=True, env=env, timeout=300)
    other_out, other_err = second.communicate(timeout=120)
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, other_err
    assert "--nnodes 2 --node_rank 0 --master_addr 127.0.0.1" in first.stderr and "--node_rank 1" in other_err
    assert f"machine 1 of 2 done: machine 0 (127.0.0.1) wrote the run to {out}" in other_err and not other_out.strip()
    train = json.loads(first.stdout)["train"]
    assert (train["processes"], train["machines"], train["global_batch"]) == (2, 2, 8)  # the recipe's batch, 4 + 4
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert next(row for row in log if row["step"] == 4 and "loss" in row)["epoch"] == pytest.approx(4 * 8 / 64)
    # one model, in machine 0's folder; machine 1's rank wrote its share of the checkpoint there too (a shared disk)
    assert (out / "adapter_model.safetensors").is_file() and len(list(tmp_path.iterdir())) == 1
    assert {p.name for p in (out / "checkpoint-4").glob("rng_state_*.pth")} == {"rng_state_0.pth", "rng_state_1.pth"}


@pytest.mark.parametrize("flags, message", [
    (["--num-processes", "3", "--num-machines", "2", "--main-process-ip", "10.0.0.1"], "a multiple of 2"),
    (["--num-processes", "4", "--num-machines", "2"], "needs --main-process-ip"),
    (["--num-processes", "4", "--num-machines", "2", "--main-process-ip", "10.0.0.1", "--machine-rank", "2"], "rank is 0 to 1"),
    (["--machine-rank", "1"], "add --num-machines N"),
])
def test_bad_launch_flags_are_one_line_and_write_nothing(invoke, tmp_path, flags, message):
    out = tmp_path / "run"
    result = invoke("run", "lora_cls", f"output_dir={out}", *flags)
    assert result.exit_code == 2 and message in result.stderr and "Traceback" not in result.output
    assert not out.exists()


def test_the_dry_run_lays_out_machines_and_keeps_the_global_batch(invoke):
    report = json.loads(invoke("run", "lora_cls", "training.batch_size=16", "--num-processes", "16", "--num-machines", "2",
                               "--dry-run", "--json").stdout)
    commands = report["commands"]
    assert commands["layout"] == "2 machines x 8 GPUs = 16 processes"
    assert "--num-processes 16 --num-machines 2 --machine-rank $MACHINE_RANK --main-process-ip $MAIN_IP" in commands["on_each_machine"]
    assert "--num_machines 2 --machine_rank $MACHINE_RANK" in commands["same_with_accelerate"]
    assert report["batch"].startswith("16 examples per optimizer step = 1 per device x 16 process(es)")


def test_launchers_take_the_flags_their_docs_give():
    gpus = Launch(16, 2, 1, "10.0.0.1", 29500).launcher(gpus=True)
    assert gpus == ["-m", "accelerate.commands.launch", "--num_processes", "16", "--multi_gpu", "--num_machines", "2",
                    "--machine_rank", "1", "--main_process_ip", "10.0.0.1", "--main_process_port", "29500"]
    cpus = Launch(4, 2, 1, "10.0.0.1", 29400).launcher(gpus=False)
    assert cpus == ["-m", "torch.distributed.run", "--nproc_per_node", "2", "--nnodes", "2", "--node_rank", "1",
                    "--master_addr", "10.0.0.1", "--master_port", "29400"]
    assert Launch(2).launcher(gpus=False, port=1234)[-4:] == ["--master_addr", "127.0.0.1", "--master_port", "1234"]


def test_gpus_per_node_makes_machines():
    assert (layout(16, 8).machines, layout(16, 8).per_machine) == (2, 8)
    assert layout(8, 8).machines == 1 and layout(4).processes == 4
    with pytest.raises(InputError, match="evenly"):
        layout(12, 8)


def test_the_emitted_recipe_runs_on_each_machine(invoke, tmp_path):
    target = tmp_path / "plan.yaml"
    result = invoke("advise", "--no-input", "--set", "task=generation", "--set", "goal=domain_adaptation", "--set", "weight_access=open",
                    "--set", "model_params_b=8", "--set", "num_gpus=16", "--set", "gpus_per_node=8", "--set", "gpu_vram_gb=80",
                    "--set", "labeled_examples=5000", "--emit-recipe", target)
    assert result.exit_code == 0, result.output
    header = target.read_text()
    assert "2 machines x 8 GPUs = 16 processes" in header and "--num-machines 2 --machine-rank $MACHINE_RANK" in header
    uneven = invoke("advise", "--no-input", "--set", "task=generation", "--set", "goal=behavior", "--set", "weight_access=open",
                    "--set", "num_gpus=12", "--set", "gpus_per_node=8", "--set", "gpu_vram_gb=80")
    assert uneven.exit_code == 2 and "a multiple of 8" in uneven.stderr
