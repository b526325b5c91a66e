"""`advise --data FILE`: the answers a data file proves, where each came from, and clear errors for files it cannot read."""

import csv
import json

import pytest

from adaptkit.runners.data_facts import infer

OPEN = ("--set", "weight_access=open", "--set", "goal=behavior", "--no-input", "--json")


def jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def tickets(n, classes=("billing", "shipping", "returns", "account"), skew=None):
    rows = []
    for i in range(n):
        label = classes[0] if skew and i % 10 < skew else classes[i % len(classes)]
        rows.append({"text": f"ticket {i}: my {label} question about order {i * 7} " + "please help " * (i % 9), "label": label})
    return rows


@pytest.mark.parametrize("rows, task, counts", [
    (tickets(40), "classification", {"labeled_examples": 40}),
    (tickets(300, classes=("a", "b", "c", "d", "e", "f")), "classification", {"labeled_examples": 300}),
    ([{"prompt": f"Write a title for item {i}", "response": f"Item {i}: a fine thing"} for i in range(25)], "generation",
     {"labeled_examples": 25}),
    ([{"question": f"What is the fee for plan {i}?", "answer": f"${i}"} for i in range(60)], "qa", {"labeled_examples": 60}),
    ([{"input": f"Order {i} shipped to Oslo", "output": json.dumps({"order": i, "city": "Oslo"})} for i in range(30)], "extraction",
     {"labeled_examples": 30}),
    ([{"messages": [{"role": "user", "content": f"hi {i}"}, {"role": "assistant", "content": "hello"}]} for i in range(12)], "chat",
     {"labeled_examples": 12}),
    ([{"prompt": f"p{i}", "chosen": "a careful answer", "rejected": "no"} for i in range(700)], "chat", {"preference_pairs": 700}),
    ([{"prompt": f"p{i}", "completion": "a reply", "label": i % 3 != 0} for i in range(150)], "chat", {"feedback_labels": 150}),
    ([{"prompt": f"p{i}", "completion": "a reply", "label": "up" if i % 2 else "down"} for i in range(40)], "chat", {"feedback_labels": 40}),
])
def test_the_file_proves_task_and_counts(tmp_path, rows, task, counts):
    facts = infer(str(jsonl(tmp_path / "d.jsonl", rows)))
    assert facts.answers["task"] == task
    for key, value in counts.items():
        assert facts.answers[key] == value
    assert facts.answers["data_p95_tokens"] >= 1 and any("p50" in line and "p95" in line for line in facts.said)
    assert any("split:" in line for line in facts.said)


def test_class_balance_is_reported(tmp_path):
    facts = infer(str(jsonl(tmp_path / "d.jsonl", tickets(200, skew=7))))
    assert "4 classes" in facts.said[0] and "imbalanced" in facts.said[0]
    balanced = infer(str(jsonl(tmp_path / "e.jsonl", tickets(200))))
    assert "imbalanced" not in balanced.said[0]


def test_a_single_text_column_is_an_unlabeled_corpus(tmp_path):
    facts = infer(str(jsonl(tmp_path / "c.jsonl", [{"text": "word " * 100} for _ in range(50)])))
    assert facts.answers["unlabeled_corpus_tokens"] == 50 * 130 and "task" not in facts.answers


def test_token_lengths_use_the_models_tokenizer_when_on_disk(tmp_path):
    rows = [{"text": "Refund request for the damaged blender, order 4412", "label": "returns"}] * 20
    facts = infer(str(jsonl(tmp_path / "d.jsonl", rows)))
    assert "tokenizer of `sentence-transformers/all-MiniLM-L6-v2`" in facts.said[1]
    generation = infer(str(jsonl(tmp_path / "g.jsonl", [{"prompt": "a b c d e f g h i j", "response": "k"}] * 20)))
    assert "words x 1.3" in generation.said[1] and generation.answers["data_p95_tokens"] == 14


def test_csv_and_parquet_are_read(tmp_path):
    path = tmp_path / "d.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["body", "queue"])
        writer.writeheader()
        writer.writerows({"body": f"text {i}", "queue": f"q{i % 3}"} for i in range(30))
    assert infer(str(path)).answers["task"] == "classification"
    pyarrow = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pyarrow.Table.from_pylist([{"instruction": "x", "output": "y"}] * 15), tmp_path / "d.parquet")
    assert infer(str(tmp_path / "d.parquet")).answers["labeled_examples"] == 15


@pytest.mark.parametrize("content, name, words", [
    (None, "missing.jsonl", "no such file"),
    ("", "empty.jsonl", "no rows"),
    ('{"a": 1}\nnot json\n', "bad.jsonl", "line 2 is not valid JSON"),
    ('{"id": 1, "score": 2}\n', "odd.jsonl", "cannot tell what the rows are"),
    ("a,b\n1,2\n", "data.xml", "not .jsonl"),
])
def test_unreadable_files_are_one_clear_line(invoke, tmp_path, content, name, words):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    result = invoke("advise", "--data", path, *OPEN)
    assert result.exit_code == 2 and words in result.stderr and "Traceback" not in result.output


def test_cli_fills_answers_and_keeps_the_users(invoke, tmp_path):
    path = jsonl(tmp_path / "d.jsonl", tickets(400))
    result = invoke("advise", "--data", path, *OPEN)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["profile"]["task"] == "classification" and data["profile"]["labeled_examples"] == 400
    assert data["profile"]["train_data"] == str(path) and any("label `label`" in n for n in data["notes"])
    kept = json.loads(invoke("advise", "--data", path, "--set", "labeled_examples=50", *OPEN).stdout)
    assert kept["profile"]["labeled_examples"] == 50 and any("kept your own labeled_examples" in n for n in kept["notes"])


def test_an_answers_files_own_data_fills_what_it_leaves_out(invoke, tmp_path):
    """train_data (or raw_text_data) named in an answers file is read like --data, but fills only what the answers
    leave out: their labeled_examples stay theirs."""
    import yaml

    path = jsonl(tmp_path / "d.jsonl", tickets(400))
    answers = tmp_path / "answers.yaml"
    answers.write_text(yaml.safe_dump({"task": "classification", "goal": "behavior", "weight_access": "open", "train_data": str(path)}))
    data = json.loads(invoke("advise", "--answers", answers, "--no-input", "--json").stdout)
    assert data["profile"]["labeled_examples"] == 400 and any("label `label`" in n for n in data["notes"])
    answers.write_text(yaml.safe_dump({**yaml.safe_load(answers.read_text()), "labeled_examples": 5000}))
    assert json.loads(invoke("advise", "--answers", answers, "--no-input", "--json").stdout)["profile"]["labeled_examples"] == 5000
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(f"Freight note {i}: the pallet left the port after customs cleared it. " * 4 for i in range(600)))
    answers.write_text(yaml.safe_dump({"task": "generation", "goal": "domain_adaptation", "weight_access": "open",
                                       "raw_text_data": str(corpus)}))
    raw = json.loads(invoke("advise", "--answers", answers, "--no-input", "--json").stdout)
    assert raw["profile"]["unlabeled_corpus_tokens"] > 30_000 and raw["profile"]["raw_text_data"] == str(corpus)


def test_a_txt_without_blank_lines_is_one_paragraph_and_says_so(tmp_path):
    from adaptkit.errors import InputError
    from adaptkit.recipe.load import load_recipe
    from adaptkit.runners.data import load_data

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(f"line {i} of a document per line" for i in range(50)))
    recipe, _, _ = load_recipe("cpt", (f"data.train={corpus}", "data.eval=", "data.eval_fraction=0.02"))
    with pytest.raises(InputError, match="one row per paragraph, separated by blank lines, and this one has 1"):
        load_data(recipe)


def test_emitted_recipe_is_sized_by_the_data(invoke, tmp_path):
    rows = [{"prompt": "word " * 300, "response": "answer " * 100} for _ in range(200)]
    path = jsonl(tmp_path / "long.jsonl", rows)
    target = tmp_path / "recipe.yaml"
    result = invoke("advise", "--data", path, "--set", "weight_access=open", "--set", "goal=behavior", "--set", "model_params_b=0.5",
                    "--set", "gpu_vram_gb=24", "--set", "num_gpus=1", "--no-input", "--emit-recipe", target)
    assert result.exit_code == 0, result.output
    import yaml

    recipe = yaml.safe_load(target.read_text())
    assert recipe["training"]["max_length"] == 576 and (target.parent / recipe["data"]["train"]).resolve() == path.resolve()  # p95 of 520 rounded up to 64s


def test_the_wizard_asks_for_a_data_file_first_and_skips_what_it_answered(invoke, monkeypatch, tmp_path):
    from tests.test_wizard import Script
    from adaptkit.cli import advise as advise_cli

    path = jsonl(tmp_path / "d.jsonl", tickets(120))
    script = Script({"data": str(path), "goal": "behavior", "weight_access": "open", "num_gpus": 0})
    monkeypatch.setattr(advise_cli, "_interactive", lambda: True)
    monkeypatch.setattr(advise_cli, "_prompter", lambda: script)
    result = invoke("advise", "--json")
    assert result.exit_code == 0, result.output
    assert list(script.asked)[0] == "data" and "task" not in script.asked and "labeled_examples" not in script.asked
    assert json.loads(result.stdout)["profile"]["labeled_examples"] == 120


def _wav(path, seconds=0.1, rate=16000):
    import wave

    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x00\x00" * int(seconds * rate))


COLOURS = ("red", "blue", "green")


@pytest.mark.parametrize("rows, modality, task", [
    ([{"image": f"images/{i:03d}.png", "question": f"What colour is shape {i}?", "answer": COLOURS[i % 3]} for i in range(40)],
     "image_text_to_text", "qa"),
    ([{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                                               {"type": "text", "text": f"What is in picture {i}?"}]},
                    {"role": "assistant", "content": f"A {COLOURS[i % 3]} square."}]} for i in range(30)], "image_text_to_text", "chat"),
    ([{"image": f"shapes/{i}.jpg", "label": COLOURS[i % 3]} for i in range(60)], "image_text_to_text", "classification"),
    ([{"image": f"art/{i}.webp", "caption": f"a watercolour lighthouse at dusk, number {i}"} for i in range(50)], "text_to_image",
     "generation"),
    ([{"audio": f"clips/{i}.flac", "transcription": f"please refund order {i}"} for i in range(20)], "speech_to_text", "generation"),
])
def test_images_and_audio_in_the_rows_set_the_modality(tmp_path, invoke, rows, modality, task):
    data = jsonl(tmp_path / "rows.jsonl", rows)
    advice = json.loads(invoke("advise", "--data", data, *OPEN).stdout)
    assert (advice["profile"]["modality"], advice["profile"]["task"]) == (modality, task)
    assert advice["profile"]["labeled_examples"] == len(rows)
    assert any(f"modality {modality}" in note for note in advice["notes"])
    assert advice["recommendations"], advice["ruled_out"]


def test_a_folder_of_audio_with_transcripts_is_speech(tmp_path, invoke):
    folder = tmp_path / "calls"
    folder.mkdir()
    for i in range(12):
        _wav(folder / f"call{i}.wav")
    jsonl(folder / "metadata.jsonl", [{"file_name": f"call{i}.wav", "transcription": f"my parcel {i} never came"} for i in range(12)])
    advice = json.loads(invoke("advise", "--data", folder, *OPEN).stdout)
    assert advice["profile"]["modality"] == "speech_to_text" and advice["profile"]["labeled_examples"] == 12
    ruled = {entry["method"]: entry["reasons"] for entry in advice["ruled_out"]}
    assert "in_context_learning" in ruled and any("[G7-speech]" in reason for reason in ruled["rag"])
    (folder / "call3.wav").unlink()
    missing = invoke("advise", "--data", folder, *OPEN)
    assert missing.exit_code == 2 and "1 file(s) named in metadata.jsonl's `file_name` column are not in" in missing.stderr
    assert "(first: call3.wav)" in missing.stderr
    bare = tmp_path / "bare"
    bare.mkdir()
    assert "a folder without metadata.jsonl" in invoke("advise", "--data", bare, *OPEN).stderr


def test_no_text_recipe_is_written_for_images(tmp_path, invoke):
    data = jsonl(tmp_path / "rows.jsonl", [{"image": f"art/{i}.png", "caption": f"a red kite over hill {i}"} for i in range(20)])
    target = tmp_path / "plan.yaml"
    result = invoke("advise", "--data", data, "--set", "weight_access=open", "--set", "goal=behavior", "--no-input",
                    "--emit-recipe", target, "--method", "prompt_engineering")
    assert result.exit_code == 2, result.output
    assert "no built-in recipe of prompt_engineering reads text_to_image rows" in result.stderr and not target.exists()
    text = invoke("advise", "--data", data, "--set", "weight_access=open", "--set", "goal=behavior", "--no-input").output
    assert "Profile: generation (text_to_image)" in text


def test_your_own_column_names_let_advise_read_the_rows(invoke, tmp_path):
    """Preference pairs under the user's names (question / good / bad): named with --set, the file reads as pairs and
    the DPO recipe reads those columns; a named column the file lacks is one line; unnamed, the error says how."""
    rows = [{"question": f"Customer {i}: help with a refund", "good": "Sorry about that: here is what to do, step by step.",
             "bad": "Read the FAQ."} for i in range(40)]
    data = jsonl(tmp_path / "prefs.jsonl", rows)
    alignment = ("--set", "weight_access=open", "--set", "goal=alignment", "--no-input")
    unnamed = invoke("advise", "--data", data, *alignment)
    assert unnamed.exit_code == 2 and "cannot tell what the rows are" in unnamed.stderr and "--set text_column=" in unnamed.stderr
    named = ("--set", "prompt_column=question", "--set", "chosen_column=good", "--set", "rejected_column=bad")
    said = invoke("advise", "--data", data, *alignment, *named, "--emit-recipe", tmp_path / "dpo.yaml", "--method", "dpo")
    assert said.exit_code == 0, said.output
    assert "40 preference pairs (columns `good` / `bad`)" in said.stdout
    import yaml

    columns = yaml.safe_load((tmp_path / "dpo.yaml").read_text())["data"]
    assert (columns["prompt_column"], columns["chosen_column"], columns["rejected_column"]) == ("question", "good", "bad")
    wrong = invoke("advise", "--data", data, *alignment, "--set", "chosen_column=best", "--set", "rejected_column=bad")
    assert wrong.exit_code == 2 and "chosen_column=best, but the file has no column `best`" in wrong.stderr


def test_a_prompting_recipe_on_preference_pairs_takes_the_chosen_reply_as_the_answer(invoke, tmp_path):
    """The top method for pairs with an alignment goal can be prompting, which scores answers: it reads the chosen
    reply as the reference (the recipe used to look for a `response` column and refuse)."""
    import yaml

    data = jsonl(tmp_path / "prefs.jsonl", [{"prompt": f"p{i}", "chosen": "a careful answer", "rejected": "no"} for i in range(40)])
    said = invoke("advise", "--data", data, "--set", "weight_access=open", "--set", "goal=alignment", "--no-input",
                  "--emit-recipe", tmp_path / "pe.yaml", "--method", "prompt_engineering")
    assert said.exit_code == 0, said.output
    columns = yaml.safe_load((tmp_path / "pe.yaml").read_text())["data"]
    assert columns["prompt_column"] == "prompt" and columns["response_column"] == "chosen"
    assert invoke("run", tmp_path / "pe.yaml", "--dry-run").exit_code == 0
