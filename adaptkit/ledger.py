"""The ledger: one record per finished run, in SQLite, so that advice can later read what was measured.

Each record holds what the run answers about a profile (task, model, the training data's hash, the machine), the
method and its key settings, the primary metric with its base and delta, the cost (training seconds, tokens) and
the measured against the predicted peak memory. The database lives in adaptkit's data folder (ADAPTKIT_LEDGER, else
$XDG_DATA_HOME/adaptkit/ledger.sqlite, else ~/.local/share/adaptkit/ledger.sqlite), is created on first use with a
schema version, and takes writers from several processes at once (WAL, a busy timeout, one transaction a record).

For a team, ADAPTKIT_LEDGER=mlflow+URI keeps the same records in an MLflow tracking store instead (a server,
mlflow+http://mlflow.internal:5000, or a database, mlflow+sqlite:////shared/ledger.db), one MLflow run per record in
the experiment `adaptkit-ledger`, written and read back through MLflow's client: many users and machines share one
ledger, and MLflow keeps concurrent writers apart. Torch-free.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from contextlib import closing
from pathlib import Path

from adaptkit.errors import InputError

SCHEMA = 2
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
    2: [f"ALTER TABLE runs ADD COLUMN {column}" for column in (  # the profile facts a run answers, and its price basis
        "modality TEXT", "train_rows INTEGER", "train_sha256 TEXT", "model_params REAL", "processes INTEGER",
        "tokens_per_second REAL", "gpu_hour_usd REAL", "cost_usd REAL")],
}


def enabled() -> bool:
    """ADAPTKIT_LEDGER=off keeps runs out of the ledger."""
    return os.environ.get("ADAPTKIT_LEDGER", "").lower() not in ("off", "0", "no")


MLFLOW = "mlflow+"  # ADAPTKIT_LEDGER=mlflow+URI: the records in an MLflow tracking store
EXPERIMENT = "adaptkit-ledger"
TAGS = ("folder", "method", "task", "model", "data_sha256", "device", "metric", "modality", "train_sha256")
METRICS = ("recorded", "value", "base", "delta", "training_s", "tokens", "measured_peak_gb", "predicted_peak_gb", "train_rows",
           "model_params", "processes", "tokens_per_second", "gpu_hour_usd", "cost_usd")
COLUMNS = ("id", *TAGS, *METRICS)  # the SQLite table's: the same fields, an MLflow run's tags and metrics there


def tracking_uri() -> str | None:
    """The MLflow tracking URI when the ledger is kept in MLflow, else None."""
    where = os.environ.get("ADAPTKIT_LEDGER", "")
    return where[len(MLFLOW):] if where.startswith(MLFLOW) else None


def where() -> str:
    """The ledger's location, in words: its SQLite file or its MLflow tracking URI."""
    uri = tracking_uri()
    return f"MLflow at {uri} (experiment {EXPERIMENT})" if uri else str(path())


def path() -> Path:
    where = os.environ.get("ADAPTKIT_LEDGER")
    if where:
        return Path(where).expanduser()
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share").expanduser()
    return base / "adaptkit" / "ledger.sqlite"


def connect(where: Path | None = None) -> sqlite3.Connection:
    """The ledger, created or brought to the current schema on first use."""
    where = where or path()
    try:
        where.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(where, timeout=30, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA busy_timeout=30000")
        version = db.execute("PRAGMA user_version").fetchone()[0]
    except (sqlite3.DatabaseError, OSError) as exc:  # another file in its place, a damaged one, or no access
        raise InputError(f"{where}: the ledger cannot be opened ({exc}): move that file aside (adaptkit starts a new ledger), "
                         "or set ADAPTKIT_LEDGER=PATH (off: none)") from None
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
    trained_on = metrics.get("train_data") or {}
    processes = resources.get("processes") or train.get("processes") or 1
    price = _gpu_hour_usd(resources.get("device"))
    return {
        "folder": str(Path(folder).resolve()), "recorded": time.time(), "method": metrics.get("method"), "task": metrics.get("task"),
        "model": recipe.get("model"), "data_sha256": (metrics.get("eval_data") or {}).get("sha256"),
        "device": resources.get("device"), "metric": metric, "value": value,
        "base": base if isinstance(base, (int, float)) else None,
        "delta": (value - base) if isinstance(base, (int, float)) and value is not None else None,
        "training_s": seconds, "tokens": resources.get("tokens"), "measured_peak_gb": resources.get("measured_peak_gb"),
        "predicted_peak_gb": resources.get("predicted_peak_gb"),
        "modality": "text",  # every run adaptkit trains today reads text
        "train_rows": trained_on.get("rows"), "train_sha256": trained_on.get("sha256"),
        "model_params": train.get("total_params"), "processes": processes,
        "tokens_per_second": resources.get("tokens_per_second"),
        "gpu_hour_usd": price, "cost_usd": round(seconds / 3600 * price * processes, 4) if price and seconds else None,
        "record": {**_curve(folder), "price_basis": _price_basis(price, resources.get("device"), processes),
                   "training": recipe.get("training"), "settings": settings, "eval_data": metrics.get("eval_data"),
                   "interval": evaluation.get("interval"), "warnings": metrics.get("warnings", [])},
    }


def _curve(folder: Path) -> dict:
    """The learning curve a bake-off fitted for this run's method (kept in its largest run), if any."""
    from adaptkit.curves import CURVE_FILE

    found = Path(folder) / CURVE_FILE
    try:
        return {"curve": json.loads(found.read_text(encoding="utf-8"))} if found.is_file() else {}
    except (OSError, ValueError):
        return {}


def _price_basis(price: float | None, device: str | None, processes: int) -> str:
    if not price:
        return "not priced: no listed GPU (a CPU run, or a GPU the table lacks)"
    return f"{price} USD per GPU-hour for {device} (the estimator's table), x {processes} process(es)"


def _gpu_hour_usd(device: str | None) -> float | None:
    """The indicative on-demand price per hour of the run's GPU, from the estimator's table; None on the CPU."""
    if not device or device == "cpu":
        return None
    from adaptkit.estimator.compute import find_gpu

    gpu = find_gpu(str(device), strict=False)
    return gpu.hour_usd if gpu else None


def add(record: dict, db: sqlite3.Connection | None = None) -> int | str:
    """Add (or replace: one record per run folder) a record; returns its id."""
    if db is None and tracking_uri():
        return _mlflow_add(record)
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
    return _mlflow_select(wanted) if tracking_uri() else _select(wanted)


def one(ident: int | str) -> dict:
    found = _mlflow_select([("id", str(ident))]) if tracking_uri() else _select([("id", _number(ident))])
    if not found:
        raise InputError(f"no run {ident} in the ledger ({where()}): see `adaptkit ledger list`")
    return found[0]


def _number(ident: int | str) -> int:
    try:
        return int(ident)
    except (TypeError, ValueError):
        raise InputError(f"{ident!r} is not a record id of this ledger ({where()}): see `adaptkit ledger list`") from None


def _select(wanted: list[tuple[str, object]]) -> list[dict]:
    """Records whose columns equal the values wanted, newest first, each with its full record."""
    if not path().is_file():  # reading never creates the ledger (advise and estimate read it)
        return []
    where = (" WHERE " + " AND ".join(f"{name} = ?" for name, _ in wanted)) if wanted else ""
    with closing(connect()) as db:
        found = db.execute(f"SELECT {', '.join(COLUMNS)}, record FROM runs{where} ORDER BY recorded DESC, id DESC",
                           [value for _, value in wanted]).fetchall()
    return [{**dict(zip(COLUMNS, row[:-1])), "record": json.loads(row[-1])} for row in found]


def remove(ident: int | str) -> None:
    one(ident)  # an unknown id, or no ledger yet: one line
    if tracking_uri():
        _mlflow()[0].delete_run(str(ident))
        return
    with closing(connect()) as db:
        if db.execute("DELETE FROM runs WHERE id = ?", (_number(ident),)).rowcount == 0:
            raise InputError(f"no run {ident} in the ledger ({where()}): see `adaptkit ledger list`")


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


# ------------------------------------------------------------------------------------------------ the MLflow store


def _mlflow():
    """(MLflow client, the ledger experiment's id), created on first use."""
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise InputError("ADAPTKIT_LEDGER=mlflow+URI keeps the ledger in MLflow: pip install mlflow (or mlflow-skinny)") from None
    import logging

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    try:
        with _first_use():
            client = MlflowClient(tracking_uri=tracking_uri())
            experiment = client.get_experiment_by_name(EXPERIMENT)
            if experiment is None:
                return client, client.create_experiment(EXPERIMENT)
        return client, experiment.experiment_id
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"the MLflow ledger at {tracking_uri()} cannot be reached ({exc.__class__.__name__}: "
                         f"{str(exc).splitlines()[0][:120]})") from None


def _first_use():
    """For an MLflow store in an SQLite file, one process at a time creates its tables and the experiment (two
    creating a fresh store at once break MLflow's migrations); a tracking server needs nothing."""
    import contextlib

    uri = tracking_uri() or ""
    if not uri.startswith("sqlite:///"):
        return contextlib.nullcontext()
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def held():
        lock = Path(uri[len("sqlite:///"):]).expanduser()
        lock = lock.with_name(lock.name + ".adaptkit-lock")
        lock.parent.mkdir(parents=True, exist_ok=True)
        with open(lock, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    return held()


def _quoted(value: str) -> str | None:
    """A value as an MLflow filter string literal, or None when it holds both kinds of quote."""
    for mark in ("'", '"'):
        if mark not in value:
            return f"{mark}{value}{mark}"
    return None


def _mlflow_add(record: dict) -> str:
    """One MLflow run per record: the profile facts as tags, the figures as metrics, the rest as a JSON tag. A record
    of a folder already there replaces it."""
    from mlflow.entities import Metric, RunTag

    client, experiment = _mlflow()
    for old in _mlflow_select([("folder", record["folder"])]):
        client.delete_run(old["id"])
    tags = [RunTag(name, str(record[name])) for name in TAGS if record.get(name) is not None]
    detail = json.dumps(record.get("record") or {})
    tags.append(RunTag("adaptkit.record", detail if len(detail) <= 7500 else json.dumps({"truncated": True})))
    run = client.create_run(experiment, run_name=Path(record["folder"]).name, tags={t.key: t.value for t in tags})
    stamp = int(1000 * (record.get("recorded") or time.time()))
    metrics = [Metric(name, float(record[name]), stamp, 0) for name in METRICS if isinstance(record.get(name), (int, float))]
    client.log_batch(run.info.run_id, metrics=metrics)
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def _mlflow_select(wanted: list[tuple[str, object]]) -> list[dict]:
    """Records from the MLflow store, newest first: filtered by MLflow where the values can be quoted, else here."""
    client, experiment = _mlflow()
    filters, here = [], []
    for name, value in wanted:
        literal = _quoted(str(value))
        if name == "id":
            here.append((name, str(value)))
        elif literal is None:
            here.append((name, value))
        else:
            filters.append(f"tags.{name} = {literal}")
    found, token = [], None
    while True:
        page = client.search_runs([experiment], filter_string=" and ".join(filters), max_results=1000, page_token=token,
                                  order_by=["attributes.start_time DESC"])
        found.extend(page)
        token = page.token
        if not token:
            break
    out = []
    for run in found:
        tags, metrics = run.data.tags, run.data.metrics
        row = {"id": run.info.run_id, **{name: tags.get(name) for name in TAGS},
               **{name: metrics.get(name) for name in METRICS}}
        try:
            row["record"] = json.loads(tags.get("adaptkit.record") or "{}")
        except ValueError:
            row["record"] = {}
        if all(str(row.get(name)) == str(value) for name, value in here):
            out.append(row)
    return sorted(out, key=lambda r: -(r.get("recorded") or 0))
