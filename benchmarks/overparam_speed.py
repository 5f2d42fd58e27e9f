"""Seed A speed: population gradient EM steps/s, Monte Carlo at equal time, batched restarts.

Measured (sigma = 1, truth N(0, I_d), uniform weights, eta = 1):

* ``steps_per_second``: population gradient EM (``gmmscape.dynamics.runner.run_population``
  on fixed quadrature nodes) for (n, d) in {(2, 1), (3, 2), (5, 5), (10, 50)}, one start,
  timed after a warm-up call of the same shapes (compilation excluded).
* ``monte_carlo``: gradient EM with a fresh Monte-Carlo batch each step
  (``run_stream(..., fresh=True)``), with the batch size chosen so that the run takes about
  the same wall time as the population run of the same number of steps; its error is
  ``max_i ||mu_i^MC(T) - mu_i^pop(T)||`` against the exact population trajectory, next to
  the population run's own distance to the truth at T.
* ``restarts``: 1000 random starts as one vmapped batch vs 1000 sequential runs (same
  compiled function), for (n, d) = (2, 1); the ratio of wall times.

The machine is shared with other work: ``os.getloadavg()`` is recorded. Run
``.venv/bin/python benchmarks/overparam_speed.py`` (``--quick`` for a smoke run); results
go to ``benchmarks/results/overparam_speed{,_quick}.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from functools import partial
from pathlib import Path

import jax
import numpy as np

import gmmscape as gs
from gmmscape.dynamics.runner import run_population, run_stream
from gmmscape.experiments.overparam import _node_set, random_starts, span_coordinates

RESULTS = Path(__file__).resolve().parent / "results"
CASES = ((2, 1), (3, 2), (5, 5), (10, 50))


def _setup(n, d, seed=0, scale=1.0, restarts=1):
    means0 = random_starts(n, d, restarts, scale, seed)
    coords, _, r = span_coordinates(means0)
    w = np.full(n, 1.0 / n)
    fp, info = _node_set(gs.Mixture(np.zeros((1, d))), means0[0], w, r, None, None, None)
    return means0, coords, fp, info


def _timed(fn, repeats=3):
    fn()  # warm-up: compile
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def steps_per_second(quick: bool) -> list[dict]:
    rows = []
    for n, d in CASES:
        _, coords, fp, info = _setup(n, d)
        steps = 200 if quick else (20_000 if fp.z.shape[0] < 5000 else 1000)
        sec, _ = _timed(partial(run_population, fp, coords, steps=steps, eta=1.0, record_points=8))
        rows.append(
            {"n": n, "d": d, "r": fp.r, "rule": info["rule"], "level": info["level"],
             "nodes": info["nodes"], "steps": steps, "seconds": sec, "steps_per_s": steps / sec}
        )  # fmt: skip
        print(rows[-1])
    return rows


def monte_carlo(quick: bool) -> list[dict]:
    rows = []
    for n, d in ((2, 1), (3, 2)):
        means0, coords, fp, _ = _setup(n, d)
        steps = 200 if quick else 2000
        sec, pop = _timed(
            partial(run_population, fp, coords, steps=steps, eta=1.0, record_points=8)
        )
        pop_means = np.einsum("kr,dr->kd", pop.final_means[0], np.asarray(fp.basis))
        truth = gs.Mixture(np.zeros((1, d)))
        # calibrate the batch size to the population run's wall time
        mc = partial(run_stream, truth, means0, seeds=[1], steps=steps, eta=1.0, fresh=True)
        batch = 1024
        mc_sec, _ = _timed(partial(mc, n=batch, record_points=8), repeats=1)
        batch = max(16, int(batch * sec / mc_sec))
        mc_sec, mc = _timed(partial(mc, n=batch, record_points=8), repeats=1)
        err = float(np.max(np.linalg.norm(mc.final_means[0] - pop_means, axis=1)))
        rows.append(
            {"n": n, "d": d, "steps": steps, "population_seconds": sec, "mc_seconds": mc_sec,
             "mc_batch": batch, "mc_error_vs_population": err,
             "population_distance_to_truth": float(pop.max_dist[0, -1]),
             "population_final_kl": float(pop.kl[0, -1])}
        )  # fmt: skip
        print(rows[-1])
    return rows


def restarts(quick: bool) -> dict:
    count = 100 if quick else 1000
    steps = 200
    _, coords, fp, _ = _setup(2, 1, restarts=count)
    batch_sec, batch = _timed(
        lambda: run_population(fp, coords, steps=steps, eta=1.0, record_points=8), repeats=1
    )
    run_population(fp, coords[:1], steps=steps, eta=1.0, record_points=8)
    t0 = time.perf_counter()
    finals = [
        run_population(fp, coords[b : b + 1], steps=steps, eta=1.0, record_points=8).kl[0, -1]
        for b in range(count)
    ]
    seq_sec = time.perf_counter() - t0
    agree = float(np.max(np.abs(np.array(finals) - batch.kl[:, -1])))
    row = {"restarts": count, "steps": steps, "batched_seconds": batch_sec,
           "sequential_seconds": seq_sec, "speedup": seq_sec / batch_sec,
           "max_abs_difference_final_kl": agree}  # fmt: skip
    print(row)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    t0 = time.perf_counter()
    out = {
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "jax": jax.__version__,
            "device": str(jax.devices()[0]),
            "cpu_count": os.cpu_count(),
            "loadavg_start": os.getloadavg(),
        },
        "steps_per_second": steps_per_second(args.quick),
        "monte_carlo": monte_carlo(args.quick),
        "restarts": restarts(args.quick),
    }
    out["machine"]["loadavg_end"] = os.getloadavg()
    out["seconds"] = time.perf_counter() - t0
    stem = "overparam_speed" + ("_quick" if args.quick else "")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(out, indent=2))
    lines = ["| n | d | r | rule | nodes | steps/s |", "|---|---|---|---|---|---|"]
    lines += [
        f"| {r['n']} | {r['d']} | {r['r']} | {r['rule']} | {r['nodes']} | {r['steps_per_s']:.0f} |"
        for r in out["steps_per_second"]
    ]
    lines += ["", "| n | d | steps | MC batch | MC error vs population | population distance |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    lines += [
        f"| {r['n']} | {r['d']} | {r['steps']} | {r['mc_batch']} | "
        f"{r['mc_error_vs_population']:.2e} | {r['population_distance_to_truth']:.2e} |"
        for r in out["monte_carlo"]
    ]
    rs = out["restarts"]
    lines += [
        "",
        f"{rs['restarts']} restarts: batched {rs['batched_seconds']:.2f} s, "
        f"sequential {rs['sequential_seconds']:.2f} s, speed-up {rs['speedup']:.1f}x.",
    ]
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS / stem}.json/.md in {out['seconds']:.0f} s")


if __name__ == "__main__":
    main()
