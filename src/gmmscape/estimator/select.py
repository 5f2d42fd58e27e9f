"""Model selection over covariance models and numbers of components, as R's ``mclustBIC``.

:func:`select` fits every (model, k) of a grid with :class:`GaussianMixture` (by default
from mclust's hierarchical-clustering start, ``init_params="hc"``, whose tree is built
once for the whole grid) and tabulates the log-likelihood, the number of free parameters
and two criteria:

BIC
    ``2 log L - p log n``, mclust's convention: **higher is better**. scikit-learn's
    :meth:`GaussianMixture.bic` is its negative, ``-2 log L + p log n``, **lower is
    better**; :class:`Selection` gives both (``convention="mclust"`` or ``"sklearn"``).
ICL
    ``BIC + 2 sum_i log max_k z_ik`` (mclust's ``icl``): the BIC penalized by the entropy
    of the hard classification, in the same two conventions.

A fit that fails gets NaN and a reason, as mclust's NA: a covariance that collapsed
(became singular; gmmscape would floor it, mclust stops), or non-finite parameters.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gmmscape.estimator import _grid
from gmmscape.estimator._gaussian_mixture import GaussianMixture

#: mclust's fourteen models, in mclust's order (``mclust.options("emModelNames")``).
MODELS = (
    "EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE", "VEE", "EVE", "VVE", "EEV", "VEV",
    "EVV", "VVV",
)  # fmt: skip
#: The criteria :func:`select` ranks by.
CRITERIA = ("bic", "icl")
#: The two sign conventions of the criteria.
CONVENTIONS = ("mclust", "sklearn")
#: Fields of a table row, in order.
COLUMNS = ("model", "k", "loglik", "n_parameters", "bic", "icl", "converged", "n_iter",
           "seconds", "reason")  # fmt: skip


@dataclass
class Selection:
    """The table of a model selection and its best model.

    Arrays are indexed ``[model, k]`` in the order of ``models`` and ``n_components``.

    Attributes
    ----------
    models : tuple of str
        Covariance types, length ``n_models``.
    n_components : tuple of int
        Numbers of components, length ``n_ks``.
    n_samples : float
        ``n`` of the criteria (the number of rows, or the sum of the sample weights).
    loglik : ndarray of shape (n_models, n_ks)
        Log-likelihood (sum over the points) of each fit; NaN where it failed.
    n_parameters : ndarray of shape (n_models, n_ks)
        Free parameters (mclust's ``nMclustParams``).
    bic, icl : ndarray of shape (n_models, n_ks)
        The criteria in mclust's convention, ``2 log L - p log n`` and ``BIC + 2 sum_i
        log max_k z_ik`` (higher is better); NaN where the fit failed.
    converged : ndarray of bool, shape (n_models, n_ks)
    n_iter : ndarray of int, shape (n_models, n_ks)
    seconds : ndarray of shape (n_models, n_ks)
        Wall time of each fit (compilation included).
    reasons : ndarray of str, shape (n_models, n_ks)
        Why a fit failed ("" where it did not).
    criterion : {"bic", "icl"}
        The criterion :attr:`best_` was chosen by.
    best_ : GaussianMixture or None
        The fitted best model (None if every fit failed).
    best_model, best_k : str and int, or None
    seconds_total : float
    settings : dict
        The estimator settings every candidate was fitted with.
    """

    models: tuple
    n_components: tuple
    n_samples: float
    loglik: np.ndarray
    n_parameters: np.ndarray
    bic: np.ndarray
    icl: np.ndarray
    converged: np.ndarray
    n_iter: np.ndarray
    seconds: np.ndarray
    reasons: np.ndarray
    criterion: str
    best_: GaussianMixture | None = None
    best_model: str | None = None
    best_k: int | None = None
    seconds_total: float = 0.0
    settings: dict = field(default_factory=dict)

    def values(self, criterion: str | None = None, convention: str = "mclust") -> np.ndarray:
        """A criterion for every (model, k).

        Parameters
        ----------
        criterion : {"bic", "icl"}, optional
            Default: the one the selection ranked by.
        convention : {"mclust", "sklearn"}, default "mclust"
            ``"mclust"``: ``2 log L - p log n`` (higher is better); ``"sklearn"``: its
            negative, :meth:`GaussianMixture.bic` (lower is better).

        Returns
        -------
        ndarray of shape (n_models, n_ks)
        """
        criterion = self.criterion if criterion is None else criterion
        _check_choice("criterion", criterion, CRITERIA)
        _check_choice("convention", convention, CONVENTIONS)
        v = self.bic if criterion == "bic" else self.icl
        return v if convention == "mclust" else -v

    def top(self, n: int = 3, criterion: str | None = None) -> list[tuple[str, int, float]]:
        """The ``n`` best (model, k) by a criterion, as mclust's ``pickBIC``.

        Parameters
        ----------
        n : int, default 3
        criterion : {"bic", "icl"}, optional

        Returns
        -------
        list of (model, k, value)
            Best first; values in mclust's convention (higher is better).
        """
        v = self.values(criterion)
        flat = [(float(v[i, j]), i, j) for i in range(v.shape[0]) for j in range(v.shape[1])]
        flat = sorted((t for t in flat if np.isfinite(t[0])), key=lambda t: -t[0])
        return [(self.models[i], int(self.n_components[j]), val) for val, i, j in flat[:n]]

    def summary(self, n: int = 3, criterion: str | None = None) -> str:
        """The top models as mclust's ``summary(mclustBIC(...))`` prints them.

        Parameters
        ----------
        n : int, default 3
        criterion : {"bic", "icl"}, optional

        Returns
        -------
        str
            E.g. ``"Best BIC values:\\n     EEE,3     VVE,2 ...\\nBIC  -2314.316 ..."``,
            values in mclust's convention, with each one's difference to the best.
        """
        criterion = self.criterion if criterion is None else criterion
        top = self.top(n, criterion)
        name = criterion.upper()
        if not top:
            return f"Best {name} values: none (every fit failed)"
        cells = [(f"{m},{k}", f"{v:.3f}", f"{v - top[0][2]:.3f}") for m, k, v in top]
        width = max(len(c) for row in cells for c in row) + 2
        lines = [
            f"Best {name} values:",
            " " * 8 + "".join(c[0].rjust(width) for c in cells),
            name.ljust(8) + "".join(c[1].rjust(width) for c in cells),
            f"{name} diff".ljust(8) + "".join(c[2].rjust(width) for c in cells),
        ]
        return "\n".join(lines)

    def rows(self) -> list[dict[str, Any]]:
        """The table, one dict per (model, k) with the fields :data:`COLUMNS` (criteria
        in mclust's convention) plus ``bic_sklearn`` and ``icl_sklearn`` (the negatives);
        NaN for failed fits.

        Returns
        -------
        list of dict
        """
        out = []
        for i, model in enumerate(self.models):
            for j, k in enumerate(self.n_components):
                out.append({
                    "model": model, "k": int(k), "loglik": float(self.loglik[i, j]),
                    "n_parameters": int(self.n_parameters[i, j]),
                    "bic": float(self.bic[i, j]), "icl": float(self.icl[i, j]),
                    "bic_sklearn": float(-self.bic[i, j]),
                    "icl_sklearn": float(-self.icl[i, j]),
                    "converged": bool(self.converged[i, j]),
                    "n_iter": int(self.n_iter[i, j]),
                    "seconds": float(self.seconds[i, j]), "reason": str(self.reasons[i, j]),
                })  # fmt: skip
        return out

    def to_dict(self) -> dict[str, Any]:
        """The selection as JSON-ready values (NaN as None).

        Returns
        -------
        dict
            ``models``, ``n_components``, ``n_samples``, ``criterion``, the conventions'
            definitions, ``best`` (model, k), ``top3``, ``rows`` (:meth:`rows`),
            ``seconds_total`` and ``settings``.
        """

        def clean(v):
            return None if isinstance(v, float) and not math.isfinite(v) else v

        return {
            "models": list(self.models),
            "n_components": [int(k) for k in self.n_components],
            "n_samples": float(self.n_samples),
            "criterion": self.criterion,
            "conventions": {
                "bic": "2 log L - n_parameters log n_samples (mclust; higher is better)",
                "bic_sklearn": "-bic, GaussianMixture.bic (scikit-learn; lower is better)",
                "icl": "bic + 2 sum_i log max_k z_ik (mclust; higher is better)",
                "icl_sklearn": "-icl (lower is better)",
            },
            "best": None if self.best_model is None else [self.best_model, self.best_k],
            "top3": [[m, k, v] for m, k, v in self.top(3)],
            "rows": [{key: clean(val) for key, val in r.items()} for r in self.rows()],
            "seconds_total": self.seconds_total,
            "settings": {k: v for k, v in self.settings.items() if _jsonable(v)},
        }


def _jsonable(v) -> bool:
    return v is None or isinstance(v, (bool, int, float, str))


def _check_choice(name: str, value, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}.")


def _check_grid(n_components, covariance_types):
    try:
        ks = [int(k) for k in n_components]
    except TypeError:
        ks = [int(n_components)]
    if not ks or any(k < 1 for k in ks) or len(set(ks)) != len(ks):
        raise ValueError(
            f"n_components must be distinct positive integers; got {list(n_components)!r}."
        )
    from gmmscape.estimator._gaussian_mixture import COVARIANCE_TYPES

    if covariance_types is None:
        models = list(MODELS)
    else:
        models = [covariance_types] if isinstance(covariance_types, str) else list(covariance_types)
        bad = [m for m in models if m not in COVARIANCE_TYPES]
        if bad or not models or len(set(models)) != len(models):
            raise ValueError(
                f"covariance_types must be distinct names among {', '.join(COVARIANCE_TYPES)} "
                f"(None: mclust's 14 models); got {models!r}."
            )
    return tuple(models), tuple(ks)


def select(
    X,
    n_components: Iterable[int] = range(1, 10),
    covariance_types: Sequence[str] | str | None = None,
    *,
    criterion: str = "bic",
    init_params: str = "hc",
    sample_weight=None,
    tol: float = 1e-5,
    tol_type: str = "relative",
    max_iter: int = 1000,
    reg_covar: float = 0.0,
    n_init: int = 1,
    random_state=None,
    progress=None,
    batch: bool = True,
    n_jobs: int | None = None,
    **estimator_params,
) -> Selection:
    """Fit every (covariance model, number of components) and pick the best by BIC or ICL.

    The R equivalent is ``mclustBIC(X, G = n_components, modelNames =
    covariance_types)`` followed by ``Mclust``'s choice: with the defaults, every fit
    starts from the partition of mclust's hierarchical clustering (one tree for the
    whole grid, see :mod:`gmmscape.estimator._hc`), stops by mclust's rule and runs
    without regularization, and a fit whose covariance collapses counts as failed (NaN),
    as mclust's NA.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    n_components : iterable of int, default range(1, 10)
        The numbers of components k (mclust's ``G = 1:9``).
    covariance_types : sequence of str, str or None, default None
        Models to fit (any :class:`GaussianMixture` covariance type); None: mclust's 14
        (:data:`MODELS`).
    criterion : {"bic", "icl"}, default "bic"
        What :attr:`Selection.best_` maximizes, in mclust's convention (``2 log L - p log
        n``; scikit-learn's ``bic()`` is its negative and is minimized by the same model).
    init_params : str, default "hc"
        Initialization of every fit (see :class:`GaussianMixture`).
    sample_weight : array-like of shape (n_samples,), optional
        Point weights; the criteria then use ``n = sum(sample_weight)``.
    tol : float, default 1e-5
    tol_type : {"relative", "absolute"}, default "relative"
        EM's stopping rule (see :class:`GaussianMixture`). The defaults are mclust's:
        stop when the total log-likelihood ``L`` changes by less than ``tol (1 + |L|)``;
        from the same start, each fit then takes mclust's iterations.
        ``tol_type="absolute"``: when the mean log-likelihood changes by less than
        ``tol`` (scikit-learn's rule, whose default is ``tol=1e-3``).
    max_iter : int, default 1000
    reg_covar : float, default 0.0
        Added to every covariance diagonal (mclust: none).
    n_init : int, default 1
        Initializations per fit (with ``init_params="hc"`` they coincide; 1 suffices).
    random_state : int, RandomState or None
        For random initializations.
    progress : callable, optional
        Called as ``progress(model, k, row)`` after each fit (``row`` as in
        :meth:`Selection.rows`), in the order the fits are run: models of different
        storages alternate (their compiled programs then load side by side).
    batch : bool, default True
        Fit all k of one model as one padded, vmapped batch, one compiled program per
        storage (the models stored alike share it), where that gives the same fits
        (partition starts, in-memory data small enough, see
        :mod:`gmmscape.estimator._grid`); False fits each (model, k) with
        :meth:`GaussianMixture.fit` on its own. The table is the same up to rounding.
        On larger data each (model, k) is a batch of one (one program: start, EM and
        posterior).
    n_jobs : int, optional
        Batches run side by side on this many threads (default: the usable cores), each
        a compiled loop on one core; 1 runs them one after another. mclust fits on one
        core.
    **estimator_params
        Further :class:`GaussianMixture` parameters (``dtype``, ``chunk_size``,
        ``n_threads``, ...).

    Returns
    -------
    Selection
        The table and the refitted-free best model (:attr:`Selection.best_`, the fit of
        the grid itself).

    Raises
    ------
    ValueError
        For a bad grid, criterion or estimator parameter, or data with fewer rows than
        the smallest k.
    """
    _check_choice("criterion", criterion, CRITERIA)
    models, ks = _check_grid(n_components, covariance_types)
    if n_jobs is not None and (
        isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or n_jobs < 1
    ):
        raise ValueError(f"n_jobs must be a positive integer or None; got {n_jobs!r}.")
    for bad in ("n_components", "covariance_type"):
        if bad in estimator_params:
            raise ValueError(f"{bad} is set by the grid; pass n_components / covariance_types.")
    X = np.asarray(X) if not hasattr(X, "dask") else X
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features); got shape {X.shape}.")
    n_rows = int(X.shape[0])
    if n_rows < min(ks):
        raise ValueError(f"X has {n_rows} rows, fewer than the smallest k = {min(ks)}.")
    w = None if sample_weight is None else np.asarray(sample_weight, np.float64)
    n_eff = float(n_rows if w is None else w.sum())
    settings = dict(init_params=init_params, tol=tol, tol_type=tol_type, max_iter=max_iter,
                    reg_covar=reg_covar, n_init=n_init, random_state=random_state,
                    **estimator_params)  # fmt: skip
    shape = (len(models), len(ks))
    loglik, bic, icl, secs = (np.full(shape, np.nan) for _ in range(4))
    npar = np.zeros(shape, np.int64)
    conv = np.zeros(shape, bool)
    n_iter = np.zeros(shape, np.int64)
    reasons = np.full(shape, "", dtype=object)
    fitted = np.full(shape, None, dtype=object)
    best, best_val, best_at = None, -np.inf, None
    t_all = time.perf_counter()
    fits = [k for k in ks if k <= n_rows]

    ones = np.ones(n_rows) if w is None else w

    def record(i, j, cell):
        k, model = ks[j], models[i]
        gm = cell.estimator
        npar[i, j] = _n_parameters(GaussianMixture(k, covariance_type=model), X.shape[1])
        reasons[i, j] = cell.reason
        if not cell.reason:
            ll = float(cell.log_density @ ones)
            loglik[i, j] = ll
            bic[i, j] = 2.0 * ll - npar[i, j] * math.log(n_eff)
            icl[i, j] = bic[i, j] + 2.0 * float(cell.log_zmax @ ones)
            conv[i, j], n_iter[i, j] = gm.converged_, gm.n_iter_
            fitted[i, j] = gm
        secs[i, j] = cell.seconds
        if progress is not None:
            progress(model, k, {"loglik": loglik[i, j], "bic": bic[i, j],
                                "reason": reasons[i, j]})  # fmt: skip

    for i in range(len(models)):
        for j, k in enumerate(ks):
            if k > n_rows:
                record(
                    i, j, _grid.Cell(None, f"k = {k} exceeds the {n_rows} rows", None, None, 0.0)
                )
    for i, j, cell in _run_grid(X, w, models, ks, fits, settings, batch, n_jobs):
        record(i, j, cell)
    for j in range(len(ks)):  # the first best in the order (k, model), as mclust's table
        for i, model in enumerate(models):
            val = bic[i, j] if criterion == "bic" else icl[i, j]
            if np.isfinite(val) and val > best_val:
                best, best_val, best_at = fitted[i, j], val, (model, ks[j])
    return Selection(
        models=models, n_components=ks, n_samples=n_eff, loglik=loglik, n_parameters=npar,
        bic=bic, icl=icl, converged=conv, n_iter=n_iter, seconds=secs,
        reasons=reasons.astype(str), criterion=criterion, best_=best,
        best_model=None if best_at is None else best_at[0],
        best_k=None if best_at is None else best_at[1],
        seconds_total=time.perf_counter() - t_all, settings=settings,
    )  # fmt: skip


def _posterior_summary(gm: GaussianMixture, X) -> tuple[np.ndarray, np.ndarray]:
    """Log-density (n,) of every point and ``log max_k z_ik`` (n,), from one pass."""
    if hasattr(X, "dask"):
        z = np.asarray(gm.predict_proba(X))
        log_dens = np.asarray(gm.score_samples(X))
    else:
        log_dens, z = gm._posterior(X)
    tiny = np.finfo(np.float64).tiny
    return np.asarray(log_dens, np.float64), np.log(np.maximum(z.max(axis=1), tiny))


def _n_parameters(gm: GaussianMixture, d: int) -> int:
    """Free parameters of ``gm``'s model with ``d`` features (mclust's nMclustParams)."""
    from gmmscape.core import families

    k = gm.n_components
    return int(families.get(gm.covariance_type).n_cov_params(k, d) + k * d + k - 1)


def _tasks(X, models, ks, fits, settings, batch: bool):
    """The grid as tasks ``(i, [(j, k), ...], batched)``, model by model: all k of a
    model in one batch where that is possible (small data), else one batch per k
    (larger data), else one :meth:`GaussianMixture.fit` per k."""
    where = [(j, k) for j, k in enumerate(ks) if k in fits]
    if batch and _grid.batchable(X, fits, settings):
        return [(i, where, True) for i in range(len(models))]
    one = batch and all(_grid.batchable(X, [k], settings) for k in fits)
    return [(i, [jk], one) for i in range(len(models)) for jk in where]


def _interleave(tasks, models, groups):
    """``tasks`` reordered so that models of different storages alternate, the largest
    group first: the first tasks then load their (different) programs side by side on
    the threads instead of waiting for one program in turn. Within a group the order
    is kept."""
    queues: dict = {}
    for t in tasks:
        queues.setdefault(groups[models[t[0]]], []).append(t)
    order = sorted(queues.values(), key=len, reverse=True)  # stable: ties keep their order
    out = []
    while any(order):
        out.extend(q.pop(0) for q in order if q)
    return out


def _run_grid(X, w, models, ks, fits, settings, batch: bool, n_jobs):
    """Yield ``(i, j, Cell)`` for every (model i, k j) of the grid with k in ``fits``, in
    the order of :func:`_interleave`.

    Batches (:mod:`gmmscape.estimator._grid`) are prepared here, run on ``n_jobs``
    threads side by side (each a compiled program on one thread; JAX releases the
    interpreter while it runs) and finished here in order, so warnings are recorded in
    this thread only. A few batches are prepared ahead of the one being finished; the
    one-component batches, which start from no tree, come first and are all queued at
    once, so the threads fit them while this thread builds the tree for the others.
    """
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    from gmmscape.core.sources import stat_threads
    from gmmscape.estimator._kernels import model_groups

    groups = model_groups(models)  # models stored alike run one program
    tasks = _interleave(_tasks(X, models, ks, fits, settings, batch), models, groups)
    # one-component batches first: they need no tree, so the threads fit them while this
    # thread builds the hierarchical clustering the others start from
    tasks.sort(key=lambda t: any(k > 1 for _, k in t[1]))
    workers = max(1, stat_threads(n_jobs, 4 * len(tasks)))
    shared: dict = {}  # the grid's data on the device and its partitions, made once
    with ThreadPoolExecutor(workers) as pool:
        _warm_up(pool, X, w, tasks, models, groups, settings, shared, fits)
        pending = deque()

        def finish(item):
            i, where, b, fut = item
            if b is None:
                for j, k in where:
                    gm = GaussianMixture(k, covariance_type=models[i], **settings)
                    yield i, j, _fit_one(gm, X, w)
                return
            out, run_s = fut.result()
            cells = _grid.finish(b, out, b.seconds + run_s)
            for (j, _), cell in zip(where, cells, strict=True):
                yield i, j, cell

        for i, where, batched in tasks:
            ks_b = [k for _, k in where]
            b = None
            if batched:
                b = _grid.prepare(X, w, models[i], ks_b, settings, shared, groups[models[i]],
                                  grid=fits)  # fmt: skip
            fut = None if b is None else pool.submit(b.run)
            pending.append((i, where, b, fut))
            if all(k == 1 for k in ks_b):  # queued at once: the next may build the tree
                continue
            while len(pending) > 2 * workers:
                yield from finish(pending.popleft())
        while pending:
            yield from finish(pending.popleft())


def _warm_up(pool, X, w, tasks, models, groups, settings, shared, fits) -> None:
    """Submit to ``pool`` one warm-up run (:func:`gmmscape.estimator._grid.prepare`,
    ``warm=True``) of each distinct program of the batched ``tasks``.

    The programs then load from the persistent cache (or compile) on the threads while
    this thread builds the hierarchical-clustering tree that the real batches need; a
    warm-up only loads its program (:func:`_load_or_run`); a program this process
    already holds gets none (a second selection). A program is named by
    its storage group, its padded number of components and its batch size (the data's
    layout is the grid's)."""
    from gmmscape.estimator import _kernels as K

    n, d = X.shape
    seen = set()
    for i, where, batched in tasks:
        ks = [k for _, k in where]
        key = (groups[models[i]], _grid.padded_components(ks, fits, n, d), len(ks))
        if not batched or key in seen:
            continue
        seen.add(key)
        b = _grid.prepare(X, w, models[i], ks, settings, shared, groups[models[i]],
                          warm=True, grid=fits)  # fmt: skip
        if b is not None and not K.fit_from_labels.prepared(*b.args, **b.static):
            pool.submit(_load_or_run, b)


def _load_or_run(b) -> None:
    """Load the program of the warm-up batch ``b`` without running it; where programs
    are not stored (``GMMSCAPE_PROGRAM_STORE=0``) run it once, one iteration, so that
    ``jax.jit`` compiles it (or loads it from JAX's persistent cache)."""
    from gmmscape.estimator import _kernels as K

    if not K.fit_from_labels.load(*b.args, **b.static):
        b.run()


def _fit_one(gm: GaussianMixture, X, w) -> _grid.Cell:
    """Fit ``gm`` on its own: the fitted cell, or the reason it failed."""
    t0 = time.perf_counter()
    reason = _grid.finish_recorded(gm, lambda: gm.fit(X, sample_weight=w))
    log_dens = log_zmax = None
    if not reason:
        log_dens, log_zmax = _posterior_summary(gm, X)
    return _grid.Cell(gm, reason, log_dens, log_zmax, time.perf_counter() - t0)
