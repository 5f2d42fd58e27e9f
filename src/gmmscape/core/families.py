"""Covariance families: one registry entry per family, the same small set of pure functions.

Every algorithm that needs a Gaussian log-density, the sufficient statistics of a
covariance or its M-step asks the family for them (the one engine, README "Layout"); nothing else
branches on the covariance type. Adding a family is adding one :class:`Family` to
:data:`FAMILIES`.

A family stores covariances in its own shape and keeps a *precision factor* ``P`` beside
them, the stable form every log-density is computed from (``P P^T`` is the precision;
``log det P`` is half the log-determinant of the precision):

=========== =================== ======================= ================================
family      covariances         precision factor        model
=========== =================== ======================= ================================
full        (k, d, d)           (k, d, d)               one covariance matrix each
tied        (d, d)              (d, d)                  one matrix shared by all
diag        (k, d)              (k, d)                  one variance per feature each
spherical   (k,)                (k,)                    one variance each
isotropic   ()                  ()                      one variance shared by all (the
                                                        seeds' known-sigma model; EM
                                                        keeps it frozen)
=========== =================== ======================= ================================

mclust's eigen-decomposition models ``Sigma_k = lambda_k D_k A_k D_k^T`` (volume,
shape, orientation; Equal, Variable or Identity across components) are entries stored as
one of the first four, each with its own M-step (``scatter``) and parameter count
(mclust's ``nMclustParams`` less the means and weights): EII, VII (= spherical) as
``(k,)``; EEI, VEI, EVI, VVI (= diag) as ``(k, d)``; EEE (= tied) as ``(d, d)``; VEE,
EVE, VVE, EEV, VEV, EVV, VVV (= full) as ``(k, d, d)``. Closed forms (Celeux & Govaert
1995) for all but VEI, VEE, VEV (alternating volumes and shape) and EVE, VVE (common
orientation by majorization-minimization, Browne & McNicholas 2014), iterated inside the
M-step. An equal-parameter model stores its common value once per component.

The second moments ``s2`` a family sums over points ``x`` with weighted
responsibilities ``wr`` are ``sum wr_k x x^T`` (full), ``sum w x x^T`` (tied) or
``sum wr_k x**2`` (diag, spherical, isotropic).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import jax
import jax.numpy as jnp
import numpy as np

_LOG_2PI = float(np.log(2.0 * np.pi))
#: A collapsed covariance gets this fraction of each column's variance on its diagonal
#: (float64; float32 uses 10 sqrt(eps), about 3e-3, above its rounding noise).
COLLAPSE_FLOOR = 1e-6
#: A variance below this many machine epsilons times its column's variance counts as
#: collapsed (rounding noise, not a fitted spread).
COLLAPSE_NOISE = 100.0


@dataclass(frozen=True)
class Family:
    """One covariance family: its shapes and pure ``jax.numpy`` functions.

    Attributes
    ----------
    name : str
    cov_shape : callable ``(k, d) -> tuple``
        Shape of the covariances (and of the precision factor).
    shared : bool
        One covariance for all components (no component axis).
    matrix : bool
        Covariances are ``d x d`` matrices (else variances).
    log_gauss : callable ``(x (m, d), means (k, d), P) -> (m, k)``
        ``log N(x; mu_k, Sigma_k)`` from the precision factor.
    moments : callable ``(x (m, d), wr (m, k)) -> (nk (k,), s1 (k, d), s2)``
        The sufficient statistics of weighted responsibilities.
    scatter : callable ``(nk, s1, s2, w, means, nk_safe) -> covariances``
        The weighted scatter about ``means`` (the M-step, before ``reg_covar``).
    n_cov_params : callable ``(k, d) -> int``
        Free parameters of the covariances.
    sample_noise : callable ``(rng, cov_k, n, d) -> (n, d)``
        ``n`` draws of ``N(0, Sigma_k)`` with NumPy's ``rng``, ``cov_k`` the covariance
        of one component (as scikit-learn draws them).
    """

    name: str
    cov_shape: Callable
    shared: bool
    matrix: bool
    log_gauss: Callable
    moments: Callable
    scatter: Callable
    n_cov_params: Callable
    sample_noise: Callable
    #: The model's constraint survives a per-feature rescaling ``x -> S x`` (``S``
    #: diagonal): ``S Sigma_k S`` is again a member. Equal shapes or orientations of
    #: rotated ellipsoids (EEV, VEV, EVE, VVE) do not; scalar variances cannot.
    rescalable: bool = True
    #: The M-step ties the components' covariances together (an mclust model with an
    #: Equal volume, shape or orientation): an empty component takes the model's value
    #: from ``scatter``, not its old covariance, so the fit stays a member of the model.
    coupled: bool = False
    #: Optional fused E-step and moments of one chunk, ``(x (m, d), w (m,), means (k, d),
    #: P, log_weights (k,), normalize) -> (l (m,), nk, s1, s2)``: what
    #: :meth:`estep_moments` computes, in fewer kernels (``None``: that composition).
    fused_stats: Callable | None = None
    #: Optional features of the fused E-step, ``(x (m, d)) -> z (m, f)``, and the pass
    #: from them, ``(z, w, means, P, log_weights, normalize) -> (l, nk, s1, s2)``: with
    #: ``fused_stats(x, ...) == features_stats(features(x), ...)`` wherever
    #: :meth:`has_features` holds, so a loop over the same points can build the features
    #: once (:func:`gmmscape.core.stats.chunk_features`) instead of once an iteration.
    features: Callable | None = None
    features_stats: Callable | None = None

    def has_features(self, d: int, dtype) -> bool:
        """Whether the fused E-step of ``d`` features in ``dtype`` runs on :attr:`features`.

        Parameters
        ----------
        d : int
        dtype : numpy dtype

        Returns
        -------
        bool
        """
        return self.features is not None and features_fit(d) and expands_full(dtype)

    def estep_moments(self, x, w, means, pf, log_weights, normalize):
        """E-step and moments of one batch of weighted points.

        Parameters
        ----------
        x : array of shape (m, d)
        w : array of shape (m,)
            Point weights.
        means : array of shape (k, d)
        pf : array
            The precision factor (:attr:`cov_shape`).
        log_weights : array of shape (k,)
            ``log pi_k``.
        normalize : callable ``(lw (m, k)) -> (l (m,), resp (m, k))``
            Log-sum-exp and responsibilities (``gmmscape.core.stats.normalize_log``).

        Returns
        -------
        l : array of shape (m,)
            ``log sum_k pi_k N(x; mu_k, Sigma_k)``.
        nk, s1, s2
            :attr:`moments` of ``w r``.
        """
        if self.fused_stats is not None:
            return self.fused_stats(x, w, means, pf, log_weights, normalize)
        l, resp = normalize(self.log_gauss(x, means, pf) + log_weights[None, :])
        return (l, *self.moments(x, w[:, None] * resp))

    # -- generic pieces, the same for every family, written once ------------------------
    @property
    def scalar_variances(self) -> bool:
        """One variance per covariance (spherical, isotropic), not one per feature."""
        return not self.matrix and 3 not in self.cov_shape(2, 3)

    def identity(self, d: int, dtype=np.float64) -> np.ndarray:
        """The covariance of one component that is the identity (padding, defaults)."""
        return np.eye(d, dtype=dtype) if self.matrix else np.ones((), dtype)

    def add_to_variances(self, cov: jax.Array, v) -> jax.Array:
        """``cov`` with ``v`` added to every variance (the diagonal of a matrix)."""
        if self.matrix:
            return cov + v * jnp.eye(cov.shape[-1], dtype=cov.dtype)
        return cov + v

    def component(self, cov, i: int):
        """The covariance of component ``i`` (the shared one for a shared family)."""
        return cov if self.shared else cov[i]

    def precisions(self, pf: np.ndarray) -> np.ndarray:
        """Precisions ``P P^T`` (matrices) or ``P**2`` (variances), NumPy."""
        if self.matrix:
            return np.einsum("...ij,...lj->...il", pf, pf)
        return pf**2

    def from_precisions(self, prec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Covariances and the upper-triangular precision factor scikit-learn stores
        (``U U^T = prec``, ``U = inv(chol(cov))^T``), from precisions, NumPy."""
        if not self.matrix:
            return 1.0 / prec, np.sqrt(prec)
        # the lower Cholesky factor of the flipped matrix, flipped back
        flip = np.asarray(prec)[..., ::-1, ::-1]
        return np.linalg.inv(prec), np.linalg.cholesky(flip)[..., ::-1, ::-1]

    def factor(self, cov: jax.Array, floor) -> tuple[jax.Array, jax.Array, jax.Array]:
        """:func:`precision_factor` of this family's covariances."""
        return precision_factor(cov, floor, self.matrix, self.shared)


# --------------------------------------------------------------------------------------
# log-densities from the precision factor
# --------------------------------------------------------------------------------------
def _norm(maha, logdet, d):
    return -0.5 * (d * _LOG_2PI + maha) + logdet


def _log_full(x, means, pc):
    k, d = means.shape
    # one matmul of the points with every precision factor: (m, d) @ (d, k*d)
    pf = jnp.transpose(pc, (1, 0, 2)).reshape(d, k * d)
    y = (x @ pf).reshape(x.shape[0], k, d) - jnp.einsum("ka,kab->kb", means, pc)[None]
    logdet = jnp.sum(jnp.log(jnp.diagonal(pc, axis1=1, axis2=2)), 1)
    return _norm(jnp.sum(y * y, axis=-1), logdet[None, :], d)


def _log_tied(x, means, pc):
    diff = (x @ pc)[:, None, :] - (means @ pc)[None, :, :]
    return _norm(jnp.sum(diff * diff, axis=-1), jnp.sum(jnp.log(jnp.diagonal(pc))), x.shape[1])


def _natural_diag(means, pc):
    """``(W (2 d, k), c (k,))`` with ``log N(x; mu_k, Sigma_k) = x @ W[:d] + x**2 @ W[d:]
    + c``."""
    prec = pc * pc
    d = means.shape[1]
    c = _norm(jnp.sum(means**2 * prec, 1), jnp.sum(jnp.log(pc), axis=1), d)
    return jnp.concatenate([(means * prec).T, -0.5 * prec.T], axis=0), c


def _log_diag(x, means, pc):
    # the expanded quadratic form, as scikit-learn's: products with x and x**2
    w, c = _natural_diag(means, pc)
    d = x.shape[1]
    return x @ w[:d] + (x * x) @ w[d:] + c[None, :]


def _log_spherical(x, means, pc):
    prec = pc * pc
    d = means.shape[1]
    maha = (
        jnp.sum(means**2, 1)[None] * prec[None]
        - 2.0 * (x @ means.T) * prec[None]
        + jnp.sum(x * x, axis=1)[:, None] * prec[None]
    )
    return _norm(maha, d * jnp.log(pc)[None], d)


def _log_isotropic(x, means, pc):
    # squared distances formed from differences, exact for points far from the origin
    # (the research half integrates these to 1e-10 and beyond)
    diff = x[:, None, :] - means[None, :, :]
    d = x.shape[-1]
    return _norm(jnp.sum(diff * diff, axis=-1) * (pc * pc), d * jnp.log(pc), d)


# --------------------------------------------------------------------------------------
# sufficient statistics and scatter
# --------------------------------------------------------------------------------------
def _first(x, wr):
    return jnp.sum(wr, axis=0), wr.T @ x


def _pairs(x):
    """The products ``x_a x_b``, ``a <= b`` (m, d (d + 1) / 2), in the row-major order of
    ``np.triu_indices(d)``; built from static slices (a gather is slower)."""
    d = x.shape[1]
    return jnp.concatenate([x[:, a : a + 1] * x[:, a:] for a in range(d)], axis=1)


def _unpack_pairs(t, d):
    """The symmetric (..., d, d) matrices of packed upper triangles ``t`` (..., d (d+1)/2)."""
    rows, cols = np.triu_indices(d)
    idx = np.zeros((d, d), np.int32)
    idx[rows, cols] = idx[cols, rows] = np.arange(rows.size)
    return t[..., idx]


def _full_features(x):
    """``[x_a x_b (a <= b), x]`` (m, d (d + 3) / 2): what the full family's moments (and,
    in float64, its log-density) are linear in."""
    return jnp.concatenate([_pairs(x), x], axis=1)


def _moments_full_features(z, wr, d):
    """:func:`_moments_full` from the features ``z`` of :func:`_full_features`: one
    product ``wr^T z``, no (m, k, d) intermediate."""
    t = wr.T @ z
    p = t.shape[1] - d
    return jnp.sum(wr, axis=0), t[:, p:], _unpack_pairs(t[:, :p], d)


#: The full family uses its quadratic features up to this many features: the features
#: of a chunk, (m, d (d + 3) / 2), grow with d^2 (2144 columns at d = 64). The rule
#: depends on d alone, so padding the components (``n_components`` buckets) never
#: changes the arithmetic of a fit.
FEATURES_MAX_D = 32


def features_fit(d: int) -> bool:
    """Whether the full family computes its moments (and fused E-step) from the quadratic
    features, ``d <= FEATURES_MAX_D``; beyond, the (m, k d) product as before.

    Parameters
    ----------
    d : int
        Features.

    Returns
    -------
    bool
    """
    return d <= FEATURES_MAX_D


def _moments_full(x, wr):
    (m, d), k = x.shape, wr.shape[1]
    if features_fit(d):
        return _moments_full_features(_full_features(x), wr, d)
    s2 = ((wr[:, :, None] * x[:, None, :]).reshape(m, k * d).T @ x).reshape(k, d, d)
    return (*_first(x, wr), s2)


def _moments_tied(x, wr):
    return (*_first(x, wr), (x * jnp.sum(wr, axis=1)[:, None]).T @ x)


def _moments_squares(x, wr):
    return (*_first(x, wr), wr.T @ (x * x))


def _scatter_full(nk, s1, s2, w, means, nk_safe):
    xbar = s1 / nk_safe[:, None]
    c = (
        s2 / nk_safe[:, None, None]
        - means[:, :, None] * xbar[:, None, :]
        - xbar[:, :, None] * means[:, None, :]
        + means[:, :, None] * means[:, None, :]
    )
    return 0.5 * (c + jnp.swapaxes(c, 1, 2))


def _scatter_tied(nk, s1, s2, w, means, nk_safe):
    cross = s1.T @ means
    c = (s2 - cross - cross.T + (means * nk[:, None]).T @ means) / w
    return 0.5 * (c + c.T)


def _scatter_diag(nk, s1, s2, w, means, nk_safe):
    xbar = s1 / nk_safe[:, None]
    return s2 / nk_safe[:, None] - 2.0 * means * xbar + means * means


def _scatter_spherical(nk, s1, s2, w, means, nk_safe):
    return jnp.mean(_scatter_diag(nk, s1, s2, w, means, nk_safe), axis=1)


def _scatter_isotropic(nk, s1, s2, w, means, nk_safe):
    per = _scatter_spherical(nk, s1, s2, w, means, nk_safe)
    return jnp.sum(per * nk) / w


# --------------------------------------------------------------------------------------
# fused E-step and moments of one chunk (Family.fused_stats): the features a family's
# moments are linear in are built once and serve the log-densities too, so a chunk is
# two matrix products and the log-sum-exp (gmmscape.core.stats.normalize_log)
# --------------------------------------------------------------------------------------
def expands_full(dtype) -> bool:
    """Whether the full family's fused E-step uses the expanded quadratic form.

    ``(x - mu)^T Lambda (x - mu) = z @ W + c`` with ``z`` the quadratic features
    (:func:`_full_features`): one product of d (d + 3) / 2 columns instead of ``k``
    products with the d x d precision factors (0.6 of the flops at d = 16). The expanded
    form loses about ``eps |x|^2_Lambda`` (absolute, in the log-density) to cancellation
    for a point near a component far from the data's centre, in standard deviations of
    that component: at float64 (eps 2.2e-16) about 1e-9 at 1e3 standard deviations, so it
    is used there; at float32 (eps 1.2e-7) about 0.1, so float32 keeps the differences
    form of ``log_gauss``.

    Parameters
    ----------
    dtype : numpy dtype

    Returns
    -------
    bool
    """
    return bool(jnp.finfo(dtype).eps < 1e-12)


def _natural_full(means, pc):
    """``(W (d (d + 3) / 2, k), c (k,))`` with ``log N(x; mu_k, Sigma_k) = z @ W + c`` for
    the features ``z`` of :func:`_full_features` and precision ``P P^T``."""
    d = means.shape[1]
    prec = jnp.einsum("kab,kcb->kac", pc, pc)
    rows, cols = np.triu_indices(d)
    quad = prec[:, rows, cols] * np.where(rows == cols, -0.5, -1.0)  # (k, p)
    pm = jnp.einsum("ka,kab->kb", means, pc)  # P^T mu
    lin = jnp.einsum("kab,kb->ka", pc, pm)  # Lambda mu
    logdet = jnp.sum(jnp.log(jnp.diagonal(pc, axis1=1, axis2=2)), 1)
    return jnp.concatenate([quad, lin], axis=1).T, _norm(jnp.sum(pm * pm, 1), logdet, d)


def _stats_full(x, w, means, pc, log_weights, normalize):
    d, lw_x = x.shape[1], log_weights[None, :]
    if not features_fit(d):  # log_gauss, normalize, moments
        l, resp = normalize(_log_full(x, means, pc) + lw_x)
        return (l, *_moments_full(x, w[:, None] * resp))
    if expands_full(x.dtype):
        return _stats_full_features(_full_features(x), w, means, pc, log_weights, normalize)
    l, resp = normalize(_log_full(x, means, pc) + lw_x)
    return (l, *_moments_full_features(_full_features(x), w[:, None] * resp, d))


def _stats_full_features(z, w, means, pc, log_weights, normalize):
    """:func:`_stats_full` (float64, ``d <= FEATURES_MAX_D``) from the features ``z`` of
    :func:`_full_features`: two matrix products and the log-sum-exp."""
    wq, c = _natural_full(means, pc)
    l, resp = normalize(z @ wq + (c + log_weights)[None, :])
    return (l, *_moments_full_features(z, w[:, None] * resp, means.shape[1]))


def _stats_diag(x, w, means, pc, log_weights, normalize):
    # the products with x and x**2 apart: concatenating them into [x, x**2] costs XLA's
    # CPU backend a third of the pass (N = 1e6, d = 16: 160 -> 114 ms)
    d = x.shape[1]
    wd, c = _natural_diag(means, pc)
    sq = x * x
    l, resp = normalize(x @ wd[:d] + sq @ wd[d:] + (c + log_weights)[None, :])
    wr = w[:, None] * resp
    return l, jnp.sum(wr, axis=0), wr.T @ x, wr.T @ sq


def _stats_tied(x, w, means, pc, log_weights, normalize):
    # the full family's expanded form with the shared factor; s2 summed over components
    if not (features_fit(x.shape[1]) and expands_full(x.dtype)):
        l, resp = normalize(_log_tied(x, means, pc) + log_weights[None, :])
        return (l, *_moments_tied(x, w[:, None] * resp))
    return _stats_tied_features(_full_features(x), w, means, pc, log_weights, normalize)


def _stats_tied_features(z, w, means, pc, log_weights, normalize):
    """:func:`_stats_tied` from the features ``z`` of :func:`_full_features`."""
    d = means.shape[1]
    pcs = jnp.broadcast_to(pc, (means.shape[0], d, d))
    l, nk, s1, s2 = _stats_full_features(z, w, means, pcs, log_weights, normalize)
    return l, nk, s1, jnp.sum(s2, axis=0)


def _stats_spherical(x, w, means, pc, log_weights, normalize):
    # the diagonal family's fused pass with the variance repeated over the features
    return _stats_diag(x, w, means, jnp.broadcast_to(pc[:, None], means.shape), log_weights,
                       normalize)  # fmt: skip


# --------------------------------------------------------------------------------------
# sampling (NumPy, scikit-learn's draws)
# --------------------------------------------------------------------------------------
def _noise_matrix(rng, cov, n, d):
    return rng.multivariate_normal(np.zeros(d), cov, n)


def _noise_variances(rng, cov, n, d):
    return rng.standard_normal(size=(n, d)) * np.sqrt(cov)


# --------------------------------------------------------------------------------------
# mclust's eigen-decomposition models Sigma_k = lambda_k D_k A_k D_k^T (Celeux & Govaert
# 1995): each is stored in the cheapest native shape that holds it (spherical, diag or
# full) and imposes its constraint in its scatter, from the per-component scatter
# matrices W_k = N_k S_k (their diagonals for the diagonal models)
# --------------------------------------------------------------------------------------
#: Iterations and relative tolerance of the inner loop of the M-steps without a closed
#: form (VEI, VEE, VEV), as mclust's ``emControl(tol = c(., sqrt(eps)), itmax = c(., .))``
#: (mclust iterates without a bound; each iteration here costs O(k d^2) at most).
INNER_MAX_ITER = 1000


def _live(nk, w):
    """Components with weight (the M-step keeps the covariance of the others)."""
    return nk > 10.0 * jnp.finfo(nk.dtype).eps * w


def _w_diag(nk, s1, s2, w, means, nk_safe):
    """``diag(W_k)`` (k, d), zero for empty components, and the live mask (k,)."""
    live = _live(nk, w)
    dg = _scatter_diag(nk, s1, s2, w, means, nk_safe)
    return jnp.where(live[:, None], nk[:, None] * dg, 0.0), live


def _w_full(nk, s1, s2, w, means, nk_safe):
    """``W_k`` (k, d, d), the identity for empty components, and the live mask (k,)."""
    live = _live(nk, w)
    c = _scatter_full(nk, s1, s2, w, means, nk_safe) * nk[:, None, None]
    eye = jnp.eye(c.shape[-1], dtype=c.dtype)
    return jnp.where(live[:, None, None], c, eye), live


def _eig_w(nk, s1, s2, w, means, nk_safe):
    """Eigen-decomposition ``W_k = L_k diag(om_k) L_k^T`` (ascending, 0 if empty)."""
    wk, live = _w_full(nk, s1, s2, w, means, nk_safe)
    om, vec = jnp.linalg.eigh(wk)
    return jnp.where(live[:, None], jnp.maximum(om, 0.0), 0.0), vec, live


def _geo_mean(v):
    """``prod(v)^(1/d)`` along the last axis, in the log domain."""
    return jnp.exp(jnp.mean(jnp.log(v), axis=-1))


def _rotate(vec, a):
    """``L_k diag(a_k) L_k^T`` for ``vec`` (k, d, d) and ``a`` (k, d) or (d,)."""
    a = jnp.broadcast_to(a, vec.shape[:-1])
    return jnp.einsum("kij,kj,klj->kil", vec, a, vec)


def _volume_shape(trace_of, shape_of, lam0, live, nk, d, dtype):
    """Variable volumes with a common shape, by alternating conditional maxima.

    ``A = shape_of(lam)`` (the common shape, determinant 1), then
    ``lam_k = trace_of(A) / (d N_k)``, from ``lam0`` until the volumes change by less
    than ``sqrt(eps)`` relative (mclust's inner tolerance) or :data:`INNER_MAX_ITER`.
    Returns the volumes (k,) and the shape.
    """
    tol = jnp.sqrt(jnp.finfo(dtype).eps)
    nk_l = jnp.where(live, nk, 1.0)

    def step(lam):
        lam = jnp.where(live & (lam > 0), lam, 1.0)
        a = shape_of(lam)
        return jnp.where(live, trace_of(a) / (d * nk_l), 0.0), a

    def cond(state):
        it, lam, prev, _ = state
        change = jnp.max(jnp.abs(lam - prev) / jnp.maximum(lam, jnp.finfo(dtype).tiny))
        return (it == 0) | ((it < INNER_MAX_ITER) & (change > tol))

    def body(state):
        it, lam, _, _ = state
        new, a = step(lam)
        return it + 1, new, lam, a

    # the first step inside the loop too: one copy of its code in the program
    a0 = jax.eval_shape(shape_of, lam0)
    init = (0, lam0, lam0, jnp.zeros(a0.shape, a0.dtype))
    _, lam, _, a = jax.lax.while_loop(cond, body, init)
    return lam, a


def _scatter_eii(nk, s1, s2, w, means, nk_safe):
    return jnp.broadcast_to(_scatter_isotropic(nk, s1, s2, w, means, nk_safe), nk.shape)


def _scatter_eei(nk, s1, s2, w, means, nk_safe):
    wd, _ = _w_diag(nk, s1, s2, w, means, nk_safe)
    return jnp.broadcast_to(jnp.sum(wd, axis=0) / w, wd.shape)


def _equal_volume(wd, live, w):
    """``lambda A_k`` with one volume and a shape per component, from diagonals ``wd``
    (k, d) of scatter matrices: ``A_k = wd_k / |wd_k|^(1/d)``, ``lambda = sum_k
    |wd_k|^(1/d) / W`` (Celeux & Govaert's EVI, also EVE in its common frame)."""
    wd = jnp.where(live[:, None], wd, 1.0)
    g = _geo_mean(wd)  # |diag W_k|^(1/d)
    return jnp.sum(jnp.where(live, g, 0.0)) / w * wd / g[:, None]


def _scatter_evi(nk, s1, s2, w, means, nk_safe):
    wd, live = _w_diag(nk, s1, s2, w, means, nk_safe)
    return _equal_volume(wd, live, w)


def _common_orientation(wk, live, nk, deltas_of):
    """``Sigma_k = D diag(delta_k) D^T`` with one orientation ``D`` (EVE, VVE).

    Alternates ``delta = deltas_of(diag(D^T W_k D))`` with the majorization-minimization
    step for ``D`` of Browne & McNicholas (2014): ``D <- U V^T`` for the SVD ``U S V^T``
    of ``sum_k (w_k I - W_k) D diag(1 / delta_k)``, ``w_k`` the largest eigenvalue of
    ``W_k``, a step that never increases ``sum_k tr(W_k Sigma_k^-1)``. Starts from the
    eigenvectors of ``sum_k W_k``; stops when the objective ``sum_k tr(W_k Sigma_k^-1) +
    N_k log|Sigma_k|`` changes by less than float64's ``eps^(3/4)`` relative or after
    :data:`INNER_MAX_ITER` steps. Returns the covariances (k, d, d).
    """
    # in float64 whatever the data's dtype: a step costs O(k d^3), and in float32 the
    # objective cannot settle to a tolerance that makes the M-step exact
    out_dtype, dtype = wk.dtype, jnp.float64
    wk = jnp.where(live[:, None, None], wk, 0.0).astype(dtype)
    nk = nk.astype(dtype)
    top = jnp.linalg.eigvalsh(wk)[:, -1]
    eye = jnp.eye(wk.shape[-1], dtype=dtype)
    tol = jnp.finfo(dtype).eps ** 0.75
    nk_live = jnp.where(live, nk, 0.0)

    def deltas(dm):
        proj = jnp.einsum("ai,kab,bi->ki", dm, wk, dm)
        delta = jnp.where(live[:, None], deltas_of(proj), 1.0)
        return delta, jnp.sum(proj / delta) + jnp.sum(nk_live[:, None] * jnp.log(delta))

    def cond(state):
        it, _, _, prev, obj = state
        return (it < INNER_MAX_ITER) & (jnp.abs(prev - obj) > tol * jnp.abs(obj))

    def body(state):
        it, dm, delta, _, obj = state
        f = jnp.einsum("kab,bi,ki->ai", top[:, None, None] * eye - wk, dm, 1.0 / delta)
        u, _, vt = jnp.linalg.svd(f)
        new = u @ vt
        delta, new_obj = deltas(new)
        return it + 1, new, delta, obj, new_obj

    d0 = jnp.linalg.eigh(jnp.sum(wk, axis=0))[1]
    delta0, obj0 = deltas(d0)
    init = (0, d0, delta0, jnp.asarray(jnp.inf, dtype), obj0)
    _, dm, delta, _, _ = jax.lax.while_loop(cond, body, init)
    return _rotate(jnp.broadcast_to(dm, wk.shape), delta).astype(out_dtype)


def _scatter_eve(nk, s1, s2, w, means, nk_safe):
    wk, live = _w_full(nk, s1, s2, w, means, nk_safe)
    return _common_orientation(wk, live, nk, lambda proj: _equal_volume(proj, live, w))


def _scatter_vve(nk, s1, s2, w, means, nk_safe):
    wk, live = _w_full(nk, s1, s2, w, means, nk_safe)
    nk_l = jnp.where(live, nk, 1.0)
    return _common_orientation(wk, live, nk, lambda proj: proj / nk_l[:, None])


def _scatter_vei(nk, s1, s2, w, means, nk_safe):
    wd, live = _w_diag(nk, s1, s2, w, means, nk_safe)
    d = wd.shape[1]

    def shape_of(lam):
        b = jnp.sum(wd / lam[:, None], axis=0)
        return b / _geo_mean(b)

    lam0 = jnp.sum(wd, axis=1) / (d * jnp.where(live, nk, 1.0))
    lam, a = _volume_shape(lambda a: jnp.sum(wd / a, axis=1), shape_of, lam0, live, nk, d, wd.dtype)
    return jnp.where(live, lam, 1.0)[:, None] * a


def _scatter_vee(nk, s1, s2, w, means, nk_safe):
    wk, live = _w_full(nk, s1, s2, w, means, nk_safe)
    wk = jnp.where(live[:, None, None], wk, 0.0)
    d = wk.shape[-1]

    eye = jnp.eye(d, dtype=wk.dtype)

    def shape_of(lam):  # the pooled scatter is positive definite: Cholesky, not LU
        c = jnp.sum(wk / lam[:, None, None], axis=0)
        logdet = 2.0 * jnp.sum(jnp.log(jnp.diag(jnp.linalg.cholesky(c))))
        return c / jnp.exp(logdet / d)

    def trace_of(c):
        inv = jax.scipy.linalg.cho_solve((jnp.linalg.cholesky(c), True), eye)
        return jnp.einsum("kij,ji->k", wk, inv)

    lam0 = jnp.trace(wk, axis1=1, axis2=2) / (d * jnp.where(live, nk, 1.0))
    lam, c = _volume_shape(trace_of, shape_of, lam0, live, nk, d, wk.dtype)
    return jnp.where(live, lam, 1.0)[:, None, None] * c[None]


def _scatter_eev(nk, s1, s2, w, means, nk_safe):
    om, vec, _ = _eig_w(nk, s1, s2, w, means, nk_safe)
    # the eigenvalues of every W_k, paired in order, pooled (lambda A = sum_k Omega_k / n)
    return _rotate(vec, jnp.sum(om, axis=0) / w)


def _scatter_vev(nk, s1, s2, w, means, nk_safe):
    om, vec, live = _eig_w(nk, s1, s2, w, means, nk_safe)
    d = om.shape[1]
    tiny = jnp.finfo(om.dtype).tiny

    def shape_of(lam):
        b = jnp.maximum(jnp.sum(om / lam[:, None], axis=0), tiny)
        return b / _geo_mean(b)

    lam0 = jnp.sum(om, axis=1) / (d * jnp.where(live, nk, 1.0))
    lam, a = _volume_shape(lambda a: jnp.sum(om / a, axis=1), shape_of, lam0, live, nk, d, om.dtype)
    return _rotate(vec, jnp.where(live, lam, 1.0)[:, None] * a)


def _scatter_evv(nk, s1, s2, w, means, nk_safe):
    wk, live = _w_full(nk, s1, s2, w, means, nk_safe)
    g = jnp.exp(jnp.linalg.slogdet(wk)[1] / wk.shape[-1])  # |W_k|^(1/d)
    return jnp.sum(jnp.where(live, g, 0.0)) / w * wk / g[:, None, None]


def _tri(d):
    return d * (d + 1) // 2


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("full", lambda k, d: (k, d, d), False, True, _log_full, _moments_full,
               _scatter_full, lambda k, d: k * d * (d + 1) // 2, _noise_matrix,
               fused_stats=_stats_full, features=_full_features,
               features_stats=_stats_full_features),
        Family("tied", lambda k, d: (d, d), True, True, _log_tied, _moments_tied,
               _scatter_tied, lambda k, d: d * (d + 1) // 2, _noise_matrix,
               fused_stats=_stats_tied, features=_full_features,
               features_stats=_stats_tied_features),
        Family("diag", lambda k, d: (k, d), False, False, _log_diag, _moments_squares,
               _scatter_diag, lambda k, d: k * d, _noise_variances,
               fused_stats=_stats_diag),
        Family("spherical", lambda k, d: (k,), False, False, _log_spherical,
               _moments_squares, _scatter_spherical, lambda k, d: k, _noise_variances,
               False, fused_stats=_stats_spherical),
        Family("isotropic", lambda k, d: (), True, False, _log_isotropic, _moments_squares,
               _scatter_isotropic, lambda k, d: 1, _noise_variances, False),
    )
}  # fmt: skip


def _like(base: str, name: str, scatter=None, n_cov_params=None, rescalable=None) -> Family:
    """An mclust model stored as family ``base``, with its own M-step and count."""
    f = FAMILIES[base]
    return replace(
        f,
        name=name,
        scatter=scatter or f.scatter,
        n_cov_params=n_cov_params or f.n_cov_params,
        rescalable=f.rescalable if rescalable is None else rescalable,
        coupled="E" in name and not f.shared,
    )


#: The mclust models implemented (Celeux & Govaert 1995), in mclust's order.
#: VII, VVI, EEE and VVV are scikit-learn's spherical, diag, tied and full under
#: mclust's names (the same functions and storage).
MCLUST_MODELS: tuple[str, ...] = (
    "EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE", "VEE", "EVE", "VVE", "EEV", "VEV",
    "EVV", "VVV",
)  # fmt: skip
FAMILIES.update(
    (f.name, f)
    for f in (
        _like("spherical", "EII", _scatter_eii, lambda k, d: 1),
        _like("spherical", "VII"),
        _like("diag", "EEI", _scatter_eei, lambda k, d: d),
        _like("diag", "VEI", _scatter_vei, lambda k, d: k + d - 1),
        _like("diag", "EVI", _scatter_evi, lambda k, d: 1 + k * (d - 1)),
        _like("diag", "VVI"),
        _like("tied", "EEE"),
        _like("full", "VEE", _scatter_vee, lambda k, d: k + _tri(d) - 1),
        _like("full", "EVE", _scatter_eve, lambda k, d: 1 + k * (d - 1) + _tri(d) - d, False),
        _like("full", "VVE", _scatter_vve, lambda k, d: k * d + _tri(d) - d, False),
        _like("full", "EEV", _scatter_eev, lambda k, d: d + k * (_tri(d) - d), False),
        _like("full", "VEV", _scatter_vev, lambda k, d: k + d - 1 + k * (_tri(d) - d), False),
        _like("full", "EVV", _scatter_evv, lambda k, d: 1 + k * (_tri(d) - 1)),
        _like("full", "VVV"),
    )
)


def get(name: str) -> Family:
    """The :class:`Family` called ``name``.

    Parameters
    ----------
    name : str
        A key of :data:`FAMILIES`.

    Returns
    -------
    Family
    """
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(
            f"unknown covariance family {name!r}; known: {', '.join(FAMILIES)}"
        ) from None


# --------------------------------------------------------------------------------------
# the stable precision factor, with regularization of collapsed covariances
# --------------------------------------------------------------------------------------
def floor_rel(dtype) -> float:
    """The collapse floor as a fraction of a column's variance (see :func:`collapse_floor`)."""
    return max(COLLAPSE_FLOOR, 10.0 * float(np.sqrt(np.finfo(dtype).eps)))


def collapse_threshold(floor: jax.Array) -> jax.Array:
    """The variance (per feature) below which a covariance counts as collapsed.

    ``COLLAPSE_NOISE * eps / floor_rel(dtype)`` times ``floor``: about ``100 eps`` times
    each column's variance (the rounding noise of a variance computed from that column),
    far below any ``reg_covar`` a user sets, so that a covariance that scikit-learn
    factorizes without error is used unchanged.

    Parameters
    ----------
    floor : array of shape (d,) or ()
        :func:`collapse_floor` of the data.

    Returns
    -------
    array of the shape of ``floor``
    """
    eps = float(jnp.finfo(floor.dtype).eps)
    return floor * (COLLAPSE_NOISE * eps / floor_rel(floor.dtype))


def collapse_floor(var: np.ndarray, dtype, family: str) -> np.ndarray:
    """Variance added to a collapsed covariance: per feature, relative to that column.

    ``floor_rel(dtype) * var_j`` for each feature ``j`` (1e-6 of the column's variance in
    float64; ``10 sqrt(eps)``, about 3e-3, in float32, above its rounding noise); a
    constant column takes the mean variance of the others (1 if every column is
    constant). Families of one variance per component (spherical, isotropic) take the
    mean over features.

    Parameters
    ----------
    var : array of shape (d,)
        Per-feature (weighted) variance of the data.
    dtype : numpy dtype
    family : str

    Returns
    -------
    array of shape (d,), or of shape () for a family of scalar variances
    """
    var = np.asarray(var, np.float64)
    pos = var[var > 0]
    fill = float(pos.mean()) if pos.size else 1.0
    v = np.where(var > 0, var, fill)
    if get(family).scalar_variances:
        v = np.asarray(v.mean())
    return (floor_rel(dtype) * v).astype(dtype)


def precision_factor(
    cov: jax.Array, floor, matrix: bool, shared: bool
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Precision factor of covariances, regularizing collapsed ones only.

    A covariance (``reg_covar`` already added) is collapsed when its Cholesky factor is
    not finite (not positive definite) or a pivot squared (the variance of feature ``j``
    given the features before it) is below :func:`collapse_threshold` of that feature,
    i.e. at the rounding noise of its column: the component sits on a point or a
    lower-dimensional set. Only then is ``floor`` (per feature) added to its diagonal; if
    that still fails, it is replaced by its (floored) diagonal. Any covariance that
    factorizes above the noise, e.g. every one that scikit-learn factorizes with its
    default ``reg_covar``, is used unchanged.

    Parameters
    ----------
    cov : array
        Covariances of a family's shape.
    floor : array of shape (d,), or () for scalar variances
        Variance added, per feature, to a collapsed covariance (:func:`collapse_floor`).
    matrix, shared : bool
        The family's :attr:`Family.matrix` and :attr:`Family.shared`.

    Returns
    -------
    cov : array
        The covariances actually used.
    prec_factor : array
        Same shape as ``cov``: ``inv(chol(cov))^T`` for matrices, ``cov**-0.5`` else.
    n_collapsed : array of shape ()
        How many covariances were regularized.
    """
    floor = jnp.asarray(floor, cov.dtype)
    small = collapse_threshold(floor)
    if not matrix:
        bad = ~(cov > small)
        fixed = jnp.where(
            bad, jnp.maximum(jnp.where(jnp.isfinite(cov), cov, 0.0), 0.0) + floor, cov
        )
        n_bad = jnp.sum(bad if cov.ndim < 2 else jnp.any(bad, axis=-1))
        return fixed, 1.0 / jnp.sqrt(fixed), n_bad
    batched = cov[None] if shared else cov
    eye = jnp.eye(batched.shape[-1], dtype=cov.dtype)

    def chol_ok(c):
        lo = jnp.linalg.cholesky(c)
        piv = jnp.diagonal(lo, axis1=-2, axis2=-1)
        ok = jnp.all(jnp.isfinite(lo), axis=(-2, -1)) & jnp.all(piv * piv > small, axis=-1)
        return lo, ok

    # One factorization call for both candidates: two independent batched LAPACK calls
    # can run concurrently on XLA's CPU pool and deadlock it (each waits for sub-tasks
    # the other's thread would run; seen on 2 cores with jaxlib 0.10).
    c2 = batched + eye * floor
    b = batched.shape[0]
    lo_all, ok_all = chol_ok(jnp.concatenate([batched, c2]))
    lo, lo2, ok, ok2 = lo_all[:b], lo_all[b:], ok_all[:b], ok_all[b:]
    diag = jnp.diagonal(batched, axis1=-2, axis2=-1)
    diag = jnp.maximum(jnp.where(jnp.isfinite(diag), diag, 0.0), 0.0) + floor
    c3 = eye * diag[..., None, :]
    lo3 = eye * jnp.sqrt(diag)[..., None, :]
    use = jnp.where(ok[:, None, None], batched, jnp.where(ok2[:, None, None], c2, c3))
    lo_use = jnp.where(ok[:, None, None], lo, jnp.where(ok2[:, None, None], lo2, lo3))
    inv = jax.scipy.linalg.solve_triangular(lo_use, jnp.broadcast_to(eye, lo_use.shape), lower=True)
    pc = jnp.swapaxes(inv, -1, -2)
    n_bad = jnp.sum(~ok)
    if shared:
        return use[0], pc[0], n_bad
    return use, pc, n_bad
