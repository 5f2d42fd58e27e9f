"""Speed of the landscape atlas: start to certified atlas, time per start.

Cases (issue 4, item 9):

- ``1d-k3``: k = k* = 3 in 1-D (Jin et al.'s centers -1.5, 1.5, 15), 10^4 starts;
- ``d10-k5``: k = k* = 5 in d = 10 (random centers with minimum separation 6 sigma),
  10^3 starts (frame = the span of the true centers, r = 4).

Each case is run twice in the same process: the first call includes JAX compilation, the
second is the warm timing. The peer for the ratio is the same pipeline with a plain
Python loop over starts instead of the vmapped batch (EM steps of one start at a time on
the same nodes), measured on a subset of starts and scaled. The machine is shared:
``os.getloadavg()`` is recorded.

Run ``.venv/bin/python benchmarks/landscape_speed.py`` (full) or with ``--quick``
(1/20 of the starts, results named ``*_quick``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp

import gmmscape as gs
from gmmscape.landscape import explore
from gmmscape.landscape._problem import make_problem
from gmmscape.landscape.starts import make_starts
from gmmscape.landscape.studies import truth_family

OUT = Path(__file__).parent / "results"


def _loop_em_seconds(truth, k, n, max_iter, seed):
    """Peer: one start at a time (jitted step, Python loop), same nodes and stop rule."""
    prob = make_problem(truth, k)
    fp = prob.batch
    step = jax.jit(fp.em_means)
    starts, _ = make_starts(truth, k, n, ("gaussian", "uniform", "data", "kmeans++"), seed)
    s_r = prob.to_frame(starts)
    step(jnp.asarray(s_r[0])).block_until_ready()
    t0 = time.perf_counter()
    for s in s_r:
        m = jnp.asarray(s)
        for _ in range(max_iter):
            m2 = step(m)
            if float(jnp.max(jnp.abs(m2 - m))) <= 1e-8:
                break
            m = m2
    return time.perf_counter() - t0


def run_case(name, truth, k, n_starts, seed, loop_n):
    cold = explore(truth, k, n_starts=n_starts, seed=seed)
    print(f"{name}: cold run {cold.seconds['total']:.1f} s", flush=True)
    warm = explore(truth, k, n_starts=n_starts, seed=seed + 1)
    print(f"{name}: warm run {warm.seconds}", flush=True)
    loop = _loop_em_seconds(truth, k, loop_n, 50, seed)
    print(f"{name}: loop peer {loop:.1f} s for {loop_n} starts", flush=True)
    batch_per_start = warm.seconds["batch"] / n_starts
    return {
        "case": name,
        "k": k,
        "k_star": truth.k,
        "d": truth.d,
        "n_starts": n_starts,
        "cold_seconds": cold.seconds,
        "warm_seconds": warm.seconds,
        "per_start_ms": 1e3 * warm.seconds["per_start"],
        "batch_per_start_ms": 1e3 * batch_per_start,
        "loop_em_per_start_ms": 1e3 * loop / loop_n,
        "vmap_speedup_batch_phase": (loop / loop_n) / batch_per_start,
        "n_points": len(warm.points),
        "n_minima": len(warm.minima),
        "n_spurious": len(warm.spurious_minima),
        "n_failed": warm.n_failed,
        "max_grad_norm": max(p.grad_norm for p in warm.points),
        "kinds": sorted({p.kind for p in warm.points}),
        "quadrature": warm.quadrature,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    scale = 20 if args.quick else 1
    load0 = os.getloadavg()
    cases = []
    jin = gs.Mixture([[-1.5], [1.5], [15.0]])
    cases.append(run_case("1d-k3", jin, 3, 10_000 // scale, 0, 200 // scale))
    rnd = truth_family("random", 5, 10, 6.0, seed=0)
    cases.append(run_case("d10-k5", rnd, 5, 1_000 // scale, 0, 50 // scale))
    res = {
        "cases": cases,
        "loadavg_start": load0,
        "loadavg_end": os.getloadavg(),
        "machine": {
            "python": platform.python_version(),
            "jax": jax.__version__,
            "backend": jax.default_backend(),
            "cpus": os.cpu_count(),
        },
        "note": "shared machine: other jobs ran during the measurement (see loadavg).",
    }
    stem = "landscape_speed" + ("_quick" if args.quick else "")
    OUT.mkdir(exist_ok=True)
    tmp = OUT / f"{stem}.json.tmp"
    tmp.write_text(json.dumps(res, indent=2, default=float))
    tmp.replace(OUT / f"{stem}.json")
    lines = [
        "| case | starts | per start (warm) | batch per start | loop EM per start | "
        "vmap speed-up | points | minima | spurious | failed | max grad |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in cases:
        lines.append(
            f"| {c['case']} | {c['n_starts']:,} | {c['per_start_ms']:.2f} ms | "
            f"{c['batch_per_start_ms']:.2f} ms | {c['loop_em_per_start_ms']:.2f} ms | "
            f"{c['vmap_speedup_batch_phase']:.1f}x | {c['n_points']} | {c['n_minima']} | "
            f"{c['n_spurious']} | {c['n_failed']} | {c['max_grad_norm']:.1e} |"
        )
    lines.append("")
    lines.append(f"Load average at start {load0}, at end {res['loadavg_end']}.")
    (OUT / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
