"""Several training sources in the shapes users bring (Alpaca, ShareGPT, OpenAI chat, prompt/response, pairs, ...),
read with `datasets`, converted to the columns the method reads and mixed by weight or rows; the dry run shows the mix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adaptkit.errors import InputError
from adaptkit.methods.base import DataConfig
from adaptkit.runners.sources import canonical, detect, in_recipe_columns, mix

pytest.importorskip("datasets")
ROOT = Path(__file__).parent.parent
FORMATS = ROOT / "examples" / "data" / "formats"


def write(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("columns, form", [
    (["conversations"], "sharegpt"), (["messages"], "messages"), (["instruction", "input", "output"], "alpaca"),
    (["prompt", "chosen", "rejected"], "pairs"), (["prompt", "completion", "label"], "kto"), (["prompt", "response"], "prompt_response"),
    (["prompt", "completion"], "prompt_response"), (["text", "label"], "labeled"), (["text"], "text"),
])
def test_the_format_is_read_from_the_columns(columns, form):
    assert detect(columns) == form


def test_unknown_columns_ask_for_a_format():
    with pytest.raises(InputError, match="set the source's format"):
        detect(["question", "answer"])


def test_each_format_lands_in_the_recipes_own_columns():
    plain = DataConfig(train="x.jsonl", prompt_column="q", response_column="a")
    chat = DataConfig(train="x.jsonl", messages_column="conv")
    alpaca = canonical({"instruction": "Sum it up.", "input": "A long ticket.", "output": "Short."}, "alpaca", "here")
    assert in_recipe_columns(alpaca, plain, "here") == {"q": "Sum it up.\n\nA long ticket.", "a": "Short."}
    assert in_recipe_columns(alpaca, chat, "here") == {"conv": [{"role": "user", "content": "Sum it up.\n\nA long ticket."},
                                                                {"role": "assistant", "content": "Short."}]}
    one = canonical({"conversations": [{"from": "system", "value": "Be brief."}, {"from": "human", "value": "Hi"},
                                       {"from": "gpt", "value": "Hello"}]}, "sharegpt", "here")
    assert one["messages"][0] == {"role": "system", "content": "Be brief."}
    assert in_recipe_columns(one, plain, "here") == {"q": "Be brief.\n\nHi", "a": "Hello"}  # one exchange: a prompt/response pair
    two = canonical({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                                  {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}]}, "messages", "here")
    with pytest.raises(InputError, match="data.messages_column=messages"):
        in_recipe_columns(two, plain, "here")
    pairs = DataConfig(train="x.jsonl", chosen_column="good", rejected_column="bad")
    assert in_recipe_columns(canonical({"prompt": "p", "chosen": "c", "rejected": "r"}, "pairs", "h"), pairs, "h") == {
        "prompt": "p", "good": "c", "bad": "r"}
    with pytest.raises(InputError, match="ShareGPT turns are from human, gpt or system"):
        canonical({"conversations": [{"from": "narrator", "value": "x"}]}, "sharegpt", "here")


def test_weights_rows_and_plain_concatenation(tmp_path):
    a = write(tmp_path / "a.jsonl", [{"prompt": f"a{i}", "response": "x"} for i in range(60)])
    b = write(tmp_path / "b.jsonl", [{"instruction": f"b{i}", "output": "y"} for i in range(20)])
    both = mix(DataConfig(sources=[{"path": a}, {"path": b}]), seed=1)
    assert len(both.rows) == 80 and both.origin.count(1) == 20 and both.rows[0].keys() == {"prompt", "response"}
    counted = mix(DataConfig(sources=[{"path": a, "rows": 10}, {"path": b, "rows": 50}]), seed=1)
    assert counted.origin.count(0) == 10 and counted.origin.count(1) == 50  # the small source repeated
    assert sum(row["prompt"] == "b3" for row in counted.rows) >= 2
    weighted = mix(DataConfig(sources=[{"path": a, "weight": 3}, {"path": b, "weight": 1}]), seed=1)
    share = weighted.origin.count(1) / len(weighted.origin)
    assert 0.1 < share < 0.45 and weighted.report()[0]["format"] == "prompt_response"
    again = mix(DataConfig(sources=[{"path": a, "weight": 3}, {"path": b, "weight": 1}]), seed=1)
    assert again.rows == weighted.rows  # seeded
    streamed = mix(DataConfig(sources=[{"path": a, "rows": 7, "streaming": True}, {"path": b}]), seed=1)
    assert streamed.origin.count(0) == 7 and streamed.report()[0]["rows"] == "streamed"


@pytest.mark.parametrize("sources, said", [
    ([{"path": "a.jsonl", "weight": 1}, {"path": "b.jsonl"}], "give every source a weight, or none"),
    ([{"path": "a.jsonl", "weight": 1}, {"path": "b.jsonl", "weight": 1, "rows": 3}], "by weight or by rows, not both"),
    ([{"path": "org/big", "streaming": True}], "streamed source needs `rows`"),
])
def test_a_mix_that_cannot_be_drawn_is_refused(sources, said):
    with pytest.raises(ValueError, match=said):
        DataConfig(sources=sources)
    with pytest.raises(ValueError, match="not both"):
        DataConfig(train="t.jsonl", sources=[{"path": "a.jsonl"}])


def test_bad_sources_are_one_line_each(invoke, tmp_path):
    good = write(tmp_path / "good.jsonl", [{"prompt": "p", "response": "r"}] * 5)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"prompt": "p", "response": "r"}\n{"prompt": \n', encoding="utf-8")
    cases = [
        ([f"data.sources=[{{path: {good}}}, {{path: {tmp_path}/nothere.jsonl}}]"], "data.sources.1", "no such file"),
        ([f"data.sources=[{{path: {broken}}}]"], "data.sources.0", "cannot be read"),
        ([f"data.sources=[{{path: {good}}}, {{path: someone/dataset}}]"], "data.sources.1", "offline, give a local file"),
        ([f"data.sources=[{{path: {good}, columns: {{nope: prompt}}}}]"], "columns to rename not found", "nope"),
        ([f"data.sources=[{{path: {tmp_path}}}]"], "data.sources.0", "is a folder"),
    ]
    for overrides, first, second in cases:
        result = invoke("recipes", "validate", "lora_sft", "data.train=", *overrides)
        assert result.exit_code != 0 and first in result.output and second in result.output, result.output
        assert "Traceback" not in result.output and len(result.output.strip().splitlines()) <= 2, result.output


def test_the_dry_run_shows_each_source_of_the_mix(invoke, tiny_causal_lm):
    result = invoke("run", "sft_mix", f"model={tiny_causal_lm}", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)["data"]
    formats = [(Path(s["source"]).name, s["format"]) for s in data["sources"]]
    assert formats == [("alpaca.json", "alpaca"), ("sharegpt.json", "sharegpt"), ("openai_chat.jsonl", "messages")]
    assert sum(s["rows_in_mix"] for s in data["sources"]) == data["train_rows"]
    assert abs(sum(s["share"] for s in data["sources"]) - 1) < 0.01 and all(s["tokens"] > 0 for s in data["sources"])
    text = invoke("run", "sft_mix", f"model={tiny_causal_lm}", "--dry-run")
    assert "source " in text.output and "(sharegpt, 120 rows)" in text.output and "in the mix" in text.output


@pytest.mark.train
def test_a_mix_of_alpaca_sharegpt_and_openai_chat_trains(invoke, tmp_path, tiny_causal_lm):
    out = tmp_path / "mix"
    result = invoke("run", "sft_mix", f"model={tiny_causal_lm}", f"output_dir={out}", "training.max_steps=4",
                    "training.max_length=128", "training.gradient_checkpointing=false", "training.logging_steps=1",
                    "training.generate_eval=4", "training.max_new_tokens=8", "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["train"]["steps"] == 4 and metrics["eval"]["generated_rows"] == 4
    assert [Path(s["source"]).name for s in metrics["train_data"]["sources"]] == ["alpaca.json", "sharegpt.json", "openai_chat.jsonl"]
    assert (out / "adapter_model.safetensors").is_file()


def test_imbalanced_labels_are_reported_before_training(invoke, tmp_path):
    rows = [{"text": f"bill {i} is wrong", "label": "billing"} for i in range(60)] + [
        {"text": f"parcel {i} is late", "label": "shipping"} for i in range(4)]
    train = write(tmp_path / "skewed.jsonl", rows)
    result = invoke("recipes", "validate", "lora_cls", f"data.train={train}", "data.eval=", "data.eval_fraction=0.1")
    assert result.exit_code == 0 and "labels are imbalanced: billing has" in result.output, result.output
    dry = invoke("run", "lora_cls", f"data.train={train}", "data.eval=", "data.eval_fraction=0.1", "--dry-run", "--json")
    assert "read f1_macro" in json.loads(dry.stdout)["data"]["balance"]
    balanced = invoke("recipes", "validate", "lora_cls")
    assert balanced.exit_code == 0 and "imbalanced" not in balanced.output
