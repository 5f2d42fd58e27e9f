"""Peak memory and throughput of ``gs.stream(truth, n=10**8, seed=0).expect(model)``.

Each measurement runs in a fresh Python process: it imports gmmscape, builds the truth
(d = 2, k* = 2) and the model (k = 3), makes a warm-up call that compiles everything the
measured call needs, records the resident-set high-water mark (``ru_maxrss``) as the
baseline, makes the measured call, and reports the new high-water mark. The increment
(peak minus baseline) is the memory the call itself needed; the absolute peak includes
Python, NumPy, SciPy and the JAX runtime.

Measured:

* ``stream``: ``gs.stream(truth, n=10**8, seed=0).expect(model)``, default chunk size;
  goal: peak increment under 500 MB. Also its wall time and points per second.
* ``naive``: the in-memory way, ``X = truth.sample(10**7, seed=1)`` then
  ``gs.sample(X, truth=truth).expect(model)``, for contrast (10x fewer points).
* reproducibility: a second fresh process with the same seed and chunk size must give a
  bit-identical NLL; a different chunk size or seed gives a different sample, whose NLL
  must agree with the first within its standard errors. The exact population NLL is
  shown for reference.

Run ``.venv/bin/python benchmarks/stream_memory.py`` (about 2 minutes on 2 cores; add
``--quick`` for n = 10^7, about 30 s). Results go to
``benchmarks/results/stream_memory.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
TRUTH = [[-2.0, 0.0], [2.0, 0.0]]
MODEL = [[-1.5, 0.5], [0.2, -0.3], [2.5, 0.4]]
GOAL_MB = 500.0
MB = 2**20


def _maxrss() -> int:
    import resource

    # Linux reports kilobytes
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _rss() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return -1


def child(mode: str, n: int, seed: int, chunk: int | None) -> dict:
    """One measurement, in this (fresh) process."""
    t_import = time.perf_counter()
    import numpy as np

    import gmmscape as gs

    truth = gs.Mixture(means=TRUTH)
    model = gs.Mixture(means=MODEL)
    after_import = _maxrss()
    t_import = time.perf_counter() - t_import
    kw = {} if chunk is None else {"chunk_size": chunk}
    if mode == "stream":
        # n is a run-time argument of the compiled loop: a small n compiles the same code
        t0 = time.perf_counter()
        gs.stream(truth, n=1000, seed=seed, **kw).expect(model)
        warm = time.perf_counter() - t0
        baseline, rss_before = _maxrss(), _rss()
        src = gs.stream(truth, n=n, seed=seed, **kw)
        t0 = time.perf_counter()
        e = src.expect(model)
        seconds = time.perf_counter() - t0
        out = {"chunk_size": src.chunk_size}
    elif mode == "naive":
        # warm-up on a sample whose chunks have the shapes of the real one
        t0 = time.perf_counter()
        gs.sample(truth.sample(2**16 + 1, seed=seed), truth=truth).expect(model)
        warm = time.perf_counter() - t0
        baseline, rss_before = _maxrss(), _rss()
        t0 = time.perf_counter()
        x = truth.sample(n, seed=seed)  # compiles draw for this n: part of the naive cost
        t1 = time.perf_counter()
        e = gs.sample(x, truth=truth).expect(model)
        seconds = time.perf_counter() - t0
        out = {
            "array_mb": x.nbytes / MB,
            "sample_seconds": t1 - t0,
            "expect_seconds": time.perf_counter() - t1,
        }
    elif mode == "population":
        t0 = time.perf_counter()
        e = gs.population(truth).expect(model)
        return {"mode": mode, "nll": e.nll, "kl": e.kl, "seconds": time.perf_counter() - t0}
    else:
        raise ValueError(mode)
    peak = _maxrss()
    return {
        "mode": mode,
        "n": n,
        "seed": seed,
        **out,
        "seconds": seconds,
        "points_per_second": n / seconds,
        "warmup_seconds": warm,
        "import_seconds": t_import,
        "maxrss_after_import_mb": after_import / MB,
        "baseline_mb": baseline / MB,
        "rss_before_mb": rss_before / MB,
        "peak_mb": peak / MB,
        "increment_mb": (peak - baseline) / MB,
        "rss_after_mb": _rss() / MB,
        "nll": e.nll,
        "nll_hex": float(e.nll).hex(),
        "se_nll": float(e.se["nll"]),
        "kl": e.kl,
        "se_kl": float(e.se["kl"]),
        "grad": np.asarray(e.grad).tolist(),
    }


def spawn(mode: str, n: int, seed: int = 0, chunk: int | None = None) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--n", str(n), "--seed", str(seed)]
    if chunk is not None:
        cmd += ["--chunk", str(chunk)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"child {mode} failed:\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="n = 10^7 instead of 10^8")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--chunk", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.n, args.seed, args.chunk)))
        return
    t_start = time.perf_counter()
    n_stream = 10**7 if args.quick else 10**8
    n_naive = 10**6 if args.quick else 10**7
    pop = spawn("population", 1)
    print(f"population NLL {pop['nll']:.12f}", flush=True)
    runs = {}
    for label, kw in [
        ("stream", {"n": n_stream}),
        ("stream_repeat", {"n": n_stream}),
        ("stream_chunk_2^14", {"n": n_stream, "chunk": 2**14}),
        ("stream_seed_1", {"n": n_stream, "seed": 1}),
        ("naive", {"n": n_naive, "seed": 1}),
    ]:
        mode = "naive" if label == "naive" else "stream"
        runs[label] = spawn(mode, **kw)
        r = runs[label]
        print(
            f"{label:18s} n={r['n']:.0e}  {r['seconds']:6.1f} s  {r['points_per_second']:.3g} pts/s"
            f"  peak {r['peak_mb']:7.1f} MB  baseline {r['baseline_mb']:6.1f} MB"
            f"  increment {r['increment_mb']:7.1f} MB  nll {r['nll']:.12f} (se {r['se_nll']:.1e})",
            flush=True,
        )
    s = runs["stream"]
    identical = s["nll_hex"] == runs["stream_repeat"]["nll_hex"] and (
        s["grad"] == runs["stream_repeat"]["grad"]
    )

    def z(a, b):
        return abs(a["nll"] - b["nll"]) / (a["se_nll"] ** 2 + b["se_nll"] ** 2) ** 0.5

    summary = {
        "goal_increment_mb": GOAL_MB,
        "stream_increment_mb": s["increment_mb"],
        "stream_peak_mb": s["peak_mb"],
        "goal_met": s["increment_mb"] < GOAL_MB,
        "stream_points_per_second": s["points_per_second"],
        "naive_increment_mb": runs["naive"]["increment_mb"],
        "naive_points": runs["naive"]["n"],
        "reproducible_same_seed_and_chunk": identical,
        "z_chunk_2^14_vs_default": z(s, runs["stream_chunk_2^14"]),
        "z_seed_1_vs_seed_0": z(s, runs["stream_seed_1"]),
        "z_stream_vs_population": abs(s["nll"] - pop["nll"]) / s["se_nll"],
        "population_nll": pop["nll"],
    }
    total = time.perf_counter() - t_start
    machine = {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(terse=True),
        "python": platform.python_version(),
    }
    print(json.dumps(summary, indent=1))
    print(f"total {total:.0f} s")
    RESULTS.mkdir(exist_ok=True)
    name = "stream_memory_quick.json" if args.quick else "stream_memory.json"
    (RESULTS / name).write_text(
        json.dumps(
            {
                "quick": args.quick,
                "truth_means": TRUTH,
                "model_means": MODEL,
                "machine": machine,
                "summary": summary,
                "runs": runs,
                "population": pop,
                "total_seconds": total,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
