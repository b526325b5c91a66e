"""Several training sources, each in its own format, read and mixed into one training set with the `datasets` library
(its loaders, `interleave_datasets` for weights, streaming for large hub datasets). Each row comes out in the columns
the recipe's method reads (data.prompt_column, data.messages_column, ...), so every data check and runner after this
sees one plain training set. Torch-free."""

from __future__ import annotations

import difflib
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from adaptkit.errors import InputError, one_line
from adaptkit.methods.base import DataConfig, DataSource

ORIGIN = "__adaptkit_source__"  # the source index of a row while the mix is built
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "chatgpt": "assistant",
                  "bard": "assistant", "bing": "assistant", "model": "assistant", "system": "system", "tool": "tool",
                  "function": "tool", "observation": "tool"}


PATH_LIKE = re.compile(r"^(\.{1,2}/|/|~)|\.[A-Za-z][A-Za-z0-9]{0,7}$|/.*/")  # ./x, /x, ~/x, x.cvs, a/b/c: not a hub dataset id


def no_such_file(reference: str, where: str) -> InputError:
    """A path-like value that names nothing: a typo, said with the closest file beside it, not a hub lookup."""
    path = Path(reference).expanduser()
    folder = path.parent if str(path.parent) else Path(".")
    near = difflib.get_close_matches(path.name, [p.name for p in folder.iterdir()] if folder.is_dir() else [], n=1, cutoff=0.6)
    hint = f" (did you mean {folder / near[0] if str(path.parent) not in ('', '.') else near[0]}?)" if near else ""
    return InputError(f"{where}: no such file {reference}{hint}; data is a .jsonl, .json, .csv, .tsv or .parquet file, or a hub dataset id")


@dataclass
class Mix:
    """The mixed training rows, which source each came from, and what --dry-run says about every source."""

    rows: list[dict]
    origin: list[int]
    sources: list[dict] = field(default_factory=list)

    def report(self, origin: list[int] | None = None) -> list[dict]:
        """Each source's line: its rows in the (final) training set and their share."""
        origin = self.origin if origin is None else origin
        total = max(1, len(origin))
        return [{**source, "rows_in_mix": origin.count(number), "share": round(origin.count(number) / total, 4)}
                for number, source in enumerate(self.sources)]


def detect(columns: list[str]) -> str:
    """The format a source's columns say it is written in."""
    have = set(columns)
    if "conversations" in have:
        return "sharegpt"
    if "messages" in have:
        return "messages"
    if {"instruction", "output"} <= have:
        return "alpaca"
    if {"chosen", "rejected"} <= have:
        return "pairs"
    if {"completion", "label"} <= have:
        return "kto"
    if {"prompt", "response"} <= have or {"prompt", "completion"} <= have:
        return "prompt_response"
    if {"text", "label"} <= have:
        return "labeled"
    if "text" in have:
        return "text"
    raise InputError(f"cannot tell the format of columns {', '.join(sorted(have)[:12])}: set the source's format "
                     "(prompt_response, alpaca, sharegpt, messages, pairs, kto, labeled, text) and its columns: {theirs: ours}")


def _messages(turns, where: str, sharegpt: bool) -> list[dict]:
    if not isinstance(turns, list) or not turns:
        raise InputError(f"{where}: a conversation must be a non-empty list of turns")
    out = []
    for turn in turns:
        if not isinstance(turn, dict):
            raise InputError(f"{where}: a turn is not an object ({one_line(turn)[:60]})")
        role, content = (turn.get("from"), turn.get("value")) if sharegpt else (turn.get("role"), turn.get("content"))
        role = SHAREGPT_ROLES.get(str(role).lower()) if sharegpt else role
        if role not in ("system", "user", "assistant", "tool"):
            said = turn.get("from") if sharegpt else turn.get("role")
            raise InputError(f"{where}: a turn has role {said!r}; " + ("ShareGPT turns are from human, gpt or system"
                                                                      if sharegpt else "messages have role system, user, assistant or tool"))
        out.append({"role": role, "content": "" if content is None else str(content)})
    return out


def canonical(row: dict, form: str, where: str) -> dict:
    """A row of one format in adaptkit's own keys: prompt/response, messages, chosen/rejected, completion/label, text."""
    if form == "alpaca":
        prompt = str(row.get("instruction") or "").strip()
        extra = str(row.get("input") or "").strip()
        out = {"prompt": f"{prompt}\n\n{extra}" if extra else prompt, "response": str(row.get("output") or "")}
        if row.get("system"):
            out["system"] = str(row["system"])
        return out
    if form in ("sharegpt", "messages"):
        return {"messages": _messages(row.get("conversations" if form == "sharegpt" else "messages"), where, form == "sharegpt")}
    if form == "prompt_response":
        return {"prompt": row.get("prompt"), "response": row["response"] if "response" in row else row.get("completion")}
    if form == "pairs":
        return {"prompt": row.get("prompt"), "chosen": row.get("chosen"), "rejected": row.get("rejected")}
    if form == "kto":
        return {"prompt": row.get("prompt"), "completion": row.get("completion"), "label": row.get("label")}
    if form == "labeled":
        return {"text": row.get("text"), "label": row.get("label")}
    return {"text": row.get("text")}


def _single_turn(messages: list[dict]) -> tuple[str, str] | None:
    """(prompt, response) of a conversation that is one exchange (an optional system message first), else None."""
    body = [m for m in messages if m["role"] != "system"]
    if len(body) != 2 or body[0]["role"] != "user" or body[1]["role"] != "assistant":
        return None
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    return (f"{system}\n\n{body[0]['content']}" if system else body[0]["content"]), body[1]["content"]


def in_recipe_columns(row: dict, d: DataConfig, where: str) -> dict:
    """A canonical row in the recipe's own column names: prompt/response data become messages when the recipe trains on
    messages, and a one-exchange conversation becomes prompt/response when it trains on those."""
    if "messages" in row or ("prompt" in row and "response" in row):
        if d.messages_column:
            messages = row.get("messages") or ([{"role": "system", "content": row["system"]}] if row.get("system") else []) + [
                {"role": "user", "content": row["prompt"]}, {"role": "assistant", "content": row["response"]}]
            return {d.messages_column: messages}
        if "messages" in row:
            pair = _single_turn(row["messages"])
            if pair is None:
                raise InputError(f"{where}: a conversation has several exchanges; set data.messages_column=messages to train on "
                                 "whole conversations (with the model's chat template)")
            return {d.prompt_column: pair[0], d.response_column: pair[1]}
        prompt = f"{row['system']}\n\n{row['prompt']}" if row.get("system") else row["prompt"]
        return {d.prompt_column: prompt, d.response_column: row["response"]}
    names = {"prompt": d.prompt_column, "chosen": d.chosen_column, "rejected": d.rejected_column, "completion": d.completion_column,
             "label": d.label_column, "text": d.text_column}
    return {names[key]: value for key, value in row.items()}


def _load(source: DataSource, number: int):
    """One source as a `datasets` Dataset (or IterableDataset when streamed)."""
    from adaptkit.recipe.load import LOCAL_BUILDERS, is_file_reference

    where = f"data.sources.{number} ({source.path})"
    try:
        import datasets
    except ImportError:
        raise InputError(f"{where}: mixing sources needs the `datasets` library (pip install 'adaptkit[train]')") from None
    datasets.logging.set_verbosity_error()
    try:
        if is_file_reference(source.path):
            path = Path(source.path).expanduser()
            if path.is_dir():
                raise InputError(f"{where}: {path} is a folder: name a .jsonl, .json, .csv, .tsv, .parquet or .txt file in it")
            if not path.is_file():
                raise InputError(f"{where}: no such file {path}")
            builder = LOCAL_BUILDERS.get(path.suffix.lower())
            if builder is None:
                raise InputError(f"{where}: {path.name} is not .jsonl, .json, .csv, .tsv, .parquet or .txt")
            extra = {".tsv": {"delimiter": "\t"}, ".txt": {"sample_by": "paragraph"}}.get(path.suffix.lower(), {})
            return datasets.load_dataset(builder, data_files=str(path), split="train", streaming=source.streaming, **extra)
        if PATH_LIKE.search(source.path):
            raise no_such_file(source.path, where)
        return datasets.load_dataset(source.path, source.config, split=source.split, revision=source.revision,
                                     streaming=source.streaming)
    except InputError:
        raise
    except Exception as exc:  # unparseable, mixed column types, offline, gated: one line, which source and what to do
        hub = "" if is_file_reference(source.path) else "; offline, give a local file"
        raise InputError(f"{where}: cannot be read ({exc.__class__.__name__}: {one_line(exc)[:140]}){hub}") from None


def _converted(dataset, source: DataSource, number: int, d: DataConfig):
    where = f"data.sources.{number} ({source.path})"
    if source.columns:
        missing = [name for name in source.columns if name not in (dataset.column_names or [])]
        if missing and dataset.column_names is not None:
            raise InputError(f"{where}: columns to rename not found: {', '.join(missing)} (it has {', '.join(dataset.column_names[:12])})")
        dataset = dataset.rename_columns(source.columns)
    columns = dataset.column_names
    if columns is None:  # a stream whose columns are known only from its first row
        columns = list(next(iter(dataset)).keys())
    form = detect(columns) if source.format == "auto" else source.format

    def convert(row):
        return {**in_recipe_columns(canonical(row, form, where), d, where), ORIGIN: number}

    return dataset.map(convert, remove_columns=columns), form


def _repeated(rows: list[dict], count: int, seed: int) -> list[dict]:
    """`count` rows of a source: a seeded sample, the whole source repeated first when it is smaller."""
    rows = rows[:]
    random.Random(seed).shuffle(rows)
    whole, rest = divmod(count, len(rows))
    return rows * whole + rows[:rest]


def mix(d: DataConfig, seed: int) -> Mix:
    """The training set of `data.sources`: concatenated, taken by rows, or interleaved by weight (seeded); at most
    data.max_rows rows. A streamed source downloads only the rows taken."""
    import datasets

    from adaptkit.runners.core import dataset_progress

    loaded, report = [], []
    with dataset_progress(False):  # no loading and mapping bars; the caller's setting is restored after
        for number, source in enumerate(d.sources):
            dataset, form = _converted(_load(source, number), source, number, d)
            loaded.append(dataset)
            report.append({"source": source.path, "format": form, "rows": "streamed" if source.streaming else len(dataset),
                           **({"weight": source.weight} if source.weight is not None else {}),
                           **({"rows_asked": source.rows} if source.rows is not None else {})})
    streamed = any(s.streaming for s in d.sources)
    try:
        if d.sources[0].weight is not None:
            total = sum(s.weight for s in d.sources)
            parts = [ds.to_iterable_dataset() if streamed and not s.streaming else ds for ds, s in zip(loaded, d.sources)]
            mixed = datasets.interleave_datasets(parts, probabilities=[s.weight / total for s in d.sources], seed=seed,
                                                 stopping_strategy=d.mix_strategy)
            rows = list(mixed.take(d.max_rows)) if streamed else mixed.to_list()
        else:
            rows = []
            for dataset, source, number in zip(loaded, d.sources, range(len(loaded))):
                if source.streaming:
                    taken = list(dataset.take(source.rows or d.max_rows))
                else:
                    taken = dataset.to_list()
                if not taken:
                    raise InputError(f"data.sources.{number} ({source.path}) has no rows")
                rows.extend(_repeated(taken, source.rows, seed + number) if source.rows else taken)
            random.Random(seed).shuffle(rows)
    except InputError:
        raise
    except Exception as exc:  # the sources' columns do not line up (a format for another method)
        raise InputError(f"data.sources: the sources cannot be mixed ({exc.__class__.__name__}: {one_line(exc)[:140]}); "
                         "give every source a format for the same kind of data") from None
    origin = [row[ORIGIN] for row in rows]
    rows = [{key: value for key, value in row.items() if key != ORIGIN} for row in rows]  # repeated rows are copies
    if not rows:
        raise InputError("data.sources: the mix has no rows")
    return Mix(rows, origin, report)
