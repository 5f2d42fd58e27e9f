"""The sweep runner: failures stored, resume without duplicates, kill -9, Ctrl-C, Dask."""

import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gmmscape.cli import app
from gmmscape.experiments import registry
from gmmscape.sweep import ResultsStore, parse_spec, run_sweep

TESTS = Path(__file__).parent
TYPES = ("sweep-test-square", "sweep-test-broken-plot", "sweep-test-bad-result")
# runs the real CLI in a fresh interpreter with the test-only types registered
WRAPPER = (
    "import sys\n"
    "from gmmscape.experiments import registry\n"
    + "".join(f"registry.MODULES[{t!r}] = 'test_sweep_types'\n" for t in TYPES)
    + "from gmmscape.cli import main\n"
    "sys.argv = ['gmmscape', *sys.argv[1:]]\n"
    "main()\n"
)


@pytest.fixture(autouse=True)
def test_types(monkeypatch):
    for t in TYPES:
        monkeypatch.setitem(registry.MODULES, t, "test_sweep_types")


def square_spec(xs, seeds=2, fixed="", experiment="sweep-test-square", extra_grid=""):
    return parse_spec(
        f"""
[sweep]
name = "square"
experiment = "{experiment}"
seeds = {seeds}
[grid]
x = {list(xs)}
{extra_grid}
[fixed]
{fixed}
""",
        source="square.toml",
    )


def stored(db):
    with ResultsStore(db, readonly=True) as store:
        return {r["cell_key"]: r for e in store.experiments() for r in store.rows(e)}


def test_a_failing_cell_is_stored_as_failed_and_never_stops_the_sweep(tmp_path):
    spec = square_spec([1.0, 2.0, 3.0], extra_grid="fail = [true, false]")
    db = tmp_path / "r.db"
    with ResultsStore(db) as store:
        summary = run_sweep([spec], store)
    assert (summary.total, summary.done, summary.failed, summary.interrupted) == (12, 6, 6, False)
    rows = stored(db)
    assert len(rows) == 12
    for c in spec.cells:
        r = rows[c.key]
        if c.params["fail"]:
            assert r["status"] == "failed" and r["result"] is None
            assert r["error"] == f"ValueError: deliberate failure at x={c.params['x']}"
            assert "run_square" in r["traceback"] and "Traceback" in r["traceback"]
        else:
            assert r["status"] == "done" and r["error"] is None
            assert r["result"]["y"] == c.params["x"] ** 2 + c.params["seed"]
        assert r["version"] and r["host"] and r["started"] <= r["finished"]
        assert r["seconds"] >= 0 and r["spec_hash"] == spec.hash
    # rerunning skips everything; --retry-failed reruns only the failed cells
    with ResultsStore(db) as store:
        again = run_sweep([spec], store)
        assert (again.skipped_done, again.skipped_failed, again.to_run) == (6, 6, 0)
        retry = run_sweep([spec], store, retry_failed=True)
        assert (retry.to_run, retry.failed) == (6, 6)
    rows2 = stored(db)
    assert len(rows2) == 12
    assert all(r["attempts"] == (2 if r["status"] == "failed" else 1) for r in rows2.values())


def test_non_finite_results_round_trip_through_a_sweep(tmp_path):
    spec = square_spec([1.0], seeds=1, fixed="nonfinite = true")
    with ResultsStore(tmp_path / "r.db") as store:
        run_sweep([spec], store)
        (row,) = store.rows("sweep-test-square")
    r = row["result"]
    assert row["status"] == "done" and math.isnan(r["y"]) and r["x"] == 1.0
    assert r["tail"] == [1.0, -math.inf] and r["d"] == {"e": math.inf}
    assert row["warnings"] == ["UserWarning: deliberate warning"]  # recorded once


def test_a_result_that_is_not_json_is_a_failed_cell(tmp_path):
    spec = square_spec([1.0], seeds=1, experiment="sweep-test-bad-result")
    with ResultsStore(tmp_path / "r.db") as store:
        run_sweep([spec], store)
        (row,) = store.rows("sweep-test-bad-result")
    assert row["status"] == "failed" and "not JSON-serializable" in row["error"]


def test_worker_processes_store_the_same_rows_and_a_crashing_cell_is_isolated(tmp_path):
    xs = [0.5 * i for i in range(6)]
    spec = square_spec(xs, extra_grid="crash = [false]")
    crash = square_spec([7.0], seeds=1, fixed="crash = true")
    with ResultsStore(tmp_path / "one.db") as store:
        run_sweep([spec], store, workers=1)
    with ResultsStore(tmp_path / "two.db") as store:
        summary = run_sweep([spec, crash], store, workers=2)
    assert summary.backend == "processes (2)"
    one, two = stored(tmp_path / "one.db"), stored(tmp_path / "two.db")
    (crash_key,) = [c.key for c in crash.cells]
    assert two[crash_key]["status"] == "failed"
    assert two[crash_key]["error"].startswith("WorkerCrash: the worker process died")
    del two[crash_key]
    assert one.keys() == two.keys()
    assert all(two[k]["status"] == "done" for k in two)
    assert {k: r["result"] for k, r in one.items()} == {k: r["result"] for k, r in two.items()}
    assert len({r["worker"] for r in two.values()}) >= 2


def spec_file(tmp_path, n, sleep):
    path = tmp_path / "slow.toml"
    path.write_text(
        f"""
[sweep]
name = "slow"
experiment = "sweep-test-square"
seeds = 1
[grid]
x = {[float(i) for i in range(n)]}
[fixed]
sleep = {sleep}
"""
    )
    return path


def start_cli(args, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(TESTS))
    return subprocess.Popen(
        [sys.executable, "-c", WRAPPER, *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_for_rows(db, at_least, proc, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read().decode()
        try:
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            n = conn.execute("SELECT count(*) FROM cells").fetchone()[0]
            conn.close()
            if n >= at_least:
                return n
        except sqlite3.Error:
            pass
        time.sleep(0.05)
    raise AssertionError("the sweep stored too few rows in time")


def spawned_children(pid):
    """Process ids of the multiprocessing workers whose parent is ``pid`` (Linux)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmd = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == pid and b"spawn_main" in cmd:
            out.append(int(stat.parent.name))
    return out


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_kill_9_mid_sweep_then_rerun_stores_every_cell_exactly_once(tmp_path):
    n = 40
    path, db = spec_file(tmp_path, n, 0.1), tmp_path / "r.db"
    proc = start_cli(["sweep", "run", str(path), "--db", str(db), "--workers", "2"], tmp_path)
    wait_for_rows(db, 5, proc)
    workers = spawned_children(proc.pid)
    assert len(workers) == 2
    os.kill(proc.pid, signal.SIGKILL)  # kill -9 the sweep's process, mid-sweep
    proc.wait()
    deadline = time.monotonic() + 15  # its workers notice and exit: no orphans
    while any(Path(f"/proc/{w}").exists() for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(Path(f"/proc/{w}").exists() for w in workers)
    before = stored(db)
    assert 5 <= len(before) < n
    res = CliRunner().invoke(app, ["sweep", "run", str(path), "--db", str(db)])  # rerun
    assert res.exit_code == 0, res.output
    assert f"{len(before)} already done" in " ".join(res.output.split())
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    keys = [r[0] for r in conn.execute("SELECT cell_key FROM cells")]
    conn.close()
    spec = square_spec([float(i) for i in range(n)], seeds=1, fixed="sleep = 0.1")
    assert sorted(keys) == sorted(c.key for c in spec.cells)  # each cell exactly once
    after = stored(db)
    for key, row in before.items():  # rows stored before the kill are untouched
        assert after[key] == row
    for c in spec.cells:
        assert after[c.key]["result"]["y"] == c.params["x"] ** 2


@pytest.mark.parametrize(
    ("sig", "workers"),
    [(signal.SIGINT, "1"), pytest.param(signal.SIGTERM, "2", marks=pytest.mark.slow)],
    ids=["ctrl-c", "sigterm"],
)
def test_ctrl_c_or_sigterm_stops_cleanly_and_the_rerun_resumes(tmp_path, sig, workers):
    n = 30
    path, db = spec_file(tmp_path, n, 0.1), tmp_path / "r.db"
    args = ["sweep", "run", str(path), "--db", str(db), "--workers", workers]
    proc = start_cli(args, tmp_path)
    wait_for_rows(db, 2, proc)
    if sig == signal.SIGINT:
        os.killpg(proc.pid, sig)  # Ctrl-C in a terminal reaches the whole process group
    else:
        os.kill(proc.pid, sig)  # a batch scheduler stops the job's main process
    out = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 130, out
    flat = " ".join(out.split())
    assert "Interrupted." in flat and "Rerun the same command to resume" in flat
    done = len(stored(db))
    assert 2 <= done < n
    res = CliRunner().invoke(app, ["sweep", "run", str(path), "--db", str(db)])  # rerun
    assert res.exit_code == 0, res.output
    assert len(stored(db)) == n


def test_dask_local_cluster_stores_the_same_rows_as_the_local_run(tmp_path):
    spec = square_spec([0.25 * i for i in range(8)], extra_grid="fail = [false, true]")
    with ResultsStore(tmp_path / "local.db") as store:
        run_sweep([spec], store)
    with ResultsStore(tmp_path / "dask.db") as store:
        summary = run_sweep([spec], store, dask_local=2)
    assert summary.backend.startswith("dask (tcp://")
    local, dask = stored(tmp_path / "local.db"), stored(tmp_path / "dask.db")
    assert local.keys() == dask.keys() and len(local) == 32
    for key, row in local.items():
        assert dask[key]["status"] == row["status"]
        assert dask[key]["result"] == row["result"]
        assert dask[key]["error"] == row["error"]
    assert all(r["worker"].startswith("tcp://") for r in dask.values())


@pytest.mark.slow
def test_existing_dask_cluster_reproduces_stream_error_cells_bit_for_bit(tmp_path):
    from distributed import LocalCluster

    spec = parse_spec(
        """
[sweep]
name = "se"
experiment = "stream-error"
seeds = 2
[grid]
n = [500, 5000]
d = [1, 2]
"""
    )
    with ResultsStore(tmp_path / "local.db") as store:
        run_sweep([spec], store)
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster:
        with ResultsStore(tmp_path / "dask.db") as store:
            summary = run_sweep([spec], store, scheduler=cluster.scheduler_address)
    assert summary.done == 8 and summary.backend == f"dask ({cluster.scheduler_address})"
    local, dask = stored(tmp_path / "local.db"), stored(tmp_path / "dask.db")
    assert local.keys() == dask.keys()
    for key, row in local.items():
        assert dask[key]["result"] == row["result"]  # same floats: deterministic cells


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_ctrl_c_stops_long_running_cells_in_workers_promptly(tmp_path):
    path, db = spec_file(tmp_path, 4, 120.0), tmp_path / "r.db"  # cells of 2 minutes
    proc = start_cli(["sweep", "run", str(path), "--db", str(db), "--workers", "2"], tmp_path)
    deadline = time.monotonic() + 60
    while len(spawned_children(proc.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    workers = spawned_children(proc.pid)
    assert len(workers) == 2
    time.sleep(3)  # the workers import gmmscape and start sleeping in their cells
    t0 = time.monotonic()
    os.kill(proc.pid, signal.SIGINT)  # the sweep's process only: it must stop its workers
    out = proc.communicate(timeout=30)[0].decode()
    assert proc.returncode == 130, out
    assert time.monotonic() - t0 < 20  # not the two minutes the cells would take
    assert not any(Path(f"/proc/{w}").exists() for w in workers)
    assert stored(db) == {}  # nothing partial


@pytest.mark.slow
def test_ctrl_c_stops_a_dask_local_cluster_sweep_cleanly(tmp_path):
    path, db = spec_file(tmp_path, 40, 0.5), tmp_path / "r.db"
    args = ["sweep", "run", str(path), "--db", str(db), "--dask-local", "2"]
    proc = start_cli(args, tmp_path)
    wait_for_rows(db, 2, proc)
    t0 = time.monotonic()
    os.kill(proc.pid, signal.SIGINT)
    out = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 130, out
    assert time.monotonic() - t0 < 30
    done = stored(db)
    assert 2 <= len(done) < 40 and all(r["status"] == "done" for r in done.values())
