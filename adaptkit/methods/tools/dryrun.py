"""The data part of --dry-run for tool use: the tasks and the tools with their JSON schemas."""

from __future__ import annotations

from adaptkit.methods.tools.toolbox import load_tools
from adaptkit.recipe.schema import Recipe
from adaptkit.runners.data import Rows


def tools_summary(recipe: Recipe, data: Rows, allowed: bool = False) -> dict:
    """The tools and their JSON schemas; custom tools are imported only with the user's consent."""
    tools = load_tools(recipe, import_custom=allowed)
    specs = {name: tool.spec for name, tool in tools.items()}
    skipped = [f"{t.function} (not imported: needs --allow-code)" for t in recipe.tools.custom if not allowed]
    return {"tasks": len(data.rows), "tools": list(specs) + skipped,
            "state_changing": [n for n, t in tools.items() if t.changes_state], "tool_schemas": specs}
