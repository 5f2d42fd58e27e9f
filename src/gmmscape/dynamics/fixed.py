"""Population expectations on quadrature nodes chosen once: jittable, vmappable steps.

:class:`gmmscape.core.sources.PopulationSource` chooses its quadrature rule and level
anew for every model, in a Python loop: the right tool for one exact evaluation, too slow
for a trajectory of 10^6 steps or a batch of 10^4 starts. Population EM, gradient EM and
Newton steps keep the means inside the affine span of the starting means and the true
centers (the orthogonal part of ``x`` is independent noise with mean zero), so one frame
and one node set serve a whole run. :class:`FixedPopulation` holds them and evaluates the
statistics of :func:`gmmscape.core.stats.batch_stats` with the update rules of
:mod:`gmmscape.core.updates`: the same single implementation as every other source, now
inside ``jit``, ``vmap``, ``lax.scan`` and ``lax.while_loop``.

Accuracy. :func:`fixed_population` picks the rule and level that the adaptive source
needs at the starting means (and ``refine`` levels more, by default one), so the
error at the start is below the requested tolerance. Along EM and gradient-EM runs toward
the truth the integrands only get smoother (responsibilities switch over a length
``sigma^2 / ||mu_i - mu_j||``, which grows as estimates merge), so the error stays small;
a run that moves estimates apart, far beyond where they started, should be checked
against :class:`~gmmscape.core.sources.PopulationSource` at its end point (the tests do).
For spans of dimension 6 or more, pass ``rtol=1e-6`` or an explicit ``level``: the
default ``rtol=1e-10`` cannot be met there (docs/numerics.md).

The nodes of ``N(0, I_r)`` do not depend on the frame, so runs whose frames differ but
share ``r`` (random restarts in high dimension) can share ``z`` and ``wz`` and differ only
in ``truth``, ``origin`` and ``basis``; every field except ``d`` and ``perp_var`` is an
array leaf, so a :class:`FixedPopulation` with a leading batch axis on its leaves
vmaps too.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from gmmscape._validation import as_float_array, check_positive_int, check_weights
from gmmscape.core import quadrature, updates
from gmmscape.core.frame import Frame, span_frame
from gmmscape.core.mixture import Mixture
from gmmscape.core.sources import POPULATION_ATOL, POPULATION_RTOL, PopulationSource
from gmmscape.core.stats import Stats, batch_stats

#: Default cap on the number of nodes per true center of a fixed node set.
FIXED_MAX_NODES = 2**18


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class FixedPopulation:
    """Quadrature nodes for a fixed frame, with the population objective and its updates.

    All methods take the model means in frame coordinates, ``means_r`` of shape (k, r),
    are pure and jittable, and vmap over ``means_r``.

    Attributes
    ----------
    z : array of shape (m, r)
        Nodes of ``N(0, I_r)`` (all replicates of a randomized rule pooled).
    wz : array of shape (m,)
        Their weights.
    truth : Mixture
        The truth in frame coordinates (means of shape (k*, r)).
    model_weights : array of shape (k,)
        The model's mixing weights (fixed).
    model_sigma : array of shape ()
        The model's standard deviation (fixed).
    origin : array of shape (d,)
        The frame's origin in the ambient space.
    basis : array of shape (d, r)
        The frame's orthonormal basis.
    perp_var : float
        Variance of the truth in each direction orthogonal to the frame (static).
    d : int
        Ambient dimension (static).
    """

    z: jax.Array
    wz: jax.Array
    truth: Mixture
    model_weights: jax.Array
    model_sigma: jax.Array
    origin: jax.Array
    basis: jax.Array
    perp_var: float = dataclasses.field(metadata={"static": True})
    d: int = dataclasses.field(metadata={"static": True})

    @property
    def r(self) -> int:
        """Number of frame coordinates."""
        return int(self.z.shape[-1])

    @property
    def frame(self) -> Frame:
        """The :class:`~gmmscape.core.frame.Frame` of these nodes."""
        return Frame(origin=self.origin, basis=self.basis, perp_var=self.perp_var, d=self.d)

    def model(self, means_r: jax.Array) -> Mixture:
        """The model with means ``means_r`` (k, r) and the fixed weights and sigma."""
        return Mixture._raw(means_r, self.model_weights, self.model_sigma)

    def stats(self, means_r: jax.Array, *, hessian: bool = False) -> Stats:
        """Population sums of every statistic (see :func:`gmmscape.core.stats.batch_stats`).

        Parameters
        ----------
        means_r : array of shape (k, r)
        hessian : bool, default False

        Returns
        -------
        Stats
        """
        centers = self.truth.means
        pts = (centers[:, None, :] + self.truth.sigma * self.z[None, :, :]).reshape(-1, self.r)
        wts = (self.truth.weights[:, None] * self.wz[None, :]).reshape(-1)
        return batch_stats(pts, wts, self.model(means_r), self.truth, hessian=hessian)

    def nll(self, means_r: jax.Array) -> jax.Array:
        """Population negative log-likelihood, shape ()."""
        return updates.nll(self.stats(means_r), self.model(means_r), self.frame)

    def kl(self, means_r: jax.Array) -> jax.Array:
        """``KL(truth || model)``, shape ()."""
        model = self.model(means_r)
        return updates.kl(self.stats(means_r), model, self.frame, self.truth.sigma)

    def grad(self, means_r: jax.Array) -> jax.Array:
        """Gradient of the NLL with respect to the means, shape (k, r)."""
        return updates.grad(self.stats(means_r), self.model(means_r))

    def mean_shift(self, means_r: jax.Array) -> jax.Array:
        """``E[psi_i(x) (x - mu_i)]``, shape (k, r)."""
        return updates.mean_shift(self.stats(means_r), self.model(means_r))

    def em_means(self, means_r: jax.Array) -> jax.Array:
        """One population EM step on the means (weights fixed), shape (k, r)."""
        return updates.em_means(self.stats(means_r), self.model(means_r))

    def gradient_em_means(self, means_r: jax.Array, eta) -> jax.Array:
        """One population gradient-EM step with step size ``eta``, shape (k, r)."""
        return updates.gradient_em_means(self.stats(means_r), self.model(means_r), eta)

    def hessian(self, means_r: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Hessian of the NLL in frame coordinates and its orthogonal block.

        Returns
        -------
        h : array of shape (k*r, k*r)
        perp_block : array of shape (k, k)
            The Hessian on directions orthogonal to the frame is ``perp_block kron P_perp``.
        """
        model = self.model(means_r)
        return updates.hessian(self.stats(means_r, hessian=True), model, self.frame)

    def to_frame(self, means) -> jax.Array:
        """Ambient means (k, d) -> frame coordinates (k, r)."""
        return (jnp.asarray(means) - self.origin) @ self.basis

    def lift(self, means_r: jax.Array) -> jax.Array:
        """Frame coordinates (k, r) -> ambient means (k, d)."""
        return self.origin + means_r @ self.basis.T


def standard_nodes(
    rule: str,
    r: int,
    level: int,
    seed: int = 0,
    radius: float = quadrature.TRAPEZOID_RADIUS,
) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of ``N(0, I_r)`` for ``rule`` at ``level``, replicates pooled.

    Parameters
    ----------
    rule : str
        One of :data:`gmmscape.core.quadrature.RULES`.
    r : int
    level : int
    seed : int, default 0
    radius : float, default TRAPEZOID_RADIUS

    Returns
    -------
    z : ndarray of shape (m, r)
    wz : ndarray of shape (m,)
        Non-negative, summing to 1.
    """
    nodes = quadrature.node_set(rule, r, level, seed, radius)
    z = np.concatenate([np.asarray(zz) for zz, _ in nodes.replicates])
    wz = np.concatenate([np.asarray(ww) for _, ww in nodes.replicates])
    return z, wz / wz.sum()


def fixed_population(
    truth: Mixture,
    means0,
    *,
    model_weights=None,
    sigma: float = 1.0,
    rule: str = "auto",
    level: int | None = None,
    refine: int = 1,
    rtol: float = POPULATION_RTOL,
    atol: float = POPULATION_ATOL,
    max_nodes: int = FIXED_MAX_NODES,
    seed: int = 0,
) -> tuple[FixedPopulation, dict]:
    """Choose a frame and a node set for runs that start at ``means0``.

    Parameters
    ----------
    truth : Mixture
        The truth, k* centers in dimension d.
    means0 : array_like of shape (k, d)
        Starting means; the frame is the affine span of these and the true centers.
    model_weights : array_like of shape (k,), optional
        Fixed model weights (uniform by default).
    sigma : float, default 1.0
        Fixed model standard deviation.
    rule : str, default "auto"
        A quadrature rule name, or "auto" to take the adaptive source's choice.
    level : int, optional
        Use this level of ``rule`` (which must then be named) instead of choosing one.
    refine : int, default 1
        Levels added to the adaptive choice, as a margin for the rest of the run.
    rtol, atol : float
        Tolerances for the adaptive choice at ``means0``.
    max_nodes : int, default FIXED_MAX_NODES
        Cap on the nodes per true center.
    seed : int, default 0
        Seed of randomized rules.

    Returns
    -------
    fp : FixedPopulation
    info : dict
        ``rule``, ``level``, ``nodes`` (per center), ``r`` and, when chosen adaptively,
        ``error_estimate`` (the adaptive source's relative error at ``means0``).
    """
    if not isinstance(truth, Mixture):
        raise ValueError(f"truth must be a gmmscape.Mixture; got {type(truth).__name__}.")
    means0 = as_float_array(means0, "means0", ndim=2)
    k = means0.shape[0]
    if means0.shape[1] != truth.d:
        raise ValueError(f"means0 must have {truth.d} columns (the truth's d); got {means0.shape}.")
    weights = (
        np.full(k, 1.0 / k)
        if model_weights is None
        else check_weights(model_weights, k, "model_weights")
    )
    model0 = Mixture(means0, weights, sigma)
    check_positive_int(max_nodes, "max_nodes")
    frame = span_frame(model0, truth)
    r = frame.r
    radius = quadrature.TRAPEZOID_RADIUS
    info: dict = {"r": r}
    if level is None:
        source = PopulationSource(truth, rule=rule, rtol=rtol, atol=atol, max_nodes=max_nodes)
        report = source.expect(model0).quadrature
        rule, level = report.rule, report.level
        radii = [t["radius"] for t in report.tried if t["rule"] == rule and t["radius"]]
        radius = max(radii, default=radius)
        info["error_estimate"] = report.max_relative_error
        while refine > 0 and quadrature.node_count(rule, r, level + 1, radius) <= max_nodes:
            level, refine = level + 1, refine - 1
    elif rule == "auto":
        raise ValueError("level requires a named rule, not rule='auto'.")
    z, wz = standard_nodes(rule, r, level, seed, radius)
    info.update(rule=rule, level=int(level), nodes=int(z.shape[0]))
    truth_r = Mixture._raw(
        (jnp.asarray(truth.means) - frame.origin) @ frame.basis, truth.weights, truth.sigma
    )
    fp = FixedPopulation(
        z=jnp.asarray(z),
        wz=jnp.asarray(wz),
        truth=truth_r,
        model_weights=jnp.asarray(weights),
        model_sigma=jnp.asarray(float(sigma)),
        origin=jnp.asarray(frame.origin),
        basis=jnp.asarray(frame.basis),
        perp_var=float(frame.perp_var),
        d=int(frame.d),
    )
    return fp, info
