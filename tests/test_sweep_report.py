"""`gmmscape sweep run|status` and `gmmscape report` through the CLI, on test-only types."""

import csv
import hashlib
import html
import json
import re

import pytest
from typer.testing import CliRunner

from gmmscape.cli import app
from gmmscape.experiments import registry

TYPES = ("sweep-test-square", "sweep-test-broken-plot")


@pytest.fixture(autouse=True)
def test_types(monkeypatch):
    for t in TYPES:
        monkeypatch.setitem(registry.MODULES, t, "test_sweep_types")


def write_spec(tmp_path, name="sq", experiment="sweep-test-square", xs=(1.0, 2.0, 3.0), fail=""):
    path = tmp_path / f"{name}.toml"
    path.write_text(
        f"""
[sweep]
name = "{name}"
experiment = "{experiment}"
seeds = 2
[grid]
x = {list(xs)}
{fail}
"""
    )
    return path


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def flat(text):
    return " ".join(text.split())


def test_run_status_report_end_to_end(tmp_path):
    db = tmp_path / "r.db"
    sq = write_spec(tmp_path, fail="fail = [false, true]")
    bp = write_spec(tmp_path, "bp", "sweep-test-broken-plot", xs=(5.0,))
    res = invoke("sweep", "run", sq, bp, "--db", db)
    assert res.exit_code == 1, res.output  # some cells failed
    out = flat(res.output)
    assert "14 cells: 0 already done" in out and "8 done, 6 failed in this run" in out
    assert "deliberate failure at x=1.0" in out and "--retry-failed" in out
    res = invoke("sweep", "run", sq, bp, "--db", db)
    assert res.exit_code == 0 and "8 already done, 6 failed before" in flat(res.output)
    res = invoke("sweep", "status", db)
    assert res.exit_code == 0
    rows = {ln.split()[0]: ln.split()[1:] for ln in res.output.splitlines() if ln.strip()}
    assert rows["sq"] == ["sweep-test-square", "12", "6", "6", "0", "0"]  # corrupt, remaining
    assert rows["bp"] == ["sweep-test-broken-plot", "2", "2", "0", "0", "0"]
    # the most frequent errors: each failing x fails for both seeds
    assert "2 failed sweep-test-square: ValueError: deliberate failure at x=3.0" in res.output

    out_dir = tmp_path / "report"
    res = invoke("report", db, "--out", out_dir)
    assert res.exit_code == 0, res.output
    page = (out_dir / "report.html").read_text()
    # self-contained: every image is embedded
    assert page.count("src='data:image/png;base64,") == 1
    assert not re.search(r"src=['\"](?!data:)", page)
    assert html.escape(sq.read_text(), quote=True) in page  # the spec text
    assert "this plot is broken" in page  # a broken plot is a note, not a crash
    assert "deliberate failure at x=2.0" in page
    for ext in ("png", "svg"):
        assert (out_dir / "sweep-test-square" / f"y_vs_x.{ext}").stat().st_size > 1000
    with open(out_dir / "sweep-test-square.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 12
    for r in rows:
        if r["status"] == "done":
            assert float(r["result.y"]) == float(r["x"]) ** 2 + int(r["seed"])
            assert json.loads(r["result_json"])["y"] == float(r["result.y"])
        else:
            assert r["error"].startswith("ValueError: deliberate failure")
    manifest = json.loads((out_dir / "manifest.json").read_text())
    keys = manifest["experiments"]["sweep-test-square"]["cell_keys"]
    assert sorted(keys) == sorted(r["cell_key"] for r in rows if r["status"] == "done")
    assert manifest["experiments"]["sweep-test-broken-plot"]["figures"] == {}


def test_report_without_the_experiment_type_still_writes_tables(tmp_path, monkeypatch):
    db = tmp_path / "r.db"
    assert invoke("sweep", "run", write_spec(tmp_path), "--db", db).exit_code == 0
    monkeypatch.delitem(registry.MODULES, "sweep-test-square")
    res = invoke("report", db, "--out", tmp_path / "rep")
    assert res.exit_code == 0
    assert "not registered" in flat(res.output)
    assert len((tmp_path / "rep" / "sweep-test-square.csv").read_text().splitlines()) == 7


def test_a_bad_spec_is_an_error_before_anything_is_written(tmp_path):
    db = tmp_path / "r.db"
    good = write_spec(tmp_path)
    bad = write_spec(tmp_path, "bad", xs=())
    res = invoke("sweep", "run", good, bad, "--db", db)
    assert res.exit_code == 2
    assert "grid.x is an empty list" in flat(res.output) and "bad.toml" in flat(res.output)
    assert not db.exists()


def test_a_corrupt_database_is_an_error_and_left_untouched(tmp_path):
    db = tmp_path / "r.db"
    db.write_bytes(b"\x00garbage" * 100)
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    for args in (
        ("sweep", "run", write_spec(tmp_path), "--db", db),
        ("sweep", "status", db),
        ("report", db, "--out", tmp_path / "rep"),
    ):
        res = invoke(*args)
        assert res.exit_code == 2 and "not an SQLite database" in flat(res.output)
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.db", "sq.toml"]


def test_dry_run_counts_and_writes_nothing(tmp_path):
    db = tmp_path / "r.db"
    res = invoke("sweep", "run", write_spec(tmp_path), "--db", db, "--dry-run")
    assert res.exit_code == 0 and "6 cells (2 seeds)" in res.output
    assert not db.exists()


def test_conflicting_backends_are_rejected(tmp_path):
    res = invoke(
        "sweep", "run", write_spec(tmp_path), "--scheduler", "tcp://x:1", "--dask-local", "2"
    )
    assert res.exit_code == 2 and "not both" in res.output


def test_report_lists_warnings_and_restores_non_finite_values(tmp_path):
    db = tmp_path / "r.db"
    path = write_spec(tmp_path, xs=(1.0,), fail="[fixed]\nnonfinite = true")
    assert invoke("sweep", "run", path, "--db", db).exit_code == 0
    assert invoke("report", db, "--out", tmp_path / "rep").exit_code == 0
    page = (tmp_path / "rep" / "report.html").read_text()
    assert "2 rows raised warnings" in page and "UserWarning: deliberate warning" in page
    with open(tmp_path / "rep" / "sweep-test-square.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [json.loads(r["warnings"]) for r in rows] == [["UserWarning: deliberate warning"]] * 2
    assert all(r["result.y"] == "nan" for r in rows)
