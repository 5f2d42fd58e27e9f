"""Online EM (``GaussianMixture.partial_fit``): stepwise EM over a stream of chunks.

Cappé & Moulines (2009), "On-line expectation-maximization algorithm for latent data
models" (JRSS B 71(3)); the step-size schedule of Liang & Klein (2009) and of
scikit-learn's online LDA. The estimator keeps running sufficient statistics per unit
weight, ``s = (ll, N_k, S1_k, S2) / W``. The first chunk initializes: the estimator's own
initialization (``init_params``, ``n_init`` starts, the one with the largest chunk
log-likelihood kept; or the fitted parameters if the estimator was fitted before), then
``s`` = that chunk's statistics and one M-step. Chunk ``t = 1, 2, ...`` after it moves

    s <- (1 - gamma_t) s + gamma_t s_chunk,     gamma_t = (t + learning_offset)^-learning_decay

and takes the M-step of ``s``. With ``learning_decay`` in (1/2, 1] the steps satisfy
Robbins-Monro's conditions (``sum gamma = inf``, ``sum gamma^2 < inf``). The chunk's
statistics are those of a fit (the source :class:`gmmscape.core.sources.Chunks`, or the
missing-data E-step of :mod:`gmmscape.estimator._missing` for chunks with NaN), and the
M-step is the fit's (:func:`gmmscape.estimator._kernels.batched_m_step`), so every
covariance family, sample weights, frozen parameters and missing values work.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import numpy as np
from sklearn.utils import check_random_state

from gmmscape.core import sources
from gmmscape.core.stats import Stats
from gmmscape.estimator import _kernels as K
from gmmscape.estimator import _missing


@dataclass
class OnlineState:
    """What ``partial_fit`` carries from one chunk to the next.

    Attributes
    ----------
    stats : Stats
        Running statistics per unit weight (leading batch axis of 1).
    n_steps : int
        Chunks seen, the initializing one included.
    fd : _FitData
        Offset (the first chunk's mean), collapse floor and dtype of the run.
    masks : Masks
        Update masks of the frozen parameters (leading batch axis of 1).
    """

    stats: Any
    n_steps: int
    fd: Any
    masks: Any


def step_size(t: int, decay: float, offset: float) -> float:
    """``gamma_t = (t + offset)^-decay`` for chunk ``t >= 1`` after the first.

    Parameters
    ----------
    t : int
    decay, offset : float

    Returns
    -------
    float
    """
    return float((t + offset) ** (-decay))


def chunk_stats(X, w, params, fd, chunk_size=None) -> Stats:
    """Statistics of one chunk for a batch of parameters, divided by the chunk's weight.

    Parameters
    ----------
    X : array of shape (n, d)
        May hold NaN (missing entries).
    w : array of shape (n,)
    params : Params with a leading batch axis
    fd : _FitData
    chunk_size : int, optional

    Returns
    -------
    Stats with a leading batch axis; ``w`` is 1.
    """
    b, k = np.shape(params.weights)
    if np.isnan(X).any():
        pc = _missing.PatternChunks.build(X, w, fd.offset, k, chunk_size)
        st = _missing.batched_suffstats(
            pc.xc, pc.wc, pc.mc, np.int32(pc.n_real), params, cov_type=fd.cov_type
        )
    else:
        src = sources.Chunks.from_arrays(
            X, w, k=k, n_batch=b, chunk_size=chunk_size, offset=fd.offset
        )
        st = sources.sum_parts(src.stat_parts(params, fd.cov_type))
    st = jax.device_get(st)
    tot = np.asarray(st.w)

    def per_weight(a):
        a = np.asarray(a)
        return a / tot.reshape((-1,) + (1,) * (a.ndim - 1))

    return jax.tree_util.tree_map(per_weight, st)


def partial_fit(est, X, sample_weight, fit_data) -> None:
    """One step of online EM on the chunk ``X`` (see the module docstring).

    Parameters
    ----------
    est : GaussianMixture
    X : array-like of shape (n, d)
    sample_weight : array-like of shape (n,) or None
    fit_data : type
        The estimator's fit-data class (``_FitData``).
    """
    if type(X).__module__.split(".")[0] == "dask":
        raise ValueError(
            "partial_fit takes in-memory chunks (NumPy arrays); pass a Dask array's "
            "blocks one by one (X.blocks[i].compute())."
        )
    state: OnlineState | None = getattr(est, "_online", None)
    first = state is None
    freeze = est._check_freeze()
    X = est._validate_X(X, reset=first)
    n, d = X.shape
    if first:
        X, w, fd = _missing.prepare(est, X, sample_weight, fit_data)
        fd.k_pad = fd.k
        fitted = hasattr(est, "means_") and np.shape(est.means_) == (est.n_components, d)
        if fitted:
            starts = [est._current_params(fd)]
        else:
            if n < est.n_components:
                raise ValueError(
                    f"The first chunk given to partial_fit initializes the mixture: it needs "
                    f"n_samples >= n_components, got n_samples = {n}, n_components = "
                    f"{est.n_components}."
                )
            inits = est._check_inits(d, fd.dtype)
            rng = check_random_state(est.random_state)
            Xf = _missing.filled(X, fd)
            starts = [est._initial_params(Xf, w, rng, fd, inits) for _ in range(est.n_init)]
        params = K.stack_trees(starts)
        st = chunk_stats(X, w, params, fd, est.chunk_size)
        lls = np.where(np.isnan(st.ll), -np.inf, st.ll)
        best = int(np.argmax(lls))
        params = K.stack_trees([K.take_tree(params, best)])
        stats = K.stack_trees([K.take_tree(st, best)])
        masks = K.stack_trees([est._update_masks(freeze, fd.dtype)])
        state = OnlineState(stats, 0, fd, masks)
        est.lower_bounds_ = []
    else:
        fd = state.fd
        X = np.asarray(X, dtype=fd.dtype)
        if np.isnan(X).any():
            _missing.check_rows(X)
        w = _missing_weights(sample_weight, X, fd.dtype)
        params = K.stack_trees([est._current_params(fd)])
        st = chunk_stats(X, w, params, fd, est.chunk_size)
        gamma = step_size(state.n_steps, est.learning_decay, est.learning_offset)
        stats = jax.tree_util.tree_map(lambda s, c: (1.0 - gamma) * s + gamma * c, state.stats, st)
    hyper = fd.hyper(est.reg_covar, est.step_size, est.tol, est.max_iter)
    new, bad = K.batched_m_step(
        stats, params, state.masks, hyper, cov_type=fd.cov_type, algorithm=fd.algorithm
    )
    new = K.take_tree(jax.device_get(new), 0)
    est._check_finite(new, fd)
    state.stats = stats
    state.n_steps += 1
    est._online = state
    est._set_params_arrays(new, fd)
    est.n_iter_ = state.n_steps
    est.converged_ = False
    est.lower_bound_ = float(np.asarray(st.ll)[0]) if not first else float(stats.ll[0])
    est.lower_bounds_ = [*getattr(est, "lower_bounds_", []), est.lower_bound_]
    est.n_collapsed_ = getattr(est, "n_collapsed_", 0) * (not first) + int(np.asarray(bad)[0])
    est.refine_moves_ = []


def _missing_weights(sample_weight, X, dtype):
    """Checked sample weights of a later chunk (as the first chunk's)."""
    from sklearn.utils.validation import _check_sample_weight

    w = _check_sample_weight(sample_weight, np.where(np.isnan(X), 0.0, X), dtype=dtype)
    if (w < 0).any() or not w.sum() > 0:
        raise ValueError("sample_weight must be non-negative and not all zero.")
    return w
