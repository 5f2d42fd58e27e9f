"""Recovery of separated truths by single-start fits: scikit-learn vs gmmscape (+ refine).

For k = k* in {5, 10, 20, 50} and d in {2, 10}, each seed draws a truth whose centers are
at least ``--separation`` sigma apart (equal weights, sigma = 1), a sample of
``200 k`` points, and fits it with ``n_init = 1`` (k-means initialization, full
covariances, the same ``random_state``) by

* scikit-learn's GaussianMixture,
* gmmscape.GaussianMixture (the same initialization, so the same fits as scikit-learn),
* gmmscape.GaussianMixture with ``refine=True`` (split-and-merge moves after EM).

A fit recovers the truth when the optimal matching of fitted means to true centers puts
every center within 0.5 sigma (``gmmscape.experiments.recovery``, the sweep experiment type
``"recovery"``). Reported per cell: the recovered fraction with a 95% Wilson interval, the
mean number of accepted moves and the mean fit time. Goal: refine at 95% or more.

Run: ``.venv/bin/python benchmarks/estimator_recovery.py`` (20 seeds per cell, 29 min
on 2 cores shared at load 11-15) or ``--quick`` (k = 5, 10, d = 2, 3 seeds). Results:
``benchmarks/results/estimator_recovery.{json,md,png,svg}``. The machine is shared:
``os.getloadavg()`` is recorded.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import gmmscape  # noqa: F401
from gmmscape._files import write_json
from gmmscape.experiments.recovery import RecoveryParams, plot_recovery, run_recovery

RESULTS = Path(__file__).resolve().parent / "results"
METHODS = (("sklearn", False), ("gmmscape", False), ("gmmscape", True))


@dataclass
class RecoveryResults:
    """Per-cell summaries and every fit's row (JSON-serializable)."""

    settings: dict
    cells: list = field(default_factory=list)
    rows: list = field(default_factory=list)
    seconds: float = 0.0


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a binomial proportion."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return float(mid - half), float(mid + half)


def label(method: str, refine: bool) -> str:
    return method + (" + refine" if refine else "")


def to_markdown(res: RecoveryResults) -> str:
    s = res.settings
    lines = [
        "# Single-start recovery of separated truths",
        "",
        f"Separation {s['separation']} sigma, {s['points_per_component']} points per "
        f"component, {s['seeds']} seeds per cell, full covariances, k-means init, n_init=1.",
        "",
        "| k | d | method | recovered | 95% interval | centers found (mean) | moves (mean) | "
        "s per fit | load |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in res.cells:
        lines.append(
            f"| {c['k']} | {c['d']} | {c['method']} | **{100 * c['recovered']:.0f}%** | "
            f"{100 * c['ci'][0]:.0f}-{100 * c['ci'][1]:.0f}% | {c['found_mean']:.2f} | "
            f"{c['moves_mean']:.2f} | {c['seconds_mean']:.2f} | {c['loadavg'][0]:.1f} |"
        )
    lines += ["", f"Total run time {res.seconds:.0f} s."]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--separation", type=float, default=8.0)
    args = ap.parse_args()
    seeds = 3 if args.quick else args.seeds
    ks = (5, 10) if args.quick else (5, 10, 20, 50)
    ds = (2,) if args.quick else (2, 10)
    name = "estimator_recovery_quick" if args.quick else "estimator_recovery"
    res = RecoveryResults(
        settings=dict(separation=args.separation, points_per_component=200, seeds=seeds)
    )
    t_start = time.perf_counter()
    for d in ds:
        for k in ks:
            for method, refine in METHODS:
                out = []
                for seed in range(seeds):
                    p = RecoveryParams(
                        k=k,
                        d=d,
                        separation=args.separation,
                        n_samples=200 * k,
                        method=method,
                        refine=refine,
                        seed=seed,
                    )
                    r = run_recovery(p)
                    out.append(r)
                    res.rows.append(
                        (p.model_dump(), {kk: v for kk, v in r.items() if kk != "moves"})
                    )
                rec = sum(r["recovered"] for r in out)
                cell = dict(
                    k=k,
                    d=d,
                    method=label(method, refine),
                    recovered=rec / seeds,
                    ci=wilson(rec, seeds),
                    found_mean=float(np.mean([r["n_found"] for r in out])),
                    moves_mean=float(np.mean([r["n_moves"] for r in out])),
                    seconds_mean=float(np.mean([r["seconds"] for r in out])),
                    loglik_gap_mean=float(np.mean([r["loglik_truth"] - r["loglik"] for r in out])),
                    loadavg=list(os.getloadavg()),
                )
                res.cells.append(cell)
                res.seconds = time.perf_counter() - t_start
                write_json(res, RESULTS / f"{name}.json")
                (RESULTS / f"{name}.md").write_text(to_markdown(res))
                print(
                    f"k={k} d={d} {cell['method']}: {100 * cell['recovered']:.0f}% "
                    f"({cell['seconds_mean']:.2f} s/fit)",
                    flush=True,
                )
    figs = plot_recovery(res.rows)
    for fig in figs.values():
        for ext in ("png", "svg"):
            fig.savefig(RESULTS / f"{name}.{ext}", dpi=120)
    res.seconds = time.perf_counter() - t_start
    write_json(res, RESULTS / f"{name}.json")
    (RESULTS / f"{name}.md").write_text(to_markdown(res))


if __name__ == "__main__":
    main()
