"""Held-out rows that are also training rows (exact or near duplicates) are caught before training: the dry run and
`recipes validate` say so, a run refuses to report a score on them without --accept-leakage, and the count is kept."""

import json

import pytest

from adaptkit.runners.data import overlap

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _planted(tmp_path):
    """The demo tickets, with three eval rows copied from train: one verbatim, one re-cased and re-punctuated, one with a
    word changed."""
    train = _rows(ROOT / "examples/data/support_tickets_train.jsonl")
    held = _rows(ROOT / "examples/data/support_tickets_test.jsonl")
    copied = [dict(train[3]), {**train[10], "text": train[10]["text"].upper() + "!!"},
              {**train[20], "text": train[20]["text"].replace(" the ", " this ", 1)}]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    (tmp_path / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in held[:37] + copied))
    return [f"data.train={tmp_path / 'train.jsonl'}", f"data.eval={tmp_path / 'eval.jsonl'}"]


@pytest.mark.unit
def test_exact_and_near_duplicates_are_counted_and_templates_are_not():
    found = overlap(["Where is my refund for order 123?", "The app crashes on start when I open settings on my phone"],
                    ["where is my REFUND for order 123", "the app crashes on start when I open the settings on my phone",
                     "A new question about invoices"])
    assert found["exact"] == 1 and found["near"] == 1 and found["first"] == [0, 1]
    template = "Solve the problem. Show a short working, then give the final answer on its own line. Problem:"
    train = [f"{template} Ann has {n} apples and eats {n % 7} of them; how many are left?" for n in range(40)]
    other = [f"{template} A train leaves at {n} and arrives at {n + 3}; how long is the trip?" for n in range(5)]
    assert overlap(train, other)["rows"] == 0  # a shared instruction is the data's template, not a leak


@pytest.mark.unit
def test_the_dry_run_and_validate_report_planted_duplicates(invoke, tmp_path):
    planted = _planted(tmp_path)
    dry = invoke("run", "lora_cls", *planted, "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    leakage = json.loads(dry.stdout)["data"]["leakage"]
    assert leakage.startswith("3 of 40 eval rows also in train (2 exact, 1 near") and "--accept-leakage" in leakage
    valid = invoke("recipes", "validate", "lora_cls", *planted)
    assert valid.exit_code == 0 and "3 eval rows also in train" in valid.stdout


@pytest.mark.train
def test_a_run_refuses_a_leaked_score_unless_accepted(invoke, tmp_path):
    planted = _planted(tmp_path)
    out = tmp_path / "run"
    refused = invoke("run", "lora_cls", *planted, f"output_dir={out}", "training.max_steps=2")
    assert refused.exit_code == 2 and "3 of the 40 eval rows are also in the training data" in refused.stderr
    assert not out.exists()
    accepted = invoke("run", "lora_cls", *planted, f"output_dir={out}", "training.max_steps=2", "--accept-leakage", "--json")
    assert accepted.exit_code == 0, accepted.output
    assert json.loads(accepted.stdout)["eval_data"]["leaked"]["rows"] == 3


def _reviews(path):
    """200 short product reviews, templated as such data is (a phrase that carries the label, an item, a frame)."""
    import random

    random.seed(3)
    phrases = {"positive": ["love it", "works perfectly", "great value", "exceeded my expectations", "would buy again",
                            "fast delivery and solid build", "my kids adore it", "sturdy and well made"],
               "negative": ["broke after two days", "waste of money", "arrived damaged", "stopped working",
                            "customer service ignored me", "cheap plastic feel", "battery dies in an hour", "smells awful"],
               "neutral": ["it is okay", "does the job", "nothing special", "average for the price", "as described",
                           "fine but slow shipping", "works, but the manual is confusing", "meh, it is a kettle"]}
    items = ["blender", "headphones", "desk lamp", "backpack", "phone case", "kettle", "yoga mat", "keyboard", "water bottle", "tent"]
    rows = []
    for i in range(200):
        label = random.choice(["positive", "negative", "neutral"])
        phrase, item = random.choice(phrases[label]), random.choice(items)
        text = random.choice([f"The {item}: {phrase}.", f"{phrase.capitalize()} - bought this {item} last month.",
                              f"Order #{1000 + i}: {item}, {phrase}!",
                              f"My new {item}? {phrase}. {random.choice(['Thanks.', '', 'Rating follows.', 'Gift for mom.'])}"])
        rows.append({"review": text, "sentiment": label})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.mark.unit
def test_a_share_of_the_training_file_is_checked_as_the_whole_file_is(invoke, tmp_path):
    """A bake-off rung or a tuning trial trains on data.max_rows of the file; its leak check reads the template off the
    whole file, as the full run's does, so a held-out split the full run accepts is accepted on every share."""
    from adaptkit.recipe.load import load_recipe
    from adaptkit.runners.data import load_data

    _reviews(tmp_path / "reviews.jsonl")
    split = invoke("advise", "--data", tmp_path / "reviews.jsonl", "--set", "goal=behavior", "--set", "weight_access=open",
                   "--no-input", "--bake-off", tmp_path / "bo")
    assert split.exit_code == 0, split.output
    data = [f"data.train={tmp_path / 'bo' / 'train.jsonl'}", f"data.eval={tmp_path / 'bo' / 'heldout.jsonl'}",
            "data.text_column=review", "data.label_column=sentiment"]
    whole = load_data(load_recipe("lora_cls", tuple(data))[0]).leaked
    assert whole["rows"] == 0  # the split keeps near duplicates together
    for rows in (30, 57, 100):
        assert load_data(load_recipe("lora_cls", (*data, f"data.max_rows={rows}"))[0]).leaked == whole, rows
