"""Per-point statistics of a mixture, summed over a weighted batch of points.

This module holds the ONE implementation of every statistic that gmmscape's algorithms
need (the one engine, README "Layout"). A source (sample, stream, population) only
supplies batches of ``(points, weights)`` and adds up the :class:`Stats` that
:func:`batch_stats` returns; the update rules in :mod:`gmmscape.core.updates` turn the
sums into losses, gradients, Hessians and EM steps.

Two kinds of model use the one :class:`Stats` struct: the isotropic :class:`Mixture` of
the research half (:func:`batch_stats`: losses, gradients, Hessians, standard errors) and
a mixture of any covariance family of :mod:`gmmscape.core.families` given as
:class:`~gmmscape.core.mixture.Params` (:func:`family_stats`, :func:`scan_family_stats`:
the E-step and the sufficient statistics of the M-step). Both compute responsibilities
through :func:`normalize_log`, the one place they are computed.

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
    from gmmscape.core.mixture import Mixture, Params


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
    s2 : array or None
        The second moments of a covariance family (:func:`family_stats`):
        ``sum w psi_k x x^T`` (k, d, d) for full-like families, ``sum w x x^T`` (d, d)
        for tied-like ones, ``sum w psi_k x**2`` (k, d) for the others.

    The isotropic research half fills the first fields (:func:`batch_stats`); the
    estimator of any family fills ``w, ll, r0, r1, s2`` (:func:`family_stats`). Every
    field but ``w`` defaults to ``None``.
    """

    w: jax.Array
    w2: jax.Array | None = None
    ll: jax.Array | None = None
    ll_w2: jax.Array | None = None
    ll_sq: jax.Array | None = None
    lr: jax.Array | None = None
    lr_w2: jax.Array | None = None
    lr_sq: jax.Array | None = None
    r0: jax.Array | None = None
    r1: jax.Array | None = None
    pg_w2: jax.Array | None = None
    pg_sq: jax.Array | None = None
    h_outer: jax.Array | None = None
    h_diag: jax.Array | None = None
    pp: jax.Array | None = None
    s2: jax.Array | None = None


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

    The one place responsibilities are computed (the one engine, README "Layout"): one ``exp`` per
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


# --------------------------------------------------------------------------------------
# a mixture of any covariance family (the estimator's model)
# --------------------------------------------------------------------------------------
def family_log_prob(x: jax.Array, params: Params, family: str) -> jax.Array:
    """``log pi_k + log N(x; mu_k, Sigma_k)`` for every point and component.

    Parameters
    ----------
    x : array of shape (m, d)
    params : Params
    family : str
        A family of :data:`gmmscape.core.families.FAMILIES`.

    Returns
    -------
    array of shape (m, k)
    """
    fam = families.get(family)
    lg = fam.log_gauss(x, params.means, params.precisions_cholesky)
    return lg + jnp.log(params.weights)[None, :]


def family_stats(x: jax.Array, w: jax.Array, params: Params, family: str) -> Stats:
    """E-step and sufficient statistics of one weighted batch under a family's mixture.

    Parameters
    ----------
    x : array of shape (m, d)
    w : array of shape (m,)
        Non-negative point weights; padding rows carry weight 0.
    params : Params
    family : str

    Returns
    -------
    Stats
        ``w = sum w``, ``ll = sum w log p(x)``, ``r0 = sum w psi`` (k,),
        ``r1 = sum w psi x`` (k, d) and the family's second moments ``s2``.
    """
    fam, log_w = families.get(family), jnp.log(params.weights)
    l, r0, r1, s2 = fam.estep_moments(
        x, w, params.means, params.precisions_cholesky, log_w, normalize_log
    )
    return _stats_of(l, w, r0, r1, s2)


def chunk_sum(fn, *chunked, lo=0, hi=None):
    """``sum_i fn(*(a[i] for a in chunked))`` over chunks ``lo <= i < hi``, in a loop.

    Only one chunk's intermediates are alive at a time; ``fn`` returns a pytree. Chunks
    are read by dynamic index: slicing the stacked arrays would copy all the data. ``lo``
    and ``hi`` (default: every chunk; ``lo < hi``) may be traced, so host threads can sum
    disjoint ranges of the same buffer with one compiled function.

    Parameters
    ----------
    fn : callable
        Maps one chunk of each array to a pytree of arrays.
    *chunked : arrays with a leading chunk axis of the same length
    lo, hi : int or int array of shape (), optional

    Returns
    -------
    pytree
        The leaf-wise sum.
    """
    if hi is None and chunked[0].shape[0] == 1:  # one chunk: no loop to compile
        return fn(*(a[0] for a in chunked))
    hi = chunked[0].shape[0] if hi is None else hi
    first = fn(*(a[lo] for a in chunked))

    def body(i, acc):
        return jax.tree_util.tree_map(jnp.add, acc, fn(*(a[i] for a in chunked)))

    return jax.lax.fori_loop(lo + 1, hi, body, first)


def _stats_of(l, w, r0, r1, s2) -> Stats:
    # padding rows have w = 0; where() keeps a -inf log-density there out of the sum
    ll = jnp.sum(jnp.where(w > 0, w * l, 0.0))
    return Stats(w=jnp.sum(w), ll=ll, r0=r0, r1=r1, s2=s2)


#: The largest features array (bytes) :func:`chunk_features` builds for a loop: a fit
#: whose features fit keeps them, beyond that it builds them chunk by chunk each pass,
#: so a fit's memory stays bounded by the data's (the full family's features are
#: ``d (d + 3) / 2`` columns, 9.5 times the data at d = 16).
FEATURES_CACHE_BYTES = 2**27


def chunk_features(xc: jax.Array, family: str) -> jax.Array | None:
    """The features of every chunk (``Family.features``), built once for a loop over the
    same points, or None where the family's E-step has none for these chunks or they
    would exceed :data:`FEATURES_CACHE_BYTES`.

    Building the full family's quadratic features costs XLA's CPU backend as much as
    the rest of its E-step (N = 1e5, d = 5, k = 8: 14.7 ms a pass from the points,
    8.8 ms from kept features).

    Parameters
    ----------
    xc : array of shape (n_chunks, m, d)
    family : str

    Returns
    -------
    array of shape (n_chunks, m, f) or None
        For :func:`scan_family_stats`'s ``zc``.
    """
    fam = families.get(family)
    n_chunks, m, d = xc.shape
    if not fam.has_features(d, xc.dtype):
        return None
    f = jax.eval_shape(fam.features, jax.ShapeDtypeStruct((1, d), xc.dtype)).shape[1]
    if n_chunks * m * f * xc.dtype.itemsize > FEATURES_CACHE_BYTES:
        return None
    return jax.lax.map(fam.features, xc)


def features_moments(z, w, params: Params, family: str, normalize=None):
    """:meth:`Family.estep_moments` of one chunk from its features ``z``
    (:func:`chunk_features`): ``(l (m,), nk, s1, s2)``.

    Parameters
    ----------
    z : array of shape (m, f)
    w : array of shape (m,)
    params : Params
    family : str
    normalize : callable, optional
        Default :func:`normalize_log`.

    Returns
    -------
    tuple
    """
    fam = families.get(family)
    return fam.features_stats(z, w, params.means, params.precisions_cholesky,
                              jnp.log(params.weights), normalize or normalize_log)  # fmt: skip


def scan_family_stats(
    xc: jax.Array, wc: jax.Array, params: Params, family: str, lo=0, hi=None, zc=None
) -> Stats:
    """:func:`family_stats` summed over fixed-size chunks in a loop.

    Memory is bounded by one chunk's intermediates, ``O(m k d)``.

    Parameters
    ----------
    xc : array of shape (n_chunks, m, d)
    wc : array of shape (n_chunks, m)
    params : Params
    family : str
    lo, hi : int or int array of shape (), optional
        Sum chunks ``lo <= i < hi`` only (default all).
    zc : array of shape (n_chunks, m, f), optional
        The chunks' features (:func:`chunk_features`); the pass then reads them instead
        of building them from ``xc`` (the same statistics).

    Returns
    -------
    Stats
    """
    if zc is not None:

        def one(z, w):
            l, r0, r1, s2 = features_moments(z, w, params, family)
            return _stats_of(l, w, r0, r1, s2)

        return chunk_sum(one, zc, wc, lo=lo, hi=hi)
    return chunk_sum(lambda x, w: family_stats(x, w, params, family), xc, wc, lo=lo, hi=hi)


@partial(jax.jit, static_argnames=("family",))
def batched_family_stats(xc, wc, params: Params, lo=None, hi=None, *, family: str) -> Stats:
    """:func:`scan_family_stats` vmapped over a batch of parameters, compiled.

    Parameters
    ----------
    xc : array of shape (n_chunks, m, d)
    wc : array of shape (n_chunks, m)
    params : Params with a leading batch axis b
    lo, hi : int array of shape (), optional
        Sum chunks ``lo <= i < hi`` only (default all); traced, so every range of the
        same buffer runs one compiled function (one host thread each).
    family : str

    Returns
    -------
    Stats with a leading batch axis b
    """
    lo = 0 if lo is None else lo
    return jax.vmap(lambda p: scan_family_stats(xc, wc, p, family, lo, hi))(params)


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
