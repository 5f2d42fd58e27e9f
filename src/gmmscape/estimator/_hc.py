"""Model-based agglomerative hierarchical clustering, as R's mclust ``hc`` (NumPy).

mclust starts EM from the partitions of one agglomerative tree: every point starts as
its own cluster and, at each step, the pair of clusters whose merge costs the least
classification log-likelihood is merged (Banfield & Raftery 1993; Fraley 1998). Two
criteria are offered, the two that ``mclustBIC`` uses:

``"VVV"`` (mclust's default, ``mclust.options("hcModelName")``)
    A cluster of ``n`` points with scatter ``W`` (the sum of its centered outer products)
    costs ``n log(det(W / n) + beta (tr W + alpha) / n)`` when ``n > p`` and
    ``n log(beta (tr W + alpha) / n)`` otherwise; a merge costs the merged cluster's term
    minus the two it replaces. ``alpha = tr(S) / p`` (``S`` the data's covariance with
    divisor ``n``) and ``beta = 1`` regularize small clusters, as mclust's ``hcVVV``.
``"EII"``
    Ward's criterion, the increase of the total within-cluster sum of squares
    ``n_i n_j / (n_i + n_j) |m_i - m_j|^2``.

Before merging, the data are transformed as mclust's default ``hcUse = "SVD"``: each
column is standardized (divisor ``n - 1``) and the result ``X_s`` replaced by
``X_s V diag(d)^(-1/2)`` with ``X_s = U diag(d) V^T`` its thin SVD.

The order of the merges follows mclust's Fortran (``hcvvv``, ``hceii``) to the tie: the
clusters occupy positions ``0..m-1``; the pair of least cost wins and, among equal costs,
the pair ``(i, j)``, ``i < j``, with the largest ``j`` and then the largest ``i``; the
merged cluster takes position ``i`` and the last cluster moves to position ``j``. A
partition is then read off the tree as mclust's ``hclass``: the merges are replayed on
labels (merging ``a < b`` relabels ``b`` as ``a``) and the labels renumbered in order of
first appearance (``partconv``).

Cost: the tree takes ``O(m^2)`` memory and about ``m`` vectorized steps of ``O(m p^3)``
for ``m`` points, so data of more than :data:`HC_MAX_ROWS` rows are clustered on a
subsample of that many rows (as ``mclustBIC``, whose ``mclust.options("subset")`` is the
same 2000), drawn with a fixed seed, so that the result is deterministic.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import numpy as np

#: Largest number of rows the tree is built on; larger data use a subsample of this many
#: rows (mclust's ``mclust.options("subset")``).
HC_MAX_ROWS = 2000
#: Seed of the subsample of larger data (fixed: the initialization is deterministic).
HC_SEED = 0
#: The merge criteria.
HC_MODELS = ("VVV", "EII")
#: Trees kept by :func:`hc_tree` (a model selection reads one tree for every k and model).
_CACHE_SIZE = 4
_cache: OrderedDict = OrderedDict()
#: Partitions cut from the cached trees, by the bytes of their merges: k -> labels.
_partitions: dict = {}

_RTHALF = 0.7071067811865476  # mclust's sqrt(1/2), the scale of a merged pair's deviation


def svd_transform(X: np.ndarray) -> np.ndarray:
    """mclust's ``hcUse = "SVD"`` transform of the data.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    Returns
    -------
    Z : ndarray of shape (n_samples, r)
        The standardized data ``X_s`` (columns centered, divided by their standard
        deviation with divisor ``n - 1``) times ``V diag(d)^(-1/2)``, with ``X_s = U
        diag(d) V^T``; constant columns are dropped (mclust drops the non-finite columns
        of ``X_s``), as are the directions of zero singular value, so ``r <= min(n, p)``.
    """
    X = np.asarray(X, np.float64)
    sd = X.std(axis=0, ddof=1) if len(X) > 1 else np.zeros(X.shape[1])
    keep = np.isfinite(sd) & (sd > 0)
    xs = (X[:, keep] - X[:, keep].mean(axis=0)) / sd[keep]
    if xs.shape[1] == 0:
        return np.zeros((len(X), 0))
    _, s, vt = np.linalg.svd(xs, full_matrices=False)
    nz = s > s[0] * np.finfo(np.float64).eps * max(xs.shape)
    return (xs @ vt[nz].T) / np.sqrt(s[nz])


def _vvv_term(n, det, tr, alpha, beta, p):
    """mclust's ``vvvtij``: the classification term of clusters of ``n`` points.

    ``det`` is ``det(W / n)`` (ignored where ``n <= p``) and ``tr`` is ``tr W``. Each
    branch is evaluated only where it applies (the same values, fewer passes).
    """
    n = np.asarray(n, np.float64)
    small = beta * (tr + alpha) / n
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        out = np.log(small)
        full = np.flatnonzero((n > p) & (det > 0))
        if len(full):
            logdet, s = np.log(det[full]), small[full]
            low = logdet <= 0
            out[full] = np.where(
                low, np.log(np.exp(logdet) + s), np.log1p(np.exp(-logdet) * s) + logdet
            )
        flat = np.flatnonzero((n > p) & (tr == 0))
        if len(flat):
            out[flat] = np.log(alpha * beta / n[flat])
    return n * out


class _Clusters:
    """The clusters of the agglomeration: counts, sums, traces, terms and scatters.

    For the VVV criterion every cluster keeps the scatter ``S`` that mclust reads back
    for it (see :func:`hc_merges`, ``mclust_scatter``) and the cluster merged last keeps
    the scatter ``G`` it was formed with; with ``mclust_scatter=False`` both are the
    exact scatter ``W``.
    """

    def __init__(self, Z, model, alpha, beta, mclust_scatter):
        m, p = Z.shape
        self.model, self.alpha, self.beta, self.p = model, alpha, beta, p
        self.mclust = mclust_scatter
        self.n = np.ones(m)
        self.s1 = Z.copy()
        self.tr = np.zeros(m)
        vvv = model == "VVV"
        self.S = np.zeros((m, p, p)) if vvv else None
        self.term = np.full(m, np.log(beta * alpha)) if vvv else np.zeros(m)
        self.last = -1  # position of the cluster merged last (mclust's iold)
        self.G = None  # the scatter it was formed with
        if self.mclust:  # the read-back scatter of a cluster of n points (see _stored)
            ar = np.arange(p)
            self._rank = np.minimum.outer(ar, ar) + 1

    def _deviation(self, a, b):
        """``c (m_a - m_b)``'s pieces: counts, the mean difference and ``n_a n_b / n``."""
        na, nb = self.n[a], self.n[b]
        nab = na + nb
        diff = self.s1[a] / na - self.s1[b] / nb[:, None]
        return nab, diff, na * nb / nab

    def _term(self, nab, scatter, tr):
        det = np.zeros(len(nab))
        big = nab > self.p
        if big.any():
            det[big] = np.linalg.det(scatter[big] / nab[big, None, None])
        return _vvv_term(nab, det, tr, self.alpha, self.beta, self.p)

    def costs(self, a, b):
        """The merge costs of cluster ``a`` (the one merged last) with each of the
        clusters ``b`` (an index array)."""
        nab, diff, c = self._deviation(a, b)
        gain = c * np.einsum("ij,ij->i", diff, diff)
        if self.model == "EII":
            return gain  # Ward: the increase of the within-cluster sum of squares
        tr = self.tr[a] + self.tr[b] + gain
        # the scatter enters only where the merged cluster has more than p points
        det = np.zeros(len(nab))
        big = np.flatnonzero(nab > self.p)
        if len(big):
            d = diff[big]
            scatter = self.G + self.S[b[big]] + c[big, None, None] * d[:, :, None] * d[:, None, :]
            det[big] = np.linalg.det(scatter / nab[big, None, None])
        return _vvv_term(nab, det, tr, self.alpha, self.beta, self.p) - (
            self.term[a] + self.term[b]
        )  # fmt: skip

    def _stored(self, G, n):
        """The scatter mclust's ``hcvvv`` reads back for a cluster of ``n`` points formed
        with scatter ``G = R^T R``: it stores the first row of ``R`` in each of the
        cluster's ``r = min(n - 1, p)`` rows (``dcopy(p, r(1,1), p, x(l,1), n)`` after a
        merge), and reads row ``k`` back from element ``k`` on, so ``U[k, k:] = R[0, k:]``
        and ``U^T U = g g^T * min(min(a, b) + 1, r)`` with ``g = R[0]``."""
        if not self.mclust:
            return G
        g = G[0] / np.sqrt(G[0, 0]) if G[0, 0] > 0 else np.zeros(self.p)
        return np.outer(g, g) * np.minimum(self._rank, min(int(n) - 1, self.p))

    def merge(self, a, b, cost):
        """Store ``a`` merged with ``b`` (whose merge costs ``cost``) at ``a``."""
        nab, diff, c = self._deviation(a, np.array([b]))
        gain = c * np.einsum("ij,ij->i", diff, diff)
        tr = self.tr[a] + self.tr[b] + gain[0]
        if self.model == "VVV":
            outer = c[0] * np.outer(diff[0], diff[0])
            if self.last in (a, b):  # formed from the fresh scatter of the last merge
                other = b if self.last == a else a
                G = self.G + self.S[other] + outer
                term = self._term(nab, G[None], np.array([tr]))[0]
            else:  # rebuilt from the scatters read back for both
                G = self.S[a] + self.S[b] + outer
                term = cost + (self.term[a] + self.term[b])
            self.G, self.S[a], self.term[a] = G, self._stored(G, nab[0]), term
        self.n[a], self.s1[a], self.tr[a] = nab[0], self.s1[a] + self.s1[b], tr
        self.last = a

    def move(self, src, dst):
        """Move cluster ``src`` to position ``dst``."""
        self.n[dst], self.s1[dst], self.tr[dst], self.term[dst] = (
            self.n[src], self.s1[src], self.tr[src], self.term[src],
        )  # fmt: skip
        if self.S is not None:
            self.S[dst] = self.S[src]
        if self.last == src:
            self.last = dst


def _initial_costs(Z, model, alpha, beta):
    """The costs of merging every pair of single points: a symmetric (m, m) matrix with
    ``inf`` on the diagonal, each entry computed as mclust computes it."""
    m = len(Z)
    D = np.full((m, m), np.inf)
    ablog = np.log(beta * alpha)
    for j in range(1, m):
        if model == "EII":  # hceii: v = x_i / sqrt(2) - x_j / sqrt(2), cost |v|^2
            v = Z[:j] * _RTHALF - Z[j] * _RTHALF
            d = np.einsum("ij,ij->i", v, v)
        else:  # hcvvv: v = (x_i - x_j) / sqrt(2), cost 2 log(beta (|v|^2 + alpha) / 2)
            v = (Z[:j] - Z[j]) * _RTHALF
            tr = np.einsum("ij,ij->i", v, v)
            d = 2.0 * np.log(beta * (tr + alpha) / 2.0) - (ablog + ablog)
        D[:j, j] = d
        D[j, :j] = d
    return D


def _column_mins(D, cols):
    """The least cost of each column ``j`` of ``cols`` over the rows ``i < j``, and the
    largest such row, at once (``D`` is symmetric, so column ``j`` above the diagonal
    is row ``j``'s first ``j`` entries).

    Parameters
    ----------
    D : ndarray of shape (m, m)
    cols : int ndarray of shape (c,)
        Columns, each at least 1.

    Returns
    -------
    least : ndarray of shape (c,)
    rows : int ndarray of shape (c,)
        The largest row of the least cost (``j - 1`` where every cost is ``inf``).
    """
    cols = np.asarray(cols, np.int64)
    width = int(cols.max())
    sub = D[cols, :width]  # a copy (fancy indexing)
    sub[np.arange(width)[None, :] >= cols[:, None]] = np.inf
    rows = width - 1 - np.argmin(sub[:, ::-1], axis=1)
    least = sub[np.arange(len(cols)), rows]
    rows = np.where(np.isinf(least), cols - 1, rows)
    return least, rows


def hc_merges(
    Z: np.ndarray,
    model: str = "VVV",
    alpha: float = 1.0,
    beta: float = 1.0,
    mclust_scatter: bool = True,
):
    """The merges of mclust's agglomerative hierarchical clustering.

    Parameters
    ----------
    Z : ndarray of shape (m, p)
        The (transformed) points, each its own cluster at the start.
    model : {"VVV", "EII"}, default "VVV"
        The merge criterion (see the module's docstring).
    alpha, beta : float, default 1.0
        mclust's ``alpha`` and ``beta`` of the VVV criterion; ``alpha`` is multiplied,
        as in ``hcVVV``, by ``tr(S) / p``, the mean variance of ``Z`` (divisor ``m``).
    mclust_scatter : bool, default True
        Reproduce mclust's ``hcvvv`` exactly: after a merge it stores the first row of
        the merged cluster's triangular factor ``R`` (``W = R^T R``) in place of each of
        its rows, so a cluster of three or more points is later read back with the
        scatter ``U^T U``, ``U[k, k:] = R[0, k:]``, instead of ``W``. The costs of merges
        with the cluster formed last are exact, those involving older clusters are not;
        the difference is small where ``alpha`` dominates the determinant (small
        clusters) and changes the top merges of larger data (on mclust's ``wreath`` the
        last three of 999). False merges on the exact scatters. The traces and the EII
        criterion are exact either way.

    Returns
    -------
    merges : int ndarray of shape (m - 1, 2)
        Row ``s`` is the pair of cluster labels ``a < b`` merged at step ``s``, in the
        labels of mclust's ``hcPairs`` (points are labelled ``0..m-1``; a merged cluster
        keeps the smaller label).
    """
    if model not in HC_MODELS:
        raise ValueError(f"model must be one of {HC_MODELS}; got {model!r}.")
    Z = np.asarray(Z, np.float64)
    m, p = Z.shape
    if m < 2:
        return np.zeros((0, 2), np.int64)
    zc = Z - Z.mean(axis=0)
    alpha = max(alpha * float(np.sum(zc * zc)) / (m * max(p, 1)), np.finfo(np.float64).eps)
    cl = _Clusters(Z, model, alpha, beta, mclust_scatter)
    D = _initial_costs(Z, model, alpha, beta)
    colmin = np.full(m, np.inf)
    colarg = np.zeros(m, np.int64)
    for lo in range(1, m, 256):  # in blocks of columns: O(256 m) memory at a time
        cols = np.arange(lo, min(lo + 256, m))
        colmin[cols], colarg[cols] = _column_mins(D, cols)
    label = np.arange(m)
    merges = np.zeros((m - 1, 2), np.int64)
    for step in range(m - 1):
        lg = m - step  # clusters at positions 0..lg-1
        j = lg - 1 - int(np.argmin(colmin[1:lg][::-1]))  # ties: the largest j
        i = int(colarg[j])
        la, lb = label[i], label[j]
        merges[step] = (min(la, lb), max(la, lb))
        label[i] = min(la, lb)
        last = lg - 1
        if model == "EII":  # hceii's Lance-Williams update, before anything moves
            nk, ni, nj = cl.n[:lg], cl.n[i], cl.n[j]
            lw = (nk + ni) * D[:lg, i] + (nk + nj) * D[:lg, j]
            lw = (lw - nk * D[i, j]) / (nk + (ni + nj))
            lw[j] = lw[last]  # the last cluster moves to position j
        cl.merge(i, j, D[i, j])
        if j != last:  # the last cluster moves to position j
            cl.move(last, j)
            label[j] = label[last]
            D[j, :] = D[last, :]
            D[:, j] = D[:, last]
            D[j, j] = np.inf
        D[last, :] = np.inf
        D[:, last] = np.inf
        colmin[last] = np.inf
        lg -= 1
        if lg < 2:
            break
        others = np.delete(np.arange(lg), i)
        d = lw[others] if model == "EII" else cl.costs(i, others)
        D[i, others] = d
        D[others, i] = d
        # columns whose least cost may have changed: those whose least cost sat in a
        # row that changed (i, j) are recomputed, the others compared with rows i and j
        redo = {i, j} if j < lg else {i}
        redo.update(np.flatnonzero((colarg[:lg] == i) | (colarg[:lg] == j)).tolist())
        for r in (i, j):
            if r >= lg - 1:
                continue
            cols = np.arange(r + 1, lg)
            v = D[r, cols]
            better = (v < colmin[cols]) | ((v == colmin[cols]) & (r > colarg[cols]))
            colmin[cols[better]] = v[better]
            colarg[cols[better]] = r
        redo = [c for c in redo if 1 <= c < lg]
        if redo:
            colmin[redo], colarg[redo] = _column_mins(D, redo)
        colmin[0] = np.inf
    return merges


def hc_partitions(merges: np.ndarray, ks) -> dict[int, np.ndarray]:
    """Partitions of the tree at given numbers of clusters, as mclust's ``hclass``.

    Parameters
    ----------
    merges : int ndarray of shape (m - 1, 2)
        From :func:`hc_merges`.
    ks : iterable of int
        Numbers of clusters, each in ``1..m``.

    Returns
    -------
    dict
        ``k`` -> int ndarray of shape (m,), labels ``0..k-1`` numbered in order of first
        appearance (mclust's ``partconv``).
    """
    m = len(merges) + 1
    want = sorted({int(k) for k in ks}, reverse=True)
    for k in want:
        if not 1 <= k <= m:
            raise ValueError(f"a partition of {m} points needs 1 <= k <= {m}; got k = {k}.")
    lab = np.arange(m)
    out = {}
    step = 0
    for k in want:
        while m - step > k:
            a, b = merges[step]
            lab[lab == b] = a
            step += 1
        _, first, inv = np.unique(lab, return_index=True, return_inverse=True)
        order = np.argsort(np.argsort(first))  # rank of each label's first appearance
        out[k] = order[inv].astype(np.int64)
    return out


def _subsample(n: int) -> np.ndarray | None:
    """The sorted rows the tree of ``n`` points is built on (None: all of them)."""
    if n <= HC_MAX_ROWS:
        return None
    return np.sort(np.random.default_rng(HC_SEED).choice(n, HC_MAX_ROWS, replace=False))


def hc_tree(X: np.ndarray, model: str = "VVV") -> tuple[np.ndarray | None, np.ndarray]:
    """The tree mclust's ``mclustBIC`` initializes from: :func:`hc_merges` of the
    :func:`svd_transform` of ``X`` (or of a subsample of :data:`HC_MAX_ROWS` rows), with
    the EII criterion where there are no more rows than features (as ``mclustBIC``).

    The last few trees are cached by the content of ``X``, so that fitting many models
    and numbers of components builds the tree once.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    model : {"VVV", "EII"}, default "VVV"

    Returns
    -------
    rows : int ndarray of shape (m,) or None
        The rows of ``X`` the tree was built on (None: all).
    merges : int ndarray of shape (m - 1, 2)
    """
    X = np.ascontiguousarray(X, np.float64)
    if model not in HC_MODELS:
        raise ValueError(f"model must be one of {HC_MODELS}; got {model!r}.")
    if min(len(X), HC_MAX_ROWS) <= X.shape[1]:
        model = "EII"  # as mclustBIC: VVV needs more points than features
    key = (model, X.shape, hashlib.blake2b(X.tobytes(), digest_size=16).hexdigest())
    if key in _cache:
        _cache.move_to_end(key)
        return _cache[key]
    rows = _subsample(len(X))
    merges = hc_merges(svd_transform(X if rows is None else X[rows]), model)
    _cache[key] = (rows, merges)
    while len(_cache) > _CACHE_SIZE:
        _, (_, old) = _cache.popitem(last=False)
        _partitions.pop(old.tobytes(), None)
    return rows, merges


def hc_labels(X: np.ndarray, k: int, model: str = "VVV") -> np.ndarray:
    """The hierarchical-clustering start of ``k`` components.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    k : int
        Number of clusters, ``1 <= k <= n_samples`` (at most :data:`HC_MAX_ROWS` on
        larger data).
    model : {"VVV", "EII"}, default "VVV"

    Returns
    -------
    labels : int ndarray of shape (n_samples,)
        Cluster ``0..k-1`` of each row of the tree (mclust's ``hclass`` numbering); -1
        for the rows outside the subsample of larger data, whose moments then do not
        enter the start (as ``mclustBIC``, which takes the M-step of the subsample).
    """
    X = np.asarray(X)
    if k == 1:  # the root of every tree: no tree to build (one cluster of its rows)
        if model not in HC_MODELS:
            raise ValueError(f"model must be one of {HC_MODELS}; got {model!r}.")
        rows = _subsample(len(X))
        part = np.zeros(len(X) if rows is None else len(rows), np.int64)
    else:
        rows, merges = hc_tree(X, model)
        parts = _partitions.setdefault(merges.tobytes(), {})  # merges name the tree
        if k not in parts:
            parts.update(hc_partitions(merges, [k]))
        part = parts[k].copy()
    if rows is None:
        return part
    labels = np.full(len(X), -1, np.int64)
    labels[rows] = part
    return labels
