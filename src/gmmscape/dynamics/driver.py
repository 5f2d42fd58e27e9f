"""The one driver: an update rule iterated until a stopping rule says stop.

Every loop to convergence in gmmscape is this loop (the one engine, README "Layout"): the
estimator's EM and gradient EM (:func:`gmmscape.estimator._kernels.em_batch` and its host-driven
form), the landscape's batch of starts and its Newton polish, the seed A trajectories
between record points and the trap escapes. A caller supplies only its ``step``; the
driver owns the iteration count, the stopping test, the trace and the live report.

The stopping-rule vocabulary (:data:`CRITERIA`), the same for the compiled and the
host-driven loop:

``"change"``
    stop when ``|value_t - value_{t-1}| < tol + rtol |value_t|`` (EM's log-likelihood
    change: ``rtol = 0`` is scikit-learn's ``tol``, an absolute change of the mean;
    ``rtol > 0`` gives a relative rule such as mclust's);
``"below"``
    stop when ``value_t <= tol`` (a step length, a gradient norm, a distance);
``"steps"``
    run ``max_steps`` steps (record points of a trajectory).

Every loop also stops after ``max_steps`` steps in all, and as soon as a step reports
``bad`` (a divergence, a stalled line search); the step decides what its state is then.

:func:`run` is a ``lax.while_loop`` for one start: ``jax.vmap`` it over restarts (a
finished start keeps its values while the others run). :func:`run_host` is the same loop
driven from the host for a batch whose step needs the host (threads, Dask).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

#: The stopping criteria (see the module docstring).
CRITERIA = ("change", "below", "steps")


class Rule(NamedTuple):
    """A stopping rule's values (traced: one compiled loop serves every value).

    Attributes
    ----------
    tol : array of shape ()
        Threshold of the criterion (unused by ``"steps"``).
    max_steps : int array of shape ()
        Steps after which the loop stops, counted from the loop's ``it``.
    rtol : array of shape (), default 0.0
        Relative part of the ``"change"`` threshold, ``tol + rtol |value|`` (unused by
        the other criteria).
    """

    tol: Any
    max_steps: Any
    rtol: Any = 0.0


class Loop(NamedTuple):
    """The carry of the loop for one start.

    Attributes
    ----------
    state : pytree
        The caller's state (parameters and whatever the step accumulates).
    it : int array of shape ()
        Steps taken.
    value : array of shape ()
        The last step's value (the criterion's input).
    done : bool array of shape ()
        The criterion was met.
    bad : bool array of shape ()
        A step reported failure.
    trace : array of shape (trace_len,) or None
        ``value`` after each step; NaN after the last.
    """

    state: Any
    it: Any
    value: Any
    done: Any
    bad: Any
    trace: Any = None


def check_criterion(criterion: str) -> str:
    """``criterion`` if it is one of :data:`CRITERIA`, else a ``ValueError``."""
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}; got {criterion!r}.")
    return criterion


def met(criterion: str, value, prev, tol, rtol=0.0):
    """Whether ``criterion`` stops after a step from ``prev`` to ``value`` (NumPy or JAX).

    Parameters
    ----------
    criterion : str
        One of :data:`CRITERIA`.
    value, prev : arrays of the same shape
    tol : array broadcastable to them
    rtol : array broadcastable to them, default 0.0
        ``"change"`` stops when ``|value - prev| < tol + rtol |value|``.

    Returns
    -------
    bool array of the same shape
    """
    if criterion == "change":
        return abs(value - prev) < tol + rtol * abs(value)
    if criterion == "below":
        return value <= tol
    return np.zeros(np.shape(value), bool)  # "steps": the step count alone stops it


def start(state, value=None, *, bad=False, trace_len: int = 0, dtype=None) -> Loop:
    """The carry of a fresh loop.

    Parameters
    ----------
    state : pytree
    value : array of shape (), optional
        The value before the first step (default ``inf``; ``-inf`` for an EM start
        makes the first ``"change"`` test fail).
    bad : bool or bool array of shape (), default False
        Start stopped (a run that diverged in an earlier call).
    trace_len : int, default 0
        Length of the trace buffer (0: no trace).
    dtype : dtype, optional
        Of ``value`` and the trace (default float64 where enabled).

    Returns
    -------
    Loop
    """
    dtype = dtype or jnp.result_type(float)
    value = jnp.asarray(jnp.inf if value is None else value, dtype)
    trace = jnp.full((trace_len,), jnp.nan, dtype) if trace_len else None
    zero = jnp.zeros((), jnp.int32)
    return Loop(state, zero, value, jnp.zeros((), bool), jnp.asarray(bad, bool), trace)


def run(
    step: Callable,
    loop: Loop,
    rule: Rule,
    *,
    criterion: str,
    report: Callable | None = None,
) -> Loop:
    """Iterate ``step`` in a ``lax.while_loop`` until the rule stops it.

    Traceable (call it under ``jit``, ``vmap`` it over starts).

    Parameters
    ----------
    step : callable ``state -> (state, value, bad)``
        One update; ``value`` is an array of shape (), ``bad`` a bool of shape ().
    loop : Loop
        From :func:`start` or an earlier :func:`run` (a loop may be resumed with a
        larger ``max_steps``).
    rule : Rule
    criterion : str
        One of :data:`CRITERIA` (static).
    report : callable ``(it, value, change) -> None``, optional
        Traced after each step, only for a start that is still running (``it`` counts
        from 1); it typically calls ``jax.debug.callback`` to print live.

    Returns
    -------
    Loop
    """
    check_criterion(criterion)

    def running(c: Loop):
        return (c.it < rule.max_steps) & ~c.done & ~c.bad

    def body(c: Loop) -> Loop:
        state, value, bad = step(c.state)
        value = jnp.asarray(value, c.value.dtype)
        if report is not None:  # vmapped starts that are done keep looping with the
            # others, so only the running ones report
            jax.lax.cond(running(c), lambda: report(c.it + 1, value, value - c.value), lambda: None)
        trace = None if c.trace is None else c.trace.at[c.it].set(value)
        done = met(criterion, value, c.value, rule.tol, rule.rtol)
        return Loop(state, c.it + 1, value, done, jnp.asarray(bad, bool), trace)

    return jax.lax.while_loop(running, body, loop)


def run_host(
    step: Callable,
    state,
    value0,
    tol: float,
    max_steps: int,
    *,
    criterion: str,
    rtol: float = 0.0,
    trace_len: int = 0,
    report: Callable | None = None,
) -> tuple[Any, dict]:
    """The loop of :func:`run` driven from the host, for a batch of ``b`` starts.

    Parameters
    ----------
    step : callable ``(state, active) -> (state, value, bad)``
        One update of the whole batch; ``active`` (bool array of shape (b,)) marks the
        starts still running, whose state the step must update (the others it must
        keep); ``value`` and ``bad`` are arrays of shape (b,).
    state : pytree with a leading batch axis b
    value0 : array of shape (b,)
    tol : float
    max_steps : int
    criterion : str
    rtol : float, default 0.0
        Relative part of the ``"change"`` threshold (see :class:`Rule`).
    trace_len : int, default 0
    report : callable ``(start, it, value, change) -> None``, optional
        Called after each step of each running start.

    Returns
    -------
    state : pytree
    out : dict of NumPy arrays of shape (b,) (``trace``: (b, trace_len))
        ``value``, ``it``, ``done``, ``bad`` and ``trace`` as in :class:`Loop`.
    """
    check_criterion(criterion)
    value = np.asarray(value0, np.float64).copy()
    b = value.shape[0]
    it = np.zeros(b, int)
    done = np.zeros(b, bool)
    bad = np.zeros(b, bool)
    trace = np.full((b, max(trace_len, 1)), np.nan)
    for t in range(int(max_steps)):
        active = ~done & ~bad
        state, new, new_bad = step(state, active)
        new = np.asarray(new, np.float64)
        if report is not None:
            for i in np.flatnonzero(active):
                report(i, t + 1, new[i], new[i] - value[i])
        if trace_len:
            trace[active, t] = new[active]
        it[active] += 1
        done |= active & met(criterion, new, value, tol, rtol)
        bad |= active & np.asarray(new_bad, bool)
        value = np.where(active, new, value)
        if not (~done & ~bad).any():
            break
    return state, {"value": value, "it": it, "done": done, "bad": bad, "trace": trace}
