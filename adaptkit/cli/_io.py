"""Small CLI helpers: key=value overrides, safe file writes and progress lines."""

from __future__ import annotations


import click

from adaptkit._files import write_new  # noqa: F401  (the CLI's commands import it from here)
from adaptkit.errors import InputError, brief


def parse_overrides(pairs: tuple[str, ...]) -> dict:
    """Turn `key=value` strings into a dict; values are parsed as YAML scalars (yes, 2k, null)."""
    from adaptkit._yaml import loads_yaml

    result = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--set {brief(pair)}: write KEY=VALUE, like labeled_examples=2k")
        try:
            parsed = loads_yaml(value) if value.strip() else None
        except Exception:
            parsed = value
        result[key.strip()] = value if isinstance(parsed, (dict, list)) else parsed
    return result


def progress_line(doing: str, unit: str):
    """Progress on stderr: a bar with elapsed time and ETA on a terminal (rich), one plain line per update in a log."""
    import sys

    if not sys.stderr.isatty():
        def line(done: int, total: int) -> None:
            click.echo(f"{doing}: {done:,}/{total:,} {unit}", err=True)
        return line
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    state: dict = {}

    def bar(done: int, total: int) -> None:
        if "progress" not in state:
            state["progress"] = Progress(TextColumn(f"{doing}"), BarColumn(), MofNCompleteColumn(), TextColumn(unit),
                                         TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True), transient=False)
            state["task"] = state["progress"].add_task(doing, total=total)
            state["progress"].start()
        state["progress"].update(state["task"], completed=done, total=total)
        if done >= total:
            state["progress"].stop()
            state.clear()
    return bar


def rows_as(rows: list[dict], path: str) -> str | bytes:
    """Rows in the format `path`'s name says, one that adaptkit's data readers read back: .csv or .tsv (a nested value,
    such as a row's probabilities, as JSON in its cell), .parquet, else JSON lines."""
    import json
    from pathlib import Path

    suffix = Path(path).suffix.lower()
    if suffix in (".csv", ".tsv"):
        import csv
        import io

        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(dict.fromkeys(key for row in rows for key in row)),
                                delimiter="\t" if suffix == ".tsv" else ",", lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else v for k, v in row.items()}
                         for row in rows)
        return out.getvalue()
    if suffix == ".parquet":
        import io

        import pyarrow
        import pyarrow.parquet

        try:
            table = pyarrow.Table.from_pylist(rows)
        except (pyarrow.ArrowInvalid, pyarrow.ArrowTypeError):  # a column with a number in one row, text in another
            mixed = {key for key in dict.fromkeys(k for row in rows for k in row)
                     if len({type(row[key]) for row in rows if row.get(key) is not None}) > 1}
            try:  # those columns as text, as a CSV holds them
                table = pyarrow.Table.from_pylist([{k: json.dumps(v, ensure_ascii=False) if k in mixed and v is not None and
                                                    not isinstance(v, str) else v for k, v in row.items()} for row in rows])
            except (pyarrow.ArrowInvalid, pyarrow.ArrowTypeError) as exc:
                raise InputError(f"{path}: the rows do not fit one Parquet table ({str(exc)[:160]}): write .jsonl or .csv") from None
        sink = io.BytesIO()
        pyarrow.parquet.write_table(table, sink)
        return sink.getvalue()
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
