"""The ledger: every finished run recorded once, listed, shown, removed and rebuilt from run folders; two processes
writing at once corrupt nothing."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.unit


def fake_run(folder, method="lora_adapters", value=0.9, base=0.2, sha="abc123"):
    folder.mkdir(parents=True)
    metrics = {"method": method, "task": "sequence_classification",
               "train": {"runtime_s": 12.5, "steps": 10, "trainable_params": 100, "total_params": 1000},
               "eval": {"accuracy": value, "primary_metric": "accuracy", "base": {"accuracy": base, "kind": "majority"}},
               "eval_data": {"source": "x.jsonl", "sha256": sha, "rows": 80},
               "resources": {"device": "cpu", "measured_peak_gb": 0.6, "predicted_peak_gb": 0.5, "tokens": 1000}}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    (folder / "recipe.yaml").write_text(yaml.safe_dump({"method": method, "model": "m", "training": {"epochs": 3}, "lora": {"r": 8}}))
    return folder


def test_scan_list_show_and_remove(invoke, tmp_path):
    fake_run(tmp_path / "runs" / "a")
    fake_run(tmp_path / "runs" / "b", method="prompt_engineering", value=0.7, sha="def456")
    (tmp_path / "runs" / "broken").mkdir()
    (tmp_path / "runs" / "broken" / "metrics.json").write_text("{not json")
    (tmp_path / "runs" / "broken" / "recipe.yaml").write_text("method: x\n")
    scanned = invoke("ledger", "scan", tmp_path / "runs")
    assert scanned.exit_code == 0 and "recorded 2 run(s)" in scanned.stdout and "skipped" in scanned.stderr
    again = invoke("ledger", "scan", tmp_path / "runs")  # a run already recorded is updated, not doubled
    found = json.loads(invoke("ledger", "list", "--json").stdout)
    mine = [r for r in found if r["folder"].startswith(str(tmp_path))]
    assert again.exit_code == 0 and len(mine) == 2
    lora = next(r for r in mine if r["method"] == "lora_adapters")
    assert lora["value"] == 0.9 and lora["base"] == 0.2 and lora["delta"] == pytest.approx(0.7) and lora["data_sha256"] == "abc123"
    assert lora["record"]["settings"] == {"lora": {"r": 8}} and lora["measured_peak_gb"] == 0.6
    only = json.loads(invoke("ledger", "list", "--data", "def456", "--json").stdout)
    assert [r["method"] for r in only] == ["prompt_engineering"]
    shown = json.loads(invoke("ledger", "show", lora["id"]).stdout)
    assert shown["folder"] == lora["folder"]
    assert invoke("ledger", "rm", lora["id"]).exit_code == 0
    gone = invoke("ledger", "show", lora["id"])
    assert gone.exit_code == 2 and "no run" in gone.stderr
    assert (tmp_path / "runs" / "a" / "metrics.json").is_file()  # the run folder itself is untouched


def test_two_processes_writing_at_once_corrupt_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("ADAPTKIT_LEDGER", str(tmp_path / "ledger.sqlite"))
    for n in range(2):
        for k in range(20):
            fake_run(tmp_path / f"w{n}" / f"run{k}", value=k / 20)
    code = ("import sys; from adaptkit import ledger\n"
            "for k in range(20): ledger.add_run(sys.argv[1] + f'/run{k}')\n")
    writers = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / f"w{n}")]) for n in range(2)]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    from adaptkit import ledger

    assert len(ledger.rows()) == 40
    with ledger.connect() as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("PRAGMA user_version").fetchone()[0] == ledger.SCHEMA


def test_a_newer_ledger_is_refused_not_overwritten(tmp_path, monkeypatch):
    import sqlite3

    monkeypatch.setenv("ADAPTKIT_LEDGER", str(tmp_path / "new.sqlite"))
    with sqlite3.connect(tmp_path / "new.sqlite") as db:
        db.execute("PRAGMA user_version=99")
    from adaptkit import ledger
    from adaptkit.errors import InputError

    with pytest.raises(InputError, match="newer than this adaptkit"):
        ledger.rows()


def test_the_ledger_commands_say_when_it_is_off(invoke, monkeypatch):
    monkeypatch.setenv("ADAPTKIT_LEDGER", "off")
    for args in (("list",), ("show", "1"), ("rm", "1")):
        said = invoke("ledger", *args)
        assert said.exit_code == 2 and said.stderr.startswith("error: the ledger is off (ADAPTKIT_LEDGER=off)"), said.output


def test_a_damaged_ledger_is_one_line_and_never_stops_advice_or_estimates(invoke, tmp_path, monkeypatch):
    """Another file where the ledger belongs: `ledger list` says so in one line; advise ranks by the rules alone and
    says why; estimate gives the plain figure; the file is left as it was."""
    where = tmp_path / "ledger.sqlite"
    where.write_text("not a database\n")
    monkeypatch.setenv("ADAPTKIT_LEDGER", str(where))
    listed = invoke("ledger", "list")
    assert listed.exit_code == 2 and "the ledger cannot be opened (file is not a database): move that file aside" in listed.stderr
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"text": f"ticket {i} about my order", "label": "ab"[i % 2]}) + "\n" for i in range(40)))
    advice = invoke("advise", "--set", "task=classification", "--set", "goal=behavior", "--set", "weight_access=open",
                    "--data", data, "--no-input", "--json")
    assert advice.exit_code == 0, advice.output
    assert any(note.startswith("no evidence from the ledger: ") for note in json.loads(advice.stdout)["notes"])
    assert invoke("estimate", "--recipe", "lora_sft", "--gpu", "A100-80GB", "--json").exit_code == 0
    assert where.read_text() == "not a database\n"


@pytest.mark.train
def test_every_finished_run_adds_one_record(invoke, tmp_path):
    out = tmp_path / "run"
    assert invoke("run", "lora_cls", f"output_dir={out}", "training.max_steps=2", "data.max_rows=32").exit_code == 0
    from adaptkit import ledger

    mine = [r for r in ledger.rows(method="lora_adapters") if r["folder"] == str(out.resolve())]
    assert len(mine) == 1 and mine[0]["metric"] == "accuracy" and mine[0]["data_sha256"] and mine[0]["training_s"] > 0
    # a replacement trains beside the old run and is swapped in: its record names the run's folder (still one record),
    # never the folder it trained in, which is gone
    again = invoke("run", "lora_cls", f"output_dir={out}", "training.max_steps=2", "data.max_rows=32", "--overwrite")
    assert again.exit_code == 0, again.output
    mine = [r for r in ledger.rows(method="lora_adapters") if Path(r["folder"]).parent == tmp_path]
    assert [r["folder"] for r in mine] == [str(out.resolve())] and mine[0]["id"] > 0


def test_the_ledger_is_part_of_the_library(tmp_path, monkeypatch):
    import adaptkit

    monkeypatch.setenv("ADAPTKIT_LEDGER", str(tmp_path / "l.sqlite"))
    adaptkit.ledger.add_run(fake_run(tmp_path / "r"))
    assert [r["method"] for r in adaptkit.ledger.rows()] == ["lora_adapters"]


def test_a_team_ledger_in_mlflow_takes_two_writers_and_answers_like_the_local_one(invoke, tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    pytest.importorskip("sqlalchemy")
    monkeypatch.setenv("ADAPTKIT_LEDGER", f"mlflow+sqlite:///{tmp_path / 'team.db'}")
    for n in range(2):
        for k in range(4):
            fake_run(tmp_path / f"w{n}" / f"run{k}", value=0.5 + k / 10, sha=f"data{n}")
    code = ("import sys; from adaptkit import ledger\n"
            "for k in range(4): ledger.add_run(sys.argv[1] + f'/run{k}')\n")
    writers = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / f"w{n}")]) for n in range(2)]
    assert [w.wait(timeout=300) for w in writers] == [0, 0]
    listed = invoke("ledger", "list", "--json")
    assert listed.exit_code == 0, listed.output
    found = json.loads(listed.stdout)
    assert len(found) == 8 and {r["data_sha256"] for r in found} == {"data0", "data1"}
    assert all(isinstance(r["id"], str) and r["value"] is not None for r in found)
    mine = json.loads(invoke("ledger", "list", "--data", "data1", "--json").stdout)
    assert len(mine) == 4 and mine[0]["record"]["settings"] == {"lora": {"r": 8}} and mine[0]["measured_peak_gb"] == 0.6
    rescanned = invoke("ledger", "scan", tmp_path / "w1")  # one record per folder: replaced, not doubled
    assert rescanned.exit_code == 0 and "MLflow" in rescanned.stdout
    assert len(json.loads(invoke("ledger", "list", "--json").stdout)) == 8
    mine = json.loads(invoke("ledger", "list", "--data", "data1", "--json").stdout)  # replaced: new ids
    ident = mine[0]["id"]
    assert json.loads(invoke("ledger", "show", ident).stdout)["folder"] == mine[0]["folder"]
    assert invoke("ledger", "rm", ident).exit_code == 0
    gone = invoke("ledger", "show", ident)
    assert gone.exit_code == 2 and "no run" in gone.stderr
    from mlflow.tracking import MlflowClient  # the records are MLflow runs, read back through MLflow's own client

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'team.db'}")
    experiment = client.get_experiment_by_name("adaptkit-ledger")
    assert len(client.search_runs([experiment.experiment_id])) == 7


def test_an_unreachable_mlflow_ledger_is_one_line(invoke, monkeypatch):
    pytest.importorskip("mlflow")
    monkeypatch.setenv("ADAPTKIT_LEDGER", "mlflow+http://127.0.0.1:9")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    result = invoke("ledger", "list")
    assert result.exit_code == 2 and "cannot be reached" in result.stderr and "Traceback" not in result.output


def test_reading_never_creates_the_ledger(invoke, tmp_path, monkeypatch):
    where = tmp_path / "none" / "ledger.sqlite"
    monkeypatch.setenv("ADAPTKIT_LEDGER", str(where))
    assert invoke("ledger", "list").exit_code == 0 and invoke("ledger", "rm", "3").exit_code == 2
    assert invoke("estimate", "--recipe", "lora_sft", "--gpu", "A100-80GB", "--json").exit_code == 0
    assert not where.exists() and not where.parent.exists()


def test_a_schema_1_ledger_is_migrated_in_place_keeping_its_records(tmp_path, monkeypatch):
    import sqlite3

    from adaptkit import ledger

    where = tmp_path / "old.sqlite"
    db = sqlite3.connect(where, isolation_level=None)
    for statement in ledger.MIGRATIONS[1]:
        db.execute(statement)
    db.execute("INSERT INTO runs (folder, recorded, method, value, record) VALUES ('/old/run', 1.0, 'icl', 0.8, '{}')")
    db.execute("PRAGMA user_version=1")
    db.close()
    monkeypatch.setenv("ADAPTKIT_LEDGER", str(where))
    old = ledger.rows()
    assert [(r["folder"], r["method"], r["value"], r["train_rows"], r["cost_usd"]) for r in old] == [("/old/run", "icl", 0.8, None, None)]
    assert sqlite3.connect(where).execute("PRAGMA user_version").fetchone()[0] == ledger.SCHEMA == 2


def test_a_record_carries_the_profile_facts_and_its_price_basis(tmp_path):
    from adaptkit.ledger import record_of

    metrics = json.loads((fake_run(tmp_path / "gpu") / "metrics.json").read_text())
    metrics["train"]["runtime_s"] = 3600.0
    metrics["train_data"] = {"rows": 320, "sha256": "f00d"}
    metrics["resources"].update(device="NVIDIA A100-SXM4-80GB", processes=2, tokens_per_second=5000.0)
    record = record_of(tmp_path / "gpu", metrics, {"model": "m"})
    assert (record["train_rows"], record["train_sha256"], record["model_params"], record["modality"]) == (320, "f00d", 1000, "text")
    assert record["gpu_hour_usd"] == 2.2 and record["cost_usd"] == pytest.approx(4.4)  # 1 hour x 2 GPUs x 2.2 USD
    assert "2.2 USD per GPU-hour for NVIDIA A100-SXM4-80GB" in record["record"]["price_basis"]
    cpu = record_of(tmp_path / "gpu", {**metrics, "resources": {"device": "cpu"}}, {"model": "m"})
    assert cpu["cost_usd"] is None and cpu["record"]["price_basis"].startswith("not priced")


def test_the_list_shows_what_a_priced_run_cost(invoke, tmp_path):
    folder = fake_run(tmp_path / "runs" / "gpu")
    metrics = json.loads((folder / "metrics.json").read_text())
    metrics["train"]["runtime_s"] = 3600.0
    metrics["resources"].update(device="NVIDIA H100 80GB HBM3", processes=2)
    (folder / "metrics.json").write_text(json.dumps(metrics))
    fake_run(tmp_path / "runs" / "cpu")
    assert invoke("ledger", "scan", tmp_path / "runs").exit_code == 0
    lines = invoke("ledger", "list").stdout.splitlines()
    gpu = next(line for line in lines if line.endswith(str((tmp_path / "runs" / "gpu").resolve())))
    cpu = next(line for line in lines if line.endswith(str((tmp_path / "runs" / "cpu").resolve())))
    assert "3600 s ($6.00)" in gpu and "$" not in cpu  # 1 hour x 2 GPUs x 3.0 USD (the table's H100)
