"""Deployment exports of finished runs: ONNX checked against the trained classifier on the run's eval rows, and vLLM's
serve command with a client that asks the served adapters as it asks `adaptkit serve`."""

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from adaptkit.cli import cli

ROOT = Path(__file__).resolve().parent.parent


def _invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    run = tmp_path_factory.mktemp("deploy") / "tickets"
    result = _invoke("run", "lora_cls", f"output_dir={run}", "training.max_steps=12", "training.batch_size=16", "data.max_rows=96")
    assert result.exit_code == 0, result.output
    return run


@pytest.mark.train
def test_the_onnx_export_scores_as_the_trained_classifier(classifier, tmp_path):
    out = tmp_path / "onnx"
    result = _invoke("export", classifier, "--format", "onnx", "-o", out, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report == json.loads((out / "export_report.json").read_text())
    assert report["rows"] == 80 and report["metric"] == "accuracy" and report["difference"] == 0 and report["agreement"] == 1
    assert report["max_probability_difference"] < 1e-4 and report["within_threshold"]
    assert {"model.onnx", "config.json", "labels.json", "tokenizer.json", "README.md"} <= {p.name for p in out.iterdir()}
    # the README's snippet runs as written, on the exported folder alone
    snippet = re.search(r"```python\n(.*?)```", (out / "README.md").read_text(), flags=re.S).group(1)
    scope = {}
    exec(compile(snippet, "README", "exec"), scope)
    assert scope["logits"].shape == (1, len(json.loads((out / "labels.json").read_text())))
    first = json.loads((ROOT / "examples" / "data" / "support_tickets_test.jsonl").read_text().splitlines()[0])["text"]
    assert repr(first) in snippet  # the snippet classifies one of the run's own eval rows
    # int8 weights: a quarter of the size, checked the same way; a drop past --max-drop is flagged in the JSON and in red
    small = tmp_path / "onnx8"
    report8 = json.loads(_invoke("export", classifier, "--format", "onnx", "--quant", "int8", "-o", small, "--json").stdout)
    assert report8["exported"]["size_mb"] < report["exported"]["size_mb"] / 3
    assert report8["within_threshold"] == (-report8["difference"] <= 0.01) and report8["agreement"] > 0.8
    strict = _invoke("export", classifier, "--format", "onnx", "--quant", "int8", "--max-drop", "0", "-o", tmp_path / "strict")
    said = json.loads((tmp_path / "strict" / "export_report.json").read_text())
    assert ("more than --max-drop 0" in strict.output) == (said["difference"] < 0) and said["within_threshold"] == (said["difference"] >= 0)


@pytest.mark.train
def test_onnx_export_refusals_are_one_line_and_keep_what_is_there(classifier, tmp_path, tiny_causal_lm):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "mine.txt").write_text("keep")
    refused = _invoke("export", classifier, "--format", "onnx", "-o", taken)
    assert refused.exit_code == 2 and "already exists" in refused.stderr and (taken / "mine.txt").read_text() == "keep"
    assert "give it with -o DIR" in _invoke("export", classifier, "--format", "onnx").stderr
    assert "not a finished adaptkit run" in _invoke("export", tmp_path, "--format", "onnx", "-o", tmp_path / "x").stderr
    as_recipe = _invoke("export", classifier, "--format", "slurm")
    assert as_recipe.exit_code == 2 and "is a finished run: --format slurm exports a recipe" in as_recipe.stderr
    vllm = _invoke("export", classifier, "--format", "vllm", "-o", tmp_path / "v")
    assert vllm.exit_code == 2 and "a classifier goes to export --format onnx" in vllm.stderr
    import adaptkit
    from adaptkit.errors import InputError

    with pytest.raises(InputError, match="a classifier goes to export --format onnx"):
        adaptkit.export_run(classifier, tmp_path / "api", format="vllm")
    assert not (tmp_path / "x").exists() and not (tmp_path / "v").exists() and not (tmp_path / "api").exists()


@pytest.mark.train
def test_the_vllm_export_serves_each_adapter_and_its_client_asks_them(tmp_path, tiny_causal_lm):
    from adaptkit.runners.serve import Served, create_app
    from tests.test_serve import _without_chat_template, running

    base = _without_chat_template(Path(tiny_causal_lm), tmp_path / "base")
    runs = [tmp_path / "support", tmp_path / "billing"]
    for run, rate in zip(runs, ("0.01", "0.003")):
        result = _invoke("run", "lora_sft", f"model={base}", f"output_dir={run}", "training.max_steps=4", "training.batch_size=4",
                         "training.max_length=96", "data.max_rows=32", f"training.learning_rate={rate}")
        assert result.exit_code == 0, result.output
    out = tmp_path / "vllm"
    result = _invoke("export", *runs, "--format", "vllm", "-o", out)
    assert result.exit_code == 0, result.output
    serve = out / "serve.sh"
    assert subprocess.run(["bash", "-n", str(serve)]).returncode == 0 and os.access(serve, os.X_OK)
    words = shlex.split(serve.read_text().splitlines()[-1])
    assert words[:3] == ["vllm", "serve", str(base)] and "--enable-lora" in words
    modules = words[words.index("--lora-modules") + 1:words.index("--lora-modules") + 3]
    assert modules == [f"support={runs[0].resolve()}", f"billing={runs[1].resolve()}"]
    assert words[words.index("--max-loras") + 1] == "2" and words[words.index("--max-lora-rank") + 1] in ("8", "16")
    template = Path(words[words.index("--chat-template") + 1])
    assert "adaptkit: the prompt/response format" in template.read_text()  # the format the runs trained on
    # client.py asks each served name; `adaptkit serve` of the same runs answers it as predict does
    prompt = json.loads((ROOT / "examples/data/instructions_eval.jsonl").read_text().splitlines()[0])["prompt"]
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"prompt": prompt}) + "\n")
    expected = {}
    for run in runs:
        predicted = _invoke("predict", run, rows, "--max-new-tokens", "64")
        assert predicted.exit_code == 0, predicted.output
        expected[run.name] = json.loads(predicted.stdout)["prediction"].strip()
    with running(create_app(Served([str(r) for r in runs]), max_concurrency=2)) as port:
        env = {**os.environ, "OPENAI_BASE_URL": f"http://127.0.0.1:{port}/v1"}
        asked = subprocess.run([sys.executable, str(out / "client.py"), prompt], capture_output=True, text=True, env=env, timeout=120)
    assert asked.returncode == 0, asked.stderr
    for name, answer in expected.items():
        assert f"{name}: {answer}" in asked.stdout, (name, answer, asked.stdout)
    mixed = _invoke("export", runs[0], base, "--format", "vllm", "-o", tmp_path / "mixed")
    assert mixed.exit_code == 2 and "not a finished adaptkit run" in mixed.stderr
