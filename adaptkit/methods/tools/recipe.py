"""Tool use and function calling: tools declared as Python functions (a safe calculator, a table lookup, your own),
and a calling loop with a step limit in which state-changing calls are confirmed or refused."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from adaptkit.methods.base import MethodDef, RecipeBase, Strict, input_path
from adaptkit.methods.registry import register


class CustomTool(Strict):
    function: str = input_path("module:function or path/to/file.py:function (needs --allow-code); its type hints and docstring "
                               "become the tool's JSON schema", "code")
    changes_state: bool = Field(True, description="the tool changes something (a refund, a ticket): confirmed or refused, never run "
                                                  "silently; set false only for tools that just read")


class ToolsBlock(Strict):
    builtins: list[Literal["calculator", "table_lookup"]] = Field(["calculator"], description="built-in tools")
    table: Optional[str] = input_path("table_lookup: a CSV file", default=None)
    table_key: str = Field("id", description="table_lookup: the key column")
    custom: list[CustomTool] = Field(default_factory=list, description="your own tools")
    max_steps: int = Field(5, ge=1, description="model turns per task before giving up")
    confirm_changes: bool = Field(False, description="ask in the terminal before a state-changing tool runs (otherwise refuse it)")
    system: str = Field("Use the tools to answer. Call a tool whenever you need a number or a fact; then answer briefly.",
                        description="the system prompt")
    question_column: str = Field("question", description="tasks file: the task")
    answer_column: str = Field("answer", description="tasks file: the expected answer")


class ToolUseRecipe(RecipeBase):
    method: Literal["tool_use"] = Field(description="a model calling tools in a loop")
    tools: Optional[ToolsBlock] = Field(None, description="tools and the calling loop")

    REQUIRED = ("tools",)


def _emit(profile, context) -> dict:
    context.notes.append("tools: the calculator and the demo price table; add your own with tools.custom (module:function, changes_state)")
    return {"task": "agent", "data": {"eval": profile.eval_data or context.demo("examples/tools/tasks.jsonl")},
            "tools": {"builtins": ["calculator", "table_lookup"], "table": context.demo("examples/tools/prices.csv"), "table_key": "sku"}}


register(MethodDef(
    id="tool_use", recipe=ToolUseRecipe, tasks=("agent",), objective="serve", adapters=("none",),
    runner="adaptkit.methods.tools.runner:run_tool_use", data="adaptkit.methods.tools.data:check_tasks", summary="adaptkit.methods.tools.dryrun:tools_summary",
    metrics=("success_rate",), needs_train=False, needs_eval="the tasks file (question, answer)", prompt_parts=("tools",),
    serve_tokens=4096, emit=_emit, code=lambda recipe: [f"tools.custom `{tool.function}`" for tool in recipe.tools.custom],
    base="no tools: the same model asked the question alone", scored=lambda recipe: None,
    aliases=(("tools", ""), ("function_calling", ""), ("agent", ""))))
