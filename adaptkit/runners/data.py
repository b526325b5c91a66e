"""Read and check recipe data before any weights load. Light: stdlib readers; datasets only for hub names."""

from __future__ import annotations

import csv
import difflib
import json
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from adaptkit.errors import InputError, one_line
from adaptkit.recipe.load import is_file_reference
from adaptkit.recipe.schema import Recipe


@dataclass
class Splits:
    """Rows ready for a training runner, plus what --dry-run reports about them."""

    train: list[dict]
    eval: list[dict]
    labels: list = field(default_factory=list)  # classification: the label set, in a stable order
    eval_source: str = ""
    kind: str = "instructions"  # classification | instructions | pairs

    def describe(self) -> str:
        return f"{len(self.train)} train / {len(self.eval)} eval rows"


@dataclass
class Rows:
    """A checked evaluation file for a method that trains nothing: questions (RAG) or tasks (tool use)."""

    rows: list[dict]
    noun: str

    def describe(self) -> str:
        return f"{len(self.rows)} {self.noun}"


@dataclass
class PromptData:
    """Prompt engineering and ICL: the demonstration pool, the dev rows scored, and the labels (classification)."""

    pool: list[dict]
    rows: list[dict]
    labels: list[str]

    def describe(self) -> str:
        return f"{len(self.pool)} pool / {len(self.rows)} dev rows" + (f", {len(self.labels)} labels" if self.labels else "")


PATH_LIKE = re.compile(r"^(\.{1,2}/|/|~)|\.[A-Za-z][A-Za-z0-9]{0,7}$|/.*/")  # ./x, /x, ~/x, x.cvs, a/b/c: not a hub dataset id


def _no_such_file(reference: str, where: str) -> InputError:
    """A path-like value that names nothing: a typo, said with the closest file beside it, not a hub lookup."""
    path = Path(reference).expanduser()
    folder = path.parent if str(path.parent) else Path(".")
    near = difflib.get_close_matches(path.name, [p.name for p in folder.iterdir()] if folder.is_dir() else [], n=1, cutoff=0.6)
    hint = f" (did you mean {folder / near[0] if str(path.parent) not in ('', '.') else near[0]}?)" if near else ""
    return InputError(f"{where}: no such file {reference}{hint}; data is a .jsonl, .json, .csv, .tsv or .parquet file, or a hub dataset id")


def read_rows(reference: str, split: str, where: str) -> list[dict]:
    """Rows of a .jsonl/.json/.csv/.tsv/.parquet file or a hub dataset split."""
    if not is_file_reference(reference):
        if PATH_LIKE.search(reference):
            raise _no_such_file(reference, where)
        return _hub_rows(reference, split, where)
    path = Path(reference).expanduser()
    if not path.is_file():
        raise InputError(f"{where}: no such file {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".jsonl":
            rows = []
            for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except ValueError:
                        raise InputError(f"{where}: {path} line {number} is not valid JSON") from None
        elif suffix == ".json":
            rows = json.loads(path.read_text(encoding="utf-8-sig"))
            if isinstance(rows, dict) and len(rows) == 1 and isinstance(next(iter(rows.values())), list):
                rows = next(iter(rows.values()))
        elif suffix in (".csv", ".tsv"):
            with open(path, newline="", encoding="utf-8-sig") as handle:  # utf-8-sig: a BOM is not part of the first column's name
                rows = list(csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ","))
            for number, row in enumerate(rows, 2):
                if None in row:
                    raise InputError(f"{where}: {path} line {number} has more fields than the header (quote fields that hold commas)")
        elif suffix == ".parquet":
            try:
                import pyarrow.parquet as pq
            except ImportError:
                raise InputError(f"{where}: reading parquet needs pyarrow (pip install 'adaptkit[train]')") from None
            rows = pq.read_table(path).to_pylist()
        else:
            raise InputError(f"{where}: {path} is not .jsonl, .json, .csv, .tsv or .parquet (save it as one of them)")
    except UnicodeDecodeError as exc:
        raise InputError(f"{where}: {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except (ValueError, csv.Error) as exc:
        raise InputError(f"{where}: {path} cannot be parsed ({one_line(exc)[:120]})") from None
    except OSError as exc:
        raise InputError(f"{where}: cannot read {path} ({exc.strerror or exc.__class__.__name__})") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise InputError(f"{where}: {path} must hold records (one object per row)")
    return rows


def _hub_rows(name: str, split: str, where: str) -> list[dict]:
    try:
        import datasets
    except ImportError:
        raise InputError(f"{where}: `{name}` is not a local file; hub datasets need `pip install 'adaptkit[train]'`") from None
    try:
        return list(datasets.load_dataset(name, split=split))
    except Exception as exc:  # offline, missing, gated: say which and what to do
        raise InputError(f"{where}: cannot load hub dataset `{name}` split `{split}` ({exc.__class__.__name__}); "
                         "offline, pass a local .jsonl/.csv/.parquet file") from None


def require_columns(rows: list[dict], columns: list[str], where: str, setting: str) -> None:
    present = [one_line(key)[:40] for key in rows[0].keys()][:30]
    for column in columns:
        if column not in rows[0]:
            close = difflib.get_close_matches(column, present, n=1, cutoff=0.5)
            hint = f"; did you mean `{close[0]}` (set {setting}={close[0]})" if close else ""
            raise InputError(f"{where}: column `{column}` not found (columns: {', '.join(present)}){hint}")
        missing = next((number for number, row in enumerate(rows, 1) if column not in row), None)
        if missing is not None:
            raise InputError(f"{where}: row {missing} has no `{column}` (every row needs it)")


def check_labels(rows: list[dict], column: str, where: str) -> None:
    for number, row in enumerate(rows, 1):
        value = row[column]
        if value is None or (isinstance(value, str) and not value.strip()):
            raise InputError(f"{where}: row {number} has an empty label in `{column}`")
        if isinstance(value, float) and not value.is_integer():
            raise InputError(f"{where}: label column `{column}` holds floats ({value}): classification needs string or integer labels")
        if isinstance(value, (list, dict)):
            raise InputError(f"{where}: label column `{column}` holds {type(value).__name__}s: one label per row is needed")


def check_text(rows: list[dict], column: str, where: str) -> None:
    empty = [n for n, row in enumerate(rows, 1) if not isinstance(row[column], str) or not row[column].strip()]
    if empty:
        raise InputError(f"{where}: {len(empty)} row(s) have no text in `{column}` (first: row {empty[0]})")


def label_key(value):
    """Integers written as 1.0 or '1' in CSV stay one label."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def read_splits(recipe: Recipe) -> tuple[list[dict], list[dict], str]:
    """(train, eval, where eval came from): data.eval, a held-out share of data.train, or nothing."""
    d = recipe.data
    train = read_rows(d.train, d.train_split, "data.train")
    if not train:
        raise InputError(f"data.train: {d.train} has no rows")
    eval_rows, eval_source = [], ""
    if d.eval:
        eval_rows = read_rows(d.eval, d.eval_split, "data.eval")
        if not eval_rows:
            raise InputError(f"data.eval: {d.eval} has no rows")
        eval_source = d.eval
    elif d.eval_fraction:
        shuffled = train[:]
        random.Random(recipe.training.seed).shuffle(shuffled)
        cut = max(1, round(len(shuffled) * d.eval_fraction))
        eval_rows, train = shuffled[:cut], shuffled[cut:]
        eval_source = f"{d.eval_fraction:.0%} of data.train (seed {recipe.training.seed})"
        if not train:
            raise InputError(f"data.train: {d.train} has too few rows to hold out {d.eval_fraction:.0%} for evaluation")
    if d.max_rows:
        train = train[: d.max_rows]
    return train, eval_rows, eval_source


def response_text(value) -> str:
    """A response as text: a string, or the contents of a message list."""
    if isinstance(value, list):
        return " ".join(str(m.get("content", "")) for m in value if isinstance(m, dict))
    return value if isinstance(value, str) else ""


def label_counts(rows: list[dict], column: str) -> Counter:
    return Counter(label_key(r[column]) for r in rows)


def read_eval(recipe: Recipe, what: str) -> list[dict]:
    """data.eval's rows, which must not be empty."""
    rows = read_rows(recipe.data.eval, recipe.data.eval_split, "data.eval")
    if not rows:
        raise InputError(f"data.eval: {recipe.data.eval} has no {what}")
    return rows


def load_data(recipe: Recipe):
    """The recipe's data, read and checked by its method's own loader before any weights load."""
    from adaptkit.methods.registry import import_ref

    return import_ref(recipe.definition.data)(recipe)


def describe_data(recipe: Recipe) -> str:
    """Check a recipe's data the way its runner will, and say what is there."""
    return load_data(recipe).describe()


def eval_identity(recipe: Recipe, data=None) -> dict:
    """What a run was scored on, for compare: the eval file (its sha256 when local), or the slice held out of the
    training file (its share and seed), and how many rows were scored (when the run's data is given)."""
    import hashlib

    d = recipe.data
    source = d.eval or d.train
    held_out = None if d.eval else d.eval_fraction
    # data.max_rows caps the training rows only; a held-out slice is drawn with the training seed
    identity = {"source": source, "held_out_fraction": held_out, "seed": recipe.training.seed if held_out else None}
    scored = data.eval if isinstance(data, Splits) else getattr(data, "rows", None)
    if isinstance(scored, list) and scored:
        identity["rows"] = len(scored)
    path = Path(source).expanduser() if source else None
    if path is not None and path.is_file():
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        identity["sha256"] = digest.hexdigest()
    return identity


def same_eval(a: dict | None, b: dict | None) -> bool:
    """Whether two runs were scored on the same rows (by content, where both files were hashed)."""
    if not a or not b:
        return False
    key = lambda i: (i.get("sha256") or i.get("source"), i.get("held_out_fraction"), i.get("seed"))  # noqa: E731
    return key(a) == key(b)
