"""An independent reference for population expectations in spans of dimension 4 and more.

Used by tests/test_population_reference.py and benchmarks/population_accuracy.py; it
uses numpy and scipy only, never gmmscape.

Under ``x ~ N(c, tau^2 I_d)``, write the mixture ``sum_i w_i N(m_i, s^2 I_d)`` with
``D_i = m_i - m_1``. Then

    log p(x) = -|x - m_1|^2 / (2 s^2) - d/2 log(2 pi s^2) + LSE_i(g_i(x)),
    g_i(x) = log w_i + (D_i . (x - m_1) - |D_i|^2 / 2) / s^2,

and the logits ``g`` are linear in ``x``. With ``B`` an orthonormal basis (d, q) of the
span of the ``D_i`` and ``x = c + tau (B a + B_perp b)``, ``a ~ N(0, I_q)``, the
responsibilities depend on ``a`` only, so

    E[log p]               = -(d tau^2 + |c - m_1|^2) / (2 s^2) - d/2 log(2 pi s^2)
                             + E_a[LSE_i(g_i)],
    E[psi_i]               = E_a[psi_i],
    E[psi_i (x - m_i)]     = E_a[psi_i] (c - m_i) + tau B E_a[psi_i a].

The ``q``-dimensional expectations (q = 1 or 2) are integrated with
:func:`scipy.integrate.cubature` (adaptive Gauss-Kronrod) on tiles of the box
``[-BOX, BOX]^q``, each tile starting from a single region (scipy 1.17's ``points=``
does not heapify its initial regions). In 1-D the tiles are cut at every switch of the
largest logit. ``KL(truth || model) = E[log p*] - E[log p]``, each integrated this way
with the truth's own difference span.

The decomposition is exact algebra; the test suite also checks it against plain Monte
Carlo in all ``d`` coordinates (no reduction) with a confidence interval.
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy import integrate
from scipy.special import logsumexp

#: Half-width of the integration box in standard deviations (Gaussian mass outside is
#: below 1e-32 per direction).
BOX = 12.0
#: Width of the tiles, in standard deviations.
TILE = 3.0
#: Tolerances asked of cubature, per entry and tile.
CUBATURE_RTOL = 1e-13
CUBATURE_ATOL = 1e-16
CUBATURE_MAX_SUBDIVISIONS = 50_000
#: Singular values below this fraction of max(1, largest) count as zero.
SPAN_RTOL = 1e-12


#: The r = 4, 5 problems with q, q* <= 2 (seed, k, k*, spread, model sigma) of
#: :func:`span_problem`: the first is tested fast, the others slow, all by the benchmark.
SPAN45_CASES = [
    (2, 3, 2, 6.0, 1.0),
    (1, 2, 3, 6.0, 1.0),
    (3, 3, 3, 5.0, 1.0),
    (4, 3, 3, 10.0, 1.0),
    (5, 3, 3, 3.0, 1.3),
    (6, 2, 3, 12.0, 1.0),
    (7, 3, 2, 20.0, 0.8),
]


def _basis(diffs: np.ndarray, d: int) -> np.ndarray:
    """Orthonormal basis (d, q) of the row span of ``diffs`` (n, d)."""
    if diffs.shape[0] == 0:
        return np.zeros((d, 0))
    _, s, vt = np.linalg.svd(diffs, full_matrices=False)
    q = int(np.sum(s > SPAN_RTOL * max(1.0, float(s[0]))))
    return vt[:q].T


def _tiles_1d(base: np.ndarray, slope: np.ndarray) -> np.ndarray:
    """Edges of the 1-D tiles: a grid of width TILE plus every switch of the top logit."""
    pts = list(np.arange(-BOX, BOX + 1e-9, TILE))
    k = len(base)
    for i in range(k):
        for j in range(i + 1, k):
            if slope[i] != slope[j] and np.isfinite(base[i]) and np.isfinite(base[j]):
                a = (base[j] - base[i]) / (slope[i] - slope[j])
                if -BOX < a < BOX:
                    pts.append(a)
    pts = np.unique(np.asarray(pts))
    keep = [pts[0]]
    for x in pts[1:]:
        if x - keep[-1] > 1e-9:
            keep.append(x)
    return np.asarray(keep)


def gaussian_expectations(means, weights, s, c, tau) -> dict:
    """``E[log p]``, ``E[psi_i]`` and ``E[psi_i (x - m_i)]`` under ``x ~ N(c, tau^2 I_d)``.

    Parameters
    ----------
    means : numpy.ndarray of shape (k, d)
    weights : numpy.ndarray of shape (k,)
    s : float
        The mixture's standard deviation.
    c : numpy.ndarray of shape (d,)
    tau : float

    Returns
    -------
    dict
        ``logp`` (float), ``mass`` (k,), ``shift`` (k, d), and ``err_logp``,
        ``err_mass`` (k,), ``err_shift`` (k,): bounds on the absolute errors (cubature's
        estimates, propagated).
    """
    means = np.asarray(means, dtype=float)
    k, d = means.shape
    keep = np.asarray(weights) > 0
    m1 = means[keep][0]
    diffs = means - m1
    basis = _basis(diffs[keep], d)
    q = basis.shape[1]
    with np.errstate(divide="ignore"):
        logw = np.log(weights)
    base = logw + (diffs @ (c - m1) - 0.5 * np.sum(diffs**2, axis=1)) / s**2
    slope = tau * (diffs @ basis) / s**2  # (k, q)
    quadratic = -(d * tau**2 + np.sum((c - m1) ** 2)) / (2 * s**2) - 0.5 * d * np.log(
        2 * np.pi * s**2
    )

    def f(a: np.ndarray) -> np.ndarray:  # (n, q) -> (n, 1 + k + k q)
        g = base[None, :] + a @ slope.T
        lse = logsumexp(g, axis=1)
        psi = np.exp(g - lse[:, None])
        log_phi = -0.5 * np.sum(a * a, axis=1) - 0.5 * q * np.log(2 * np.pi)
        phi = np.exp(log_phi)
        psia = (psi[:, :, None] * a[:, None, :]).reshape(len(a), -1)
        return np.concatenate([lse[:, None], psi, psia], axis=1) * phi[:, None]

    size = 1 + k + k * q
    if q == 0:
        est, err = f(np.zeros((1, 0)))[0], np.zeros(size)
    else:
        if q == 1:
            edges = _tiles_1d(base, slope[:, 0])
            tiles = [([lo], [hi]) for lo, hi in itertools.pairwise(edges)]
        elif q == 2:
            grid = np.arange(-BOX, BOX + 1e-9, TILE)
            tiles = [
                ([x0, y0], [x1, y1])
                for x0, x1 in itertools.pairwise(grid)
                for y0, y1 in itertools.pairwise(grid)
            ]
        else:
            raise NotImplementedError(f"the reference integrates q <= 2 dimensions; got {q}")
        est, err = np.zeros(size), np.zeros(size)
        for lo, hi in tiles:
            res = integrate.cubature(
                f,
                lo,
                hi,
                rtol=CUBATURE_RTOL,
                atol=CUBATURE_ATOL,
                max_subdivisions=CUBATURE_MAX_SUBDIVISIONS,
            )
            if res.status != "converged":
                raise RuntimeError("the reference's cubature did not converge")
            est, err = est + res.estimate, err + res.error
    mass, err_mass = est[1 : 1 + k], err[1 : 1 + k]
    psia = est[1 + k :].reshape(k, q)
    err_psia = err[1 + k :].reshape(k, q).sum(axis=1) if q else np.zeros(k)
    shift = mass[:, None] * (c - means) + tau * psia @ basis.T
    err_shift = err_mass * np.max(np.abs(c - means), axis=1) + tau * err_psia
    return {
        "logp": quadratic + est[0],
        "mass": mass,
        "shift": shift,
        "err_logp": err[0],
        "err_mass": err_mass,
        "err_shift": err_shift,
    }


def population_reference(mu, pi, s, beta, pistar, sstar) -> dict:
    """Population NLL, KL, gradient, EM step and responsibility masses.

    Parameters
    ----------
    mu : numpy.ndarray of shape (k, d)
    pi : numpy.ndarray of shape (k,)
    s : float
    beta : numpy.ndarray of shape (k*, d)
    pistar : numpy.ndarray of shape (k*,)
    sstar : float

    Returns
    -------
    dict
        ``nll``, ``kl``, ``grad`` (k, d), ``em_means`` (k, d), ``em_weights`` (k,),
        ``mean_shift`` (k, d) and ``ref_error``: per quantity, a bound on the reference's
        own absolute error.
    """
    mu, beta = np.asarray(mu, dtype=float), np.asarray(beta, dtype=float)
    k, d = mu.shape
    logp = logp_star = err_logp = 0.0
    mass, shift = np.zeros(k), np.zeros((k, d))
    err_mass, err_shift = np.zeros(k), np.zeros(k)
    for b, w in zip(beta, pistar, strict=True):
        if w == 0:
            continue
        em = gaussian_expectations(mu, pi, s, b, sstar)
        et = gaussian_expectations(beta, pistar, sstar, b, sstar)
        logp += w * em["logp"]
        logp_star += w * et["logp"]
        err_logp += w * (em["err_logp"] + et["err_logp"])
        mass += w * em["mass"]
        shift += w * em["shift"]
        err_mass += w * em["err_mass"]
        err_shift += w * em["err_shift"]
    step = shift / mass[:, None]
    em_err = (err_shift + err_mass * np.max(np.abs(step), axis=1)) / mass
    return {
        "nll": -logp,
        "kl": logp_star - logp,
        "grad": -shift / s**2,
        "em_means": mu + step,
        "em_weights": mass,
        "mean_shift": shift,
        "ref_error": {
            "nll": err_logp,
            "kl": err_logp,
            "grad": float(np.max(err_shift)) / s**2,
            "mean_shift": float(np.max(err_shift)),
            "em_means": float(np.max(em_err)),
            "em_weights": float(np.max(err_mass)),
        },
    }


def span_problem(seed: int, k: int, kstar: int, spread: float, s: float = 1.0):
    """A test problem: k model means and k* true centers in d = k + k* - 1 dimensions (r = d)."""
    rng = np.random.default_rng([seed, k, kstar])
    d = k + kstar - 1
    beta = rng.uniform(-spread / 2, spread / 2, size=(kstar, d))
    mu = beta[rng.integers(0, kstar, size=k)] + rng.normal(scale=0.7, size=(k, d))
    return mu, rng.dirichlet([3.0] * k), s, beta, rng.dirichlet([3.0] * kstar), 1.0
