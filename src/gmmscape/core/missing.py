"""Exact E-step statistics of a Gaussian mixture for data with missing entries (MAR).

A point ``x`` with observed coordinates ``O`` and missing ones ``M`` has, under component
``k`` (mean ``mu``, covariance ``Sigma``),

* the marginal density ``N(x_O; mu_O, Sigma_OO)`` of what is observed, from which the
  responsibilities ``r_k`` and the observed-data log-likelihood follow;
* the conditional distribution of what is missing, ``N(xhat_M, Q_MM)`` with
  ``xhat_M = mu_M + Sigma_MO Sigma_OO^-1 (x_O - mu_O)`` and the Schur complement
  ``Q_MM = Sigma_MM - Sigma_MO Sigma_OO^-1 Sigma_OM``.

EM's expected complete-data statistics are then ``E[x | x_O, k] = xhat`` (``x_O`` kept)
and ``E[x x^T | x_O, k] = xhat xhat^T + Q`` (``Q`` zero outside ``M x M``), weighted by
``w r_k`` (Ghahramani & Jordan 1994; Little & Rubin, *Statistical Analysis with Missing
Data*, ch. 11).

Every function works on a batch of rows that share ONE missingness pattern ``obs``
(a boolean mask of shape (d,)), so the rows share one factorization per component. The
pattern enters as data, not as a shape: ``Sigma_OO`` is embedded in the ``d x d`` matrix
``C = M Sigma M + (I - M)`` (``M = diag(obs)``), whose Cholesky factor has the factor of
``Sigma_OO`` on the observed coordinates and ones elsewhere, so one compiled program
serves every pattern. Covariances are taken as full ``(k, d, d)`` matrices
(:func:`full_covariances` builds them from any family's storage), and the second moments
are returned as full matrices; :func:`reduce_second_moments` brings them to the family's
own ``s2`` form, after which the family's M-step (``scatter``) applies unchanged.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

_LOG_2PI = float(np.log(2.0 * np.pi))


class PatternPosterior(NamedTuple):
    """The E-step of a batch of rows sharing one missingness pattern.

    Attributes
    ----------
    weighted_log_prob : array of shape (m, k)
        ``log pi_k + log N(x_O; mu_kO, Sigma_kOO)``.
    cond_means : array of shape (m, k, d)
        ``E[x | x_O, k]``: the observed entries of ``x``, the conditional means of the
        missing ones.
    cond_cov : array of shape (k, d, d)
        ``Cov[x | x_O, k]``: the Schur complement on the missing block, zero elsewhere.
    """

    weighted_log_prob: jax.Array
    cond_means: jax.Array
    cond_cov: jax.Array


def full_covariances(family, cov: jax.Array, k: int, d: int) -> jax.Array:
    """A family's covariances as ``k`` full matrices.

    Parameters
    ----------
    family : gmmscape.core.families.Family
    cov : array
        Covariances in the family's storage (``family.cov_shape(k, d)``).
    k, d : int

    Returns
    -------
    array of shape (k, d, d)
    """
    cov = jnp.asarray(cov)
    if family.matrix:
        return jnp.broadcast_to(cov, (k, d, d))
    var = jnp.broadcast_to(cov[..., None] if family.scalar_variances else cov, (k, d))
    return var[:, :, None] * jnp.eye(d, dtype=cov.dtype)


def reduce_second_moments(family, s2_full: jax.Array) -> jax.Array:
    """Full second moments ``sum w r_k E[x x^T]`` (k, d, d) in the family's ``s2`` form.

    ``(k, d, d)`` for full-like families, ``sum_k`` (``sum w E[x x^T]``, (d, d)) for
    tied-like ones, the diagonals (``sum w r_k E[x**2]``, (k, d)) for diagonal and scalar
    families: the three forms of :mod:`gmmscape.core.families`.

    Parameters
    ----------
    family : gmmscape.core.families.Family
    s2_full : array of shape (k, d, d)

    Returns
    -------
    array
    """
    if not family.matrix:
        return jnp.diagonal(s2_full, axis1=1, axis2=2)
    if family.shared:
        return jnp.sum(s2_full, axis=0)
    return s2_full


def pattern_posterior(
    x: jax.Array, obs: jax.Array, log_weights: jax.Array, means: jax.Array, cov: jax.Array
) -> PatternPosterior:
    """Marginal log-densities and conditional moments of rows sharing one pattern.

    Parameters
    ----------
    x : array of shape (m, d)
        The rows; their missing entries may hold anything (NaN included), they are not read.
    obs : bool array of shape (d,)
        Observed coordinates of every row (at least one).
    log_weights : array of shape (k,)
    means : array of shape (k, d)
    cov : array of shape (k, d, d)
        Positive definite covariances (:func:`full_covariances`).

    Returns
    -------
    PatternPosterior
    """
    m, d = x.shape
    k = means.shape[0]
    dt = cov.dtype
    o = obs.astype(dt)
    eye = jnp.eye(d, dtype=dt)
    outer = o[:, None] * o[None, :]
    c = cov * outer + (eye - jnp.diag(o))  # Sigma_OO embedded, identity on the missing
    lo = jnp.linalg.cholesky(c)  # (k, d, d)
    # the small per-pattern matrices, then one matmul with all the rows for each of them
    linv = jax.scipy.linalg.solve_triangular(lo, jnp.broadcast_to(eye, c.shape), lower=True)
    cinv = jnp.einsum("kba,kbc->kac", linv, linv) * outer  # Sigma_OO^-1 embedded (zeros)
    gain = jnp.einsum("kab,kbc->kac", cov, cinv)  # Sigma_.O Sigma_OO^-1 embedded
    xo = jnp.where(obs[None, :], x, 0.0)
    mo = means * o

    def per_component(mat):  # rows (m, d) -> mat_k (x_O - mu_kO) for every k: (m, k, d)
        prod = xo @ jnp.transpose(mat, (2, 0, 1)).reshape(d, k * d)
        return prod.reshape(m, k, d) - jnp.einsum("kab,kb->ka", mat, mo)[None]

    y = per_component(linv)  # L^-1 (x_O - mu_O)
    maha = jnp.sum(y * y, axis=-1)  # (m, k)
    logdet = jnp.sum(jnp.log(jnp.diagonal(lo, axis1=1, axis2=2)), axis=1)  # half log|S_OO|
    n_obs = jnp.sum(o)
    lp = -0.5 * (n_obs * _LOG_2PI + maha) - logdet[None, :] + log_weights[None, :]
    # conditional means: mu + Sigma_.O Sigma_OO^-1 (x_O - mu_O), x_O kept where observed
    xhat = jnp.where(obs[None, None, :], x[:, None, :], means[None, :, :] + per_component(gain))
    # Schur complement: Sigma - Sigma (M C^-1 M) Sigma, kept on the missing block only
    q = (cov - jnp.einsum("kab,kbc->kac", gain, cov)) * ((1 - o)[:, None] * (1 - o))
    q = 0.5 * (q + jnp.swapaxes(q, 1, 2))
    return PatternPosterior(lp, xhat, q)


def _normalize(lp: jax.Array) -> tuple[jax.Array, jax.Array]:
    top = jnp.max(lp, axis=1, keepdims=True)
    top = jnp.where(jnp.isfinite(top), top, 0.0)
    l = jnp.log(jnp.sum(jnp.exp(lp - top), axis=1)) + top[:, 0]
    return l, jnp.exp(lp - l[:, None])


class PatternStats(NamedTuple):
    """Expected complete-data statistics of weighted rows (see :func:`pattern_stats`).

    Attributes
    ----------
    ll : array of shape ()
        ``sum w log p(x_O)``.
    w : array of shape ()
        ``sum w``.
    nk : array of shape (k,)
        ``sum w r_k``.
    s1 : array of shape (k, d)
        ``sum w r_k E[x | x_O, k]``.
    s2 : array of shape (k, d, d)
        ``sum w r_k E[x x^T | x_O, k]`` (reduce with :func:`reduce_second_moments`).
    """

    ll: jax.Array
    w: jax.Array
    nk: jax.Array
    s1: jax.Array
    s2: jax.Array


def pattern_stats(
    x: jax.Array,
    w: jax.Array,
    obs: jax.Array,
    log_weights: jax.Array,
    means: jax.Array,
    cov: jax.Array,
) -> PatternStats:
    """E-step and expected sufficient statistics of weighted rows sharing one pattern.

    Parameters
    ----------
    x : array of shape (m, d)
    w : array of shape (m,)
        Non-negative row weights; padding rows carry 0.
    obs : bool array of shape (d,)
    log_weights : array of shape (k,)
    means : array of shape (k, d)
    cov : array of shape (k, d, d)

    Returns
    -------
    PatternStats
    """
    post = pattern_posterior(x, obs, log_weights, means, cov)
    l, resp = _normalize(post.weighted_log_prob)
    wr = w[:, None] * resp  # (m, k)
    nk = jnp.sum(wr, axis=0)
    s1 = jnp.einsum("mk,mkd->kd", wr, post.cond_means)
    s2 = jnp.einsum("mka,mkb->kab", wr[:, :, None] * post.cond_means, post.cond_means)
    s2 = s2 + nk[:, None, None] * post.cond_cov
    ll = jnp.sum(jnp.where(w > 0, w * l, 0.0))
    return PatternStats(ll, jnp.sum(w), nk, s1, s2)


def chunked_pattern_stats(
    xc: jax.Array,
    wc: jax.Array,
    mc: jax.Array,
    log_weights: jax.Array,
    means: jax.Array,
    cov: jax.Array,
) -> PatternStats:
    """:func:`pattern_stats` summed over chunks, each chunk one pattern, in a loop.

    Memory is bounded by one chunk's ``(m, k, d)`` intermediates.

    Parameters
    ----------
    xc : array of shape (n_chunks, m, d)
    wc : array of shape (n_chunks, m)
    mc : bool array of shape (n_chunks, d)
        The pattern of each chunk.
    log_weights, means, cov
        As :func:`pattern_stats`.

    Returns
    -------
    PatternStats
    """

    def one(i):
        return pattern_stats(xc[i], wc[i], mc[i], log_weights, means, cov)

    first = one(0)
    if xc.shape[0] == 1:
        return first

    def body(i, acc):
        return jax.tree_util.tree_map(jnp.add, acc, one(i))

    return jax.lax.fori_loop(1, xc.shape[0], body, first)
