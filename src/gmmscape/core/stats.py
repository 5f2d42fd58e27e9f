"""Per-point statistics of an isotropic mixture, summed over a weighted batch of points.

This module holds the ONE implementation of every statistic that gmmscape's algorithms
need (DESIGN.md section 1). A source (sample, stream, population) only supplies batches of
``(points, weights)`` and adds up the :class:`Stats` that :func:`batch_stats` returns; the
update rules in :mod:`gmmscape.core.updates` turn the sums into losses, gradients,
Hessians and EM steps.

Everything is computed in the log domain: a component 50 sigma away from every point has
responsibility exactly 0, never NaN.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, NamedTuple

import jax
import jax.numpy as jnp

from gmmscape.core import families

if TYPE_CHECKING:  # annotations only: core.mixture imports this module
    from gmmscape.core.mixture import Mixture


class Stats(NamedTuple):
    """Weighted sums of per-point statistics over a batch of points ``x`` with weights ``w``.

    ``psi`` are the model's responsibilities, ``g_i = (x - mu_i) / sigma^2`` and
    ``l = log p_model(x)``. Fields that were not requested are ``None``.

    Attributes
    ----------
    w : array of shape ()
        ``sum w``.
    w2 : array of shape ()
        ``sum w^2`` (for standard errors).
    ll : array of shape ()
        ``sum w l``.
    ll_w2, ll_sq : arrays of shape ()
        ``sum w^2 l`` and ``sum w^2 l^2``.
    lr, lr_w2, lr_sq : arrays of shape () or None
        The same three sums for ``log p_ref(x) - l`` (KL to a known reference).
    r0 : array of shape (k,)
        ``sum w psi_i``.
    r1 : array of shape (k, d)
        ``sum w psi_i x``.
    pg_w2, pg_sq : arrays of shape (k, d)
        ``sum w^2 psi_i (x - mu_i)`` and ``sum w^2 (psi_i (x - mu_i))^2``.
    h_outer : array of shape (k*d, k*d) or None
        ``sum w v v^T`` with ``v = (psi_i g_i)_i`` flattened row-major.
    h_diag : array of shape (k, d, d) or None
        ``sum w psi_i g_i g_i^T``.
    pp : array of shape (k, k) or None
        ``sum w psi psi^T``.
    """

    w: jax.Array
    w2: jax.Array
    ll: jax.Array
    ll_w2: jax.Array
    ll_sq: jax.Array
    lr: jax.Array | None
    lr_w2: jax.Array | None
    lr_sq: jax.Array | None
    r0: jax.Array
    r1: jax.Array
    pg_w2: jax.Array
    pg_sq: jax.Array
    h_outer: jax.Array | None
    h_diag: jax.Array | None
    pp: jax.Array | None


def log_components(x: jax.Array, model: Mixture) -> jax.Array:
    """``log pi_i + log N(x; mu_i, sigma^2 I)`` for every point and component.

    Parameters
    ----------
    x : array of shape (m, d)
    model : Mixture with k components in dimension d

    Returns
    -------
    array of shape (m, k)
    """
    iso = families.get("isotropic")
    return model.log_weights[None, :] + iso.log_gauss(x, model.means, 1.0 / model.sigma)


def log_density(x: jax.Array, model: Mixture) -> jax.Array:
    """Log-density ``log p_model(x)``.

    Parameters
    ----------
    x : array of shape (m, d)
    model : Mixture

    Returns
    -------
    array of shape (m,)
    """
    return jax.nn.logsumexp(log_components(x, model), axis=1)


def normalize_log(lw: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Log-sum-exp and responsibilities of per-component log-densities, for any family.

    The one place responsibilities are computed (DESIGN.md section 1): one ``exp`` per
    entry, shifted by the row maximum, so a component far from a point gets exactly 0
    and a row whose every entry is ``-inf`` gives ``-inf`` and zeros, never NaN.

    Parameters
    ----------
    lw : array of shape (m, k)
        ``log pi_k + log p_k(x)`` for every point and component.

    Returns
    -------
    l : array of shape (m,)
        ``log sum_k exp(lw)``.
    resp : array of shape (m, k)
        ``exp(lw - l)``; rows sum to one.
    """
    top = jnp.max(lw, axis=1, keepdims=True)
    top = jnp.where(jnp.isfinite(top), top, 0.0)
    e = jnp.exp(lw - top)
    tot = jnp.sum(e, axis=1, keepdims=True)
    return (top + jnp.log(tot))[:, 0], e / jnp.where(tot > 0, tot, 1.0)


def responsibilities(x: jax.Array, model: Mixture) -> jax.Array:
    """Posterior component probabilities ``psi_i(x)``, computed in the log domain.

    Parameters
    ----------
    x : array of shape (m, d)
    model : Mixture

    Returns
    -------
    array of shape (m, k)
        Rows sum to one; a component far from a point gets exactly 0.
    """
    return normalize_log(log_components(x, model))[1]


@partial(jax.jit, static_argnames=("hessian",))
def batch_stats(
    x: jax.Array,
    w: jax.Array,
    model: Mixture,
    ref: Mixture | None = None,
    *,
    hessian: bool = False,
) -> Stats:
    """Sum every statistic over one weighted batch of points.

    Parameters
    ----------
    x : array of shape (m, d)
        Points (in the source's coordinates).
    w : array of shape (m,)
        Non-negative point weights; padding rows carry weight 0.
    model : Mixture with k components in dimension d
    ref : Mixture, optional
        A known reference density (the truth), for KL sums.
    hessian : bool, default False
        Also accumulate the Hessian sums (costs ``m (k d)^2``).

    Returns
    -------
    Stats
    """
    l, psi = normalize_log(log_components(x, model))
    w2 = w * w
    diff = x[:, None, :] - model.means[None, :, :]
    pdiff = psi[:, :, None] * diff
    if ref is not None:
        lr_pt = log_density(x, ref) - l
        lr, lr_w2, lr_sq = w @ lr_pt, w2 @ lr_pt, w2 @ (lr_pt * lr_pt)
    else:
        lr = lr_w2 = lr_sq = None
    h_outer = h_diag = pp = None
    if hessian:
        s2 = model.sigma**2
        v = (pdiff / s2).reshape(x.shape[0], -1)
        h_outer = (v * w[:, None]).T @ v
        g = diff / s2
        h_diag = jnp.einsum("m,mi,mia,mib->iab", w, psi, g, g)
        pp = (psi * w[:, None]).T @ psi
    return Stats(
        w=jnp.sum(w),
        w2=jnp.sum(w2),
        ll=w @ l,
        ll_w2=w2 @ l,
        ll_sq=w2 @ (l * l),
        lr=lr,
        lr_w2=lr_w2,
        lr_sq=lr_sq,
        r0=w @ psi,
        r1=jnp.einsum("m,mi,ma->ia", w, psi, x),
        pg_w2=jnp.einsum("m,mia->ia", w2, pdiff),
        pg_sq=jnp.einsum("m,mia->ia", w2, pdiff * pdiff),
        h_outer=h_outer,
        h_diag=h_diag,
        pp=pp,
    )


def add_stats(a: Stats | None, b: Stats) -> Stats:
    """Add two :class:`Stats` field by field (``a`` may be ``None``).

    Parameters
    ----------
    a : Stats or None
    b : Stats

    Returns
    -------
    Stats
    """
    if a is None:
        return b
    return jax.tree_util.tree_map(jnp.add, a, b)


@partial(jax.jit, static_argnames=("n",))
def draw(key: jax.Array, model: Mixture, n: int) -> jax.Array:
    """Draw ``n`` points from ``model``.

    Parameters
    ----------
    key : jax random key
    model : Mixture
    n : int
        Number of points (static).

    Returns
    -------
    array of shape (n, d)
    """
    k_lab, k_noise = jax.random.split(key)
    labels = jax.random.choice(k_lab, model.k, shape=(n,), p=model.weights)
    noise = jax.random.normal(k_noise, (n, model.d), dtype=model.means.dtype)
    return model.means[labels] + model.sigma * noise
