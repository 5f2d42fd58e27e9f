"""Losses, derivatives and update rules computed from summed :class:`Stats`.

Each function here is the single implementation of its quantity for every source
(the one engine, README "Layout"). Inputs are the summed statistics and the model expressed in the
source's :class:`~gmmscape.core.frame.Frame` coordinates; outputs are in the same
coordinates (the sources lift them back). All functions are pure ``jax.numpy`` code and
may be jitted, vmapped and scanned.

Notation (docs/reference.md section 1): ``W = sum w``; ``E[f] = sum w f / W``;
``psi`` responsibilities; ``sigma`` the model's standard deviation.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gmmscape.core import families
from gmmscape.core.frame import Frame
from gmmscape.core.mixture import Masks, Mixture, Params
from gmmscape.core.stats import Stats

#: A component whose responsibility mass ``E[psi_i]`` is at most this keeps its mean in
#: an EM step (0/0 would be NaN).
EMPTY_MASS = 1e-300


def _perp_nll(frame: Frame, sigma) -> jax.Array:
    """Exact contribution of the orthogonal noise to the mean NLL."""
    s2 = sigma**2
    return frame.n_perp * (0.5 * jnp.log(2 * jnp.pi * s2) + 0.5 * frame.perp_var / s2)


def nll(stats: Stats, model: Mixture, frame: Frame) -> jax.Array:
    """Mean negative log-likelihood ``-E[log p_model(x)]``.

    Parameters
    ----------
    stats : Stats
    model : Mixture (frame coordinates)
    frame : Frame

    Returns
    -------
    array of shape ()
    """
    return -stats.ll / stats.w + _perp_nll(frame, model.sigma)


def kl(stats: Stats, model: Mixture, frame: Frame, ref_sigma) -> jax.Array:
    """``E[log p_ref(x) - log p_model(x)]``, which is ``KL(ref || model)`` under ``ref``.

    Parameters
    ----------
    stats : Stats
        Summed with a reference density.
    model : Mixture (frame coordinates)
    frame : Frame
    ref_sigma : float
        The reference's standard deviation (for the orthogonal directions).

    Returns
    -------
    array of shape ()
    """
    ratio = frame.perp_var / model.sigma**2
    per_dim = jnp.log(model.sigma / ref_sigma) + 0.5 * ratio - 0.5
    perp = jnp.where(frame.n_perp > 0, frame.n_perp * per_dim, 0.0)
    return stats.lr / stats.w + perp


def mean_shift(stats: Stats, model: Mixture) -> jax.Array:
    """``E[psi_i(x) (x - mu_i)]``, shape (k, r): the direction of gradient EM."""
    return (stats.r1 - stats.r0[:, None] * model.means) / stats.w


def grad(stats: Stats, model: Mixture) -> jax.Array:
    """Gradient of the mean NLL with respect to the means, ``-E[psi_i (x - mu_i)] / sigma^2``.

    Parameters
    ----------
    stats : Stats
    model : Mixture (frame coordinates)

    Returns
    -------
    array of shape (k, r)
    """
    return -mean_shift(stats, model) / model.sigma**2


def hessian(stats: Stats, model: Mixture, frame: Frame) -> tuple[jax.Array, jax.Array]:
    """Hessian of the mean NLL with respect to the means, in frame coordinates.

    ``H_ij = E[psi_i psi_j g_i g_j^T] - delta_ij E[psi_i g_i g_i^T] + delta_ij E[psi_i] I /
    sigma^2`` with ``g_i = (x - mu_i) / sigma^2``.

    Parameters
    ----------
    stats : Stats
        Summed with ``hessian=True``.
    model : Mixture (frame coordinates)
    frame : Frame

    Returns
    -------
    h : array of shape (k*r, k*r)
        The Hessian on the frame's directions.
    perp_block : array of shape (k, k)
        ``M`` with the Hessian on orthogonal directions equal to ``M kron P_perp``:
        ``tau^2 / sigma^4 (E[psi psi^T] - diag E[psi]) + diag E[psi] / sigma^2``, where
        ``tau^2`` is the frame's orthogonal noise variance.
    """
    w = stats.w
    s2 = model.sigma**2
    k, r = model.means.shape
    mass = stats.r0 / w
    eye_r = jnp.eye(r, dtype=model.means.dtype)
    diag_blocks = -stats.h_diag / w + mass[:, None, None] * eye_r / s2
    h = stats.h_outer / w
    h4 = h.reshape(k, r, k, r)
    idx = jnp.arange(k)
    h4 = h4.at[idx, :, idx, :].add(diag_blocks)
    tau2 = frame.perp_var
    perp_block = tau2 / s2**2 * (stats.pp / w - jnp.diag(mass)) + jnp.diag(mass) / s2
    return h4.reshape(k * r, k * r), perp_block


def em_means(stats: Stats, model: Mixture) -> jax.Array:
    """The EM update of the means, ``E[psi_i x] / E[psi_i]``.

    A component with responsibility mass at most :data:`EMPTY_MASS` keeps its mean.

    Parameters
    ----------
    stats : Stats
    model : Mixture (frame coordinates)

    Returns
    -------
    array of shape (k, r)
    """
    empty = stats.r0 <= EMPTY_MASS * stats.w
    safe = jnp.where(empty, 1.0, stats.r0)
    return jnp.where(empty[:, None], model.means, stats.r1 / safe[:, None])


def em_weights(stats: Stats) -> jax.Array:
    """The EM update of the weights, ``E[psi_i]``, shape (k,)."""
    return stats.r0 / stats.w


def gradient_em_means(stats: Stats, model: Mixture, eta) -> jax.Array:
    """One gradient EM step, ``mu_i + eta E[psi_i (x - mu_i)]``.

    Equal to a gradient step on the NLL with step ``eta sigma^2`` (docs/reference.md section 1).

    Parameters
    ----------
    stats : Stats
    model : Mixture (frame coordinates)
    eta : float
        Step size.

    Returns
    -------
    array of shape (k, r)
    """
    return model.means + eta * mean_shift(stats, model)


def m_step(
    stats: Stats,
    params: Params,
    masks: Masks,
    reg_covar,
    floor,
    step_size,
    family: str,
    algorithm: str,
    scatter=None,
    coupled=None,
) -> tuple[Params, jax.Array]:
    """One M-step (or gradient EM step for the means) of a mixture of any family.

    Weights: ``r0_k / W`` for updated components, rescaled so that the weights of frozen
    components keep their values and all weights sum to one. Means: :func:`em_means` or
    :func:`gradient_em_means` (``mu_k + eta (r1_k - r0_k mu_k) / W``), the same rules as
    the isotropic model's. Covariances: the family's scatter about the new means plus
    ``reg_covar``, factored stably (:meth:`gmmscape.core.families.Family.factor`).

    Parameters
    ----------
    stats : Stats
        From :func:`gmmscape.core.stats.family_stats` (``w, r0, r1, s2``) at ``params``.
    params : Params
        The parameters the statistics were computed with.
    masks : Masks
    reg_covar : float
        Added to every variance.
    floor : array of shape (d,), or () for scalar variances
        Collapse floor of the variances.
    step_size : float
        Gradient-EM step ``eta`` (unused by ``"em"``).
    family : str
    algorithm : {"em", "gradient_em"}
    scatter : callable, optional
        The scatter in place of the family's (same signature as
        :attr:`gmmscape.core.families.Family.scatter`): another model stored like
        ``family``, or a ``lax.switch`` over several (one program for a group of models).
    coupled : bool or bool array of shape (), optional
        In place of the family's :attr:`~gmmscape.core.families.Family.coupled` (traced
        for a group of models).

    Returns
    -------
    params : Params
    n_collapsed : array of shape ()
        Covariances that needed the collapse floor.
    """
    dtype = params.means.dtype
    tiny = jnp.finfo(dtype).tiny
    mw = masks.weights > 0
    nk_u = jnp.where(mw, stats.r0, 0.0)
    free = 1.0 - jnp.sum(jnp.where(mw, 0.0, params.weights))
    new_w = jnp.where(mw, nk_u / jnp.maximum(jnp.sum(nk_u), tiny) * free, params.weights)
    model = Mixture._raw(params.means, params.weights, jnp.asarray(1.0, dtype))
    if algorithm == "em":
        new_m = em_means(stats, model)
    else:
        new_m = gradient_em_means(stats, model, step_size)
    new_m = jnp.where(masks.means[:, None] > 0, new_m, params.means)
    fam = families.get(family)
    empty = stats.r0 <= 10.0 * jnp.finfo(dtype).eps * stats.w
    nk_safe = jnp.where(empty, 1.0, stats.r0)
    scatter = fam.scatter if scatter is None else scatter
    coupled = fam.coupled if coupled is None else coupled
    cov = fam.add_to_variances(
        scatter(stats.r0, stats.r1, stats.s2, stats.w, new_m, nk_safe), reg_covar
    )
    if fam.shared:
        keep = ~(jnp.any(masks.covariances > 0))
    else:  # an empty component keeps its covariance unless the model ties them
        frozen = masks.covariances <= 0
        if isinstance(coupled, bool):
            keep = frozen if coupled else empty | frozen
        else:
            keep = jnp.where(coupled, frozen, empty | frozen)
        keep = keep.reshape((-1,) + (1,) * (cov.ndim - 1))
    cov = jnp.where(keep, params.covariances, cov)
    cov, pc, n_bad = fam.factor(cov, floor)
    return Params(new_w.astype(dtype), new_m, cov, pc), n_bad
