"""Sweeps that share a database, corrupt row payloads and empty files."""

import json
import re
import sqlite3
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from gmmscape.cli import app
from gmmscape.sweep import ResultsStore, run_sweep
from gmmscape.sweep import store as store_module
from test_sweep_runner import TESTS, WRAPPER, spec_file, square_spec, stored
from test_sweep_runner import test_types as _register_test_types  # noqa: F401  (autouse)


def flat(text):
    return " ".join(text.split())


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


# -- claims ---------------------------------------------------------------------------
def test_a_cell_claimed_by_a_live_run_is_not_claimed_by_another(tmp_path):
    db, spec = tmp_path / "r.db", square_spec([1.0, 2.0, 3.0], seeds=1)
    a, b = ResultsStore(db), ResultsStore(db)
    try:
        a.add_spec(spec)
        a.begin_run()
        b.begin_run()
        cells = list(spec.cells)
        got_a = a.claim(cells[:2], {})
        got_b = b.claim(cells, {})
        keys = [(c.experiment, c.key) for c in cells]
        assert [got_a[k] for k in keys[:2]] == ["claimed", "claimed"]
        assert [got_b[k] for k in keys] == ["claimed_elsewhere", "claimed_elsewhere", "claimed"]
        runs = {r.run_id: r.claimed for r in b.active_runs()}
        assert runs == {a.run_id: 2, b.run_id: 1}
        a.end_run()  # releases its claims: now b may take them
        got_b = b.claim(cells[:2], {})
        assert [got_b[k] for k in keys[:2]] == ["claimed", "claimed"]
    finally:
        a.close()
        b.close()


def test_a_row_stored_since_planning_is_not_claimed_again(tmp_path):
    db, spec = tmp_path / "r.db", square_spec([1.0], seeds=1)
    with ResultsStore(db) as s:
        run_sweep([spec], s)
        s.begin_run()
        got = s.claim(spec.cells, {})  # planned with no row, but a row is there now
        assert list(got.values()) == ["stored_elsewhere"]


def test_claims_of_a_dead_run_are_taken_over(tmp_path, monkeypatch):
    db, spec = tmp_path / "r.db", square_spec([1.0, 2.0], seeds=1)
    with ResultsStore(db) as s:
        s.add_spec(spec)
        s.begin_run()
        s.claim(spec.cells, {})
        # a process that is gone: its pid no longer exists on this host
        s.conn.execute("UPDATE runs SET pid = ?", (2**22 + 12345,))
        s.conn.commit()
        other = ResultsStore(db)
        other.begin_run()
        assert set(other.claim(spec.cells, {}).values()) == {"claimed"}
        other.close()
    with ResultsStore(db) as s:  # a run on another host whose heartbeat stopped
        s.begin_run()
        s.claim(spec.cells, {})
        s.conn.execute("UPDATE runs SET host = 'elsewhere', heartbeat = heartbeat - ?", (61,))
        s.conn.commit()
        other = ResultsStore(db)
        other.begin_run()
        assert set(other.claim(spec.cells, {}).values()) == {"claimed"}
        other.close()
    with ResultsStore(db) as s:  # every run ended: no run, no claim left behind
        assert s.conn.execute("SELECT count(*) FROM claims").fetchone() == (0,)
        assert s.conn.execute("SELECT count(*) FROM runs").fetchone() == (0,)


@pytest.mark.slow
def test_two_concurrent_runs_compute_every_cell_once_and_say_what_each_did(tmp_path):
    n = 30
    path, db = spec_file(tmp_path, n, 0.3), tmp_path / "r.db"
    args = ["sweep", "run", str(path), "--db", str(db)]
    env = {"PYTHONPATH": str(TESTS), "PATH": "/usr/bin:/bin"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRAPPER, *args],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(2)
    ]
    outs = [flat(p.communicate(timeout=180)[0].decode()) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    rows = stored(db)
    assert len(rows) == n
    assert all(r["attempts"] == 1 and r["status"] == "done" for r in rows.values())
    done = [int(re.search(r"(\d+) done, 0 failed in this run", o).group(1)) for o in outs]
    assert sum(done) == n, outs  # each cell computed by exactly one of the two
    workers = {r["worker"] for r in rows.values()}
    assert len(workers) == 2  # both did part of the work
    for o, mine in zip(outs, done, strict=True):
        if mine < n:
            assert f"{n - mine} cells were left to another sweep run on this database" in o
    with ResultsStore(db, readonly=True) as s:
        assert s.active_runs() == []


# -- corrupt payloads -------------------------------------------------------------------
DAMAGE = {
    "result not UTF-8": (
        "UPDATE cells SET result = CAST(x'7b2279223aff7d' AS TEXT) WHERE id = ?",
        "result holds bytes that are not UTF-8",
    ),
    "result not JSON": ("UPDATE cells SET result = '{\"y\": 1' WHERE id = ?", "result is not"),
    "params not JSON": ("UPDATE cells SET params = 'x=1' WHERE id = ?", "params is not"),
    "status garbage": ("UPDATE cells SET status = 'dXne' WHERE id = ?", "status is 'dXne'"),
    "nonfinite garbage": (
        'UPDATE cells SET nonfinite = \'[[["nope"], "nan"]]\' WHERE id = ?',
        "nonfinite does not match",
    ),
}


def damaged_db(tmp_path, sql):
    db = tmp_path / "r.db"
    spec = square_spec([1.0, 2.0, 3.0], seeds=2)
    with ResultsStore(db) as s:
        run_sweep([spec], s)
    conn = sqlite3.connect(db)
    # the CHECK constraint would refuse 'dXne': damage below SQL, as a bad disk would
    conn.execute("PRAGMA ignore_check_constraints = ON")
    key = conn.execute("SELECT cell_key FROM cells WHERE id = 2").fetchone()[0]
    conn.execute(sql, (2,))
    conn.commit()
    assert conn.execute("PRAGMA quick_check").fetchone() == ("ok",)  # SQLite sees nothing
    conn.close()
    return db, spec, key


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_corrupt_row_is_reported_with_its_key_and_the_rest_is_read(tmp_path, damage):
    sql, problem = DAMAGE[damage]
    db, _, key = damaged_db(tmp_path, sql)
    with ResultsStore(db, readonly=True) as s:
        bad = s.corrupt_rows()
        assert [(r["cell_key"], r["id"]) for r in bad] == [(key, 2)]
        assert problem in bad[0]["problem"]
        assert len(s.rows("sweep-test-square")) == 5
        st = s.spec_status()[0]
        assert (st.done, st.failed, st.corrupt, st.remaining) == (5, 0, 1, 0)
    res = invoke("sweep", "status", db)
    assert res.exit_code == 0, res.output
    out = flat(res.output)
    assert "1 corrupt rows" in out and key in out and problem in out
    res = invoke("report", db, "--out", tmp_path / "rep")
    assert res.exit_code == 0, res.output
    assert "1 corrupt" in flat(res.output) and key in res.output
    manifest = json.loads((tmp_path / "rep" / "manifest.json").read_text())
    info = manifest["experiments"]["sweep-test-square"]
    assert (info["rows_done"], info["rows_corrupt"]) == (5, 1)
    assert info["corrupt"][0]["cell_key"] == key and key not in info["cell_keys"]
    page = (tmp_path / "rep" / "report.html").read_text()
    assert "Corrupt rows" in page and key in page
    csv = (tmp_path / "rep" / "sweep-test-square.csv").read_text().splitlines()
    assert len(csv) == 1 + 5  # header and the readable rows


def test_the_next_run_recomputes_a_corrupt_row(tmp_path):
    db, spec, key = damaged_db(tmp_path, DAMAGE["result not UTF-8"][0])
    res = invoke("sweep", "run", *["--db", db], _spec_path(tmp_path, spec))
    assert res.exit_code == 0, res.output
    assert "1 with a corrupt row, recomputed and replaced" in flat(res.output)
    with ResultsStore(db, readonly=True) as s:
        assert s.corrupt_rows() == []
        rows = {r["cell_key"]: r for r in s.rows("sweep-test-square")}
    cell = next(c for c in spec.cells if c.key == key)
    assert rows[key]["result"]["y"] == cell.params["x"] ** 2 + cell.params["seed"]


def _spec_path(tmp_path, spec):
    path = tmp_path / "square.toml"
    path.write_text(spec.text)
    return path


# -- empty files --------------------------------------------------------------------------
def test_a_zero_byte_database_is_called_empty_not_missing(tmp_path):
    db = tmp_path / "empty.db"
    db.write_bytes(b"")
    for args in (("sweep", "status", db), ("report", db, "--out", tmp_path / "rep")):
        res = invoke(*args)
        assert res.exit_code == 2
        assert "is an empty file (0 bytes)" in flat(res.output)
        assert "does not exist" not in res.output
        assert "Traceback" not in res.output
    assert not (tmp_path / "rep").exists()
    assert db.read_bytes() == b""
    with pytest.raises(store_module.StoreError, match="empty file"):
        ResultsStore(db, readonly=True)


# -- huge grids ----------------------------------------------------------------------------
def test_dry_run_on_a_ten_million_cell_grid_answers_in_under_a_second(tmp_path):
    spec = tmp_path / "huge.toml"
    spec.write_text(
        '[sweep]\nname = "huge"\nexperiment = "stream-error"\nseeds = 10\n[grid]\n'
        f"n = {list(range(1000, 2000))}\nd = {list(range(1, 1001))}\n"
    )
    t0 = time.perf_counter()
    res = invoke("sweep", "run", spec, "--dry-run", "--db", tmp_path / "r.db")
    seconds = time.perf_counter() - t0
    assert res.exit_code == 2 and seconds < 1.0, (seconds, res.output)
    assert "10,000,000 cells (10 seeds x 1,000 n x 1,000 d)" in flat(res.output)
    assert not (tmp_path / "r.db").exists()


def test_dry_run_reports_an_empty_database_as_empty(tmp_path):
    (tmp_path / "r.db").write_bytes(b"")
    res = invoke("sweep", "run", _spec_path(tmp_path, square_spec([1.0])), "--dry-run", "--db",
                 tmp_path / "r.db")  # fmt: skip
    assert res.exit_code == 0 and "is empty (0 bytes): nothing stored yet" in flat(res.output)


class _InterruptAt:
    """A connection whose ``execute`` of one statement raises KeyboardInterrupt (Ctrl-C)."""

    def __init__(self, conn, statement, after=False):
        self._conn, self._statement, self._after = conn, statement, after

    def execute(self, sql, *args):
        if sql.strip().startswith(self._statement):
            if self._after:
                self._conn.execute(sql, *args)
            raise KeyboardInterrupt
        return self._conn.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self._conn, name)

    def __enter__(self):
        return self._conn.__enter__()

    def __exit__(self, *exc):
        return self._conn.__exit__(*exc)


@pytest.mark.parametrize(
    ("statement", "after"),
    [
        ("BEGIN IMMEDIATE", False),
        ("BEGIN IMMEDIATE", True),
        ("INSERT OR REPLACE", True),
        ("COMMIT", True),  # committed, then the interrupt: a ROLLBACK would fail
    ],
    ids=["before-begin", "after-begin", "mid-claim", "after-commit"],
)
def test_ctrl_c_inside_a_claim_stays_a_ctrl_c_and_leaves_no_claim(tmp_path, statement, after):
    db, spec = tmp_path / "r.db", square_spec([1.0, 2.0], seeds=1)
    s = ResultsStore(db)
    s.add_spec(spec)
    s.begin_run()
    real = s.conn
    s.conn = _InterruptAt(real, statement, after)
    with pytest.raises(KeyboardInterrupt):
        s.claim(spec.cells, {})
    s.conn = real
    assert not real.in_transaction
    s.end_run()
    s.close()
    with ResultsStore(db, readonly=True) as r:
        assert r.conn.execute("SELECT count(*) FROM claims").fetchone() == (0,)
