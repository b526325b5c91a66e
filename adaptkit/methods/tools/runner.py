"""Tool use, the run: the model answers each task, calling the recipe's tools (methods/tools/toolbox.py) in a loop;
state-changing calls run only when confirmed; answers are scored against the expected ones."""

from __future__ import annotations

import json
import math
import re
from typing import Callable

from adaptkit._files import write_atomic
from adaptkit.methods.base import RunOptions, RunResult
from adaptkit.methods.tools.toolbox import Tool, check_call, load_tools
from adaptkit.recipe.schema import Recipe
from adaptkit.runners.data import Rows


def _matches(expected: str, answer: str | None) -> bool:
    """The expected answer appears in the final answer: numbers compared as numbers, text as text."""
    if not answer:
        return False
    try:
        target = float(expected)
    except ValueError:
        return expected.strip().lower() in answer.lower()
    numbers = [float(n.replace(",", "")) for n in re.findall(r"-?\d[\d,]*\.?\d*", answer)]
    return any(math.isclose(n, target, rel_tol=1e-6, abs_tol=1e-9) for n in numbers)


def solve(task: str, backend, tools: dict[str, Tool], recipe: Recipe, confirm: Callable[[str, dict], bool]) -> dict:
    """One task through the function-calling loop."""
    block, b = recipe.tools, recipe.backend
    specs = [tool.spec for tool in tools.values()]
    messages = [{"role": "system", "content": block.system}, {"role": "user", "content": task}]
    calls = valid = refused = 0
    final = None
    steps = 0
    for steps in range(1, block.max_steps + 1):
        reply = backend.chat(messages, b.max_new_tokens, b.temperature, tools=specs)
        if not reply["tool_calls"]:
            final = reply["content"]
            break
        formatted = [{"id": call.get("id") or f"call_{steps}_{n}", "type": "function",
                      "function": {"name": call.get("name"), "arguments": json.dumps(call.get("arguments"))}}
                     for n, call in enumerate(reply["tool_calls"])]
        messages.append({"role": "assistant", "content": reply["content"] or "", "tool_calls": formatted})
        for call, spec in zip(reply["tool_calls"], formatted):
            calls += 1
            problem = check_call(call, tools)
            if problem:
                result = f"error: {problem}"
            elif tools[call["name"]].changes_state and not confirm(call["name"], call["arguments"]):
                refused += 1
                valid += 1
                result = "refused: this tool changes state and the change was not confirmed"
            else:
                valid += 1
                try:
                    result = str(tools[call["name"]].function(**call["arguments"]))
                except Exception as exc:  # a tool's error goes back to the model, not up the stack
                    result = f"error: {exc}"
            messages.append({"role": "tool", "tool_call_id": spec["id"], "name": call.get("name"), "content": result})
    return {"task": task, "final": final, "steps": steps, "calls": calls, "valid_calls": valid, "refused": refused,
            "hit_step_limit": final is None, "messages": messages}


def run_tool_use(recipe: Recipe, data: Rows, options: RunOptions) -> RunResult:
    """Every task through the calling loop; state-changing calls go through options.confirm; transcripts.jsonl."""
    from adaptkit.runners.backends import make_backend

    block, tasks, out, confirm = recipe.tools, data.rows, options.out, options.confirm
    tools = load_tools(recipe)
    backend = make_backend(recipe)
    transcripts = backend.map(lambda row: {**solve(row[block.question_column], backend, tools, recipe, confirm),
                                           "expected": str(row[block.answer_column])}, tasks)
    for t in transcripts:
        t["success"] = _matches(t["expected"], t["final"])
    calls = sum(t["calls"] for t in transcripts)
    write_atomic(out / "transcripts.jsonl", "".join(json.dumps(t) + "\n" for t in transcripts))
    success = sum(t["success"] for t in transcripts) / len(transcripts)
    b = recipe.backend
    bare = backend.map(lambda row: backend.chat([{"role": "user", "content": row[block.question_column]}], b.max_new_tokens,
                                                b.temperature), tasks)  # the base: the same model, no tools
    base = sum(_matches(str(row[block.answer_column]), reply["content"]) for row, reply in zip(tasks, bare)) / len(tasks)
    return RunResult({"method": recipe.method, "task": recipe.task, "eval": {
        "success_rate": success, "primary_metric": "success_rate",
        "base": {"success_rate": base, "kind": recipe.definition.base},
        "delta": {"success_rate": round(success - base, 6)},
        "tool_call_validity": (sum(t["valid_calls"] for t in transcripts) / calls) if calls else None,
        "mean_steps": sum(t["steps"] for t in transcripts) / len(transcripts),
        "tool_calls": calls, "refused_calls": sum(t["refused"] for t in transcripts),
        "hit_step_limit": sum(t["hit_step_limit"] for t in transcripts), "tasks": len(transcripts)}}, artifacts=["transcripts.jsonl"])
