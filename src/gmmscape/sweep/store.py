"""The results store: one SQLite file, one row per finished cell, each committed atomically.

Tables
------
``cells``
    One row per cell that finished, successfully (``status = 'done'``) or not
    (``'failed'``, with the error and its traceback). ``UNIQUE (experiment, cell_key)``
    means a rerun never duplicates a cell; a ``done`` row is never overwritten, a
    ``failed`` row only by a retry (``attempts`` counts them). Columns: ``experiment``,
    ``cell_key``, ``params`` (canonical JSON), ``status``, ``result`` (JSON), ``error``,
    ``traceback``, ``seconds`` (the cell's wall time in its worker), ``version``
    (gmmscape's version in the worker), ``host``, ``worker``, ``started``, ``finished``
    (UTC, ISO 8601), ``attempts``, ``spec_hash`` (the spec whose run stored it),
    ``nonfinite`` (see :func:`encode_result`) and ``warnings`` (JSON list of the distinct
    warnings the cell raised).
``specs`` and ``spec_cells``
    Every spec run against the file: its name, experiment, text and SHA-256, and the keys
    of its cells, so ``sweep status`` knows what remains without the spec file.
``runs`` and ``claims``
    The sweep runs writing to the file now (host, process id, a heartbeat every
    :data:`HEARTBEAT_S` seconds) and the cells each has claimed: a run claims a cell before
    it computes it, in a transaction, so two runs on one database never compute the same
    cell; a claim is released in the transaction that stores the cell's row. A run that
    died (its process is gone from this host, or its heartbeat is older than
    :data:`STALE_AFTER_S`) loses its claims to the next run. Added to older files of the
    same schema version when a run opens them.
``<experiment>`` views
    One view per experiment type with a column per parameter (``n``, ``d``, ``seed``...)
    next to ``status``, ``result`` and the timing columns, for plain SQL such as
    ``SELECT n, avg(json_extract(result, '$.kl_error')) FROM "stream-error" GROUP BY n``.

The file is in WAL mode with ``synchronous = FULL``: a row is on disk when its insert
returns, and a process killed at any moment leaves every committed row intact and no
partial one. Each run's parent process writes its rows; several runs may share a file
(see ``claims``), and readers (``sweep status``, ``report``) may read while sweeps run.

A file that is not SQLite, is damaged, or is an SQLite file of some other program is a
:class:`StoreError` and is left untouched. A row whose payload cannot be decoded (bytes
that are not UTF-8, text that is not JSON, a status other than done or failed: damage
that SQLite's own checks do not see) is *corrupt*: :meth:`ResultsStore.rows` leaves it
out, :meth:`ResultsStore.corrupt_rows` lists it with its cell key and the problem, status
and report show it, and the next run of its spec computes the cell again and replaces it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import socket
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

#: ``PRAGMA application_id`` of a gmmscape results database ("gmms").
APPLICATION_ID = 0x676D6D73
#: ``PRAGMA user_version``: the schema this module reads and writes.
SCHEMA_VERSION = 1
#: Seconds a writer waits for a lock held by another connection.
BUSY_TIMEOUT_S = 60.0
#: Seconds between a run's heartbeats.
HEARTBEAT_S = 5.0
#: A run whose last heartbeat is older than this is dead and loses its claims.
STALE_AFTER_S = 60.0

_SQLITE_MAGIC = b"SQLite format 3\x00"
_TABLES = ("cells", "specs", "spec_cells")
_CELL_COLUMNS = (
    "id",
    "experiment",
    "cell_key",
    "params",
    "status",
    "result",
    "error",
    "traceback",
    "seconds",
    "version",
    "host",
    "worker",
    "started",
    "finished",
    "attempts",
    "spec_hash",
    "nonfinite",
    "warnings",
)

_SCHEMA = """
CREATE TABLE specs (
    spec_hash TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    experiment TEXT NOT NULL,
    text TEXT NOT NULL,
    source TEXT NOT NULL,
    n_cells INTEGER NOT NULL,
    created TEXT NOT NULL
);
CREATE TABLE spec_cells (
    spec_hash TEXT NOT NULL REFERENCES specs (spec_hash),
    cell_key TEXT NOT NULL,
    position INTEGER NOT NULL,
    params TEXT NOT NULL,
    PRIMARY KEY (spec_hash, cell_key)
);
CREATE TABLE cells (
    id INTEGER PRIMARY KEY,
    experiment TEXT NOT NULL,
    cell_key TEXT NOT NULL,
    params TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('done', 'failed')),
    result TEXT,
    error TEXT,
    traceback TEXT,
    seconds REAL,
    version TEXT,
    host TEXT,
    worker TEXT,
    started TEXT,
    finished TEXT,
    attempts INTEGER NOT NULL DEFAULT 1,
    spec_hash TEXT,
    nonfinite TEXT,
    warnings TEXT,
    UNIQUE (experiment, cell_key)
);
CREATE INDEX cells_by_status ON cells (experiment, status);
"""

# added to files of schema version 1 that predate them, by the first run that opens them
_RUN_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started TEXT NOT NULL,
    heartbeat REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS claims (
    experiment TEXT NOT NULL,
    cell_key TEXT NOT NULL,
    run_id TEXT NOT NULL,
    claimed TEXT NOT NULL,
    PRIMARY KEY (experiment, cell_key)
);
"""
_KEY_RE = re.compile(r"[0-9a-f]{64}")


class StoreError(ValueError):
    """A results database that cannot be used: not SQLite, damaged, or another schema."""


@dataclass(frozen=True)
class Outcome:
    """What running one cell produced, as stored in its row.

    Attributes
    ----------
    status : {"done", "failed"}
    result : str or None
        The result as JSON text (``done`` only).
    error : str or None
        ``"ExceptionType: message"`` (``failed`` only).
    traceback : str or None
    seconds : float
        Wall time of the cell in its worker.
    version : str
        gmmscape's version in the worker.
    host : str
    worker : str
        Process id or Dask worker address.
    started, finished : str
        UTC timestamps, ISO 8601.
    nonfinite : str or None
        JSON list of ``[path, "nan" | "inf" | "-inf"]`` for every non-finite float of the
        result, which ``result`` holds as ``null`` (see :func:`encode_result`).
    warnings : str or None
        JSON list of the distinct warnings the cell raised (``"Category: message"``).
    """

    status: str
    result: str | None
    error: str | None
    traceback: str | None
    seconds: float
    version: str
    host: str
    worker: str
    started: str
    finished: str
    nonfinite: str | None = None
    warnings: str | None = None


@dataclass(frozen=True)
class SpecStatus:
    """Progress of one spec in a results database.

    Attributes
    ----------
    name, experiment, spec_hash, source, created : str
    cells : int
        Cells in the spec's grid.
    done, failed : int
        Cells with a readable row of that status.
    mean_seconds : float or None
        Mean wall time of the spec's done cells in their workers.
    corrupt : int
        Cells whose row cannot be decoded (see :meth:`ResultsStore.corrupt_rows`).
    remaining : int
        ``cells - done - failed - corrupt``: cells with no row yet.
    """

    name: str
    experiment: str
    spec_hash: str
    source: str
    created: str
    cells: int
    done: int
    failed: int
    mean_seconds: float | None = None
    corrupt: int = 0

    @property
    def remaining(self) -> int:
        """Cells of the spec without a row."""
        return self.cells - self.done - self.failed - self.corrupt


@dataclass(frozen=True)
class RunInfo:
    """A sweep run that is writing to a results database now.

    Attributes
    ----------
    run_id, host, started : str
    pid : int
    heartbeat_age : float
        Seconds since its last heartbeat.
    claimed : int
        Cells it has claimed and not yet stored.
    """

    run_id: str
    host: str
    pid: int
    started: str
    heartbeat_age: float
    claimed: int


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def _text(value) -> str:
    """Text read from the file as ``str``; raises ValueError naming the damage."""
    if not isinstance(value, str):
        raise ValueError(f"holds a {type(value).__name__}, not text")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("holds bytes that are not UTF-8") from None
    return value


def _readable(value):
    """Text with damaged bytes shown as U+FFFD; other values as they are."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return value


def _json_text(value, column: str, *, nullable: bool):
    if value is None:
        if nullable:
            return None
        raise ValueError(f"{column} is missing")
    try:
        text = _text(value)
    except ValueError as exc:
        raise ValueError(f"{column} {exc}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{column} is not valid JSON ({exc})") from None


def utc_now() -> str:
    """The current UTC time, ISO 8601 with seconds.

    Returns
    -------
    str
    """
    return datetime.now(UTC).isoformat(timespec="seconds")


def encode_result(value) -> tuple[str, str | None]:
    """A result as strict JSON, non-finite floats as ``null``, and where they were.

    SQLite's JSON functions (before 3.42) reject ``NaN`` and ``Infinity``, and aggregates
    skip ``null``, so the stored text is strict JSON; the positions and kinds of the
    non-finite values are kept beside it, and :func:`decode_result` restores them.

    Parameters
    ----------
    value : dict
        JSON-compatible: dicts, lists, str, int, float, bool, None.

    Returns
    -------
    text : str
    nonfinite : str or None
        JSON list of ``[path, kind]`` with ``path`` a list of keys and indices and
        ``kind`` one of ``"nan"``, ``"inf"``, ``"-inf"``; None if there are none.
    """
    found: list = []

    def clean(v, path):
        if isinstance(v, float) and not math.isfinite(v):
            found.append([path, "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")])
            return None
        if isinstance(v, dict):
            return {k: clean(x, [*path, k]) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [clean(x, [*path, i]) for i, x in enumerate(v)]
        return v

    text = json.dumps(clean(value, []), allow_nan=False)
    return text, (json.dumps(found) if found else None)


def decode_result(text: str | None, nonfinite: str | None):
    """Inverse of :func:`encode_result`.

    Parameters
    ----------
    text : str or None
    nonfinite : str or None

    Returns
    -------
    dict or None
    """
    if text is None:
        return None
    value = json.loads(text)
    for path, kind in json.loads(nonfinite) if nonfinite else ():
        target = value
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = float(kind)
    return value


def _decode_row(raw: dict) -> dict:
    """A stored row with ``params``, ``result`` and ``warnings`` decoded.

    Raises ValueError naming the column that cannot be decoded.
    """
    d = dict(raw)
    for col in ("experiment", "cell_key", "status"):
        try:
            _text(d[col])
        except ValueError as exc:
            raise ValueError(f"{col} {exc}") from None
    if not _KEY_RE.fullmatch(d["cell_key"]):
        raise ValueError(f"cell_key {d['cell_key']!r} is not 64 hex digits")
    if d["status"] not in ("done", "failed"):
        raise ValueError(f"status is {d['status']!r}, not done or failed")
    for col in ("error", "traceback", "version", "host", "worker", "started", "finished"):
        if d[col] is not None:
            try:
                _text(d[col])
            except ValueError as exc:
                raise ValueError(f"{col} {exc}") from None
    params = _json_text(d["params"], "params", nullable=False)
    if not isinstance(params, dict):
        raise ValueError(f"params is a JSON {type(params).__name__}, not an object")
    result = _json_text(d["result"], "result", nullable=True)
    if d["status"] == "done" and not isinstance(result, dict):
        raise ValueError("result of a done row is not a JSON object")
    nonfinite = _json_text(d.pop("nonfinite"), "nonfinite", nullable=True)
    try:
        for path, kind in nonfinite or ():
            target = result
            for step in path[:-1]:
                target = target[step]
            if target[path[-1]] is not None or kind not in ("nan", "inf", "-inf"):
                raise ValueError  # encode_result stores null where a non-finite value was
            target[path[-1]] = float(kind)
    except (TypeError, KeyError, IndexError, ValueError):
        raise ValueError("nonfinite does not match the result") from None
    warns = _json_text(d["warnings"], "warnings", nullable=True)
    d["params"], d["result"], d["warnings"] = params, result, warns or []
    return d


def view_name(experiment: str) -> str:
    """The name of the per-experiment view: the experiment's name (quote it in SQL).

    A name that is taken by one of the store's tables (or SQLite's) gets ``_rows``
    appended.

    Parameters
    ----------
    experiment : str

    Returns
    -------
    str
    """
    if experiment.lower() in (*_TABLES, "meta") or experiment.lower().startswith("sqlite_"):
        return experiment + "_rows"
    return experiment


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class ResultsStore:
    """A sweep results database (see the module docstring for its tables).

    Parameters
    ----------
    path : str or Path
        The SQLite file. Created with the schema when it does not exist or is empty.
    readonly : bool, default False
        Open for reading only (``sweep status``, ``report``); the file must exist.

    Raises
    ------
    StoreError
        If the file is not an SQLite database, fails SQLite's integrity check, or holds
        another program's tables or another schema version. The file is not modified.
    """

    def __init__(self, path: str | Path, *, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        if self.path.exists() and not self.path.is_file():
            raise StoreError(f"results database {self.path} is not a file.")
        try:
            exists = self.path.exists() and self.path.stat().st_size > 0
        except OSError as exc:
            raise StoreError(f"cannot read results database {self.path}: {exc}") from None
        if readonly and self.path.exists() and not exists:
            raise StoreError(
                f"results database {self.path} is an empty file (0 bytes): no sweep has "
                "stored anything in it. `gmmscape sweep run SPEC --db` with this file "
                "creates the tables in it."
            )
        if exists:
            try:
                with open(self.path, "rb") as fh:
                    head = fh.read(len(_SQLITE_MAGIC))
            except OSError as exc:
                raise StoreError(f"cannot read results database {self.path}: {exc}") from None
            if head != _SQLITE_MAGIC:
                raise StoreError(
                    f"{self.path} is not an SQLite database (it does not start with the "
                    "SQLite header); it was left untouched. Give --db a new file name."
                )
        elif readonly:
            raise StoreError(f"results database {self.path} does not exist.")
        self._heartbeat: tuple | None = None
        if not readonly:
            blocker = next((p for p in self.path.parents if p.exists()), None)
            if blocker is not None and not blocker.is_dir():
                raise StoreError(
                    f"cannot create results database {self.path}: {blocker} is a file, not "
                    "a folder."
                )
        try:
            if readonly:
                uri = self.path.resolve().as_uri() + "?mode=ro"
                self.conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open results database {self.path}: {exc}") from None
        # undecodable bytes become lone surrogates, which _text() reports as damage
        self.conn.text_factory = lambda b: b.decode("utf-8", "surrogateescape")
        try:
            self._check(exists)
            if not readonly:
                self.conn.execute("PRAGMA journal_mode = WAL")
                self.conn.execute("PRAGMA synchronous = FULL")
                if not {"cells", "runs", "claims"} <= self._tables():
                    self._create_tables()
        except sqlite3.Error as exc:
            self.conn.close()
            raise StoreError(f"cannot write to results database {self.path}: {exc}") from None
        except BaseException:
            self.conn.close()
            raise

    # -- opening -----------------------------------------------------------------------
    def _tables(self) -> set[str]:
        rows = self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {r[0] for r in rows}

    def _check(self, exists: bool) -> None:
        """Check an existing file without writing to it."""
        if not exists:
            return
        try:
            check = self.conn.execute("PRAGMA quick_check").fetchall()
            tables = self._tables()
            app_id = self.conn.execute("PRAGMA application_id").fetchone()[0]
            version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"{self.path} is not a usable SQLite database ({exc}); it was left untouched."
            ) from None
        if check != [("ok",)]:
            problems = "; ".join(str(r[0]) for r in check[:3])
            raise StoreError(
                f"{self.path} is damaged (SQLite integrity check: {problems}); it was left "
                "untouched. Restore it from a copy or start a new database."
            )
        if not tables and app_id == 0:
            return  # an empty SQLite file: gets the schema
        if app_id != APPLICATION_ID:
            raise StoreError(
                f"{self.path} is an SQLite database of another program (tables: "
                f"{', '.join(sorted(tables)) or 'none'}), not gmmscape sweep results; it was "
                "left untouched."
            )
        if version != SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has results schema version {version}; this gmmscape reads "
                f"version {SCHEMA_VERSION}. It was left untouched."
            )
        missing = [t for t in _TABLES if t not in tables]
        cols = {r[1] for r in self.conn.execute("PRAGMA table_info(cells)")}
        if missing or not set(_CELL_COLUMNS) <= cols:
            raise StoreError(
                f"{self.path} is a gmmscape results database with a damaged schema (missing "
                f"tables {missing or 'none'}, missing cell columns "
                f"{sorted(set(_CELL_COLUMNS) - cols) or 'none'}); it was left untouched."
            )

    def _create_tables(self) -> None:
        """Create the schema (or the run tables it lacks) under a write lock.

        Two runs that open a new file at once both get here; the second, waiting for the
        lock, finds the tables made and adds nothing.
        """
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            if "cells" not in self._tables():
                for stmt in _SCHEMA.split(";"):
                    if stmt.strip():
                        self.conn.execute(stmt)
                self.conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                self.conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            for stmt in _RUN_SCHEMA.split(";"):
                if stmt.strip():
                    self.conn.execute(stmt)
            self.conn.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise

    def _rollback(self) -> None:
        """Roll back the open transaction, if any, without masking the error in flight.

        A Ctrl-C can arrive before ``BEGIN`` took effect or after SQLite ended the
        transaction itself; a failing ``ROLLBACK`` must not replace the interrupt.
        """
        if self.conn.in_transaction:
            try:
                self.conn.rollback()
            except sqlite3.Error:
                pass

    def close(self) -> None:
        """Close the connection (ending this store's run, if one was begun)."""
        if self._heartbeat is not None:
            self.end_run()
        self.conn.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- writing -----------------------------------------------------------------------
    def add_spec(self, spec) -> None:
        """Record a spec and its cells (one transaction) and refresh its experiment's view.

        Parameters
        ----------
        spec : gmmscape.sweep.spec.Spec
        """
        from gmmscape.sweep.spec import canonical_json

        with self.conn:
            self.conn.execute(
                "INSERT OR IGNORE INTO specs VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    spec.hash,
                    spec.name,
                    spec.experiment,
                    spec.text,
                    spec.source,
                    len(spec.cells),
                    utc_now(),
                ),
            )
            self.conn.executemany(
                "INSERT OR IGNORE INTO spec_cells VALUES (?, ?, ?, ?)",
                [(spec.hash, c.key, i, canonical_json(c.params)) for i, c in enumerate(spec.cells)],
            )
            self._refresh_view(spec.experiment)

    def _refresh_view(self, experiment: str) -> None:
        names: set[str] = set()
        rows = self.conn.execute(
            "SELECT sc.params FROM spec_cells sc JOIN specs s USING (spec_hash) "
            "WHERE s.experiment = ? GROUP BY s.spec_hash",
            (experiment,),
        )
        for (params,) in rows:
            names |= set(json.loads(params))
        system = [c for c in _CELL_COLUMNS if c not in ("experiment", "params", "nonfinite")]
        param_cols = []
        for name in sorted(names):
            alias = f"param_{name}" if name in _CELL_COLUMNS else name
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                continue
            param_cols.append(f"json_extract(params, '$.{name}') AS {_quote(alias)}")
        cols = ", ".join([*param_cols, *system, "params"])
        view = _quote(view_name(experiment))
        self.conn.execute(f"DROP VIEW IF EXISTS {view}")
        self.conn.execute(
            f"CREATE VIEW {view} AS SELECT {cols} FROM cells WHERE experiment = "
            + "'"
            + experiment.replace("'", "''")
            + "'"
        )

    def record(
        self, cell, outcome: Outcome, spec_hash: str | None = None, *, replace: bool = False
    ) -> bool:
        """Store one cell's outcome in its own transaction, releasing this run's claim.

        Parameters
        ----------
        cell : gmmscape.sweep.spec.Cell
        outcome : Outcome
        spec_hash : str, optional
            The spec whose run produced it.
        replace : bool, default False
            Overwrite whatever row the cell has (used for corrupt rows).

        Returns
        -------
        bool
            True if the row was written; False if the cell already has a ``done`` row
            (which is never overwritten unless ``replace``).
        """
        from gmmscape.sweep.spec import canonical_json

        o = outcome
        with self.conn:
            if replace:
                self.conn.execute(
                    "DELETE FROM cells WHERE experiment = ? AND cell_key = ?",
                    (cell.experiment, cell.key),
                )
            if self._heartbeat is not None:
                self.conn.execute(
                    "DELETE FROM claims WHERE experiment = ? AND cell_key = ? AND run_id = ?",
                    (cell.experiment, cell.key, self.run_id),
                )
            cur = self.conn.execute(
                """
                INSERT INTO cells (experiment, cell_key, params, status, result, error,
                    traceback, seconds, version, host, worker, started, finished, spec_hash,
                    nonfinite, warnings)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (experiment, cell_key) DO UPDATE SET
                    status = excluded.status, result = excluded.result,
                    error = excluded.error, traceback = excluded.traceback,
                    seconds = excluded.seconds, version = excluded.version,
                    host = excluded.host, worker = excluded.worker,
                    started = excluded.started, finished = excluded.finished,
                    spec_hash = excluded.spec_hash, nonfinite = excluded.nonfinite,
                    warnings = excluded.warnings,
                    attempts = cells.attempts + 1
                WHERE cells.status = 'failed'
                """,
                (
                    cell.experiment,
                    cell.key,
                    canonical_json(cell.params),
                    o.status,
                    o.result,
                    o.error,
                    o.traceback,
                    o.seconds,
                    o.version,
                    o.host,
                    o.worker,
                    o.started,
                    o.finished,
                    spec_hash,
                    o.nonfinite,
                    o.warnings,
                ),
            )
            return cur.rowcount == 1

    # -- runs and claims ---------------------------------------------------------------
    def begin_run(self) -> str:
        """Register this process as a run writing to the file and start its heartbeat.

        Returns
        -------
        str
            The run's id, which its claims carry.

        Raises
        ------
        StoreError
            If the store is read-only or a run was already begun.
        """
        if self.readonly:
            raise StoreError("a read-only results store cannot begin a run.")
        if self._heartbeat is not None:
            raise StoreError("this store already has a run; end it first.")
        self.run_id = uuid.uuid4().hex
        with self.conn:
            self.conn.execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?, ?)",
                (self.run_id, socket.gethostname(), os.getpid(), utc_now(), time.time()),
            )
        stop = threading.Event()

        def beat() -> None:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S)
            try:
                while not stop.wait(HEARTBEAT_S):
                    try:
                        with conn:
                            conn.execute(
                                "UPDATE runs SET heartbeat = ? WHERE run_id = ?",
                                (time.time(), self.run_id),
                            )
                    except sqlite3.Error:
                        pass  # busy for a minute: the next beat tries again
            finally:
                conn.close()

        thread = threading.Thread(target=beat, daemon=True, name="gmmscape-heartbeat")
        thread.start()
        self._heartbeat = (stop, thread)
        return self.run_id

    def end_run(self) -> None:
        """Stop the heartbeat and release every claim of this run."""
        if self._heartbeat is None:
            return
        stop, thread = self._heartbeat
        stop.set()
        thread.join(timeout=2 * BUSY_TIMEOUT_S)
        self._heartbeat = None
        self._rollback()  # a transaction an interrupt left open
        try:
            with self.conn:
                self.conn.execute("DELETE FROM claims WHERE run_id = ?", (self.run_id,))
                self.conn.execute("DELETE FROM runs WHERE run_id = ?", (self.run_id,))
        except sqlite3.Error:
            pass  # left behind, the claims are taken over as soon as this process is gone

    def _purge_dead_runs(self) -> None:
        """Inside a write transaction: drop runs that died, and their claims."""
        now, host = time.time(), socket.gethostname()
        dead = [
            run_id
            for run_id, h, pid, beat in self.conn.execute(
                "SELECT run_id, host, pid, heartbeat FROM runs"
            )
            if now - beat > STALE_AFTER_S or (h == host and not _pid_alive(pid))
        ]
        for run_id in dead:
            self.conn.execute("DELETE FROM claims WHERE run_id = ?", (run_id,))
            self.conn.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))
        self.conn.execute("DELETE FROM claims WHERE run_id NOT IN (SELECT run_id FROM runs)")

    def claim(self, cells, expected: dict) -> dict:
        """Claim cells for this run, in one write transaction.

        A cell is claimed if another live run has not claimed it and its stored row is
        still what this run planned from (``expected``): a row stored by another run
        since then means the cell is no longer this run's to compute.

        Parameters
        ----------
        cells : sequence of gmmscape.sweep.spec.Cell
        expected : dict
            ``(experiment, cell_key)`` -> ``(status, attempts)`` of the row seen when
            planning, or None for no row (a missing entry also means no row).

        Returns
        -------
        dict
            ``(experiment, cell_key)`` -> ``"claimed"``, ``"stored_elsewhere"`` (another
            run stored it since planning) or ``"claimed_elsewhere"`` (another live run
            holds it).
        """
        if self._heartbeat is None:
            raise StoreError("begin_run() before claiming cells.")
        out = {}
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            self._purge_dead_runs()
            for cell in cells:
                ident = (cell.experiment, cell.key)
                row = self.conn.execute(
                    "SELECT status, attempts FROM cells WHERE experiment = ? AND cell_key = ?",
                    ident,
                ).fetchone()
                if (tuple(row) if row else None) != expected.get(ident):
                    out[ident] = "stored_elsewhere"
                    continue
                holder = self.conn.execute(
                    "SELECT run_id FROM claims WHERE experiment = ? AND cell_key = ?", ident
                ).fetchone()
                if holder is not None and holder[0] != self.run_id:
                    out[ident] = "claimed_elsewhere"
                    continue
                self.conn.execute(
                    "INSERT OR REPLACE INTO claims VALUES (?, ?, ?, ?)",
                    (*ident, self.run_id, utc_now()),
                )
                out[ident] = "claimed"
            self.conn.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        return out

    def release(self, cells) -> None:
        """Release this run's claims on ``cells`` (cells it will not compute after all).

        Parameters
        ----------
        cells : iterable of gmmscape.sweep.spec.Cell
        """
        if self._heartbeat is None:
            return
        with self.conn:
            self.conn.executemany(
                "DELETE FROM claims WHERE experiment = ? AND cell_key = ? AND run_id = ?",
                [(c.experiment, c.key, self.run_id) for c in cells],
            )

    def active_runs(self) -> list[RunInfo]:
        """Runs registered in the file that look alive, with their open claims.

        Returns
        -------
        list of RunInfo
            Empty for a file written before runs were recorded.
        """
        if "runs" not in self._tables():
            return []
        now, host = time.time(), socket.gethostname()
        rows = self.conn.execute(
            "SELECT r.run_id, r.host, r.pid, r.started, r.heartbeat, count(c.cell_key) "
            "FROM runs r LEFT JOIN claims c USING (run_id) GROUP BY r.run_id ORDER BY r.started"
        )
        return [
            RunInfo(run_id, h, pid, started, now - beat, n)
            for run_id, h, pid, started, beat, n in rows
            if now - beat <= STALE_AFTER_S and not (h == host and not _pid_alive(pid))
        ]

    # -- reading -----------------------------------------------------------------------
    def _scan(self, experiment: str | None = None):
        """Every row, decoded: yields ``(row dict, None)`` or ``(raw dict, problem)``."""
        sql = f"SELECT {', '.join(_CELL_COLUMNS)} FROM cells"
        args: tuple = ()
        if experiment is not None:
            sql += " WHERE experiment = ?"
            args = (experiment,)
        for row in self.conn.execute(sql + " ORDER BY id", args):
            raw = dict(zip(_CELL_COLUMNS, row, strict=True))
            try:
                yield _decode_row(raw), None
            except ValueError as exc:
                yield raw, str(exc)

    def statuses(self, experiment: str) -> dict[str, str]:
        """Status of every stored cell of one experiment type.

        Parameters
        ----------
        experiment : str

        Returns
        -------
        dict of str to str
            Cell key -> ``"done"``, ``"failed"`` or ``"corrupt"`` (a row that cannot be
            decoded; see :meth:`corrupt_rows`).
        """
        out = {}
        for row, problem in self._scan(experiment):
            key = row["cell_key"]
            out[key if isinstance(key, str) else repr(key)] = (
                "corrupt" if problem else row["status"]
            )
        return out

    def row_versions(self, experiment: str) -> dict[str, tuple]:
        """``(status, attempts)`` of every stored cell of one experiment type.

        Parameters
        ----------
        experiment : str

        Returns
        -------
        dict of str to tuple
            Cell key -> ``(status, attempts)`` as stored (also for corrupt rows).
        """
        rows = self.conn.execute(
            "SELECT cell_key, status, attempts FROM cells WHERE experiment = ?", (experiment,)
        )
        return {k: (st, a) for k, st, a in rows}

    def corrupt_rows(self, experiment: str | None = None) -> list[dict]:
        """Rows whose payload cannot be decoded.

        Parameters
        ----------
        experiment : str, optional
            Only this experiment type's rows.

        Returns
        -------
        list of dict
            Keys ``id``, ``experiment``, ``cell_key`` (as stored; ``repr`` of it when it is
            itself damaged), ``status`` (likewise) and ``problem``.
        """
        # one scan serves every call until the file changes (status and report ask twice)
        version = (self.conn.execute("PRAGMA data_version").fetchone()[0], self.conn.total_changes)
        memo = getattr(self, "_corrupt_memo", None)
        if memo is None or memo[0] != version:
            memo = (version, self._find_corrupt())
            self._corrupt_memo = memo
        return [dict(r) for r in memo[1] if experiment is None or r["experiment"] == experiment]

    def _find_corrupt(self) -> list[dict]:
        out = []
        for raw, problem in self._scan():
            if problem is None:
                continue

            def shown(v):
                try:
                    return _text(v)
                except ValueError:
                    return repr(v)

            out.append(
                {
                    "id": raw["id"],
                    "experiment": shown(raw["experiment"]),
                    "cell_key": shown(raw["cell_key"]),
                    "status": shown(raw["status"]),
                    "problem": problem,
                }
            )
        return out

    def experiments(self) -> list[str]:
        """Experiment types with stored rows or specs, sorted.

        Returns
        -------
        list of str
        """
        rows = self.conn.execute(
            "SELECT experiment FROM cells UNION SELECT experiment FROM specs ORDER BY 1"
        )
        return [r[0] for r in rows]

    def rows(self, experiment: str, status: str | None = None) -> list[dict]:
        """Stored rows of one experiment type, in insertion order.

        Parameters
        ----------
        experiment : str
        status : {"done", "failed"}, optional
            Only rows with this status.

        Returns
        -------
        list of dict
            One dict per row with the ``cells`` columns; ``params`` and ``result`` are
            decoded from JSON. Corrupt rows are left out (see :meth:`corrupt_rows`).
        """
        return [
            row
            for row, problem in self._scan(experiment)
            if problem is None and (status is None or row["status"] == status)
        ]

    def specs(self) -> list[dict]:
        """Every recorded spec, oldest first.

        Returns
        -------
        list of dict
            Keys ``spec_hash, name, experiment, text, source, n_cells, created``.
        """
        cols = ("spec_hash", "name", "experiment", "text", "source", "n_cells", "created")
        rows = self.conn.execute(f"SELECT {', '.join(cols)} FROM specs ORDER BY created, rowid")
        return [{c: _readable(v) for c, v in zip(cols, r, strict=True)} for r in rows]

    def spec_status(self) -> list[SpecStatus]:
        """Done, failed and remaining cells of every recorded spec.

        Returns
        -------
        list of SpecStatus
        """
        rows = self.conn.execute(
            """
            SELECT s.name, s.experiment, s.spec_hash, s.source, s.created, s.n_cells,
                   count(CASE WHEN c.status = 'done' THEN 1 END),
                   count(CASE WHEN c.status = 'failed' THEN 1 END),
                   avg(CASE WHEN c.status = 'done' THEN c.seconds END)
            FROM specs s
            LEFT JOIN spec_cells sc ON sc.spec_hash = s.spec_hash
            LEFT JOIN cells c ON c.experiment = s.experiment AND c.cell_key = sc.cell_key
            GROUP BY s.spec_hash ORDER BY s.created, s.rowid
            """
        ).fetchall()
        corrupt: dict[str, set] = {}
        for raw in self.corrupt_rows():
            corrupt.setdefault(raw["experiment"], set()).add(raw["cell_key"])
        out = []
        for r in rows:
            status = SpecStatus(*r)
            bad = corrupt.get(status.experiment)
            if bad:
                keys = {
                    k
                    for (k,) in self.conn.execute(
                        "SELECT cell_key FROM spec_cells WHERE spec_hash = ?", (status.spec_hash,)
                    )
                }
                stored = dict(
                    self.conn.execute(
                        "SELECT c.cell_key, c.status FROM cells c JOIN spec_cells sc ON "
                        "c.cell_key = sc.cell_key WHERE sc.spec_hash = ? AND c.experiment = ?",
                        (status.spec_hash, status.experiment),
                    ).fetchall()
                )
                hit = bad & keys
                n_done = sum(1 for k in hit if stored.get(k) == "done")
                n_failed = sum(1 for k in hit if stored.get(k) == "failed")
                status = dataclasses.replace(
                    status,
                    done=status.done - n_done,
                    failed=status.failed - n_failed,
                    corrupt=len(hit),
                )
            out.append(status)
        return out

    def failure_summary(self, limit: int = 5) -> list[tuple[str, str, int]]:
        """The most frequent errors of failed cells.

        Parameters
        ----------
        limit : int, default 5

        Returns
        -------
        list of (experiment, error, count)
            Most frequent first; ``error`` is the first line of the stored error.
        """
        rows = self.conn.execute(
            "SELECT experiment, error FROM cells WHERE status = 'failed' ORDER BY id"
        )
        counts: dict[tuple[str, str], int] = {}
        for exp, err in rows:
            exp, err = _readable(exp), _readable(err)
            key = (exp, (err or "").splitlines()[0] if err else "")
            counts[key] = counts.get(key, 0) + 1
        top = sorted(counts.items(), key=lambda kv: -kv[1])[:limit]
        return [(exp, err, n) for (exp, err), n in top]

    def count(self) -> int:
        """Number of stored rows.

        Returns
        -------
        int
        """
        return self.conn.execute("SELECT count(*) FROM cells").fetchone()[0]
