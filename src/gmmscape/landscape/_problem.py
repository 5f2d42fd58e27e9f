"""The frame a landscape lives in and the quadrature nodes used on it.

Every exploration works in one affine frame ``x = origin + basis @ a`` shared by all
starts, so that one :class:`~gmmscape.dynamics.fixed.FixedPopulation` (one node set)
serves a whole vmapped batch:

- if ``d <= k + k* - 1`` the frame is all of ``R^d`` (``r = d``): the search is complete;
- otherwise the frame is the affine span ``S*`` of the true centers (``r = dim S*``, at
  least 1) and starts are projected onto it. Population EM, gradient EM and Newton keep
  means inside ``S*``, and by the reflection symmetry of the truth through ``S*`` every
  critical point found there is a critical point in ``R^d``. Its Hessian is certified in
  all of ``R^d`` (the block on directions orthogonal to the frame is exact, see
  :func:`gmmscape.core.frame.lift_hessian`), so a point that is a minimum inside ``S*``
  but has a descent direction out of it is reported as a saddle. Critical points whose
  means leave ``S*`` are not searched for (``frame="full"`` searches ``R^d`` when that is
  affordable).

Two node sets are used on the frame: a *batch* set, cheap, for the many-start EM phase
(it only has to bring each start into the right basin), and a *polish* set, accurate, for
Newton polishing, Hessians and certification. Both are trapezoid rules (exponentially
accurate for these analytic integrands, see docs/numerics.md) for ``r <= 3``; the step is
chosen from the diameter ``D`` of the problem: a responsibility switches over a length
``sigma^2 / |mu_i - mu_j| >= sigma^2 / D``, whose complex poles sit ``pi sigma^2 / D`` off
the real axis, and the trapezoid error is about ``exp(-2 pi (pi sigma^2 / D) / h)``. For
``r = 4`` the batch set is a Gauss-Hermite product rule and the polish set a trapezoid
rule of step 0.5 (errors of about 1e-6 for separated truths; the benchmark measures them);
for ``r >= 5`` (only with ``frame="full"``) a sparse grid and scrambled Sobol' nodes, whose
errors (about 1e-4) limit what the certificates mean there.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from gmmscape.core.mixture import Mixture
from gmmscape.dynamics.fixed import FixedPopulation, standard_nodes

#: Target exponent ``2 pi^2 sigma^2 / (D h)`` of the polish rule (error ~ exp(-30)).
POLISH_EXPONENT = 30.0
#: Target exponent of the batch rule (error ~ exp(-8), enough to find basins).
BATCH_EXPONENT = 8.0
#: Largest number of nodes per true center of the polish and batch rules.
POLISH_MAX_NODES = 2**18
BATCH_MAX_NODES = 2**13
#: Radius of the trapezoid ball for r <= 2 and r >= 3 (Gaussian mass outside < 1e-11).
RADIUS_LOW_R = 9.0
RADIUS_HIGH_R = 7.5


@dataclasses.dataclass(frozen=True)
class Problem:
    """A truth, a model size and the frame and node sets of its landscape.

    Attributes
    ----------
    truth : Mixture
        The truth in ambient coordinates (k* centers in dimension d).
    k : int
        Number of model means.
    sigma : float
        The model's (known) standard deviation, equal to the truth's.
    origin : ndarray of shape (d,)
    basis : ndarray of shape (d, r)
        Orthonormal basis of the frame.
    batch : FixedPopulation
        Cheap nodes for the many-start phase.
    polish : FixedPopulation
        Accurate nodes for Newton, Hessians and certification.
    info : dict
        Rules, levels and node counts of both sets and the frame mode.
    """

    truth: Mixture
    k: int
    sigma: float
    origin: np.ndarray
    basis: np.ndarray
    batch: FixedPopulation
    polish: FixedPopulation
    info: dict

    @property
    def d(self) -> int:
        """Ambient dimension."""
        return int(self.origin.shape[0])

    @property
    def r(self) -> int:
        """Frame dimension."""
        return int(self.basis.shape[1])

    def to_frame(self, means) -> np.ndarray:
        """Ambient means (..., k, d) -> frame coordinates (..., k, r) (orthogonal projection)."""
        return (np.asarray(means) - self.origin) @ self.basis

    def lift(self, means_r) -> np.ndarray:
        """Frame coordinates (..., k, r) -> ambient means (..., k, d)."""
        return self.origin + np.asarray(means_r) @ self.basis.T


def _frame(truth: Mixture, k: int, mode: str) -> tuple[np.ndarray, np.ndarray, str]:
    beta = np.asarray(truth.means)
    d = beta.shape[1]
    origin = np.asarray(truth.weights) @ beta
    _, s, vt = np.linalg.svd(beta - origin, full_matrices=True)
    scale = max(1.0, float(s[0]) if s.size else 0.0)
    r_star = int(np.sum(s > 1e-12 * scale))
    if mode == "full" or (mode == "auto" and d <= k + truth.k - 1):
        return origin, vt.T, "full"
    if mode not in ("auto", "span"):
        raise ValueError(f"frame must be 'auto', 'span' or 'full'; got {mode!r}.")
    return origin, vt[: max(r_star, 1)].T, "span"


def _trapezoid_level(r: int, diameter: float, sigma: float, exponent: float, cap: int) -> int:
    from gmmscape.core import quadrature

    h_wanted = 2 * np.pi**2 * sigma**2 / (max(diameter, sigma) * exponent)
    level = max(0, int(np.ceil(np.log2(0.5 / h_wanted))))
    radius = RADIUS_LOW_R if r <= 2 else RADIUS_HIGH_R
    while level > 0 and quadrature.node_count("trapezoid", r, level, radius) > cap:
        level -= 1
    return level


def _rqmc_level(r: int, cap: int) -> int:
    from gmmscape.core import quadrature

    level = 0
    while quadrature.node_count("rqmc", r, level + 1) <= cap:
        level += 1
    return level


def make_fixed(truth_r: Mixture, k: int, sigma: float, origin, basis, d, z, wz) -> FixedPopulation:
    """A :class:`FixedPopulation` on a given frame and node set (equal model weights).

    Parameters
    ----------
    truth_r : Mixture
        The truth in frame coordinates (k*, r).
    k : int
    sigma : float
    origin : array of shape (d,)
    basis : array of shape (d, r)
    d : int
    z : array of shape (m, r)
    wz : array of shape (m,)

    Returns
    -------
    FixedPopulation
    """
    return FixedPopulation(
        z=jnp.asarray(z),
        wz=jnp.asarray(wz),
        truth=truth_r,
        model_weights=jnp.full(k, 1.0 / k),
        model_sigma=jnp.asarray(float(sigma)),
        origin=jnp.asarray(origin),
        basis=jnp.asarray(basis),
        perp_var=float(sigma) ** 2,
        d=int(d),
    )


def make_problem(
    truth: Mixture,
    k: int,
    *,
    frame: str = "auto",
    extent: float = 0.0,
    diameter: float | None = None,
) -> Problem:
    """Choose the frame and both node sets for exploring ``truth`` with ``k`` means.

    Parameters
    ----------
    truth : Mixture
        Equal-weight isotropic truth.
    k : int
        Number of model means.
    frame : {"auto", "span", "full"}
        See the module docstring.
    extent : float, default 0
        Extra distance (beyond the truth's diameter) that estimates may reach; widens the
        rule's resolution.
    diameter : float, optional
        Use this length (units of the data) instead of the computed diameter to choose the
        trapezoid steps; studies pass one value for a whole sweep so that node counts,
        and hence compiled shapes, stay the same.

    Returns
    -------
    Problem
    """
    sigma = float(truth.sigma)
    origin, basis, mode = _frame(truth, k, frame)
    d, r = basis.shape
    beta_r = (np.asarray(truth.means) - origin) @ basis
    truth_r = Mixture._raw(jnp.asarray(beta_r), truth.weights, truth.sigma)
    diam = float(np.ptp(beta_r, axis=0).max()) + 2 * sigma + float(extent)
    if diameter is not None:
        diam = float(diameter)
    # the batch phase resolves switches between neighbouring estimates only
    if truth.k > 1:
        nn = np.linalg.norm(beta_r[:, None] - beta_r[None], axis=-1)
        nn[np.diag_indices(truth.k)] = np.inf
        local = 3 * float(nn.min(axis=1).max()) + 2 * sigma
    else:
        local = diam
    info: dict = {"frame": mode, "r": int(r), "d": int(d)}
    sets = {}
    for name, exponent, cap in (
        ("batch", BATCH_EXPONENT, BATCH_MAX_NODES),
        ("polish", POLISH_EXPONENT, POLISH_MAX_NODES),
    ):
        if r <= 3:
            size = min(diam, local) if name == "batch" and diameter is None else diam
            level = _trapezoid_level(r, size, sigma, exponent, cap)
            radius = RADIUS_LOW_R if r <= 2 else RADIUS_HIGH_R
            rule = "trapezoid"
        elif name == "batch":
            rule, level = ("gauss-hermite", 0) if r == 4 else ("sparse-grid", 2)
            radius = RADIUS_HIGH_R
        elif r == 4:
            rule, level, radius = "trapezoid", 0, RADIUS_HIGH_R
        else:
            rule, level, radius = "rqmc", _rqmc_level(r, cap), RADIUS_HIGH_R
        z, wz = standard_nodes(rule, r, level, radius=radius)
        info[name] = {"rule": rule, "level": int(level), "nodes": int(z.shape[0])}
        if rule == "trapezoid":
            info[name]["h"] = 0.5 / 2**level
            info[name]["radius"] = radius
        sets[name] = make_fixed(truth_r, k, sigma, origin, basis, d, z, wz)
    return Problem(
        truth=truth,
        k=int(k),
        sigma=sigma,
        origin=origin,
        basis=basis,
        batch=sets["batch"],
        polish=sets["polish"],
        info=info,
    )
