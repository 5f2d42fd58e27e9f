"""Long compiled runs of EM and gradient EM, vmapped over restarts, recorded on log-spaced steps.

Seed A (docs/reference.md section 2; Xu, Fazel and Du, NeurIPS 2024) studies runs of 10^4 to
10^6 steps whose interesting behaviour (a power-law tail, non-monotone distances, traps
lasting ``exp(R^2/8)`` steps) only shows on a logarithmic time axis. This module runs
such trajectories inside compiled loops:

- :func:`run_population` advances population EM or gradient EM on a
  :class:`~gmmscape.dynamics.fixed.FixedPopulation` (frame coordinates) for a batch of
  restarts at once (``jax.vmap``), inside ``lax.scan`` over the record points and the
  driver's loop (:func:`gmmscape.dynamics.driver.run`, criterion ``"steps"``) between
  them, and records the loss, the distances to the truth's mean
  and the gradient norm at each record point. Every step it also counts increases of the
  parametric distance (non-monotonicity), and it stops a restart whose means become
  non-finite or leave a ball of radius ``blowup`` (divergence), keeping the step index.
- :func:`run_stream` does the same with statistics summed over a stream of points drawn
  from the truth (the single statistics path ``gmmscape.core.sources._stream_stats``): the
  same seed every step is a fixed dataset of ``n`` points that is never held in memory, a
  new seed every step is a fresh batch.
- :func:`escape_steps` runs gradient EM in the driver's loop (criterion ``"below"`` on
  the distance) until one chosen component comes within a radius of the truth's mean,
  with a step cap (traps).

Long runs are cut into compiled calls of a few record points (or ``2^16`` steps for
escapes) so that a progress callback can report between calls; each call compiles once
per shape, so the cut costs nothing in accuracy and little in time.

The distances are measured from the truth's mean, which is the frame's origin for
:func:`~gmmscape.dynamics.fixed.fixed_population` and is given explicitly for streams.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gmmscape._validation import check_positive, check_positive_int
from gmmscape.core import updates
from gmmscape.core.mixture import Mixture
from gmmscape.core.sources import _stream_stats, chunked_stats, stream_points
from gmmscape.dynamics import driver
from gmmscape.dynamics.fixed import FixedPopulation

#: Update rules that the runners know.
METHODS = ("gradient_em", "em")
#: Record points per compiled call (a Python progress callback runs between calls).
RECORD_GROUP = 8
#: Steps per compiled call of :func:`escape_steps`.
ESCAPE_CHUNK = 2**16


def log_steps(steps: int, points: int = 100) -> np.ndarray:
    """Roughly log-spaced record steps ``0 = t_0 < t_1 < ... < t_m = steps``.

    Parameters
    ----------
    steps : int
        The last step (>= 1).
    points : int, default 100
        Target number of points; every step up to ``points // 4`` is kept, and the
        rest are spaced evenly in ``log t``, so ``m + 1 <= points + points // 4 + 2``.

    Returns
    -------
    numpy.ndarray of int64, shape (m + 1,)
        Strictly increasing, starting at 0 and ending at ``steps``.
    """
    steps = check_positive_int(steps, "steps")
    points = check_positive_int(points, "points", minimum=2)
    head = np.arange(0, min(steps, points // 4) + 1)
    tail = np.round(np.geomspace(1, steps, points)).astype(np.int64)
    return np.unique(np.concatenate([head, tail, [steps]])).astype(np.int64)


@dataclass(frozen=True)
class Trajectory:
    """What a batch of runs recorded (numpy arrays; ``B`` restarts, ``T`` record points).

    Attributes
    ----------
    steps : ndarray of int, shape (T,)
        The record steps (0 is the start).
    kl : ndarray of shape (B, T)
        ``KL(truth || model)`` at each record step (NaN where no population was given).
    max_dist : ndarray of shape (B, T)
        ``max_i ||mu_i - m*||``, ``m*`` the truth's mean.
    sq_dist : ndarray of shape (B, T)
        ``sum_i pi_i ||mu_i - m*||^2``.
    grad_norm : ndarray of shape (B, T)
        Frobenius norm of the population gradient of the NLL (NaN without a population).
    final_means : ndarray of shape (B, k, r)
        Means at the last step reached (in the coordinates of the run).
    n_up_max, n_up_sq : ndarray of int, shape (B,)
        Number of steps at which ``max_dist`` (resp. ``sq_dist``) increased.
    largest_up_max, largest_up_sq : ndarray of shape (B,)
        Largest single-step increase of ``max_dist`` (resp. ``sq_dist``); 0 if none.
    diverged : ndarray of bool, shape (B,)
        Whether the run left the ball of radius ``blowup`` or became non-finite.
    diverged_step : ndarray of int, shape (B,)
        The first step whose result diverged (-1 if none). Recorded values after it
        repeat the last finite state.
    blowup : float
        The divergence radius used.
    seconds : float
        Wall time of the run, compilation included.
    """

    steps: np.ndarray
    kl: np.ndarray
    max_dist: np.ndarray
    sq_dist: np.ndarray
    grad_norm: np.ndarray
    final_means: np.ndarray
    n_up_max: np.ndarray
    n_up_sq: np.ndarray
    largest_up_max: np.ndarray
    largest_up_sq: np.ndarray
    diverged: np.ndarray
    diverged_step: np.ndarray
    blowup: float
    seconds: float


class _State(NamedTuple):
    """Carry of the compiled loop for one restart."""

    means: jax.Array  # (k, r)
    t: jax.Array  # () int
    diverged: jax.Array  # () bool
    div_step: jax.Array  # () int
    prev_max: jax.Array
    prev_sq: jax.Array
    n_up_max: jax.Array
    n_up_sq: jax.Array
    big_up_max: jax.Array
    big_up_sq: jax.Array
    key: jax.Array  # raw uint32 key data (streams), (2,)


def _distances(means, weights, center):
    diff = means - center
    sq = jnp.sum(diff * diff, axis=-1)
    return jnp.sqrt(jnp.max(sq)), weights @ sq


def _init_state(means, weights, center, key_data) -> _State:
    dmax, dsq = _distances(means, weights, center)
    zero_i = jnp.zeros((), jnp.int64)
    zero = jnp.zeros((), means.dtype)
    return _State(
        means, zero_i, jnp.zeros((), bool), zero_i - 1, dmax, dsq, zero_i, zero_i, zero, zero,
        key_data,
    )  # fmt: skip


def _advance_one(state: _State, target, step_fn, weights, center, blowup) -> _State:
    """Advance one restart to step ``target`` (or until it diverges)."""

    def step(s):
        new = step_fn(s.means, s.t, s.key)
        dmax, dsq = _distances(new, weights, center)
        bad = ~jnp.all(jnp.isfinite(new)) | ~(dmax <= blowup)
        up_max = dmax - s.prev_max
        up_sq = dsq - s.prev_sq
        kept = _State(
            means=jnp.where(bad, s.means, new),
            t=s.t + 1,
            diverged=bad,
            div_step=jnp.where(bad, s.t + 1, s.div_step),
            prev_max=jnp.where(bad, s.prev_max, dmax),
            prev_sq=jnp.where(bad, s.prev_sq, dsq),
            n_up_max=s.n_up_max + ((up_max > 0) & ~bad),
            n_up_sq=s.n_up_sq + ((up_sq > 0) & ~bad),
            big_up_max=jnp.where(bad, s.big_up_max, jnp.maximum(s.big_up_max, up_max)),
            big_up_sq=jnp.where(bad, s.big_up_sq, jnp.maximum(s.big_up_sq, up_sq)),
            key=s.key,
        )
        return kept, dmax, bad

    # a run that diverged in an earlier segment takes no step (the loop is entered bad)
    loop = driver.start(state, bad=state.diverged)
    return driver.run(step, loop, driver.Rule(0.0, target - state.t), criterion="steps").state


def _population_step(fp: FixedPopulation, method: str, eta):
    if method == "em":
        return lambda means, t, key: fp.em_means(means)
    return lambda means, t, key: fp.gradient_em_means(means, eta)


def _record_population(fp: FixedPopulation, means):
    stats = fp.stats(means)
    model = fp.model(means)
    kl = updates.kl(stats, model, fp.frame, fp.truth.sigma)
    g = updates.grad(stats, model)
    return kl, jnp.sqrt(jnp.sum(g * g))


@partial(jax.jit, static_argnames=("method",))
def _advance_population(fp, states, targets, eta, blowup, *, method):
    """Scan a batch of restarts over ``targets`` (G,), recording at each target."""
    step = _population_step(fp, method, eta)
    center = jnp.zeros((fp.r,), fp.z.dtype)

    def one(state):
        def seg(s, target):
            s = _advance_one(s, target, step, fp.model_weights, center, blowup)
            kl, gn = _record_population(fp, s.means)
            dmax, dsq = _distances(s.means, fp.model_weights, center)
            return s, (kl, dmax, dsq, gn)

        return jax.lax.scan(seg, state, targets)

    return jax.vmap(one)(states)


def _check_common(means, steps, eta, method, blowup, record_points):
    means = np.asarray(means, dtype=np.float64)
    if means.ndim == 2:
        means = means[None]
    if means.ndim != 3:
        raise ValueError(f"means must have shape (k, r) or (B, k, r); got {means.shape}.")
    if not np.isfinite(means).all():
        raise ValueError("means holds non-finite values (NaN or inf).")
    steps = check_positive_int(steps, "steps")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}.")
    eta = 1.0 if (eta is None and method == "em") else check_positive(eta, "eta")
    if blowup is None:
        blowup = 100.0 + 10.0 * float(np.sqrt(np.max(np.sum(means**2, axis=-1))))
    blowup = check_positive(blowup, "blowup")
    record_points = check_positive_int(record_points, "record_points", minimum=2)
    return means, steps, eta, blowup, record_points


def _drive(advance, states, record, progress):
    """Call ``advance(states, targets)`` on groups of record steps; collect the records."""
    outs = []
    total = int(record[-1])
    padded = np.concatenate(
        [record, np.full((-len(record)) % RECORD_GROUP, record[-1], dtype=np.int64)]
    )
    for g in range(0, len(padded), RECORD_GROUP):
        targets = jnp.asarray(padded[g : g + RECORD_GROUP])
        states, rec = advance(states, targets)
        outs.append([np.asarray(x) for x in rec])
        if progress is not None:
            progress(int(min(padded[g + RECORD_GROUP - 1], total)), total)
    recs = [np.concatenate([o[i] for o in outs], axis=1)[:, : len(record)] for i in range(4)]
    return states, recs


def _trajectory(record, recs, states, blowup, t0) -> Trajectory:
    kl, dmax, dsq, gn = recs
    return Trajectory(
        steps=np.asarray(record),
        kl=kl,
        max_dist=dmax,
        sq_dist=dsq,
        grad_norm=gn,
        final_means=np.asarray(states.means),
        n_up_max=np.asarray(states.n_up_max),
        n_up_sq=np.asarray(states.n_up_sq),
        largest_up_max=np.asarray(states.big_up_max),
        largest_up_sq=np.asarray(states.big_up_sq),
        diverged=np.asarray(states.diverged),
        diverged_step=np.asarray(states.div_step),
        blowup=float(blowup),
        seconds=time.perf_counter() - t0,
    )


def run_population(
    fp: FixedPopulation,
    means_r,
    *,
    steps: int,
    eta: float | None = None,
    method: str = "gradient_em",
    record=None,
    record_points: int = 100,
    blowup: float | None = None,
    progress=None,
) -> Trajectory:
    """Population EM or gradient EM from a batch of starts, in one compiled, vmapped loop.

    Parameters
    ----------
    fp : FixedPopulation
        Nodes and frame (:func:`~gmmscape.dynamics.fixed.fixed_population`); its origin
        must be the truth's mean (it is, for a frame built by ``fixed_population``).
    means_r : array_like of shape (B, k, r) or (k, r)
        Starting means in ``fp``'s frame coordinates, one row block per restart.
    steps : int
        Number of steps (>= 1).
    eta : float, optional
        Step size of gradient EM (> 0); ignored (and optional) for ``method="em"``.
    method : {"gradient_em", "em"}
    record : array_like of int, optional
        Steps to record at (increasing, starting at 0); default ``log_steps(steps,
        record_points)``.
    record_points : int, default 100
    blowup : float, optional
        Divergence radius: a run whose ``max_i ||mu_i||`` exceeds it, or whose means turn
        non-finite, stops there. Default ``100 + 10 max_i ||mu_i(0)||``.
    progress : callable, optional
        ``progress(done_steps, total_steps)``, called between compiled calls.

    Returns
    -------
    Trajectory
    """
    if not isinstance(fp, FixedPopulation):
        raise ValueError(f"fp must be a FixedPopulation; got {type(fp).__name__}.")
    means, steps, eta, blowup, record_points = _check_common(
        means_r, steps, eta, method, blowup, record_points
    )
    if means.shape[1:] != (fp.model_weights.shape[0], fp.r):
        raise ValueError(
            f"means_r must have shape (B, {fp.model_weights.shape[0]}, {fp.r}) for this fp; "
            f"got {means.shape}."
        )
    record = _check_record(record, steps, record_points)
    t0 = time.perf_counter()
    b = means.shape[0]
    states = jax.vmap(_init_state, in_axes=(0, None, None, None))(
        jnp.asarray(means),
        fp.model_weights,
        jnp.zeros((fp.r,)),
        jnp.zeros((2,), jnp.uint32),
    )
    assert states.means.shape[0] == b

    def advance(s, targets):
        return _advance_population(fp, s, targets, eta, blowup, method=method)

    states, recs = _drive(advance, states, record, progress)
    return _trajectory(record, recs, states, blowup, t0)


def _check_record(record, steps, record_points):
    if record is None:
        return log_steps(steps, record_points)
    rec = np.asarray(record, dtype=np.int64)
    if rec.ndim != 1 or rec[0] != 0 or np.any(np.diff(rec) <= 0) or rec[-1] > steps:
        raise ValueError(
            "record must be strictly increasing integers starting at 0 and at most steps."
        )
    return rec


# Fixed datasets up to this size (all restarts) are drawn once and held by default.
_IN_MEMORY_BYTES = 2**30

# The statistics an EM or gradient-EM step of the means reads (the others are dropped).
_STEP_FIELDS = ("w", "r0", "r1")


@partial(jax.jit, static_argnames=("method", "chunk", "fresh"))
def _advance_stream(
    truth, fp, states, targets, eta, blowup, n, n_chunks, weights, sigma, data, *, method,
    chunk, fresh,
):  # fmt: skip
    """As :func:`_advance_population` on streamed points; ``data`` = (x, w) held chunks or None."""
    center = truth.weights @ truth.means

    def one(state, held):
        def step(means, t, key_data):
            model = Mixture._raw(means, weights, sigma)
            if held is not None:
                stats = chunked_stats(*held, model, fields=_STEP_FIELDS)
            else:
                key = jax.random.wrap_key_data(key_data)
                key = jax.random.fold_in(key, t) if fresh else key
                stats = _stream_stats(
                    key, n, n_chunks, truth, model, chunk=chunk, hessian=False,
                    fields=_STEP_FIELDS,
                )  # fmt: skip
            if method == "em":
                return updates.em_means(stats, model)
            return updates.gradient_em_means(stats, model, eta)

        def seg(s, target):
            s = _advance_one(s, target, step, weights, center, blowup)
            dmax, dsq = _distances(s.means, weights, center)
            if fp is None:
                kl = gn = jnp.full((), jnp.nan)
            else:
                kl, gn = _record_population(fp, fp.to_frame(s.means))
            return s, (kl, dmax, dsq, gn)

        return jax.lax.scan(seg, state, targets)

    return jax.vmap(one)(states, data)


def run_stream(
    truth: Mixture,
    means,
    *,
    n: int,
    seeds,
    steps: int,
    eta: float | None = None,
    method: str = "gradient_em",
    fresh: bool = False,
    weights=None,
    sigma: float = 1.0,
    fp: FixedPopulation | None = None,
    chunk_size: int = 2**14,
    record=None,
    record_points: int = 100,
    blowup: float | None = None,
    progress=None,
    in_memory: bool | None = None,
) -> Trajectory:
    """Sample-based EM or gradient EM on streamed points, vmapped over restarts.

    Each step sums the statistics of ``n`` points drawn from ``truth`` chunk by chunk
    (:class:`~gmmscape.core.sources.StreamSource`'s compiled loop), so no dataset need be
    held in memory. With ``fresh=False`` every step uses the same points (a fixed dataset
    of ``n`` points: the stream of seed ``seeds[b]``); with ``fresh=True`` step ``t`` draws
    from ``fold_in(key(seeds[b]), t)``, a fresh batch of ``n`` points each step.

    A fixed dataset is either redrawn every step (memory of one chunk) or drawn once and
    held (``in_memory``; the same points, several times faster per step). Only the
    statistics the step reads are summed.

    Parameters
    ----------
    truth : Mixture
        The distribution of the points (ambient dimension d).
    means : array_like of shape (B, k, d) or (k, d)
        Starting means (ambient coordinates).
    n : int
        Points per step.
    seeds : int or sequence of int, length B
        Data seed of each restart (one int is used for all).
    steps : int
    eta : float, optional
        Step size of gradient EM; ignored for ``method="em"``.
    method : {"gradient_em", "em"}
    fresh : bool, default False
    weights : array_like of shape (k,), optional
        Fixed model weights (uniform by default).
    sigma : float, default 1.0
    fp : FixedPopulation, optional
        If given, and its frame covers the whole space (``fp.r == d``), the exact
        population KL and gradient norm are recorded too; otherwise they are NaN.
    chunk_size : int, default 16384
        Points per compiled chunk (the sample is reproducible from ``(seed, chunk_size)``).
    record, record_points, blowup, progress
        As in :func:`run_population`.
    in_memory : bool, optional
        Hold the fixed dataset (``fresh=False`` only). By default it is held when all
        restarts' points take at most 1 GiB.

    Returns
    -------
    Trajectory
        Distances are measured from the truth's mean; ``final_means`` are ambient.
    """
    if not isinstance(truth, Mixture):
        raise ValueError(f"truth must be a gmmscape.Mixture; got {type(truth).__name__}.")
    means, steps, eta, blowup, record_points = _check_common(
        means, steps, eta, method, blowup, record_points
    )
    seeds = np.atleast_1d(np.asarray(seeds, dtype=np.int64))
    if seeds.ndim != 1:
        raise ValueError(f"seeds must be an int or a 1-D sequence; got shape {seeds.shape}.")
    if means.shape[0] == 1 and len(seeds) > 1:
        means = np.repeat(means, len(seeds), axis=0)
    b, k, d = means.shape
    if len(seeds) not in (1, b):
        raise ValueError(f"seeds must hold 1 or {b} (one per restart) values; got {len(seeds)}.")
    seeds = np.broadcast_to(seeds, (b,))
    if d != truth.d:
        raise ValueError(f"means must have {truth.d} columns (the truth's d); got {d}.")
    n = check_positive_int(n, "n")
    chunk_size = check_positive_int(chunk_size, "chunk_size")
    w = np.full(k, 1.0 / k) if weights is None else np.asarray(weights, dtype=np.float64)
    if fp is not None and fp.r != d:
        fp = None
    record = _check_record(record, steps, record_points)
    t0 = time.perf_counter()
    chunk = min(chunk_size, n)
    n_chunks = -(-n // chunk)
    keys = jnp.stack([jax.random.key_data(jax.random.key(int(s))) for s in seeds])
    center = truth.weights @ truth.means
    states = jax.vmap(_init_state, in_axes=(0, None, None, 0))(
        jnp.asarray(means), jnp.asarray(w), center, keys
    )

    nbytes = b * n_chunks * chunk * (d + 1) * 8
    if in_memory is None:
        in_memory = not fresh and nbytes <= _IN_MEMORY_BYTES
    if in_memory and fresh:
        raise ValueError("in_memory=True needs fresh=False (a fresh batch each step).")
    data = None
    if in_memory:
        data = jax.vmap(
            lambda kd: stream_points(
                jax.random.wrap_key_data(kd), n, truth, n_chunks=n_chunks, chunk=chunk
            )
        )(keys)

    def advance(s, targets):
        return _advance_stream(
            truth, fp, s, targets, eta, blowup, n, n_chunks, jnp.asarray(w),
            jnp.asarray(float(sigma)), data, method=method, chunk=chunk, fresh=bool(fresh),
        )  # fmt: skip

    states, recs = _drive(advance, states, record, progress)
    return _trajectory(record, recs, states, blowup, t0)


@dataclass(frozen=True)
class Escape:
    """First-passage times of one component into a ball around the truth's mean.

    Attributes
    ----------
    steps : ndarray of int, shape (B,)
        The first step ``t`` with ``||mu_c(t) - m*|| <= radius`` (the cap where censored).
    censored : ndarray of bool, shape (B,)
        True where the component had not come within ``radius`` after ``max_steps``.
    diverged : ndarray of bool, shape (B,)
    final_means : ndarray of shape (B, k, r)
    max_steps : int
    seconds : float
    """

    steps: np.ndarray
    censored: np.ndarray
    diverged: np.ndarray
    final_means: np.ndarray
    max_steps: int
    seconds: float


class _EscState(NamedTuple):
    means: jax.Array
    t: jax.Array
    done: jax.Array
    bad: jax.Array


@jax.jit
def _escape_chunk(fp, states, radius, component, eta, t_end):
    def one(state, rad):
        def step(s):
            new = fp.gradient_em_means(s.means, eta)
            bad = ~jnp.all(jnp.isfinite(new))
            new = jnp.where(bad, s.means, new)
            dist = jnp.sqrt(jnp.max(jnp.sum(new[component] ** 2, axis=-1)))
            return _EscState(new, s.t + 1, dist <= rad, bad), dist, bad

        loop = driver.start(state, bad=state.done | state.bad)
        rule = driver.Rule(rad, t_end - state.t)
        return driver.run(step, loop, rule, criterion="below").state

    return jax.vmap(one)(states, radius)


def escape_steps(
    fp: FixedPopulation,
    means_r,
    *,
    eta: float,
    component: int,
    radius,
    max_steps: int,
    progress=None,
) -> Escape:
    """Steps of population gradient EM until ``component`` enters a ball around the truth.

    The escape time is the first step ``t >= 1`` at which
    ``max_{i in component} ||mu_i(t) - m*|| <= radius`` (``m*`` the truth's mean, the
    frame's origin), found inside ``lax.while_loop``; runs that have not escaped after
    ``max_steps`` are reported as censored at ``max_steps``.

    Parameters
    ----------
    fp : FixedPopulation
    means_r : array_like of shape (B, k, r)
        Starting means in frame coordinates.
    eta : float
        Step size (> 0).
    component : int or sequence of int
        The index (or indices) of the trapped component(s); escape needs all of them
        within ``radius``.
    radius : float or array_like of shape (B,)
        Escape radius of each restart (> 0).
    max_steps : int
        Step cap.
    progress : callable, optional
        ``progress(done_steps, max_steps)`` between compiled calls of
        :data:`ESCAPE_CHUNK` steps.

    Returns
    -------
    Escape
    """
    means = np.asarray(means_r, dtype=np.float64)
    if means.ndim == 2:
        means = means[None]
    if means.ndim != 3 or means.shape[1:] != (fp.model_weights.shape[0], fp.r):
        raise ValueError(
            f"means_r must have shape (B, {fp.model_weights.shape[0]}, {fp.r}); got {means.shape}."
        )
    if not np.isfinite(means).all():
        raise ValueError("means_r holds non-finite values (NaN or inf).")
    eta = check_positive(eta, "eta")
    max_steps = check_positive_int(max_steps, "max_steps")
    k = means.shape[1]
    comp = np.atleast_1d(np.asarray(component))
    if comp.ndim != 1 or not np.issubdtype(comp.dtype, np.integer) or len(comp) == 0:
        raise ValueError(f"component must be an int or a list of ints; got {component!r}.")
    if not ((comp >= 0) & (comp < k)).all():
        raise ValueError(f"component must be in [0, {k}); got {component}.")
    rad = np.broadcast_to(np.asarray(radius, dtype=np.float64), (means.shape[0],))
    if not (np.isfinite(rad).all() and (rad > 0).all()):
        raise ValueError("radius must be finite and > 0.")
    t0 = time.perf_counter()
    b = means.shape[0]
    states = _EscState(
        jnp.asarray(means),
        jnp.zeros((b,), jnp.int64),
        jnp.zeros((b,), bool),
        jnp.zeros((b,), bool),
    )
    t_end = 0
    while t_end < max_steps:
        t_end = min(t_end + ESCAPE_CHUNK, max_steps)
        states = _escape_chunk(
            fp, states, jnp.asarray(rad), jnp.asarray(comp), eta, jnp.asarray(t_end)
        )
        if progress is not None:
            progress(t_end, max_steps)
        if bool(jnp.all(states.done | states.bad)):
            break
    done = np.asarray(states.done)
    return Escape(
        steps=np.where(done, np.asarray(states.t), max_steps),
        censored=~done & ~np.asarray(states.bad),
        diverged=np.asarray(states.bad),
        final_means=np.asarray(states.means),
        max_steps=max_steps,
        seconds=time.perf_counter() - t0,
    )
