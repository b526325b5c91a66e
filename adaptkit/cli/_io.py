"""Small CLI helpers: key=value overrides and safe file writes."""

from __future__ import annotations

from pathlib import Path

import click

from adaptkit._files import write_atomic
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


def write_new(path: str | Path, text: str, force: bool = False) -> Path:
    """Write `text` to `path` atomically; refuse to replace an existing file unless `force`."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise InputError(f"{path} is a folder: give a file name")
    if (path.exists() or path.is_symlink()) and not force:
        raise InputError(f"{path} already exists: choose another name or pass --force to replace it")
    if not path.parent.is_dir():
        raise InputError(f"{path}: folder {path.parent} does not exist")
    try:
        write_atomic(path, text)
    except OSError as exc:
        raise InputError(f"{path}: cannot write it ({exc.strerror or exc.__class__.__name__})") from None
    return path


def progress_line(doing: str, unit: str):
    """A progress line on stderr: redrawn in place on a terminal, one plain line per update in a log."""
    import sys

    terminal = sys.stderr.isatty()

    def show(done: int, total: int) -> None:
        text = f"{doing}: {done:,}/{total:,} {unit}"
        if terminal:
            click.echo(f"\r{text}" + ("\n" if done >= total else ""), err=True, nl=False)
        else:
            click.echo(text, err=True)

    return show
