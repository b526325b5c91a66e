"""Find, read, override and validate recipes; gather every error into one message per field."""

from __future__ import annotations

import difflib
import sys
from pathlib import Path
from typing import get_args

from pydantic import BaseModel, ValidationError

from adaptkit._yaml import loads_yaml
from adaptkit.errors import InputError, brief, one_line
from adaptkit.recipe.schema import Recipe

DATA_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")
MAX_PROBLEMS = 20  # listed in one validation message; the rest are counted


def project_root() -> Path:
    """Where recipes/ and examples/ live: the source tree, or the installed data files."""
    source = Path(__file__).resolve().parent.parent.parent
    if (source / "recipes").is_dir():
        return source
    return Path(sys.prefix) / "share" / "adaptkit"


def builtin_dir() -> Path:
    return project_root() / "recipes"


def builtin_recipes() -> dict[str, Path]:
    """Built-in recipe name -> file, read from the recipes folder itself."""
    folder = builtin_dir()
    return {path.stem: path for path in sorted(folder.glob("*.yaml"))} if folder.is_dir() else {}


def purpose(path: Path) -> str:
    """The first comment line of a recipe file: what it does."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
        if line.strip():
            break
    return ""


def find_recipe(name_or_path: str) -> tuple[Path, bool]:
    """Return (file, is_builtin) for a path or a built-in name."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path, False
    recipes = builtin_recipes()
    name = name_or_path[:-5] if name_or_path.endswith(".yaml") else name_or_path
    if name in recipes:
        return recipes[name], True
    if path.suffix in (".yaml", ".yml") or "/" in name_or_path:
        raise InputError(f"{name_or_path}: no such recipe file")
    close = difflib.get_close_matches(name, list(recipes), n=1, cutoff=0.5)
    hint = f" (did you mean `{close[0]}`?)" if close else ""
    raise InputError(f"`{name_or_path}` is not a built-in recipe{hint}: see `adaptkit recipes list`, or pass a path")


def read_recipe_file(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read it ({exc.strerror or exc.__class__.__name__})") from None
    if not text.strip():
        raise InputError(f"{path}: the recipe is empty")
    try:
        data = loads_yaml(text)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise InputError(f"{path}: not valid YAML: {first}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a mapping (method: ..., model: ..., data: ...), got {type(data).__name__}")
    return data


def _field_model(model: type[BaseModel], key: str):
    """The pydantic model a field holds, if it is a nested block."""
    annotation = model.model_fields[key].annotation
    for candidate in (annotation, *get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _unknown(model: type[BaseModel], key: str, where: str) -> str:
    close = difflib.get_close_matches(key, list(model.model_fields), n=1, cutoff=0.6)
    hint = f" (did you mean `{close[0]}`?)" if close else f" (known: {', '.join(model.model_fields)})"
    return f"{where}: unknown key{hint}"


def apply_override(data: dict, override: str) -> None:
    """Set `a.b.c=value` in `data`, checking each key against the schema."""
    dotted, sep, raw = override.partition("=")
    if not sep or not dotted.strip():
        raise InputError(f"override {brief(override)}: write KEY=VALUE, like training.epochs=1")
    keys = dotted.strip().split(".")
    model: type[BaseModel] | None = Recipe
    target = data
    for depth, key in enumerate(keys):
        where = ".".join(keys[: depth + 1])
        if model is None or key not in model.model_fields:
            raise InputError(f"override {brief(override)}: " + (_unknown(model, key, where) if model else f"{where}: not a block"))
        if depth == len(keys) - 1:
            target[key] = _parse_value(raw)
            return
        inner = _field_model(model, key)
        if inner is None:
            raise InputError(f"override {brief(override)}: `{where}` is a value, not a block")
        if not isinstance(target.get(key), dict):
            target[key] = {}
        target, model = target[key], inner


def _parse_value(raw: str):
    if raw.strip() == "":
        return None
    try:
        value = loads_yaml(raw)
    except Exception:
        return raw
    return value if not isinstance(value, (dict,)) else raw


def validate(data: dict, where: str) -> Recipe:
    """Validate recipe data; every problem on its own line, with its field path and a did-you-mean."""
    try:
        return Recipe(**data)
    except ValidationError as exc:
        problems = [_describe(err) for err in exc.errors()]
    except TypeError as exc:
        problems = [str(exc)]
    lines = [f"{where}: {len(problems)} problem{'s' if len(problems) > 1 else ''}"] if len(problems) > 1 else []
    if len(problems) == 1:
        raise InputError(f"{where}: {problems[0]}")
    shown = problems[:MAX_PROBLEMS] + ([f"... and {len(problems) - MAX_PROBLEMS} more"] if len(problems) > MAX_PROBLEMS else [])
    raise InputError("\n".join(lines + [f"  {p}" for p in shown]))


def _describe(error: dict) -> str:
    loc = [one_line(part)[:60] for part in error["loc"]]
    field = ".".join(loc)
    if error["type"] == "extra_forbidden":
        model: type[BaseModel] = Recipe
        for key in loc[:-1]:
            inner = _field_model(model, key) if key in model.model_fields else None
            if inner is None:
                break
            model = inner
        return _unknown(model, loc[-1], field)
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "missing":
        return f"{field}: missing (required)"
    if not field:
        return message
    return f"{field}: {message[0].lower()}{message[1:]}" + (f", got {brief(error['input'])}" if "input" in error and not isinstance(error["input"], dict) and error["type"] != "value_error" else "")


def load_recipe(name_or_path: str, overrides: tuple[str, ...] | list[str] = ()) -> tuple[Recipe, Path, bool]:
    """Read a built-in or user recipe, apply overrides, resolve data paths, validate."""
    path, builtin = find_recipe(name_or_path)
    data = read_recipe_file(path)
    for override in overrides:
        apply_override(data, override)
    recipe = validate(data, str(path) if not builtin else f"recipe {path.stem}")
    return resolve_paths(recipe, builtin), path, builtin


def is_file_reference(value: str) -> bool:
    return value.lower().endswith(DATA_SUFFIXES) or Path(value).expanduser().exists()


def resolve_paths(recipe: Recipe, builtin: bool) -> Recipe:
    """Data paths are relative to the working directory; a built-in recipe's also to the project root."""
    updates = {}
    for key in ("train", "eval"):
        value = getattr(recipe.data, key)
        if not value or not is_file_reference(value):
            continue
        path = Path(value).expanduser()
        if not path.is_absolute() and not path.exists() and builtin and (project_root() / path).exists():
            path = project_root() / path
        updates[key] = str(path.resolve()) if path.exists() else str(path)
    data = recipe.data.model_copy(update=updates)
    changes = {"data": data, "output_dir": str(Path(recipe.output_dir).expanduser())}
    if recipe.backend.cache_dir:
        changes["backend"] = recipe.backend.model_copy(update={"cache_dir": str(Path(recipe.backend.cache_dir).expanduser())})
    if recipe.rag:
        changes["rag"] = recipe.rag.model_copy(update={"corpus": str(Path(recipe.rag.corpus).expanduser()),
                                                       "index_dir": str(Path(recipe.rag.index_dir).expanduser())})
    if recipe.rag and builtin:
        corpus = Path(changes["rag"].corpus)
        if not corpus.is_absolute() and not corpus.exists() and (project_root() / corpus).exists():
            changes["rag"] = changes["rag"].model_copy(update={"corpus": str(project_root() / corpus)})
    if recipe.tools and recipe.tools.table and builtin:
        table = Path(recipe.tools.table)
        if not table.is_absolute() and not table.exists() and (project_root() / table).exists():
            changes["tools"] = recipe.tools.model_copy(update={"table": str(project_root() / table)})
    return recipe.model_copy(update=changes)


def input_paths(recipe: Recipe, recipe_file: Path | None = None) -> list[Path]:
    """Local files and folders a recipe reads: a run may never replace a folder holding one of them."""
    candidates = [recipe.data.train, recipe.data.eval, recipe.model]
    if recipe.rag:
        candidates += [recipe.rag.corpus, recipe.rag.embedding_model]
    if recipe.icl:
        candidates.append(recipe.icl.embedding_model)
    if recipe.tools:
        candidates += [recipe.tools.table] + [tool.function.rpartition(":")[0] for tool in recipe.tools.custom]
    if recipe.prompts:
        candidates.append(recipe.prompts.scorer.rpartition(":")[0])
    if recipe.dpo:
        candidates.append(recipe.dpo.starting_adapter)
    if recipe.rlhf:
        candidates.append(recipe.rlhf.reward.model)
    if recipe_file is not None and Path(recipe_file).resolve().parent != Path(recipe.output_dir).expanduser().resolve():
        candidates.append(str(recipe_file))  # a run's own saved recipe.yaml is rewritten by the run itself
    paths = [Path(c).expanduser() for c in candidates if c]
    return [p.resolve() for p in paths if p.exists()]


def as_yaml(recipe: Recipe) -> str:
    """The resolved recipe as YAML (what runs, with every default written out)."""
    import yaml

    return yaml.safe_dump(recipe.model_dump(mode="json", exclude_none=False), sort_keys=False, allow_unicode=True)
