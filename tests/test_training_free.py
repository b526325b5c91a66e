"""Prompt engineering, ICL and tool use: the loop mechanics on a tiny local LM, and full runs through an endpoint."""

import json
from pathlib import Path

import pytest

from adaptkit.methods.tools.toolbox import CalculatorError, calculate, check_call, schema
from tests.helpers_tools import shipping_days
from tests.test_backends_rag import Scripted, server  # noqa: F401  (the fixture)

ROOT = Path(__file__).parent.parent


@pytest.mark.parametrize("expression, value", [
    ("2 + 3 * 4", 14), ("(129 - 99) * 4", 120), ("2 ** 10", 1024), ("2^10", 1024), ("-3 + +5", 2), ("7 // 2", 3),
    ("7 % 4", 3), ("240 * 17.5 / 100", 42), ("2 ** -1", 0.5), ("1e3 / 8", 125),
])
def test_calculator(expression, value):
    assert calculate(expression) == pytest.approx(value)


@pytest.mark.parametrize("hostile, words", [
    ("__import__('os').system('echo pwned')", "not allowed"),
    ("open('/etc/passwd').read()", "not allowed"),
    ("(lambda: 1)()", "not allowed"),
    ("9 ** 9 ** 9", "exponent too large"),
    ("10 ** 1000", "exponent too large"),
    ("2 ** 100000", "exponent too large"),
    ("(" * 150 + "1" + ")" * 150, "longer than"),
    ("1+(" * 35 + "1" + ")" * 35, "nested too deeply"),
    ("-" * 60 + "1", "nested too deeply"),
    ("1e308 * 1e308", "too large"),
    ("1 / 0", "division by zero"),
    ("x + 1", "not allowed"),
    ("[1, 2]", "not allowed"),
    ("'a' * 3", "not allowed"),
    ("True + 1", "not allowed"),
    ("", "give an arithmetic expression"),
    ("1 +", "not an arithmetic expression"),
])
def test_calculator_refuses_hostile_input(hostile, words):
    with pytest.raises(CalculatorError, match=words):
        calculate(hostile)


def test_schema_from_type_hints_and_docstring():
    spec = schema(shipping_days)
    assert spec["name"] == "shipping_days" and spec["description"] == "Days to deliver to a country."
    assert spec["parameters"]["properties"] == {"country": {"type": "string", "description": "ISO country code such as US or CA"},
                                                "express": {"type": "boolean", "description": "express shipping"}}
    assert spec["parameters"]["required"] == ["country"]
    from adaptkit.methods.tools.toolbox import Tool

    tools = {"shipping_days": Tool(shipping_days)}
    assert check_call({"name": "shipping_days", "arguments": {"country": "US"}}, tools) is None
    assert "unknown tool" in check_call({"name": "nope", "arguments": {}}, tools)
    assert "missing" in check_call({"name": "shipping_days", "arguments": {}}, tools)
    assert "must be a boolean" in check_call({"name": "shipping_days", "arguments": {"country": "US", "express": "yes"}}, tools)


def endpoint(url):
    return ["backend.kind=openai", f"backend.base_url={url}", "backend.model=test", "backend.concurrency=1"]


def calls_then_answers(body):
    """A model that calls the calculator, then answers with the tool's result."""
    last = body["messages"][-1]
    if last["role"] == "tool":
        return {"content": f"The answer is {last['content']}."}
    return {"content": None, "tool_calls": [{"id": "c1", "type": "function",
                                             "function": {"name": "calculator", "arguments": json.dumps({"expression": "2 ** 10"})}}]}


def test_tool_loop_through_an_endpoint(invoke, tmp_path, server):  # noqa: F811
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(json.dumps({"question": "What is 2 to the power of 10?", "answer": "1024"}) + "\n")
    Scripted.script = [calls_then_answers] * 4
    result = invoke("run", "tool_use", *endpoint(server), f"data.eval={tasks}", f"output_dir={tmp_path / 'out'}", "--json")
    assert result.exit_code == 0, result.output
    e = json.loads(result.stdout)["eval"]
    assert (e["success_rate"], e["tool_call_validity"], e["mean_steps"]) == (1.0, 1.0, 2.0)
    assert e["base"] == {"success_rate": 0.0, "kind": "no tools: the same model asked the question alone"}  # it cannot answer bare
    assert e["delta"]["success_rate"] == 1.0 and "tools" not in Scripted.seen[-1]["body"]
    assert Scripted.seen[0]["body"]["tools"][0]["function"]["name"] == "calculator"
    transcript = json.loads((tmp_path / "out" / "transcripts.jsonl").read_text().splitlines()[0])
    assert transcript["messages"][-1] == {"role": "tool", "tool_call_id": "c1", "name": "calculator", "content": "1024"}


def test_invalid_calls_are_fed_back_and_the_step_limit_holds(invoke, tmp_path, server):  # noqa: F811
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(json.dumps({"question": "What is 2 + 2?", "answer": "4"}) + "\n")
    bad = {"content": None, "tool_calls": [{"id": "x", "type": "function", "function": {"name": "rm_rf", "arguments": "{}"}}]}
    Scripted.script = [lambda body: bad] * 3
    result = invoke("run", "tool_use", *endpoint(server), f"data.eval={tasks}", f"output_dir={tmp_path / 'out'}",
                    "tools.max_steps=3", "--json")
    e = json.loads(result.stdout)["eval"]
    assert e["tool_call_validity"] == 0.0 and e["hit_step_limit"] == 1 and e["success_rate"] == 0.0
    second = Scripted.seen[1]["body"]["messages"][-1]
    assert second["role"] == "tool" and second["content"].startswith("error: unknown tool 'rm_rf'")


def test_state_changing_tools_are_refused_unconfirmed(invoke, tmp_path, server, monkeypatch):  # noqa: F811
    marker = tmp_path / "refunded"
    monkeypatch.setenv("ADAPTKIT_REFUND_MARKER", str(marker))
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(json.dumps({"question": "Refund order #1.", "answer": "refused"}) + "\n")

    def wants_refund(body):
        last = body["messages"][-1]
        if last["role"] == "tool":
            return {"content": f"Tool said: {last['content']}"}
        return {"content": None, "tool_calls": [{"id": "r", "type": "function",
                                                 "function": {"name": "refund", "arguments": json.dumps({"order": "#1"})}}]}

    Scripted.script = [wants_refund] * 4
    result = invoke("run", "tool_use", *endpoint(server), f"data.eval={tasks}", f"output_dir={tmp_path / 'out'}",
                    "tools.builtins=[]", "tools.custom=[{function: 'tests.helpers_tools:refund', changes_state: true}]", "--allow-code", "--json")
    assert result.exit_code == 0, result.output
    e = json.loads(result.stdout)["eval"]
    assert e["refused_calls"] == 1 and e["success_rate"] == 1.0
    assert not marker.exists()


def test_tool_loop_mechanics_on_a_tiny_local_model(invoke, tmp_path, tiny_causal_lm):
    result = invoke("run", "tool_use", f"model={tiny_causal_lm}", f"output_dir={tmp_path / 'out'}", "backend.max_new_tokens=8",
                    "tools.max_steps=2", "--json")
    assert result.exit_code == 0, result.output
    e = json.loads(result.stdout)["eval"]
    assert e["tasks"] == 8 and 1 <= e["mean_steps"] <= 2 and 0 <= e["success_rate"] <= 1


def classify_by_keyword(body):
    text = body["messages"][-1]["content"].lower()
    for word, queue in (("refund", "billing"), ("charge", "billing"), ("password", "account_access"), ("parcel", "shipping"),
                        ("cancel", "cancellation")):
        if word in text.rsplit("ticket:", 1)[-1]:
            return {"content": queue}
    return {"content": "technical_issue"}


def test_prompt_engineering_through_an_endpoint(invoke, tmp_path, server):  # noqa: F811
    Scripted.script = [classify_by_keyword] * 1000
    result = invoke("run", "prompt_engineering", *endpoint(server), f"output_dir={tmp_path / 'pe'}", "--json")
    assert result.exit_code == 0, result.output
    e = json.loads(result.stdout)["eval"]
    assert set(e["variants"]) == {"bare", "with_queues", "with_definitions"} and 0 < e["accuracy"] <= 1
    assert json.loads((tmp_path / "pe" / "best_prompt.json").read_text())["name"] == e["best_variant"]


def test_icl_on_a_tiny_local_model(invoke, tmp_path, tiny_causal_lm):
    pytest.importorskip("sentence_transformers")
    result = invoke("run", "icl", f"model={tiny_causal_lm}", f"output_dir={tmp_path / 'icl'}", "icl.shots=[0,2]",
                    "icl.max_prompt_tokens=90", "--json")
    assert result.exit_code == 0, result.output
    e = json.loads(result.stdout)["eval"]
    assert set(e["accuracy_by_k"]) == {"0", "2"} and e["mean_prompt_tokens_by_k"]["2"] > e["mean_prompt_tokens_by_k"]["0"]
    assert e["queries_where_k_shrank"]["2"] > 0  # the 90-token budget drops demonstrations
    assert (tmp_path / "icl" / "score_vs_k.png").is_file()
    assert "Loading weights" not in result.stderr  # transformers' per-weight bar is not a run's output


@pytest.mark.parametrize("recipe", ["prompt_engineering", "icl", "tool_use", "rag"])
def test_training_free_recipes_dry_run(invoke, recipe):
    assert invoke("run", recipe, "--dry-run", "--json").exit_code == 0


@pytest.mark.parametrize("flag", [["--resume"], ["--num-processes", "2"]])
def test_training_flags_are_refused_for_training_free_recipes(invoke, flag):
    result = invoke("run", "rag", *flag)
    assert result.exit_code == 2 and "trains nothing" in result.stderr


def test_a_failed_endpoint_run_leaves_nothing_behind(invoke, tmp_path, monkeypatch):
    import socket

    monkeypatch.chdir(tmp_path)
    with socket.socket() as probe:  # a port with nobody listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = invoke("run", "prompt_engineering", "backend.kind=openai", f"backend.base_url=http://127.0.0.1:{port}/v1",
                    "backend.cache_dir=runs/cache", "backend.max_retries=0", "output_dir=runs/pe")
    assert result.exit_code != 0 and "cannot reach" in result.stderr
    assert not (tmp_path / "runs").exists()  # neither the output folder nor an empty cache


def test_a_table_without_the_key_column_names_the_setting(tmp_path):
    from adaptkit.errors import InputError
    from adaptkit.methods.tools.toolbox import table_lookup_tool

    (tmp_path / "products.csv").write_text("id,name,price\nA1,desk,120\n")
    with pytest.raises(InputError, match=r"column `sku` not in .*\(columns: id, name, price\): name the key column with tools.table_key="):
        table_lookup_tool(str(tmp_path / "products.csv"), "sku")
    (tmp_path / "empty.csv").write_text("id,name\n")
    with pytest.raises(InputError, match="has no rows under its header"):
        table_lookup_tool(str(tmp_path / "empty.csv"), "id")
    assert "desk" in table_lookup_tool(str(tmp_path / "products.csv"), "id")("a1")
