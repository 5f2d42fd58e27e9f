"""Integration rules for expectations under a standard normal ``N(0, I_r)``.

A rule is a family of node sets indexed by a level; the population source walks up the
levels until the change between two levels (or, for randomized rules, the spread between
independent replicates) is below the requested tolerance, and reports that estimate.

Families (all node sets have weights summing to one):

``trapezoid``
    Tensor trapezoidal rule on the grid ``h Z^r`` inside a ball, with
    ``h = 0.5 / 2^level``. The ball's radius is 9, or larger when a model component's
    responsibility mass is so small that it lives in the tail (:func:`tail_radius`).
    For analytic integrands it converges exponentially, and it resolves the sharp
    responsibility switches of well separated mixtures with fewer nodes than
    Gauss-Hermite (Trefethen and Weideman, SIAM Review 56, 2014). Levels are nested.
    The default for ``r <= 3``.
``gauss-hermite``
    Tensor Gauss-Hermite rule with ``2^(level+2) + 1`` points per axis; exact for
    polynomials of degree ``2^(level+3) + 1`` in each variable.
``sparse-grid``
    Smolyak combination of Gauss-Hermite rules with ``2^i - 1`` points at 1-D index
    ``i``; level ``L`` is exact for polynomials of total degree ``2^(L+2) - 3``. Costs grow
    slowly with ``r``: the default for ``r >= 4`` while its error estimate meets the
    tolerance.
``rqmc``
    Randomized quasi-Monte Carlo: ``8`` independently scrambled Sobol' sequences
    (:class:`scipy.stats.qmc.Sobol`) of ``2^(level+10)`` points each; the error estimate
    is three standard errors across the replicates.
``monte-carlo``
    Plain Monte Carlo with the same replicate structure as ``rqmc`` (for comparisons).

Reduced rules (:func:`reduced_rules`, :func:`embed`): a mixture's responsibilities depend
on a point only through its projection on the span ``U`` of the mean differences
(dimension ``q <= k - 1``), and every statistic that is summed is a polynomial of degree
at most 2 in the orthogonal part. So a rule of one of the families above on ``U`` times
the degree-3 rule :func:`cross_rule` on its complement is as accurate as the family's
rule is on ``U`` alone, whatever the span's dimension ``r``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import lru_cache
from math import comb

import numpy as np
from scipy.special import ndtri, roots_hermitenorm
from scipy.stats import qmc

#: Smallest radius of the ball kept by the trapezoid rule; the Gaussian mass outside is
#: below 1e-17.
TRAPEZOID_RADIUS = 9.0
#: Extra ``log`` factor in :func:`tail_radius`: the truncated mass is kept ``e^-8`` below
#: the tolerance, so that the level-to-level error estimate (which cannot see truncation)
#: stays honest.
TAIL_MARGIN = 8.0
#: Largest radius: beyond it every density underflows in float64.
TRAPEZOID_MAX_RADIUS = 38.0
#: Number of independent replicates of the randomized rules.
N_REPLICATES = 8
#: Multiple of the replicate standard error reported as the error of randomized rules.
REPLICATE_Z = 3.0

RULES = ("trapezoid", "gauss-hermite", "sparse-grid", "rqmc", "monte-carlo")


@dataclass(frozen=True)
class NodeSet:
    """Nodes and weights of one level of a rule.

    Attributes
    ----------
    replicates : tuple of (nodes, weights)
        ``nodes`` of shape (m, r) and ``weights`` of shape (m,) summing to one. A
        deterministic rule has one replicate; a randomized rule has
        :data:`N_REPLICATES` independent ones.
    """

    replicates: tuple[tuple[np.ndarray, np.ndarray], ...]

    @property
    def size(self) -> int:
        """Total number of nodes over all replicates."""
        return sum(z.shape[0] for z, _ in self.replicates)

    @property
    def randomized(self) -> bool:
        """Whether the error estimate comes from replicates (True) or from levels."""
        return len(self.replicates) > 1


def tail_radius(min_mass: float, rtol: float) -> float:
    """Radius of the trapezoid ball that resolves a component of mass ``min_mass``.

    A component whose responsibility mass is ``m`` lives where the Gaussian weight is
    about ``m``; truncating the ball where the weight falls well below ``rtol * m`` keeps
    its statistics accurate relative to ``m``:
    ``R^2 = 2 (log(1 / (rtol m)) + TAIL_MARGIN)``, at least
    :data:`TRAPEZOID_RADIUS` and at most :data:`TRAPEZOID_MAX_RADIUS`.

    Parameters
    ----------
    min_mass : float
        Smallest responsibility mass to resolve (in (0, 1]).
    rtol : float
        Relative accuracy wanted for it.

    Returns
    -------
    float
        Rounded up to a multiple of 0.5 so that nearby masses share cached nodes.
    """
    if not min_mass > 0:
        return TRAPEZOID_MAX_RADIUS
    r2 = 2.0 * (np.log(1.0 / min_mass) + np.log(1.0 / rtol) + TAIL_MARGIN)
    radius = np.ceil(2.0 * np.sqrt(max(r2, 0.0))) / 2.0
    return float(min(max(radius, TRAPEZOID_RADIUS), TRAPEZOID_MAX_RADIUS))


@lru_cache(maxsize=64)
def _trapezoid(r: int, level: int, radius: float = TRAPEZOID_RADIUS) -> NodeSet:
    h = 0.5 / 2**level
    n = int(np.floor(radius / h))
    axis = h * np.arange(-n, n + 1)
    grids = np.meshgrid(*([axis] * r), indexing="ij")
    z = np.stack([g.ravel() for g in grids], axis=1)
    sq = np.sum(z * z, axis=1)
    keep = sq <= radius**2
    z, sq = z[keep], sq[keep]
    w = np.exp(-0.5 * sq)
    return NodeSet(((z, w / w.sum()),))


def _trapezoid_size(r: int, level: int, radius: float = TRAPEZOID_RADIUS) -> int:
    n = 2 * int(np.floor(radius * 2 ** (level + 1))) + 1
    ball = {1: 1.0, 2: np.pi / 4, 3: np.pi / 6}.get(r, (np.pi / 4) ** (r / 2))
    return int(ball * n**r)


@lru_cache(maxsize=64)
def _gh_1d(q: int) -> tuple[np.ndarray, np.ndarray]:
    x, w = roots_hermitenorm(q)
    return x, w / w.sum()


def _tensor(rules: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    xs = np.meshgrid(*[x for x, _ in rules], indexing="ij")
    ws = np.meshgrid(*[w for _, w in rules], indexing="ij")
    z = np.stack([g.ravel() for g in xs], axis=1)
    w = np.prod(np.stack([g.ravel() for g in ws], axis=1), axis=1)
    return z, w


@lru_cache(maxsize=64)
def _gauss_hermite(r: int, level: int) -> NodeSet:
    q = 2 ** (level + 2) + 1
    z, w = _tensor([_gh_1d(q)] * r)
    keep = w > 1e-300
    return NodeSet(((z[keep], w[keep] / w[keep].sum()),))


@lru_cache(maxsize=64)
def _sparse_grid(r: int, level: int) -> NodeSet:
    top = r + level
    zs, ws = [], []
    for total in range(max(r, top - r + 1), top + 1):
        coef = (-1) ** (top - total) * comb(r - 1, top - total)
        for idx in _compositions(total, r):
            z, w = _tensor([_gh_1d(2**i - 1) for i in idx])
            zs.append(z)
            ws.append(coef * w)
    # the same node appears in many tensor products: merge them, summing the weights
    z, inverse = np.unique(np.round(np.concatenate(zs), 14), axis=0, return_inverse=True)
    w = np.zeros(z.shape[0])
    np.add.at(w, inverse.ravel(), np.concatenate(ws))
    keep = np.abs(w) > 1e-300
    return NodeSet(((z[keep], w[keep] / w[keep].sum()),))


def _compositions(total: int, parts: int):
    """All tuples of ``parts`` positive integers summing to ``total``."""
    for cuts in itertools.combinations(range(1, total), parts - 1):
        bounds = (0, *cuts, total)
        yield tuple(bounds[i + 1] - bounds[i] for i in range(parts))


def _sparse_grid_size(r: int, level: int) -> int:
    top = r + level
    total_nodes = 0
    for total in range(max(r, top - r + 1), top + 1):
        for idx in _compositions(total, r):
            total_nodes += int(np.prod([2**i - 1 for i in idx]))
    return total_nodes


def _randomized(r: int, level: int, seed: int, qmc_: bool) -> NodeSet:
    m = level + 10
    n = 2**m
    reps = []
    seqs = np.random.SeedSequence([seed, r, level, int(qmc_)]).spawn(N_REPLICATES)
    for ss in seqs:
        rng = np.random.default_rng(ss)
        if qmc_:
            u = qmc.Sobol(d=r, scramble=True, seed=rng).random_base2(m)
        else:
            u = rng.random((n, r))
        u = np.clip(u, 1e-16, 1 - 1e-16)
        reps.append((ndtri(u), np.full(n, 1.0 / n)))
    return NodeSet(tuple(reps))


def node_set(
    rule: str, r: int, level: int, seed: int = 0, radius: float = TRAPEZOID_RADIUS
) -> NodeSet:
    """The nodes of ``rule`` at ``level`` for ``N(0, I_r)``.

    Parameters
    ----------
    rule : {"trapezoid", "gauss-hermite", "sparse-grid", "rqmc", "monte-carlo"}
    r : int
        Dimension (>= 1).
    level : int
        Refinement level (>= 0).
    seed : int, default 0
        Seed of the randomized rules.
    radius : float, default TRAPEZOID_RADIUS
        Radius of the trapezoid rule's ball (see :func:`tail_radius`).

    Returns
    -------
    NodeSet
    """
    if rule == "trapezoid":
        return _trapezoid(r, level, radius)
    if rule == "gauss-hermite":
        return _gauss_hermite(r, level)
    if rule == "sparse-grid":
        return _sparse_grid(r, level)
    if rule in ("rqmc", "monte-carlo"):
        return _randomized(r, level, seed, rule == "rqmc")
    raise ValueError(f"rule must be one of {RULES} or 'auto'; got {rule!r}.")


def node_count(rule: str, r: int, level: int, radius: float = TRAPEZOID_RADIUS) -> int:
    """Number of nodes (over all replicates) of ``rule`` at ``level``, without building them.

    Parameters
    ----------
    rule : str
    r : int
    level : int
    radius : float, default TRAPEZOID_RADIUS
        Radius of the trapezoid rule's ball.

    Returns
    -------
    int
        Exact, or an upper estimate for the trapezoid rule's ball.
    """
    if rule == "trapezoid":
        return _trapezoid_size(r, level, radius)
    if rule == "gauss-hermite":
        return (2 ** (level + 2) + 1) ** r
    if rule == "sparse-grid":
        return _sparse_grid_size(r, level)
    if rule in ("rqmc", "monte-carlo"):
        return N_REPLICATES * 2 ** (level + 10)
    raise ValueError(f"rule must be one of {RULES} or 'auto'; got {rule!r}.")


def reduced_rules(q: int) -> tuple[str, ...]:
    """The rules tried, in order, on a reduced space of dimension ``q``.

    Parameters
    ----------
    q : int
        Largest dimension of the spans of mean differences (model and truth).

    Returns
    -------
    tuple of str
        ``("trapezoid",)`` for ``q <= 3``; ``("sparse-grid", "rqmc")`` above.
    """
    return auto_rules(max(q, 1))


def cross_rule(m: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``2 m`` points ``+- sqrt(m) e_i`` with equal weights: exact to degree 3 under N(0, I_m).

    Parameters
    ----------
    m : int
        Dimension (>= 0); ``m = 0`` gives the single empty point.

    Returns
    -------
    nodes : numpy.ndarray of shape (max(2 m, 1), m)
    weights : numpy.ndarray of shape (max(2 m, 1),)
    """
    if m == 0:
        return np.zeros((1, 0)), np.ones(1)
    eye = np.sqrt(m) * np.eye(m)
    return np.vstack([eye, -eye]), np.full(2 * m, 1.0 / (2 * m))


def subspace(points: np.ndarray, rtol: float = 1e-12) -> tuple[np.ndarray, np.ndarray]:
    """Orthonormal bases of the span of ``points - points[0]`` and of its complement.

    Parameters
    ----------
    points : numpy.ndarray of shape (k, r)
    rtol : float, default 1e-12
        Singular values below ``rtol * max(1, largest)`` count as zero.

    Returns
    -------
    inside : numpy.ndarray of shape (r, q)
    outside : numpy.ndarray of shape (r, r - q)
    """
    points = np.asarray(points, dtype=float)
    r = points.shape[1]
    diffs = points - points[0]
    _, s, vt = np.linalg.svd(diffs, full_matrices=True) if diffs.size else (None, [], np.eye(r))
    scale = max(1.0, float(s[0]) if len(s) else 0.0)
    q = int(np.sum(np.asarray(s) > rtol * scale))
    return vt[:q].T, vt[q:].T


def embed(inner: NodeSet, inside: np.ndarray, outside: np.ndarray) -> NodeSet:
    """Nodes of N(0, I_r): ``inner`` on ``inside``'s span times :func:`cross_rule` off it.

    Parameters
    ----------
    inner : NodeSet
        Nodes of N(0, I_q), or the single empty point when ``q = 0``.
    inside : numpy.ndarray of shape (r, q)
    outside : numpy.ndarray of shape (r, r - q)

    Returns
    -------
    NodeSet
        ``m_inner * max(2 (r - q), 1)`` nodes per replicate in ``r`` coordinates.
    """
    zc, wc = cross_rule(outside.shape[1])
    reps = []
    for z, w in inner.replicates:
        pts = (z @ inside.T)[:, None, :] + (zc @ outside.T)[None, :, :]
        reps.append((pts.reshape(-1, inside.shape[0]), (w[:, None] * wc[None, :]).reshape(-1)))
    return NodeSet(tuple(reps))


def reduced_node_set(
    rule: str, q: int, level: int, seed: int = 0, radius: float = TRAPEZOID_RADIUS
) -> NodeSet:
    """Like :func:`node_set`, with the single empty point for ``q = 0``.

    Parameters
    ----------
    rule : str
    q : int
        Dimension (>= 0).
    level : int
    seed : int, default 0
    radius : float, default TRAPEZOID_RADIUS

    Returns
    -------
    NodeSet
    """
    if q == 0:
        return NodeSet(((np.zeros((1, 0)), np.ones(1)),))
    return node_set(rule, q, level, seed, radius)


def reduced_node_count(rule: str, q: int, r: int, level: int, radius: float) -> int:
    """Nodes of :func:`embed` of ``rule`` on ``q`` of ``r`` dimensions, without building them.

    Parameters
    ----------
    rule : str
    q : int
    r : int
    level : int
    radius : float

    Returns
    -------
    int
    """
    inner = 1 if q == 0 else node_count(rule, q, level, radius)
    return inner * max(2 * (r - q), 1)


def auto_rules(r: int) -> tuple[str, ...]:
    """The rules tried, in order, by ``rule="auto"`` for a span of dimension ``r``.

    Parameters
    ----------
    r : int

    Returns
    -------
    tuple of str
        ``("trapezoid",)`` for ``r <= 3``; ``("sparse-grid", "rqmc")`` above.
    """
    return ("trapezoid",) if r <= 3 else ("sparse-grid", "rqmc")
