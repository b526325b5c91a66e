"""Tool use, the tools: Python functions declared with JSON schemas from their type hints and docstrings, a safe
calculator, a table lookup, and the check of a model's call against them. Torch-free."""

from __future__ import annotations

import ast
import csv
import inspect
import json
import math
import operator
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, get_type_hints

from adaptkit.errors import InputError
from adaptkit.recipe.consent import import_function
from adaptkit.recipe.schema import Recipe

MAX_EXPRESSION = 200
MAX_DEPTH = 30
MAX_EXPONENT = 1000
MAX_MAGNITUDE = 1e100
_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
              ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}


class CalculatorError(ValueError):
    pass


def calculate(expression: str) -> float:
    """Evaluate arithmetic by walking its syntax tree: numbers, + - * / // % **, parentheses. Never eval."""
    if not isinstance(expression, str) or not expression.strip():
        raise CalculatorError("give an arithmetic expression, like (129 - 99) * 4")
    if len(expression) > MAX_EXPRESSION:
        raise CalculatorError(f"expression longer than {MAX_EXPRESSION} characters")
    try:
        tree = ast.parse(expression.replace("^", "**"), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise CalculatorError("not an arithmetic expression") from None

    def walk(node, depth: int) -> float:
        if depth > MAX_DEPTH:
            raise CalculatorError("expression nested too deeply")
        if isinstance(node, ast.Expression):
            return walk(node.body, depth + 1)
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
            value = walk(node.operand, depth + 1)
            return value if isinstance(node.op, ast.UAdd) else -value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            left, right = walk(node.left, depth + 1), walk(node.right, depth + 1)
            if isinstance(node.op, ast.Pow) and (abs(right) > MAX_EXPONENT or (abs(left) > 1 and abs(right) * math.log10(abs(left)) > 100)):
                raise CalculatorError("exponent too large")
            try:
                value = _OPERATORS[type(node.op)](left, right)
            except ZeroDivisionError:
                raise CalculatorError("division by zero") from None
            except OverflowError:
                raise CalculatorError("result too large") from None
            if isinstance(value, complex) or (isinstance(value, float) and not math.isfinite(value)) or abs(value) > MAX_MAGNITUDE:
                raise CalculatorError("result too large or not a real number")
            return value
        raise CalculatorError(f"{type(node).__name__} is not allowed: only numbers, + - * / // % ** and parentheses")

    return walk(tree, 0)


def calculator(expression: str) -> str:
    """Compute an arithmetic expression exactly (+ - * / // % ** and parentheses).

    Args:
        expression: the arithmetic to compute, like (129 - 99) * 4 or 240 * 17.5 / 100
    """
    value = calculate(expression)
    return str(int(value)) if float(value).is_integer() else f"{value:.10g}"


def table_lookup_tool(path: str, key: str) -> Callable:
    """A lookup over a local CSV table, keyed by one column."""
    file = Path(path)
    if not file.is_file():
        raise InputError(f"tools.table: no such file {file}")
    with open(file, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or key not in rows[0]:
        if not rows:
            raise InputError(f"tools.table: {file} has no rows under its header")
        raise InputError(f"tools.table_key: column `{key}` not in {file} (columns: {', '.join(rows[0])}): name the key column with "
                         "tools.table_key=COLUMN")
    index = {row[key].strip().lower(): row for row in rows}

    def table_lookup(key: str) -> str:
        """Look up one row of the product table by its key.

        Args:
            key: the row's key, for example a SKU such as NW-300
        """
        row = index.get(str(key).strip().lower())
        return json.dumps(row) if row else f"no row with key {key!r}"

    table_lookup.__doc__ = table_lookup.__doc__.replace("product table", f"table {file.name} ({', '.join(rows[0])})")
    return table_lookup


_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean"}


def schema(function: Callable) -> dict:
    """The JSON schema of a tool: name, description (docstring), parameters (type hints, `Args:` descriptions)."""
    doc = inspect.getdoc(function) or ""
    description = doc.split("\n\n")[0].strip()
    args = dict(re.findall(r"^\s*(\w+)\s*(?:\([^)]*\))?:\s*(.+)$", doc.split("Args:", 1)[1], re.MULTILINE)) if "Args:" in doc else {}
    hints = get_type_hints(function)
    properties, required = {}, []
    for name, parameter in inspect.signature(function).parameters.items():
        kind = _JSON_TYPES.get(hints.get(name), "string")
        properties[name] = {"type": kind, **({"description": args[name].strip()} if name in args else {})}
        if parameter.default is inspect.Parameter.empty:
            required.append(name)
    return {"name": function.__name__, "description": description,
            "parameters": {"type": "object", "properties": properties, "required": required}}


@dataclass
class Tool:
    function: Callable
    changes_state: bool = False

    @property
    def spec(self) -> dict:
        return schema(self.function)


def load_tools(recipe: Recipe, import_custom: bool = True) -> dict[str, Tool]:
    """The recipe's tools; custom ones are imported only with the user's consent (checked before this is called)."""
    block = recipe.tools
    tools: dict[str, Tool] = {}
    if "calculator" in block.builtins:
        tools["calculator"] = Tool(calculator)
    if "table_lookup" in block.builtins:
        if not block.table:
            raise InputError("tools.builtins has table_lookup: set tools.table to a CSV file")
        tools["table_lookup"] = Tool(table_lookup_tool(block.table, block.table_key))
    for spec in block.custom if import_custom else ():
        function = import_function(spec.function, "tools.custom")
        tools[function.__name__] = Tool(function, spec.changes_state)
    if not tools and (import_custom or not block.custom):
        raise InputError("tools: no tools declared (tools.builtins or tools.custom)")
    return tools


def check_call(call: dict, tools: dict[str, Tool]) -> str | None:
    """Why a tool call is invalid, or None when it is valid."""
    name, arguments = call.get("name"), call.get("arguments")
    if name not in tools:
        return f"unknown tool {name!r}; tools: {', '.join(tools)}"
    if not isinstance(arguments, dict):
        return "arguments must be a JSON object"
    parameters = tools[name].spec["parameters"]
    missing = [p for p in parameters["required"] if p not in arguments]
    unknown = [a for a in arguments if a not in parameters["properties"]]
    if missing or unknown:
        return f"missing {missing} / unexpected {unknown} arguments for {name}"
    for key, value in arguments.items():
        kind = parameters["properties"][key]["type"]
        ok = {"string": isinstance(value, str), "integer": isinstance(value, int) and not isinstance(value, bool),
              "number": isinstance(value, (int, float)) and not isinstance(value, bool), "boolean": isinstance(value, bool)}[kind]
        if not ok:
            return f"argument {key} must be a {kind}"
    return None
