"""Time per EM iteration of ``gmmscape.GaussianMixture`` against scikit-learn.

For every cell (N, d, k, covariance type, dtype) both estimators get the same data and the
same start (``weights_init``, ``means_init`` drawn from the data, ``precisions_init`` = I)
and run a fixed number of iterations (``tol = 0``). The time per iteration is the
difference of two fits with ``max_iter = 1`` and ``max_iter = 1 + r``, divided by r
(scikit-learn cannot run ``max_iter = 0`` with ``precisions_init``), so initialization,
data conversion and (for gmmscape, after a warm-up fit) JAX compilation are not counted.
Both are measured in the same run, back to back; the ratio is scikit-learn's time over
gmmscape's. r is about 4 s of scikit-learn work (1 to 10 iterations); gmmscape times about
2 s of its own work (r to 10 r iterations, estimated from its warm-up fits), and its
log-likelihood is compared after scikit-learn's 1 + r iterations; cheap cells repeat the
interleaved pair of fits 3 times and keep the minimum of each (``--headline`` always
does), since the shared machine's load inflates single timings.

Also measured:

* the final mean log-likelihood of both after 1 + r iterations from the same start, and its
  relative difference (goal at float64: at most 1e-6);
* the machine's matrix-multiply rate (``jnp.dot`` of two 2048 x 2048 matrices, best of 5)
  and the fraction of it that gmmscape's statistics pass (E-step and sufficient
  statistics, the kernel of one iteration) reaches, counting its dominant flops:
  ``4 N k d^2`` for full covariances, ``8 N k d`` for diagonal ones.

gmmx and pomegranate are timed on the headline cell by ``estimator_peers.py``.

Cells run in order of cost, the headline cell (N = 1e6, d = 16, k = 16, full and diag,
float64) first, and the results are saved after every cell. A cell whose estimated
scikit-learn iteration time exceeds ``--cap`` seconds is skipped and listed as such.
The machine is shared with other jobs: ``os.getloadavg()`` is recorded with every cell.

``--one-thread`` re-runs the script pinned to one core (``os.sched_setaffinity``, as
``taskset -c``), with OMP/OPENBLAS/MKL_NUM_THREADS=1, XLA's one-thread flags and gmmscape's
``n_threads=1``. The pinning is what keeps XLA on one thread: jax 0.10's Eigen pool ignores
the variables and ``--xla_cpu_multi_thread_eigen=false`` (one-thread results saved before
the pinning was added were taken without it: their CPU seconds include XLA's second
thread). Every cell records process CPU seconds per iteration next to the wall time;
``--headline`` also measures this machine's arithmetic floor (``arithmetic_floor``:
chunk-sized GEMM rate and read bandwidth, with NumPy) and gives gmmscape's time per
iteration as a multiple of it.

Run: ``.venv/bin/python benchmarks/estimator_speed.py`` (full grid, about 20 min) or
``--quick`` (small sizes, seconds). Results: ``benchmarks/results/estimator_speed.{json,md}``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import gmmscape  # noqa: F401  (enables float64 in JAX)
from gmmscape._files import write_json

RESULTS = Path(__file__).resolve().parent / "results"
HEADLINE = (1_000_000, 16, 16)
ONE_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
ONE_THREAD_XLA = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


@dataclass
class SpeedResults:
    """Everything the benchmark measured (JSON-serializable)."""

    machine: dict
    matmul_gflops: dict
    cells: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    floor: dict = field(default_factory=dict)
    seconds: float = 0.0


def matmul_rate(dtype, n=2048, reps=5) -> float:
    """Best-of-``reps`` GFLOP/s of ``jnp.dot`` for two ``n x n`` matrices."""
    import jax.numpy as jnp

    a = jnp.asarray(np.random.default_rng(0).standard_normal((n, n)), dtype)
    f = __import__("jax").jit(jnp.dot)
    f(a, a).block_until_ready()
    best = np.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        f(a, a).block_until_ready()
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def arithmetic_floor(n, d, k, reps=5) -> dict:
    """This machine's floor for one iteration of the headline cell, measured with NumPy.

    * GEMM rate: float64 ``(m, d) @ (d, k d)`` (the E-step's product with every precision
      factor) and ``(k d, m) @ (m, d)`` (the second moments) for one chunk of ``m`` rows
      (the rows of a fit's chunk, ``chunk_layout``: the operands stay in cache), best of
      ``20 reps`` each; their combined rate (total flops over total time) prices the
      ``4 n k d^2`` flops of a full iteration. The same products over all ``n`` rows at once
      (``*_whole``) are memory-bound (a 2 GB product) and only recorded.
    * Memory bandwidth: ``X.sum()`` of the ``(n, d)`` float64 data (read) and
      ``np.copyto`` into a second array (read + write), best of ``reps``; the read rate
      prices the three passes over X (``3 n d 8`` bytes) of a diag iteration.

    BLAS uses the threads the process allows (OPENBLAS_NUM_THREADS etc.).
    """
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, d))
    p = rng.standard_normal((d, k * d))
    y = np.empty((n, k * d))
    r = rng.standard_normal((n, k * d))

    def best(f, clock, times=reps):
        f()
        out = np.inf
        for _ in range(times):
            t0 = clock()
            f()
            out = min(out, clock() - t0)
        return out

    from gmmscape.estimator._gaussian_mixture import chunk_layout

    m = chunk_layout(n, k, d)[0]
    xm, ym, rm = x[:m], y[:m], r[:m]
    fl = 2 * n * d * k * d
    flm = 2 * m * d * k * d
    x2 = np.empty_like(x)
    res = {"chunk_rows": m}
    # wall time (the floor of a wall-time iteration) and process CPU time (all threads:
    # with one thread, the floor of a CPU-second iteration, less inflated by the load)
    for suffix, clock in (("", time.perf_counter), ("_cpu", time.process_time)):
        t_ew = best(lambda: np.matmul(x, p, out=y), clock)
        t_mw = best(lambda: r.T @ x, clock)
        t_e = best(lambda: np.matmul(xm, p, out=ym), clock, 20 * reps)
        t_m = best(lambda: rm.T @ xm, clock, 20 * reps)
        t_sum = best(x.sum, clock)
        t_copy = best(lambda: np.copyto(x2, x), clock)
        gemm = 2 * flm / (t_e + t_m) / 1e9
        read = n * d * 8 / t_sum / 1e9
        res.update(
            {
                f"gemm_estep_gflops{suffix}": flm / t_e / 1e9,
                f"gemm_moments_gflops{suffix}": flm / t_m / 1e9,
                f"gemm_estep_whole_gflops{suffix}": fl / t_ew / 1e9,
                f"gemm_moments_whole_gflops{suffix}": fl / t_mw / 1e9,
                f"gemm_gflops{suffix}": gemm,
                f"read_gb_s{suffix}": read,
                f"copy_gb_s{suffix}": 2 * n * d * 8 / t_copy / 1e9,
                f"full_floor{suffix}_s": 4 * n * k * d * d / (gemm * 1e9),
                f"diag_floor{suffix}_s": 3 * n * d * 8 / (read * 1e9),
                # diag is compute-bound at k = 16: its 8 N k d flops at the GEMM rate
                f"diag_flops_floor{suffix}_s": 8 * n * k * d / (gemm * 1e9),
            }
        )
    return res


def make_data(n, d, k, dtype, seed=0):
    """Points from a random mixture and a start shared by both estimators."""
    rng = np.random.default_rng(seed)
    centers = 3.0 * rng.standard_normal((k, d))
    X = rng.standard_normal((n, d)) + centers[rng.integers(0, k, n)]
    start = {
        "weights_init": np.full(k, 1.0 / k),
        "means_init": X[rng.choice(n, k, replace=False)],
    }
    return X.astype(dtype), start


def fit_times(cls, X, kw, iters):
    """Wall seconds, process CPU seconds (all threads) and the fitted estimator."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c0, t0 = time.process_time(), time.perf_counter()
        gm = cls(max_iter=iters, **kw).fit(X)
        return time.perf_counter() - t0, time.process_time() - c0, gm


def fit_time(cls, X, kw, iters):
    t, _, gm = fit_times(cls, X, kw, iters)
    return t, gm


def per_iteration(cls, X, kw, r, warm=False, reps=1, target_s=None, r_max=None):
    """Seconds per EM iteration, the last fit, and the r used.

    With ``warm``, a 1- and a (1 + r)-iteration fit run first (compilation); with
    ``target_s`` their difference also picks r as about ``target_s`` seconds of work,
    between the given r and ``r_max``, so the timed difference is not lost in the noise of
    the fit's fixed costs (data conversion, initialization).
    """
    if warm:
        w1 = fit_time(cls, X, kw, 1)[0]
        w2 = fit_time(cls, X, kw, 1 + r)[0]
        if target_s is not None:
            est = max(w2 - w1, 1e-4) / r
            r_new = int(np.clip(round(target_s / est), r, max(r, r_max or r)))
            if r_new != r:  # another iteration count may compile another trace length
                r = r_new
                fit_time(cls, X, kw, 1 + r)
    t0s, t1s, c0s, c1s, gm = [], [], [], [], None
    for _ in range(reps):  # interleaved, so both see the same load; minimum of each
        t0, c0, _ = fit_times(cls, X, kw, 1)
        t1, c1, gm = fit_times(cls, X, kw, 1 + r)
        t0s.append(t0)
        t1s.append(t1)
        c0s.append(c0)
        c1s.append(c1)
    diff = min(t1s) - min(t0s)
    cdiff = min(c1s) - min(c0s)
    per_cpu = cdiff / r if cdiff > 0 else float("nan")
    return (diff / r if diff > 0 else float("nan")), gm, r, per_cpu


def stats_pass_rate(gm, X, ct, reps=3):
    """Seconds of one statistics pass (E-step + sufficient statistics) of gmmscape.

    The pass a fit runs: the same chunks, summed by the same number of host threads.
    """
    import jax
    import jax.numpy as jnp

    from gmmscape.core.sources import Chunks
    from gmmscape.estimator import _kernels as K
    from gmmscape.estimator._gaussian_mixture import _FitData

    n, d = X.shape
    k = gm.n_components
    data = Chunks.from_arrays(X, np.ones(n, X.dtype), k=k, n_threads=gm.n_threads)
    fd = _FitData(ct, "em", X.dtype, np.zeros(d, X.dtype), n, d, k, 0.0, data)
    p = gm._fitted_params(X.dtype)
    batch = K.Params(*(jnp.asarray(a)[None] for a in p))
    jax.block_until_ready(fd.stats(batch))
    best = np.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(fd.stats(batch))
        best = min(best, time.perf_counter() - t0)
    return best


def cost(n, d, k, ct):
    return n * k * d * d if ct == "full" else 4 * n * k * d


def run_cell(n, d, k, ct, dtype, peak, sk_rate, reps=None, threads=None):
    from sklearn.mixture import GaussianMixture as SkGM

    from gmmscape.core.chunks import chunk_layout
    from gmmscape.core.sources import stat_threads
    from gmmscape.estimator import GaussianMixture

    X, start = make_data(n, d, k, dtype)
    prec = np.tile(np.eye(d), (k, 1, 1)) if ct == "full" else np.ones((k, d))
    kw = dict(
        n_components=k,
        covariance_type=ct,
        tol=0.0,
        init_params="random_from_data",
        precisions_init=prec,
        random_state=0,
        **start,
    )
    est_sk = cost(n, d, k, ct) / sk_rate[ct] if sk_rate.get(ct) else None
    r = 3 if est_sk is None else int(np.clip(round(4.0 / max(est_sk, 1e-3)), 1, 10))
    if reps is None:
        reps = 3 if est_sk is not None and est_sk * r < 1.0 else 1
    load0 = os.getloadavg()
    ours = dict(kw, n_threads=threads)
    # gmmscape's iterations are cheap: time about 2 s of them (up to 10 r, at least r)
    t_ours, g_ours, r_ours, c_ours = per_iteration(
        GaussianMixture, X, ours, r, warm=True, reps=reps, target_s=2.0, r_max=max(10 * r, 10)
    )
    t_sk, g_sk, _, c_sk = per_iteration(SkGM, X, kw, r, reps=reps)
    if r_ours != r:  # the log-likelihood comparison needs the same number of iterations
        _, g_ours = fit_time(GaussianMixture, X, ours, 1 + r)
    t_stats = stats_pass_rate(g_ours, X, ct)
    flops = 4 * n * k * d * d if ct == "full" else 8 * n * k * d
    lb_o, lb_s = float(g_ours.lower_bound_), float(g_sk.lower_bound_)
    return {
        "n": n,
        "d": d,
        "k": k,
        "covariance_type": ct,
        "dtype": np.dtype(dtype).name,
        "iterations": r,
        "iterations_gmmscape": r_ours,
        "repetitions": reps,
        "gmmscape_threads": stat_threads(threads, chunk_layout(n, k, d)[1]),
        "gmmscape_s_per_iter": t_ours,
        "sklearn_s_per_iter": t_sk,
        "speedup": t_sk / t_ours,
        "gmmscape_cpu_s_per_iter": c_ours,
        "sklearn_cpu_s_per_iter": c_sk,
        "speedup_cpu": c_sk / c_ours,
        "stats_pass_s": t_stats,
        "stats_pass_gflops": flops / t_stats / 1e9,
        "fraction_of_matmul_peak": flops / t_stats / 1e9 / peak[np.dtype(dtype).name],
        "loglik_gmmscape": lb_o,
        "loglik_sklearn": lb_s,
        "loglik_rel_diff": abs(lb_o - lb_s) / abs(lb_s),
        "loadavg_before": list(load0),
        "loadavg_after": list(os.getloadavg()),
    }


def to_markdown(res: SpeedResults) -> str:
    lines = [
        "# gmmscape.GaussianMixture vs scikit-learn: time per EM iteration",
        "",
        f"Machine: {res.machine}. Matrix-multiply rate (jnp.dot 2048^2): "
        + ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in res.matmul_gflops.items()),
        "",
        "| N | d | k | cov | dtype | sklearn s/iter | gmmscape s/iter | gmmscape threads | "
        "speed-up | stats pass GFLOP/s | of matmul peak | loglik rel. diff | load (1 min) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in res.cells:
        lines.append(
            f"| {c['n']:.0e} | {c['d']} | {c['k']} | {c['covariance_type']} | {c['dtype']} | "
            f"{c['sklearn_s_per_iter']:.4f} | {c['gmmscape_s_per_iter']:.4f} | "
            f"{c.get('gmmscape_threads', '1 (earlier code)')} | **{c['speedup']:.1f}x** | "
            f"{c['stats_pass_gflops']:.1f} | "
            f"{100 * c['fraction_of_matmul_peak']:.0f}% | {c['loglik_rel_diff']:.1e} | "
            f"{c['loadavg_before'][0]:.1f} |"
        )
    if res.skipped:
        lines += ["", "Skipped (estimated scikit-learn time per iteration above the cap):", ""]
        lines += [
            f"- N={s['n']:.0e}, d={s['d']}, k={s['k']}, {s['covariance_type']}, {s['dtype']}: "
            f"~{s['estimated_sklearn_s_per_iter']:.0f} s per iteration"
            for s in res.skipped
        ]
    if res.floor:
        f = res.floor
        lines += [
            "",
            f"Arithmetic floor (NumPy, same process): GEMM {f['gemm_gflops']:.1f} GFLOP/s "
            f"on chunks of {f['chunk_rows']} rows ((m,d)@(d,kd) {f['gemm_estep_gflops']:.1f}, "
            f"(kd,m)@(m,d) "
            f"{f['gemm_moments_gflops']:.1f}); read {f['read_gb_s']:.1f} GB/s, copy "
            f"{f['copy_gb_s']:.1f} GB/s; floor per iteration: full 4Nkd^2 flops = "
            f"{f['full_floor_s']:.4f} s, diag 3 passes over X = {f['diag_floor_s']:.4f} s. "
            f"Timed in process CPU seconds: GEMM {f['gemm_gflops_cpu']:.1f} GFLOP/s, read "
            f"{f['read_gb_s_cpu']:.1f} GB/s; floor full {f['full_floor_cpu_s']:.4f} CPU-s, "
            f"diag {f['diag_floor_cpu_s']:.4f} CPU-s (diag's 8Nkd flops at the GEMM rate: "
            f"{f.get('diag_flops_floor_cpu_s', float('nan')):.4f} CPU-s).",
            "",
            "| cov | sklearn s/iter | gmmscape s/iter | speed-up (wall) | sklearn CPU-s/iter | "
            "gmmscape CPU-s/iter | speed-up (CPU) | floor s | gmmscape / floor (wall) | "
            "floor CPU-s | gmmscape / floor (CPU) | sklearn / floor (CPU) | load |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for c in res.cells:
            lines.append(
                f"| {c['covariance_type']} | {c['sklearn_s_per_iter']:.4f} | "
                f"{c['gmmscape_s_per_iter']:.4f} | **{c['speedup']:.1f}x** | "
                f"{c['sklearn_cpu_s_per_iter']:.4f} | {c['gmmscape_cpu_s_per_iter']:.4f} | "
                f"{c['speedup_cpu']:.1f}x | {c['floor_s']:.4f} | "
                f"**{c['gmmscape_over_floor']:.1f}x** | {c['floor_cpu_s']:.4f} | "
                f"**{c['gmmscape_cpu_over_floor_cpu']:.1f}x** | "
                f"{c.get('sklearn_cpu_over_floor_cpu', float('nan')):.1f}x | "
                f"{c['loadavg_before'][0]:.1f} |"
            )
        if len(res.cells) > 2:  # --headline R, R > 1: the median of the repeats
            lines += ["", "Median of the repeats:", ""]
            for ct in ("full", "diag"):
                cs = [c for c in res.cells if c["covariance_type"] == ct]
                med = {
                    q: float(np.median([c[q] for c in cs]))
                    for q in (
                        "speedup",
                        "speedup_cpu",
                        "gmmscape_over_floor",
                        "gmmscape_cpu_over_floor_cpu",
                        "sklearn_cpu_over_floor_cpu",
                    )
                }
                lines.append(
                    f"- {ct} ({len(cs)} repeats): speed-up {med['speedup']:.1f}x wall, "
                    f"{med['speedup_cpu']:.1f}x CPU; gmmscape {med['gmmscape_over_floor']:.1f}x "
                    f"the floor (wall), {med['gmmscape_cpu_over_floor_cpu']:.1f}x (CPU); "
                    f"scikit-learn {med['sklearn_cpu_over_floor_cpu']:.1f}x (CPU)"
                )
    lines += ["", f"Total run time {res.seconds:.0f} s."]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, seconds")
    ap.add_argument("--cap", type=float, default=25.0, help="skip cells above this many s/iter")
    ap.add_argument(
        "--headline",
        type=int,
        default=0,
        metavar="R",
        help="only the headline cells (N=1e6, d=16, k=16, full and diag, float64), "
        "measured R times each; writes estimator_speed_headline.{json,md}",
    )
    ap.add_argument("--resume", action="store_true", help="keep the cells of an earlier run's JSON")
    ap.add_argument(
        "--refresh",
        action="store_true",
        help="with --resume: measure again the cells of an earlier code version (no thread "
        "count recorded) or with a NaN timing, unless scikit-learn took over --cap s/iter",
    )
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="gmmscape's n_threads (default: all usable cores); the results get a suffix",
    )
    ap.add_argument(
        "--one-thread",
        action="store_true",
        help="re-run on one core with OMP/OPENBLAS/MKL_NUM_THREADS=1, XLA on one thread and "
        "gmmscape's n_threads=1 (single-threaded CPU seconds); results get a _1thread suffix",
    )
    args = ap.parse_args()
    if args.one_thread:
        env = dict(os.environ, **dict.fromkeys(ONE_THREAD_VARS, "1"), XLA_FLAGS=ONE_THREAD_XLA)
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # kept across the exec
        if os.environ.get("XLA_FLAGS") != ONE_THREAD_XLA:
            os.execve(sys.executable, [sys.executable, *sys.argv], env)
        args.threads = 1
    import jax
    import sklearn

    t_start = time.perf_counter()
    name = "estimator_speed_quick" if args.quick else "estimator_speed"
    if args.one_thread:
        name += "_1thread"
    elif args.threads is not None:
        name += f"_threads{args.threads}"
    peak = {"float64": matmul_rate(np.float64), "float32": matmul_rate(np.float32)}
    res = SpeedResults(
        machine={
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "jax": jax.__version__,
            "sklearn": sklearn.__version__,
            "numpy": np.__version__,
        },
        matmul_gflops=peak,
    )
    if args.headline:
        name = name.replace("estimator_speed", "estimator_speed_headline")
        res.floor = arithmetic_floor(*HEADLINE)
        res.machine["load_at_floor"] = list(os.getloadavg())
        for _ in range(args.headline):
            for ct in ("full", "diag"):
                cell = run_cell(*HEADLINE, ct, np.float64, peak, {}, reps=3, threads=args.threads)
                cell["floor_s"] = res.floor[f"{ct}_floor_s"]
                cell["gmmscape_over_floor"] = cell["gmmscape_s_per_iter"] / cell["floor_s"]
                cell["floor_cpu_s"] = res.floor[f"{ct}_floor_cpu_s"]
                cell["gmmscape_cpu_over_floor_cpu"] = (
                    cell["gmmscape_cpu_s_per_iter"] / cell["floor_cpu_s"]
                )
                # how far scikit-learn itself is above the floor: a speed-up of 10x needs
                # it at least 10x above twice the floor (or fewer flops than the floor's)
                cell["sklearn_over_floor"] = cell["sklearn_s_per_iter"] / cell["floor_s"]
                cell["sklearn_cpu_over_floor_cpu"] = (
                    cell["sklearn_cpu_s_per_iter"] / cell["floor_cpu_s"]
                )
                res.cells.append(cell)
                res.seconds = time.perf_counter() - t_start
                write_json(res, RESULTS / f"{name}.json")
                (RESULTS / f"{name}.md").write_text(to_markdown(res))
                print(
                    f"{ct}: speed-up {cell['speedup']:.1f}x (CPU {cell['speedup_cpu']:.1f}x), "
                    f"{cell['gmmscape_over_floor']:.1f}x the floor, loglik rel diff "
                    f"{cell['loglik_rel_diff']:.1e}, load {cell['loadavg_before'][0]:.1f}",
                    flush=True,
                )
        return
    if args.quick:
        grid = [(20_000, 8, 4)]
    else:
        grid = [(n, d, k) for n in (100_000, 1_000_000) for d in (2, 16, 64) for k in (4, 16, 64)]
    cells = [
        (n, d, k, ct, dt)
        for (n, d, k) in grid
        for ct in ("full", "diag")
        for dt in (np.float64, np.float32)
    ]
    head = [c for c in cells if c[:3] == HEADLINE and c[4] is np.float64]
    rest = sorted((c for c in cells if c not in head), key=lambda c: cost(*c[:4]))
    sk_rate: dict = {}
    done = set()
    if args.resume and (RESULTS / f"{name}.json").exists():
        import json

        old = json.loads((RESULTS / f"{name}.json").read_text())
        res.cells = [
            c
            for c in old["cells"]
            if not (
                args.refresh
                and ("gmmscape_threads" not in c or not np.isfinite(c["speedup"]))
                and not c["sklearn_s_per_iter"] > args.cap
            )
        ]
        for c in res.cells:
            done.add((c["n"], c["d"], c["k"], c["covariance_type"], c["dtype"]))
            cst = cost(c["n"], c["d"], c["k"], c["covariance_type"])
            ok = np.isfinite(c["sklearn_s_per_iter"])
            if ok and (cst >= 1e8 or c["covariance_type"] not in sk_rate):
                sk_rate[c["covariance_type"]] = cst / c["sklearn_s_per_iter"]
    for n, d, k, ct, dt in head + rest:
        if (n, d, k, ct, np.dtype(dt).name) in done:
            continue
        if ct in sk_rate:
            est = cost(n, d, k, ct) / sk_rate[ct]
            if est > args.cap:
                res.skipped.append(
                    dict(
                        n=n,
                        d=d,
                        k=k,
                        covariance_type=ct,
                        dtype=np.dtype(dt).name,
                        estimated_sklearn_s_per_iter=est,
                    )
                )
                continue
        cell = run_cell(n, d, k, ct, dt, peak, sk_rate, threads=args.threads)
        # scikit-learn's throughput at the largest cell so far predicts the next ones
        if np.isfinite(cell["sklearn_s_per_iter"]) and (
            cost(n, d, k, ct) >= 1e8 or ct not in sk_rate
        ):
            sk_rate[ct] = cost(n, d, k, ct) / cell["sklearn_s_per_iter"]
        res.cells.append(cell)
        res.seconds = time.perf_counter() - t_start
        write_json(res, RESULTS / f"{name}.json")
        (RESULTS / f"{name}.md").write_text(to_markdown(res))
        print(
            f"N={n:.0e} d={d} k={k} {ct} {np.dtype(dt).name}: sklearn "
            f"{cell['sklearn_s_per_iter']:.4f}s gmmscape {cell['gmmscape_s_per_iter']:.4f}s "
            f"speed-up {cell['speedup']:.1f}x, loglik rel diff {cell['loglik_rel_diff']:.1e}",
            flush=True,
        )
    res.seconds = time.perf_counter() - t_start
    write_json(res, RESULTS / f"{name}.json")
    (RESULTS / f"{name}.md").write_text(to_markdown(res))


if __name__ == "__main__":
    main()
