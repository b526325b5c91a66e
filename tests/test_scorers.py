"""Each task's scorer on hand-made cases with known answers, edge cases included."""

import time

import pytest

from adaptkit.methods import scorers
from adaptkit.methods.scorers import SCORERS, normalize, token_f1


def test_normalisation_and_token_f1():
    assert normalize("The  Cat, sat!") == "cat sat" and normalize("Café Ñandú") == "café ñandú"  # unicode letters kept
    assert token_f1("the cat sat", "cat sat") == 1.0
    assert token_f1("cat", "cat sat") == pytest.approx(2 / 3)
    assert token_f1("", "cat") == 0.0 and token_f1("", "") == 1.0 and token_f1("dog", "cat") == 0.0


def test_classification_accuracy_f1_and_per_class():
    m = SCORERS["classification"].score(["billing", "shipping", "shipping", ""], ["billing", "shipping", "billing", "billing"])
    assert m["accuracy"] == 0.5
    assert m["per_class"]["billing"] == {"precision": 1.0, "recall": pytest.approx(1 / 3, abs=1e-4), "f1": 0.5, "support": 3}
    assert m["per_class"]["shipping"]["precision"] == 0.5 and "" not in m["per_class"]
    assert 0 < m["f1_macro"] < 1 and SCORERS["classification"].primary == "accuracy"


def test_extraction_parses_replies_and_checks_the_schema():
    pytest.importorskip("jsonschema")
    schema = {"type": "object", "required": ["order", "reason"], "properties": {"order": {"type": "string"}}}
    predictions = ['```json\n{"order": "A-17", "reason": "late"}\n```',  # fenced: parses, matches
                   'Sure! {"order": "B-2"}',                          # parses, violates the schema (no reason)
                   "no json at all",
                   ""]                                               # empty prediction
    references = [{"order": "A-17", "reason": "late"}, {"order": "B-2", "reason": "damaged"}, {"order": "C-3"}, {"order": "D-4"}]
    m = SCORERS["extraction"].score(predictions, references, schema=schema)
    assert m["json_valid"] == 0.5 and m["exact_match"] == 0.25 and m["schema_valid"] == 0.25
    # fields: 3 right (A-17, late, B-2), 0 wrong, 3 missed (damaged, C-3, D-4)
    assert m["field_f1"] == pytest.approx(2 * 3 / (2 * 3 + 0 + 3))


def test_generation_metrics_known_answers():
    pytest.importorskip("rouge_score")
    pytest.importorskip("sacrebleu")
    same = SCORERS["generation"].score(["Refunds take 5 working days."], ["Refunds take 5 working days."])
    assert same.pop("rows") == {"exact_match": [1.0], "token_f1": [1.0], "rougeL": [1.0], "chrf": [1.0]}  # each row's own figures
    assert same == {"exact_match": 1.0, "token_f1": 1.0, "rougeL": 1.0, "chrf": 1.0}
    empty = SCORERS["generation"].score([""], ["Refunds take 5 working days."])
    assert empty["exact_match"] == 0 and empty["token_f1"] == 0 and empty["rougeL"] == 0 and empty["chrf"] == 0
    partial = SCORERS["generation"].score(["refunds take five days"], ["Refunds take 5 working days."])
    assert 0 < partial["rougeL"] < 1 and 0 < partial["chrf"] < 1 and partial["exact_match"] == 0
    accents = SCORERS["generation"].score(["L'été à Zürich"], ["l'été à zürich"])
    assert accents["exact_match"] == 1.0


def test_code_runs_each_test_in_a_subprocess_and_kills_a_hang():
    test = "assert add(2, 3) == 5\nassert add(-1, 1) == 0"
    started = time.perf_counter()
    m = SCORERS["code"].score(["```python\ndef add(a, b):\n    return a + b\n```",   # passes
                               "def add(a, b):\n    return a - b",                   # fails its assert
                               "def add(a, b):\n    while True:\n        pass",      # hangs: killed at the timeout
                               ""],                                                  # empty: NameError
                              [test] * 4, timeout_s=3)
    assert m["pass_at_1"] == 0.25 and time.perf_counter() - started < 20
    assert any("timed out" in why for why in m["failures"]) and any("AssertionError" in why for why in m["failures"])
    ok, _ = scorers.run_test("import os\nopen('x.txt', 'w').write('x')", "assert os.path.exists('x.txt')")
    assert ok  # it ran in its own empty folder, which is gone now


def test_chat_judge_swaps_positions():
    requests = ["Where is my parcel?", "Can I return it?"]
    mine, base = ["It ships today; tracking follows by email.", "Yes, within 30 days."], ["Soon.", "Yes."]

    def prefers_longer(prompt):
        a = prompt.split("Answer A:\n")[1].split("\n\nAnswer B:")[0]
        b = prompt.split("Answer B:\n")[1].split("\n\nReply")[0]
        return "A" if len(a) > len(b) else "B"

    m = SCORERS["chat"].score(mine, base, judge=prefers_longer, requests=requests)
    assert m["win_rate"] == 1.0 and m["wins"] == 2 and "Answer A" in m["judge_prompt"]
    from adaptkit.runners.scoring import TaskScorer

    chat = TaskScorer("chat", "win_rate", SCORERS["chat"].score, {})
    rounded = chat(mine, base, judge=prefers_longer, requests=requests)  # as a run's metrics.json holds them
    assert type(rounded["wins"]) is int and type(rounded["losses"]) is int  # counts: shown as 2, not 2.0000
    biased = SCORERS["chat"].score(mine, base, judge=lambda prompt: "A", requests=requests)  # always the first position
    assert biased["win_rate"] == 0.5 and biased["ties"] == 2  # swapping exposes it: no wins, no losses
    rubric = SCORERS["chat"].score(mine, base, judge=lambda prompt: "7", requests=requests, rubric="cites the policy")
    assert rubric["rubric_score"] == pytest.approx(6 / 9)
    with pytest.raises(ValueError, match="judge"):
        SCORERS["chat"].score(mine, base)


def test_every_scorer_names_its_primary_metric():
    assert {s.id: s.primary for s in SCORERS.values()} == {
        "classification": "accuracy", "extraction": "field_f1", "generation": "rougeL", "code": "pass_at_1", "chat": "win_rate"}
    with pytest.raises(ValueError, match="predictions"):
        SCORERS["generation"].score(["a"], ["a", "b"])


def test_every_score_of_a_built_in_scorer_carries_a_bootstrap_interval():
    from adaptkit.runners.scoring import TaskScorer

    built = SCORERS["classification"]
    scorer = TaskScorer("classification", built.primary, built.score, {})
    metrics = scorer(["a", "b"] * 50, ["a", "a"] * 50)
    interval = metrics["interval"]
    assert interval["metric"] == "accuracy" and interval["rows"] == 100 and "rows" not in {k for k, v in metrics.items() if isinstance(v, list)}
    assert interval["low"] < metrics["accuracy"] == 0.5 < interval["high"] and interval["high"] - interval["low"] < 0.3
    assert scorer(["a", "b"] * 50, ["a", "a"] * 50)["interval"] == interval  # seeded: the same run reports the same interval
    tight = scorer(["a", "b"] * 1000, ["a", "a"] * 1000)["interval"]
    assert tight["high"] - tight["low"] < interval["high"] - interval["low"]  # more rows, a narrower interval
    built = SCORERS["extraction"]
    fields = TaskScorer("extraction", built.primary, built.score, {})(['{"a": 1}', '{"a": 2}', "x", '{"a": 1}'], ['{"a": 1}'] * 4)
    assert fields["interval"]["metric"] == "field_f1" and 0 <= fields["interval"]["low"] <= fields["field_f1"] <= fields["interval"]["high"]

