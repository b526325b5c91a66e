"""The early-stopping bake-off (successive halving with Optuna's pruner) and learning curves."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from adaptkit.curves import learning_curve

ROOT = Path(__file__).parent.parent


def test_a_power_law_through_rungs_forecasts_the_full_data():
    truth = lambda n: 0.95 - 2.0 * n ** -0.6  # noqa: E731
    points = [(n, truth(n), 0.01) for n in (40, 80, 160)]
    curve = learning_curve(points, 320)
    assert abs(curve["forecast"]["full"] - truth(320)) < 0.01
    low, high = curve["interval_95"]["full"]
    assert low <= curve["forecast"]["full"] <= high and curve["forecast"]["5x"] >= curve["forecast"]["2x"] >= curve["forecast"]["full"]
    flat = learning_curve([(40, 0.90, 0.01), (80, 0.905, 0.01), (160, 0.906, 0.01)], 320)
    assert flat["flat"] and flat["gain_at_2x"] < 0.01
    assert learning_curve(points[:2], 320) is None  # three points at least


def _quick(folder: Path, name: str, epochs: int = 1, rows: int | None = None) -> str:
    from adaptkit.recipe.load import builtin_recipes

    data = yaml.safe_load(builtin_recipes()[name].read_text())
    for key in ("train", "eval"):
        data["data"][key] = str((builtin_recipes()[name].parent / data["data"][key]).resolve())
    data["training"]["epochs"] = epochs
    if rows:
        data["data"]["max_rows"] = rows
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


@pytest.mark.train
def test_successive_halving_stops_the_weak_and_trains_the_winner_on_all_rows(invoke, tmp_path):
    candidates = [_quick(tmp_path, name) for name in ("lora_cls", "ia3_cls", "full_cls")]
    result = invoke("bakeoff", *candidates, "--output-dir", tmp_path / "out", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    first = [e for e in report["rungs"] if e["rung"] == 0]
    assert len(first) == 3 and all(e["rows"] == 36 for e in first)  # 1/9 of 320 training rows
    stopped = [e for e in first if e["outcome"].startswith("stopped")]
    assert len(stopped) == 2  # eta 3: the best third goes on
    winner = next(e for e in first if e["outcome"].startswith("promoted"))
    assert winner["value"] == max(e["value"] for e in first)
    final = [e for e in report["rungs"] if e["rung"] == 2]
    assert [e["recipe"] for e in final] == [winner["recipe"]] and final[0]["rows"] == 320  # straight to the full data
    assert report["stopped"].startswith("the winner was clear") and Path(winner["recipe"]).stem in report["recommendation"]
    assert report["spent"]["training_s"] == pytest.approx(sum(e["training_s"] for e in report["rungs"]), abs=0.05)
    again = invoke("bakeoff", *candidates, "--output-dir", tmp_path / "out")
    assert again.exit_code == 2 and "holds an earlier bake-off" in again.output


@pytest.mark.train
def test_every_rung_gives_a_learning_curve_and_a_target_stops_early(invoke, tmp_path):
    lora = _quick(tmp_path, "lora_cls", epochs=2, rows=160)
    result = invoke("bakeoff", lora, "--every-rung", "--eta", "2", "--output-dir", tmp_path / "curve", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [e["fraction"] for e in report["rungs"]] == [0.25, 0.5, 1.0]
    curve = report["curves"][lora]
    assert [p["rows"] for p in curve["points"]] == [40, 80, 160] and "full" in curve["forecast"]
    # the curve is kept with the candidate's full-data run, and its ledger record carries it (advise reads it there)
    largest = max((tmp_path / "curve").glob("rung*"), key=lambda p: p.name)
    assert json.loads((largest / "learning_curve.json").read_text())["forecast"] == curve["forecast"]
    from adaptkit import ledger

    recorded = [r for r in ledger.rows() if r["folder"] == str(largest.resolve())]
    assert recorded and recorded[0]["record"]["curve"]["forecast"] == curve["forecast"]
    (tmp_path / "small").mkdir()
    small = _quick(tmp_path / "small", "lora_cls", epochs=1, rows=32)  # a target reached needs no long run
    text = invoke("bakeoff", small, "--target", "accuracy=0.0", "--output-dir", tmp_path / "target")
    assert text.exit_code == 0 and "reached accuracy 0" in text.output and "stopped:" in text.output


def test_bad_bakeoff_input_is_one_line(invoke, tmp_path):
    result = invoke("bakeoff", "lora_cls", "--target", "wrongmetric=0.5", "--output-dir", tmp_path / "x")
    assert result.exit_code == 2 and "is not a metric" in result.output
    result = invoke("bakeoff", "lora_cls", "--target", "accuracy", "--output-dir", tmp_path / "x")
    assert result.exit_code == 2 and "METRIC=VALUE" in result.output
    recipe = _quick(tmp_path, "lora_cls")  # one recipe twice, spelled two ways: its runs would overwrite each other
    result = invoke("bakeoff", recipe, str(Path(recipe).parent / "." / "lora_cls.yaml"), "--output-dir", tmp_path / "x")
    assert result.exit_code == 2 and "is listed twice" in result.stderr and not (tmp_path / "x").exists()


@pytest.mark.train
def test_tune_searches_stops_weak_trials_and_writes_the_best_recipe(invoke, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    lora = _quick(tmp_path, "lora_cls", epochs=1)
    held = str(ROOT / "examples" / "data" / "support_tickets_test.jsonl")  # beside it, data.eval_fraction holds out nothing
    result = invoke("tune", lora, "training.max_length=48", "data.eval=null", "data.eval_fraction=0.25", "--eval-data", held,
                    "--trials", "3", "--output-dir", "trials", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    first = {yaml.safe_load(f.read_text())["data"]["max_rows"] for f in (tmp_path / "trials").glob("trial*-rung0/recipe.yaml")}
    assert first == {107}  # a third of the 320 rows every trial trains on (not of the 240 the recipe alone would keep)
    # a KEY=VALUE override holds for every trial's runs and goes into the written recipe
    assert {yaml.safe_load(f.read_text())["training"]["max_length"] for f in (tmp_path / "trials").glob("trial*/recipe.yaml")} == {48}
    assert yaml.safe_load((tmp_path / "lora_cls.tuned.yaml").read_text())["training"]["max_length"] == 48
    assert len(report["trials"]) == 3 and report["space"]["lora.r"] == [4, 8, 16, 32]
    assert report["space"]["lora.target_modules"] == ["[query, value]", "all-linear"]
    stopped = [t for t in report["trials"] if t["outcome"].startswith("stopped")]
    complete = [t for t in report["trials"] if t["outcome"] == "complete"]
    assert complete and report["best"]["value"] == max(t["value"] for t in complete)
    written = yaml.safe_load((tmp_path / "lora_cls.tuned.yaml").read_text())
    best = dict(o.split("=", 1) for o in report["best"]["overrides"])
    assert written["lora"]["r"] == int(best["lora.r"]) and written["training"]["epochs"] == float(best["training.epochs"])
    assert written["lora"]["target_modules"] == ("all-linear" if best["lora.target_modules"] == "all-linear" else ["query", "value"])
    assert stopped or len(complete) == 3  # the pruner stops trials below the best so far (or none was below)
    from adaptkit import ledger

    assert len(ledger.rows()) == len(complete) + len(report["trials"])  # every run recorded: each first rung, each full run
    again = invoke("tune", lora, "--trials", "1", "--output-dir", "trials")
    assert again.exit_code == 2 and "earlier search" in again.output
    assert invoke("tune", "icl").exit_code == 2


@pytest.mark.train
def test_two_workers_search_one_shared_study(tmp_path):
    """Two `adaptkit tune` processes at once on one Optuna storage and study: four trials with distinct numbers in one
    study, and the worker that finishes last writes the best of all four."""
    import subprocess
    import sys

    lora = _quick(tmp_path, "lora_cls", epochs=1, rows=64)
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    workers = [subprocess.Popen([sys.executable, "-m", "adaptkit", "tune", lora, "--trials", "2", "--storage", storage, "--study", "shared",
                                 "--output-dir", tmp_path / f"worker{n}", "-o", tmp_path / f"best{n}.yaml", "--seed", str(n), "--json"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env) for n in (0, 1)]
    reports = []
    for worker in workers:
        out, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err[-2000:]
        reports.append(json.loads(out))
    numbers = sorted(t["trial"] for r in reports for t in r["trials"])
    assert numbers == [0, 1, 2, 3] and max(r["study_trials"] for r in reports) == 4
    import optuna

    study = optuna.load_study(study_name="shared", storage=storage)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    # the last to finish (its tune.json written last; both may have seen all four trials asked) saw every trial end
    last = max(zip(reports, (0, 1)), key=lambda pair: (tmp_path / f"worker{pair[1]}" / "tune.json").stat().st_mtime_ns)[0]
    assert last["best"]["value"] == max(t.value for t in complete) and last["best"]["overrides"] == max(
        complete, key=lambda t: t.value).user_attrs["overrides"]


def test_a_study_needs_a_storage(invoke, tmp_path):
    result = invoke("tune", "lora_cls", "--study", "x", "--output-dir", tmp_path / "t")
    assert result.exit_code == 2 and "give --storage too" in result.stderr


def test_a_bakeoff_study_needs_a_storage_and_one_worker_per_process(invoke, tmp_path):
    said = invoke("bakeoff", "lora_cls", "ia3_cls", "--study", "x", "--output-dir", tmp_path / "b")
    assert said.exit_code == 2 and "give --storage too" in said.stderr
    said = invoke("bakeoff", "lora_cls", "ia3_cls", "--study", "x", "--storage", f"sqlite:///{tmp_path / 's.db'}", "--workers", "2",
                  "--output-dir", tmp_path / "b")
    assert said.exit_code == 2 and "one `adaptkit bakeoff ... --study NAME` per GPU" in said.stderr
    assert not (tmp_path / "b").exists() and not (tmp_path / "s.db").exists()
    for command in ("bakeoff", "tune"):  # a storage that cannot be opened is one line, for either
        said = invoke(command, "lora_cls", "--storage", "bogus://x", "--study", "x", "--output-dir", tmp_path / "b")
        assert said.exit_code == 2 and said.stderr.startswith("error: --storage bogus://x: NoSuchModuleError"), said.stderr


def test_workers_of_one_study_must_be_asked_the_same(invoke, tmp_path):
    """A second machine's bakeoff with other settings than the first's is refused in one line, before it runs anything."""
    import optuna

    from adaptkit.halving import make_plan
    from adaptkit.halving_shared import join, storage_of

    candidates = [_quick(tmp_path, name, rows=64) for name in ("lora_cls", "ia3_cls")]
    url = f"sqlite:///{tmp_path / 's.db'}"
    plan = make_plan(candidates, eval_data=None, target=None, margin=0.02, eta=3, rungs=3, fractions=None, skip_when_clear=True,
                     budget_hours=None, budget_usd=None, gpu_hour_usd=1.0, usd_per_1m_input=0.5, usd_per_1m_output=None,
                     requests_per_second=None)
    study, queue, leader = join(plan, storage_of(optuna, url), "shared")
    assert leader and len(study.user_attrs["candidates"]) == 2
    queued = [t.user_attrs["job"] for t in queue.trials]
    assert [(j["kind"], j.get("take")) for j in queued] == [("run", 8), ("run", 8), ("judge", None)]  # 1/9 of 64 rows, then the judge
    said = invoke("bakeoff", *candidates, "--eta", "2", "--storage", url, "--study", "shared", "--output-dir", tmp_path / "w")
    assert said.exit_code == 2 and "was started with other settings (eta: 3 there, 2 here)" in said.stderr
    assert not (tmp_path / "w").exists() and len(queue.trials) == 3  # nothing taken from the queue


@pytest.mark.unit
def test_beside_an_eval_file_the_shares_are_of_every_training_row(tmp_path):
    """A recipe that holds out a share of its one file (data.eval_fraction) holds out nothing beside --eval-data: the
    rungs' shares are of all its training rows, as its runs read them."""
    from adaptkit.halving import make_plan

    path = Path(_quick(tmp_path, "lora_cls"))
    recipe = yaml.safe_load(path.read_text())
    recipe["data"].pop("eval")
    recipe["data"]["eval_fraction"] = 0.25
    path.write_text(yaml.safe_dump(recipe))
    held = str(ROOT / "examples" / "data" / "support_tickets_test.jsonl")
    assert make_plan([str(path)], eval_data=held).sizes[str(path)] == 320  # all of support_tickets_train.jsonl
    assert make_plan([str(path)]).sizes[str(path)] == 240  # alone, its recipe holds out a quarter


def test_a_dead_workers_run_is_queued_again(tmp_path, monkeypatch):
    """A worker that stops sending heartbeats loses its run to the next worker that looks (Optuna's retry callback)."""
    import time

    import optuna

    from adaptkit import halving_shared as shared

    monkeypatch.setattr(shared, "HEARTBEAT_S", 1)
    monkeypatch.setattr(shared, "GRACE_S", 1)
    storage = shared.storage_of(optuna, f"sqlite:///{tmp_path / 's.db'}")
    queue = optuna.create_study(study_name="q", storage=storage)
    job = {"kind": "run", "ref": "lora_cls", "batch": 0, "order": 0}
    queue.enqueue_trial({}, user_attrs={"job": job})
    with pytest.warns(UserWarning):  # Optuna would have heartbeats used through Study.optimize
        taken = shared._take(queue, optuna)
    assert taken.user_attrs["job"] == job and shared._take(queue, optuna) is None  # one worker's, and nothing else waits
    storage.record_heartbeat(taken._trial_id)  # then the worker dies
    time.sleep(2.5)
    shared._reclaim(queue)
    again = shared._take(queue, optuna)
    assert again is not None and again.user_attrs["job"] == job and again.number != taken.number
    assert queue.trials[taken.number].state == optuna.trial.TrialState.FAIL


@pytest.mark.train
def test_workers_at_once_and_over_a_shared_study_agree_with_one_after_another(invoke, tmp_path):
    """The same bake-off three ways gives the same rungs, figure for figure: one run after another in this process;
    `--workers 2` (a rung's two candidates at once, each in its own process, the CPU's cores shared; one GPU each where
    there are several); and two `adaptkit bakeoff --storage URL --study NAME` processes (two machines' worth) sharing
    each rung's runs through the study, every run made once by one of them, both ending with the same bakeoff.json."""
    import subprocess
    import sys

    candidates = [_quick(tmp_path, "full_cls", epochs=2, rows=48), _quick(tmp_path, "lora_cls", rows=48)]
    common = (*candidates, "--rungs", "2", "--eta", "2", "--json")
    reports, said = {}, {}
    for workers in ("1", "2"):
        result = invoke("bakeoff", *common, "--workers", workers, "--output-dir", tmp_path / f"w{workers}")
        assert result.exit_code == 0, result.output
        reports[workers], said[workers] = json.loads(result.stdout), result.stderr
    assert "2 candidates, 2 at once" in said["2"] and "at once" not in said["1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    url = f"sqlite:///{tmp_path / 'study.db'}"
    processes = [subprocess.Popen([sys.executable, "-m", "adaptkit", "bakeoff", *common, "--storage", url, "--study", "tickets",
                                   "--output-dir", tmp_path / f"s{n}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  cwd=tmp_path, env=env) for n in (0, 1)]
    shared = []
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-2000:]
        shared.append(json.loads(out))
    assert shared[0] == shared[1] and shared[0]["study"] == "tickets"
    reports["study"] = shared[0]
    figures = {way: [(Path(e["recipe"]).name, e["rung"], e["rows"], e["value"], e["outcome"]) for e in r["rungs"]] for way, r in reports.items()}
    assert figures["1"] == figures["2"] == figures["study"] and len(figures["1"]) >= 3  # both at rung 0, the better one at all rows
    made = {name: [n for n in (0, 1) if (tmp_path / f"s{n}" / name / "metrics.json").is_file()]
            for name in (p.name for p in (tmp_path / "w1").iterdir() if p.is_dir())}
    assert made and all(len(where) == 1 for where in made.values()), made  # each run once, on one worker
    assert {n for where in made.values() for n in where} == {0, 1}  # and both worked


@pytest.mark.unit
def test_a_rungs_share_is_said_as_a_reader_says_it():
    """'rung 1: 1 of the training rows' read as one row; the last rung trains on all of them."""
    from adaptkit.halving import share_said

    assert [share_said(x) for x in (1, 1 / 3, 1 / 9, 0.25, 0.37)] == ["all", "1/3", "1/9", "1/4", "0.37"]


@pytest.mark.unit
def test_a_rung_calls_a_near_tie_as_compare_would():
    """At a rung, a candidate within the margin of the best and cheaper goes on before the best: the pruner says how
    many go on, compare's rule which (a LoRA at 0.963 against full fine-tuning's 0.975 on a third of the tickets)."""
    from adaptkit.halving import Plan, Progress, in_compare_order

    plan = Plan(["full", "lora", "pt"], ["full", "lora", "pt"], [], {}, [1 / 3, 1], 3, 0.02)
    line = {"usd_per_1k_requests": 0.01, "training_s": 10.0}
    progress = Progress(rows={"full": {**line, "method": "full_finetuning", "value": 0.975},
                              "lora": {**line, "method": "lora_adapters", "value": 0.9625},
                              "pt": {**line, "method": "prefix_prompt_tuning", "value": 0.725}})
    assert in_compare_order(plan, progress, ["full", "lora", "pt"]) == ["lora", "full", "pt"]
    progress.rows["lora"]["value"] = 0.95  # 0.025 behind: outside the margin, the score decides
    assert in_compare_order(plan, progress, ["full", "lora", "pt"]) == ["full", "lora", "pt"]
