"""Where one EM iteration of ``gmmscape.GaussianMixture`` goes at N = 1e6, d = k = 16.

Single-threaded (the script re-runs itself with OMP/OPENBLAS/MKL_NUM_THREADS=1 and XLA on
one thread). The data and the chunk layout are those of a fit (``chunk_layout``), and every
piece of ``estimator/_kernels.py`` is jitted alone and timed on one chunk (best of
``--reps`` calls after a warm-up, times the number of chunks):

* ``log_prob``: ``weighted_log_prob`` (the E-step's log-densities, (m, k));
* ``lse_resp``: the log-sum-exp and responsibilities of ``chunk_stats`` from a given
  ``(m, k)`` log-density (one exp per entry);
* ``moments``: ``moments`` from given responsibilities;
* ``chunk_stats``: the three together, as a fit runs them;
* ``scan_stats``: the whole pass, one compiled loop over every chunk (what one thread of a
  fit runs), timed once over all the data;
* ``m_step``: the M-step from summed statistics.

Each piece is compared with its own floor on this machine, measured in the same process:
the GEMM rate of NumPy for the piece's matmul shapes, ``jnp.exp`` of an (m, k) array for
the exps, and a read of X (m d 8 bytes) at the measured bandwidth. ``--chunks`` also times
``scan_stats`` with other chunk sizes.

Run: ``.venv/bin/python benchmarks/estimator_profile.py``. Results:
``benchmarks/results/estimator_profile.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
ONE_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
ONE_THREAD_XLA = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def timeit(f, *args, reps=20):
    """Best process CPU seconds of ``f(*args)`` (blocked) over ``reps`` calls after a warm-up.

    CPU seconds of the single-threaded process, and the minimum: on the shared machine
    wall time and medians measure the other jobs' load more than the code."""
    import jax

    jax.block_until_ready(f(*args))
    ts = []
    for _ in range(reps):
        t0 = time.process_time()
        jax.block_until_ready(f(*args))
        ts.append(time.process_time() - t0)
    return min(ts)


def np_rate(a, b, reps=10):
    """GFLOP/s of NumPy's ``a @ b`` (best of ``reps``)."""
    a @ b
    ts = []
    for _ in range(reps):
        t0 = time.process_time()
        a @ b
        ts.append(time.process_time() - t0)
    return 2 * a.shape[0] * a.shape[1] * b.shape[1] / min(ts) / 1e9


def profile(ct, X, rows, n_chunks, reps):
    import jax
    import jax.numpy as jnp

    from gmmscape.core import families
    from gmmscape.core.stats import family_log_prob, family_stats, scan_family_stats
    from gmmscape.core.updates import m_step
    from gmmscape.estimator import _kernels as K
    from gmmscape.estimator._gaussian_mixture import to_chunks

    n, d = X.shape
    k = 16
    xc, wc = to_chunks(X, np.ones(n), rows, n_chunks)
    xc, wc = jnp.asarray(xc), jnp.asarray(wc)
    rng = np.random.default_rng(1)
    means = jnp.asarray(X[rng.choice(n, k, replace=False)])
    if ct == "full":
        pc = jnp.tile(jnp.eye(d), (k, 1, 1))
    else:
        pc = jnp.ones((k, d))
    p = K.Params(jnp.full(k, 1.0 / k), means, 1.0 / pc, pc)
    x, w = xc[0], wc[0]

    logp = jax.jit(lambda x, p: family_log_prob(x, p, ct))

    def _lse(lw, w):
        top = jnp.max(lw, axis=1, keepdims=True)
        top = jnp.where(jnp.isfinite(top), top, 0.0)
        e = jnp.exp(lw - top)
        tot = jnp.sum(e, axis=1, keepdims=True)
        ll = jnp.sum(jnp.where(w > 0, w * (top + jnp.log(tot))[:, 0], 0.0))
        return w[:, None] * (e / tot), ll

    lse = jax.jit(_lse)
    mom = jax.jit(lambda x, wr: families.get(ct).moments(x, wr))
    cst = jax.jit(lambda x, w, p: family_stats(x, w, p, ct))
    scan = jax.jit(lambda xc, wc, p: scan_family_stats(xc, wc, p, ct))
    exp_only = jax.jit(jnp.exp)
    lw = logp(x, p)
    wr, _ = lse(lw, w)
    st = scan(xc, wc, p)
    masks = K.Masks(jnp.ones(k), jnp.ones(k), jnp.ones(k))
    floor = jnp.full(d, 1e-6)
    mstep = jax.jit(lambda st, p: m_step(st, p, masks, 1e-6, floor, 1.0, ct, "em"))

    t = {
        "log_prob": timeit(logp, x, p, reps=reps) * n_chunks,
        "lse_resp": timeit(lse, lw, w, reps=reps) * n_chunks,
        "moments": timeit(mom, x, wr, reps=reps) * n_chunks,
        "chunk_stats": timeit(cst, x, w, p, reps=reps) * n_chunks,
        "scan_stats": timeit(scan, xc, wc, p, reps=max(3, reps // 5)),
        "m_step": timeit(mstep, st, p, reps=reps),
        "exp_only": timeit(exp_only, lw, reps=reps) * n_chunks,
    }
    # floors: NumPy GEMM for each piece's matmuls at the chunk's shapes
    xn = np.asarray(x)
    if ct == "full":
        pf = rng.standard_normal((d, k * d))
        r_e = np_rate(xn, pf)
        r_m = np_rate(rng.standard_normal((k * d, rows)), xn)
        fl = 2 * n * d * k * d
        floors = {"log_prob": fl / (r_e * 1e9), "moments": fl / (r_m * 1e9)}
    else:
        b = rng.standard_normal((d, k))
        r_e = np_rate(xn, b)
        r_m = np_rate(rng.standard_normal((k, rows)), xn)
        fl = 2 * n * d * k
        floors = {"log_prob": 2 * fl / (r_e * 1e9), "moments": 2 * fl / (r_m * 1e9)}
    floors["lse_resp"] = t["exp_only"]
    floors["chunk_stats"] = sum(floors[q] for q in ("log_prob", "lse_resp", "moments"))
    floors["scan_stats"] = floors["chunk_stats"]
    return t, floors, {"gemm_estep_gflops": r_e, "gemm_moments_gflops": r_m}


def chunk_sweep(ct, X, sizes, reps):
    import jax
    import jax.numpy as jnp

    from gmmscape.core.stats import scan_family_stats
    from gmmscape.estimator import _kernels as K
    from gmmscape.estimator._gaussian_mixture import to_chunks

    n, d = X.shape
    k = 16
    rng = np.random.default_rng(1)
    means = jnp.asarray(X[rng.choice(n, k, replace=False)])
    pc = jnp.tile(jnp.eye(d), (k, 1, 1)) if ct == "full" else jnp.ones((k, d))
    p = K.Params(jnp.full(k, 1.0 / k), means, 1.0 / pc, pc)
    scan = jax.jit(lambda xc, wc, p: scan_family_stats(xc, wc, p, ct))
    out = {}
    for m in sizes:
        nc = -(-n // m)
        xc, wc = (jnp.asarray(a) for a in to_chunks(X, np.ones(n), m, nc))
        out[m] = timeit(scan, xc, wc, p, reps=reps)
        del xc, wc
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--chunks", default="1024,4096,16384,65536", help="scan_stats chunk sizes")
    args = ap.parse_args()
    if os.environ.get("XLA_FLAGS") != ONE_THREAD_XLA:
        env = dict(os.environ, **dict.fromkeys(ONE_THREAD_VARS, "1"), XLA_FLAGS=ONE_THREAD_XLA)
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    import gmmscape  # noqa: F401  (float64)
    from gmmscape.estimator._gaussian_mixture import chunk_layout

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from estimator_speed import HEADLINE, arithmetic_floor, make_data

    n, d, k = HEADLINE
    X, _ = make_data(n, d, k, np.float64)
    rows, n_chunks = chunk_layout(n, k, d)
    res = {"rows": rows, "n_chunks": n_chunks, "load_before": list(os.getloadavg())}
    res["floor"] = arithmetic_floor(n, d, k)
    sizes = [int(s) for s in args.chunks.split(",") if s]
    for ct in ("full", "diag"):
        t, floors, rates = profile(ct, X, rows, n_chunks, args.reps)
        res[ct] = {"seconds": t, "floor_s": floors, **rates}
        if sizes:
            res[ct]["scan_stats_by_chunk"] = chunk_sweep(ct, X, sizes, max(3, args.reps // 5))
    res["load_after"] = list(os.getloadavg())
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "estimator_profile.json").write_text(json.dumps(res, indent=2) + "\n")
    f = res["floor"]
    lines = [
        "# Profile of one statistics pass, N = 1e6, d = k = 16, float64, one thread",
        "",
        f"Chunk layout of a fit: {n_chunks} chunks of {rows} rows. Load "
        f"{res['load_before'][0]:.1f} -> {res['load_after'][0]:.1f}. Whole-data floors: "
        f"full {f['full_floor_cpu_s']:.4f} CPU-s (GEMM {f['gemm_gflops_cpu']:.1f} GFLOP/s), "
        f"diag {f['diag_floor_cpu_s']:.4f} CPU-s (read {f['read_gb_s_cpu']:.1f} GB/s). "
        "All times: process CPU seconds, best of the repeats.",
        "",
        "| cov | piece | CPU-s per pass (all chunks) | own floor CPU-s | x floor |",
        "|---|---|---|---|---|",
    ]
    for ct in ("full", "diag"):
        r = res[ct]
        for q, s in r["seconds"].items():
            fl = r["floor_s"].get(q)
            extra = f"{fl:.4f} | {s / fl:.1f}x" if fl else "- | -"
            lines.append(f"| {ct} | {q} | {s:.4f} | {extra} |")
    for ct in ("full", "diag"):
        if "scan_stats_by_chunk" in res[ct]:
            by = ", ".join(f"{m}: {s:.4f} s" for m, s in res[ct]["scan_stats_by_chunk"].items())
            lines.append(f"\n{ct} scan_stats by chunk rows: {by}")
    (RESULTS / "estimator_profile.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
