"""The :class:`GaussianMixture` estimator: scikit-learn's API on JAX kernels.

The math lives in :mod:`gmmscape.estimator._kernels` (one sufficient-statistics function,
one M-step per covariance type, one vmapped EM loop); this module validates input once,
initializes exactly as scikit-learn does (so that equal ``means_init`` or an equal
``random_state`` give equal fits), feeds the kernels with chunked in-memory data or Dask
blocks, and stores the fitted attributes as NumPy arrays.
"""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from numbers import Integral, Real
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, DensityMixin, _fit_context
from sklearn.cluster import KMeans, kmeans_plusplus
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from gmmscape._lazy import LazyModule
from gmmscape.core.chunks import chunk_layout, next_pow2, to_chunks  # noqa: F401 (benchmarks)

if TYPE_CHECKING:  # annotations only
    from gmmscape.core.mixture import Masks, Params
    from gmmscape.core.stats import Stats

# JAX, the kernels and the covariance families are imported by the first fit, not by
# ``from gmmscape import GaussianMixture`` (which then costs no more than scikit-learn's)
jax = LazyModule("jax")
jnp = LazyModule("jax.numpy")
K = LazyModule("gmmscape.estimator._kernels")
families = LazyModule("gmmscape.core.families")
_missing = LazyModule("gmmscape.estimator._missing")
sources = LazyModule("gmmscape.core.sources")
driver = LazyModule("gmmscape.dynamics.driver")

#: The covariance types (families of :mod:`gmmscape.core.families` with free covariances):
#: scikit-learn's four and mclust's models (``families.MCLUST_MODELS``; VII, VVI, EEE and
#: VVV are spherical, diag, tied and full), spelled out so that importing needs no jax.
COVARIANCE_TYPES = (
    "full", "tied", "diag", "spherical", "EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE",
    "VEE", "EVE", "VVE", "EEV", "VEV", "EVV", "VVV",
)  # fmt: skip

#: Parameters that ``freeze`` accepts.
FREEZABLE = ("weights", "means", "covariances")
#: Rows of a Dask array pulled into memory to initialize (k-means) a fit.
DASK_INIT_ROWS = 20_000


class CollapseWarning(UserWarning):
    """A component's covariance was not positive definite and was regularized."""


def _is_dask(X) -> bool:
    return type(X).__module__.split(".")[0] == "dask"


def _is_file(X) -> bool:
    """Whether ``X`` is a file streamed in blocks (:func:`gmmscape.estimator.tables.files`)."""
    return type(X).__name__ == "FileTable" and type(X).__module__ == "gmmscape.estimator.tables"


def _init_rows(n: int, random_state) -> np.ndarray:
    """The ``min(n, DASK_INIT_ROWS)`` rows (sorted) that initialize a Dask or file fit."""
    seed = random_state if isinstance(random_state, Integral) else 0
    return np.sort(np.random.default_rng(seed).choice(n, min(n, DASK_INIT_ROWS), replace=False))


def trace_length(max_iter: int) -> int:
    """Length of the compiled trace buffer: a power of two >= 8 covering ``max_iter``.

    Rounding up keeps the number of compiled variants small; the iteration limit itself
    is a runtime value.
    """
    return max(8, next_pow2(max_iter))


def weighted_mean_var(X: np.ndarray, w: np.ndarray, block: int = 2**16):
    """Weighted mean and per-feature variance of ``X``, in row blocks (no N x d temporary).

    Parameters
    ----------
    X : array of shape (n, d)
    w : array of shape (n,)
        Non-negative weights, positive sum.
    block : int, default 65536
        Rows per block.

    Returns
    -------
    mean, var : arrays of shape (d,), float64
    """
    n = X.shape[0]
    wsum = float(np.sum(w, dtype=np.float64))
    mean = (
        sum(
            w[i : i + block].astype(np.float64) @ X[i : i + block].astype(np.float64)
            for i in range(0, n, block)
        )
        / wsum
    )
    var = (
        sum(
            w[i : i + block].astype(np.float64) @ (X[i : i + block].astype(np.float64) - mean) ** 2
            for i in range(0, n, block)
        )
        / wsum
    )
    return mean, var


@dataclass
class _FitData:
    """One fit: its data source (in-memory chunks or Dask blocks, centered at
    ``offset``) and what the kernels are compiled for."""

    cov_type: str
    algorithm: str
    dtype: Any
    offset: np.ndarray
    n: int
    d: int
    k: int
    floor: np.ndarray
    #: The points: a :class:`gmmscape.core.sources.Chunks` or ``DaskChunks``.
    data: Any = None
    col_var: np.ndarray | None = None
    #: Components the kernels are compiled for (``>= k``; see ``K.component_bucket``).
    k_pad: int = 0
    #: Sum of the point weights (``n`` unweighted): the ``n`` of mclust's relative rule.
    wsum: float = 0.0

    def __post_init__(self):
        self.k_pad = max(self.k_pad, self.k)
        self.wsum = float(self.wsum) if self.wsum > 0 else float(self.n)

    def hyper(self, reg_covar, step_size, tol, n_max, tol_type="absolute"):
        """The EM loop's traced settings ``(reg_covar, floor, step_size, tol, n_max,
        rtol)``: the loop stops when the mean log-likelihood ``l`` changes by less than
        ``tol + rtol |l|``. ``tol_type="relative"`` is mclust's rule on the total
        ``L = W l`` (``W`` the sum of the weights), ``|dL| < tol (1 + |L|)``, that is
        ``|dl| < tol / W + tol |l|``."""
        dt = self.dtype
        if tol_type == "relative":
            tol, rtol = tol / self.wsum, tol
        else:
            rtol = 0.0
        return (
            # device_put, not jnp.asarray: that compiles a program per shape and dtype
            jax.device_put(np.asarray(reg_covar, dt)),
            jax.device_put(np.asarray(self.floor, dt)),
            jax.device_put(np.asarray(step_size, dt)),
            jax.device_put(np.asarray(tol, dt)),
            jax.device_put(np.asarray(n_max, np.int32)),
            jax.device_put(np.asarray(rtol, dt)),
        )

    def stats(self, params: Params) -> Stats:
        """Summed statistics for a batch of parameters (leading axis b, ``k`` components)."""
        padded, _ = K.pad_components(params, None, self.k_pad, self.cov_type)
        st = sources.sum_parts(self.data.stat_parts(padded, self.cov_type))
        return K.unpad_components(st, self.k, self.cov_type)

    def reduce(self, fn, *args):
        """Sum ``fn(xc, wc, *args)`` (a jitted chunk-scanning function) over the data."""
        return self.data.reduce(fn, *args)

    def run_em(self, params, masks, lb0, hyper, max_iter, report: int = 0) -> K.EMResult:
        """EM for a batch of starts.

        One vmapped, compiled ``while_loop`` when the source's points can enter it (in
        memory, one thread); a host loop over iterations (the same kernels) when the
        statistics are summed by several threads or on Dask. ``report > 0`` prints every
        ``report``-th iteration of each start as it runs. The kernels run on ``k_pad``
        components (the extra ones masked out); the result has ``k``.
        """
        params, masks = K.pad_components(params, masks, self.k_pad, self.cov_type)
        b = int(np.shape(lb0)[0])
        rows = self.data.n_rows if self.data.traceable else 0
        b_pad = b if report else K.batch_bucket(b, rows, self.k_pad, self.d)
        if b_pad > b:  # repeat the first start; dropped below

            def grow(a):
                a = np.asarray(a)
                return np.concatenate([a, np.repeat(a[:1], b_pad - b, axis=0)])

            params, masks, lb0 = jax.tree_util.tree_map(grow, (params, masks, lb0))
        if self.data.traceable and self.data.threads <= 1:
            res = K.em_batch(
                self.data.xc,
                self.data.wc,
                params,
                masks,
                lb0,
                hyper,
                cov_type=self.cov_type,
                algorithm=self.algorithm,
                max_iter=max_iter,
                report=report,
            )
        else:
            res = _host_em(self, params, masks, lb0, hyper, max_iter, report)
        res = jax.tree_util.tree_map(lambda a: np.asarray(a)[:b], res)
        return res._replace(params=K.unpad_components(res.params, self.k, self.cov_type))


def _host_em(fd: _FitData, params, masks, lb0, hyper, max_iter, report=0) -> K.EMResult:
    """EM driven from the host (:func:`gmmscape.dynamics.driver.run_host`): the source's
    statistics (threads or Dask), then the M-step kernel.

    The stopping rule, trace and result are those of :func:`K.em_batch`.
    """
    threads = fd.data.threads
    pool = ThreadPoolExecutor(threads) if threads > 1 else None

    def step(state, active):
        p, nbad = state
        p, lb, bad = K.host_step(
            fd.data.stat_parts(p, fd.cov_type, pool),
            p,
            masks,
            jax.device_put(active),
            hyper,
            cov_type=fd.cov_type,
            algorithm=fd.algorithm,
        )
        lb, bad = jax.device_get((lb, bad))
        return (p, nbad + np.where(active, bad, 0)), lb, np.zeros(len(active), bool)

    def live(i, it, lb, change):
        K.print_iteration(i, it, lb, change, report)

    try:
        (params, nbad), out = driver.run_host(
            step,
            (params, np.zeros(len(lb0), int)),
            lb0,
            float(hyper[3]),
            int(hyper[4]),
            criterion="change",
            rtol=float(hyper[5]),
            trace_len=max_iter,
            report=live if report else None,
        )
    finally:
        if pool is not None:
            pool.shutdown()
    dt = fd.dtype
    return K.EMResult(
        params,
        np.asarray(out["value"], dt),
        np.asarray(out["trace"], dt),
        out["it"],
        out["done"],
        nbad,
    )


class GaussianMixture(DensityMixin, BaseEstimator):
    """Gaussian mixture fitted by EM on JAX, compatible with scikit-learn.

    The same API and the same results as :class:`sklearn.mixture.GaussianMixture` from the
    same initialization, plus sample weights, frozen parameters, gradient EM, float32,
    vmapped restarts, a chunked E-step, Dask input and split-and-merge refinement.

    Parameters
    ----------
    n_components : int, default 1
        Number of mixture components k.
    covariance_type : {"full", "tied", "diag", "spherical"}, default "full"
    tol : float, default 1e-3
        EM stops when the mean log-likelihood changes by less than ``tol`` (with
        ``tol_type="absolute"``).
    tol_type : {"absolute", "relative"}, default "absolute"
        The stopping rule. ``"absolute"``: ``|l_t - l_{t-1}| < tol`` for the mean
        log-likelihood ``l`` (scikit-learn's rule). ``"relative"``: ``|L_t - L_{t-1}| <
        tol (1 + |L_t|)`` for the total ``L`` (the sum over the points, weighted), the
        rule of R's mclust (its default ``tol = 1e-5``).
    reg_covar : float, default 1e-6
        Added to the diagonal of every covariance.
    max_iter : int, default 100
    n_init : int, default 1
        Number of initializations; all of them run as one vmapped, compiled batch and the
        one with the largest final log-likelihood is kept.
    init_params : {"kmeans", "k-means++", "random", "random_from_data", "hc", "hc_eii"}, \
default "kmeans"
        ``"hc"`` starts from the partition into ``n_components`` clusters of mclust's
        model-based agglomerative hierarchical clustering (VVV criterion on the
        SVD-transformed data, mclust's default; ``"hc_eii"``: Ward's EII criterion), as
        R's ``mclustBIC`` does. It is deterministic (``random_state`` plays no part, so
        ``n_init > 1`` repeats one start) and, on more than 2000 rows, built on a fixed
        subsample of 2000 rows whose M-step starts EM on all (gmmscape.estimator._hc).
    weights_init : array-like of shape (n_components,), optional
    means_init : array-like of shape (n_components, n_features), optional
    precisions_init : array-like, optional
        Shapes (k, d, d) full, (d, d) tied, (k, d) diag, (k,) spherical.
    random_state : int, RandomState or None, default None
    warm_start : bool, default False
        Start the next ``fit`` from the current parameters (one initialization).
    verbose : int, default 0
        1 prints a line per initialization, 2 also the log-likelihood trace.
    verbose_interval : int, default 10
        Iterations between trace lines.
    freeze : tuple of {"weights", "means", "covariances"}, default ()
        Parameters kept at their given initial values (``weights_init``, ``means_init``,
        ``precisions_init``), e.g. ``freeze=("weights", "covariances")`` with a known
        ``sigma^2 I`` learns the means only.
    algorithm : {"em", "gradient_em"}, default "em"
        ``"gradient_em"`` replaces the mean update by
        ``mu_k + step_size * (S1_k - N_k mu_k) / W`` (gmmscape.core.updates).
    step_size : float, default 1.0
        Step of gradient EM.
    dtype : {None, "float32", "float64"}, default None
        Computation precision; None keeps float32 input as float32, otherwise float64.
    chunk_size : int, optional
        Rows per chunk of the E-step; its memory is bounded by ``chunk_size * k * d``
        per restart and per thread (see ``n_threads``).
    refine : bool, default False
        After EM, try split-and-merge moves and keep those that raise the likelihood.
    refine_max_moves : int, optional
        Largest number of accepted moves (default ``n_components``).
    refine_candidates : int, default 5
        Candidate moves evaluated (as one vmapped batch) per round.
    n_threads : int, optional
        Host threads that sum the E-step statistics of in-memory data, each over its own
        range of chunks (default: every core this process may run on, as scikit-learn's
        BLAS does). Used only when every thread gets at least four chunks; otherwise, and
        with ``n_threads=1``, each EM run is one compiled loop on one thread.
    missing : {"error", "em"}, default "error"
        What NaN entries of ``X`` mean. ``"error"`` (the default) refuses them, as
        scikit-learn does (so its estimator checks keep passing). ``"em"`` treats them
        as missing at random: ``fit``, ``partial_fit``, ``score_samples``, ``score``,
        ``predict`` and ``predict_proba`` use the exact observed-data likelihood
        (each row's marginal density of its observed coordinates; the M-step adds the
        conditional second moments of the missing ones), for every covariance type and
        with sample weights; ``impute`` fills the holes. Rows with every entry missing
        are an error; complete data is fitted exactly as with ``"error"``. In-memory
        data only (a Dask array with NaN is refused); ``refine`` is not available.
    learning_decay : float in (0.5, 1], default 0.6
        ``rho`` of the online EM step ``gamma_t = (t + learning_offset)^-rho`` taken by
        ``partial_fit`` on chunk ``t`` after the first (Cappé & Moulines 2009).
    learning_offset : float, default 2.0
        ``t0`` of that step; larger values make the first steps smaller.

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
    means_ : ndarray of shape (n_components, n_features)
    covariances_ : ndarray
    precisions_ : ndarray
    precisions_cholesky_ : ndarray
    converged_ : bool
    n_iter_ : int
    lower_bound_ : float
        Mean (weighted) log-likelihood of the best run at its last iteration.
    lower_bounds_ : list of float
        The best run's trace; with ``refine``, followed by the traces of the full EM runs
        of the accepted moves (``lower_bound_`` is then the log-likelihood after the last
        move).
    refine_moves_ : list of dict
        Moves accepted by ``refine`` (kind, components, log-likelihood before/after).
    n_collapsed_ : int
        Covariances regularized because they collapsed.
    n_features_in_ : int
    """

    _parameter_constraints: ClassVar[dict] = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "covariance_type": [StrOptions(set(COVARIANCE_TYPES))],
        "tol": [Interval(Real, 0.0, None, closed="left")],
        "tol_type": [StrOptions({"absolute", "relative"})],
        "reg_covar": [Interval(Real, 0.0, None, closed="left")],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "init_params": [
            StrOptions({"kmeans", "random", "random_from_data", "k-means++", "hc", "hc_eii"})
        ],
        "weights_init": ["array-like", None],
        "means_init": ["array-like", None],
        "precisions_init": ["array-like", None],
        "random_state": ["random_state"],
        "warm_start": ["boolean"],
        "verbose": ["verbose"],
        "verbose_interval": [Interval(Integral, 1, None, closed="left")],
        "freeze": [tuple, list],
        "algorithm": [StrOptions({"em", "gradient_em"})],
        "step_size": [Interval(Real, 0.0, None, closed="neither")],
        "dtype": [StrOptions({"float32", "float64"}), None, type],
        "chunk_size": [Interval(Integral, 1, None, closed="left"), None],
        "refine": ["boolean"],
        "refine_max_moves": [Interval(Integral, 0, None, closed="left"), None],
        "refine_candidates": [Interval(Integral, 1, None, closed="left")],
        "n_threads": [Interval(Integral, 1, None, closed="left"), None],
        "missing": [StrOptions({"error", "em"})],
        "learning_decay": [Interval(Real, 0.5, 1.0, closed="right")],
        "learning_offset": [Interval(Real, 0.0, None, closed="left")],
    }

    def __init__(
        self,
        n_components=1,
        *,
        covariance_type="full",
        tol=1e-3,
        tol_type="absolute",
        reg_covar=1e-6,
        max_iter=100,
        n_init=1,
        init_params="kmeans",
        weights_init=None,
        means_init=None,
        precisions_init=None,
        random_state=None,
        warm_start=False,
        verbose=0,
        verbose_interval=10,
        freeze=(),
        algorithm="em",
        step_size=1.0,
        dtype=None,
        chunk_size=None,
        refine=False,
        refine_max_moves=None,
        refine_candidates=5,
        n_threads=None,
        missing="error",
        learning_decay=0.6,
        learning_offset=2.0,
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.tol_type = tol_type
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.freeze = freeze
        self.algorithm = algorithm
        self.step_size = step_size
        self.dtype = dtype
        self.chunk_size = chunk_size
        self.refine = refine
        self.refine_max_moves = refine_max_moves
        self.refine_candidates = refine_candidates
        self.n_threads = n_threads
        self.missing = missing
        self.learning_decay = learning_decay
        self.learning_offset = learning_offset

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = self.missing == "em"
        return tags

    # ----------------------------------------------------------------------------------
    # validation
    # ----------------------------------------------------------------------------------
    def _compute_dtype(self, X_dtype):
        if self.dtype is None:
            return np.float32 if X_dtype == np.float32 else np.float64
        dt = np.dtype(self.dtype)
        if dt not in (np.float32, np.float64):
            raise ValueError(f"dtype must be None, 'float32' or 'float64'; got {self.dtype!r}.")
        return dt.type

    def _check_freeze(self):
        freeze = tuple(self.freeze)
        bad = [f for f in freeze if f not in FREEZABLE]
        if bad:
            raise ValueError(f"freeze may contain {FREEZABLE}; got unknown {bad}.")
        need = {"weights": "weights_init", "means": "means_init", "covariances": "precisions_init"}
        for f in freeze:
            if getattr(self, need[f]) is None:
                raise ValueError(
                    f"freeze={freeze!r} keeps the {f} fixed, so {need[f]} must give their "
                    "known values."
                )
        if self.refine and "means" in freeze:
            raise ValueError("refine=True moves the means; it cannot be used with frozen means.")
        return freeze

    def _check_inits(self, d, dtype, k=None):
        """Check ``weights_init``, ``means_init`` and ``precisions_init`` for ``k``
        components (default ``n_components``).

        The messages start with scikit-learn's wording ("The parameter 'weights' should
        ...") and say which argument to fix.
        """
        k = self.n_components if k is None else k
        out = {}

        def shape_error(name, arg, want, got):
            return ValueError(
                f"The parameter '{name}' should have the shape of {want}, but got {got} "
                f"({arg} needs one entry per component: n_components = {k}, "
                f"n_features = {d})."
            )

        if self.weights_init is not None:
            w = np.asarray(self.weights_init, dtype=np.float64)
            if w.shape != (k,):
                raise shape_error("weights", "weights_init", (k,), w.shape)
            if not np.all(np.isfinite(w)) or (w < 0).any() or (w > 1).any():
                raise ValueError(
                    "The parameter 'weights' should be in the range [0, 1], but got min "
                    f"value {np.min(w):.5f}, max value {np.max(w):.5f} (weights_init)."
                )
            if not np.allclose(np.sum(w), 1.0, rtol=0, atol=1e-6):
                raise ValueError(
                    "The parameter 'weights' should be normalized, but got sum(weights) = "
                    f"{np.sum(w):.5f} (weights_init must sum to 1 within 1e-6)."
                )
            out["weights"] = (w / w.sum()).astype(dtype)
        if self.means_init is not None:
            m = np.asarray(self.means_init, dtype=np.float64)
            if m.shape != (k, d):
                raise shape_error("means", "means_init", (k, d), m.shape)
            if not np.all(np.isfinite(m)):
                raise ValueError("means_init holds NaN or inf.")
            out["means"] = m.astype(dtype)
        if self.precisions_init is not None:
            ct = self.covariance_type
            fam = families.get(ct)
            shape = fam.cov_shape(k, d)
            p = np.asarray(self.precisions_init, dtype=np.float64)
            if p.shape != shape:
                raise shape_error(f"{ct} precision", "precisions_init", shape, p.shape)
            if not np.all(np.isfinite(p)):
                raise ValueError("precisions_init holds NaN or inf.")
            if fam.matrix:
                mats = p[None] if fam.shared else p
                for i, mat in enumerate(mats):
                    if not np.allclose(mat, mat.T) or np.linalg.eigvalsh(mat).min() <= 0:
                        raise ValueError(
                            f"'{ct} precision' should be symmetric, positive-definite "
                            f"(precisions_init[{i}] is not)."
                        )
            elif (p <= 0).any():
                raise ValueError(f"'{ct} precision' should be positive (precisions_init).")
            out["precisions"] = p
        return out

    def _validate_X(self, X, reset: bool, dtype=None, allow_nan=None):
        if _is_dask(X) or _is_file(X):
            if X.ndim != 2:
                raise ValueError(f"X must be 2-D (n_samples, n_features); got {X.ndim}-D.")
            if reset:
                self.n_features_in_ = int(X.shape[1])
            elif X.shape[1] != self.n_features_in_:
                raise ValueError(
                    f"X has {X.shape[1]} features, but GaussianMixture is expecting "
                    f"{self.n_features_in_} features as input."
                )
            return X
        kw = {"dtype": [np.float64, np.float32]} if dtype is None else {"dtype": dtype}
        if self.missing == "em" if allow_nan is None else allow_nan:
            kw["ensure_all_finite"] = "allow-nan"
        if reset:
            return validate_data(self, X, ensure_min_samples=2, **kw)
        return validate_data(self, X, reset=False, **kw)

    # ----------------------------------------------------------------------------------
    # fitting
    # ----------------------------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, sample_weight=None):
        """Fit the mixture by EM (``n_init`` vmapped restarts, the best one kept).

        Parameters
        ----------
        X : array-like or dask array of shape (n_samples, n_features)
        y : ignored
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative point weights (default all 1).

        Returns
        -------
        self : GaussianMixture
        """
        self._fit(X, sample_weight)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit the mixture and return the most likely component of every point.

        Parameters
        ----------
        X : array-like or dask array of shape (n_samples, n_features)
        y : ignored
        sample_weight : array-like of shape (n_samples,), optional

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            (A lazy Dask array for Dask input.)
        """
        self._fit(X, sample_weight)
        return self.predict(X)  # lazy labels for Dask input

    def _fit(self, X, sample_weight) -> None:
        """The work of :meth:`fit` and :meth:`fit_predict` (which then predicts X)."""
        self.__dict__.pop("_online", None)  # a fit ends an online run (partial_fit)
        if self.missing == "em" and _missing.has_nan(X):
            X = self._validate_X(X, reset=True)
            return _missing.fit(self, X, sample_weight, _FitData)
        fd, params0, masks, lb0 = self._prepare_fit(X, sample_weight)
        hyper = fd.hyper(self.reg_covar, self.step_size, self.tol, self.max_iter, self.tol_type)
        if self.verbose > 0:
            how = fd.data.describe()
            print(
                f"Initializations 0..{lb0.shape[0] - 1}: EM on all of them at once ({how})",
                flush=True,
            )
        report = self.verbose_interval if self.verbose >= 2 else 0
        res = fd.run_em(params0, masks, lb0, hyper, trace_length(self.max_iter), report)
        params = self._keep_best(res, lb0)
        if self.refine and self.max_iter > 0:
            from gmmscape.estimator._refine import refine_fit

            params, moves, extra_trace = refine_fit(
                self, fd, params, masks, hyper, trace_length(self.max_iter)
            )
            self.refine_moves_ = moves
            if moves:
                self.lower_bound_ = float(moves[-1]["loglik_after"])
                self.lower_bounds_ = self.lower_bounds_ + extra_trace
        self._finish(params, fd)

    def _keep_best(self, res, lb0) -> Params:
        """The best start of an EM batch; sets the run's fitted attributes.

        Parameters
        ----------
        res : K.EMResult
            With a leading batch axis b.
        lb0 : array of shape (b,)
            The lower bounds before the first iteration.

        Returns
        -------
        Params
            The best start's parameters (no batch axis).
        """
        res = jax.tree_util.tree_map(np.asarray, res)  # indexed on the host from here
        lbs = np.asarray(res.lower_bound, dtype=np.float64)
        best = int(np.argmax(np.where(np.isnan(lbs), -np.inf, lbs)))
        n_iter = int(res.n_iter[best])
        for i in range(lbs.shape[0]):
            self._verbose_run(
                i, np.asarray(res.trace[i])[: int(res.n_iter[i])], bool(res.converged[i])
            )
        self.converged_ = bool(res.converged[best])
        self.n_iter_ = n_iter
        self.lower_bound_ = float(lbs[best]) if self.max_iter > 0 else float(lb0[best])
        self.lower_bounds_ = [float(v) for v in np.asarray(res.trace[best], np.float64)[:n_iter]]
        self.n_collapsed_ = int(res.n_collapsed[best])
        self.refine_moves_ = []
        return K.take_tree(res.params, best)

    def _finish(self, params: Params, fd: _FitData) -> None:
        """Warn about collapses and non-convergence, check and set the fitted parameters."""
        if self.n_collapsed_ > 0:
            warnings.warn(
                f"{self.n_collapsed_} covariance update(s) were singular or not positive "
                f"definite after reg_covar={self.reg_covar:g} (a component collapsed onto few "
                "points); they were regularized by adding, to each feature's variance, "
                f"{K.floor_rel(fd.dtype):.3g} times that column's variance. Increase "
                "reg_covar or decrease n_components.",
                CollapseWarning,
                stacklevel=3,
            )
        if not self.converged_ and self.max_iter > 0:
            warnings.warn(
                "Best performing initialization did not converge. Try different init "
                "parameters, or increase max_iter, tol, or check for degenerate data.",
                ConvergenceWarning,
                stacklevel=3,
            )
        self._check_finite(params, fd)
        self._set_params_arrays(params, fd)

    def _update_masks(self, freeze, dtype) -> Masks:
        """The M-step's masks: 0 for the frozen parameters (``freeze``), 1 elsewhere."""
        ones, zeros = np.ones(self.n_components, dtype), np.zeros(self.n_components, dtype)
        return K.Masks(*(zeros if name in freeze else ones for name in FREEZABLE))

    def _check_finite(self, params: Params, fd: _FitData) -> None:
        """Raise (leaving the estimator as it was) if the fitted parameters are not finite."""
        bad = [
            name
            for name, a in zip(params._fields, params, strict=True)
            if not np.all(np.isfinite(np.asarray(a)))
        ]
        if not bad:
            return
        var = np.asarray(fd.col_var, np.float64)
        lo, hi = int(np.argmin(var)), int(np.argmax(var))
        raise ValueError(
            f"EM produced non-finite {', '.join(bad)} in {np.dtype(fd.dtype).name}: the "
            f"column variances range from {var[lo]:.3g} (column {lo}) to {var[hi]:.3g} "
            f"(column {hi}). "
            "Rescale the columns (e.g. standardize them), use dtype='float64', or raise "
            "reg_covar. Nothing was fitted."
        )

    def _prepare_fit(self, X, sample_weight):
        freeze = self._check_freeze()
        dask_in = _is_dask(X)
        X = self._validate_X(X, reset=True)
        n, d = int(X.shape[0]), int(X.shape[1])
        k = self.n_components
        if n < k:
            raise ValueError(
                f"Expected n_samples >= n_components but got n_components = {k}, "
                f"n_samples = {n}: decrease n_components or supply more data."
            )
        dtype = self._compute_dtype(np.dtype(X.dtype))
        inits = self._check_inits(d, dtype)
        if dask_in:
            fd, Xinit, winit = self._prepare_dask(X, sample_weight, dtype, n, d)
        elif _is_file(X):
            fd, Xinit, winit = self._prepare_files(X, sample_weight, dtype, n, d)
        else:
            do_init = not (self.warm_start and hasattr(self, "converged_"))
            fd, Xinit, winit = self._prepare_memory(
                X, sample_weight, dtype, n, d, self.n_init if do_init else 1
            )
        do_init = not (self.warm_start and hasattr(self, "converged_"))
        starts = []
        if do_init:
            rng = check_random_state(self.random_state)
            # The initial moments are summed over the fit's own chunks where they hold
            # all the data (in memory); a Dask fit initializes from a subsample.
            chunks = (fd.data.xc, fd.data.wc) if fd.data.traceable else None
            for _ in range(self.n_init):
                starts.append(self._initial_params(Xinit, winit, rng, fd, inits, chunks))
            lb0 = np.full((self.n_init,), -np.inf, dtype)
        else:
            starts.append(self._current_params(fd))
            lb0 = np.full((1,), self.lower_bound_, dtype)
        masks = K.stack_trees([self._update_masks(freeze, dtype)] * len(starts))
        return fd, K.stack_trees(starts), masks, lb0

    def _prepare_memory(self, X, sample_weight, dtype, n, d, n_batch: int, k_pad=None):
        """An in-memory fit: the weights checked, the column moments, and the centered
        points on the device, chunked for ``n_batch`` starts of ``k_pad`` components
        (default ``K.component_bucket(n_components, n, d)``).

        Returns
        -------
        fd : _FitData
        X, w : ndarrays of shape (n, d) and (n,)
            The points and weights in ``dtype`` (what the starts are computed from).
        """
        k = self.n_components
        X = np.asarray(X, dtype=dtype)
        w = _check_sample_weight(sample_weight, X, dtype=dtype)
        if (w < 0).any():
            raise ValueError("sample_weight must be non-negative.")
        if not w.sum() > 0:
            raise ValueError("sample_weight must not be all zero.")
        with np.errstate(over="ignore", invalid="ignore"):
            offset, var = weighted_mean_var(X, w)
        self._check_scale(var, X.min(axis=0), X.max(axis=0), offset, n, dtype)
        fd = _FitData(
            self.covariance_type,
            self.algorithm,
            dtype,
            offset.astype(dtype),
            n,
            d,
            k,
            K.collapse_floor(var, dtype, self.covariance_type),
            col_var=var,
            wsum=float(np.sum(w, dtype=np.float64)),
        )
        fd.k_pad = K.component_bucket(k, n, d) if k_pad is None else max(int(k_pad), k)
        fd.data = sources.Chunks.from_arrays(
            X,
            w,
            k=fd.k_pad,
            n_batch=n_batch,
            chunk_size=self.chunk_size,
            offset=fd.offset,
            n_threads=self.n_threads,
        )
        return fd, X, w

    @staticmethod
    def _check_scale(var, lo, hi, offset, n, dtype):
        """Refuse data whose squares (summed over the rows) overflow ``dtype``.

        Constant columns are fitted, as scikit-learn fits them: ``reg_covar`` keeps the
        covariance definite (and, with ``reg_covar=0``, the collapse floor).
        """
        lim = float(np.sqrt(np.finfo(dtype).max / max(n, 1)))
        with np.errstate(over="ignore", invalid="ignore"):
            dev = np.maximum(
                np.abs(np.asarray(hi, np.float64) - offset),
                np.abs(np.asarray(lo, np.float64) - offset),
            )
        bad = np.flatnonzero(~(dev < lim) | ~np.isfinite(var))
        if bad.size:
            j = int(bad[np.argmax(np.where(np.isfinite(dev[bad]), dev[bad], np.inf))])
            raise ValueError(
                f"X column {j} has values {dev[j]:.3g} away from its mean, whose squares "
                f"summed over {n} rows overflow {np.dtype(dtype).name} (largest allowed "
                f"deviation {lim:.3g}); column(s) {bad.tolist()[:10]} are affected. Rescale "
                "these columns (e.g. divide by their standard deviation) before fitting."
            )

    def _prepare_dask(self, X, sample_weight, dtype, n, d):
        import dask.array as da

        if len(X.chunks[1]) > 1:
            X = X.rechunk({1: -1})
        if sample_weight is None:
            w = da.ones(n, chunks=(X.chunks[0],), dtype=dtype)
        else:
            w = da.asarray(sample_weight).astype(dtype).rechunk((X.chunks[0],))
            if w.shape != (n,):
                raise ValueError(f"sample_weight must have shape ({n},); got {w.shape}.")
        Xf = X.astype(dtype)
        wsum, s1, s2, lo, hi, bad, wmin = da.compute(
            w.sum(),
            (Xf * w[:, None]).sum(0),
            (Xf * Xf * w[:, None]).sum(0),
            Xf.min(0),
            Xf.max(0),
            (~da.isfinite(Xf)).sum(),
            w.min(),
        )
        if bad:
            raise ValueError(f"X holds {int(bad)} non-finite value(s) (NaN or inf).")
        if wmin < 0 or not wsum > 0:
            raise ValueError("sample_weight must be non-negative and not all zero.")
        offset = s1 / wsum
        var = np.maximum(s2 / wsum - offset**2, 0.0)
        self._check_scale(var, lo, hi, offset, n, dtype)
        fd = _FitData(
            self.covariance_type,
            self.algorithm,
            dtype,
            np.asarray(offset, dtype),
            n,
            d,
            self.n_components,
            K.collapse_floor(var, dtype, self.covariance_type),
            col_var=var,
            wsum=float(wsum),
        )
        fd.data = sources.DaskChunks(
            Xf, w, offset=fd.offset, dtype=dtype, k=fd.k, chunk_size=self.chunk_size
        )
        idx = _init_rows(n, self.random_state)
        Xinit = np.asarray(Xf[idx].compute(), dtype=dtype)
        winit = np.asarray(w[idx].compute(), dtype=dtype)
        return fd, Xinit, winit

    def _prepare_files(self, X, sample_weight, dtype, n, d):
        """A file fit: one pass for the column moments and the initializing rows
        (those of a Dask fit, :func:`_init_rows`), then a pass per EM iteration."""
        if sample_weight is not None:
            raise ValueError(
                f"sample_weight is not available for a file streamed in blocks ({X.path}); "
                "fit the rows as they are, or read the file into memory."
            )
        sm = X.summary(_init_rows(n, self.random_state))
        if sm.n_nan or sm.n_inf:
            what = f"{sm.n_nan} missing (NaN) and {sm.n_inf} infinite entries"
            how = (
                "batch EM streamed from a file needs complete rows: with missing='em', fit "
                "it online (partial_fit on each of its blocks(), `gmmscape fit --online`) "
                "or read it into memory"
                if self.missing == "em" and not sm.n_inf
                else "remove those rows (or, for NaN, set missing='em' and fit online)"
            )
            raise ValueError(f"{X.path}: the file holds {what}; {how}.")
        self._check_scale(sm.var, sm.lo, sm.hi, sm.mean, n, dtype)
        fd = _FitData(
            self.covariance_type, self.algorithm, dtype, np.asarray(sm.mean, dtype), n, d,
            self.n_components, K.collapse_floor(sm.var, dtype, self.covariance_type),
            col_var=sm.var,
        )  # fmt: skip
        fd.data = sources.BlockChunks(
            X.blocks,
            n,
            offset=fd.offset,
            dtype=dtype,
            k=fd.k,
            chunk_size=self.chunk_size,
            label=f"{X.format} blocks of {X.block_rows} rows",
        )
        return fd, np.asarray(sm.rows, dtype), np.ones(sm.rows.shape[0], dtype)

    def _initial_params(self, X, w, rng, fd: _FitData, inits, chunks=None) -> Params:
        """One start, initialized exactly as scikit-learn's ``_initialize_parameters``.

        scikit-learn builds an ``(n, k)`` responsibility matrix; here the hard assignments
        are kept as ``n`` labels and the random ones drawn chunk by chunk (the same random
        stream), and their moments are summed over ``chunks`` (the centered data as
        ``(xc, wc)``; built from ``X`` and ``w`` when None).
        """
        n, k, ct = X.shape[0], self.n_components, self.covariance_type
        if all(name in inits for name in ("weights", "means", "precisions")):
            # every parameter given: nothing to estimate from the data (scikit-learn
            # gh-26015); the moments are not needed
            return self._start_params(None, fd, inits)
        kp = fd.k_pad
        if chunks is None:
            rows, n_chunks = chunk_layout(n, kp, X.shape[1], 1, self.chunk_size)
            chunks = sources.device_chunks(X, w, rows, n_chunks, fd.offset)
        xc, wc = chunks
        n_chunks, rows = wc.shape
        unweighted = bool(np.all(w == 1))
        wsum = np.sum(w, dtype=np.float64).astype(fd.dtype)
        rest = self._moment_args(kp, fd)
        sw = None if unweighted else w
        if self.init_params == "random":
            # scikit-learn: rng.uniform(size=(n, k)), rows normalized; drawn row block by
            # row block the stream is the same.
            nk = s1 = s2 = 0.0
            for i in range(n_chunks):
                m = max(0, min(rows, n - i * rows))
                r = np.zeros((rows, kp), X.dtype)
                if m:
                    u = np.asarray(rng.uniform(size=(m, k)), dtype=X.dtype)
                    r[:m, :k] = u / u.sum(axis=1)[:, None]
                a, b, c = K.moments_jit(xc[i], wc[i][:, None] * r, ct)
                nk, s1, s2 = nk + a, s1 + b, s2 + c
            padded = K.params_from_moments(wsum, nk, s1, s2, *rest, cov_type=ct)
        else:
            labels = np.full(rows * n_chunks, -1, np.int32)
            if self.init_params == "kmeans":
                labels[:n] = (
                    KMeans(n_clusters=k, n_init=1, random_state=rng)
                    .fit(X, sample_weight=sw)
                    .labels_
                )
            elif self.init_params in ("hc", "hc_eii"):
                from gmmscape.estimator._hc import hc_labels

                labels[:n] = hc_labels(X, k, "EII" if self.init_params == "hc_eii" else "VVV")
            elif self.init_params == "random_from_data":
                p = None if unweighted else w / w.sum()
                labels[rng.choice(n, size=k, replace=False, p=p)] = np.arange(k)
            else:
                _, idx = kmeans_plusplus(X, k, random_state=rng, sample_weight=sw)
                labels[idx] = np.arange(k)
            lc = labels.reshape(n_chunks, rows)
            padded = K.init_from_labels(xc, wc, lc, wsum, *rest, k=kp, cov_type=ct)
        return self._start_params(padded, fd, inits)

    def _moment_args(self, nk_width: int, fd: _FitData) -> tuple:
        """The arguments after the moments of :func:`K.params_from_moments`."""
        dt = fd.dtype
        active = (np.arange(nk_width) < self.n_components).astype(dt)
        return active, np.asarray(self.reg_covar, dt), np.asarray(fd.floor, dt)

    def _start_params(self, padded: Params | None, fd: _FitData, inits) -> Params:
        """One start as NumPy arrays with ``n_components`` components: the (padded)
        parameters estimated from initial responsibilities, as scikit-learn's
        ``_initialize``, with ``weights_init``, ``means_init`` and ``precisions_init``
        replacing what they give (``padded`` is None when all three are given)."""
        ct, dt, k = self.covariance_type, fd.dtype, self.n_components
        weights = means = cov = pc = None
        if padded is not None:
            padded = jax.tree_util.tree_map(lambda a: np.asarray(a)[None], padded)
            weights, means, cov, pc = K.take_tree(K.unpad_components(padded, k, ct), 0)
        if "weights" in inits:
            weights = np.asarray(inits["weights"], dt)
        if "means" in inits:
            means = np.asarray(inits["means"] - fd.offset, dt)
        if "precisions" in inits:
            # scikit-learn's convention (_compute_precision_cholesky_from_precisions)
            cov, pc = families.get(ct).from_precisions(inits["precisions"])
        return K.Params(weights.astype(dt), means.astype(dt), cov.astype(dt), pc.astype(dt))

    # scikit-learn's private initialization protocol (``BaseMixture._initialize`` and
    # ``_set_parameters``), kept so that code and tests written against it work
    def _initialize(self, X, resp):
        """Set the parameters from responsibilities, as scikit-learn's ``_initialize``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        resp : array-like of shape (n_samples, n_components)
            Responsibilities (rows sum to one).
        """
        X = np.asarray(X)
        dtype = self._compute_dtype(X.dtype)
        X = X.astype(dtype)
        n, d = X.shape
        w = np.ones(n, dtype)
        offset, var = weighted_mean_var(X, w)
        resp = np.asarray(resp, dtype)
        fd = _FitData(
            self.covariance_type, self.algorithm, dtype, offset.astype(dtype), n, d,
            resp.shape[1], K.collapse_floor(var, dtype, self.covariance_type),
            col_var=var,
        )  # fmt: skip
        xc = jnp.asarray(X - offset.astype(dtype))
        ct = self.covariance_type
        nk, s1, s2 = K.moments_jit(xc, resp, ct)
        inits = self._check_inits(d, dtype, k=resp.shape[1])
        rest = self._moment_args(resp.shape[1], fd)
        padded = K.params_from_moments(np.asarray(n, dtype), nk, s1, s2, *rest, cov_type=ct)
        self._set_params_arrays(self._start_params(padded, fd, inits), fd)

    def _set_parameters(self, params):
        """Set ``(weights, means, covariances, precisions_cholesky)``, as scikit-learn.

        Parameters
        ----------
        params : tuple of arrays
            Shapes (k,), (k, d), and the covariance type's shapes.
        """
        self.weights_, self.means_, self.covariances_, self.precisions_cholesky_ = (
            np.asarray(a) for a in params
        )
        self._compute_dtype_ = self.means_.dtype.type
        self._set_precisions()

    def _current_params(self, fd) -> Params:
        dt = fd.dtype
        return K.Params(
            np.asarray(self.weights_, dt),
            np.asarray(self.means_ - fd.offset, dt),
            np.asarray(self.covariances_, dt),
            np.asarray(self.precisions_cholesky_, dt),
        )

    def _set_params_arrays(self, params: Params, fd: _FitData):
        dt = fd.dtype
        self.weights_ = np.asarray(params.weights, dtype=dt)
        self.means_ = (np.asarray(params.means, dtype=np.float64) + fd.offset).astype(dt)
        self.covariances_ = np.asarray(params.covariances, dtype=dt)
        self.precisions_cholesky_ = np.asarray(params.precisions_cholesky, dtype=dt)
        self._compute_dtype_ = dt
        self._set_precisions()

    def _set_precisions(self):
        self.precisions_ = families.get(self.covariance_type).precisions(self.precisions_cholesky_)

    def _verbose_run(self, i, trace, converged):
        """The end-of-run line of start ``i`` (its iterations were printed live)."""
        if self.verbose <= 0:
            return
        state = "converged" if converged else "did not converge"
        last = f", lower bound {trace[-1]:.5f}" if len(trace) else ""
        print(f"Initialization {i} {state} after {len(trace)} iteration(s){last}.")

    # ----------------------------------------------------------------------------------
    # prediction
    # ----------------------------------------------------------------------------------
    def _fitted_params(self, dt, center=None) -> Params:
        """The fitted parameters as kernel input, means shifted by ``-center`` (d,)."""
        means = np.asarray(self.means_, np.float64) - (0.0 if center is None else center)
        return K.Params(
            np.asarray(self.weights_, dt),
            np.asarray(means, dt),
            np.asarray(self.covariances_, dt),
            np.asarray(self.precisions_cholesky_, dt),
        )

    def _center(self) -> np.ndarray:
        """The point the log-densities are evaluated about: the mixture's mean.

        Points and means are both shifted by it (in float64) before the kernels run, so
        data far from the origin (large offsets) lose no precision to cancellation.
        """
        return np.asarray(self.weights_, np.float64) @ np.asarray(self.means_, np.float64)

    def _kernel_input(self, X):
        """``X`` chunked about the mixture's mean and the padded fitted parameters."""
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        dt = self._compute_dtype_
        X = np.asarray(X, dtype=dt)
        n, d = X.shape
        k_pad = K.component_bucket(self.n_components, n, d)
        rows, n_chunks = chunk_layout(n, k_pad, d, 1, self.chunk_size)
        center = self._center()
        xc, _ = sources.device_chunks(X, np.zeros(n, dt), rows, n_chunks, center.astype(dt))
        params = K.stack_trees([self._fitted_params(dt, center)])
        params = K.take_tree(K.pad_components(params, None, k_pad, self.covariance_type)[0], 0)
        return xc, params, n

    def _with_nan(self, X):
        """Validated ``X`` if it holds NaN and ``missing="em"`` (else None)."""
        if self.missing != "em" or not _missing.has_nan(X):
            return None
        check_is_fitted(self)
        return self._validate_X(X, reset=False)

    def _posterior(self, X) -> tuple[np.ndarray, np.ndarray]:
        """Log-density (n,) and responsibilities (n, k) of in-memory ``X``."""
        if (Xm := self._with_nan(X)) is not None:
            return _missing.posterior(self, Xm)
        xc, params, n = self._kernel_input(X)
        l, resp = K.chunked_log_prob(xc, params, cov_type=self.covariance_type, posterior=True)
        k = self.n_components
        return np.asarray(l).reshape(-1)[:n], np.asarray(resp).reshape(-1, resp.shape[-1])[:n, :k]

    def _estimate_weighted_log_prob(self, X) -> np.ndarray:
        """``log pi_k + log N(x; mu_k, Sigma_k)``, shape (n, k) (scikit-learn's private API)."""
        if (Xm := self._with_nan(X)) is not None:
            return _missing.weighted_log_prob(self, Xm)
        xc, params, n = self._kernel_input(X)
        out = K.chunked_log_prob(xc, params, cov_type=self.covariance_type)
        return np.asarray(out).reshape(-1, out.shape[-1])[:n, : self.n_components]

    def _map_blocks(self, X, fn, per_component: bool, dtype):
        """``fn`` applied to each row block of a Dask array (a lazy Dask array)."""
        check_is_fitted(self)
        X = self._validate_X(X, reset=False).rechunk({1: -1})
        if per_component:
            chunks = (X.chunks[0], (self.n_components,))
            return X.map_blocks(fn, chunks=chunks, dtype=dtype)
        return X.map_blocks(fn, drop_axis=1, dtype=dtype)

    def score_samples(self, X):
        """Log-density ``log p(x)`` of each sample.

        Parameters
        ----------
        X : array-like or dask array of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
            (A lazy Dask array, computed block by block, for Dask input.)
        """
        if _is_dask(X):
            return self._map_blocks(X, self.score_samples, False, self._compute_dtype_)
        return self._posterior(X)[0]

    def score(self, X, y=None, sample_weight=None):
        """Mean (optionally weighted) log-likelihood of ``X``.

        Parameters
        ----------
        X : array-like or dask array of shape (n_samples, n_features)
        y : ignored
        sample_weight : array-like of shape (n_samples,), optional

        Returns
        -------
        float
            (Computed on the Dask cluster for Dask input.)
        """
        s = self.score_samples(X)
        if _is_dask(s):
            import dask.array as da

            if sample_weight is None:
                return float(s.mean().compute())
            w = da.asarray(sample_weight).astype(s.dtype).rechunk((s.chunks[0],))
            if w.shape != s.shape:
                raise ValueError(f"sample_weight must have shape {s.shape}; got {w.shape}.")
            num, den = da.compute((w * s).sum(), w.sum())
            return float(num / den)
        if sample_weight is None:
            return float(np.mean(s))
        w = _check_sample_weight(sample_weight, s[:, None])
        return float(np.sum(w * s) / np.sum(w))

    def predict(self, X):
        """Most likely component of each sample.

        Parameters
        ----------
        X : array-like or dask array of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
            (A lazy Dask array for Dask input.)
        """
        if _is_dask(X):
            return self._map_blocks(X, self.predict, False, np.int64)
        return np.argmax(self._posterior(X)[1], axis=1)

    def predict_proba(self, X):
        """Posterior probability of each component for each sample.

        Parameters
        ----------
        X : array-like or dask array of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_components)
            Rows sum to one. (A lazy Dask array for Dask input.)
        """
        if _is_dask(X):
            return self._map_blocks(X, self.predict_proba, True, self._compute_dtype_)
        return self._posterior(X)[1]

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None, sample_weight=None):
        """One step of online (stepwise) EM on a chunk of a stream.

        The first call initializes from its chunk (``init_params``, ``n_init`` starts, the
        best kept; or from the fitted parameters if ``fit`` ran before); each later call
        blends the chunk's sufficient statistics into running ones with the step
        ``(t + learning_offset)^-learning_decay`` and takes an M-step (Cappé & Moulines
        2009). Every covariance type, sample weights, frozen parameters and, with
        ``missing="em"``, NaN entries. ``fit`` starts afresh.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            One chunk.
        y : ignored
        sample_weight : array-like of shape (n_samples,), optional

        Returns
        -------
        self : GaussianMixture
        """
        from gmmscape.estimator._online import partial_fit

        partial_fit(self, X, sample_weight, _FitData)
        return self

    def impute(self, X, n_draws=None, random_state=None):
        """Fill the NaN entries of ``X`` under the fitted mixture.

        With ``n_draws=None``, each missing entry becomes its conditional mean given the
        row's observed entries, ``sum_k r_k(x_O) E[x_M | x_O, k]`` (the responsibilities
        from the observed coordinates); with ``n_draws``, that many draws from the
        conditional distribution (a component by its responsibility, then the
        conditional Gaussian). Observed entries are returned unchanged. Works whatever
        ``missing`` is set to.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            NaN marks a missing entry; no row may be all NaN.
        n_draws : int, optional
        random_state : int, RandomState or None, optional
            Seed of the draws (default: the estimator's ``random_state``).

        Returns
        -------
        ndarray of shape (n_samples, n_features), or (n_draws, n_samples, n_features)
        """
        return _missing.impute(self, X, n_draws, random_state)

    def sample(self, n_samples=1):
        """Draw samples from the fitted mixture (as scikit-learn, seeded by random_state).

        Parameters
        ----------
        n_samples : int, default 1

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
        y : ndarray of shape (n_samples,)
            Component labels.
        """
        check_is_fitted(self)
        if n_samples < 1:
            raise ValueError(
                f"Invalid value for 'n_samples': {n_samples}. The sampling requires at "
                "least one sample."
            )
        _, d = self.means_.shape
        rng = check_random_state(self.random_state)
        counts = rng.multinomial(n_samples, np.asarray(self.weights_, np.float64))
        fam = families.get(self.covariance_type)
        parts = [
            m + fam.sample_noise(rng, fam.component(self.covariances_, i), int(s), d)
            for i, (m, s) in enumerate(zip(self.means_, counts, strict=True))
        ]
        y = np.concatenate([np.full(int(s), i, dtype=np.int64) for i, s in enumerate(counts)])
        return np.vstack(parts), y

    # ----------------------------------------------------------------------------------
    # model selection
    # ----------------------------------------------------------------------------------
    def _n_parameters(self) -> int:
        """Number of free parameters (frozen ones are not counted)."""
        k, d = self.means_.shape
        freeze = tuple(self.freeze)
        cov = families.get(self.covariance_type).n_cov_params(k, d)
        n = 0
        n += 0 if "covariances" in freeze else cov
        n += 0 if "means" in freeze else k * d
        n += 0 if "weights" in freeze else k - 1
        return int(n)

    def bic(self, X):
        """Bayesian information criterion on ``X`` (lower is better).

        Parameters
        ----------
        X : array-like or dask array of shape (n_samples, n_features)

        Returns
        -------
        float
        """
        n = X.shape[0] if _is_dask(X) else np.asarray(X).shape[0]
        return -2 * self.score(X) * n + self._n_parameters() * np.log(n)

    def aic(self, X):
        """Akaike information criterion on ``X`` (lower is better).

        Parameters
        ----------
        X : array-like or dask array of shape (n_samples, n_features)

        Returns
        -------
        float
        """
        n = X.shape[0] if _is_dask(X) else np.asarray(X).shape[0]
        return -2 * self.score(X) * n + 2 * self._n_parameters()
