"""Recovery experiment: do single-start fits find every true center?

A truth with ``k`` well-separated centers (every pair at least ``separation`` sigma apart,
equal weights, covariance ``sigma^2 I`` with sigma = 1) is sampled; one single-start fit
(``n_init=1``) with ``k`` components is run by scikit-learn or by gmmscape with or without
``refine``. The fit *recovers* the truth when an optimal one-to-one matching of fitted
means to true centers (Hungarian algorithm) puts every true center within
:data:`RECOVERY_RADIUS` sigma of its fitted mean.

Registered as the sweep experiment type ``"recovery"``.
"""

from __future__ import annotations

import time

import numpy as np
from scipy.optimize import linear_sum_assignment

from gmmscape.experiments.params import RecoveryParams
from gmmscape.experiments.registry import ExperimentType

#: A true center counts as found when a fitted mean is within this many sigma.
RECOVERY_RADIUS = 0.5


def separated_centers(k: int, d: int, separation: float, rng) -> np.ndarray:
    """``k`` points in ``d`` dimensions, every pair at least ``separation`` apart.

    Points are drawn uniformly in a cube whose side grows until rejection sampling succeeds.

    Parameters
    ----------
    k, d : int
    separation : float
    rng : numpy Generator

    Returns
    -------
    ndarray of shape (k, d)
    """
    side = separation * max(2.0, 1.5 * k ** (1.0 / d))
    while True:
        pts = []
        for _ in range(200 * k):
            c = rng.uniform(0.0, side, size=d)
            if all(np.linalg.norm(c - p) >= separation for p in pts):
                pts.append(c)
                if len(pts) == k:
                    return np.array(pts)
        side *= 1.25


def matched_distances(means: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Distance of each true center to its fitted mean under the optimal matching.

    Parameters
    ----------
    means : ndarray of shape (k, d)
    centers : ndarray of shape (k, d)

    Returns
    -------
    ndarray of shape (k,)
    """
    dist = np.linalg.norm(centers[:, None, :] - means[None, :, :], axis=-1)
    rows, cols = linear_sum_assignment(dist)
    return dist[rows, cols]


def run_recovery(params: RecoveryParams) -> dict:
    """Fit one single-start mixture to a separated truth and check recovery.

    Parameters
    ----------
    params : RecoveryParams

    Returns
    -------
    dict
        ``recovered`` (bool), ``max_distance``, ``n_found`` (true centers within the
        radius), ``loglik`` (mean log-likelihood of the fit on the sample),
        ``loglik_truth`` (of the true mixture), ``n_moves``, ``moves``, ``seconds``.
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    rng = np.random.default_rng(params.seed)
    centers = separated_centers(params.k, params.d, params.separation, rng)
    labels = rng.integers(0, params.k, size=params.n_samples)
    X = centers[labels] + rng.standard_normal((params.n_samples, params.d))
    common = dict(
        n_components=params.k,
        covariance_type=params.covariance_type,
        init_params=params.init_params,
        n_init=1,
        random_state=params.seed,
        max_iter=500,
    )
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if params.method == "sklearn":
            from sklearn.mixture import GaussianMixture as SkGM

            gm = SkGM(**common).fit(X)
            moves = []
        else:
            from gmmscape.estimator import GaussianMixture

            gm = GaussianMixture(**common, refine=params.refine).fit(X)
            moves = gm.refine_moves_
    seconds = time.perf_counter() - t0
    dist = matched_distances(np.asarray(gm.means_), centers)
    from gmmscape.core.mixture import Mixture

    # the truth: equal weights, unit variance
    ll_truth = float(np.mean(Mixture(centers).log_pdf(X)))
    return {
        "recovered": bool(np.all(dist <= RECOVERY_RADIUS)),
        "n_found": int(np.sum(dist <= RECOVERY_RADIUS)),
        "max_distance": float(dist.max()),
        "loglik": float(gm.score(X)),
        "loglik_truth": ll_truth,
        "n_moves": len(moves),
        "moves": moves,
        "seconds": seconds,
    }


def wilson_fractions(successes, n) -> tuple[np.ndarray, np.ndarray]:
    """Fractions ``successes / n`` and their 95% Wilson intervals as error-bar lengths.

    Parameters
    ----------
    successes : sequence of int, shape (m,)
    n : int or sequence of int, shape (m,)
        Trials behind each fraction (>= 1).

    Returns
    -------
    fractions : ndarray of shape (m,)
    yerr : ndarray of shape (2, m)
        Distances from each fraction down to its interval's low end and up to its high
        end, as ``matplotlib``'s ``errorbar(yerr=...)`` takes them.
    """
    from gmmscape.landscape.atlas import wilson

    s = np.asarray(successes, dtype=int)
    n = np.broadcast_to(np.asarray(n, dtype=int), s.shape)
    fractions = s / n
    ci = np.array([wilson(int(a), int(b)) for a, b in zip(s, n, strict=True)]).reshape(-1, 2)
    return fractions, np.stack([fractions - ci[:, 0], ci[:, 1] - fractions])


def plot_recovery(rows):
    """Recovered fraction against k with 95% Wilson intervals, one line per fit kind.

    A line is one (method, refine, d, separation); lines are drawn a little apart along
    k so that equal fractions (scikit-learn and gmmscape without refine) stay visible.

    Parameters
    ----------
    rows : sequence of (params dict, result dict)

    Returns
    -------
    dict of str to matplotlib Figure
        ``"recovery"``.
    """
    from gmmscape.experiments.output import integer_ticks, legend_below, pyplot

    groups: dict = {}
    for p, r in rows:
        label = p.get("method", "gmmscape") + (" + refine" if p.get("refine") else "")
        key = (label, p.get("d", 2), p.get("separation", 0.0))
        groups.setdefault(key, {}).setdefault(p.get("k", 5), []).append(r["recovered"])
    fig, ax = pyplot().subplots(figsize=(6, 4))
    style = {"sklearn": ("--", "s", 6), "gmmscape": (":", "x", 8)}
    width = 0.08 * max(1, len(groups) - 1)
    for i, ((label, d, sep), by_k) in enumerate(sorted(groups.items())):
        ks = np.array(sorted(by_k), dtype=float)
        frac, yerr = wilson_fractions([sum(by_k[k]) for k in ks], [len(by_k[k]) for k in ks])
        ls, mk, ms = style.get(label, ("-", "o", 5))
        dodge = width * (i / max(1, len(groups) - 1) - 0.5) if len(groups) > 1 else 0.0
        ax.errorbar(
            ks + dodge,
            frac,
            yerr=yerr,
            linestyle=ls,
            marker=mk,
            markersize=ms,
            capsize=3,
            label=f"{label}, d={d}, separation {sep:g} sigma",
        )
    n_fits = sorted({len(v) for by_k in groups.values() for v in by_k.values()})
    ax.set_xlabel("k = k* (components)")
    integer_ticks(ax.xaxis)
    per = f"{n_fits[0]}" if len(n_fits) == 1 else f"{n_fits[0]}-{n_fits[-1]}"
    ax.set_ylabel(f"fraction of fits recovering every center\n({per} fits per point, 95% CI)")
    ax.set_title("gmmscape without refine = scikit-learn (same initialization)", fontsize=9)
    ax.set_ylim(-0.02, 1.05)
    legend_below(ax, ncol=1)
    fig.tight_layout()
    return {"recovery": fig}


SWEEP_EXPERIMENTS = (
    ExperimentType(
        name="recovery",
        params=RecoveryParams,
        run=lambda p: run_recovery(p),
        plot=plot_recovery,
        description="Single-start recovery of separated centers: scikit-learn vs gmmscape "
        "with and without split-and-merge refine.",
        captions={
            "recovery": "Fraction of single-start fits (n_init=1) that recover every true "
            f"center within {RECOVERY_RADIUS:g} sigma, against the number of centers k = k*, "
            "one line per method, dimension and separation, with 95% Wilson intervals over "
            "the seeds; lines are drawn slightly apart along k so that equal fractions stay "
            "visible.",
        },
    ),
)
