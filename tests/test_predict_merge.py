"""Use what you trained: predict on a file or stdin, merge an adapter into a standalone model."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from adaptkit.cli import cli

ROOT = Path(__file__).resolve().parents[1]
EVAL = str(ROOT / "examples" / "data" / "support_tickets_test.jsonl")


def _run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    pytest.importorskip("torch")
    out = tmp_path_factory.mktemp("runs") / "lora_cls"
    _run("run", "lora_cls", f"output_dir={out}", "training.max_steps=30", "training.batch_size=8", "training.learning_rate=0.002",
         "data.max_rows=160")
    return out


@pytest.fixture(scope="module")
def causal(tmp_path_factory, tiny_causal_lm):
    out = tmp_path_factory.mktemp("runs") / "lora_sft"
    _run("run", "lora_sft", f"model={tiny_causal_lm}", f"output_dir={out}", "training.max_steps=4", "training.batch_size=4",
         "training.max_length=96", "data.max_rows=32")
    return out


def test_predict_reproduces_the_runs_eval_accuracy(classifier, tmp_path):
    metrics = json.loads((classifier / "metrics.json").read_text())
    target = tmp_path / "predictions.jsonl"
    result = _run("predict", classifier, EVAL, "-o", target, "--json")
    summary = json.loads(result.stdout)
    assert summary["scores"]["accuracy"] == pytest.approx(metrics["eval"]["accuracy"], abs=1e-9)
    assert summary["scores"]["f1_macro"] == pytest.approx(metrics["eval"]["f1_macro"], abs=1e-9)
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    labels = json.loads((classifier / "labels.json").read_text())
    assert len(rows) == summary["rows"] and rows[0]["prediction"] in labels
    assert set(rows[0]["probabilities"]) == set(labels) and sum(rows[0]["probabilities"].values()) == pytest.approx(1, abs=1e-4)
    again = CliRunner().invoke(cli, ["predict", str(classifier), EVAL, "-o", str(target)])
    assert again.exit_code == 2 and "already exists" in again.stderr


def test_predict_writes_the_format_its_output_names(classifier, tmp_path):
    """-o preds.csv is a CSV (probabilities as JSON in their cell), .tsv and .parquet likewise; each reads back as input."""
    import csv

    import pyarrow.parquet

    rows = {}
    for name in ("preds.jsonl", "preds.csv", "preds.tsv", "preds.parquet"):
        _run("predict", classifier, EVAL, "-o", tmp_path / name)
    rows["jsonl"] = [json.loads(line) for line in (tmp_path / "preds.jsonl").read_text().splitlines()]
    for suffix, delimiter in (("csv", ","), ("tsv", "\t")):
        with open(tmp_path / f"preds.{suffix}", newline="") as handle:
            rows[suffix] = [{**r, "probabilities": json.loads(r["probabilities"])} for r in csv.DictReader(handle, delimiter=delimiter)]
    rows["parquet"] = pyarrow.parquet.read_table(tmp_path / "preds.parquet").to_pylist()
    assert len(rows["jsonl"]) == 80
    for suffix in ("csv", "tsv", "parquet"):
        assert [(r["text"], r["prediction"], r["probabilities"]) for r in rows[suffix]] == \
            [(r["text"], r["prediction"], r["probabilities"]) for r in rows["jsonl"]], suffix
    again = _run("predict", classifier, tmp_path / "preds.csv", "-o", tmp_path / "again.jsonl")  # a CSV of predictions reads back
    assert len((tmp_path / "again.jsonl").read_text().splitlines()) == 80 and "predicted 80 rows" in again.stderr


def test_predict_reads_stdin_lines_and_json(classifier):
    result = CliRunner().invoke(cli, ["predict", str(classifier), "-"], input='I was charged twice\n{"text": "my parcel never came"}\n')
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["text"] for r in rows] == ["I was charged twice", "my parcel never came"] and all("prediction" in r for r in rows)
    assert "predicted 2 rows" in result.stderr


def test_predict_reads_a_file_under_its_own_column_names(classifier, causal, tmp_path):
    """A user's new rows name their columns their own way (review, sentiment): --column and --answer-column read them,
    scored as the run's own eval file is; a chat run has no answer column to name."""
    import csv

    rows = [json.loads(line) for line in Path(EVAL).read_text().splitlines()]
    with open(tmp_path / "mine.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["review", "sentiment"])
        writer.writerows([r["text"], r["label"]] for r in rows)
    own = json.loads(_run("predict", classifier, tmp_path / "mine.csv", "--column", "review", "--answer-column", "sentiment",
                          "-o", tmp_path / "own.csv", "--json").stdout)
    plain = json.loads(_run("predict", classifier, EVAL, "-o", tmp_path / "plain.jsonl", "--json").stdout)
    assert own["scores"]["accuracy"] == pytest.approx(plain["scores"]["accuracy"], abs=1e-9) and own["rows"] == 80
    prompts = tmp_path / "asks.jsonl"
    prompts.write_text(json.dumps({"ask": "Where is my parcel?", "want": "It ships today."}) + "\n")
    asked = _run("predict", causal, prompts, "--column", "ask", "--answer-column", "want", "--max-new-tokens", "4")
    assert json.loads(asked.stdout.splitlines()[0])["ask"] == "Where is my parcel?" and "rougeL" in asked.stderr
    import adaptkit

    assert adaptkit.predict(classifier, [{"review": rows[0]["text"]}], column="review").rows[0]["prediction"] == \
        json.loads((tmp_path / "plain.jsonl").read_text().splitlines()[0])["prediction"]


@pytest.mark.parametrize("args, words", [
    (["{run}", "nowhere.jsonl"], "no such file"),
    (["{tmp}", "x.jsonl"], "not a finished adaptkit run"),
    (["{run}", "{bad}"], "no text in column `text` (what this classifier reads; its columns are body: name the one to read with --column NAME)"),
])
def test_predict_bad_input_is_one_line(classifier, tmp_path, args, words):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"body": "no text column"}\n')
    filled = [a.format(run=classifier, tmp=tmp_path, bad=bad) for a in args]
    result = CliRunner().invoke(cli, ["predict", *filled])
    assert result.exit_code == 2 and words in result.stderr and "Traceback" not in result.output


LOAD_WITHOUT_PEFT = r"""
import json, sys
sys.modules["peft"] = None  # any import of peft fails: the merged model must not need it
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
folder, texts = sys.argv[1], json.loads(sys.argv[2])
model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
tokenizer = AutoTokenizer.from_pretrained(folder)
with torch.no_grad():
    p = torch.softmax(model(**tokenizer(texts, truncation=True, max_length=128, padding=True, return_tensors="pt")).logits, -1)
print(json.dumps({"labels": [model.config.id2label[int(i)] for i in p.argmax(-1)], "p": p.tolist()}))
"""


def test_merge_gives_a_standalone_model_with_the_same_predictions(classifier, tmp_path):
    merged = tmp_path / "merged"
    _run("merge", classifier, "-o", merged)
    assert (merged / "model.safetensors").is_file() and not (merged / "adapter_config.json").exists()
    assert "no PEFT needed" in (merged / "README.md").read_text()
    rows = [json.loads(line) for line in Path(EVAL).read_text().splitlines()][:24]
    predicted = CliRunner().invoke(cli, ["predict", str(classifier), "-"], input="".join(json.dumps(r) + "\n" for r in rows))
    adapter = [json.loads(line) for line in predicted.stdout.splitlines()]
    done = subprocess.run([sys.executable, "-c", LOAD_WITHOUT_PEFT, str(merged), json.dumps([r["text"] for r in rows])],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-1500:]
    plain = json.loads(done.stdout)
    assert plain["labels"] == [r["prediction"] for r in adapter]
    labels = json.loads((classifier / "labels.json").read_text())
    for row, p in zip(adapter, plain["p"]):
        assert [row["probabilities"][label] for label in labels] == pytest.approx(p, abs=1e-4)
    again = CliRunner().invoke(cli, ["merge", str(classifier), "-o", str(merged)])
    assert again.exit_code == 2 and "already exists" in again.stderr


def test_merge_refuses_what_does_not_merge(classifier, tmp_path):
    import shutil

    prompt = tmp_path / "prompt-run"
    shutil.copytree(classifier, prompt)
    config = json.loads((prompt / "adapter_config.json").read_text())
    (prompt / "adapter_config.json").write_text(json.dumps({**config, "peft_type": "PROMPT_TUNING"}))
    result = CliRunner().invoke(cli, ["merge", str(prompt), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2 and "virtual tokens" in result.stderr and not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out.merging-*"))


def test_a_causal_run_predicts_with_its_template_and_merges(causal, tmp_path):
    rows = [json.loads(line) for line in (ROOT / "examples/data/instructions_eval.jsonl").read_text().splitlines()][:6]
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = json.loads(_run("predict", causal, data, "-o", tmp_path / "out.jsonl", "--max-new-tokens", "8", "--json").stdout)
    assert summary["rows"] == 6 and {"exact_match", "token_f1", "rougeL", "chrf"} <= set(summary["scores"])  # the generation scorer
    assert all(0 <= summary["scores"][k] <= 1 for k in ("exact_match", "token_f1", "rougeL", "chrf"))
    generated = [json.loads(line)["prediction"] for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert all(isinstance(g, str) for g in generated)
    merged = tmp_path / "merged"
    _run("merge", causal, "-o", merged)
    import torch
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoModelForCausalLM

    from transformers import AutoTokenizer

    ids = AutoTokenizer.from_pretrained(causal)("what is the answer", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        before = AutoPeftModelForCausalLM.from_pretrained(causal).eval()(input_ids=ids).logits
        after = AutoModelForCausalLM.from_pretrained(merged).eval()(input_ids=ids).logits
    assert torch.allclose(before, after, atol=1e-4)


def test_a_run_folder_is_data_its_code_runs_only_when_the_caller_allows(invoke, tmp_path, tiny_causal_lm):
    """A run folder from someone else: its scorer module and trust_remote_code are not honoured without the flags given
    on the command line, whatever its recipe.yaml says."""
    import yaml

    run = tmp_path / "theirs"
    made = invoke("run", "lora_sft", f"model={tiny_causal_lm}", f"output_dir={run}", "training.max_steps=2", "data.max_rows=16",
                  "training.max_length=64", "training.generate_eval=0")
    assert made.exit_code == 0, made.output
    marker = tmp_path / "ran.txt"
    (tmp_path / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n"
                                      "def score(predictions, references, **options):\n    return {'x': 1.0}\n")
    recipe = yaml.safe_load((run / "recipe.yaml").read_text())
    recipe.update(allow_code=True, scoring={"scorer": f"{tmp_path / 'evil.py'}:score"})
    (run / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    data = tmp_path / "rows.jsonl"
    data.write_text(json.dumps({"prompt": "Where is my refund?", "response": "It was sent today."}) + "\n")
    result = invoke("predict", run, data, "-o", tmp_path / "p.jsonl", "--max-new-tokens", "4")
    assert result.exit_code == 0, result.output
    assert not marker.exists() and "not scored" in result.stderr and "--allow-code" in result.stderr
    allowed = invoke("predict", run, data, "-o", tmp_path / "p2.jsonl", "--max-new-tokens", "4", "--allow-code")
    assert allowed.exit_code == 0 and marker.exists()  # the user's own choice, on the command line
    recipe["trust_remote_code"] = True
    (run / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    for args in (("predict", run, data), ("merge", run, "-o", tmp_path / "m"), ("serve", run)):
        refused = invoke(*args)
        assert refused.exit_code == 2 and "--trust-remote-code" in refused.stderr, args


@pytest.mark.unit
def test_a_column_of_mixed_types_is_text_in_parquet_and_csv():
    """Input rows may hold 1 in one row and "x-2" in the next: Parquet keeps that column as text, as CSV does."""
    import io

    import pyarrow.parquet

    from adaptkit.cli._io import rows_as

    rows = [{"text": "a", "id": 1, "p": {"x": 0.5}}, {"text": "b", "id": "x-2", "p": {"x": 0.25}}]
    table = pyarrow.parquet.read_table(io.BytesIO(rows_as(rows, "out.parquet"))).to_pylist()
    assert table == [{"text": "a", "id": "1", "p": {"x": 0.5}}, {"text": "b", "id": "x-2", "p": {"x": 0.25}}]
    assert rows_as(rows, "out.csv") == 'text,id,p\na,1,"{""x"": 0.5}"\nb,x-2,"{""x"": 0.25}"\n'
    assert rows_as(rows, "out.jsonl").splitlines()[1] == '{"text": "b", "id": "x-2", "p": {"x": 0.25}}'
