"""Vmapped many-start phase (EM or gradient EM) and Newton polish on fixed nodes.

Both run on a :class:`~gmmscape.dynamics.fixed.FixedPopulation`, in frame coordinates,
for a batch of starts at once (``vmap`` inside ``jit``; the steps are the one driver's
loop, :func:`gmmscape.dynamics.driver.run`: criterion ``"below"`` on the step length for
EM, on the gradient norm for Newton).
Starts are processed in chunks of a fixed size (the last one padded), so one compiled
function serves every chunk.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from gmmscape.core.chunks import chunk_length, next_pow2
from gmmscape.dynamics import driver
from gmmscape.dynamics.fixed import FixedPopulation

#: Budget of floats held per chunk (points x components x coordinates x starts).
CHUNK_BUDGET = 2**24
#: Backtracking fractions of the Newton step (the first that lowers |grad| is taken).
NEWTON_FRACTIONS = (1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125)
#: EM steps per round of the batch phase; converged starts leave the batch between rounds.
BATCH_ROUND = 10
#: Largest Newton step, per estimate, in units of sigma.
NEWTON_MAX_STEP = 2.0


def chunk_size(fp: FixedPopulation, k: int, factor: int = 1) -> int:
    """Starts per chunk so that one chunk holds about :data:`CHUNK_BUDGET` floats."""
    m = int(fp.z.shape[0]) * int(fp.truth.means.shape[0])
    return chunk_length(m * k * (fp.r + 1) * factor, CHUNK_BUDGET, hi=4096)


def _chunked(fn, fp, x: np.ndarray, size: int, *args):
    """Apply ``fn(fp, chunk, *args)`` to padded chunks of ``x`` and concatenate."""
    n = x.shape[0]
    outs = []
    for lo in range(0, n, size):
        part = x[lo : lo + size]
        pad = size - part.shape[0]
        if pad:
            part = np.concatenate([part, np.repeat(part[:1], pad, axis=0)])
        res = fn(fp, jnp.asarray(part), *args)
        outs.append(jax.tree_util.tree_map(lambda a, p=pad: np.asarray(a)[: size - p], res))
    return jax.tree_util.tree_map(lambda *a: np.concatenate(a), *outs)


@partial(jax.jit, static_argnames=("method", "max_iter"))
def _batch_run(fp, m0, eta, tol, method: str, max_iter: int):
    if method == "em":
        update = fp.em_means
    else:
        update = partial(fp.gradient_em_means, eta=eta)

    def step(m):
        m2 = update(m)
        delta = jnp.max(jnp.abs(m2 - m))
        return m2, jnp.where(jnp.isfinite(delta), delta, 0.0), False

    def one(m):
        out = driver.run(step, driver.start(m), driver.Rule(tol, max_iter), criterion="below")
        return out.state, out.value, out.it

    return jax.vmap(one)(m0)


def run_batch(
    fp: FixedPopulation,
    starts_r: np.ndarray,
    *,
    method: str = "em",
    eta: float = 1.0,
    max_iter: int = 500,
    tol: float = 1e-7,
    progress=None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run EM or gradient EM from every start until the largest step is below ``tol``.

    Steps run in rounds of :data:`BATCH_ROUND`, vmapped over chunks of the starts still
    active; a start whose last step was below ``tol`` leaves the batch, so the work is
    about the sum of each start's own iteration count.

    Parameters
    ----------
    fp : FixedPopulation
    starts_r : ndarray of shape (n, k, r)
    method : {"em", "gradient-em"}
    eta : float
        Gradient-EM step size.
    max_iter : int
    tol : float
        A start stops when its largest coordinate change is at most ``tol``
        (:func:`gmmscape.dynamics.driver.run`, criterion ``"below"``).
    progress : callable, optional
        Called with the number of starts done after each chunk.

    Returns
    -------
    means : ndarray of shape (n, k, r)
    last_step : ndarray of shape (n,)
        Largest coordinate change of the last step.
    iterations : ndarray of shape (n,)
        Steps taken by each start.
    """
    k = starts_r.shape[1]
    m = np.array(starts_r, dtype=float)
    n = m.shape[0]
    last = np.full(n, np.inf)
    iters = np.zeros(n, dtype=int)
    active = np.arange(n)
    done = 0
    while active.size and done < max_iter:
        steps = min(BATCH_ROUND, max_iter - done)
        size = min(chunk_size(fp, k), max(next_pow2(active.size), next_pow2(n) // 16))
        out_m, out_d, out_i = _chunked(
            lambda f, c, s=steps: _batch_run(f, c, eta, tol, method, s), fp, m[active], size
        )
        m[active], last[active] = out_m, out_d
        iters[active] += out_i
        done += steps
        active = active[~(out_d <= tol)]
        if progress is not None:
            progress(n - active.size)
    return m, last, iters


def _newton_one(fp: FixedPopulation, m0, max_iter: int, tol):
    k, r = m0.shape

    def gflat(m):
        return fp.grad(m).reshape(-1)

    def step(state):
        m, gn = state
        g = gflat(m)
        h, _ = fp.hessian(m)
        w, v = jnp.linalg.eigh(h)
        cut = 1e-14 * jnp.maximum(jnp.max(jnp.abs(w)), 1.0)
        inv = jnp.where(jnp.abs(w) > cut, 1.0 / jnp.where(w == 0, 1.0, w), 0.0)
        move = -(v @ (inv * (v.T @ g))).reshape(k, r)
        big = jnp.max(jnp.linalg.norm(move, axis=1)) / (NEWTON_MAX_STEP * fp.model_sigma)
        move = move / jnp.maximum(big, 1.0)
        fr = jnp.asarray(NEWTON_FRACTIONS)

        def ls_cond(c):
            j, _, gt = c
            return (j < fr.shape[0]) & ~(gt < gn)

        def ls_body(c):
            j, _, _ = c
            trial = m + fr[j] * move
            gt = jnp.linalg.norm(gflat(trial))
            return j + 1, trial, jnp.where(jnp.isfinite(gt), gt, jnp.inf)

        _, trial, gt = jax.lax.while_loop(ls_cond, ls_body, (0, m, jnp.inf))
        better = gt < gn  # a stalled line search keeps the point and stops
        gn = jnp.where(better, gt, gn)
        return (jnp.where(better, trial, m), gn), gn, ~better

    gn0 = jnp.linalg.norm(gflat(m0))
    # a start already at |grad| <= tol takes no step (the loop is entered as done)
    loop = driver.start((m0, gn0), gn0)._replace(done=gn0 <= tol)
    out = driver.run(step, loop, driver.Rule(tol, max_iter), criterion="below")
    m, gn = out.state
    mass = fp.stats(m).r0 / fp.stats(m).w
    return m, gn, out.it, mass


@partial(jax.jit, static_argnames=("max_iter",))
def _newton_batch(fp, m0, tol, max_iter: int):
    return jax.vmap(lambda m: _newton_one(fp, m, max_iter, tol))(m0)


def newton_polish(
    fp: FixedPopulation, means_r: np.ndarray, *, max_iter: int = 100, tol: float = 1e-12
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Polish candidates with damped Newton steps on the gradient norm.

    Each iteration takes the Newton step ``-H^+ g`` (pseudo-inverse, so it converges to
    minima, saddles and maxima alike; at a quartic-flat direction it converges linearly,
    shrinking the offset by 2/3 per step), capped at :data:`NEWTON_MAX_STEP` sigma per
    estimate, and the first fraction in :data:`NEWTON_FRACTIONS` that lowers ``|grad|``.
    A candidate stops when ``|grad| <= tol``, after ``max_iter`` iterations, or when no
    fraction lowers ``|grad|`` (stalled).

    Parameters
    ----------
    fp : FixedPopulation
    means_r : ndarray of shape (n, k, r)
    max_iter : int, default 100
    tol : float, default 1e-12

    Returns
    -------
    means : ndarray of shape (n, k, r)
    grad_norm : ndarray of shape (n,)
        Euclidean norm of the final gradient (equal in frame and ambient coordinates).
    iterations : ndarray of shape (n,)
    mass : ndarray of shape (n, k)
        ``E[psi_i]`` of each estimate at the end (0 flags an estimate that ran away).
    """
    k = means_r.shape[1]
    size = max(1, chunk_size(fp, k, factor=k * fp.r))
    size = min(size, 64, next_pow2(means_r.shape[0]))
    return _chunked(lambda f, c: _newton_batch(f, c, tol, max_iter), fp, np.asarray(means_r), size)
