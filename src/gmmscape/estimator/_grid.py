"""All numbers of components of one covariance model as one padded, vmapped batch.

:func:`gmmscape.select` fits a grid of (model, k). Fitted one by one, every (model,
component bucket) pair costs three programs (the start from the partition, the EM loop,
the posterior), and in a fresh process each program is traced and lowered by JAX before
the persistent cache can load it: on small data that costs far more than the EM itself.
Here the starts of every k of one model are padded to one number of components (the
padded ones have weight 0 and are never updated, ``K.pad_components``), so the grid of a
model is one batch run by one program, :func:`gmmscape.estimator._kernels.fit_from_labels`
(start, EM, posterior summary). The models stored alike (spherical, diagonal, tied or
full covariances: :func:`gmmscape.estimator._kernels.model_groups`) share that program,
the model a traced index that picks its M-step, so mclust's 14 models compile 4.

The fits are those of :class:`GaussianMixture` with the same settings: the same start,
the same EM loop and stopping rule per start, the same fitted attributes, warnings and
failures (:func:`finish` finishes each one with the estimator's own methods). Only the
rounding differs (the components are blocked differently). Used where every fit of the
grid starts from a deterministic partition (``init_params="hc"`` or ``"hc_eii"``) of
in-memory data small enough that padding costs less than compiling. On larger data each
(model, k) is a batch of one: the same single program (start, EM, posterior) instead
of three, and none of the per-iteration host work of threaded statistics. Everything
else goes through :meth:`GaussianMixture.fit` one fit at a time.

A batch is prepared (:func:`prepare`: validation, chunked data, partitions) and finished
(:func:`finish`: the estimator's attributes, warnings recorded) on the host, in the
caller's thread; :meth:`Batch.run`, the compiled part, is what :func:`gmmscape.select`
runs on several threads at once.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np

from gmmscape._lazy import LazyModule
from gmmscape.core.chunks import chunk_layout
from gmmscape.estimator._gaussian_mixture import GaussianMixture, trace_length

jax = LazyModule("jax")
K = LazyModule("gmmscape.estimator._kernels")

#: One pass of a grid batch over the data (padded rows x padded components x features x
#: starts) holds at most this many elements; above it each fit runs on its own (the
#: arithmetic of padding every k to the largest then outweighs a few programs' loading).
GRID_LIMIT = 2**21
#: Most rows of a chunk of a batch's data (where :func:`gmmscape.core.chunks.chunk_layout`
#: chunks it and no ``chunk_size`` is given): batches run side by side on the cores,
#: and with 512-row chunks the full grid at N = 1e5, d = 5 took a median 14.8 s (18.8,
#: 14.7, 14.9, 13.1) against 16.4 s (17.0, 16.7, 15.4, 16.0) with the layout's 1024
#: (second and third calls of two processes each).
GRID_ROWS = 512
#: Initializations whose starts are deterministic partitions of the rows.
PARTITION_INITS = ("hc", "hc_eii")


@dataclass
class Cell:
    """One fit of a grid.

    Attributes
    ----------
    estimator : GaussianMixture
        Fitted, unless ``reason`` says why not.
    reason : str
        Why the fit failed ("" where it did not), in :func:`gmmscape.select`'s words.
    log_density : ndarray of shape (n_samples,) or None
        ``log p(x_i)`` under the fit, float64.
    log_zmax : ndarray of shape (n_samples,) or None
        ``log max_k z_ik``, float64.
    seconds : float
        This fit's share of the batch's wall time.
    """

    estimator: GaussianMixture
    reason: str
    log_density: np.ndarray | None
    log_zmax: np.ndarray | None
    seconds: float


def batchable(X, ks, settings: dict) -> bool:
    """Whether every fit of ``ks`` with ``settings`` can run in one batch (:func:`prepare`).

    True for in-memory NumPy data with a partition start (:data:`PARTITION_INITS`), one
    initialization, nothing frozen, given or refined, no verbose output, no missing
    values to handle, at least one iteration, and (for more than one k) a batch pass
    within :data:`GRID_LIMIT` elements. A single k is always within it: its batch of
    one is the fit :meth:`GaussianMixture.fit` would run, in one program.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    ks : sequence of int
        Numbers of components, each at most ``n_samples``.
    settings : dict
        :class:`GaussianMixture` parameters other than ``n_components`` and
        ``covariance_type``.

    Returns
    -------
    bool
    """
    if not isinstance(X, np.ndarray) or X.ndim != 2 or not len(ks):
        return False
    s = GaussianMixture(**settings).get_params()
    plain = (
        s["init_params"] in PARTITION_INITS
        and s["n_init"] == 1
        and not s["refine"]
        and not tuple(s["freeze"])
        and s["weights_init"] is None
        and s["means_init"] is None
        and s["precisions_init"] is None
        and not s["verbose"]
        and isinstance(s["max_iter"], (int, np.integer))
        and s["max_iter"] >= 1
    )
    if not plain:
        return False
    if s["missing"] == "em" and np.issubdtype(X.dtype, np.floating) and np.isnan(X).any():
        return False
    n, d = X.shape
    if max(ks) > n:
        return False
    if len(ks) == 1:  # nothing padded beyond what GaussianMixture.fit pads
        return True
    k_pad = padded_components(ks, ks, n, d)
    rows, n_chunks = chunk_layout(n, k_pad, d, len(ks), s["chunk_size"])
    return rows * n_chunks * k_pad * d * len(ks) <= GRID_LIMIT


@dataclass
class Batch:
    """A grid batch prepared on the host: the program's arguments and what finishing
    its fits needs. :meth:`run` is the compiled part (thread-safe, emits no warnings);
    :func:`finish` turns its output into cells.

    Attributes
    ----------
    X : ndarray of shape (n_samples, n_features)
        The data as given.
    sample_weight : ndarray of shape (n_samples,) or None
    model : str
    ks : list of int
    settings : dict
    fd : object
        The prepared data of the batch (``GaussianMixture._prepare_memory``).
    args : tuple
        The positional arguments of :func:`gmmscape.estimator._kernels.fit_from_labels`.
    static : dict
        Its static arguments.
    seconds : float
        Host seconds spent preparing.
    validated : dict
        What validating ``X`` sets on an estimator (``n_features_in_``, ...), done once
        per grid.
    """

    X: np.ndarray
    sample_weight: np.ndarray | None
    model: str
    ks: list
    settings: dict
    fd: object
    args: tuple
    static: dict
    seconds: float
    validated: dict

    def run(self):
        """Run the batch's program; its output as NumPy arrays, and the seconds taken.

        Returns
        -------
        out : GridResult
            Of NumPy arrays.
        seconds : float
        """
        t0 = time.perf_counter()
        out = K.fit_from_labels(*self.args, **self.static)
        out = jax.tree_util.tree_map(np.asarray, jax.device_get(out))
        return out, time.perf_counter() - t0


def padded_components(ks, grid, n: int, d: int) -> int:
    """The number of components a batch of ``ks`` is compiled for, within a grid.

    A batch of several k: the largest (the batch's size is part of its program's shape,
    so a grid's program serves that grid only, and padding beyond its largest k would
    add arithmetic to every pass and save no program: on faithful, 9 components instead
    of the bucket 12 took 14% off an EM iteration). A batch of one k: its bucket
    (:func:`gmmscape.estimator._kernels.component_bucket`) where another k of the grid
    shares that bucket (one program serves both), else k itself.

    Parameters
    ----------
    ks : sequence of int
        The batch's numbers of components.
    grid : sequence of int
        Every number of components of the grid.
    n, d : int
        Rows and features of the data.

    Returns
    -------
    int
    """
    if len(ks) > 1:
        return int(max(ks))
    k_pad = K.component_bucket(ks[0], n, d)
    shared = [k for k in set(grid) if K.component_bucket(k, n, d) == k_pad]
    return k_pad if len(shared) > 1 else int(ks[0])


def prepare(X, sample_weight, model: str, ks, settings: dict, cache: dict | None = None,
            group: tuple | None = None, warm: bool = False,
            grid=None) -> Batch | None:  # fmt: skip
    """Prepare ``GaussianMixture(k, covariance_type=model, **settings)`` for every ``k``
    of ``ks`` as one batch (see the module doc): validation, the data chunked on the
    device and the hierarchical-clustering partitions.

    The batch's statistics run as one compiled loop on one thread (``n_threads=1``
    whatever ``settings`` say): :func:`gmmscape.select` runs batches side by side on
    threads instead.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Data that :func:`batchable` accepts.
    sample_weight : ndarray of shape (n_samples,) or None
    model : str
        Covariance type.
    ks : sequence of int
        Numbers of components.
    settings : dict
        As :func:`batchable`.
    cache : dict, optional
        Shared by the batches of one grid (same ``X``, weights and settings): the data
        laid out on the device and the partitions are made once per layout and k.
    group : tuple of str, optional
        Models stored like ``model`` (:func:`gmmscape.estimator._kernels.model_groups`)
        whose batches run the same program, the model picked by its index in the group.
    warm : bool, default False
        A warm-up batch instead: the same program (same shapes, same static arguments)
        run for one iteration from a round-robin partition, without the hierarchical
        clustering. Running it loads (or compiles) the program, so that
        :func:`gmmscape.select` can do that on its threads while the tree is built; its
        output is discarded.
    grid : sequence of int, optional
        Every number of components of the grid (default ``ks``), which sets the padding
        (:func:`padded_components`).

    Returns
    -------
    Batch or None
        None when the batch cannot be built (invalid settings or data); the caller then
        fits one by one, which reports the error.
    """
    from gmmscape.estimator._hc import hc_labels

    t0 = time.perf_counter()
    ks = [int(k) for k in ks]
    ref = GaussianMixture(max(ks), covariance_type=model, **{**settings, "n_threads": 1})
    cache = {} if cache is None else cache
    try:
        ref._validate_params()
        if "X" in cache:  # the grid's data, validated by its first batch
            Xv, validated = cache["X"]
        else:
            Xv = ref._validate_X(X, reset=True)
            validated = {a: getattr(ref, a) for a in _VALIDATED if hasattr(ref, a)}
            cache["X"] = (Xv, validated)
        n, d = Xv.shape
        dtype = ref._compute_dtype(np.dtype(Xv.dtype))
        k_pad = padded_components(ks, ks if grid is None else grid, n, d)
        rows, n_chunks = chunk_layout(n, k_pad, d, len(ks), ref.chunk_size)
        if ref.chunk_size is None and n_chunks > 1 and rows > GRID_ROWS:
            ref.chunk_size = GRID_ROWS  # batches side by side: shorter chunks
            rows, n_chunks = chunk_layout(n, k_pad, d, len(ks), ref.chunk_size)
        # batches whose chunks are alike share the data on the device, whatever their k
        layout = ("data", np.dtype(dtype).str, len(ks), ref.chunk_size, rows, n_chunks)
        if layout in cache:  # the same points: only the model's own parts differ
            fd0, Xd, wd, wsum = cache[layout]
            floor = K.collapse_floor(fd0.col_var, dtype, model)
            fd = dataclasses.replace(fd0, cov_type=model, k=max(ks), floor=floor)
            fd.k_pad = max(k_pad, fd.k)
        else:
            fd, Xd, wd = ref._prepare_memory(Xv, sample_weight, dtype, n, d, len(ks), k_pad)
            wsum = np.sum(wd, dtype=np.float64).astype(dtype)
            cache[layout] = (fd, Xd, wd, wsum)
    except ValueError:
        return None
    crit = "EII" if ref.init_params == "hc_eii" else "VVV"
    n_chunks, rows = fd.data.wc.shape
    lc = np.full((len(ks), n_chunks * rows), -1, np.int32)
    active = np.zeros((len(ks), k_pad), dtype)
    for j, k in enumerate(ks):
        if warm:
            lc[j, :n] = np.arange(n) % k
        else:
            key = ("hc", np.dtype(dtype).str, crit, k)
            if key not in cache:
                cache[key] = hc_labels(Xd, k, crit)
            lc[j, :n] = cache[key]
        active[j, :k] = 1.0
    masks = K.Masks(active, active, active)
    n_max = 1 if warm else ref.max_iter  # traced: the program is the same
    hyper_key = ("hyper", np.dtype(dtype).str, model, n_max)  # the floor is the model's
    if hyper_key not in cache:
        cache[hyper_key] = fd.hyper(ref.reg_covar, ref.step_size, ref.tol, n_max, ref.tol_type)
    hyper = cache[hyper_key]
    args = (
        fd.data.xc,
        fd.data.wc,
        lc.reshape(len(ks), n_chunks, rows),
        wsum,
        active,
        masks,
        np.asarray(ref.reg_covar, dtype),
        np.asarray(fd.floor, dtype),
        hyper,
    )
    which = None
    if group is not None and len(group) > 1:
        which = np.asarray(group.index(model), np.int32)
    static = dict(k=k_pad, cov_type=model if which is None else tuple(group),
                  algorithm=ref.algorithm, max_iter=trace_length(ref.max_iter))  # fmt: skip
    args = (*args, which)
    return Batch(X, sample_weight, model, ks, settings, fd, args, static,
                 time.perf_counter() - t0, validated)  # fmt: skip


#: What :meth:`GaussianMixture._validate_X` sets on a fitted estimator (scikit-learn's
#: ``validate_data`` with ``reset=True``).
_VALIDATED = ("n_features_in_", "feature_names_in_")


def finish(batch: Batch, out, seconds: float) -> list[Cell]:
    """The cells of a batch from the output of :meth:`Batch.run` (in the thread that
    records warnings: :func:`finish_recorded`).

    Parameters
    ----------
    batch : Batch
    out : GridResult
        Of NumPy arrays.
    seconds : float
        Wall seconds of the batch so far (preparing and running), shared by its fits.

    Returns
    -------
    list of Cell, one per ``k`` of the batch, in order
    """
    n, model, dtype = batch.fd.n, batch.model, batch.fd.dtype
    share = seconds / len(batch.ks)
    lb0 = np.full((1,), -np.inf, dtype)
    tiny = np.finfo(np.float64).tiny
    cells = []
    for j, k in enumerate(batch.ks):
        t1 = time.perf_counter()
        em = jax.tree_util.tree_map(lambda a, j=j: a[j : j + 1], out.em)
        em = em._replace(params=K.unpad_components(em.params, k, model))
        gm = GaussianMixture(k, covariance_type=model, **batch.settings)
        for a, v in batch.validated.items():  # the grid's data, validated once
            setattr(gm, a, v)
        reason = finish_recorded(
            gm, lambda gm=gm, em=em: gm._finish(gm._keep_best(em, lb0), batch.fd)
        )
        log_dens = log_zmax = None
        if not reason:
            log_dens = out.log_density[j].reshape(-1)[:n].astype(np.float64)
            log_zmax = np.log(np.maximum(out.zmax[j].reshape(-1)[:n].astype(np.float64), tiny))
        cells.append(Cell(gm, reason, log_dens, log_zmax, share + time.perf_counter() - t1))
    return cells


def finish_recorded(gm: GaussianMixture, fit) -> str:
    """Run ``fit()`` (a fit of ``gm``, or its last step) and say why it failed, or "".

    A covariance that collapsed (a :class:`CollapseWarning`) is a failure, as mclust's
    NA; so is a ``ValueError`` (non-finite parameters, bad data); a convergence warning
    is not (the fit is kept, flagged by ``converged_``).

    Parameters
    ----------
    gm : GaussianMixture
    fit : callable
        Called with no arguments.

    Returns
    -------
    str
    """
    import warnings

    from gmmscape.estimator._gaussian_mixture import CollapseWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fit()
        except ValueError as exc:
            return f"failed: {str(exc).split('. ')[0]}"
    for c in caught:
        if issubclass(c.category, CollapseWarning):
            return (
                f"singular covariance ({gm.n_collapsed_} collapsed update(s); "
                f"reg_covar={gm.reg_covar:g})"
            )
    return ""
