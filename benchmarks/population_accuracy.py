"""Accuracy, honesty of the error estimate, and speed of population quadrature.

For each case (a truth and a model) this benchmark evaluates ``gs.population(truth,
rule=...).expect(model)`` and compares its KL and gradient with an independent reference,
computed here in numpy/scipy without any gmmscape code:

* r = 1 (d = 1): ``scipy.integrate.quad`` with breakpoints at every responsibility switch;
* r = 2 (d = 2): ``scipy.integrate.cubature`` (adaptive tensor Gauss-Kronrod); nested
  ``quad_vec`` with breakpoints on the switching lines agrees with it (``--check-2d``);
* r = 6, 8, 10 (d = r): a much finer rule with the same numpy integrand: a Smolyak sparse
  grid built here (Gauss-Hermite from ``scipy.special``) on the principal axes of the
  means, two levels above those the tested rules return, and a scrambled Sobol' rule
  with 16 replicates of 2^19 points. The one with the smaller uncertainty is used; the
  two must agree.

Each rule's time is the median wall time of repeated ``expect`` calls after a warm-up
call (JAX compilation and node construction excluded). Plain Monte Carlo at equal time is
``gs.stream(truth, n, seed)`` with ``n`` set from its measured throughput so that it runs
as long as the rule; its error is the root mean square over several seeds.

Run ``.venv/bin/python benchmarks/population_accuracy.py`` (about 5.5 minutes on 2 cores)
or with ``--quick`` (about 1 minute); ``--defaults`` times ``rule="auto"`` with default
settings at r = 6 to 10 (about 5 minutes) and ``--check-2d`` compares the two 2-D
references (about 11 minutes). Results go to ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import time
import warnings
from functools import cache
from math import comb
from pathlib import Path

import jax
import numpy as np
import scipy
from scipy import integrate
from scipy.special import logsumexp, ndtri, roots_hermitenorm
from scipy.stats import qmc

import gmmscape as gs

RESULTS = Path(__file__).resolve().parent / "results"
#: Half-width, in units of sigma, of the box integrated around each true center (the
#: Gaussian mass outside is below 1e-32).
BOX = 12.0
#: gauss-hermite's node budget is capped at level 6 (257 points per axis) to bound the
#: running time of the r <= 2 cases; without the cap it runs up to the default max_nodes.
GH_MAX_POINTS_PER_AXIS = 257


# --------------------------------------------------------------------------------------
# Independent integrand (numpy only). With equal sigmas the -|x|^2 / (2 sigma^2) terms of
# the two log-densities cancel exactly, so everything is written with linear logits.
# --------------------------------------------------------------------------------------
def _logits(x, means, weights, sigma):
    return np.log(weights) + (x @ means.T - 0.5 * np.sum(means**2, axis=1)) / sigma**2


def _lse(a):
    """Row-wise log-sum-exp and the shifted exponentials (for responsibilities)."""
    top = a.max(axis=1)
    e = np.exp(a - top[:, None])
    tot = e.sum(axis=1)
    return top + np.log(tot), e / tot[:, None]


def point_sums(x, w, truth, model):
    """``sum w (log p*(x) - log p(x))`` and ``sum w grad_mu(-log p(x))`` over points."""
    mu, pi, s = model
    beta, pis, _ = truth
    la, psi = _lse(_logits(x, mu, pi, s))
    lb, _ = _lse(_logits(x, beta, pis, s))
    wpsi = psi * w[:, None]
    kl = w @ (lb - la)
    grad = -(wpsi.T @ x - wpsi.sum(axis=0)[:, None] * mu) / s**2
    return kl, grad


def as_tuple(m: gs.Mixture):
    if not np.isclose(float(m.sigma), 1.0):
        raise ValueError("the reference integrand assumes sigma = 1 for truth and model")
    return (np.asarray(m.means), np.asarray(m.weights), float(m.sigma))


def principal_axes(truth, model):
    """An orthogonal matrix whose rows are the principal axes of all the means."""
    beta, pis, _ = truth
    pts = np.vstack([model[0], beta]) - pis @ beta
    return np.linalg.svd(pts, full_matrices=True)[2]


def sums_over_truth(z, wz, truth, model, rotation=None, chunk=2**17):
    """``E_truth`` of the KL integrand and the gradient with nodes ``z`` of N(0, I).

    ``rotation`` (rows an orthonormal basis) turns the nodes before use: N(0, I) is
    rotation invariant, but a sparse grid aligned with the principal axes of the means
    converges much faster than one in arbitrary coordinates.
    """
    beta, pis, s = truth
    kl, grad = 0.0, np.zeros_like(model[0])
    for start in range(0, z.shape[0], chunk):
        zc, wc = z[start : start + chunk], wz[start : start + chunk]
        if rotation is not None:
            zc = zc @ rotation
        for b, p in zip(beta, pis, strict=True):
            k_, g_ = point_sums(b + s * zc, p * wc, truth, model)
            kl += k_
            grad += g_
    return kl, grad


# ---- r = 1, 2: scipy adaptive quadrature with breakpoints ----------------------------
def _switches_1d(means, weights, s):
    """Points where two logits of a 1-D mixture are equal."""
    out = []
    for i, j in itertools.combinations(range(len(means)), 2):
        dm = means[i] - means[j]
        if abs(dm) > 1e-12:
            out.append(s**2 * np.log(weights[j] / weights[i]) / dm + 0.5 * (means[i] + means[j]))
    return out


def scipy_reference_1d(truth, model):
    mu, pi, s = model
    beta, pis, _ = truth
    m1, b1 = mu[:, 0], beta[:, 0]
    switches = _switches_1d(m1, pi, s) + _switches_1d(b1, pis, s)
    kl, grad, err_kl, err_grad = 0.0, np.zeros_like(mu), 0.0, np.zeros_like(mu)
    c0 = 1.0 / np.sqrt(2 * np.pi) / s
    for b, p in zip(b1, pis, strict=True):
        lo, hi = b - BOX * s, b + BOX * s
        pts = sorted({float(v) for v in [*switches, *m1, *b1] if lo < v < hi})

        def dens(x, b=b, p=p):
            return p * c0 * np.exp(-0.5 * ((x - b) / s) ** 2)

        def kl_f(x, dens=dens):
            a = np.log(pi) + (x * m1 - 0.5 * m1**2) / s**2
            c = np.log(pis) + (x * b1 - 0.5 * b1**2) / s**2
            return dens(x) * (logsumexp(c) - logsumexp(a))

        def g_f(x, i, dens=dens):
            a = np.log(pi) + (x * m1 - 0.5 * m1**2) / s**2
            psi_i = np.exp(a[i] - logsumexp(a))
            return -dens(x) * psi_i * (x - m1[i]) / s**2

        opts = dict(points=pts, epsabs=1e-15, epsrel=1e-13, limit=2000)
        val, err = integrate.quad(kl_f, lo, hi, **opts)
        kl, err_kl = kl + val, err_kl + err
        for i in range(len(m1)):
            val, err = integrate.quad(g_f, lo, hi, args=(i,), **opts)
            grad[i, 0] += val
            err_grad[i, 0] += err
    return kl, grad, err_kl, float(np.max(err_grad))


def _lines_2d(means, weights, s):
    """Lines ``n . x = c`` where two logits of a 2-D mixture are equal."""
    out = []
    for i, j in itertools.combinations(range(len(means)), 2):
        n = means[i] - means[j]
        c = s**2 * np.log(weights[j] / weights[i]) + 0.5 * (
            means[i] @ means[i] - means[j] @ means[j]
        )
        if np.linalg.norm(n) > 1e-12:
            out.append((n, c))
    return out


def scipy_reference_2d(truth, model):
    """``scipy.integrate.cubature`` (adaptive tensor Gauss-Kronrod 21, vectorized).

    Agrees with :func:`scipy_reference_2d_nested` to 2e-15 in KL and 4e-16 in the gradient
    on the 2-D cases; it is used because the nested rule takes minutes per case
    (``--check-2d`` runs both).
    """
    mu, pi, s = model
    beta, pis, _ = truth
    tot, err = np.zeros(1 + mu.size), np.zeros(1 + mu.size)
    for b, p in zip(beta, pis, strict=True):

        def f(x, b=b, p=p):
            la, psi = _lse(_logits(x, mu, pi, s))
            lb, _ = _lse(_logits(x, beta, pis, s))
            dens = p * np.exp(-0.5 * np.sum((x - b) ** 2, axis=1) / s**2) / (2 * np.pi * s**2)
            g = -(psi[:, :, None] * (x[:, None, :] - mu[None])).reshape(x.shape[0], -1) / s**2
            return dens[:, None] * np.concatenate([(lb - la)[:, None], g], axis=1)

        res = integrate.cubature(
            f,
            b - BOX * s,
            b + BOX * s,
            rule="gk21",
            rtol=1e-13,
            atol=1e-16,
            max_subdivisions=100_000,
        )
        if res.status != "converged":
            raise RuntimeError("the 2-D reference did not converge")
        tot += res.estimate
        err += res.error
    return tot[0], tot[1:].reshape(mu.shape), float(err[0]), float(np.max(err[1:]))


def scipy_reference_2d_nested(truth, model):
    """Nested ``quad_vec`` (inner over x1, outer over x2) with breakpoints at switches."""
    mu, pi, s = model
    beta, pis, _ = truth
    k = mu.shape[0]
    lines = _lines_2d(mu, pi, s) + _lines_2d(beta, pis, s)
    c0 = 1.0 / (2 * np.pi * s**2)
    outer_pts = [*mu[:, 1], *beta[:, 1]]
    for (n1, c1), (n2, c2) in itertools.combinations(lines, 2):
        a = np.array([n1, n2])
        if abs(np.linalg.det(a)) > 1e-12:
            outer_pts.append(np.linalg.solve(a, [c1, c2])[1])
    for n, c in lines:
        if abs(n[0]) <= 1e-12 * np.linalg.norm(n):
            outer_pts.append(c / n[1])
    kl, grad, err = 0.0, np.zeros_like(mu), 0.0
    for b, p in zip(beta, pis, strict=True):
        lo1, hi1 = b[0] - BOX * s, b[0] + BOX * s
        lo2, hi2 = b[1] - BOX * s, b[1] + BOX * s

        def inner(y, b=b, p=p, lo1=lo1, hi1=hi1):
            pts = [*mu[:, 0], *beta[:, 0]]
            for n, c in lines:
                if abs(n[0]) > 1e-12 * np.linalg.norm(n):
                    pts.append((c - n[1] * y) / n[0])
            pts = sorted({float(v) for v in pts if lo1 < v < hi1})
            wy = p * c0 * np.exp(-0.5 * ((y - b[1]) / s) ** 2)

            def f(x):
                pt = np.array([x, y])
                a = np.log(pi) + (mu @ pt - 0.5 * np.sum(mu**2, axis=1)) / s**2
                c = np.log(pis) + (beta @ pt - 0.5 * np.sum(beta**2, axis=1)) / s**2
                la = logsumexp(a)
                psi = np.exp(a - la)
                dens = wy * np.exp(-0.5 * ((x - b[0]) / s) ** 2)
                g = -(psi[:, None] * (pt[None, :] - mu)).ravel() / s**2
                return dens * np.concatenate([[logsumexp(c) - la], g])

            val, _ = integrate.quad_vec(
                f, lo1, hi1, points=pts or None, epsabs=1e-15, epsrel=1e-12, limit=2000
            )
            return val

        pts2 = sorted({float(v) for v in outer_pts if lo2 < v < hi2})
        val, e = integrate.quad_vec(
            inner, lo2, hi2, points=pts2 or None, epsabs=1e-14, epsrel=1e-12, limit=2000
        )
        kl += val[0]
        grad += val[1:].reshape(k, 2)
        err += e
    return kl, grad, float(err), float(err)


# ---- r >= 6: a much finer sparse grid and a large RQMC rule --------------------------
@cache
def _gh(q):
    x, w = roots_hermitenorm(q)
    return x, w / w.sum()


def _compositions(total, parts):
    for cuts in itertools.combinations(range(1, total), parts - 1):
        edges = (0, *cuts, total)
        yield tuple(edges[i + 1] - edges[i] for i in range(parts))


def _tensor(rules):
    shape = tuple(len(x) for x, _ in rules)
    idx = np.unravel_index(np.arange(int(np.prod(shape))), shape)
    z = np.stack([x[i] for (x, _), i in zip(rules, idx, strict=True)], axis=1)
    w = np.prod([w[i] for (_, w), i in zip(rules, idx, strict=True)], axis=0)
    return z, w


def smolyak_blocks(r, level, block=2**18):
    """Nodes and weights of the Smolyak rule on Gauss-Hermite rules of ``2^i - 1`` points.

    Combination form ``sum_{L+1 <= |i| - r + 1 <= L + r} (-1)^(r+L-|i|) C(r-1, r+L-|i|)
    U_i1 x ... x U_ir``, with nodes shared by several tensor grids not merged.
    """
    top = r + level
    zs, ws, size = [], [], 0
    for total in range(max(r, top - r + 1), top + 1):
        coef = (-1) ** (top - total) * comb(r - 1, top - total)
        for idx in _compositions(total, r):
            z, w = _tensor([_gh(2**i - 1) for i in idx])
            zs.append(z)
            ws.append(coef * w)
            size += z.shape[0]
            if size >= block:
                yield np.concatenate(zs), np.concatenate(ws)
                zs, ws, size = [], [], 0
    if zs:
        yield np.concatenate(zs), np.concatenate(ws)


def smolyak_reference(truth, model, level):
    """Values at ``level`` and ``level - 1`` on the principal axes of the means.

    The uncertainty is the difference of the two levels (an over-estimate of the error
    of the finer one when the rule converges).
    """
    rot = principal_axes(truth, model)
    out = []
    for lev in (level - 1, level):
        kl, grad, n = 0.0, np.zeros_like(model[0]), 0
        for z, w in smolyak_blocks(model[0].shape[1], lev):
            k_, g_ = sums_over_truth(z, w, truth, model, rotation=rot)
            kl, grad, n = kl + k_, grad + g_, n + z.shape[0]
        out.append((kl, grad, n))
    (k0, g0, _), (k1, g1, n1) = out
    return k1, g1, abs(k1 - k0), float(np.max(np.abs(g1 - g0))), n1


def rqmc_reference(truth, model, m, reps, seed):
    """Mean of ``reps`` scrambled Sobol' rules of ``2^m`` points; 3 standard errors."""
    r = model[0].shape[1]
    kls, grads = [], []
    for ss in np.random.SeedSequence([seed, r, m]).spawn(reps):
        u = qmc.Sobol(d=r, scramble=True, seed=np.random.default_rng(ss)).random_base2(m)
        z = ndtri(np.clip(u, 1e-16, 1 - 1e-16))
        k_, g_ = sums_over_truth(z, np.full(z.shape[0], 1.0 / z.shape[0]), truth, model)
        kls.append(k_)
        grads.append(g_)
    kls, grads = np.array(kls), np.array(grads)
    se_kl = 3 * kls.std(ddof=1) / np.sqrt(reps)
    se_g = 3 * float(np.max(grads.std(axis=0, ddof=1))) / np.sqrt(reps)
    return kls.mean(), grads.mean(axis=0), se_kl, se_g, reps * 2**m


# --------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------
def low_r_cases():
    """(name, description, truth, model) with d = r = 1 or 2."""
    tri = np.array([[0.0, 0.0], [20.0, 0.0], [10.0, 10 * np.sqrt(3)]])
    sq = 3.0 * np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])
    return [
        (
            "1d-seedA",
            "truth N(0,1); model 2 means at +-0.1 (KL ~ theta^4/4 = 2.5e-5)",
            gs.Mixture(means=[[0.0]]),
            gs.Mixture(means=[[-0.1], [0.1]]),
        ),
        (
            "1d-over",
            "truth +-2; model k=3 at -1, 0.5, 3, weights 0.2/0.3/0.5",
            gs.Mixture(means=[[-2.0], [2.0]]),
            gs.Mixture(means=[[-1.0], [0.5], [3.0]], weights=[0.2, 0.3, 0.5]),
        ),
        (
            "1d-jin",
            "truth -2, 2, 20 (Jin et al.); model 0, 19.5, 20.5 (bad local optimum)",
            gs.Mixture(means=[[-2.0], [2.0], [20.0]]),
            gs.Mixture(means=[[0.0], [19.5], [20.5]]),
        ),
        (
            "1d-under",
            "truth k*=4 at -15, -5, 5, 15 (10 sigma apart); model k=2 at -10, 10",
            gs.Mixture(means=[[-15.0], [-5.0], [5.0], [15.0]]),
            gs.Mixture(means=[[-10.0], [10.0]]),
        ),
        (
            "2d-overlap",
            "truth k*=2 at (+-1.5, 0); model k=2 at (-1, 0.5), (1.2, -0.3)",
            gs.Mixture(means=[[-1.5, 0.0], [1.5, 0.0]]),
            gs.Mixture(means=[[-1.0, 0.5], [1.2, -0.3]]),
        ),
        (
            "2d-sep20",
            "truth k*=3 on a triangle of side 20; model k=4: one per center + one between",
            gs.Mixture(means=tri),
            gs.Mixture(means=[[0.5, 0.2], [19.0, 0.5], [10.5, 16.5], [10.0, 0.0]]),
        ),
        (
            "2d-square",
            "truth k*=4 on a square of side 6, weights .4/.3/.2/.1; model k=4 perturbed",
            gs.Mixture(means=sq, weights=[0.4, 0.3, 0.2, 0.1]),
            gs.Mixture(means=sq + np.array([[0.4, -0.2], [-0.3, 0.5], [0.2, 0.3], [-0.5, -0.4]])),
        ),
    ]


def high_r_cases(rs):
    """(name, description, truth, model) with d = r."""
    out = []
    for r in rs:
        rng = np.random.default_rng(100 + r)
        m = rng.standard_normal((r + 1, r))
        m -= m.mean(axis=0)
        m *= 0.5 / np.sqrt(np.mean(np.sum(m**2, axis=1)))
        out.append(
            (
                f"seedA-r{r}",
                f"d={r}: truth N(0, I); model {r + 1} means, mean 0, rms norm 0.5",
                gs.Mixture(means=np.zeros((1, r))),
                gs.Mixture(means=m),
            )
        )
        ks = r // 2
        c = np.zeros((ks, r))
        c[np.arange(ks), np.arange(ks)] = 5.0 / np.sqrt(2)
        mu = np.vstack(
            [c + 0.3 * rng.standard_normal(c.shape), c[:1] + 0.5 * rng.standard_normal((1, r))]
        )
        out.append(
            (
                f"sep-r{r}",
                f"d={r}: truth k*={ks} centers 5 sigma apart; model k={ks + 1}: each center "
                "perturbed (0.3 per axis), plus a second mean on center 1",
                gs.Mixture(means=c),
                gs.Mixture(means=mu),
            )
        )
    return out


# --------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------
def timed(fn, max_repeats=5, budget=3.0):
    """Warm-up call, then the median of up to ``max_repeats`` timed calls."""
    t0 = time.perf_counter()
    out = fn()
    first = time.perf_counter() - t0
    times = []
    while len(times) < max_repeats and sum(times) < budget:
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, float(np.median(times)), first


class MonteCarlo:
    """Plain Monte Carlo (``gs.stream``) run for a given wall time, for one case."""

    CHUNKS = (2**12, 2**16)

    def __init__(self, truth, model):
        self.truth, self.model = truth, model
        self.rate = {}

    def _calibrate(self, chunk):
        if chunk not in self.rate:
            gs.stream(self.truth, n=chunk, seed=0, chunk_size=chunk).expect(self.model)
            n = 16 * chunk
            src = gs.stream(self.truth, n=n, seed=0, chunk_size=chunk)
            _, t, _ = timed(lambda: src.expect(self.model), max_repeats=3, budget=0.5)
            self.rate[chunk] = n / t
        return self.rate[chunk]

    def run(self, seconds, kl_ref, grad_ref, seeds):
        chunk = self.CHUNKS[0]
        if self._calibrate(chunk) * seconds >= 2**19:
            chunk = self.CHUNKS[1]
        n = max(256, int(self._calibrate(chunk) * seconds))
        errs_kl, errs_g, times, se_kl, se_g = [], [], [], [], []
        for seed in range(1, seeds + 1):
            src = gs.stream(self.truth, n=n, seed=seed, chunk_size=chunk)
            t0 = time.perf_counter()
            e = src.expect(self.model)
            times.append(time.perf_counter() - t0)
            errs_kl.append(abs(e.kl - kl_ref))
            errs_g.append(float(np.max(np.abs(e.grad - grad_ref))))
            se_kl.append(e.se["kl"])
            se_g.append(float(np.max(e.se["grad"])))
        return {
            "n": n,
            "chunk_size": chunk,
            "seconds": float(np.median(times)),
            "rms_err_kl": float(np.sqrt(np.mean(np.square(errs_kl)))),
            "rms_err_grad": float(np.sqrt(np.mean(np.square(errs_g)))),
            "se_kl": float(np.mean(se_kl)),
            "se_grad": float(np.mean(se_g)),
            "seeds": seeds,
        }


#: Slack for float64 rounding in the honesty check: 100 ulps of the quantity's scale.
ROUNDOFF = 100 * np.finfo(float).eps


def honesty(err, est, unc, scale):
    """'yes', 'roundoff' (short of the estimate by rounding only), 'NO', or 'unresolved'.

    ``err`` is measured against a reference of uncertainty ``unc``: an error estimate
    below ``unc`` cannot be confirmed ('unresolved') unless it is clearly violated.
    """
    if err > est + unc + ROUNDOFF * max(1.0, scale):
        return "NO"
    if est < unc:
        return "unresolved"
    return "yes" if err <= est + unc else "roundoff"


def evaluate(truth, model, rule, kwargs, ref, mc, seeds, max_repeats=5):
    """Time one rule, check its error estimate, and run Monte Carlo for as long (if mc)."""
    pop = gs.population(truth, rule=rule, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        e, seconds, first = timed(lambda: pop.expect(model), max_repeats=max_repeats)
    q = e.quadrature
    err_kl = abs(e.kl - ref["kl"])
    err_g = float(np.max(np.abs(e.grad - ref["grad"])))
    est_kl, est_g = float(q.errors["kl"]), float(q.errors["grad"])
    states = (
        honesty(err_kl, est_kl, ref["unc_kl"], abs(e.kl)),
        honesty(err_g, est_g, ref["unc_grad"], float(np.max(np.abs(e.grad)))),
    )
    honest = next(h for h in ("NO", "unresolved", "roundoff", "yes") if h in states)
    m = None
    if mc is not None:
        m = mc.run(seconds, ref["kl"], ref["grad"], seeds if seconds < 1 else min(seeds, 3))
    coverage = None
    if rule == "rqmc" and seconds < 1:
        coverage = rqmc_coverage(truth, model, kwargs, ref, RQMC_SEEDS)
    return {
        "rule": rule,
        "options": dict(kwargs),
        "rule_used": q.rule,
        "r": q.r,
        "level": q.level,
        "nodes": q.nodes,
        "levels_tried": [(t["rule"], t["level"], t["nodes"]) for t in q.tried],
        "converged": q.converged,
        "seconds": seconds,
        "first_call_seconds": first,
        "kl": e.kl,
        "err_kl": err_kl,
        "est_kl": est_kl,
        "err_grad": err_g,
        "est_grad": est_g,
        "honest": honest,
        "honest_kl_grad": states,
        "mc": m,
        "beats_mc": None
        if m is None
        else bool(err_kl < m["rms_err_kl"] and err_g < m["rms_err_grad"]),
        "rqmc_seed_coverage": coverage,
    }


#: Seeds over which the randomized rule's error estimate is checked.
RQMC_SEEDS = 20


def rqmc_coverage(truth, model, kwargs, ref, n_seeds):
    """Fraction of seeds whose KL and gradient errors are within the reported estimates.

    The rqmc estimate is three replicate standard errors, so nearly every seed should pass.
    """
    ok = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for seed in range(1, n_seeds + 1):
            e = gs.population(truth, rule="rqmc", seed=seed, **kwargs).expect(model)
            q = e.quadrature
            ok += bool(
                abs(e.kl - ref["kl"]) <= q.errors["kl"] + ref["unc_kl"]
                and np.max(np.abs(e.grad - ref["grad"])) <= q.errors["grad"] + ref["unc_grad"]
            )
    return {"seeds": n_seeds, "within_estimate": ok}


# --------------------------------------------------------------------------------------
def fmt(x):
    return f"{x:.1e}" if x != 0 else "0"


def _rule_label(row):
    rule = row["rule"] if row["rule"] == row["rule_used"] else f"auto→{row['rule_used']}"
    if "rtol" in row["options"]:
        rule += f" (rtol {row['options']['rtol']:g})"
    return rule


def table(cases):
    head = (
        "| case | rule | r | level | nodes | conv. | time (s) | KL err | KL est | grad err | "
        "grad est | honest | MC KL err | MC grad err | beats MC |"
    )
    lines = [head, "|" + "---|" * 15]
    for c in cases:
        for row in c["rows"]:
            lines.append(
                f"| {c['name']} | {_rule_label(row)} | {row['r']} | {row['level']} | "
                f"{row['nodes']} | {'yes' if row['converged'] else 'no'} | "
                f"{row['seconds']:.3g} | "
                f"{fmt(row['err_kl'])} | {fmt(row['est_kl'])} | {fmt(row['err_grad'])} | "
                f"{fmt(row['est_grad'])} | {row['honest']} | {fmt(row['mc']['rms_err_kl'])} | "
                f"{fmt(row['mc']['rms_err_grad'])} | {'yes' if row['beats_mc'] else 'no'} |"
            )
    return "\n".join(lines)


def case_table(cases):
    lines = [
        "| case | description | KL (reference) | reference | ref. unc. KL | ref. unc. grad "
        "| refs agree |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in cases:
        ref = c["reference"]
        agree = {True: "yes", False: "NO"}.get(ref.get("agree"), "-")
        lines.append(
            f"| {c['name']} | {c['description']} | {ref['kl']:.10g} | {ref['method']} | "
            f"{fmt(ref['unc_kl'])} | {fmt(ref['unc_grad'])} | {agree} |"
        )
    return "\n".join(lines)


def verdicts(cases):
    lines = []
    for c in cases:
        if not c["name"].startswith(("seedA-r", "sep-r")):
            continue
        good, bad = [], []
        for row in c["rows"]:
            ok_h = row["honest"] in ("yes", "roundoff", "unresolved")
            if ok_h and row["beats_mc"]:
                good.append(_rule_label(row))
                continue
            why = []
            if not ok_h:
                why.append("error estimate too small")
            if not row["beats_mc"]:
                ratio = max(
                    row["err_kl"] / row["mc"]["rms_err_kl"],
                    row["err_grad"] / row["mc"]["rms_err_grad"],
                )
                why.append(f"error up to {ratio:.1f}x Monte Carlo's at equal time")
            bad.append(f"{_rule_label(row)} ({'; '.join(why)})")
        text = "meets the goal: " + (", ".join(good) if good else "no rule")
        if bad:
            text += "; does not: " + ", ".join(bad)
        for row in c["rows"]:
            cov = row.get("rqmc_seed_coverage")
            if cov:
                text += (
                    f". rqmc seeds 1-{cov['seeds']}: {cov['within_estimate']}/{cov['seeds']} "
                    "within their error estimate"
                )
        lines.append(f"- {c['name']}: {text}")
    return "\n".join(lines)


def low_r_reference(truth, model):
    tt, mm = as_tuple(truth), as_tuple(model)
    t0 = time.perf_counter()
    if truth.d == 1:
        kl, grad, ukl, ug = scipy_reference_1d(tt, mm)
        method = "scipy quad, breakpoints at every switch"
    else:
        kl, grad, ukl, ug = scipy_reference_2d(tt, mm)
        method = "scipy cubature (adaptive GK21 x GK21)"
    return {
        "kl": kl,
        "grad": grad,
        # the quadrature error estimates, floored at the float64 resolution
        "unc_kl": max(ukl, 1e-15),
        "unc_grad": max(ug, 1e-15),
        "method": method,
        "seconds": time.perf_counter() - t0,
    }


def high_r_reference(truth, model, sg_level, rq_m, rq_reps=16):
    """The finer of a sparse grid and an RQMC rule, and whether the two agree."""
    tt, mm = as_tuple(truth), as_tuple(model)
    t0 = time.perf_counter()
    sg = smolyak_reference(tt, mm, sg_level)
    t1 = time.perf_counter()
    rq = rqmc_reference(tt, mm, rq_m, rq_reps, seed=7)
    t2 = time.perf_counter()
    best = sg if sg[2] <= rq[2] else rq
    return {
        "kl": best[0],
        "grad": best[1],
        "unc_kl": best[2],
        "unc_grad": best[3],
        "method": (
            f"sparse grid L{sg_level} ({sg[4]:,} nodes)"
            if best is sg
            else f"RQMC {rq_reps} x 2^{rq_m} points"
        ),
        "sparse_grid": {
            "level": sg_level,
            "nodes": sg[4],
            "kl": sg[0],
            "unc_kl": sg[2],
            "unc_grad": sg[3],
            "seconds": t1 - t0,
        },
        "rqmc": {
            "points": rq[4],
            "kl": rq[0],
            "unc_kl": rq[2],
            "unc_grad": rq[3],
            "seconds": t2 - t1,
        },
        "agree": bool(
            abs(sg[0] - rq[0]) <= sg[2] + rq[2] and np.max(np.abs(sg[1] - rq[1])) <= sg[3] + rq[3]
        ),
        "seconds": t2 - t0,
    }


def check_2d():
    """Compare the two 2-D references (the nested one takes minutes per case)."""
    for name, _, truth, model in low_r_cases():
        if truth.d != 2:
            continue
        tt, mm = as_tuple(truth), as_tuple(model)
        t0 = time.perf_counter()
        a = scipy_reference_2d(tt, mm)
        t1 = time.perf_counter()
        b = scipy_reference_2d_nested(tt, mm)
        t2 = time.perf_counter()
        print(
            f"{name}: cubature {t1 - t0:.1f} s, nested quad_vec {t2 - t1:.1f} s; "
            f"|dKL| = {abs(a[0] - b[0]):.1e}, max |dgrad| = {np.max(np.abs(a[1] - b[1])):.1e}",
            flush=True,
        )


def defaults_run():
    """``rule='auto'`` with default rtol, atol and max_nodes at r = 6, 8, 10 (no MC)."""
    t_start = time.perf_counter()
    ref_cfg = {"seedA": (8, 14), "sep": (5, 19)}
    lines = [
        "| case | rule | level | nodes | conv. | rules tried | time (s) | first call (s) | "
        "KL err | KL est | grad err | grad est | honest |",
        "|" + "---|" * 13,
    ]
    cases = []
    for name, desc, truth, model in high_r_cases([6, 8, 10]):
        sg_level, rq_m = ref_cfg[name.split("-")[0]]
        if name == "seedA-r10":
            sg_level = 7
        ref = high_r_reference(truth, model, sg_level, rq_m)
        row = evaluate(truth, model, "auto", {}, ref, None, 0, max_repeats=1)
        cases.append(_case(name, desc, truth, model, ref, [row]))
        tried = "+".join(dict.fromkeys(t[0] for t in row["levels_tried"]))
        lines.append(
            f"| {name} | auto→{row['rule_used']} | {row['level']} | {row['nodes']} | "
            f"{'yes' if row['converged'] else 'no'} | {tried} | {row['seconds']:.3g} | "
            f"{row['first_call_seconds']:.3g} | {fmt(row['err_kl'])} | {fmt(row['est_kl'])} | "
            f"{fmt(row['err_grad'])} | {fmt(row['est_grad'])} | {row['honest']} |"
        )
        print(f"[{time.perf_counter() - t_start:6.1f}s] {name} done", flush=True)
    md = "\n".join(lines)
    print(md)
    total = time.perf_counter() - t_start
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "population_defaults.md").write_text(md + f"\n\nTotal run time {total:.0f} s.\n")
    (RESULTS / "population_defaults.json").write_text(
        json.dumps({"total_seconds": total, "cases": cases}, indent=1, default=_jsonable)
    )


#: Wider model spans (q = k - 1 >= 3), beyond the projection reference: estimates only.
SPAN45_WIDE = [(5, 4, 1, 2.0, 1.0), (7, 4, 2, 6.0, 1.0), (8, 5, 1, 2.0, 1.0)]


def span45_run():
    """``rule='auto'`` at default settings for r = 4, 5 against the projection reference."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from projection_reference import SPAN45_CASES, population_reference, span_problem

    t_start = time.perf_counter()
    keys = ("kl", "grad", "em_means")
    lines = [
        "| case | r | (q, q*) | rule | level | nodes | conv. | time (s) | first call (s) | "
        + " | ".join(f"{k} rel err | {k} rel est" for k in keys)
        + " | honest |",
        "|" + "---|" * (10 + 2 * len(keys)),
    ]
    rows = []
    for seed, k, kstar, spread, s in SPAN45_CASES + SPAN45_WIDE:
        problem = span_problem(seed, k, kstar, spread, s)
        mu, pi, _, beta, pistar, sstar = problem
        model = gs.Mixture(mu, weights=pi, sigma=s)
        truth = gs.Mixture(beta, weights=pistar, sigma=sstar)
        pop = gs.population(truth)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            e, seconds, first = timed(lambda pop=pop, model=model: pop.expect(model), 3)
        q = e.quadrature
        try:
            ref = population_reference(*problem)
        except NotImplementedError:
            ref = None
        row = {
            "case": f"seed{seed}-k{k}-kstar{kstar}-spread{spread:g}-s{s:g}",
            "r": q.r,
            "reduced": q.reduced,
            "rule": q.rule,
            "level": q.level,
            "nodes": q.nodes,
            "converged": q.converged,
            "seconds": seconds,
            "first_call_seconds": first,
            "relative_errors_estimated": q.relative_errors,
        }
        cells, honest = [], "no reference (q >= 3)"
        if ref is not None:
            honest = "yes"
            row["relative_errors_actual"] = {}
            for key in keys:
                scale = float(np.max(np.abs(ref[key])))
                if key == "em_means":
                    scale = max(scale, float(np.max(np.abs(mu))))
                actual = float(np.max(np.abs(np.asarray(getattr(e, key)) - ref[key])))
                row["relative_errors_actual"][key] = actual / scale
                bound = q.errors[key] + ref["ref_error"][key] + ROUNDOFF * max(1.0, scale)
                if actual > bound:
                    honest = "NO"
            row["reference_error"] = ref["ref_error"]
        row["honest"] = honest
        for key in keys:
            act = row.get("relative_errors_actual", {}).get(key)
            cells.append(f"{fmt(act) if act is not None else '—'} | {fmt(q.relative_errors[key])}")
        lines.append(
            f"| {row['case']} | {q.r} | {q.reduced} | {q.rule} | {q.level} | {q.nodes} | "
            f"{'yes' if q.converged else 'no'} | {seconds:.3g} | {first:.3g} | "
            + " | ".join(cells)
            + f" | {honest} |"
        )
        rows.append(row)
        print(f"[{time.perf_counter() - t_start:6.1f}s] {row['case']} done", flush=True)
    md = "\n".join(lines)
    print(md)
    total = time.perf_counter() - t_start
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "population_span45.md").write_text(md + f"\n\nTotal run time {total:.0f} s.\n")
    (RESULTS / "population_span45.json").write_text(
        json.dumps({"total_seconds": total, "cases": rows}, indent=1, default=_jsonable)
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a ~1 minute subset")
    parser.add_argument(
        "--check-2d", action="store_true", help="only compare the two 2-D references (slow)"
    )
    parser.add_argument(
        "--defaults",
        action="store_true",
        help="only time rule='auto' with default settings for r = 6, 8, 10 (~5 minutes)",
    )
    parser.add_argument(
        "--span45",
        action="store_true",
        help="only rule='auto' with default settings at r = 4, 5 against the projection "
        "reference (~2 minutes)",
    )
    args = parser.parse_args()
    if args.span45:
        span45_run()
        return
    if args.check_2d:
        check_2d()
        return
    if args.defaults:
        defaults_run()
        return
    t_start = time.perf_counter()
    seeds = 3 if args.quick else 5
    if args.quick:
        low = [c for c in low_r_cases() if c[0] in ("1d-over", "1d-jin", "2d-overlap")]
        high = high_r_cases([6])
        # (sparse-grid level, log2 RQMC points per replicate) of the references
        ref_cfg = {"seedA": (6, 12), "sep": (4, 15)}
    else:
        low = low_r_cases()
        high = high_r_cases([6, 8, 10])
        # sparse-grid references two levels above the levels the tested rules reach
        ref_cfg = {"seedA": (8, 14), "sep": (5, 19)}
    cases = []
    for name, desc, truth, model in low:
        ref = low_r_reference(truth, model)
        mc = MonteCarlo(truth, model)
        gh = {"max_nodes": GH_MAX_POINTS_PER_AXIS**truth.d}
        rows = [
            evaluate(truth, model, "auto", {}, ref, mc, seeds),
            evaluate(truth, model, "gauss-hermite", gh, ref, mc, seeds),
        ]
        cases.append(_case(name, desc, truth, model, ref, rows))
        print(f"[{time.perf_counter() - t_start:6.1f}s] {name} done", flush=True)
    for name, desc, truth, model in high:
        sg_level, rq_m = ref_cfg[name.split("-")[0]]
        if name == "seedA-r10" and not args.quick:
            sg_level = 7  # level 8 would have 81 million nodes
        ref = high_r_reference(truth, model, sg_level, rq_m)
        mc = MonteCarlo(truth, model)
        budget = {"max_nodes": 2**20}
        rows = [
            evaluate(truth, model, "auto", {"rtol": 1e-6, **budget}, ref, mc, seeds),
            evaluate(truth, model, "sparse-grid", {"rtol": 1e-6, **budget}, ref, mc, seeds),
            evaluate(truth, model, "rqmc", {"rtol": 1e-2, **budget}, ref, mc, seeds),
        ]
        cases.append(_case(name, desc, truth, model, ref, rows))
        print(f"[{time.perf_counter() - t_start:6.1f}s] {name} done", flush=True)
    total = time.perf_counter() - t_start
    machine = {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(terse=True),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jax_backend": jax.default_backend(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "gmmscape": gs.__version__,
    }
    md = "\n\n".join(
        [
            "### Cases and references\n\n" + case_table(cases),
            "### Results\n\n" + table(cases),
            "### Goal (r = 6 to 10): honest estimate and better than Monte Carlo at equal "
            "time\n\n" + verdicts(cases),
        ]
    )
    print(md)
    print(f"\ntotal {total:.0f} s")
    RESULTS.mkdir(exist_ok=True)
    stem = "population_accuracy_quick" if args.quick else "population_accuracy"
    (RESULTS / f"{stem}.md").write_text(md + f"\n\nTotal run time {total:.0f} s.\n")
    (RESULTS / f"{stem}.json").write_text(
        json.dumps(
            {"quick": args.quick, "machine": machine, "total_seconds": total, "cases": cases},
            indent=1,
            default=_jsonable,
        )
    )


def _case(name, desc, truth, model, ref, rows):
    return {
        "name": name,
        "description": desc,
        "d": truth.d,
        "k_true": truth.k,
        "k": model.k,
        "truth_means": np.asarray(truth.means),
        "truth_weights": np.asarray(truth.weights),
        "model_means": np.asarray(model.means),
        "model_weights": np.asarray(model.weights),
        "reference": ref,
        "rows": rows,
    }


def _jsonable(x):
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(type(x))


if __name__ == "__main__":
    main()
