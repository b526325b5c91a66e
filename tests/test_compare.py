"""adaptkit compare: one table over recipes and finished runs, failures reported, the cheapest good one recommended."""

import json
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("peft")


def test_compare_runs_reads_and_recommends(invoke, tmp_path):
    runs = {}
    for name, steps in (("weak", 1), ("strong", 40)):
        out = tmp_path / name
        result = invoke("run", "lora_cls", f"output_dir={out}", f"training.max_steps={steps}", "data.max_rows=96", "--json")
        assert result.exit_code == 0, result.output
        runs[name] = out
    quick = tmp_path / "quick.yaml"
    recipe = yaml.safe_load(invoke("recipes", "show", "lora_cls").stdout)
    recipe["training"].update(max_steps=2)
    recipe["data"]["max_rows"] = 96  # caps the training rows only: it is scored on the same 80 tickets as the two runs
    from adaptkit.recipe.load import builtin_dir

    recipe["data"]["train"] = str((builtin_dir() / recipe["data"]["train"]).resolve())
    recipe["data"]["eval"] = str((builtin_dir() / recipe["data"]["eval"]).resolve())
    quick.write_text(yaml.safe_dump(recipe))
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump({**recipe, "data": {"train": str(tmp_path / "missing.jsonl")}}))
    result = invoke("compare", runs["weak"], runs["strong"], quick, broken, "--output-dir", tmp_path / "cmp", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    rows = {row["recipe"]: row for row in report["rows"]}
    assert "no such file" in rows[str(broken)]["error"]
    assert rows[str(runs["strong"])]["value"] > rows[str(runs["weak"])]["value"]
    assert rows[str(quick)]["method"] == "lora_adapters" and rows[str(quick)]["tokens_per_request"] > 0
    assert str(runs["strong"]) in report["recommendation"] or str(quick) in report["recommendation"]
    assert (tmp_path / "cmp" / "compare.png").is_file()
    target = json.loads(invoke("compare", runs["weak"], runs["strong"], "--target", "accuracy=0.99", "--output-dir", tmp_path / "c2",
                               "--json").stdout)
    assert target["recommendation"].startswith("none reaches accuracy 0.99") or "reaches accuracy 0.99" in target["recommendation"]


def test_compare_bad_target(invoke):
    result = invoke("compare", "lora_cls", "--target", "accuracy")
    assert result.exit_code == 2 and "METRIC=VALUE" in result.stderr


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    from click.testing import CliRunner

    from adaptkit.cli import cli

    root = tmp_path_factory.mktemp("cmp")
    subset = root / "subset.jsonl"  # 40 of the 80 held-out tickets
    subset.write_text("".join((ROOT / "examples" / "data" / "support_tickets_test.jsonl").read_text().splitlines(keepends=True)[:40]))
    runs = {}
    for name, extra in (("small", "data.max_rows=48"), ("other", f"data.eval={subset}")):
        out = root / name
        result = CliRunner().invoke(cli, ["run", "lora_cls", f"output_dir={out}", "training.max_steps=2", "data.max_rows=48", extra])
        assert result.exit_code == 0, result.output
        runs[name] = out
    return runs


def test_runs_scored_on_different_data_are_refused(invoke, two_runs, tmp_path):
    result = invoke("compare", two_runs["small"], two_runs["other"], "--output-dir", tmp_path / "c")
    assert result.exit_code == 2 and "scored on different data" in result.stderr and "--eval-data" in result.stderr
    assert "support_tickets_test.jsonl, 80 rows scored" in result.stderr and "subset.jsonl, 40 rows scored" in result.stderr
    assert not (tmp_path / "c").exists()


def test_eval_data_rescores_finished_runs_on_one_file(invoke, two_runs, tmp_path):
    from pathlib import Path

    source = Path(__file__).resolve().parents[1] / "examples" / "data" / "support_tickets_test.jsonl"
    mine = tmp_path / "mine.jsonl"
    mine.write_text("".join(source.read_text().splitlines(keepends=True)[:30]))
    result = invoke("compare", two_runs["small"], two_runs["other"], "--eval-data", mine, "--output-dir", tmp_path / "c", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["rows"]
    predicted = json.loads(invoke("predict", two_runs["small"], mine, "-o", tmp_path / "p.jsonl", "--json").stdout)
    assert rows[0]["value"] == pytest.approx(predicted["scores"]["accuracy"])  # scored again on mine.jsonl, not its own rows
    assert all(r["metric"] == "accuracy" for r in rows)


def test_a_run_is_not_scored_again_on_rows_it_trained_on(invoke, two_runs, tmp_path):
    """--eval-data holding rows a finished run trained on (its own split, read again): its row fails, as a run would
    refuse (both runs trained on the same 48 tickets; the test above scores them on rows they did not see)."""
    data = ROOT / "examples" / "data"
    from adaptkit.recipe.load import load_recipe
    from adaptkit.runners.data import read_splits

    trained = read_splits(load_recipe(str(two_runs["small"] / "recipe.yaml"))[0])[0][:10]  # 10 of the 48 rows `small` trained on
    mixed = tmp_path / "mixed.jsonl"  # and 10 held-out tickets
    mixed.write_text("".join(json.dumps(row) + "\n" for row in trained)
                     + "".join((data / "support_tickets_test.jsonl").read_text().splitlines(keepends=True)[:10]))
    result = invoke("compare", two_runs["small"], two_runs["other"], "--eval-data", mixed, "--output-dir", tmp_path / "c", "--json")
    assert result.exit_code == 1 and "every recipe failed (2 of 2)" in result.stderr, result.output
    rows = json.loads(result.stdout)["rows"]
    assert len(rows) == 2 and all(r["error"].startswith("10 of the 20 --eval-data rows are in this run's training data (10 exact")
                                  for r in rows)


def test_cost_per_request_and_the_break_even(tmp_path):
    from adaptkit.methods.bakeoff import break_even, metric_names, row

    texts = tmp_path / "eval.jsonl"
    texts.write_text("".join(json.dumps({"text": "x" * 100, "label": "a"}) + "\n" for _ in range(4)))  # ~25 tokens each
    few_shot = row("icl", {"method": "in_context_learning", "task": "sequence_classification",
                           "eval": {"accuracy": 0.8, "prompt_tokens": 500}}, {"backend": {"max_new_tokens": 8}}, 0.5)
    assert few_shot["usd_per_1k_requests"] == pytest.approx(1000 * (500 * 0.5 + 8 * 2.0) / 1e6)  # output at 4x the input price
    assert few_shot["training_usd"] == 0.0
    adapter = row("lora", {"method": "lora_adapters", "task": "sequence_classification", "eval": {"accuracy": 0.9},
                           "train": {"runtime_s": 3600, "trainable_params": 1000}}, {"data": {"eval": str(texts)}}, 0.5)
    assert adapter["usd_per_1k_requests"] == pytest.approx(1000 * 25 * 0.5 / 1e6) and adapter["output_tokens"] == 0
    assert adapter["training_usd"] == 1.0  # an hour at $1
    [line] = break_even([few_shot, adapter], horizon_days=30)
    saving = (few_shot["usd_per_1k_requests"] - adapter["usd_per_1k_requests"]) / 1000
    assert f"~{1.0 / (30 * saving):,.0f} requests a day" in line and line.startswith("lora costs less than icl")
    assert break_even([adapter]) == []
    assert break_even([{**few_shot, "value": 0.95}, adapter]) == []  # cheaper but worse is no substitute
    assert "rougeL" in metric_names()  # a scored causal run ranks by its scorer's primary metric


# ------------------------------------------------------------------------- bake-offs: one scorer per task, base deltas

from tests.test_backends_rag import Scripted, server  # noqa: E402,F401  (the fixture)



def _run(invoke, *args):
    result = invoke("run", *map(str, args), "--overwrite", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _route(body):
    """A scripted model: routes a ticket by its words (the last one named in the request), like a decent prompt would."""
    text = body["messages"][-1]["content"].lower().rpartition("ticket:")[2] or body["messages"][-1]["content"].lower()
    for words, queue in ((("refund", "charge", "invoice", "billed"), "billing"), (("password", "sign", "log", "2fa"), "account_access"),
                         (("deliver", "parcel", "courier", "track"), "shipping"), (("cancel", "end my"), "cancellation")):
        if any(w in text for w in words):
            return {"content": queue}
    return {"content": "technical_issue"}


def test_a_classification_bake_off_ranks_a_classifier_against_prompts_on_accuracy(invoke, tmp_path, server):  # noqa: F811
    Scripted.script = [_route] * 5000
    endpoint = ["backend.kind=openai", f"backend.base_url={server}", "backend.model=test", "backend.concurrency=1"]
    pe = _run(invoke, "prompt_engineering", *endpoint, f"output_dir={tmp_path / 'pe'}")
    icl = _run(invoke, "icl", *endpoint, "icl.shots=[0,2]", "icl.selection=random", f"output_dir={tmp_path / 'icl'}")
    cls = _run(invoke, "lora_cls", "training.max_steps=2", f"output_dir={tmp_path / 'cls'}")
    assert pe["eval"]["base"]["kind"].startswith("the bare input") and "accuracy" in pe["eval"]["delta"]
    assert icl["eval"]["base"]["accuracy"] == icl["eval"]["accuracy_by_k"]["0"]  # k = 0 is the base
    assert cls["eval"]["base"]["kind"].startswith("majority class")
    assert cls["eval"]["delta"]["accuracy"] == pytest.approx(cls["eval"]["accuracy"] - cls["eval"]["base"]["accuracy"], abs=1e-6)
    result = invoke("compare", tmp_path / "pe", tmp_path / "icl", tmp_path / "cls", "--output-dir", tmp_path / "c", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [r["metric"] for r in report["rows"]] == ["accuracy"] * 3 and all("base_value" in r for r in report["rows"])
    best = max(report["rows"], key=lambda r: r["value"])
    assert report["recommendation"] and "accuracy" in report["recommendation"] and best["value"] > 0.3
    assert "cost_basis" in report["rows"][2] and "tokenizer" in report["rows"][2]["cost_basis"]  # counted, not guessed


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def generation_runs(tmp_path_factory, tiny_causal_lm):
    """prompt_engineering, icl and lora_sft on the same generation rows, on the tiny causal LM."""
    from click.testing import CliRunner

    from adaptkit.cli import cli

    root = tmp_path_factory.mktemp("gen")
    rows = [json.loads(line) for line in (ROOT / "examples" / "data" / "instructions_train.jsonl").read_text().splitlines()]
    train, dev = _write(root / "train.jsonl", rows[:40]), _write(root / "dev.jsonl", rows[40:46])
    _write(root / "other.jsonl", rows[50:54])
    common = [f"model={tiny_causal_lm}", f"data.eval={dev}"]
    runs = {
        "pe": ["prompt_engineering", "task=causal_lm", "backend.max_new_tokens=6", "prompts.scorer=contains"],
        "icl": ["icl", "task=causal_lm", f"data.train={train}", "icl.shots=[0,1]", "icl.selection=random", "icl.instruction=null",
                "icl.example_template=null", "icl.query_template=null", "backend.max_new_tokens=6"],
        "sft": ["lora_sft", f"data.train={train}", "training.max_steps=3", "training.batch_size=4", "training.max_new_tokens=6",
                "training.generate_eval=6"],
    }
    out = {"root": root}
    for name, args in runs.items():
        result = CliRunner().invoke(cli, ["run", *args, *common, f"output_dir={root / name}", "--json"])
        assert result.exit_code == 0, result.output
        out[name] = json.loads(result.stdout)
    return out


def test_a_generation_bake_off_ranks_every_method_by_one_metric(invoke, generation_runs, tmp_path):
    root = generation_runs["root"]
    for name in ("pe", "icl", "sft"):
        e = generation_runs[name]["eval"]
        assert e["primary_metric"] == "rougeL" and {"exact_match", "token_f1", "chrf"} <= set(e) and "rougeL" in e["base"]
    assert generation_runs["icl"]["eval"]["base"]["rougeL"] == generation_runs["icl"]["eval"]["rougeL_by_k"]["0"]
    assert {generation_runs[name]["eval_data"]["rows"] for name in ("pe", "icl", "sft")} == {6}  # the file's hash and its rows
    result = invoke("compare", root / "pe", root / "icl", root / "sft", "--output-dir", tmp_path / "c", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [r["metric"] for r in report["rows"]] == ["rougeL"] * 3 and all(r["value"] is not None for r in report["rows"])
    assert "rougeL" in report["recommendation"]


def test_a_causal_run_is_scored_again_on_other_data_or_refused(invoke, generation_runs, tmp_path):
    root = generation_runs["root"]
    other = root / "other.jsonl"
    again = json.loads(invoke("compare", root / "sft", "--eval-data", other, "--output-dir", tmp_path / "c", "--json").stdout)
    predicted = json.loads(invoke("predict", root / "sft", other, "-o", tmp_path / "p.jsonl", "--max-new-tokens", "6", "--json").stdout)
    row = again["rows"][0]
    assert row["metric"] == "rougeL" and row["value"] == pytest.approx(predicted["scores"]["rougeL"])
    assert "base_value" in row  # the unadapted model on the new rows too
    metrics = json.loads((root / "pe" / "metrics.json").read_text())
    metrics["eval_data"] = {**metrics["eval_data"], "source": str(other), "sha256": "0" * 64}  # as if scored on other.jsonl
    moved = tmp_path / "pe-other"
    import shutil

    shutil.copytree(root / "pe", moved)
    (moved / "metrics.json").write_text(json.dumps(metrics))
    refused = invoke("compare", root / "sft", moved, "--output-dir", tmp_path / "r")
    assert refused.exit_code == 2 and "scored on different data" in refused.stderr


def test_a_recipe_names_its_scorer_and_a_users_scorer_needs_consent(invoke, generation_runs, tmp_path, tiny_causal_lm):
    scorer = tmp_path / "mine.py"
    scorer.write_text("def score(predictions, references, **options):\n"
                      "    return {'length_ok': sum(len(p) < 400 for p in predictions) / len(predictions), 'n': len(predictions)}\n")
    dev = generation_runs["root"] / "dev.jsonl"
    args = ["prompt_engineering", f"model={tiny_causal_lm}", "task=causal_lm", f"data.eval={dev}", "backend.max_new_tokens=4",
            f"scoring.scorer={scorer}:score", f"output_dir={tmp_path / 'mine'}"]
    refused = invoke("run", *args)
    assert refused.exit_code == 2 and "scoring.scorer" in refused.stderr and "--allow-code" in refused.stderr
    e = _run(invoke, *args, "--allow-code")["eval"]
    assert e["primary_metric"] == "length_ok" and e["length_ok"] == 1.0 and e["base"]["length_ok"] == 1.0
    wrong = invoke("run", *args, "scoring.primary=missing", "--allow-code", "--overwrite")
    assert wrong.exit_code == 2 and "scoring.primary `missing`" in wrong.stderr
    bad = invoke("run", "lora_cls", "scoring.scorer=generation", "--dry-run")
    assert bad.exit_code == 2 and "a classification recipe's answers are labels" in bad.stderr


def test_an_extraction_recipe_is_scored_against_its_schema(invoke, tmp_path, server):  # noqa: F811
    Scripted.script = [lambda body: {"content": '{"order": "A-1", "items": 2}'}] * 100
    rows = [{"prompt": "Order A-1, two items", "response": '{"order": "A-1", "items": 2}'},
            {"prompt": "Order B-7, one item", "response": '{"order": "B-7", "items": 1}'}]
    dev = _write(tmp_path / "dev.jsonl", rows)
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"type": "object", "required": ["order", "items"], "properties": {"items": {"type": "string"}}}))
    e = _run(invoke, "prompt_engineering", "task=causal_lm", f"data.eval={dev}", "backend.kind=openai", f"backend.base_url={server}",
             "backend.model=test", "scoring.scorer=extraction", f"scoring.schema_file={schema}", f"output_dir={tmp_path / 'x'}")["eval"]
    assert e["primary_metric"] == "field_f1" and e["json_valid"] == 1.0 and e["exact_match"] == 0.5
    assert e["schema_valid"] == 0.0  # items is a number, the schema wants a string


def test_a_chat_recipe_is_judged_pairwise_with_the_positions_swapped(invoke, tmp_path, server):  # noqa: F811
    def model(body):
        prompt = body["messages"][-1]["content"]
        if prompt.startswith("You compare two answers"):  # the judge: prefers the answer that apologises, wherever it stands
            a = prompt.split("Answer A:")[1].split("Answer B:")[0]
            return {"content": "A" if "sorry" in a.lower() else "B"}
        if body["messages"][0]["role"] == "system":  # the variant with the house style
            return {"content": "Sorry for the wait: your parcel ships today."}
        return {"content": "Your parcel ships today."}
    Scripted.script = [model] * 200
    dev = _write(tmp_path / "dev.jsonl", [{"prompt": f"Where is order {n}?", "response": "It ships today."} for n in range(3)])
    e = _run(invoke, "prompt_engineering", "task=causal_lm", f"data.eval={dev}", "backend.kind=openai", f"backend.base_url={server}",
             "backend.model=test", "backend.concurrency=1", "scoring.scorer=chat", "prompts.system=Apologise first.",
             f"output_dir={tmp_path / 'chat'}")["eval"]
    assert e["primary_metric"] == "win_rate" and e["win_rate"] == 1.0 and e["wins"] == 3  # beats the bare prompt both ways round
    assert e["base"]["win_rate"] == 0.5 and e["delta"]["win_rate"] == 0.5 and "Answer A" in e["judge_prompt"]


def test_a_code_recipe_runs_each_answer_against_its_test(invoke, tmp_path, server):  # noqa: F811
    Scripted.script = [lambda body: {"content": "```python\ndef add(a, b):\n    return a + b\n```"}] * 100
    dev = _write(tmp_path / "dev.jsonl", [{"prompt": "Write add(a, b).", "response": "assert add(2, 3) == 5"},
                                          {"prompt": "Write add(a, b) that is wrong.", "response": "assert add(2, 2) == 5"}])
    args = ("prompt_engineering", "task=causal_lm", f"data.eval={dev}", "backend.kind=openai", f"backend.base_url={server}",
            "backend.model=test", "scoring.scorer=code", "scoring.timeout_s=5", f"output_dir={tmp_path / 'code'}")
    refused = invoke("run", *args)  # generated code runs only when the user allows it
    assert refused.exit_code == 2 and "runs the code the model generates" in refused.stderr and "--allow-code" in refused.stderr
    dry = " ".join(invoke("run", *args, "--dry-run").stdout.split())  # however wide the terminal the tests run in
    assert "runs the code the model generates" in dry and "not allowed" in dry
    e = _run(invoke, *args, "--allow-code")["eval"]
    assert e["primary_metric"] == "pass_at_1" and e["pass_at_1"] == 0.5 and "AssertionError" in e["failures"][0]


def test_what_counts_as_the_same_eval_rows():
    from adaptkit.recipe.load import load_recipe
    from adaptkit.runners.data import eval_identity, same_eval

    def identity(*overrides):
        return eval_identity(load_recipe("lora_cls", list(overrides))[0])

    assert same_eval(identity("data.max_rows=48"), identity("data.max_rows=96"))  # max_rows caps training rows only
    held = ["data.eval=null", "data.eval_fraction=0.2"]
    assert same_eval(identity(*held), identity(*held, "data.max_rows=50"))
    assert not same_eval(identity(*held), identity(*held, "training.seed=7"))  # another seed holds out other rows
    assert not same_eval(identity(*held), identity())  # a slice of the training file is not the test file


@pytest.mark.unit
def test_compare_says_when_the_pick_cannot_be_told_apart():
    """The recommendation names what its 95% interval overlaps: its base, or a cheaper run that scored lower."""
    from adaptkit.methods.bakeoff import winner

    def row(recipe, method, value, low, high, **more):
        return {"recipe": recipe, "method": method, "metric": "accuracy", "value": value, "low": low, "high": high,
                "usd_per_1k_requests": 0.1, "training_s": 0.0, "trainable_params": 0, "tokens_per_request": 10, **more}

    prompt = row("prompt.yaml", "prompt_engineering", 0.70, 0.55, 0.85)
    lora = row("lora.yaml", "lora_adapters", 0.80, 0.66, 0.93, base_value=0.72, trainable_params=1000)
    verdict = winner([prompt, lora], 0.02, None)
    assert verdict.startswith("lora.yaml") and "not distinguishable from its base" in verdict
    assert "not distinguishable from prompt.yaml" in verdict and "more eval rows" in verdict
    clear = winner([row("prompt.yaml", "prompt_engineering", 0.5, 0.45, 0.55),
                    row("lora.yaml", "lora_adapters", 0.9, 0.86, 0.94, base_value=0.3)], 0.02, None)
    assert clear.startswith("lora.yaml") and "but" not in clear


@pytest.mark.unit
def test_the_chart_labels_never_overlap():
    from adaptkit.comparison import figure

    rows = [{"recipe": f"bake-off/a-rather-long-recipe-name-number-{n}.yaml", "metric": "accuracy", "value": 0.5 + n / 20,
             "low": 0.4 + n / 20, "high": 0.6 + n / 20, "base_value": 0.3} for n in range(8)]
    fig = figure(rows)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    boxes = sorted((label.get_window_extent(renderer) for label in ax.get_yticklabels()), key=lambda box: box.y0)
    assert len(boxes) == 8 and all(lower.y1 <= upper.y0 + 0.5 for lower, upper in zip(boxes, boxes[1:]))
    assert all(box.x0 >= 0 for box in boxes)  # inside the figure
