"""Pure JAX kernels of the :class:`~gmmscape.estimator.GaussianMixture` estimator.

The statistics and update rules are the core's, written once for every family
(the one engine, README "Layout"): :func:`gmmscape.core.stats.family_stats` (E-step and sufficient
statistics of one batch), :func:`gmmscape.core.stats.scan_family_stats` (summed over
fixed-size chunks) and :func:`gmmscape.core.updates.m_step`. This module holds what is
the estimator's own: the padding of components and restarts to compiled buckets, the
initialization kernels, the batched (vmapped) forms of the core functions and the EM
loop of a batch of starts (:func:`em_batch`).

Parameters travel as a :class:`gmmscape.core.mixture.Params` pytree whose covariance
shapes are the family's (:mod:`gmmscape.core.families`).
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gmmscape._program_store import register_types, stored_jit
from gmmscape.core import families
from gmmscape.core.families import collapse_floor, floor_rel  # noqa: F401 (K.* API)
from gmmscape.core.mixture import Masks, Params
from gmmscape.core.sources import sum_parts
from gmmscape.core.stats import (
    Stats,
    chunk_features,
    chunk_sum,
    family_log_prob,
    features_moments,
    normalize_log,
    scan_family_stats,
)
from gmmscape.core.updates import m_step
from gmmscape.dynamics import driver


def _moments(x, wr, cov_type):
    return families.get(cov_type).moments(x, wr)


#: A family's moments of weighted responsibilities, compiled (initialization).
moments_jit = jax.jit(_moments, static_argnames=("cov_type",))


def storage(cov_type) -> str:
    """The family whose storage and E-step serve ``cov_type``: the name itself, or the
    first of a group (a tuple of models stored alike, see :func:`model_groups`)."""
    return cov_type if isinstance(cov_type, str) else cov_type[0]


def model_groups(models) -> dict[str, tuple[str, ...]]:
    """Models grouped by storage: models stored alike (spherical, diagonal, tied or full
    covariances) share one compiled program, the model a traced index into the group
    that picks its M-step (``lax.switch``). Their E-steps, factors and shapes are the
    storage family's; only the scatter (and whether an empty component keeps its
    covariance) differs.

    Parameters
    ----------
    models : sequence of str
        Covariance types.

    Returns
    -------
    dict
        Each model -> its group, the models of ``models`` with the same storage (in the
        order given).
    """

    def key(m):
        f = families.get(m)
        return (f.matrix, f.shared, f.cov_shape(2, 3))

    return {m: tuple(o for o in models if key(o) == key(m)) for m in models}


def _scatter(cov_type, which, *args):
    """The M-step scatter of ``cov_type`` (a name, or a group and the index ``which``)."""
    if isinstance(cov_type, str):
        return families.get(cov_type).scatter(*args)
    return jax.lax.switch(which, [families.get(m).scatter for m in cov_type], *args)


def _m_step(st, params, masks, reg_covar, floor, step_size, cov_type, algorithm, which):
    """:func:`gmmscape.core.updates.m_step` of ``cov_type`` (a name, or a group and the
    index ``which`` of the model in it). For a group only the scatter (and whether the
    model ties its components' covariances) depends on ``which``: the weights, the means
    and the factorization of the storage family are compiled once, not once per model."""
    if isinstance(cov_type, str):
        return m_step(st, params, masks, reg_covar, floor, step_size, cov_type, algorithm)
    coupled = jnp.asarray([families.get(m).coupled for m in cov_type])[which]
    return m_step(st, params, masks, reg_covar, floor, step_size, storage(cov_type), algorithm,
                  scatter=partial(_scatter, cov_type, which), coupled=coupled)  # fmt: skip


@partial(jax.jit, static_argnames=("k", "cov_type"))
def scan_label_moments(xc: jax.Array, wc: jax.Array, lc: jax.Array, k: int, cov_type: str):
    """A family's moments of hard assignments, summed over fixed-size chunks in a loop.

    The responsibilities are one-hot rows built chunk by chunk, so memory is bounded by
    one chunk's intermediates, ``O(m k d)``, and the labels (``n`` ints).

    Parameters
    ----------
    xc : array of shape (n_chunks, m, d)
    wc : array of shape (n_chunks, m)
        Point weights; padding rows are zero.
    lc : int array of shape (n_chunks, m)
        Component of each point; -1 for none.
    k : int
        Number of components.
    cov_type : str

    Returns
    -------
    nk : array of shape (k,)
    s1 : array of shape (k, d)
    s2 : array
        The family's second moments.
    """

    def one(x, w, lab):
        return _moments(x, w[:, None] * jax.nn.one_hot(lab, k, dtype=x.dtype), cov_type)

    return chunk_sum(one, xc, wc, lc)


# --------------------------------------------------------------------------------------
# shape-stable compilation: components padded up to a bucket, masked out
# --------------------------------------------------------------------------------------
#: Above this many elements of one pass over the data (rows x components x features),
#: compiling once per exact ``n_components`` costs less than padding would.
PAD_LIMIT = 2**24
#: On tiny data (a pass over ``TINY_K`` components of at most ``TINY_PASS`` elements:
#: iris, wine) every ``n_components <= TINY_K`` is padded to ``TINY_K``; the arithmetic
#: is negligible there, and a grid search over k compiles once per covariance type.
TINY_K = 8
TINY_PASS = 2**17


def component_bucket(k: int, n_rows: int = 0, d: int = 1) -> int:
    """The number of components a fit of ``k`` components is compiled for.

    ``k`` rounded up to the ladder 1, 2, 3, 4, 6, 8, 12, 16, 24, ... (powers of two and
    1.5 times them), so that a loop over ``n_components`` (a BIC curve, a grid search)
    compiles a handful of programs instead of one per ``k``. The extra components have
    weight 0 and are never updated: their responsibilities are exactly 0, so every
    statistic and the log-likelihood are those of the ``k`` real components (equal up to
    the rounding of differently blocked matrix products). Padding costs at most 50%
    more arithmetic per pass, so it is applied only while one pass over the data
    (``n_rows * k * d`` elements) is below :data:`PAD_LIMIT`, where compiling dominates.
    On tiny data (see :data:`TINY_PASS`) every ``k <= 8`` is padded to 8.

    Parameters
    ----------
    k : int
        Components of the model.
    n_rows, d : int, optional
        Rows (padded) and features of the data the program will see.

    Returns
    -------
    int
        The padded number of components, ``>= k``.
    """
    k = int(k)
    if k <= TINY_K and 0 < n_rows * d * TINY_K <= TINY_PASS:
        return TINY_K  # tiny data: every k up to 8 runs one program
    if k <= 3 or n_rows * k * d >= PAD_LIMIT:
        return k
    p = 1 << (k - 1).bit_length()  # next power of two >= k
    return p * 3 // 4 if p * 3 // 4 >= k else p


def batch_bucket(b: int, n_rows: int = 0, k: int = 1, d: int = 1) -> int:
    """The number of starts a batch of ``b`` starts (``n_init``, refine's candidates)
    is compiled for: the next power of two while ``b`` passes over the data stay below
    :data:`PAD_LIMIT` elements, else ``b``. The extra starts repeat the first and are
    dropped.

    Parameters
    ----------
    b : int
    n_rows, k, d : int, optional
        Rows (padded), components (padded) and features of the data.

    Returns
    -------
    int
    """
    p = 1 << max(0, int(b) - 1).bit_length()
    return p if n_rows * k * d * p < PAD_LIMIT else int(b)


def stack_trees(items):
    """Stack pytrees of arrays along a new leading axis, in NumPy (compiles nothing).

    Parameters
    ----------
    items : sequence of pytrees of the same structure

    Returns
    -------
    pytree of NumPy arrays with a leading axis of ``len(items)``
    """
    return jax.tree_util.tree_map(lambda *a: np.stack([np.asarray(x) for x in a]), *items)


def take_tree(tree, i: int):
    """Entry ``i`` of the leading axis of every leaf, as NumPy arrays.

    Parameters
    ----------
    tree : pytree of arrays with a leading axis
    i : int

    Returns
    -------
    pytree of NumPy arrays
    """
    return jax.tree_util.tree_map(lambda a: np.asarray(a)[i], tree)


def pad_components(params: Params, masks: Masks | None, k_pad: int, cov_type: str):
    """Append components of weight 0 (frozen, identity covariance) up to ``k_pad``.

    Done in NumPy on the host, so that it compiles nothing.

    Parameters
    ----------
    params : Params
        With a leading batch axis: weights of shape (b, k), means (b, k, d), ...
    masks : Masks or None
        With a leading batch axis; the new components get mask 0 (never updated).
    k_pad : int
    cov_type : str

    Returns
    -------
    params : Params
    masks : Masks or None
        NumPy arrays, with ``k_pad`` components.
    """
    params = Params(*(np.asarray(a) for a in params))
    masks = None if masks is None else Masks(*(np.asarray(a) for a in masks))
    extra = k_pad - params.weights.shape[-1]
    if extra <= 0:
        return params, masks

    def cat(a, fill):
        shape = (*a.shape[:1], extra, *a.shape[2:])
        return np.concatenate([a, np.broadcast_to(np.asarray(fill, a.dtype), shape)], 1)

    cov, pc = params.covariances, params.precisions_cholesky
    fam = families.get(cov_type)
    if not fam.shared:
        eye = fam.identity(params.means.shape[-1])
        cov, pc = cat(cov, eye), cat(pc, eye)
    out = Params(cat(params.weights, 0.0), cat(params.means, 0.0), cov, pc)
    if masks is not None:
        masks = Masks(*(cat(m, 0.0) for m in masks))
    return out, masks


def unpad_components(tree, k: int, cov_type: str):
    """The first ``k`` components of padded parameters or statistics (batch axis first).

    Parameters
    ----------
    tree : Params or Stats
        With a leading batch axis.
    k : int
    cov_type : str

    Returns
    -------
    Params or Stats
        Of NumPy arrays.
    """
    tree = jax.tree_util.tree_map(np.asarray, tree)
    shared = families.get(cov_type).shared
    if isinstance(tree, Stats):
        s2 = tree.s2 if shared else tree.s2[:, :k]
        return tree._replace(r0=tree.r0[:, :k], r1=tree.r1[:, :k], s2=s2)
    cov, pc = tree.covariances, tree.precisions_cholesky
    if not shared:
        cov, pc = cov[:, :k], pc[:, :k]
    return Params(tree.weights[:, :k], tree.means[:, :k], cov, pc)


@partial(jax.jit, static_argnames=("cov_type",))
def params_from_moments(
    wsum, nk, s1, s2, active, reg_covar, floor, which=None, *, cov_type
) -> Params:  # fmt: skip
    """Parameters from the moments of initial responsibilities: the M-step of every fit
    (:func:`gmmscape.core.updates.m_step`) from those moments and
    :func:`blank_params`, so scikit-learn's ``_estimate_gaussian_parameters`` (weighted
    means, the scatter about them, ``reg_covar`` on the diagonal) regularized like every
    M-step (scikit-learn adds ``10 eps`` to ``N_k``; here an empty component keeps the
    identity instead).

    Parameters
    ----------
    wsum : array of shape ()
        Total weight.
    nk : array of shape (k,)
    s1 : array of shape (k, d)
    s2 : array
        The family's second moments (:class:`gmmscape.core.stats.Stats`).
    active : array of shape (k,)
        1.0 for a real component, 0.0 for padding (weight 0, identity covariance).
    reg_covar, floor : arrays of shape () and (d,) (or () for spherical)
    which : int array of shape (), optional
        With a group ``cov_type``: the index of the model in it.
    cov_type : str or tuple of str
        A covariance type, or a group of them stored alike (:func:`model_groups`).

    Returns
    -------
    Params
    """
    st = Stats(w=wsum, r0=nk, r1=s1, s2=s2)
    act = Masks(active, active, active)
    blank = blank_params(active.shape[-1], s1.shape[-1], s1.dtype, storage(cov_type))
    return _m_step(st, blank, act, reg_covar, floor, 0.0, cov_type, "em", which)[0]


def blank_params(k: int, d: int, dtype, cov_type: str) -> Params:
    """What an M-step from initial responsibilities starts from: weight 0, mean 0 and
    the identity covariance for every component; the components that the start's masks
    leave out (padding) keep these values, the others are replaced.

    Parameters
    ----------
    k, d : int
    dtype : dtype
    cov_type : str
        The storage family (:func:`storage`).

    Returns
    -------
    Params
    """
    fam = families.get(cov_type)
    eye = jnp.broadcast_to(jnp.asarray(fam.identity(d, dtype)), fam.cov_shape(k, d))
    return Params(jnp.zeros(k, dtype), jnp.zeros((k, d), dtype), eye, eye)


@stored_jit(static_argnames=("k", "cov_type"))
def init_from_labels(xc, wc, lc, wsum, active, reg_covar, floor, which=None, *, k: int, cov_type):
    """:func:`params_from_moments` of hard assignments (:func:`scan_label_moments`), as
    one compiled program.

    Parameters
    ----------
    xc : array of shape (n_chunks, m, d)
    wc : array of shape (n_chunks, m)
    lc : int array of shape (n_chunks, m)
        Component of each point; -1 for none.
    wsum, active, reg_covar, floor, which
        As :func:`params_from_moments`.
    k : int
    cov_type : str or tuple of str
        As :func:`params_from_moments`.

    Returns
    -------
    Params
    """
    nk, s1, s2 = scan_label_moments(xc, wc, lc, k, storage(cov_type))
    return params_from_moments(
        wsum, nk, s1, s2, active, reg_covar, floor, which, cov_type=cov_type
    )  # fmt: skip


class EMResult(NamedTuple):
    """The outcome of :func:`em_batch` for each start of a batch.

    Attributes
    ----------
    params : Params
        Final parameters (leading batch axis).
    lower_bound : array of shape (b,)
        The last mean log-likelihood (computed before the last M-step, as scikit-learn).
    trace : array of shape (b, max_iter)
        Mean log-likelihood at each iteration; NaN after the last one.
    n_iter : array of shape (b,)
    converged : array of shape (b,)
    n_collapsed : array of shape (b,)
        Number of covariance regularizations over the run.
    """

    params: Params
    lower_bound: jax.Array
    trace: jax.Array
    n_iter: jax.Array
    converged: jax.Array
    n_collapsed: jax.Array


def print_iteration(start, it, lb, change, interval: int = 1) -> None:
    """Print one EM iteration of one start, every ``interval`` iterations (verbose >= 2).

    Parameters
    ----------
    start, it : int
        Start index (0-based) and iteration (1-based).
    lb, change : float
        Mean log-likelihood and its change from the previous iteration.
    interval : int, default 1
    """
    if int(it) % interval == 0:
        print(
            f"  Initialization {int(start)}, iteration {int(it)}\t lower bound "
            f"{float(lb):.6f}\t ll change {float(change):.6f}",
            flush=True,
        )


def _em_one(
    xc, wc, params, masks, lb0, hyper, start, which, first=None, *, cov_type, algorithm,
    max_iter, report, zc=None,
):  # fmt: skip
    """EM of one start (:func:`em_batch`). With ``first`` (the :class:`Stats` of a start's
    responsibilities, ``params`` then :func:`blank_params`), the loop's first step is the
    start itself: the M-step from ``first`` in place of the E-step's statistics, counted
    as no iteration (its value is ``-inf``, its collapses are not counted). So a program
    holds one M-step (one copy of every scatter of a group) instead of two. ``zc``: the
    chunks' features (:func:`gmmscape.core.stats.chunk_features`), built once for all
    iterations and starts."""
    reg_covar, floor, step_size, tol, n_max, rtol = hyper
    pre = first is not None

    def step(state):
        p, nbad, fresh = state

        def estep():
            st = scan_family_stats(xc, wc, p, storage(cov_type), zc=zc)
            return st.w, st.ll, st.r0, st.r1, st.s2

        if pre:
            got = (first.w, jnp.zeros_like(first.w), first.r0, first.r1, first.s2)
            sums = jax.lax.cond(fresh, lambda: got, estep)
        else:
            sums = estep()
        st = Stats(w=sums[0], ll=sums[1], r0=sums[2], r1=sums[3], s2=sums[4])
        p_new, bad = _m_step(
            st, p, masks, reg_covar, floor, step_size, cov_type, algorithm, which
        )  # fmt: skip
        value = jnp.where(fresh, -jnp.inf, st.ll / st.w) if pre else st.ll / st.w
        return (p_new, nbad + jnp.where(fresh, 0, bad), jnp.asarray(False)), value, False

    def live(it, lb, change):  # printed from inside the compiled loop
        jax.debug.callback(
            partial(print_iteration, interval=report), start, it, lb, change, ordered=True
        )

    dtype = params.means.dtype
    state = (params, jnp.asarray(0), jnp.asarray(pre))
    init = driver.start(state, lb0, trace_len=max_iter + pre, dtype=dtype)
    if pre:  # the start's step takes the trace's spare last slot and leaves it = 0
        init = init._replace(it=init.it - 1)
    out = driver.run(
        step,
        init,
        driver.Rule(tol, n_max, rtol),
        criterion="change",
        report=live if report else None,
    )
    p, nbad, _ = out.state
    return EMResult(p, out.value, out.trace[:max_iter], out.it, out.done, nbad)


@stored_jit(static_argnames=("cov_type", "algorithm", "max_iter", "report"))
def em_batch(
    xc, wc, params, masks, lb0, hyper, which=None, *, cov_type, algorithm, max_iter, report=0
) -> EMResult:
    """EM to convergence for a batch of starts, as one vmapped, compiled ``while_loop``.

    Each start stops when ``|lb_t - lb_{t-1}| < tol + rtol |lb_t|`` (``rtol = 0``:
    scikit-learn's ``fit``) or after ``n_max`` iterations; a finished start keeps its
    values while the others run.

    Parameters
    ----------
    xc : array of shape (n_chunks, m, d)
    wc : array of shape (n_chunks, m)
    params : Params
        With a leading batch axis of size b.
    masks : Masks
        With a leading batch axis of size b.
    lb0 : array of shape (b,)
        The lower bound before the first iteration (``-inf`` for a fresh start).
    hyper : tuple of arrays of shape ()
        ``(reg_covar, floor, step_size, tol, n_max, rtol)``.
    which : int array of shape (), optional
        With a group ``cov_type``: the index of the model in it.
    cov_type : str or tuple of str
        A covariance type, or a group of them stored alike (:func:`model_groups`).
    algorithm : {"em", "gradient_em"}
    max_iter : int
        Length of the trace buffer (``n_max <= max_iter``).
    report : int, default 0
        If positive, print every ``report``-th iteration of every start while it runs
        (:func:`print_iteration`, a host callback).

    Returns
    -------
    EMResult
    """
    zc = chunk_features(xc, storage(cov_type))  # unbatched: built once for every start
    fn = partial(_em_one, cov_type=cov_type, algorithm=algorithm, max_iter=max_iter,
                 report=report, zc=zc)  # fmt: skip
    starts = jnp.arange(lb0.shape[0])
    return jax.vmap(fn, in_axes=(None, None, 0, 0, 0, None, 0, None))(
        xc, wc, params, masks, lb0, hyper, starts, which
    )


@partial(jax.jit, static_argnames=("cov_type", "algorithm"))
def batched_m_step(st, params, masks, hyper, *, cov_type, algorithm):
    """:func:`gmmscape.core.updates.m_step` vmapped over a batch (the M-step of :func:`host_step`).

    Parameters
    ----------
    st : Stats with a leading batch axis
    params : Params with a leading batch axis
    masks : Masks with a leading batch axis
    hyper : tuple ``(reg_covar, floor, step_size, tol, n_max, rtol)``
    cov_type, algorithm : str

    Returns
    -------
    params : Params
    n_collapsed : array of shape (b,)
    """
    reg_covar, floor, step_size = hyper[:3]
    fn = partial(m_step, family=cov_type, algorithm=algorithm)
    return jax.vmap(lambda s, p, m: fn(s, p, m, reg_covar, floor, step_size))(st, params, masks)


@partial(jax.jit, static_argnames=("cov_type", "algorithm"))
def host_step(parts, params, masks, active, hyper, *, cov_type, algorithm):
    """One iteration of the host-driven EM loop, as one compiled call.

    Sums the partial statistics (one per thread or the Dask total), takes the M-step of
    every start and keeps the parameters of the starts that are done.

    Parameters
    ----------
    parts : tuple of Stats, each with a leading batch axis b
    params : Params with a leading batch axis
    masks : Masks with a leading batch axis
    active : bool array of shape (b,)
        Starts still iterating.
    hyper : tuple ``(reg_covar, floor, step_size, tol, n_max, rtol)``
    cov_type, algorithm : str

    Returns
    -------
    params : Params
    lb : array of shape (b,)
        Mean log-likelihood at the parameters passed in.
    n_collapsed : array of shape (b,)
    """
    st = sum_parts(parts)
    new, bad = batched_m_step(st, params, masks, hyper, cov_type=cov_type, algorithm=algorithm)

    def keep(a, o):
        return jnp.where(active.reshape((-1,) + (1,) * (a.ndim - 1)), a, o)

    return jax.tree_util.tree_map(keep, new, params), st.ll / st.w, bad


@stored_jit(static_argnames=("cov_type", "posterior"))
def chunked_log_prob(xc, params, *, cov_type, posterior=False):
    """:func:`gmmscape.core.stats.family_log_prob` of every point, chunk by chunk with ``lax.map``.

    Parameters
    ----------
    xc : array of shape (n_chunks, m, d)
    params : Params
    cov_type : str
    posterior : bool, default False
        Return the log-density and the responsibilities instead
        (:func:`gmmscape.core.stats.normalize_log`).

    Returns
    -------
    array of shape (n_chunks, m, k)
        Or, with ``posterior``, ``(log_density (n_chunks, m), resp (n_chunks, m, k))``.
    """

    def one(x):
        lw = family_log_prob(x, params, cov_type)
        return normalize_log(lw) if posterior else lw

    return jax.lax.map(one, xc)


class GridResult(NamedTuple):
    """The outcome of :func:`fit_from_labels` for each start of a batch.

    Attributes
    ----------
    em : EMResult
        EM from each start (leading batch axis b).
    log_density : array of shape (b, n_chunks, m)
        ``log p(x)`` of every point under each start's final parameters.
    zmax : array of shape (b, n_chunks, m)
        ``max_k z_ik``, the largest responsibility of every point (the ICL's term).
    """

    em: EMResult
    log_density: jax.Array
    zmax: jax.Array


@stored_jit(static_argnames=("k", "cov_type", "algorithm", "max_iter"))
def fit_from_labels(
    xc, wc, lc, wsum, active, masks, reg_covar, floor, hyper, which=None, *, k, cov_type,
    algorithm, max_iter,
) -> GridResult:  # fmt: skip
    """Start, EM and posterior summary of a batch of hard partitions, as one program.

    Each start ``j`` is :func:`init_from_labels` of its labels ``lc[j]`` with its own real
    components ``active[j]`` (the others padding: weight 0, never updated), then
    :func:`em_batch` from all of them at once, then :func:`chunked_log_prob` at each
    start's final parameters. Starts of different numbers of components padded to the
    same ``k`` (a grid over ``n_components``, :func:`gmmscape.select`) are one batch, so
    the grid of a covariance model costs one program instead of three per component
    bucket.

    Parameters
    ----------
    xc : array of shape (n_chunks, m, d)
    wc : array of shape (n_chunks, m)
    lc : int array of shape (b, n_chunks, m)
        Component of each point in each start; -1 for none.
    wsum : array of shape ()
        Total weight.
    active : array of shape (b, k)
        1.0 for each start's real components, 0.0 for its padding.
    masks : Masks
        With a leading batch axis b (0 for padding and frozen parameters).
    reg_covar, floor : arrays of shape () and (d,) (or () for spherical)
        As :func:`params_from_moments`.
    hyper : tuple of arrays of shape ()
        As :func:`em_batch`.
    which : int array of shape (), optional
        With a group ``cov_type``: the index of the model in it, so that the models of a
        group (:func:`model_groups`) run the same program.
    k : int
        Components (padded) of every start.
    cov_type : str or tuple of str
        A covariance type, or a group of them stored alike.
    algorithm : {"em", "gradient_em"}
    max_iter : int
        Length of the trace buffer.

    Returns
    -------
    GridResult
    """

    def moments(lab):
        nk, s1, s2 = scan_label_moments(xc, wc, lab, k, storage(cov_type))
        return Stats(w=wsum, r0=nk, r1=s1, s2=s2)

    first = jax.vmap(moments)(lc)
    b, d = lc.shape[0], xc.shape[-1]
    blank = blank_params(k, d, xc.dtype, storage(cov_type))
    params = jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a, (b, *a.shape)), blank)
    lb0 = jnp.full((b,), -jnp.inf, xc.dtype)
    zc = chunk_features(xc, storage(cov_type))  # unbatched: built once for every start
    fn = partial(_em_one, cov_type=cov_type, algorithm=algorithm, max_iter=max_iter, report=0,
                 zc=zc)  # fmt: skip
    res = jax.vmap(fn, in_axes=(None, None, 0, 0, 0, None, 0, None, 0))(
        xc, wc, params, masks, lb0, hyper, jnp.arange(b), which, first
    )

    log_dens, zmax = jax.vmap(lambda p: posterior_summary(xc, p, storage(cov_type), zc))(res.params)
    return GridResult(res, log_dens, zmax)


def posterior_summary(xc, params: Params, family: str, zc=None):
    """Log-density and largest responsibility of every point, chunk by chunk, with the
    arithmetic of the family's E-step (its fused pass where it has one: for the full
    family in float64 the expanded quadratic form, half the time of ``log_gauss``'s
    triangular solves at d = 5, k = 8); the moments the pass also forms are unused, so
    XLA drops them, and no (n, k) responsibilities are written.

    Parameters
    ----------
    xc : array of shape (n_chunks, m, d)
    params : Params
    family : str
    zc : array of shape (n_chunks, m, f), optional
        The chunks' features (:func:`gmmscape.core.stats.chunk_features`), read in
        place of ``xc``.

    Returns
    -------
    log_density : array of shape (n_chunks, m)
    zmax : array of shape (n_chunks, m)
        ``max_k z_ik = exp(max_k (log pi_k + log p_k(x)) - log p(x))``.
    """
    fam, log_w = families.get(family), jnp.log(params.weights)

    def one(x):
        top = []

        def normalize(lw):  # the E-step's own normalization, keeping the row maximum
            top.append(jnp.max(lw, axis=1))
            return normalize_log(lw)

        ones = jnp.ones(x.shape[:1], x.dtype)
        if zc is not None:
            l = features_moments(x, ones, params, family, normalize)[0]
        else:
            l = fam.estep_moments(x, ones, params.means, params.precisions_cholesky, log_w,
                                  normalize)[0]  # fmt: skip
        # a row whose every entry is -inf has l = -inf and, as normalize_log's, z = 0
        z = jnp.exp(jnp.minimum(top[0] - jnp.where(jnp.isfinite(l), l, 0.0), 0.0))
        return l, jnp.where(jnp.isfinite(l), z, 0.0)

    return jax.lax.map(one, xc if zc is None else zc)


# the trees the stored programs take and return (gmmscape._program_store)
register_types(Params, Masks, Stats, EMResult, GridResult)
