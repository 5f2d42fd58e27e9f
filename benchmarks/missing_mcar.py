"""MCAR holes in a known mixture: missing-data EM against complete-case and mean imputation.

A known 3-component, 4-feature full-covariance mixture (the truth of
tests/test_missing.py's slow test), ``N = 1e5`` points per seed; entries are removed
completely at random at rates 10% and 30% (a row that would lose every entry keeps its
first). Three fits, each ``n_init=2``, ``tol=1e-6``, the same ``random_state``:

* ``em``: ``GaussianMixture(missing="em")`` on the table with holes (exact EM);
* ``complete_case``: the same estimator on the rows without a hole;
* ``mean_impute``: the same estimator on the table with each hole filled by its column's
  observed mean.

Errors against the truth, components matched by their means: the largest mean error in
units of the true standard deviation, and the largest relative Frobenius error of a
covariance. Also the fit's wall time. Reported per rate: the mean over seeds and, for
``em``, the Monte Carlo scale ``1 / sqrt(n pi_min (1 - rate))``.

Run: ``.venv/bin/python benchmarks/missing_mcar.py`` (5 seeds, a few minutes on 2 cores)
or ``--seeds 2``. Results: ``benchmarks/results/missing_mcar.{json,md}``.
"""

from __future__ import annotations

import argparse
import os
import time
from itertools import permutations
from pathlib import Path

import numpy as np

from gmmscape import GaussianMixture
from gmmscape._files import write_json

RESULTS = Path(__file__).resolve().parent / "results"
D = 4
WEIGHTS = np.array([0.5, 0.3, 0.2])
MEANS = np.array([[0, 0, 0, 0], [3, 3, 0, 0], [0, 3, 3, -2.0]])
COV = np.stack([np.eye(D) + 0.4 * (np.ones((D, D)) - np.eye(D)) * s for s in (1, -0.5, 0.5)])


def draw(rng, n):
    z = rng.choice(3, size=n, p=WEIGHTS)
    roots = np.linalg.cholesky(COV)
    return MEANS[z] + np.einsum("nab,nb->na", roots[z], rng.standard_normal((n, D)))


def holes(rng, X, rate):
    X = X.copy()
    miss = rng.uniform(size=X.shape) < rate
    miss[miss.all(axis=1), 0] = False
    X[miss] = np.nan
    return X


def errors(gm):
    best = min(permutations(range(3)), key=lambda p: np.sum((gm.means_[list(p)] - MEANS) ** 2))
    p = list(best)
    sd = np.sqrt(np.diagonal(COV, axis1=1, axis2=2))
    mean_err = float(np.max(np.abs(gm.means_[p] - MEANS) / sd))
    rel = np.linalg.norm(gm.covariances_[p] - COV, axis=(1, 2)) / np.linalg.norm(COV, axis=(1, 2))
    return mean_err, float(np.max(rel))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--n", type=int, default=100_000)
    args = ap.parse_args()
    fit = dict(random_state=0, n_init=2, tol=1e-6, max_iter=500)
    rows = []
    for rate in (0.1, 0.3):
        for seed in range(args.seeds):
            rng = np.random.default_rng([seed, int(rate * 100)])
            Xm = holes(rng, draw(rng, args.n), rate)
            data = {
                "em": (GaussianMixture(3, missing="em", **fit), Xm),
                "complete_case": (GaussianMixture(3, **fit), Xm[~np.isnan(Xm).any(axis=1)]),
                "mean_impute": (
                    GaussianMixture(3, **fit),
                    np.where(np.isnan(Xm), np.nanmean(Xm, axis=0), Xm),
                ),
            }
            for method, (gm, X) in data.items():
                t = time.perf_counter()
                gm.fit(X)
                sec = time.perf_counter() - t
                me, ce = errors(gm)
                rows.append(
                    dict(rate=rate, seed=seed, method=method, n_rows=len(X), mean_err=me,
                         cov_err=ce, seconds=sec, n_iter=gm.n_iter_)
                )  # fmt: skip
                print(rows[-1], flush=True)
    summary = []
    for rate in (0.1, 0.3):
        cell = {"rate": rate, "mc_scale": 1.0 / np.sqrt(args.n * WEIGHTS.min() * (1 - rate))}
        for method in ("em", "complete_case", "mean_impute"):
            sel = [r for r in rows if r["rate"] == rate and r["method"] == method]
            for key in ("mean_err", "cov_err", "seconds"):
                cell[f"{method}_{key}"] = float(np.mean([r[key] for r in sel]))
        summary.append(cell)
    out = {
        "settings": {"n": args.n, "seeds": args.seeds, **{k: str(v) for k, v in fit.items()}},
        "loadavg": os.getloadavg(),
        "summary": summary,
        "rows": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    write_json(out, RESULTS / "missing_mcar.json")
    lines = [
        f"# MCAR holes, N = {args.n:,}, {args.seeds} seeds (mean over seeds)",
        "",
        "| rate | method | max mean error (sd) | max rel. cov error | fit s | vs em (mean, cov) |",
        "|---|---|---|---|---|---|",
    ]
    for c in summary:
        for m in ("em", "complete_case", "mean_impute"):
            ratio = (
                ""
                if m == "em"
                else f"{c[f'{m}_mean_err'] / c['em_mean_err']:.1f}x, "
                f"{c[f'{m}_cov_err'] / c['em_cov_err']:.1f}x"
            )
            lines.append(
                f"| {c['rate']:.0%} | {m} | {c[f'{m}_mean_err']:.4f} | {c[f'{m}_cov_err']:.4f} "
                f"| {c[f'{m}_seconds']:.1f} | {ratio} |"
            )
        lines.append(f"| {c['rate']:.0%} | Monte Carlo scale | {c['mc_scale']:.4f} | | | |")
    (RESULTS / "missing_mcar.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
