"""The ledger: one record per finished run, in SQLite, so that advice can later read what was measured.

Each record holds what the run answers about a profile (task, model, the training data's hash, the machine), the
method and its key settings, the primary metric with its base and delta, the cost (training seconds, tokens) and
the measured against the predicted peak memory. The database lives in adaptkit's data folder (ADAPTKIT_LEDGER, else
$XDG_DATA_HOME/adaptkit/ledger.sqlite, else ~/.local/share/adaptkit/ledger.sqlite), is created on first use with a
schema version, and takes writers from several processes at once (WAL, a busy timeout, one transaction a record).
Torch-free.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from contextlib import closing
from pathlib import Path

from adaptkit.errors import InputError

SCHEMA = 1
MIGRATIONS = {  # version -> the statements that bring the previous version to it
    1: ["""CREATE TABLE runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            folder TEXT NOT NULL UNIQUE,
            recorded REAL NOT NULL,
            method TEXT, task TEXT, model TEXT, data_sha256 TEXT, device TEXT,
            metric TEXT, value REAL, base REAL, delta REAL,
            training_s REAL, tokens REAL, measured_peak_gb REAL, predicted_peak_gb REAL,
            record TEXT NOT NULL)""",
        "CREATE INDEX runs_data ON runs (data_sha256)", "CREATE INDEX runs_method ON runs (method)"],
}
COLUMNS = ("id", "folder", "recorded", "method", "task", "model", "data_sha256", "device", "metric", "value", "base", "delta",
           "training_s", "tokens", "measured_peak_gb", "predicted_peak_gb")


def enabled() -> bool:
    """ADAPTKIT_LEDGER=off keeps runs out of the ledger."""
    return os.environ.get("ADAPTKIT_LEDGER", "").lower() not in ("off", "0", "no")


def path() -> Path:
    where = os.environ.get("ADAPTKIT_LEDGER")
    if where:
        return Path(where).expanduser()
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share").expanduser()
    return base / "adaptkit" / "ledger.sqlite"


def connect(where: Path | None = None) -> sqlite3.Connection:
    """The ledger, created or brought to the current schema on first use."""
    where = where or path()
    where.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(where, timeout=30, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA busy_timeout=30000")
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA:
        db.close()
        raise InputError(f"{where}: a ledger of schema {version}, newer than this adaptkit's ({SCHEMA}): upgrade adaptkit")
    if version < SCHEMA:
        db.execute("BEGIN IMMEDIATE")  # one process migrates; the others wait, then find it done
        try:
            current = db.execute("PRAGMA user_version").fetchone()[0]
            for step in range(current + 1, SCHEMA + 1):
                for statement in MIGRATIONS[step]:
                    db.execute(statement)
            db.execute(f"PRAGMA user_version={SCHEMA}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    return db


def record_of(folder: Path, metrics: dict, recipe: dict) -> dict:
    """The ledger's record of a finished run, from its metrics.json and recipe.yaml."""
    from adaptkit.methods.bakeoff import primary

    metric, value = primary(metrics)
    evaluation = metrics.get("eval") or {}
    base = (evaluation.get("base") or {}).get(metric)
    train = metrics.get("train") or {}
    parts = [part for part in train.values() if isinstance(part, dict) and "runtime_s" in part]
    seconds = sum(part["runtime_s"] for part in parts) if parts else train.get("runtime_s")
    resources = metrics.get("resources") or {}
    from adaptkit.methods.registry import block_owners

    settings = {block: recipe[block] for block in block_owners() if isinstance(recipe.get(block), dict)}  # the method's own
    return {
        "folder": str(Path(folder).resolve()), "recorded": time.time(), "method": metrics.get("method"), "task": metrics.get("task"),
        "model": recipe.get("model"), "data_sha256": (metrics.get("eval_data") or {}).get("sha256"),
        "device": resources.get("device"), "metric": metric, "value": value,
        "base": base if isinstance(base, (int, float)) else None,
        "delta": (value - base) if isinstance(base, (int, float)) and value is not None else None,
        "training_s": seconds, "tokens": resources.get("tokens"), "measured_peak_gb": resources.get("measured_peak_gb"),
        "predicted_peak_gb": resources.get("predicted_peak_gb"),
        "record": {"training": recipe.get("training"), "settings": settings, "eval_data": metrics.get("eval_data"),
                   "interval": evaluation.get("interval"), "warnings": metrics.get("warnings", [])},
    }


def add(record: dict, db: sqlite3.Connection | None = None) -> int:
    """Add (or replace: one record per run folder) a record; returns its id."""
    own = db is None
    db = db or connect()
    try:
        values = [record.get(name) for name in COLUMNS[1:]]
        row = db.execute(f"INSERT OR REPLACE INTO runs ({', '.join(COLUMNS[1:])}, record) VALUES ({', '.join('?' * len(COLUMNS))})",
                         [*values, json.dumps(record.get("record") or {})])
        return int(row.lastrowid)
    finally:
        if own:
            db.close()


def add_run(folder: Path) -> int:
    """Record a finished run folder (its metrics.json and recipe.yaml)."""
    from adaptkit._yaml import loads_yaml

    folder = Path(folder)
    try:
        metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
        recipe = loads_yaml((folder / "recipe.yaml").read_text(encoding="utf-8")) if (folder / "recipe.yaml").is_file() else {}
    except (OSError, ValueError):
        raise InputError(f"{folder}: not a finished adaptkit run (its metrics.json or recipe.yaml does not read)") from None
    if not isinstance(metrics, dict) or not isinstance(metrics.get("eval"), dict):
        raise InputError(f"{folder}: metrics.json is not an adaptkit run's")
    return add(record_of(folder, metrics, recipe if isinstance(recipe, dict) else {}))


def rows(method: str | None = None, data_sha256: str | None = None, task: str | None = None) -> list[dict]:
    """Records, newest first, filtered by method, data hash or task."""
    wanted = [(name, value) for name, value in (("method", method), ("data_sha256", data_sha256), ("task", task)) if value]
    return _select(wanted)


def one(ident: int) -> dict:
    found = _select([("id", ident)])
    if not found:
        raise InputError(f"no run {ident} in the ledger ({path()}): see `adaptkit ledger list`")
    return found[0]


def _select(wanted: list[tuple[str, object]]) -> list[dict]:
    """Records whose columns equal the values wanted, newest first, each with its full record."""
    where = (" WHERE " + " AND ".join(f"{name} = ?" for name, _ in wanted)) if wanted else ""
    with closing(connect()) as db:
        found = db.execute(f"SELECT {', '.join(COLUMNS)}, record FROM runs{where} ORDER BY recorded DESC, id DESC",
                           [value for _, value in wanted]).fetchall()
    return [{**dict(zip(COLUMNS, row[:-1])), "record": json.loads(row[-1])} for row in found]


def remove(ident: int) -> None:
    with closing(connect()) as db:
        if db.execute("DELETE FROM runs WHERE id = ?", (ident,)).rowcount == 0:
            raise InputError(f"no run {ident} in the ledger ({path()}): see `adaptkit ledger list`")


def scan(folder: Path) -> tuple[int, list[str]]:
    """Record every finished run under `folder` (metrics.json beside recipe.yaml); (how many, what was skipped and why)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder")
    added, skipped = 0, []
    for metrics in sorted(folder.rglob("metrics.json")):
        if not (metrics.parent / "recipe.yaml").is_file():
            continue
        try:
            add_run(metrics.parent)
            added += 1
        except InputError as exc:
            skipped.append(str(exc))
    return added, skipped
