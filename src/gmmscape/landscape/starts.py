"""Documented schemes for drawing starting means.

Every scheme draws ``k`` means in the ambient space ``R^d`` from a truth with centers
``beta_1..beta_k*`` (mean ``c``) and standard deviation ``sigma``:

- ``"gaussian"``: ``c + s z`` with ``z ~ N(0, I_d)`` per mean, where
  ``s = sqrt(mean_j |beta_j - c|^2 / d + sigma^2)`` is the truth's own spread per
  coordinate (a Gaussian with the truth's mean and covariance scale);
- ``"uniform"``: uniform in the bounding box of the true centers widened by ``sigma`` on
  every side;
- ``"data"``: ``k`` points drawn from the truth (Jin et al.'s random initialization);
- ``"kmeans++"``: k-means++ seeding (Arthur and Vassilvitskii, 2007) on a fresh sample of
  :data:`KMEANSPP_SAMPLE` points from the truth: the first mean is a uniform sample
  point, each next one a sample point drawn with probability proportional to its squared
  distance to the nearest mean chosen so far.

User-given starts are passed to :func:`gmmscape.landscape.explore` as ``starts``.
"""

from __future__ import annotations

import numpy as np

from gmmscape._validation import check_positive_int
from gmmscape.core.mixture import Mixture

#: The scheme names, in the order their starts are drawn.
SCHEMES = ("gaussian", "uniform", "data", "kmeans++")
#: Sample size of each k-means++ seeding.
KMEANSPP_SAMPLE = 200


def _truth_points(rng, truth: Mixture, shape) -> np.ndarray:
    beta = np.asarray(truth.means)
    labels = rng.integers(0, truth.k, size=shape)
    return beta[labels] + float(truth.sigma) * rng.standard_normal((*shape, truth.d))


def _kmeanspp(rng, truth: Mixture, n: int, k: int) -> np.ndarray:
    pts = _truth_points(rng, truth, (n, KMEANSPP_SAMPLE))
    rows = np.arange(n)
    out = np.empty((n, k, truth.d))
    out[:, 0] = pts[rows, rng.integers(0, KMEANSPP_SAMPLE, size=n)]
    d2 = np.sum((pts - out[:, :1]) ** 2, axis=-1)
    for i in range(1, k):
        p = d2 / np.maximum(d2.sum(axis=1, keepdims=True), 1e-300)
        cdf = np.cumsum(p, axis=1)
        u = rng.random((n, 1)) * cdf[:, -1:]
        idx = np.minimum(np.sum(cdf < u, axis=1), KMEANSPP_SAMPLE - 1)
        out[:, i] = pts[rows, idx]
        d2 = np.minimum(d2, np.sum((pts - out[:, i : i + 1]) ** 2, axis=-1))
    return out


def draw_starts(
    truth: Mixture, k: int, n: int, scheme: str, rng: np.random.Generator
) -> np.ndarray:
    """Draw ``n`` starts of ``k`` means from one scheme.

    Parameters
    ----------
    truth : Mixture
    k : int
    n : int
    scheme : {"gaussian", "uniform", "data", "kmeans++"}
    rng : numpy.random.Generator

    Returns
    -------
    ndarray of shape (n, k, d)
    """
    beta = np.asarray(truth.means)
    sigma = float(truth.sigma)
    d = truth.d
    if scheme == "gaussian":
        c = beta.mean(axis=0)
        s = np.sqrt(np.mean(np.sum((beta - c) ** 2, axis=1)) / d + sigma**2)
        return c + s * rng.standard_normal((n, k, d))
    if scheme == "uniform":
        lo, hi = beta.min(axis=0) - sigma, beta.max(axis=0) + sigma
        return lo + (hi - lo) * rng.random((n, k, d))
    if scheme == "data":
        return _truth_points(rng, truth, (n, k))
    if scheme == "kmeans++":
        return _kmeanspp(rng, truth, n, k)
    raise ValueError(f"scheme must be one of {SCHEMES}; got {scheme!r}.")


def make_starts(
    truth: Mixture, k: int, n_starts: int, schemes, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``n_starts`` evenly over ``schemes`` and draw them.

    Parameters
    ----------
    truth : Mixture
    k : int
    n_starts : int
        Total number of starts (>= 1); the first schemes get one more when it does not
        divide evenly.
    schemes : sequence of str
    seed : int

    Returns
    -------
    starts : ndarray of shape (n_starts, k, d)
    scheme_index : ndarray of shape (n_starts,)
        Index into ``schemes`` of each start's scheme.
    """
    n_starts = check_positive_int(n_starts, "n_starts")
    schemes = tuple(schemes)
    if not schemes:
        raise ValueError("schemes must name at least one scheme.")
    for s in schemes:
        if s not in SCHEMES:
            raise ValueError(f"schemes: unknown scheme {s!r}; known: {', '.join(SCHEMES)}.")
    rng = np.random.default_rng(seed)
    base, extra = divmod(n_starts, len(schemes))
    parts, idx = [], []
    for i, s in enumerate(schemes):
        n = base + (1 if i < extra else 0)
        if n:
            parts.append(draw_starts(truth, k, n, s, rng))
            idx.append(np.full(n, i))
    return np.concatenate(parts), np.concatenate(idx)
