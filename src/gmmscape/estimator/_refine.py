"""Escaping bad local optima: split-and-merge moves after EM (``refine=True``).

Chen et al. (docs/reference.md section 3) show that, for separated truths, every spurious
local optimum of a k = k* mixture combines two structures: *many-fit-one* (two or more
components on one true center) and *one-fits-many* (one component spread over two or
more true centers). Split-and-merge EM (Ueda, Nakano, Ghahramani and Hinton, 2000) repairs
exactly that pair in one move that keeps k: merge two components (i, j) and split a third
(l). Candidates are ranked by

* the merge criterion of Ueda et al.: the correlation of the responsibility vectors,
  ``J_merge(i, j) = <w r_i, r_j> / (||sqrt(w) r_i|| ||sqrt(w) r_j||)``: components that
  share the same points (many-fit-one) score close to 1;
* a split criterion that asks whether two components explain a component's points better
  than one: the kurtosis of its responsibility-weighted points along the principal axis of
  their scatter. A Gaussian has kurtosis 3; the points of a one-fits-many component form
  two or more separated modes along that axis and have kurtosis below 3 (down to 1 for two
  equal modes far apart). ``J_split(l) = 3 - kurtosis``. (Ueda et al.'s local-KL criterion
  measures the same mismatch between a component and its data; the kurtosis form needs no
  density estimate and has a known value under the null.)

Each round builds the ``refine_candidates`` best-ranked moves, runs a partial EM on the
three touched components (the others frozen, the weight of the three conserved, as Ueda
et al.), then full EM, all candidates as one vmapped batch of the estimator's own EM
kernel, and accepts the best one only if the log-likelihood rises. Rounds repeat until no
candidate improves or ``refine_max_moves`` moves were accepted.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from gmmscape.core import families
from gmmscape.core.mixture import Masks, Params
from gmmscape.core.stats import chunk_sum, family_log_prob, normalize_log
from gmmscape.estimator import _kernels as K

#: EM iterations of the partial EM on the three components of a move.
PARTIAL_EM_ITER = 10


def _resp(x, params, cov_type):
    return normalize_log(family_log_prob(x, params, cov_type))[1]


@partial(jax.jit, static_argnames=("cov_type",))
def scatter_stats(xc, wc, params, *, cov_type):
    """Per-component moments with full scatter and the responsibility Gram matrix.

    Parameters
    ----------
    xc : array of shape (n_chunks, m, d)
    wc : array of shape (n_chunks, m)
    params : Params
    cov_type : str

    Returns
    -------
    nk : array of shape (k,)
    s1 : array of shape (k, d)
    s2 : array of shape (k, d, d)
        ``sum w r_k x x^T``.
    gram : array of shape (k, k)
        ``sum w r r^T``.
    """

    def fn(x, w):
        r = _resp(x, params, cov_type)
        wr = w[:, None] * r
        nk, s1, s2 = families.get("full").moments(x, wr)
        return nk, s1, s2, wr.T @ r

    return chunk_sum(fn, xc, wc)


@partial(jax.jit, static_argnames=("cov_type",))
def axis_moments(xc, wc, params, centers, dirs, *, cov_type):
    """Second and fourth moments of each component's points along one direction.

    Parameters
    ----------
    xc : array of shape (n_chunks, m, d)
    wc : array of shape (n_chunks, m)
    params : Params
    centers, dirs : arrays of shape (k, d)
        Center and unit direction per component.
    cov_type : str

    Returns
    -------
    m2, m4 : arrays of shape (k,)
        ``sum w r_k u_k^2`` and ``sum w r_k u_k^4`` with ``u_k = (x - c_k) . v_k``.
    """

    def fn(x, w):
        r = _resp(x, params, cov_type)
        u = x @ dirs.T - jnp.sum(centers * dirs, axis=1)[None, :]
        wr = w[:, None] * r
        u2 = u * u
        return jnp.sum(wr * u2, axis=0), jnp.sum(wr * u2 * u2, axis=0)

    return chunk_sum(fn, xc, wc)


def criteria(fd, params: Params, cov_type: str):
    """Merge and split criteria of the current fit (two passes over the data).

    Parameters
    ----------
    fd : _FitData
    params : Params
    cov_type : str

    Returns
    -------
    j_merge : ndarray of shape (k, k)
        Responsibility correlations (diagonal set to -inf).
    j_split : ndarray of shape (k,)
        ``3 - kurtosis`` along each component's principal axis.
    top : tuple (eigenvalues (k,), eigenvectors (k, d), centers (k, d))
    """
    nk, s1, s2, gram = fd.reduce(partial(scatter_stats, cov_type=cov_type), params)
    nk = np.maximum(np.asarray(nk, np.float64), 1e-300)
    xbar = np.asarray(s1, np.float64) / nk[:, None]
    scat = np.asarray(s2, np.float64) / nk[:, None, None] - xbar[:, :, None] * xbar[:, None, :]
    lam, vec = np.linalg.eigh(0.5 * (scat + np.swapaxes(scat, 1, 2)))
    top_l, top_v = lam[:, -1], vec[:, :, -1]
    dt = fd.dtype
    m2, m4 = fd.reduce(
        partial(axis_moments, cov_type=cov_type),
        params,
        jnp.asarray(xbar, dt),
        jnp.asarray(top_v, dt),
    )
    m2 = np.maximum(np.asarray(m2, np.float64) / nk, 1e-300)
    kurt = np.asarray(m4, np.float64) / nk / m2**2
    g = np.asarray(gram, np.float64)
    norm = np.sqrt(np.maximum(np.diag(g), 1e-300))
    j_merge = g / norm[:, None] / norm[None, :]
    np.fill_diagonal(j_merge, -np.inf)
    return j_merge, 3.0 - kurt, (top_l, top_v, xbar)


def candidate_moves(j_merge, j_split, n_candidates: int):
    """The best-ranked (i, j, l) moves: merge i and j, split l.

    Merge pairs are ranked by ``j_merge``, splits by ``j_split``; a move's rank is the sum
    of its two ranks (ties broken by the merge rank).

    Parameters
    ----------
    j_merge : ndarray of shape (k, k)
    j_split : ndarray of shape (k,)
    n_candidates : int

    Returns
    -------
    list of tuple (i, j, l)
    """
    k = j_split.shape[0]
    iu, ju = np.triu_indices(k, 1)
    order_m = np.argsort(-j_merge[iu, ju], kind="stable")
    order_s = np.argsort(-j_split, kind="stable")
    pairs = [(int(iu[p]), int(ju[p])) for p in order_m[: n_candidates + 2]]
    splits = [int(s) for s in order_s[: n_candidates + 2]]
    cands = []
    for rm, (i, j) in enumerate(pairs):
        for rs, l in enumerate(splits):
            if l not in (i, j):
                cands.append((rm + rs, rm, (i, j, l)))
    cands.sort()
    return [c[2] for c in cands[:n_candidates]]


def apply_move(params: Params, move, top, masks: Masks, cov_type: str, floor) -> Params:
    """Parameters after merging ``i, j`` into slot ``i`` and splitting ``l`` into ``j, l``.

    Frozen parameters (mask 0) keep each slot's value.

    Parameters
    ----------
    params : Params (NumPy arrays)
    move : tuple (i, j, l)
    top : tuple (eigenvalues (k,), eigenvectors (k, d), centers (k, d))
    masks : Masks
    cov_type : str
    floor : float

    Returns
    -------
    Params
    """
    i, j, l = move
    w = np.array(params.weights, np.float64)
    mu = np.array(params.means, np.float64)
    cov = np.array(params.covariances, np.float64)
    lam, vec, _ = top
    w_new, mu_new, cov_new = w.copy(), mu.copy(), cov.copy()
    wi = w[i] + w[j]
    w_new[i] = wi
    mu_new[i] = (w[i] * mu[i] + w[j] * mu[j]) / wi
    step = 0.5 * np.sqrt(max(lam[l], 0.0)) * vec[l]
    mu_new[j], mu_new[l] = mu[l] + step, mu[l] - step
    w_new[j] = w_new[l] = 0.5 * w[l]
    fam = families.get(cov_type)
    if not fam.shared:
        cov_new[i] = (w[i] * cov[i] + w[j] * cov[j]) / wi
        piece = cov[l]
        if fam.matrix:
            lc, vc = np.linalg.eigh(piece)
            piece = piece - 0.75 * lc[-1] * np.outer(vc[:, -1], vc[:, -1])
        cov_new[j] = cov_new[l] = piece
    mw, mm, mc = (np.asarray(m) > 0 for m in masks)
    w_new = np.where(mw, w_new, w)
    mu_new = np.where(mm[:, None], mu_new, mu)
    if not fam.shared:
        cov_new = np.where(mc.reshape((-1,) + (1,) * (cov.ndim - 1)), cov_new, cov)
    dt = params.means.dtype
    c, pc, _ = fam.factor(jnp.asarray(cov_new, dt), floor)
    return Params(jnp.asarray(w_new / w_new.sum(), dt), jnp.asarray(mu_new, dt), c, pc)


def _loglik(fd, batch: Params) -> np.ndarray:
    st = fd.stats(batch)
    return np.asarray(st.ll / st.w, np.float64)


def refine_fit(est, fd, params: Params, masks_batch: Masks, hyper, trace_len: int):
    """Split-and-merge refinement of a converged fit.

    Parameters
    ----------
    est : GaussianMixture
        Supplies ``refine_candidates``, ``refine_max_moves``, ``max_iter``, ``tol``.
    fd : _FitData
    params : Params
        The converged parameters (no batch axis).
    masks_batch : Masks
        The fit's masks (batch axis; row 0 is used).
    hyper : tuple
        The EM hyper-parameters of the fit.
    trace_len : int
        Length of the compiled trace buffer of the fit's EM runs (its ``trace_length``).

    Returns
    -------
    params : Params
    moves : list of dict
        ``{"kind": "merge-split", "merge": [i, j], "split": l, "loglik_before",
        "loglik_after", "merge_score", "split_score", "n_iter"}``.
    trace : list of float
        Mean log-likelihood per EM iteration of the accepted moves' runs.
    """
    k = est.n_components
    ct = fd.cov_type
    if k < 3:
        return params, [], []
    masks = jax.tree_util.tree_map(lambda a: a[0], masks_batch)
    max_moves = k if est.refine_max_moves is None else est.refine_max_moves
    n_cand = est.refine_candidates
    reg, floor, step, tol, _, rtol = hyper
    ll = float(_loglik(fd, K.stack_trees([params]))[0])
    accept_tol = max(float(est.tol), 1e-10 * abs(ll))
    moves, trace = [], []
    for _ in range(max_moves):
        j_merge, j_split, top = criteria(fd, params, ct)
        cands = candidate_moves(j_merge, j_split, n_cand)
        if not cands:
            break
        while len(cands) < n_cand:  # fixed batch size: one compiled shape
            cands.append(cands[0])
        starts, pmasks = [], []
        for mv in cands:
            starts.append(apply_move(params, mv, top, masks, ct, floor))
            sel = np.zeros(k)
            sel[list(mv)] = 1.0
            pmasks.append(
                jax.tree_util.tree_map(lambda m, s=sel: m * jnp.asarray(s, m.dtype), masks)
            )
        lb0 = jnp.full((n_cand,), -jnp.inf, fd.dtype)
        h_part = (reg, floor, step, tol, jnp.asarray(PARTIAL_EM_ITER, jnp.int32), rtol)
        part = fd.run_em(K.stack_trees(starts), K.stack_trees(pmasks), lb0, h_part, trace_len)
        full_masks = K.stack_trees([masks] * n_cand)
        h_full = (reg, floor, step, tol, jnp.asarray(est.max_iter, jnp.int32), rtol)
        res = fd.run_em(part.params, full_masks, lb0, h_full, trace_len)
        lls = _loglik(fd, res.params)
        lls = np.where(np.isfinite(lls), lls, -np.inf)
        b = int(np.argmax(lls))
        if not lls[b] > ll + accept_tol:
            break
        i, j, l = cands[b]
        n_it = int(res.n_iter[b])
        moves.append(
            {
                "kind": "merge-split",
                "merge": [i, j],
                "split": l,
                "merge_score": float(j_merge[i, j]),
                "split_score": float(j_split[l]),
                "loglik_before": ll,
                "loglik_after": float(lls[b]),
                "n_iter": n_it,
            }
        )
        trace.extend(float(v) for v in np.asarray(res.trace[b])[:n_it])
        params = jax.tree_util.tree_map(lambda a, b=b: a[b], res.params)
        ll = float(lls[b])
    return params, moves, trace
