"""Every study and sweep command against a table of bad inputs: exit 2, one clear
message, no traceback, and no file left behind."""

import errno
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gmmscape.cli import app
from gmmscape.sweep import ResultsStore, run_sweep
from test_sweep_runner import square_spec
from test_sweep_runner import test_types as _register_test_types  # noqa: F401  (autouse)

GOOD_SPEC = '[sweep]\nname = "ok"\nexperiment = "sweep-test-square"\nseeds = 1\n[grid]\nx = [1.0]\n'
HUGE_SPEC = (
    '[sweep]\nname = "huge"\nexperiment = "stream-error"\nseeds = 100000000000\n'
    "[grid]\nn = [1000]\n"
)


def setup(d: Path) -> None:
    """The files the bad inputs point at."""
    (d / "adir").mkdir()
    (d / "afile").write_text("not a folder\n")
    (d / "good.toml").write_text(GOOD_SPEC)
    (d / "huge.toml").write_text(HUGE_SPEC)
    (d / "bad.toml").write_text("[sweep\nname = ")
    (d / "binary.toml").write_bytes(b"\xff\xfe\x00garbage")
    (d / "notsql.db").write_text("hello, I am not SQLite\n")
    (d / "empty.db").write_bytes(b"")
    conn = sqlite3.connect(d / "other.db")
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()


# (id, arguments with {d} for the folder, a fragment of the message)
CASES = [
    # sweep run
    ("run: spec missing", "sweep run {d}/nope.toml --db {d}/r.db", "cannot read spec"),
    ("run: spec is a folder", "sweep run {d}/adir --db {d}/r.db", "cannot read spec"),
    ("run: spec not TOML", "sweep run {d}/bad.toml --db {d}/r.db", "is not valid TOML"),
    ("run: spec not UTF-8", "sweep run {d}/binary.toml --db {d}/r.db", "cannot read spec"),
    ("run: 1e11 cells", "sweep run {d}/huge.toml --db {d}/r.db", "100,000,000,000 cells"),
    ("run: dry-run 1e11", "sweep run {d}/huge.toml --dry-run", "more than the limit"),
    ("run: --max-cells 0", "sweep run {d}/good.toml --max-cells 0", "--max-cells must be"),
    ("run: --workers 0", "sweep run {d}/good.toml --workers 0", "--workers must be >= 1"),
    (
        "run: two back-ends",
        "sweep run {d}/good.toml --scheduler tcp://x:1 --dask-local 2",
        "not both",
    ),
    ("run: db is a folder", "sweep run {d}/good.toml --db {d}/adir", "is not a file"),
    ("run: db under a file", "sweep run {d}/good.toml --db {d}/afile/r.db", "is a file, not a"),
    ("run: db not SQLite", "sweep run {d}/good.toml --db {d}/notsql.db", "not an SQLite"),
    ("run: db of another program", "sweep run {d}/good.toml --db {d}/other.db", "another"),
    # sweep status
    ("status: missing", "sweep status {d}/nope.db", "does not exist"),
    ("status: empty file", "sweep status {d}/empty.db", "empty file (0 bytes)"),
    ("status: a folder", "sweep status {d}/adir", "is not a file"),
    ("status: not SQLite", "sweep status {d}/notsql.db", "not an SQLite database"),
    ("status: another program", "sweep status {d}/other.db", "another program"),
    # report
    ("report: missing db", "report {d}/nope.db --out {d}/rep", "does not exist"),
    ("report: empty db", "report {d}/empty.db --out {d}/rep", "empty file"),
    ("report: --out a file", "report {d}/r0.db --out {d}/afile", "is a file"),
    ("report: --out under a file", "report {d}/r0.db --out {d}/afile/rep", "under the file"),
    # landscape studies
    ("landscape: truth not JSON", "landscape --truth [[1 --out {d}/o", "--truth"),
    ("landscape: k = 0", "landscape --k 0 --out {d}/o", "--k must be"),
    ("landscape: method", "landscape --method sgd --out {d}/o", "method must be one of"),
    ("landscape: scheme", "landscape --schemes magic --out {d}/o", "--schemes: unknown scheme"),
    ("landscape: --out a file", "landscape --out {d}/afile", "is a file"),
    ("landscape: --warn-failed", "landscape --warn-failed 2 --out {d}/o", "--warn-failed"),
    ("separation: family", "separation --family circle --out {d}/o", "family must be"),
    ("separation: ks text", "separation --ks 2,x --out {d}/o", "--ks takes comma-separated"),
    ("separation: no deltas", "separation --deltas , --out {d}/o", "--deltas is empty"),
    ("separation: max-iter", "separation --ks 2 --max-iter 0 --out {d}/o", "--max-iter must"),
    ("bifurcation: family", "bifurcation --family simplex --out {d}/o", "'line' or 'jin'"),
    ("bifurcation: grid", "bifurcation --grid 1 --out {d}/o", "--grid must be"),
    ("bifurcation: rounds", "bifurcation --max-rounds 0 --out {d}/o", "--max-rounds must"),
    ("bifurcation: deltas", "bifurcation --deltas 1,a --out {d}/o", "--deltas takes"),
    ("bifurcation: --out under a file", "bifurcation --out {d}/afile/o", "under the file"),
    ("random-init: max-iter", "random-init --ks 3 --max-iter 0 --out {d}/o", "--max-iter must"),
    ("random-init: scheme", "random-init --ks 3 --scheme magic --out {d}/o", "unknown scheme"),
    ("random-init: k = 0", "random-init --ks 0 --out {d}/o", "--ks must be"),
    # seed A
    ("overparam: eta", "overparam --eta -1 --out {d}/o", "eta"),
    ("overparam: weights", "overparam --weights 0.3,x --out {d}/o", "--weights takes"),
    ("overparam: --out a file", "overparam --out {d}/afile", "is a file"),
    ("trap: mode", "trap --mode sideways --out {d}/o", "mode"),
    ("trap: --out a file", "trap --out {d}/afile", "is a file"),
    ("overparam-samples: seeds", "overparam-samples --seeds 0 --out {d}/o", "seeds"),
]


def snapshot(d: Path) -> dict:
    return {
        str(p.relative_to(d)): (p.stat().st_size if p.is_file() else None)
        for p in sorted(d.rglob("*"))
    }


@pytest.mark.parametrize(("args", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_error_line_exit_2_and_leaves_nothing(tmp_path, args, fragment):
    setup(tmp_path)
    with ResultsStore(tmp_path / "r0.db") as s:
        run_sweep([square_spec([1.0], seeds=1)], s)
    before = snapshot(tmp_path)
    res = CliRunner().invoke(app, [a.format(d=tmp_path) for a in args.split()])
    out = " ".join(res.output.split())
    assert res.exit_code == 2, res.output
    assert "error:" in out.lower(), res.output
    assert fragment.replace(" ", "") in out.replace(" ", ""), res.output
    assert "Traceback" not in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    assert snapshot(tmp_path) == before  # no file created, none changed


def test_a_full_disk_while_writing_is_an_error_and_leaves_no_partial_file(tmp_path, monkeypatch):
    db = tmp_path / "r.db"
    with ResultsStore(db) as s:
        run_sweep([square_spec([1.0, 2.0], seeds=1)], s)
    real = Path.write_bytes

    def full(self, data):
        real(self, data[: len(data) // 2])  # half written, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full)
    for args in (
        ["report", str(db), "--out", str(tmp_path / "rep")],
        ["random-init", "--ks", "3", "--starts", "4", "--out", str(tmp_path / "ri")],
    ):
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 2, res.output
        assert "No space left on device" in " ".join(res.output.split())
        assert "Traceback" not in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.db", "r.db-shm", "r.db-wal"] or (
        sorted(p.name for p in tmp_path.iterdir()) == ["r.db"]
    )


def test_an_unexpected_error_is_one_line_unless_debug(tmp_path, monkeypatch, capsys):
    import numpy as np

    import gmmscape.estimator._io as io
    from gmmscape.cli import main

    def boom(path):
        raise RuntimeError("boom")

    monkeypatch.setattr(io, "read_table", boom)
    np.save(tmp_path / "x.npy", np.zeros((4, 2)))
    args = ["gmmscape", "fit", str(tmp_path / "x.npy"), "-k", "2", "--out", str(tmp_path / "m")]
    monkeypatch.setattr("sys.argv", args)
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 2
    out = capsys.readouterr().out
    assert "unexpected RuntimeError: boom" in " ".join(out.split())
    assert "Traceback" not in out
    monkeypatch.setattr("sys.argv", [args[0], "--debug", *args[1:]])
    with pytest.raises(RuntimeError, match="boom"):
        main()
