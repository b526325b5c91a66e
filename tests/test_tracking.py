"""training.report_to: the trackers users already have, offline."""

import importlib.util
import json

import pytest


def test_tensorboard_logs_into_the_run(invoke, tmp_path):
    pytest.importorskip("tensorboard")
    out = tmp_path / "tb"
    result = invoke("run", "lora_cls", f"output_dir={out}", "training.max_steps=3", "training.batch_size=8",
                    "training.logging_steps=1", "training.report_to=[tensorboard]", "data.max_rows=48", "--json")
    assert result.exit_code == 0, result.output
    events = list(out.rglob("events.out.tfevents.*"))
    assert events and all(out in e.parents for e in events)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(events[0].parent))
    accumulator.Reload()
    assert any("loss" in tag for tag in accumulator.Tags()["scalars"])
    assert json.loads(result.stdout)["train"]["steps"] == 3


@pytest.mark.parametrize("tracker", ["wandb", "mlflow"])
def test_a_tracker_that_is_not_installed_is_one_line_before_training(invoke, tmp_path, tracker, monkeypatch):
    found = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *rest: None if name == tracker else found(name, *rest))  # absent
    out = tmp_path / "x"
    result = invoke("run", "lora_cls", f"output_dir={out}", f"training.report_to=[{tracker}]")
    assert result.exit_code == 2 and f"pip install {tracker}" in result.stderr and not out.exists()


def test_an_unknown_tracker_is_refused_by_the_recipe(invoke, tmp_path):
    result = invoke("run", "lora_cls", f"output_dir={tmp_path / 'x'}", "training.report_to=[comet]", "--dry-run")
    assert result.exit_code == 2 and "report_to" in result.stderr


def test_mlflow_logs_into_the_run_folder_and_reads_back(invoke, tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    pytest.importorskip("sqlalchemy")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)  # nothing may land in the working folder
    out = tmp_path / "tracked"
    result = invoke("run", "lora_cls", f"output_dir={out}", "training.max_steps=3", "training.logging_steps=1",
                    "training.report_to=[mlflow]", "--json")
    assert result.exit_code == 0, result.output
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    runs = [run for experiment in client.search_experiments() for run in client.search_runs([experiment.experiment_id])]
    assert runs and any("loss" in run.data.metrics for run in runs)
    assert not (tmp_path / "mlruns").exists()
