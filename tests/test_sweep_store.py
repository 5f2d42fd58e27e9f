"""The SQLite results store: atomic rows, no duplicates, views, and damaged files refused."""

import hashlib
import sqlite3
from dataclasses import replace

import pytest

from gmmscape.sweep.spec import parse_spec
from gmmscape.sweep.store import APPLICATION_ID, Outcome, ResultsStore, StoreError

SPEC = """
[sweep]
name = "store-test"
experiment = "stream-error"
seeds = 2
[grid]
n = [100, 1000]
d = [1, 3]
"""


def outcome(status="done", result='{"v": 1.5}', error=None):
    return Outcome(status, result, error, None, 0.25, "0.1.0", "h", "pid 1", "t0", "t1")


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_new_database_has_the_schema_and_is_tagged(tmp_path):
    db = tmp_path / "run #1?.db"  # characters that a file: URI must escape
    with ResultsStore(db) as store:
        assert store.count() == 0
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    with ResultsStore(db, readonly=True) as store:  # reopens cleanly
        assert store.count() == 0


def test_a_done_row_is_never_overwritten_and_a_failed_row_is_retried(tmp_path):
    spec = parse_spec(SPEC)
    a, b = spec.cells[:2]
    with ResultsStore(tmp_path / "r.db") as store:
        store.add_spec(spec)
        assert store.record(a, outcome())
        assert not store.record(a, outcome(result='{"v": 2.0}'))
        assert store.record(b, outcome("failed", None, "ValueError: x"))
        assert store.record(b, outcome("failed", None, "ValueError: y"))
        assert store.record(b, outcome(result='{"v": 3.0}'))
        rows = {r["cell_key"]: r for r in store.rows("stream-error")}
        assert store.count() == 2
        assert rows[a.key]["result"] == {"v": 1.5} and rows[a.key]["attempts"] == 1
        assert rows[b.key]["status"] == "done" and rows[b.key]["attempts"] == 3
        assert rows[b.key]["error"] is None
        assert rows[a.key]["params"] == a.params
        assert store.statuses("stream-error") == {a.key: "done", b.key: "done"}


def test_spec_status_counts_done_failed_remaining_and_shared_cells(tmp_path):
    spec = parse_spec(SPEC)
    bigger = parse_spec(SPEC.replace("seeds = 2", "seeds = 3"))
    with ResultsStore(tmp_path / "r.db") as store:
        store.add_spec(spec)
        store.add_spec(bigger)
        store.add_spec(spec)  # recording a spec twice changes nothing
        store.record(spec.cells[0], outcome())
        store.record(spec.cells[1], outcome("failed", None, "E: e"))
        st = {s.spec_hash: s for s in store.spec_status()}
        assert len(st) == 2
        small, big = st[spec.hash], st[bigger.hash]
        assert (small.cells, small.done, small.failed, small.remaining) == (8, 1, 1, 6)
        assert (big.cells, big.done, big.failed, big.remaining) == (12, 1, 1, 10)
        assert small.mean_seconds == 0.25  # of the done cell only
        assert [s["name"] for s in store.specs()] == ["store-test", "store-test"]


def test_experiment_view_has_a_column_per_parameter(tmp_path):
    spec = parse_spec(SPEC)
    db = tmp_path / "r.db"
    with ResultsStore(db) as store:
        store.add_spec(spec)
        for i, c in enumerate(spec.cells):
            store.record(c, outcome(result=f'{{"v": {i}}}'))
    conn = sqlite3.connect(db)
    rows = conn.execute(
        'SELECT n, d, seed, k, status, json_extract(result, "$.v") FROM "stream-error" ORDER BY id'
    ).fetchall()
    expected = [
        (c.params["n"], c.params["d"], c.params["seed"], 2, "done", i)
        for i, c in enumerate(spec.cells)
    ]
    assert rows == expected


def test_not_an_sqlite_file_is_refused_and_untouched(tmp_path):
    db = tmp_path / "notes.db"
    db.write_text("these are my notes, not a database\n" * 20)
    before = digest(db)
    for readonly in (False, True):
        with pytest.raises(StoreError, match="not an SQLite database"):
            ResultsStore(db, readonly=readonly)
    assert digest(db) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.db"]


def test_a_damaged_database_is_refused_and_untouched(tmp_path):
    db = tmp_path / "r.db"
    spec = parse_spec(SPEC)
    with ResultsStore(db) as store:
        store.add_spec(spec)
        for c in spec.cells:
            store.record(c, outcome(result='{"pad": "' + "x" * 3000 + '"}'))
    data = bytearray(db.read_bytes())
    assert len(data) > 5 * 4096
    data[2 * 4096 : 4 * 4096] = b"\xa5" * (2 * 4096)  # scribble over pages 3 and 4
    db.write_bytes(bytes(data))
    before = digest(db)
    with pytest.raises(StoreError, match=r"damaged|not a usable"):
        ResultsStore(db)
    assert digest(db) == before


def test_another_programs_database_is_refused_and_untouched(tmp_path):
    db = tmp_path / "other.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE invoices (id INTEGER, amount REAL)")
    conn.commit()
    conn.close()
    before = digest(db)
    with pytest.raises(StoreError, match=r"another program.*invoices"):
        ResultsStore(db)
    assert digest(db) == before


def test_a_newer_schema_version_is_refused(tmp_path):
    db = tmp_path / "r.db"
    ResultsStore(db).close()
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 99")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="schema version 99"):
        ResultsStore(db)


def test_readonly_open_of_a_missing_database_creates_nothing(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        ResultsStore(tmp_path / "missing.db", readonly=True)
    assert not any(tmp_path.iterdir())


def test_an_empty_file_becomes_a_database(tmp_path):
    db = tmp_path / "r.db"
    db.touch()
    with ResultsStore(db) as store:
        assert store.count() == 0


def test_non_finite_results_are_strict_json_in_sql_and_exact_in_python(tmp_path):
    import math

    from gmmscape.sweep.store import decode_result, encode_result

    value = {"a": math.nan, "b": [1.0, -math.inf, {"c": math.inf}], "s": "NaN", "n": None}
    text, nonfinite = encode_result(value)
    assert "NaN" not in text.replace('"NaN"', "") and "Infinity" not in text
    back = decode_result(text, nonfinite)
    assert math.isnan(back["a"]) and back["b"][1] == -math.inf and back["b"][2]["c"] == math.inf
    assert back["s"] == "NaN" and back["n"] is None and back["b"][0] == 1.0
    assert encode_result({"x": 1.5}) == ('{"x": 1.5}', None)

    spec = parse_spec(SPEC)
    db = tmp_path / "r.db"
    with ResultsStore(db) as store:
        store.add_spec(spec)
        store.record(spec.cells[0], replace(outcome(result=text), nonfinite=nonfinite))
        (row,) = store.rows("stream-error")
    assert math.isnan(row["result"]["a"]) and row["result"]["b"][1] == -math.inf
    conn = sqlite3.connect(db)
    # SQLite's JSON functions read the row; the non-finite values are nulls there
    got = conn.execute(
        "SELECT json_extract(result, '$.a'), json_extract(result, '$.b[0]') FROM cells"
    ).fetchone()
    assert got == (None, 1.0)
