"""Sweep throughput: cells per second and overhead per cell, in-process vs processes vs Dask.

Runs the same sweep through every back-end of ``gmmscape sweep run`` into fresh SQLite
files and measures, per back-end,

- ``startup_s``: from the call to the first stored row (worker processes start, import
  gmmscape and compile JAX code);
- ``steady_cells_per_s``: stored rows per second after the first quarter of the rows (at
  least 8; every worker has compiled by then);
- for cells that do nothing (``bench-noop``), the steady-state time per cell, i.e. the
  runner's own cost: dispatch, result transfer and the atomic SQLite insert;
- for cells that sleep 0.1 s without using the CPU (``bench-sleep``), the speed-up of 4
  workers over one process: how well the runner keeps workers busy, which the shared
  2-core machine cannot show with CPU-bound cells;
- for real ``stream-error`` cells (n = 10^4, d = 1), the throughput of each back-end;

and, separately, the cost of one atomic insert (``ResultsStore.record``) alone. Ratios are
against the in-process runner in the same run. The machine is shared: the load average is
recorded next to the numbers.

Usage::

    .venv/bin/python benchmarks/sweep_throughput.py          # results/sweep_throughput.*
    .venv/bin/python benchmarks/sweep_throughput.py --quick  # results/sweep_throughput_quick.*
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from gmmscape.experiments.registry import ExperimentType

HERE = Path(__file__).resolve().parent
#: Seconds each ``bench-sleep`` cell sleeps (no CPU: measures dispatch parallelism).
SLEEP_S = 0.1


class NoopParams(BaseModel):
    """A cell that does nothing but sleep ``sleep`` seconds: its index and seed."""

    model_config = ConfigDict(extra="forbid")
    i: int
    seed: int
    sleep: float = 0.0


def _noop(p: NoopParams) -> dict:
    time.sleep(p.sleep)
    return {"i": p.i}


SWEEP_EXPERIMENTS = (ExperimentType("bench-noop", NoopParams, _noop, None, "does nothing"),)


def _spec(kind: str, n_cells: int):
    from gmmscape.sweep import parse_spec

    if kind.startswith("bench-"):
        grid = f"i = {list(range(n_cells))}"
        fixed = f"sleep = {SLEEP_S}" if kind == "bench-sleep" else ""
        kind = "bench-noop"
    else:
        # distinct cells of one shape: every cell after a worker's first reuses its compile
        grid = f"perturbation = {[round(0.5 + 0.01 * i, 4) for i in range(n_cells)]}"
        fixed = "n = 10000\nd = 1\nk = 2"
    return parse_spec(
        f'[sweep]\nname = "{kind}"\nexperiment = "{kind}"\nseeds = 1\n'
        f"[grid]\n{grid}\n[fixed]\n{fixed}\n"
    )


def _measure(kind: str, n_cells: int, backend: dict, warm: int) -> dict:
    from gmmscape.sweep import ResultsStore, run_sweep

    spec = _spec(kind, n_cells)
    stamps: list[float] = []
    with tempfile.TemporaryDirectory() as tmp, ResultsStore(Path(tmp) / "r.db") as store:
        t0 = time.perf_counter()
        summary = run_sweep(
            [spec], store, on_result=lambda c, o: stamps.append(time.perf_counter()), **backend
        )
        total = time.perf_counter() - t0
        assert summary.done == n_cells, summary
        cell_s = [r["seconds"] for r in store.rows(spec.experiment)]
    steady = stamps[warm:]
    rate = (len(steady) - 1) / (steady[-1] - steady[0])
    return {
        "cells": n_cells,
        "total_s": total,
        "startup_s": stamps[0] - t0,
        "steady_cells_per_s": rate,
        "steady_ms_per_cell": 1e3 / rate,
        "median_cell_compute_ms": 1e3 * sorted(cell_s)[len(cell_s) // 2],
        "backend": summary.backend,
    }


def _insert_cost(n: int) -> float:
    from gmmscape.sweep import ResultsStore
    from gmmscape.sweep.store import Outcome

    spec = _spec("bench-noop", n)
    out = Outcome("done", '{"i": 0}', None, None, 0.0, "x", "h", "w", "t", "t")
    with tempfile.TemporaryDirectory() as tmp, ResultsStore(Path(tmp) / "r.db") as store:
        t0 = time.perf_counter()
        for c in spec.cells:
            store.record(c, out)
        return (time.perf_counter() - t0) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few cells (about a minute)")
    args = parser.parse_args()
    from gmmscape.experiments import registry

    sys.path.insert(0, str(HERE))
    registry.MODULES["bench-noop"] = "sweep_throughput"
    sizes = {
        "bench-noop": 60 if args.quick else 400,
        "bench-sleep": 24 if args.quick else 80,
        "stream-error": 16 if args.quick else 80,
    }
    warm = 8
    two = {"in-process": {"workers": 1}, "processes-2": {"workers": 2}, "dask-local-2": {}}
    two["dask-local-2"] = {"dask_local": 2}
    four = {"in-process": {"workers": 1}, "processes-4": {"workers": 4}}
    four["dask-local-4"] = {"dask_local": 4}
    cases = {"bench-noop": two, "bench-sleep": four, "stream-error": two}
    load_before = os.getloadavg()
    results: dict = {"insert_ms": 1e3 * _insert_cost(200 if args.quick else 2000), "cases": {}}
    for kind, n in sizes.items():
        for name, backend in cases[kind].items():
            print(f"{kind:13s} {name:13s} {n} cells ...", flush=True)
            r = _measure(kind, n, backend, max(warm, n // 4))
            results["cases"][f"{kind}/{name}"] = r
            print(
                f"  startup {r['startup_s']:.1f} s, {r['steady_cells_per_s']:.1f} cells/s "
                f"({r['steady_ms_per_cell']:.2f} ms/cell) steady",
                flush=True,
            )
    for kind in sizes:
        base = results["cases"][f"{kind}/in-process"]["steady_cells_per_s"]
        for name in cases[kind]:
            case = results["cases"][f"{kind}/{name}"]
            case["steady_rate_vs_in_process"] = case["steady_cells_per_s"] / base
    results["meta"] = {
        "quick": args.quick,
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "warm_rows_excluded": "max(8, cells // 4)",
        "note": "shared machine: other jobs ran at the same time (see loadavg)",
    }
    suffix = "_quick" if args.quick else ""
    out = HERE / "results" / f"sweep_throughput{suffix}"
    out.parent.mkdir(exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2))
    tmp.replace(out.with_suffix(".json"))
    lines = [
        "| cells | back-end | cells | startup (s) | steady cells/s | ms/cell | vs in-process |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, r in results["cases"].items():
        kind, name = key.split("/")
        lines.append(
            f"| {kind} | {name} | {r['cells']} | {r['startup_s']:.1f} | "
            f"{r['steady_cells_per_s']:.1f} | {r['steady_ms_per_cell']:.2f} | "
            f"{r['steady_rate_vs_in_process']:.2f}x |"
        )
    lines.append("")
    lines.append(
        f"One atomic SQLite insert (WAL, synchronous=FULL): {results['insert_ms']:.3f} ms."
    )
    lines.append(
        f"Load average before/after: {load_before[0]:.2f} / "
        f"{results['meta']['loadavg_after'][0]:.2f}"
        f" on {os.cpu_count()} CPUs (shared machine)."
    )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
