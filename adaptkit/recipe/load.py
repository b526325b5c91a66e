"""Find, read, override and validate recipes; gather every error into one message per field."""

from __future__ import annotations

import difflib
import sys
from pathlib import Path
from pydantic import BaseModel, ValidationError

from adaptkit._yaml import loads_yaml
from adaptkit.errors import InputError, brief, one_line
from adaptkit.methods.base import nested_model, path_role, path_values
from adaptkit.models import looks_like_path
from adaptkit.recipe.schema import Recipe

DATA_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".parquet", ".txt")
LOCAL_BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".txt": "text"}  # datasets'

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
        from adaptkit._yaml import problem

        raise InputError(f"{path}: not valid YAML: {problem(exc)}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a mapping (method: ..., model: ..., data: ...), got {type(data).__name__}")
    return data


def _variant(method) -> type[BaseModel]:
    """The recipe model of a method id (RecipeBase when the id is missing or unknown: its errors say so)."""
    from adaptkit.methods.registry import registry

    definition = registry().get(method) if isinstance(method, str) else None
    return definition.recipe if definition else Recipe


def _unknown(model: type[BaseModel], key: str, where: str) -> str:
    close = difflib.get_close_matches(key, list(model.model_fields), n=1, cutoff=0.6)
    hint = f" (did you mean `{close[0]}`?)" if close else f" (known: {', '.join(model.model_fields)})"
    return f"{where}: unknown key{hint}"


def _field(model: type[BaseModel], key: str) -> type[BaseModel] | str | None:
    """For an override: this model's field `key`, or a block another method owns (removable or settable before
    `method=` changes), as the block's model; a plain value's name; None when nothing by that name exists."""
    from adaptkit.methods.registry import block_owners, get

    if key in model.model_fields:
        return nested_model(model, key) or key
    if issubclass(model, Recipe) and key in block_owners():
        owner = get(block_owners()[key][0]).recipe
        return nested_model(owner, key)
    return None


def _renamed(old: str, new: str, where: str) -> None:
    import warnings

    from adaptkit.errors import RenamedSetting

    warnings.warn(f"{where}: `{old}` is now called `{new}` (the old name still reads; write the new one)", RenamedSetting,
                  stacklevel=2)


def _renames(data: dict) -> dict[str, str]:
    return getattr(_variant(data.get("method")), "RENAMED", {})


def upgrade(data: dict, where: str) -> None:
    """Move the old names of renamed settings (the recipe variant's RENAMED) to their new names in raw recipe data,
    in place, with a RenamedSetting warning for each; both names given is an error."""
    for old, new in _renames(data).items():
        *parents, leaf = old.split(".")
        holder = data
        for key in parents:
            holder = holder.get(key) if isinstance(holder, dict) else None
        if not isinstance(holder, dict) or leaf not in holder:
            continue
        new_leaf = new.split(".")[-1]  # renames stay inside their block
        if new_leaf in holder:
            raise InputError(f"{where}: `{old}` is the old name of `{new}`: keep one of them")
        holder[new_leaf] = holder.pop(leaf)
        _renamed(old, new, where)


def apply_override(data: dict, override: str) -> None:
    """Set `a.b.c=value` in `data`, checking each key against the schema of the recipe's method."""
    dotted, sep, raw = override.partition("=")
    if not sep or not dotted.strip():
        raise InputError(f"override {brief(override)}: write KEY=VALUE, like training.epochs=1")
    dotted = dotted.strip()
    for old, new in _renames(data).items():
        if dotted == old or dotted.startswith(old + "."):
            _renamed(old, new, f"override {brief(override)}")
            dotted = new + dotted[len(old):]
    keys = dotted.split(".")
    model: type[BaseModel] | None = _variant(data.get("method"))
    target = data
    for depth, key in enumerate(keys):
        where = ".".join(keys[: depth + 1])
        found = _field(model, key) if model is not None else None
        if found is None:
            raise InputError(f"override {brief(override)}: " + (_unknown(model, key, where) if model else f"{where}: not a block"))
        if depth == len(keys) - 1:
            target[key] = _parse_value(raw)
            return
        if isinstance(found, str):
            raise InputError(f"override {brief(override)}: `{where}` is a value, not a block")
        if not isinstance(target.get(key), dict):
            target[key] = {}
        target, model = target[key], found


def _parse_value(raw: str):
    if raw.strip() == "":
        return None
    try:
        value = loads_yaml(raw)
    except Exception:
        return raw
    return value if not isinstance(value, (dict,)) else raw


def validate(data: dict, where: str) -> Recipe:
    """Validate recipe data against its method's variant; every problem on its own line, with its field path."""
    from adaptkit.methods.registry import block_owners, registry

    data = dict(data)
    method = data.get("method")
    problems = []
    if not isinstance(method, str) or method not in registry():
        close = difflib.get_close_matches(str(method), list(registry()), n=1) if isinstance(method, str) else []
        problems.append("method: missing (required)" if method is None else
                        f"method: {brief(method)} is not a method" + (f" (did you mean `{close[0]}`?)" if close else
                                                                      f" (methods: {', '.join(registry())})"))
        raise InputError(f"{where}: {problems[0]}")
    variant = registry()[method].recipe
    foreign = [key for key in data if key not in variant.model_fields and key in block_owners()]
    for key in foreign:  # another method's block: harmless when emptied (`lora=`), a mistake when filled
        if data.pop(key) is not None:
            problems.append(key)
    if problems:
        problems = [f"`method: {method}` does not use the block(s) {', '.join(problems)}: remove them"]
    try:
        recipe = variant.model_validate(data)
    except ValidationError as exc:
        problems += [_describe(err, variant) for err in exc.errors()]
    if not problems:
        return recipe
    if len(problems) == 1:
        raise InputError(f"{where}: {problems[0]}")
    shown = problems[:MAX_PROBLEMS] + ([f"... and {len(problems) - MAX_PROBLEMS} more"] if len(problems) > MAX_PROBLEMS else [])
    raise InputError("\n".join([f"{where}: {len(problems)} problems"] + [f"  {p}" for p in shown]))


def _describe(error: dict, variant: type[BaseModel]) -> str:
    loc = [one_line(part)[:60] for part in error["loc"]]
    field = ".".join(loc)
    if error["type"] == "extra_forbidden":
        model: type[BaseModel] = variant
        for key in loc[:-1]:
            inner = nested_model(model, key) if key in model.model_fields else None
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
    """Read a built-in or user recipe, resolve its relative input paths against the recipe file's folder (built-in
    ones too: by name or by path, the same file reads the same data), apply overrides (their relative paths against
    the working folder), validate."""
    path, builtin = find_recipe(name_or_path)
    data = read_recipe_file(path)
    where = str(path) if not builtin else f"recipe {path.stem}"
    upgrade(data, where)
    resolve_inputs(data, path.resolve().parent)
    for override in overrides:
        apply_override(data, override)
    resolve_inputs(data, Path.cwd())
    recipe = validate(data, where)
    return recipe, path, builtin


def is_file_reference(value: str, base: Path | None = None) -> bool:
    """A data file (by its suffix, or because it exists, relative to `base`), not a hub dataset name."""
    return value.lower().endswith(DATA_SUFFIXES) or ((base or Path()) / Path(value).expanduser()).exists()


def _resolved(value: str, role: str, base: Path) -> str:
    """A path-like value made absolute against `base`; hub ids, hub datasets and module names stay as they are;
    where a run writes stays relative to the working folder (only `~` expands)."""
    if role == "output":
        return str(Path(value).expanduser())
    if role == "code":
        target, sep, name = value.rpartition(":")
        if not sep or not target.endswith(".py"):
            return value
        return f"{_resolved(target, 'file', base)}:{name}"
    path = Path(value).expanduser()
    if path.is_absolute():
        return str(path)
    if role == "data" and not is_file_reference(value, base):
        return value  # a hub dataset name
    if role == "model":
        if not (looks_like_path(value) or (base / path).exists()):
            return value  # a hub id
    return str((base / path).resolve())


def _rewrite_inputs(data: dict, model: type[BaseModel], rewrite) -> None:
    """Replace, in place, each path-like value of raw recipe data (its field marked input_path) with
    `rewrite(value, role)`, in nested blocks and lists of blocks too."""
    for name, value in list(data.items()):
        if name not in model.model_fields or value is None:
            continue
        role = path_role(model, name)
        if role and isinstance(value, str):
            data[name] = rewrite(value, role)
            continue
        inner = nested_model(model, name)
        if inner is not None:
            for item in (value if isinstance(value, list) else [value]):
                if isinstance(item, dict):
                    _rewrite_inputs(item, inner, rewrite)


def resolve_inputs(data: dict, base: Path, model: type[BaseModel] | None = None) -> None:
    """Make the relative input paths in raw recipe data absolute against `base`, in place."""
    _rewrite_inputs(data, model or _variant(data.get("method")), lambda value, role: _resolved(value, role, base))


def _reach(target: str, folder: Path) -> str:
    """An absolute path as written in a file in `folder`: relative to it, unless the two share nothing but the root."""
    import os

    shared = os.path.commonpath([target, str(folder)])
    return target if shared == os.path.dirname(shared) else os.path.relpath(target, folder)


def relative_inputs(data: dict, folder: Path, model: type[BaseModel] | None = None) -> None:
    """Rewrite, in place, the local input paths of raw recipe data (relative to the working folder, or absolute) to
    reach the same files from `folder`, where the recipe file will be: relative, unless the two share nothing but the
    root (then absolute). Hub ids, hub datasets and where a run writes stay as they are."""
    start, base = Path(folder).expanduser().resolve(), Path.cwd()

    def rewrite(value: str, role: str) -> str:
        if role == "output":
            return value
        absolute = _resolved(value, role, base)
        target, sep, function = absolute.rpartition(":") if role == "code" else (absolute, "", "")
        if not (Path(target).is_absolute() and Path(target).exists()):
            return value
        return _reach(target, start) + (sep + function if sep else "")

    _rewrite_inputs(data, model or _variant(data.get("method")), rewrite)


def input_paths(recipe: Recipe, recipe_file: Path | None = None) -> list[Path]:
    """Local files and folders a recipe reads: a run may never replace a folder holding one of them."""
    candidates = [value.rpartition(":")[0] if role == "code" else value for _, role, value in path_values(recipe) if role != "output"]
    if recipe_file is not None and Path(recipe_file).resolve().parent != Path(recipe.output_dir).expanduser().resolve():
        candidates.append(str(recipe_file))  # a run's own saved recipe.yaml is rewritten by the run itself
    paths = [Path(c).expanduser() for c in candidates if c]
    return [p.resolve() for p in paths if p.exists()]


def portable_copy(path: Path, builtin: bool, dest: Path) -> str:
    """A recipe file's text, comments kept, with each relative input path rewritten to reach the same file from `dest`'s folder."""
    import copy
    import re

    text = path.read_text(encoding="utf-8")
    original = read_recipe_file(path)
    resolved = copy.deepcopy(original)
    resolve_inputs(resolved, path.resolve().parent)
    for old, new in _changed_paths(original, resolved):
        relative = _reach(new, dest.resolve().parent)
        text = re.sub(rf"(:\s*)([\"']?){re.escape(old)}\2(?=\s|$)", lambda m: f"{m.group(1)}{m.group(2)}{relative}{m.group(2)}", text)
    return text


def _changed_paths(before, after) -> list[tuple[str, str]]:
    """(relative, absolute) pairs of the path values resolve_inputs rewrote."""
    if isinstance(before, dict) and isinstance(after, dict):
        return [pair for key in before for pair in _changed_paths(before[key], after.get(key))]
    if isinstance(before, list) and isinstance(after, list):
        return [pair for old, new in zip(before, after) for pair in _changed_paths(old, new)]
    return [(before, after)] if isinstance(before, str) and before != after and not Path(before).is_absolute() else []


def as_yaml(recipe: Recipe) -> str:
    """The resolved recipe as YAML (what runs, with every default written out), output_dir last."""
    import yaml

    data = recipe.model_dump(mode="json", exclude_none=False)
    data["output_dir"] = data.pop("output_dir")
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
