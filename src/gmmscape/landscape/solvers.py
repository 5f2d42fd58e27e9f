"""Vmapped many-start phase (EM or gradient EM) and Newton polish on fixed nodes.

Both run on a :class:`~gmmscape.dynamics.fixed.FixedPopulation`, in frame coordinates,
for a batch of starts at once (``vmap`` inside ``jit``, ``lax.while_loop`` over steps).
Starts are processed in chunks of a fixed size (the last one padded), so one compiled
function serves every chunk.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from gmmscape.core.chunks import chunk_length, next_pow2
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
        step = jax.vmap(fp.em_means)
    else:
        step = jax.vmap(lambda m: fp.gradient_em_means(m, eta))

    def cond(state):
        _, it, delta = state
        return (it < max_iter) & (jnp.max(delta) > tol)

    def body(state):
        m, it, _ = state
        m2 = step(m)
        delta = jnp.max(jnp.abs(m2 - m), axis=(1, 2))
        delta = jnp.where(jnp.isfinite(delta), delta, 0.0)
        return m2, it + 1, delta

    delta0 = jnp.full(m0.shape[0], jnp.inf)
    m, it, delta = jax.lax.while_loop(cond, body, (m0, jnp.asarray(0), delta0))
    return m, delta, jnp.full(m0.shape[0], it)


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
        A chunk stops when every start's largest coordinate change is below ``tol``.
    progress : callable, optional
        Called with the number of starts done after each chunk.

    Returns
    -------
    means : ndarray of shape (n, k, r)
    last_step : ndarray of shape (n,)
        Largest coordinate change of the last step.
    iterations : ndarray of shape (n,)
        Steps taken (counted per round, so up to ``BATCH_ROUND - 1`` above the exact count).
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

    def cond(state):
        _, it, gn, stalled = state
        return (it < max_iter) & (gn > tol) & ~stalled

    def body(state):
        m, it, gn, _ = state
        g = gflat(m)
        h, _ = fp.hessian(m)
        w, v = jnp.linalg.eigh(h)
        cut = 1e-14 * jnp.maximum(jnp.max(jnp.abs(w)), 1.0)
        inv = jnp.where(jnp.abs(w) > cut, 1.0 / jnp.where(w == 0, 1.0, w), 0.0)
        step = -(v @ (inv * (v.T @ g))).reshape(k, r)
        big = jnp.max(jnp.linalg.norm(step, axis=1)) / (NEWTON_MAX_STEP * fp.model_sigma)
        step = step / jnp.maximum(big, 1.0)
        fr = jnp.asarray(NEWTON_FRACTIONS)

        def ls_cond(c):
            j, _, gt = c
            return (j < fr.shape[0]) & ~(gt < gn)

        def ls_body(c):
            j, _, _ = c
            trial = m + fr[j] * step
            gt = jnp.linalg.norm(gflat(trial))
            return j + 1, trial, jnp.where(jnp.isfinite(gt), gt, jnp.inf)

        _, trial, gt = jax.lax.while_loop(ls_cond, ls_body, (0, m, jnp.inf))
        better = gt < gn
        return (
            jnp.where(better, trial, m),
            it + 1,
            jnp.where(better, gt, gn),
            ~better,
        )

    gn0 = jnp.linalg.norm(gflat(m0))
    m, it, gn, _ = jax.lax.while_loop(cond, body, (m0, jnp.asarray(0), gn0, jnp.asarray(False)))
    mass = fp.stats(m).r0 / fp.stats(m).w
    return m, gn, it, mass


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
