"""Certify a critical point: Hessian spectrum in R^d and a higher-order test on null directions.

The Hessian of the population NLL at means inside a frame of dimension ``r`` is the frame
block ``H`` (``k r x k r``) plus ``M kron P_perp`` on the ``d - r`` orthogonal directions
(:func:`gmmscape.core.updates.hessian`); the spectrum in ``R^d`` is ``eig(H)`` together with
``eig(M)``, each repeated ``d - r`` times.

Rule (documented in docs/seed-b.md):

1. Eigenvalues with ``|lambda| <= eig_tol / sigma^2`` are *null*; the others are
   counted as negative or positive. Any negative eigenvalue: a saddle of that index (a
   maximum if every eigenvalue is negative).
2. No negative eigenvalue and no null one: a *strict minimum*.
3. Otherwise each null direction ``v`` is tested to higher order. Along a frame direction
   the test uses the reduced function ``g(t) = L(x0 + t v + w(t))``, where ``w(t)`` (in
   the span of the non-null eigenvectors) solves the stationarity condition there (a
   Lyapunov-Schmidt reduction, computed by chord Newton steps with the Hessian at
   ``x0``): a straight line alone can miss descent created by coupling with the stiff
   directions. Along a direction orthogonal to the frame (``u kron p``, ``u`` a null
   vector of ``M``) the truth is symmetric under ``p -> -p``, so ``g`` is even; the test
   uses the straight line there (which bounds the reduced quartic from above, so a
   negative quartic proves descent, a positive one is reported as such).
   With ``h = step * sigma`` the values at ``t = +-h, +-2h, +-3h`` give the odd part
   ``a1 t + a3 t^3 + a5 t^5`` and the even part ``a2 t^2 + a4 t^4 + a6 t^6`` exactly.
   With ``c_j = |a_j| h^j`` and a noise floor ``1e3 * 1e-15 * max(1, |L|)``:
   a cubic (``c3 > max(0.05 c4, floor)``) means descent (saddle); otherwise a quartic
   (``c4 > floor``) of positive sign is a quartic minimum along ``v`` and of negative sign
   descent; otherwise the direction is flat to fourth order (undetermined).
   With two or more null directions, each eigenvector and two random unit combinations
   of them are tested.
4. Kinds: "strict minimum", "degenerate minimum (quartic)", "saddle", "degenerate
   saddle" (descent only along a null direction), "maximum", "degenerate (undetermined)".
"""

from __future__ import annotations

import dataclasses
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from gmmscape.core.mixture import Mixture
from gmmscape.dynamics.fixed import FixedPopulation, standard_nodes
from gmmscape.landscape._problem import make_fixed

#: Null-eigenvalue tolerance, in units of 1 / sigma^2.
EIG_TOL = 1e-5
#: Step of the higher-order test, in units of sigma.
TEST_STEP = 0.05
#: Chord-Newton iterations of the reduction.
REDUCTION_ITERS = 8
#: Gauss-Hermite order of the orthogonal direction added for perpendicular null tests.
PERP_GH_LEVEL = 2

MINIMUM_KINDS = ("strict minimum", "degenerate minimum (quartic)")


@dataclasses.dataclass
class Certificate:
    """What the Hessian and the higher-order test say about one critical point.

    Attributes
    ----------
    kind : str
    index : int
        Number of negative Hessian eigenvalues in R^d (with multiplicity).
    eigenvalues : list of float
        The Hessian spectrum in R^d, sorted, length k d.
    n_null : int
        Number of null eigenvalues (with multiplicity).
    null_tests : list of dict
        Per tested direction: ``where`` ("frame" or "perp"), ``a2, a3, a4`` and the
        ``verdict`` ("cubic", "quartic+", "quartic-", "flat").
    """

    kind: str
    index: int
    eigenvalues: list
    n_null: int
    null_tests: list


def spectrum(fp: FixedPopulation, means_r) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hessian eigen-decomposition on the frame and the orthogonal block.

    Parameters
    ----------
    fp : FixedPopulation
    means_r : array of shape (k, r)

    Returns
    -------
    w : ndarray of shape (k r,)
        Frame eigenvalues, ascending.
    v : ndarray of shape (k r, k r)
        Their eigenvectors (columns).
    perp : tuple (ndarray (k,), ndarray (k, k))
        Eigenvalues and eigenvectors of ``M`` (empty when ``d = r``).
    """
    h, m_block = _hess(fp, jnp.asarray(means_r))
    w, v = np.linalg.eigh(np.asarray(h))
    if fp.d > fp.r:
        pw, pv = np.linalg.eigh(np.asarray(m_block))
    else:
        pw, pv = np.zeros(0), np.zeros((means_r.shape[0], 0))
    return w, v, (pw, pv)


@jax.jit
def _hess(fp, m):
    return fp.hessian(m)


@partial(jax.jit, static_argnames=("iters",))
def _reduced(fp, m0, v, c, hc_inv, ts, iters: int):
    k, r = m0.shape

    def one(t):
        def body(_, w):
            x = m0 + (t * v + c @ w).reshape(k, r)
            g = fp.grad(x).reshape(-1)
            return w - hc_inv @ (c.T @ g)

        w = jax.lax.fori_loop(0, iters, body, jnp.zeros(c.shape[1]))
        return fp.nll(m0 + (t * v + c @ w).reshape(k, r))

    return jax.vmap(one)(ts)


def _fit(values: np.ndarray, f0: float, h: float) -> dict:
    """Odd and even polynomial parts from values at ``t = -3h..3h`` (no 0)."""
    t = h * np.array([1.0, 2.0, 3.0])
    fm, fp_ = values[:3], values[3:]
    odd = (fp_ - fm) / 2
    even = (fp_ + fm) / 2 - f0
    a_odd = np.linalg.solve(np.stack([t, t**3, t**5], axis=1), odd)
    a_even = np.linalg.solve(np.stack([t**2, t**4, t**6], axis=1), even)
    a2, a3, a4 = float(a_even[0]), float(a_odd[1]), float(a_even[1])
    floor = 1e3 * 1e-15 * max(1.0, abs(f0))
    c3, c4 = abs(a3) * h**3, abs(a4) * h**4
    if c3 > max(0.05 * c4, floor):
        verdict = "cubic"
    elif c4 > floor:
        verdict = "quartic+" if a4 > 0 else "quartic-"
    else:
        verdict = "flat"
    return {"a2": a2, "a3": a3, "a4": a4, "verdict": verdict}


def _null_directions(vecs: np.ndarray, rng) -> list[np.ndarray]:
    dirs = [vecs[:, i] for i in range(vecs.shape[1])]
    if vecs.shape[1] >= 2:
        for _ in range(2):
            c = rng.standard_normal(vecs.shape[1])
            dirs.append(vecs @ (c / np.linalg.norm(c)))
    return dirs


def _perp_values(fp: FixedPopulation, m0: np.ndarray, u: np.ndarray, ts, f0: float):
    """``L(x0 + t u kron p)`` for ``p`` orthogonal to the frame, at every ``t`` in ``ts``.

    The frame gets one more coordinate along ``p``; the nodes are the frame's nodes times a
    Gauss-Hermite rule along ``p`` (the truth is ``N(0, sigma^2)`` there), summed one
    Gauss-Hermite node at a time to bound memory. Only differences from ``t = 0`` are
    formed, so the constant of the remaining orthogonal directions cancels.
    """
    k, r = m0.shape
    basis = np.asarray(fp.basis)
    d = basis.shape[0]
    q, _ = np.linalg.qr(np.hstack([basis, np.eye(d)]))
    p = q[:, r]
    new_basis = np.hstack([basis, p[:, None]])
    zg, wg = standard_nodes("gauss-hermite", 1, PERP_GH_LEVEL)
    z0, w0 = np.asarray(fp.z), np.asarray(fp.wz)
    beta = np.hstack([np.asarray(fp.truth.means), np.zeros((fp.truth.means.shape[0], 1))])
    truth = Mixture._raw(jnp.asarray(beta), fp.truth.weights, fp.truth.sigma)
    m_ext = np.hstack([m0, np.zeros((k, 1))])
    dvec = np.zeros((k, r + 1))
    dvec[:, -1] = u
    all_t = jnp.concatenate([jnp.zeros(1), jnp.asarray(ts)])
    ll = np.zeros(all_t.shape[0])
    total_w = 0.0
    for zj, wj in zip(zg[:, 0], wg, strict=True):
        z = np.hstack([z0, np.full((z0.shape[0], 1), zj)])
        fp2 = make_fixed(truth, k, float(fp.model_sigma), fp.origin, new_basis, d, z, w0)
        lls, w = _line_ll(fp2, jnp.asarray(m_ext), jnp.asarray(dvec), all_t)
        ll += wj * np.asarray(lls)
        total_w += wj * float(w)
    return f0 - (ll[1:] - ll[0]) / total_w


@jax.jit
def _line_ll(fp, m0, dvec, ts):
    out = jax.lax.map(lambda t: fp.stats(m0 + t * dvec).ll, ts)
    return out, fp.stats(m0).w


def certify(
    fp: FixedPopulation,
    means_r,
    *,
    eig_tol: float = EIG_TOL,
    step: float = TEST_STEP,
    seed: int = 0,
) -> Certificate:
    """Classify the critical point ``means_r`` of the population NLL on ``fp``.

    Parameters
    ----------
    fp : FixedPopulation
        Accurate nodes on a frame that contains the point.
    means_r : array_like of shape (k, r)
        A polished critical point in frame coordinates.
    eig_tol : float, default EIG_TOL
        Null-eigenvalue tolerance in units of ``1 / sigma^2``.
    step : float, default TEST_STEP
        Step ``h`` of the higher-order test in units of sigma.
    seed : int, default 0
        Seed of the random combinations of null directions.

    Returns
    -------
    Certificate
    """
    m0 = np.asarray(means_r, dtype=float)
    sigma = float(fp.model_sigma)
    tol = eig_tol / sigma**2
    w, v, (pw, pv) = spectrum(fp, m0)
    n_perp = fp.d - fp.r
    eigs = np.sort(np.concatenate([w, np.repeat(pw, n_perp)]))
    n_neg = int(np.sum(eigs < -tol))
    null = np.abs(w) <= tol
    pnull = np.abs(pw) <= tol
    n_null = int(null.sum() + n_perp * pnull.sum())
    tests: list[dict] = []
    if n_neg == len(eigs):
        kind = "maximum"
    elif n_neg > 0:
        kind = "saddle"
    elif n_null == 0:
        kind = "strict minimum"
    else:
        rng = np.random.default_rng(seed)
        h = step * sigma
        ts = jnp.asarray(h * np.array([-1.0, -2.0, -3.0, 1.0, 2.0, 3.0]))
        f0 = float(fp.nll(jnp.asarray(m0)))
        if null.any():
            c = v[:, ~null]
            hc_inv = np.diag(1.0 / w[~null])
            for dvec in _null_directions(v[:, null], rng):
                vals = np.asarray(
                    _reduced(
                        fp,
                        jnp.asarray(m0),
                        jnp.asarray(dvec),
                        jnp.asarray(c),
                        jnp.asarray(hc_inv),
                        ts,
                        REDUCTION_ITERS,
                    )
                )
                tests.append({"where": "frame", **_fit(vals, f0, h)})
        if n_perp and pnull.any():
            for u in _null_directions(pv[:, pnull], rng):
                vals = _perp_values(fp, m0, u, ts, f0)
                tests.append({"where": "perp", **_fit(vals, f0, h)})
        verdicts = {t["verdict"] for t in tests}
        if verdicts & {"cubic", "quartic-"}:
            kind = "degenerate saddle"
        elif verdicts == {"quartic+"}:
            kind = "degenerate minimum (quartic)"
        else:
            kind = "degenerate (undetermined)"
    return Certificate(
        kind=kind,
        index=n_neg,
        eigenvalues=[float(x) for x in eigs],
        n_null=n_null,
        null_tests=tests,
    )
