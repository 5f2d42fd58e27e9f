"""Online EM (``partial_fit``) over one pass of a 1e7-point stream against batch EM.

The stream: a fixed 4-component, 5-feature full-covariance mixture, drawn in chunks of
``--chunk`` rows, chunk ``i`` from ``numpy.random.default_rng([seed, i])``, so the
stream is the same every time it is read and never held whole by the online pass.

* online: one ``GaussianMixture(4).partial_fit(chunk)`` per chunk (default step
  ``(t + 2)^-0.6``), timed; every ``--every`` chunks its per-sample log-likelihood is
  measured on a held-out set of 2e5 points (another seed; not timed).
* batch: the whole stream regenerated in memory, ``GaussianMixture(4, tol=1e-7)`` fitted
  by batch EM (same initialization seed), its trace kept (one pass per iteration).

Both final models are scored on the full stream (the same data); the goal is an online
per-sample log-likelihood within 1e-3 of batch EM's. The curve (gap to batch EM's final
log-likelihood against passes over the data and against seconds) is drawn to
``benchmarks/results/online_em.{png,svg}``: the online points are held-out gaps, the
batch points its training trace (the two measure the same gap up to the held-out set's
sampling noise, which is common to both models and about 1e-4 in the difference).

Run: ``.venv/bin/python benchmarks/online_em.py`` (1e7 points; about 10 minutes on 2
shared cores) or ``--n 1000000`` for a quick look. Results:
``benchmarks/results/online_em.{json,md,png,svg}``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from gmmscape import GaussianMixture
from gmmscape._files import write_json

RESULTS = Path(__file__).resolve().parent / "results"
K, D = 4, 5


def truth():
    rng = np.random.default_rng(12345)
    means = rng.normal(size=(K, D)) * 3.0
    a = rng.normal(size=(K, D, D)) * 0.5
    cov = a @ np.swapaxes(a, 1, 2) + 0.3 * np.eye(D)
    return np.array([0.4, 0.3, 0.2, 0.1]), means, cov


WEIGHTS, MEANS, COV = truth()
ROOTS = np.linalg.cholesky(COV)


def chunk(seed, i, n):
    """Chunk ``i`` of the stream ``seed`` (n rows)."""
    rng = np.random.default_rng([seed, i])
    z = rng.choice(K, size=n, p=WEIGHTS)
    return MEANS[z] + np.einsum("nab,nb->na", ROOTS[z], rng.standard_normal((n, D)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--chunk", type=int, default=10_000)
    ap.add_argument("--every", type=int, default=25)
    args = ap.parse_args()
    n_chunks = args.n // args.chunk
    held = np.vstack([chunk(2, i, args.chunk) for i in range(200_000 // args.chunk)])

    online = GaussianMixture(K, random_state=0)
    curve = []
    t_on = 0.0
    for i in range(n_chunks):
        x = chunk(1, i, args.chunk)
        t = time.perf_counter()
        online.partial_fit(x)
        t_on += time.perf_counter() - t
        if (i + 1) % args.every == 0 or i < 10 or i + 1 == n_chunks:
            curve.append(dict(passes=(i + 1) / n_chunks, seconds=t_on, held_out=online.score(held)))
    print(f"online pass: {t_on:.1f} s", flush=True)

    X = np.vstack([chunk(1, i, args.chunk) for i in range(n_chunks)])
    batch = GaussianMixture(K, random_state=0, tol=1e-7, max_iter=1000)
    t = time.perf_counter()
    batch.fit(X)
    t_batch = time.perf_counter() - t
    ll_batch, ll_online = batch.score(X), online.score(X)
    held_batch = batch.score(held)
    per_iter = t_batch / max(batch.n_iter_, 1)
    out = {
        "settings": vars(args),
        "loadavg": os.getloadavg(),
        "online_seconds": t_on,
        "batch_seconds": t_batch,
        "batch_iterations": batch.n_iter_,
        "loglik_batch": ll_batch,
        "loglik_online": ll_online,
        "gap": ll_batch - ll_online,
        "held_out_batch": held_batch,
        "online_curve": curve,
        "batch_trace": [
            dict(passes=j + 1, seconds=(j + 1) * per_iter, loglik=v)
            for j, v in enumerate(batch.lower_bounds_)
        ],
    }
    RESULTS.mkdir(exist_ok=True)
    write_json(out, RESULTS / "online_em.json")
    md = [
        f"# Online EM, one pass over {args.n:.0e} points (chunks of {args.chunk:,})",
        "",
        "| | per-sample log-likelihood (full stream) | passes | seconds |",
        "|---|---|---|---|",
        f"| batch EM | {ll_batch:.6f} | {batch.n_iter_} | {t_batch:.1f} |",
        f"| online EM | {ll_online:.6f} | 1 | {t_on:.1f} |",
        "",
        f"Gap batch - online: {ll_batch - ll_online:.2e} (goal < 1e-3). Time ratio batch / "
        f"online: {t_batch / t_on:.1f}x. Load average {os.getloadavg()[0]:.1f}.",
    ]
    (RESULTS / "online_em.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    gap_on = np.maximum([held_batch - c["held_out"] for c in curve], 1e-7)
    gap_b = np.maximum([ll_batch - r["loglik"] for r in out["batch_trace"]], 1e-7)
    for ax, key in zip(axes, ("passes", "seconds"), strict=True):
        ax.loglog([c[key] for c in curve], gap_on, "o-", ms=3, label="online EM (held out)")
        ax.loglog([r[key] for r in out["batch_trace"]], gap_b, "s-", ms=3, label="batch EM (trace)")
        ax.axhline(1e-3, color="grey", ls=":", label="1e-3")
        ax.set_xlabel("passes over the data" if key == "passes" else "seconds")
        ax.set_ylabel("gap to batch EM's final log-likelihood")
        ax.legend()
    fig.suptitle(f"Stepwise EM vs batch EM, {args.n:.0e} points, k = {K}, d = {D}, full")
    fig.tight_layout()
    for ext in ("png", "svg"):
        fig.savefig(RESULTS / f"online_em.{ext}", dpi=120)


if __name__ == "__main__":
    main()
