"""adaptkit run for real: short training runs on the embedded MiniLM and a tiny causal LM, and every guard."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import check_resources

ROOT = Path(__file__).resolve().parent.parent

pytest.importorskip("torch")
pytest.importorskip("peft")

METRICS_KEYS = {"method", "task", "train", "eval", "resources", "eval_data", "train_data"}
TRAIN_KEYS = {"runtime_s", "samples_per_second", "steps", "global_batch", "trainable_params", "total_params", "final_loss"}
QUICK = ["training.logging_steps=1", "data.max_rows=96"]


def losses(out: Path) -> list[float]:
    return [row["loss"] for row in map(json.loads, (out / "train_log.jsonl").read_text().splitlines()) if "loss" in row]


def run_ok(invoke, *args):
    result = invoke("run", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize("recipe, steps", [("lora_cls", 12), ("full_cls", 8), ("prompt_tuning_cls", 12), ("ia3_cls", 12)])
def test_classification_trains_evaluates_and_loads_back(invoke, tmp_path, recipe, steps):
    out = tmp_path / recipe
    metrics = run_ok(invoke, recipe, f"output_dir={out}", f"training.max_steps={steps}", "training.batch_size=8", *QUICK)
    assert set(metrics) - {"warnings"} == METRICS_KEYS and set(metrics["train"]) == TRAIN_KEYS
    import hashlib

    trained_on = hashlib.sha256((ROOT / "examples/data/support_tickets_train.jsonl").read_bytes()).hexdigest()
    assert metrics["train_data"] == {"rows": 96, "sha256": trained_on}  # what the ledger records as the profile's data
    resources = check_resources(metrics)
    assert resources["tokens"] > 0 and resources["tokens_per_second"] > 0
    assert set(metrics["eval"]) == {"loss", "accuracy", "f1_macro", "primary_metric", "base", "delta", "throughput", "interval"}
    interval = metrics["eval"]["interval"]  # a bootstrap over the eval rows
    assert interval["metric"] == "accuracy" and interval["low"] <= metrics["eval"]["accuracy"] <= interval["high"]
    majority = metrics["eval"]["base"]  # the untrained head's best guess: the most common training label
    assert majority["kind"].startswith("majority class") and 0 < majority["accuracy"] < 1
    assert metrics["eval"]["delta"]["accuracy"] == pytest.approx(metrics["eval"]["accuracy"] - majority["accuracy"], abs=1e-6)
    assert 0 <= metrics["eval"]["accuracy"] <= 1 and metrics["train"]["trainable_params"] <= metrics["train"]["total_params"]
    assert json.loads((out / "metrics.json").read_text()) == metrics
    curve = losses(out)
    assert min(curve[1:]) < curve[0], curve  # the loss fell below where it began (12 noisy steps: not always at the last)
    for name in ("README.md", "recipe.yaml", "train_log.jsonl", "loss_curve.png", "labels.json", "tokenizer_config.json"):
        assert (out / name).is_file(), name
    assert not list(out.glob(".metrics.json.*"))
    _load_classifier(out, adapter=recipe != "full_cls")


def _load_classifier(out: Path, adapter: bool):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from adaptkit.models import embedded_minilm

    labels = json.loads((out / "labels.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(out)
    if adapter:
        from peft import PeftModel

        base = AutoModelForSequenceClassification.from_pretrained(
            str(embedded_minilm()), num_labels=len(labels), id2label=dict(enumerate(labels)),
            label2id={label: i for i, label in enumerate(labels)})
        model = PeftModel.from_pretrained(base, out)
    else:
        model = AutoModelForSequenceClassification.from_pretrained(out)
        assert list(model.config.id2label.values()) == labels
    with torch.no_grad():
        logits = model(**tokenizer(["I was charged twice", "my parcel never came"], return_tensors="pt", padding=True)).logits
    assert logits.shape == (2, len(labels))


def test_prefix_tuning_for_classification_says_why_not(invoke, tmp_path):
    out = tmp_path / "prefix"
    result = invoke("run", "prefix_tuning_cls", f"output_dir={out}", "training.max_steps=2")
    if result.exit_code == 0:  # a transformers/peft pair that supports it trains for real
        assert (out / "metrics.json").is_file()
        return
    assert result.exit_code == 2 and "past_key_values" in result.stderr and "prompt_tuning_cls" in result.stderr
    assert not out.exists()


CAUSAL = ["training.max_steps=15", "training.batch_size=8", "training.max_length=96", "training.gradient_checkpointing=false",
          "training.logging_steps=1", "data.max_rows=120"]


@pytest.mark.parametrize("recipe, extra", [
    ("lora_sft", ["training.learning_rate=0.005"]),
    ("instruction_tuning", ["training.learning_rate=0.003"]),
    ("lora_sft", ["training.learning_rate=0.005", "data.train=examples/data/chat_train.jsonl",
                  "data.eval=examples/data/chat_eval.jsonl", "data.messages_column=messages"]),
])
def test_causal_lm_trains_on_a_tiny_model(invoke, tmp_path, tiny_causal_lm, recipe, extra):
    out = tmp_path / "sft"
    root = Path(__file__).parent.parent
    extra = [e.replace("examples/", f"{root}/examples/") for e in extra]
    metrics = run_ok(invoke, recipe, f"model={tiny_causal_lm}", f"output_dir={out}", *CAUSAL, *extra)
    generated = {"exact_match", "token_f1", "rougeL", "chrf", "primary_metric", "generated_rows", "base", "delta", "throughput",
                 "interval"}
    assert metrics["eval"]["throughput"]["rows_per_second"] > 0 and metrics["eval"]["throughput"]["device"] == "cpu"
    assert set(metrics["eval"]) == {"loss", "perplexity"} | generated and metrics["eval"]["perplexity"] > 1
    assert metrics["eval"]["primary_metric"] == "rougeL" and metrics["eval"]["generated_rows"] > 0  # answers, not just loss
    base, delta = metrics["eval"].pop("base"), metrics["eval"].pop("delta")  # the unadapted model on the same rows
    assert delta["rougeL"] == pytest.approx(metrics["eval"]["rougeL"] - base["rougeL"], abs=1e-6)
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == metrics["eval"]["generated_rows"] and {"prompt", "reference", "prediction"} <= set(samples[0])
    check_resources(metrics)
    curve = losses(out)
    assert min(curve[1:]) < curve[0], curve  # the loss fell below where it began (12 noisy steps: not always at the last)
    from transformers import AutoModelForCausalLM

    if recipe == "lora_sft":
        from peft import AutoPeftModelForCausalLM

        model = AutoPeftModelForCausalLM.from_pretrained(out)
    else:
        model = AutoModelForCausalLM.from_pretrained(out)
    from transformers import AutoTokenizer

    ids = AutoTokenizer.from_pretrained(out)("where is my refund", return_tensors="pt")["input_ids"]
    assert model(input_ids=ids).logits.shape[-1] == len(AutoTokenizer.from_pretrained(tiny_causal_lm))


def test_prompt_tuning_trains_a_causal_lm(invoke, tmp_path, tiny_causal_lm):
    out = tmp_path / "prompt-lm"
    metrics = run_ok(invoke, "lora_sft", f"model={tiny_causal_lm}", f"output_dir={out}", *CAUSAL, "method=prefix_prompt_tuning",
                     "lora=", "prefix_prompt_tuning.kind=prompt", "prefix_prompt_tuning.num_virtual_tokens=8",
                     "training.learning_rate=0.05")
    assert metrics["method"] == "prefix_prompt_tuning" and metrics["train"]["trainable_params"] == 8 * 64
    check_resources(metrics)
    curve = losses(out)
    assert min(curve[1:]) < curve[0], curve


def test_prefix_tuning_of_a_causal_lm_is_refused_clearly(invoke, tmp_path, tiny_causal_lm):
    out = tmp_path / "prefix-lm"
    result = invoke("run", "lora_sft", f"model={tiny_causal_lm}", f"output_dir={out}", "method=prefix_prompt_tuning", "lora=",
                    "prefix_prompt_tuning.kind=prefix")
    assert result.exit_code == 2 and "kind=prompt" in result.stderr and not out.exists()


def test_qlora_refuses_on_a_cpu(invoke, tmp_path, tiny_causal_lm):
    out = tmp_path / "q"
    result = invoke("run", "qlora_sft", f"model={tiny_causal_lm}", f"output_dir={out}")
    assert result.exit_code == 2 and "needs a CUDA GPU" in result.stderr
    assert not out.exists()


def _jsonl(path: Path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("case, files, overrides, words", [
    ("missing file", {}, ["data.train=nope.jsonl"], "no such file"),
    ("missing column", {"t.jsonl": [{"txt": "a", "label": "x"}, {"txt": "b", "label": "y"}]}, ["data.train=t.jsonl"],
     "column `text` not found (columns: txt, label); did you mean `txt`"),
    ("own columns", {"t.jsonl": [{"body": "a", "queue": "x"}, {"body": "b", "queue": "y"}]}, ["data.train=t.jsonl"],
     "columns `text`, `label` not found (columns: body, queue); name the ones to read: data.text_column=COLUMN "
     "data.label_column=COLUMN"),
    ("empty split", {"e.jsonl": []}, ["data.eval=e.jsonl"], "has no rows"),
    ("unseen eval labels", {"e.jsonl": [{"text": "where is my refund", "label": "refunds"}]}, ["data.eval=e.jsonl"],
     "labels not in the training data: refunds"),
    ("float labels", {"t.jsonl": [{"text": "a", "label": 0.5}, {"text": "b", "label": 1.5}]}, ["data.train=t.jsonl"],
     "holds floats"),
    ("empty text", {"t.jsonl": [{"text": "", "label": "x"}, {"text": "b", "label": "y"}]}, ["data.train=t.jsonl"], "no text"),
    ("one label", {"t.jsonl": [{"text": "a", "label": "x"}, {"text": "b", "label": "x"}]}, ["data.train=t.jsonl"], "only one label"),
    ("bad json", {"t.jsonl": "not json"}, ["data.train=t.jsonl"], "line 1 is not valid JSON"),
])
def test_data_problems_fail_before_any_weights_load(invoke, tmp_path, monkeypatch, case, files, overrides, words):
    monkeypatch.chdir(tmp_path)
    for name, rows in files.items():
        if isinstance(rows, str):
            (tmp_path / name).write_text(rows)
        else:
            _jsonl(tmp_path / name, rows)
    import adaptkit.methods.supervised.runner as runner

    monkeypatch.setattr(runner, "train", lambda *a, **k: pytest.fail("training started"))
    result = invoke("run", "lora_cls", "output_dir=out", *overrides)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], result.stderr
    assert not (tmp_path / "out").exists()


def test_csv_data_with_integer_labels(invoke, tmp_path):
    rows = [(f"invoice {i} charged twice", 0) for i in range(12)] + [(f"parcel {i} never arrived", 1) for i in range(12)]
    train = tmp_path / "t.csv"
    train.write_text("body,queue\n" + "".join(f"{t},{label}\n" for t, label in rows))
    metrics = run_ok(invoke, "lora_cls", f"data.train={train}", "data.eval=", "data.eval_fraction=0.25",
                     "data.text_column=body", "data.label_column=queue", f"output_dir={tmp_path / 'o'}", "training.max_steps=3")
    assert metrics["eval"]["accuracy"] is not None
    assert json.loads((tmp_path / "o" / "labels.json").read_text()) == ["0", "1"]
    held = tmp_path / "e.jsonl"  # the held-out rows as JSONL, whose labels are numbers: the same two labels as the CSV's text
    held.write_text("".join(json.dumps({"body": f"bill {i} was charged twice, please", "queue": 0}) + "\n" +
                            json.dumps({"body": f"my box {i} got lost on the way", "queue": 1}) + "\n" for i in range(40, 44)))
    mixed = run_ok(invoke, "lora_cls", f"data.train={train}", f"data.eval={held}", "data.text_column=body", "data.label_column=queue",
                   f"output_dir={tmp_path / 'm'}", "training.max_steps=3")
    assert mixed["eval_data"]["rows"] == 8
    floats = tmp_path / "f.jsonl"  # labels written as 0.0 and 1.0 (a parquet's float column) are scored as 0 and 1
    floats.write_text(held.read_text().replace('"queue": 0}', '"queue": 0.0}').replace('"queue": 1}', '"queue": 1.0}'))
    scored = json.loads(invoke("predict", tmp_path / "m", floats, "-o", tmp_path / "p.jsonl", "--json").stdout)["scores"]
    assert scored["accuracy"] == pytest.approx(mixed["eval"]["accuracy"], abs=1e-9) and "unknown" not in json.dumps(scored)


def test_output_dir_is_never_overwritten_silently(invoke, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    result = invoke("run", "lora_cls", f"output_dir={out}", "training.max_steps=1")
    assert result.exit_code == 2 and "not empty and adaptkit did not create it" in result.stderr
    assert "--overwrite" not in result.stderr  # it would refuse a folder adaptkit did not make: no advice that fails
    assert (out / "precious.txt").read_text() == "keep me"
    assert invoke("run", "lora_cls", f"output_dir={out}", "--resume").exit_code == 2
    assert "contradict" in invoke("run", "lora_cls", f"output_dir={out}", "--resume", "--overwrite").stderr
    refused = invoke("run", "lora_cls", f"output_dir={out}", "training.max_steps=2", "--overwrite", *QUICK)
    assert refused.exit_code == 2 and "replaces only folders adaptkit created" in refused.stderr
    assert (out / "precious.txt").read_text() == "keep me"
    run = tmp_path / "run"
    first = run_ok(invoke, "lora_cls", f"output_dir={run}", "training.max_steps=2", *QUICK)
    (run / "stale.txt").write_text("from the first run")
    second = run_ok(invoke, "lora_cls", f"output_dir={run}", "training.max_steps=3", "--overwrite", *QUICK)
    assert not (run / "stale.txt").exists() and json.loads((run / "metrics.json").read_text()) == second != first
    assert not list(tmp_path.glob(".run.adaptkit-*"))  # no staging folder left beside it


def _adaptkit(*args):
    return [sys.executable, "-m", "adaptkit", *args]


def test_ctrl_c_saves_a_checkpoint_and_resume_finishes(tmp_path):
    out = tmp_path / "interrupted"
    env = {**os.environ, "ADAPTKIT_FAKE_GPUS": "0", "HF_HUB_OFFLINE": "1"}
    args = ["lora_cls", f"output_dir={out}", "training.max_steps=400", "training.logging_steps=1", "data.max_rows=64"]
    process = subprocess.Popen(_adaptkit("run", *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    log = out / "train_log.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 3):
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "resume with: adaptkit run lora_cls" in stderr and "Traceback" not in stderr
    checkpoints = sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    assert checkpoints and not (out / "metrics.json").exists()
    step = int(checkpoints[-1].name.split("-")[1])
    printed = next(line for line in stderr.splitlines() if "resume with:" in line).split("resume with: ", 1)[1].split()
    assert printed[:2] == ["adaptkit", "run"] and printed[-1] == "--resume" and f"output_dir={out}" in printed
    (out / f"checkpoint-{step + 1}").mkdir()  # what a kill -9 during a save leaves: a checkpoint not written to the end
    (out / f"checkpoint-{step + 1}" / "adapter_model.safetensors").write_bytes(b"\0" * 10)
    resumed = subprocess.run(_adaptkit("run", *args[:-3], f"training.max_steps={step + 3}", "training.logging_steps=1",
                                       "data.max_rows=64", "--resume"), capture_output=True, text=True, env=env)
    assert resumed.returncode == 0, resumed.stderr  # the human summary, as a user sees it (not only --json)
    assert f"checkpoint-{step + 1} was not written to the end" in resumed.stderr
    assert f"resumed from step {step}" in resumed.stdout and "eval:" in resumed.stdout and "unexpected" not in resumed.stderr
    steps = [json.loads(line)["step"] for line in log.read_text().splitlines()]
    assert max(steps) == step + 3 and (out / "metrics.json").is_file()
    train = json.loads((out / "metrics.json").read_text())["train"]  # the whole run's figures, not only the resumed part's
    assert train["steps"] == step + 3 and train["resumed"]["from_step"] == step
    assert 0 < train["resumed"]["seconds_before"] < train["runtime_s"]


@pytest.mark.parametrize("scope, per_step", [("global", 8), ("per_device", 16)])
def test_two_cpu_processes_train_one_model(tmp_path, scope, per_step):
    out = tmp_path / "ddp"
    env = {**os.environ, "ADAPTKIT_FAKE_GPUS": "0", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(_adaptkit("run", "lora_cls", f"output_dir={out}", "--num-processes", "2", "training.max_steps=4",
                                      "training.batch_size=8", "training.logging_steps=1", "data.max_rows=64",
                                      f"training.batch_scope={scope}", "--json"),
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "torch.distributed.run --nproc_per_node 2" in result.stderr
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    step4 = next(row for row in log if row["step"] == 4 and "loss" in row)
    assert step4["epoch"] == pytest.approx(4 * per_step / 64)  # global: the recipe's 8 a step, split 4 + 4; per_device: 8 + 8
    assert json.loads(result.stdout)["train"]["global_batch"] == per_step
    assert len(list(out.glob("metrics.json"))) == 1 and json.loads((out / "metrics.json").read_text())["method"] == "lora_adapters"


def test_same_seed_same_numbers(invoke, tmp_path):
    runs = [run_ok(invoke, "lora_cls", f"output_dir={tmp_path / str(i)}", "training.max_steps=4", "data.max_rows=48") for i in (1, 2)]
    for run in runs:
        run["eval"].pop("throughput")  # a timing, not a result
    assert runs[0]["eval"] == runs[1]["eval"] and runs[0]["train"]["final_loss"] == runs[1]["train"]["final_loss"]
    other = run_ok(invoke, "lora_cls", f"output_dir={tmp_path / '3'}", "training.max_steps=4", "data.max_rows=48", "training.seed=7")
    assert other["eval"]["loss"] != runs[0]["eval"]["loss"]


def test_the_global_batch_is_said_and_must_split(invoke):
    report = json.loads(invoke("run", "lora_cls", "training.batch_size=8", "training.gradient_accumulation=2", "--num-processes", "4",
                               "--dry-run", "--json").stdout)
    assert report["batch"].startswith("16 examples per optimizer step = 2 per device x 4 process(es) x 2 accumulation")
    odd = invoke("run", "lora_cls", "training.batch_size=3", "--num-processes", "2")
    assert odd.exit_code == 2 and "cannot be split evenly over 2 processes" in odd.stderr and "batch_scope=per_device" in odd.stderr


def test_prompts_longer_than_max_length_are_one_clear_line(invoke, tmp_path, tiny_causal_lm):
    data = tmp_path / "long.jsonl"
    data.write_text("".join(json.dumps({"prompt": "order " * 80, "response": "refund"}) + "\n" for _ in range(8)))
    out = tmp_path / "out"
    result = invoke("run", "lora_sft", f"model={tiny_causal_lm}", f"output_dir={out}", f"data.train={data}", f"data.eval={data}",
                    "training.max_length=32", "training.max_steps=2", "--accept-leakage")  # the same file: the length is the point
    assert result.exit_code == 2 and "training.max_length=32" in result.stderr and "Traceback" not in result.output
    assert not out.exists()


def test_the_base_models_answers_are_generated_once_per_model_and_rows(tiny_causal_lm, tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from adaptkit.recipe.load import load_recipe
    from adaptkit.runners import predict

    recipe = load_recipe("lora_sft", [f"model={tiny_causal_lm}", "training.max_new_tokens=4"])[0]
    model, tokenizer = AutoModelForCausalLM.from_pretrained(tiny_causal_lm), AutoTokenizer.from_pretrained(tiny_causal_lm)
    run = predict.Run(tmp_path, recipe, tmp_path, [])
    rows = [{"prompt": f"Where is order {n}?", "response": "It ships today."} for n in range(3)]
    calls = []
    real = predict._generate
    monkeypatch.setattr(predict, "_generate", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = predict._base_answers(recipe, model, tokenizer, run, rows)
    again = predict._base_answers(recipe, model, tokenizer, run, rows)
    assert first == again and len(calls) == 1 and len(first) == 3 and all(isinstance(a, str) for a in first)
    other = predict._base_answers(recipe, model, tokenizer, run, rows[:2])
    assert len(calls) == 2 and other == first[:2]  # other rows: generated anew (greedy: the same answers)


def test_a_full_disk_during_a_save_is_one_line_and_keeps_the_last_complete_checkpoint(tmp_path, monkeypatch):
    import errno

    from transformers import Trainer

    import adaptkit
    from adaptkit.errors import AdaptkitError

    real, calls = Trainer._save_checkpoint, []

    def save(self, *args, **kwargs):
        calls.append(self.state.global_step)
        if len(calls) > 1:  # the second save finds the disk full, half-way
            os.makedirs(os.path.join(self.args.output_dir, f"checkpoint-{self.state.global_step}"), exist_ok=True)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "_save_checkpoint", save)
    out = tmp_path / "full"
    with pytest.raises(AdaptkitError) as caught:
        adaptkit.run("lora_cls", [f"output_dir={out}", "training.max_steps=6", "training.save_every=2", "data.max_rows=64"])
    message = str(caught.value)
    assert "\n" not in message and "No space left on device" in message and "kept checkpoint-2 (complete)" in message
    assert (out / "checkpoint-2" / "trainer_state.json").is_file() and (out / "checkpoint-4.incomplete").is_dir()
    monkeypatch.setattr(Trainer, "_save_checkpoint", real)
    resumed = adaptkit.run("lora_cls", [f"output_dir={out}", "training.max_steps=6", "training.save_every=2", "data.max_rows=64"],
                           resume=True)
    assert resumed.metrics["train"]["resumed"]["from_step"] == 2



@pytest.mark.unit
def test_max_rows_takes_a_seeded_sample_not_the_first_rows(tmp_path):
    """A file sorted by label cut to its first rows lost whole labels: a bake-off's first rung on photos in class folders
    failed with 'labels not in the training data: square'. max_rows draws a sample (in file order), the smaller inside
    the larger, the same for the same seed."""
    from adaptkit.recipe.load import load_recipe
    from adaptkit.runners.data import read_splits

    rows = tmp_path / "sorted.jsonl"
    rows.write_text("".join(json.dumps({"text": f"{label} ticket {i}", "label": label}) + "\n"
                            for label in ("billing", "shipping", "refund") for i in range(30)))

    def taken(n, seed=42):
        recipe = load_recipe("lora_cls", [f"data.train={rows}", "data.eval=", "data.eval_fraction=null", f"data.max_rows={n}",
                                          f"training.seed={seed}"])[0]
        return [r["text"] for r in read_splits(recipe)[0]]

    small, large = taken(10), taken(30)
    for seed in range(20):  # spread over the labels: every label in any sample of 6 (3 labels of 30 rows each)
        assert {text.split()[0] for text in taken(6, seed)} == {"billing", "shipping", "refund"}
    assert set(small) <= set(large) and taken(10) == small and taken(10, seed=7) != small
    order = [int(text.split()[-1]) + 100 * ("billing", "shipping", "refund").index(text.split()[0]) for text in large]
    assert order == sorted(order)  # in the file's order
