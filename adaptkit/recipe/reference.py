"""The recipe reference (docs/recipe-reference.md), generated from the schema's own field descriptions so that it
cannot go stale: a test compares the file with this output. Regenerate with

    python -m adaptkit.recipe.reference > docs/recipe-reference.md
"""

from __future__ import annotations

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from adaptkit.methods.base import RecipeBase, nested_model


def _default(info) -> str:
    if info.default_factory is not None:
        value = info.default_factory()
        return "" if isinstance(value, BaseModel) else f"`{value!r}`"
    if info.default is PydanticUndefined:
        return "required"
    return f"`{info.default!r}`" if info.default is not None else "none"


def _annotation(info) -> str:
    text = str(info.annotation).replace("typing.", "").replace("Optional[", "").replace("NoneType", "none")
    if text.startswith("<class '"):
        text = text[8:-2]
    text = text.rstrip("]") if text.count("[") < text.count("]") else text
    return text.replace("|", "/")


def _rows(model: type[BaseModel], prefix: str, seen: set) -> list[str]:
    rows = []
    for name, info in model.model_fields.items():
        dotted = prefix + name
        inner = nested_model(model, name)
        if inner is not None and inner is not model:
            rows.append(f"| `{dotted}` | block | {_default(info) or ''} | {(info.description or '').replace('|', '/')} |")
            if (inner, dotted) not in seen:
                seen.add((inner, dotted))
                rows.extend(_rows(inner, dotted + ".", seen))
            continue
        rows.append(f"| `{dotted}` | {_annotation(info)} | {_default(info)} | {(info.description or '').replace('|', '/')} |")
    return rows


HEADER = ["| field | type | default | what it is |", "|---|---|---|---|"]


def reference() -> str:
    """The whole reference as Markdown: the fields every recipe has, then each method's own blocks."""
    from adaptkit.methods.registry import registry

    lines = ["# Recipe reference", "",
             "Generated from the recipe schema (`python -m adaptkit.recipe.reference > docs/recipe-reference.md`); a test",
             "checks it is current. A recipe is YAML; `adaptkit run RECIPE key=value ...` overrides any field by its dotted",
             "name. Relative paths resolve against the recipe file's folder (an override's against the working folder).", "",
             "## Every recipe", "", *HEADER]
    lines += _rows(RecipeBase, "", set())
    for definition in registry().values():
        own = definition.recipe.blocks()
        lines += ["", f"## `method: {definition.id}`", "",
                  f"Tasks: {', '.join(definition.tasks)}. " + (f"Its own blocks: {', '.join(f'`{b}`' for b in own)}." if own
                                                               else "No blocks of its own.")]
        if own:
            lines += ["", *HEADER]
            seen: set = set()
            for block in own:
                info = definition.recipe.model_fields[block]
                inner = nested_model(definition.recipe, block)
                lines.append(f"| `{block}` | block | {_default(info) or ''} | {(info.description or '').replace('|', '/')} |")
                if inner is not None:
                    lines += _rows(inner, block + ".", seen)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(reference(), end="")
