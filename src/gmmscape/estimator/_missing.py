"""Missing values (``GaussianMixture(missing="em")``): the estimator's plumbing.

The statistics are those of :mod:`gmmscape.core.missing` (exact E-step, one factorization
per component and missingness pattern); this module groups the rows of a table by
pattern into fixed-size chunks (each chunk one pattern), reduces the expected second
moments to the family's ``s2`` form and hands them to the same M-step as complete data
(:func:`gmmscape.core.updates.m_step`, so every family of the registry, frozen
parameters and gradient EM work unchanged), runs EM over the starts, and serves the
scoring methods and :meth:`GaussianMixture.impute` for rows with NaN entries.

Complete data never comes here: the estimator sends a table through this module only
when it holds a NaN.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.validation import _check_sample_weight, check_is_fitted

from gmmscape.core import chunks, families
from gmmscape.core import missing as core
from gmmscape.core.stats import Stats
from gmmscape.core.updates import m_step
from gmmscape.dynamics import driver
from gmmscape.estimator import _kernels as K

#: Elements of one chunk's largest intermediate (rows x k x d), as the complete-data
#: E-step's budget (``CHUNK_BUDGET`` of the estimator).
CHUNK_BUDGET = 2**18
#: Fewest rows per chunk (rows of a rare pattern are padded up to it).
MIN_ROWS = 8
#: Rows per chunk never exceed this many (when few patterns share many rows).
MAX_ROWS = 4096


def has_nan(X) -> bool:
    """Whether an in-memory array holds a NaN (False for Dask input, never loaded)."""
    if type(X).__module__.split(".")[0] == "dask":
        return False
    a = np.asarray(X)
    return bool(a.dtype.kind == "f" and np.isnan(a).any())


def check_rows(X: np.ndarray) -> np.ndarray:
    """The observed mask of ``X`` (n, d); raise naming the rows with every entry missing.

    Parameters
    ----------
    X : array of shape (n, d)

    Returns
    -------
    bool array of shape (n, d)
    """
    obs = ~np.isnan(X)
    empty = np.flatnonzero(~obs.any(axis=1))
    if empty.size:
        shown = ", ".join(map(str, empty[:10].tolist())) + (", ..." if empty.size > 10 else "")
        raise ValueError(
            f"X has {empty.size} row(s) with every entry missing (NaN): row(s) {shown} "
            "(0-based). Such rows carry no information about the mixture; drop them."
        )
    return obs


@dataclass
class PatternChunks:
    """Rows grouped by missingness pattern into chunks of ``rows`` rows, one pattern each.

    Attributes
    ----------
    xc : array of shape (n_chunks, rows, d)
        Centered rows, zeros at the missing entries and in padding rows.
    wc : array of shape (n_chunks, rows)
        Row weights, 0 for padding.
    mc : bool array of shape (n_chunks, d)
        The pattern (observed coordinates) of each chunk.
    index : int array of shape (n_chunks, rows)
        The row of ``X`` each slot holds, -1 for padding.
    n_real : int
        Chunks holding rows (the others, up to a power of two, are padding).
    """

    xc: np.ndarray
    wc: np.ndarray
    mc: np.ndarray
    index: np.ndarray
    n_real: int

    @classmethod
    def build(cls, X, w, offset, k: int, chunk_size=None) -> PatternChunks:
        """Group the rows of ``X`` (n, d; NaN = missing) weighted by ``w`` (n,).

        Rows per chunk: ``chunk_size``, or about ``n / n_patterns`` (a power of two
        between :data:`MIN_ROWS` and :data:`MAX_ROWS`) within the element
        budget, so padding at most doubles the rows; the number of chunks is padded to
        a power of two (few compiled shapes), the padding chunks skipped by the loop.
        """
        n, d = X.shape
        obs = check_rows(X)
        keys = np.packbits(obs, axis=1)
        uniq, inv = np.unique(keys, axis=0, return_inverse=True)
        inv = inv.reshape(-1)
        n_pat = uniq.shape[0]
        counts = np.bincount(inv, minlength=n_pat)
        if chunk_size is None:
            hi = chunks.chunk_length(k * d, CHUNK_BUDGET, lo=MIN_ROWS, hi=MAX_ROWS)
            rows = max(MIN_ROWS, min(hi, chunks.next_pow2(math.ceil(n / n_pat))))
        else:
            rows = int(chunk_size)
        per = -(-counts // rows)
        first = np.concatenate([[0], np.cumsum(per)[:-1]])
        n_real = int(per.sum())
        n_chunks = chunks.next_pow2(n_real)
        order = np.argsort(inv, kind="stable")
        pat = inv[order]
        start = np.concatenate([[0], np.cumsum(counts)[:-1]])
        rank = np.arange(n) - start[pat]
        ci, si = first[pat] + rank // rows, rank % rows
        dt = X.dtype
        xc = np.zeros((n_chunks, rows, d), dt)
        xs = X[order] - np.asarray(offset, dt)
        xc[ci, si] = np.where(obs[order], xs, 0.0)
        wc = np.zeros((n_chunks, rows), dt)
        wc[ci, si] = w[order]
        index = np.full((n_chunks, rows), -1, np.int64)
        index[ci, si] = order
        mc = np.ones((n_chunks, d), bool)
        pats = np.unpackbits(uniq, axis=1, count=d).astype(bool)
        mc[:n_real] = np.repeat(pats, per, axis=0)
        return cls(xc, wc, mc, index, n_real)

    def scatter_rows(self, values: np.ndarray, n: int) -> np.ndarray:
        """Per-slot ``values`` (n_chunks, rows, ...) back in the order of ``X`` (n, ...)."""
        values = np.asarray(values)
        out = np.empty((n, *values.shape[2:]), values.dtype)
        real = self.index >= 0
        out[self.index[real]] = values[real]
        return out


# --------------------------------------------------------------------------------------
# kernels: the core statistics in the family's form, the shared M-step
# --------------------------------------------------------------------------------------
def suffstats(xc, wc, mc, n_real, params: K.Params, cov_type: str) -> Stats:
    """Expected complete-data statistics of every chunk, in ``cov_type``'s ``s2`` form.

    Parameters
    ----------
    xc, wc, mc : arrays of shapes (n_chunks, m, d), (n_chunks, m), (n_chunks, d)
        As :class:`PatternChunks`.
    n_real : int array of shape ()
        Chunks summed (the first ``n_real``).
    params : Params
    cov_type : str

    Returns
    -------
    Stats
        ``w, ll, r0, r1`` and the family's ``s2``.
    """
    fam = families.get(cov_type)
    k, d = params.means.shape
    cov = core.full_covariances(fam, params.covariances, k, d)
    logw = jnp.log(params.weights)

    def one(i):
        return core.pattern_stats(xc[i], wc[i], mc[i], logw, params.means, cov)

    def body(i, acc):
        return jax.tree_util.tree_map(jnp.add, acc, one(i))

    st = jax.lax.fori_loop(1, n_real, body, one(0))
    s2 = core.reduce_second_moments(fam, st.s2)
    return Stats(w=st.w, ll=st.ll, r0=st.nk, r1=st.s1, s2=s2)


@partial(jax.jit, static_argnames=("cov_type",))
def batched_suffstats(xc, wc, mc, n_real, params, *, cov_type) -> Stats:
    """:func:`suffstats` vmapped over a batch of parameters (leading axis)."""
    return jax.vmap(lambda p: suffstats(xc, wc, mc, n_real, p, cov_type))(params)


@partial(jax.jit, static_argnames=("cov_type", "algorithm"))
def em_step(xc, wc, mc, n_real, params, masks, hyper, *, cov_type, algorithm):
    """One EM iteration for a batch of starts: the missing-data E-step, the M-step.

    Parameters
    ----------
    xc, wc, mc, n_real
        As :func:`suffstats`.
    params : Params with a leading batch axis b
    masks : Masks with a leading batch axis b
    hyper : tuple ``(reg_covar, floor, step_size, tol, n_max, rtol)``
    cov_type, algorithm : str

    Returns
    -------
    params : Params
    lb : array of shape (b,)
        Mean observed-data log-likelihood at the parameters passed in.
    n_collapsed : array of shape (b,)
    """
    reg_covar, floor, step_size = hyper[:3]

    def one(p, m):
        st = suffstats(xc, wc, mc, n_real, p, cov_type)
        new, bad = m_step(st, p, m, reg_covar, floor, step_size, cov_type, algorithm)
        return new, st.ll / st.w, bad

    return jax.vmap(one)(params, masks)


@partial(jax.jit, static_argnames=("cov_type", "moments"))
def chunk_posterior(xc, mc, params, *, cov_type, moments=False):
    """Per-row E-step of every chunk (``lax.map`` over chunks).

    Parameters
    ----------
    xc : array of shape (n_chunks, m, d)
    mc : bool array of shape (n_chunks, d)
    params : Params
    cov_type : str
    moments : bool, default False
        Also return the conditional means and covariances.

    Returns
    -------
    weighted_log_prob : array of shape (n_chunks, m, k)
    cond_means : array of shape (n_chunks, m, k, d)
        Only with ``moments``.
    cond_cov : array of shape (n_chunks, k, d, d)
        Only with ``moments``.
    """
    fam = families.get(cov_type)
    k, d = params.means.shape
    cov = core.full_covariances(fam, params.covariances, k, d)
    logw = jnp.log(params.weights)

    def one(args):
        post = core.pattern_posterior(args[0], args[1], logw, params.means, cov)
        return tuple(post) if moments else (post.weighted_log_prob,)

    return jax.lax.map(one, (xc, mc))


# --------------------------------------------------------------------------------------
# fit
# --------------------------------------------------------------------------------------
def weighted_nan_moments(X: np.ndarray, w: np.ndarray, obs: np.ndarray):
    """Per-column weighted mean and variance over the observed entries (float64, (d,))."""
    wo = np.where(obs, w[:, None], 0.0).astype(np.float64)
    x0 = np.where(obs, X, 0.0).astype(np.float64)
    tot = wo.sum(axis=0)
    if not np.all(tot > 0):
        j = int(np.flatnonzero(~(tot > 0))[0])
        raise ValueError(
            f"X column {j} has no observed entry with positive sample_weight; drop it."
        )
    mean = (wo * x0).sum(axis=0) / tot
    var = (wo * np.where(obs, x0 - mean, 0.0) ** 2).sum(axis=0) / tot
    return mean, var


def prepare(est, X, sample_weight, fit_data):
    """Validated data, weights and fit data (offset, floor, column variances).

    Parameters
    ----------
    est : GaussianMixture
    X : array of shape (n, d) with NaN entries (validated)
    sample_weight : array of shape (n,) or None
    fit_data : type
        The estimator's fit-data class (``_FitData``), passed in by the estimator.

    Returns
    -------
    X, w : arrays of shapes (n, d), (n,) in the compute dtype
    fd : _FitData
        Offset, floor and column variances (no chunks).
    """
    dtype = est._compute_dtype(np.dtype(X.dtype))
    X = np.asarray(X, dtype=dtype)
    obs = check_rows(X)
    w = _check_sample_weight(sample_weight, np.where(obs, X, 0.0), dtype=dtype)
    if (w < 0).any():
        raise ValueError("sample_weight must be non-negative.")
    if not w.sum() > 0:
        raise ValueError("sample_weight must not be all zero.")
    n, d = X.shape
    offset, var = weighted_nan_moments(X, w, obs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanmin(X, axis=0), np.nanmax(X, axis=0)
    est._check_scale(var, lo, hi, offset, n, dtype)
    k = est.n_components
    fd = fit_data(
        est.covariance_type, est.algorithm, dtype, offset.astype(dtype), n, d, k,
        K.collapse_floor(var, dtype, est.covariance_type), col_var=var,
        wsum=float(np.sum(w, dtype=np.float64)),
    )  # fmt: skip
    return X, w, fd


def filled(X: np.ndarray, fd) -> np.ndarray:
    """``X`` with each missing entry replaced by its column's (weighted) observed mean:
    the table the initialization (k-means and the rest) sees."""
    return np.where(np.isnan(X), fd.offset.astype(X.dtype), X)


def fit(est, X, sample_weight, fit_data) -> None:
    """EM with missing values: the work of ``fit`` when ``X`` holds NaN.

    The starts are the estimator's own initialization on the mean-filled table
    (:func:`filled`), or the current parameters with ``warm_start``; EM then runs on the
    observed-data likelihood, every start as one vmapped batch, each stopping as
    :func:`gmmscape.estimator._kernels.em_batch` does.

    Parameters
    ----------
    est : GaussianMixture
    X : array of shape (n, d)
        Validated, with NaN entries.
    sample_weight : array of shape (n,) or None
    fit_data : type
        The estimator's fit-data class (passed in, so that this module imports nothing
        from the estimator's).
    """
    freeze = est._check_freeze()
    if est.refine:
        raise ValueError(
            "refine=True is not available with missing values (X holds NaN); fit with "
            "refine=False, or impute first."
        )
    n, d = X.shape
    k = est.n_components
    if n < k:
        raise ValueError(
            f"Expected n_samples >= n_components but got n_components = {k}, "
            f"n_samples = {n}: decrease n_components or supply more data."
        )
    X, w, fd = prepare(est, X, sample_weight, fit_data)
    pc = PatternChunks.build(X, w, fd.offset, k, est.chunk_size)
    dtype = fd.dtype
    inits = est._check_inits(d, dtype)
    do_init = not (est.warm_start and hasattr(est, "converged_"))
    if do_init:
        rng = check_random_state(est.random_state)
        Xf = filled(X, fd)
        starts = [est._initial_params(Xf, w, rng, fd, inits) for _ in range(est.n_init)]
        lb = np.full(est.n_init, -np.inf)
    else:
        starts = [est._current_params(fd)]
        lb = np.full(1, float(est.lower_bound_))
    masks = K.stack_trees([est._update_masks(freeze, dtype)] * len(starts))
    params = K.stack_trees(starts)
    hyper = fd.hyper(est.reg_covar, est.step_size, est.tol, est.max_iter, est.tol_type)
    res = run_em(pc, params, masks, lb, hyper, est, fd)
    est._finish(est._keep_best(res, lb), fd)


def run_em(pc: PatternChunks, params, masks, lb0, hyper, est, fd) -> K.EMResult:
    """EM from the host: one compiled :func:`em_step` per iteration, in the one driver
    (:func:`gmmscape.dynamics.driver.run_host`, criterion ``"change"``).

    A start stops by the estimator's rule (``tol``, ``tol_type``) or after ``max_iter``
    iterations; a stopped start keeps its parameters. The trace holds the
    mean observed-data log-likelihood before each M-step, as the complete-data loop's.
    """
    data = (jnp.asarray(pc.xc), jnp.asarray(pc.wc), jnp.asarray(pc.mc), jnp.int32(pc.n_real))
    report = est.verbose_interval if est.verbose >= 2 else 0

    def step(state, active):
        p, nbad = state
        new, lb, bad = jax.device_get(
            em_step(*data, p, masks, hyper, cov_type=fd.cov_type, algorithm=fd.algorithm)
        )
        p = _where_active(active, new, p)
        return (p, nbad + np.where(active, bad, 0)), lb, np.zeros(len(active), bool)

    def live(i, it, lb, change):
        K.print_iteration(i, it, lb, change, report)

    (params, nbad), out = driver.run_host(
        step,
        (params, np.zeros(len(lb0), int)),
        lb0,
        float(hyper[3]),
        int(est.max_iter),
        criterion="change",
        rtol=float(hyper[5]),
        trace_len=int(est.max_iter),
        report=live if report else None,
    )
    return K.EMResult(params, out["value"], out["trace"], out["it"], out["done"], nbad)


def _where_active(active, new, old):
    """``new`` for the active starts (leading axis), ``old`` for the others."""
    return jax.tree_util.tree_map(
        lambda a, o: np.where(active.reshape((-1,) + (1,) * (a.ndim - 1)), a, o), new, old
    )


def _fitted_chunks(est, X: np.ndarray):
    """``X`` grouped by pattern about the mixture's mean, and the fitted parameters."""
    dt = est._compute_dtype_
    X = np.asarray(X, dtype=dt)
    center = est._center()
    pc = PatternChunks.build(X, np.ones(X.shape[0], dt), center.astype(dt), est.n_components)
    return X, pc, est._fitted_params(dt, center), center


def weighted_log_prob(est, X: np.ndarray) -> np.ndarray:
    """``log pi_k + log N(x_O; mu_kO, Sigma_kOO)`` of validated ``X`` (n, d), shape (n, k)."""
    X, pc, params, _ = _fitted_chunks(est, X)
    (lp,) = chunk_posterior(
        jnp.asarray(pc.xc), jnp.asarray(pc.mc), params, cov_type=est.covariance_type
    )
    return pc.scatter_rows(np.asarray(lp), X.shape[0])


def posterior(est, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Observed-data log-density (n,) and responsibilities (n, k) of validated ``X``."""
    lp = weighted_log_prob(est, X)
    from scipy.special import logsumexp

    l = logsumexp(lp, axis=1)
    return l, np.exp(lp - l[:, None])


def impute(est, X, n_draws=None, random_state=None):
    """See :meth:`GaussianMixture.impute`."""
    check_is_fitted(est)
    X = est._validate_X(X, reset=False, allow_nan=True)
    dt = est._compute_dtype_
    X = np.asarray(X, dtype=dt)
    if not np.isnan(X).any():
        return X.copy() if n_draws is None else np.broadcast_to(X, (n_draws, *X.shape)).copy()
    X, pc, params, center = _fitted_chunks(est, X)
    lp, xhat, q = jax.device_get(
        chunk_posterior(
            jnp.asarray(pc.xc), jnp.asarray(pc.mc), params, cov_type=est.covariance_type,
            moments=True,
        )
    )  # fmt: skip
    from scipy.special import logsumexp

    resp = np.exp(lp - logsumexp(lp, axis=-1, keepdims=True))  # (c, m, k)
    miss = np.isnan(X)
    if n_draws is None:
        mean = np.einsum("cmk,cmkd->cmd", resp, xhat) + center
        out = pc.scatter_rows(mean, X.shape[0]).astype(dt)
        return np.where(miss, out, X)
    if int(n_draws) < 1:
        raise ValueError(f"n_draws must be a positive integer or None; got {n_draws!r}.")
    rng = check_random_state(est.random_state if random_state is None else random_state)
    # square roots of the conditional covariances (eigh: zero on the observed block)
    val, vec = np.linalg.eigh(np.asarray(q, np.float64))
    root = vec * np.sqrt(np.maximum(val, 0.0))[..., None, :]  # (c, k, d, d)
    c, m, k = resp.shape
    d = X.shape[1]
    draws = np.empty((int(n_draws), X.shape[0], d), dt)
    cum = np.cumsum(resp, axis=-1)
    for s in range(int(n_draws)):
        u = rng.uniform(size=(c, m, 1))
        comp = np.minimum((u > cum).sum(axis=-1), k - 1)  # (c, m)
        ci = np.arange(c)[:, None]
        mu = np.take_along_axis(xhat, comp[..., None, None], axis=2)[:, :, 0]  # (c, m, d)
        noise = np.einsum("cmab,cmb->cma", root[ci, comp], rng.standard_normal((c, m, d)))
        full = pc.scatter_rows(mu + noise + center, X.shape[0])
        draws[s] = np.where(miss, full, X)
    return draws
