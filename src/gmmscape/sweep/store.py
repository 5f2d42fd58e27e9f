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
``<experiment>`` views
    One view per experiment type with a column per parameter (``n``, ``d``, ``seed``...)
    next to ``status``, ``result`` and the timing columns, for plain SQL such as
    ``SELECT n, avg(json_extract(result, '$.kl_error')) FROM "stream-error" GROUP BY n``.

The file is in WAL mode with ``synchronous = FULL``: a row is on disk when its insert
returns, and a process killed at any moment leaves every committed row intact and no
partial one. One process writes (the sweep's parent); readers (``sweep status``,
``report``) may read while a sweep runs.

A file that is not SQLite, is damaged, or is an SQLite file of some other program is a
:class:`StoreError` and is left untouched.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

#: ``PRAGMA application_id`` of a gmmscape results database ("gmms").
APPLICATION_ID = 0x676D6D73
#: ``PRAGMA user_version``: the schema this module reads and writes.
SCHEMA_VERSION = 1
#: Seconds a writer waits for a lock held by another connection.
BUSY_TIMEOUT_S = 60.0

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
    remaining : int
        ``cells - done - failed``: cells with no row yet.
    mean_seconds : float or None
        Mean wall time of the spec's done cells in their workers.
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

    @property
    def remaining(self) -> int:
        """Cells of the spec without a row."""
        return self.cells - self.done - self.failed


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
        exists = self.path.exists() and self.path.stat().st_size > 0
        if exists:
            with open(self.path, "rb") as fh:
                head = fh.read(len(_SQLITE_MAGIC))
            if head != _SQLITE_MAGIC:
                raise StoreError(
                    f"{self.path} is not an SQLite database (it does not start with the "
                    "SQLite header); it was left untouched. Give --db a new file name."
                )
        elif readonly:
            raise StoreError(f"results database {self.path} does not exist.")
        if readonly:
            uri = self.path.resolve().as_uri() + "?mode=ro"
            self.conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S)
        try:
            self._check(exists)
        except BaseException:
            self.conn.close()
            raise
        if not readonly:
            self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute("PRAGMA synchronous = FULL")
            if not exists or not self._tables():
                with self.conn:
                    self.conn.executescript(
                        "BEGIN;"
                        + _SCHEMA
                        + f"PRAGMA application_id = {APPLICATION_ID};"
                        + f"PRAGMA user_version = {SCHEMA_VERSION};"
                        + "COMMIT;"
                    )

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

    def close(self) -> None:
        """Close the connection."""
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

    def record(self, cell, outcome: Outcome, spec_hash: str | None = None) -> bool:
        """Store one cell's outcome in its own transaction.

        Parameters
        ----------
        cell : gmmscape.sweep.spec.Cell
        outcome : Outcome
        spec_hash : str, optional
            The spec whose run produced it.

        Returns
        -------
        bool
            True if the row was written; False if the cell already has a ``done`` row
            (which is never overwritten).
        """
        from gmmscape.sweep.spec import canonical_json

        o = outcome
        with self.conn:
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

    # -- reading -----------------------------------------------------------------------
    def statuses(self, experiment: str) -> dict[str, str]:
        """Status of every stored cell of one experiment type.

        Parameters
        ----------
        experiment : str

        Returns
        -------
        dict of str to str
            Cell key -> ``"done"`` or ``"failed"``.
        """
        rows = self.conn.execute(
            "SELECT cell_key, status FROM cells WHERE experiment = ?", (experiment,)
        )
        return dict(rows.fetchall())

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
            decoded from JSON.
        """
        sql = f"SELECT {', '.join(_CELL_COLUMNS)} FROM cells WHERE experiment = ?"
        args: tuple = (experiment,)
        if status is not None:
            sql += " AND status = ?"
            args += (status,)
        out = []
        for row in self.conn.execute(sql + " ORDER BY id", args):
            d = dict(zip(_CELL_COLUMNS, row, strict=True))
            d["params"] = json.loads(d["params"])
            d["result"] = decode_result(d["result"], d.pop("nonfinite"))
            d["warnings"] = json.loads(d["warnings"]) if d["warnings"] else []
            out.append(d)
        return out

    def specs(self) -> list[dict]:
        """Every recorded spec, oldest first.

        Returns
        -------
        list of dict
            Keys ``spec_hash, name, experiment, text, source, n_cells, created``.
        """
        cols = ("spec_hash", "name", "experiment", "text", "source", "n_cells", "created")
        rows = self.conn.execute(f"SELECT {', '.join(cols)} FROM specs ORDER BY created, rowid")
        return [dict(zip(cols, r, strict=True)) for r in rows]

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
        )
        return [SpecStatus(*r) for r in rows]

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
