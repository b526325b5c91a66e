"""The CLI end to end, through click's CliRunner."""

import json

import pytest
import yaml

from adaptkit.methods.catalogue import METHOD_IDS

ANSWERS = {"task": "classification", "goal": "behavior", "weight_access": "open", "model_params_b": 7,
           "gpu_vram_gb": 24, "num_gpus": 1, "labeled_examples": 2000}


@pytest.fixture
def answers_file(tmp_path):
    path = tmp_path / "answers.yaml"
    path.write_text(yaml.safe_dump(ANSWERS))
    return path


def test_help_lists_commands(invoke):
    result = invoke("--help")
    assert result.exit_code == 0
    assert "advise" in result.output and "methods" in result.output


def test_json_shape(invoke, answers_file):
    result = invoke("advise", "--answers", answers_file, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"profile", "recommendations", "ruled_out", "combine", "notes", "evidence"}
    assert data["profile"]["labeled_examples"] == 2000 and "hardware" in data["profile"]
    for rec in data["recommendations"]:
        assert set(rec) == {"method", "name", "score", "rationale", "sources"}
        assert isinstance(rec["score"], float) and rec["rationale"] and rec["sources"]
    for out in data["ruled_out"]:
        assert set(out) == {"method", "reasons"} and out["reasons"]
    seen = [r["method"] for r in data["recommendations"]] + [o["method"] for o in data["ruled_out"]]
    assert sorted(seen) == sorted(METHOD_IDS)
    assert data["recommendations"][0]["method"] == "lora_adapters"
    scores = [r["score"] for r in data["recommendations"]]
    assert scores == sorted(scores, reverse=True)


def test_shipped_examples_give_complete_answers(invoke):
    from pathlib import Path

    files = sorted(Path(__file__).parent.parent.joinpath("examples", "answers").glob("*.yaml"))
    assert len(files) >= 3
    for path in files:
        result = invoke("advise", "--answers", path, "--json", "--no-input")
        assert result.exit_code == 0, (path, result.output)
        data = json.loads(result.stdout)
        seen = [r["method"] for r in data["recommendations"]] + [o["method"] for o in data["ruled_out"]]
        assert sorted(seen) == sorted(METHOD_IDS), path


def test_table_and_explain(invoke, answers_file):
    result = invoke("advise", "--answers", answers_file, "--explain")
    assert result.exit_code == 0, result.output
    for text in ("Recommended", "lora_adapters", "Ruled out", "Rules that fired", "G2-memory", "R-behavior-train", "Sources"):
        assert text in result.output


def test_set_overrides_the_file(invoke, answers_file):
    result = invoke("advise", "--answers", answers_file, "--set", "weight_access=closed_api", "--set", "labeled_examples=20", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["recommendations"][0]["method"] == "in_context_learning"


def test_no_input_uses_defaults(invoke):
    result = invoke("advise", "--no-input", "--json", "--set", "task=qa", "--set", "goal=knowledge", "--set", "weight_access=closed_api")
    assert result.exit_code == 0, result.output
    profile = json.loads(result.stdout)["profile"]
    assert profile["budget_usd"] == 1000 and profile["inference_volume"] == "low" and profile["labeled_examples"] == 0


def test_detected_gpus_are_the_default(invoke, monkeypatch, tmp_path):
    monkeypatch.setenv("ADAPTKIT_FAKE_GPUS", "2x80")
    path = tmp_path / "a.yaml"
    path.write_text("task: chat\ngoal: behavior\nweight_access: open\nmodel_params_b: 7\nlabeled_examples: 500\n")
    result = invoke("advise", "--answers", path, "--json")
    profile = json.loads(result.stdout)["profile"]
    assert (profile["num_gpus"], profile["gpu_vram_gb"]) == (2, 80)
    assert profile["hardware"]["detection"] == "ADAPTKIT_FAKE_GPUS"


BAD_INPUT = [
    ("unknown key", "task: qa\ngoal: knowledge\nweight_access: open\nbudjet_usd: 5\n", "did you mean `budget_usd`"),
    ("wrong type", "task: qa\ngoal: knowledge\nweight_access: open\nlabeled_examples: many\n", "labeled_examples"),
    ("out of range", "task: qa\ngoal: knowledge\nweight_access: open\ntasks_to_serve: 0\n", "tasks_to_serve"),
    ("empty file", "", "empty"),
    ("invalid YAML", "task: [qa\n", "not valid YAML"),
    ("missing required, no terminal", "task: qa\n", "missing goal, weight_access"),
]


@pytest.mark.parametrize("case, content, words", BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_bad_input_exits_2_with_one_line(invoke, tmp_path, case, content, words):
    path = tmp_path / "a.yaml"
    path.write_text(content)
    result = invoke("advise", "--answers", path, "--json")
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0]
    assert "Traceback" not in result.output


def test_missing_answers_file(invoke, tmp_path):
    result = invoke("advise", "--answers", tmp_path / "nope.yaml")
    assert result.exit_code == 2 and "no such file" in result.stderr


def test_bad_set(invoke):
    result = invoke("advise", "--set", "labeled_examples")
    assert result.exit_code == 2 and "KEY=VALUE" in result.stderr


def test_unknown_option_is_a_usage_error(invoke):
    result = invoke("advise", "--jsn")
    assert result.exit_code == 2 and "No such option" in result.stderr


def test_debug_shows_the_traceback(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "a.yaml"
    path.write_text("task: qa\n")
    plain = subprocess.run([sys.executable, "-m", "adaptkit", "advise", "--answers", str(path)], capture_output=True, text=True,
                           stdin=subprocess.DEVNULL)
    debug = subprocess.run([sys.executable, "-m", "adaptkit", "--debug", "advise", "--answers", str(path)], capture_output=True,
                           text=True, stdin=subprocess.DEVNULL)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "InputError" in debug.stderr


def test_save_answers_then_reuse(invoke, answers_file, tmp_path):
    saved = tmp_path / "saved.yaml"
    first = invoke("advise", "--answers", answers_file, "--save-answers", saved, "--json")
    assert first.exit_code == 0, first.output
    again = invoke("advise", "--answers", saved, "--json")
    assert json.loads(again.stdout)["recommendations"] == json.loads(first.stdout)["recommendations"]


def test_save_answers_never_overwrites(invoke, answers_file, tmp_path):
    saved = tmp_path / "saved.yaml"
    saved.write_text("precious work\n")
    result = invoke("advise", "--answers", answers_file, "--save-answers", saved)
    assert result.exit_code == 2 and "already exists" in result.stderr
    assert saved.read_text() == "precious work\n"
    forced = invoke("advise", "--answers", answers_file, "--save-answers", saved, "--force")
    assert forced.exit_code == 0 and yaml.safe_load(saved.read_text())["labeled_examples"] == 2000


def test_bad_input_writes_no_answers(invoke, tmp_path):
    bad = tmp_path / "a.yaml"
    bad.write_text("task: qa\ngoal: knowledge\nweight_access: open\nlabeled_examples: many\n")
    saved = tmp_path / "saved.yaml"
    result = invoke("advise", "--answers", bad, "--save-answers", saved)
    assert result.exit_code == 2 and not saved.exists()


def test_methods_table(invoke):
    result = invoke("methods", "--json")
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    assert [r["id"] for r in rows][0] == "prompt_engineering" and len(rows) == 10
    for row in rows:
        assert row["name"] and row["changes"] and row["cost_tier"] and row["typical_use"] and row["data_needs"] and row["sources"]
    assert invoke("methods").exit_code == 0
    assert "| `rag` |" in invoke("methods", "--markdown").stdout


@pytest.mark.parametrize("args", [["recipes", "show", "qlora_sft"], ["methods"], ["estimate", "--model", "gpt2", "--method", "all"]])
def test_a_closed_pipe_is_a_normal_end(args):
    """`adaptkit ... | head`: the reader leaves early; no error, exit 0."""
    import os
    import subprocess
    import sys

    read, write = os.pipe()
    os.close(read)  # nobody will read: the first write meets a closed pipe
    try:
        done = subprocess.run([sys.executable, "-m", "adaptkit", *args], stdout=write, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write)
    assert done.returncode == 0 and done.stderr == "", done.stderr


@pytest.mark.parametrize("value, words", [
    ("tickets.cvs", "no such file tickets.cvs (did you mean tickets.csv?)"),
    ("./data/tickets", "no such file ./data/tickets;"),
    ("~/nowhere/t.jsonl", "no such file"),
])
def test_a_path_that_names_nothing_is_a_typo_not_a_hub_dataset(invoke, tmp_path, monkeypatch, value, words):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tickets.csv").write_text("text,label\\nhello,a\\n")
    result = invoke("run", "lora_cls", f"data.train={value}", "output_dir=out")
    assert result.exit_code == 2 and words in result.stderr and "hub dataset `" not in result.stderr, result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("sets, words", [
    (["labeled_examples=lots"], "error: --set: labeled_examples: expected a number"),
    (["labeld_examples=4"], "error: --set: unknown key `labeld_examples` (did you mean `labeled_examples`?)"),
    (["num_gpus=2"], "with --set: num_gpus is 2 but gpu_vram_gb is 0"),  # a clash of the two: both named
])
def test_a_bad_set_is_blamed_on_the_set(invoke, tmp_path, sets, words):
    answers = tmp_path / "a.yaml"
    answers.write_text("task: qa\ngoal: knowledge\nweight_access: open\n")
    result = invoke("advise", "--answers", answers, *[w for s in sets for w in ("--set", s)], "--no-input")
    assert result.exit_code == 2 and words in result.stderr, result.stderr
