"""Population expectations checked against an independent ``scipy.integrate`` reference.

The reference never calls gmmscape: the integrands below are written with numpy from the
definitions in docs/reference.md section 1 and integrated

- in 1-D with :func:`scipy.integrate.quad` (QUADPACK QAGP), one scalar integral per
  returned entry, with break points at every model mean, every true center, every
  pairwise decision boundary of the model and on a grid of width ``min(sigma, sigma*)``;
- in 2-D with :func:`scipy.integrate.cubature` (adaptive Gauss-Kronrod product rule,
  vectorised, per-entry tolerance) on square tiles that each start from a single region.
  ``cubature``'s own ``points=`` argument is not used: in scipy 1.17 the initial regions
  it creates are not heapified, so adaptive refinement can skip the worst region.

Per true component ``j`` every entry is integrated against ``N(beta*_j, sigma*^2 I)``
over a box of ``BOX`` true standard deviations, where the density underflows. The
responsibility masses ``E[psi_i]`` and the shifts ``E[psi_i (x - mu_i)]`` are integrated
after dividing by ``exp(M_ij)``, the (grid) maximum of ``phi*_j psi_i``, so that a
component whose mass is 1e-30 still gets a relative-accuracy EM mean.

The d >> r checks embed a 2-D problem in d dimensions with a random orthonormal frame and
compare with the rotated 2-D reference plus the closed-form orthogonal terms.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pytest
from scipy import integrate, special

import gmmscape as gs

#: Norm-wise tolerance on every population result: max|diff| <= RTOL * max|ref| or ATOL.
RTOL = 1e-10
ATOL = 1e-12
#: Tolerances asked of the 1-D reference (scipy.integrate.quad, per entry).
QUAD_EPSABS = 1e-14
QUAD_EPSREL = 1e-13
QUAD_LIMIT = 5000
#: Tolerances asked of the 2-D reference (scipy.integrate.cubature, per entry and tile).
CUBATURE_ATOL = 1e-14
CUBATURE_RTOL = 1e-13
CUBATURE_MAX_SUBDIVISIONS = 20_000
#: Width of the 2-D tiles, in true standard deviations.
TILE = 5.0
#: The reference's own (pessimistic) error estimate must stay below this fraction of the
#: tolerance of the comparison.
REF_ERROR_FRACTION = 0.5
#: Half-width of the integration box in true standard deviations: phi(40) underflows.
BOX = 40.0
#: An error estimate is honest if actual <= estimate + HONEST_FLOOR * max(1, max|ref|)
#: (two accurate results cannot agree better than rounding).
HONEST_FLOOR = 1e-13
#: Ambient dimensions of the d >> r checks.
BIG_D = 1000


# --------------------------------------------------------------------------------------
# The independent reference
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """A model (mu, pi, s) and a truth (beta, pistar, sstar) as plain numpy arrays."""

    mu: np.ndarray
    pi: np.ndarray
    s: float
    beta: np.ndarray
    pistar: np.ndarray
    sstar: float

    @property
    def k(self) -> int:
        return self.mu.shape[0]

    @property
    def d(self) -> int:
        return self.mu.shape[1]

    def mixtures(self) -> tuple[gs.Mixture, gs.Mixture]:
        model = gs.Mixture(self.mu, weights=self.pi, sigma=self.s)
        truth = gs.Mixture(self.beta, weights=self.pistar, sigma=self.sstar)
        return model, truth


def _log_components(x: np.ndarray, means: np.ndarray, weights: np.ndarray, s: float):
    """``log w_i + log N(x; m_i, s^2 I)`` for points (m, d) and means (k, d): (m, k)."""
    d = x.shape[1]
    sq = np.sum((x[:, None, :] - means[None, :, :]) ** 2, axis=-1)
    with np.errstate(divide="ignore"):
        logw = np.log(weights)
    return logw[None, :] - 0.5 * sq / s**2 - 0.5 * d * np.log(2.0 * np.pi * s**2)


def _layout(k: int, d: int) -> dict[str, slice]:
    """Positions of the integrated entries in one flat vector."""
    sizes = {"nll": 1, "kl": 1, "mass": k, "shift": k * d, "pp": k * k, "hess": (k * d) ** 2}
    out, start = {}, 0
    for key, size in sizes.items():
        out[key] = slice(start, start + size)
        start += size
    out["size"] = start
    return out


def _integrand(p: Problem, j: int, log_scale: np.ndarray):
    """Every integrand under true component ``j``, vectorised over points (m, d)."""
    k, d, s = p.k, p.d, p.s

    def f(x: np.ndarray) -> np.ndarray:
        lc = _log_components(x, p.mu, p.pi, s)
        l = special.logsumexp(lc, axis=1)
        log_psi = lc - l[:, None]
        psi = np.exp(log_psi)
        l_star = special.logsumexp(_log_components(x, p.beta, p.pistar, p.sstar), axis=1)
        log_phi = _log_components(x, p.beta[j : j + 1], np.ones(1), p.sstar)[:, 0]
        phi = np.exp(log_phi)
        diff = x[:, None, :] - p.mu[None, :, :]
        scaled = np.exp(log_phi[:, None] + log_psi - log_scale[None, :])
        shift = scaled[:, :, None] * diff
        g = diff / s**2
        v = (psi[:, :, None] * g).reshape(len(x), k * d)
        h = (v[:, :, None] * v[:, None, :]).reshape(len(x), k, d, k, d)
        eye = np.eye(d)
        for i in range(k):
            h[:, i, :, i, :] += psi[:, i, None, None] * (
                eye / s**2 - g[:, i, :, None] * g[:, i, None, :]
            )
        pp = psi[:, :, None] * psi[:, None, :]
        return np.concatenate(
            [
                (-phi * l)[:, None],
                (phi * (l_star - l))[:, None],
                scaled,
                shift.reshape(len(x), -1),
                pp.reshape(len(x), -1) * phi[:, None],
                h.reshape(len(x), -1) * phi[:, None],
            ],
            axis=1,
        )

    return f


def _box(p: Problem, j: int) -> tuple[np.ndarray, np.ndarray]:
    return p.beta[j] - BOX * p.sstar, p.beta[j] + BOX * p.sstar


def _log_scale(p: Problem, j: int) -> np.ndarray:
    """Grid maximum over the box of ``log phi*_j + log psi_i`` for every component i."""
    lo, hi = _box(p, j)
    step = 0.02 * min(p.s, p.sstar) if p.d == 1 else 0.1 * min(p.s, p.sstar)
    axes = [np.arange(lo[a], hi[a] + step, step) for a in range(p.d)]
    if p.d == 1:
        rows = [axes[0][:, None]]
    else:  # one row of the grid at a time keeps memory small
        rows = [np.column_stack([np.full(len(axes[1]), x0), axes[1]]) for x0 in axes[0]]
    best = np.full(p.k, -np.inf)
    for x in rows:
        lc = _log_components(x, p.mu, p.pi, p.s)
        log_psi = lc - special.logsumexp(lc, axis=1)[:, None]
        log_phi = _log_components(x, p.beta[j : j + 1], np.ones(1), p.sstar)[:, 0]
        best = np.maximum(best, np.max(log_phi[:, None] + log_psi, axis=0))
    return best


def _breaks_1d(p: Problem, lo: float, hi: float) -> np.ndarray:
    """Model means, true centers, decision boundaries and a fine grid, inside (lo, hi)."""
    mu = p.mu[:, 0]
    pts = [*mu, *p.beta[:, 0]]
    for a in range(p.k):
        for b in range(a + 1, p.k):
            if mu[a] != mu[b] and p.pi[a] > 0 and p.pi[b] > 0:
                mid = 0.5 * (mu[a] + mu[b])
                pts.append(mid + p.s**2 * np.log(p.pi[b] / p.pi[a]) / (mu[a] - mu[b]))
    pts.extend(np.arange(lo, hi, min(p.s, p.sstar)))
    pts = np.sort(np.asarray(pts))
    gap = 1e-6 * min(p.s, p.sstar)  # merge near-duplicates (they make QUADPACK give up)
    keep = [lo]
    for x in pts:
        if x - keep[-1] > gap and hi - x > gap:
            keep.append(x)
    return np.asarray(keep[1:])


def _integrate_1d(f, lo: float, hi: float, breaks: np.ndarray, size: int):
    cache: dict[float, np.ndarray] = {}

    def vec(x: float) -> np.ndarray:
        val = cache.get(x)
        if val is None:
            val = f(np.array([[x]]))[0]
            cache[x] = val
        return val

    est, err = np.empty(size), np.empty(size)
    for e in range(size):
        est[e], err[e], _, *msg = integrate.quad(
            lambda x, e=e: vec(x)[e],
            lo,
            hi,
            points=breaks,
            epsabs=QUAD_EPSABS,
            epsrel=QUAD_EPSREL,
            limit=QUAD_LIMIT,
            full_output=1,
        )
        # "Roundoff detected" is accepted: the tolerances ask for the last digits, and the
        # returned error estimate is checked against the test's budget afterwards. Any
        # other failure of QAGP's extrapolation is retried interval by interval.
        if msg and "roundoff" not in msg[0]:
            edges = np.concatenate([[lo], breaks, [hi]])
            parts = [
                integrate.quad(
                    lambda x, e=e: vec(x)[e],
                    a,
                    b,
                    epsabs=QUAD_EPSABS,
                    epsrel=QUAD_EPSREL,
                    limit=QUAD_LIMIT,
                    full_output=1,
                )
                for a, b in itertools.pairwise(edges)
            ]
            bad = [part[3] for part in parts if len(part) > 3 and "roundoff" not in part[3]]
            assert not bad, f"1-D reference failed: {bad[0]}"
            est[e] = sum(part[0] for part in parts)
            err[e] = sum(part[1] for part in parts)
    return est, err


def _integrate_2d(f, lo: np.ndarray, hi: np.ndarray, sstar: float):
    edges = [np.arange(lo[a], hi[a] + 1e-9 * sstar, TILE * sstar) for a in range(2)]
    est = err = 0.0
    for x0, x1 in zip(edges[0][:-1], edges[0][1:], strict=True):
        for y0, y1 in zip(edges[1][:-1], edges[1][1:], strict=True):
            res = integrate.cubature(
                f,
                [x0, y0],
                [x1, y1],
                rtol=CUBATURE_RTOL,
                atol=CUBATURE_ATOL,
                max_subdivisions=CUBATURE_MAX_SUBDIVISIONS,
            )
            assert res.status == "converged", "2-D reference did not converge"
            est = est + res.estimate
            err = err + res.error
    return est, err


def reference(p: Problem) -> dict[str, np.ndarray]:
    """Every population quantity of ``p`` by scipy.integrate, plus the reference's errors.

    Returns nll, kl, grad, em_means, em_weights, mean_shift, hessian, pp (``E[psi psi^T]``)
    and ``ref_error``: per quantity, a bound on the reference's own absolute error.
    """
    k, d = p.k, p.d
    lay = _layout(k, d)
    nll = kl = 0.0
    nll_err = kl_err = 0.0
    pp = np.zeros((k, k))
    hess = np.zeros((k * d, k * d))
    pp_err = hess_err = 0.0
    log_terms = []  # per j: (log weight of the scaled entries, mass_j, shift_j, errors)
    for j in range(len(p.beta)):
        if p.pistar[j] == 0:
            continue
        log_scale = _log_scale(p, j)
        f = _integrand(p, j, log_scale)
        lo, hi = _box(p, j)
        if d == 1:
            est, err = _integrate_1d(f, lo[0], hi[0], _breaks_1d(p, lo[0], hi[0]), lay["size"])
        elif d == 2:
            est, err = _integrate_2d(f, lo, hi, p.sstar)
        else:
            raise NotImplementedError("the reference integrates in 1-D or 2-D")
        w = p.pistar[j]
        nll += w * est[lay["nll"]][0]
        kl += w * est[lay["kl"]][0]
        nll_err += w * err[lay["nll"]][0]
        kl_err += w * err[lay["kl"]][0]
        pp += w * est[lay["pp"]].reshape(k, k)
        pp_err += w * np.max(err[lay["pp"]])
        hess += w * est[lay["hess"]].reshape(k * d, k * d)
        hess_err += w * np.max(err[lay["hess"]])
        mass = est[lay["mass"]]
        shift = est[lay["shift"]].reshape(k, d)
        rel = np.maximum(err[lay["mass"]], err[lay["shift"]].reshape(k, d).max(1))
        log_terms.append((np.log(w) + log_scale, mass, shift, rel))
    logw = np.array([t[0] for t in log_terms])  # (k*, k)
    top = logw.max(axis=0)
    scale = np.exp(logw - top)  # (k*, k), largest entry 1 per component
    mass_n = sum(c * t[1] for c, t in zip(scale, log_terms, strict=True))
    shift_n = sum(c[:, None] * t[2] for c, t in zip(scale, log_terms, strict=True))
    rel_n = sum(c * t[3] for c, t in zip(scale, log_terms, strict=True))
    em_weights = np.exp(top) * mass_n
    mean_shift = np.exp(top)[:, None] * shift_n
    em_means = p.mu + shift_n / mass_n[:, None]
    step = np.abs(shift_n / mass_n[:, None]).max(1)
    em_err = (rel_n / mass_n) * (1.0 + step)
    shift_err = float(np.max(np.exp(top) * rel_n))
    ref_error = {
        "nll": nll_err,
        "kl": kl_err,
        "grad": shift_err / p.s**2,
        "mean_shift": shift_err,
        "em_means": float(np.max(em_err)),
        "em_weights": float(np.max(np.exp(top) * rel_n)),
        "hessian": hess_err,
        "pp": pp_err,
    }
    return {
        "nll": nll,
        "kl": kl,
        "grad": -mean_shift / p.s**2,
        "mean_shift": mean_shift,
        "em_means": em_means,
        "em_weights": em_weights,
        "hessian": hess,
        "pp": pp,
        "ref_error": ref_error,
        "em_scale": float(max(np.max(np.abs(em_means)), np.max(np.abs(p.mu)))),
    }


# --------------------------------------------------------------------------------------
# Problems
# --------------------------------------------------------------------------------------


def random_problem(seed: int, d: int, spread: float) -> Problem:
    """A random model and truth: k, k* in 1..4, centers spread over ``spread`` sigma*.

    Weights are uniform or Dirichlet and the model sigma equals sigma* or not, both
    decided by the seed.
    """
    rng = np.random.default_rng([seed, d, round(10 * spread)])
    k, kstar = rng.integers(1, 5, size=2)
    sstar = float(rng.choice([1.0, 0.5, 2.0]))
    s = sstar if rng.random() < 0.4 else sstar * float(rng.uniform(0.6, 1.6))
    half = 0.5 * spread * sstar
    beta = rng.uniform(-half, half, size=(kstar, d))
    if kstar > 1:  # stretch so that the centers span exactly `spread` along axis 0
        span = np.ptp(beta[:, 0])
        if span > 0:
            beta[:, 0] = (beta[:, 0] - beta[:, 0].mean()) * (2 * half / span)
    mu = rng.uniform(-half, half, size=(k, d)) + rng.normal(scale=0.5 * sstar, size=(k, d))
    pi = np.full(k, 1.0 / k) if rng.random() < 0.5 else rng.dirichlet(np.full(k, 2.0))
    pistar = np.full(kstar, 1.0 / kstar) if rng.random() < 0.5 else rng.dirichlet([2.0] * kstar)
    return Problem(mu, pi, s, beta, pistar, sstar)


#: Fixed 1-D problems that exercise what random draws may miss.
HAND_1D = {
    "overfit-3-vs-2": Problem(
        np.array([[-1.0], [0.5], [3.0]]),
        np.array([0.2, 0.3, 0.5]),
        1.3,
        np.array([[-2.0], [2.0]]),
        np.array([0.5, 0.5]),
        1.0,
    ),
    "20-sigma-tiny-middle": Problem(
        np.array([[-10.0], [0.5], [10.0]]),
        np.array([0.2, 0.3, 0.5]),
        0.7,
        np.array([[-10.0], [10.0]]),
        np.array([0.5, 0.5]),
        1.0,
    ),
    "far-component": Problem(
        np.array([[0.3], [12.0]]),
        np.array([0.6, 0.4]),
        1.0,
        np.array([[0.0]]),
        np.array([1.0]),
        1.0,
    ),
    "seed-a-near-optimum": Problem(
        np.array([[-0.05], [0.05]]),
        np.array([0.5, 0.5]),
        1.0,
        np.array([[0.0]]),
        np.array([1.0]),
        1.0,
    ),
}

HAND_2D = {
    "2d-3-vs-2": Problem(
        np.array([[-1.0, 0.3], [0.5, 1.0], [3.0, -1.0]]),
        np.array([0.2, 0.3, 0.5]),
        1.3,
        np.array([[-2.0, 0.0], [2.0, 1.0]]),
        np.array([0.5, 0.5]),
        1.0,
    ),
    "2d-6-sigma-unequal": Problem(
        np.array([[-3.0, 0.3], [0.5, 3.0], [3.0, -1.0]]),
        np.array([0.2, 0.3, 0.5]),
        0.8,
        np.array([[-3.0, 0.0], [3.0, 1.0]]),
        np.array([0.3, 0.7]),
        1.0,
    ),
}


# --------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------


def _scale(ref: dict, key: str) -> float:
    """Norm of a reference quantity. EM means are points: their scale is that of the
    coordinates (the model means included), not of the result alone, which may be ~0."""
    if key == "em_means":
        return ref["em_scale"]
    return float(np.max(np.abs(ref[key])))


def _assert_close(name: str, got, ref, scale: float | None = None) -> None:
    got, ref = np.asarray(got, dtype=float), np.asarray(ref, dtype=float)
    assert got.shape == ref.shape, f"{name}: shape {got.shape} != reference {ref.shape}"
    diff = float(np.max(np.abs(got - ref)))
    scale = float(np.max(np.abs(ref))) if scale is None else scale
    assert diff <= max(RTOL * scale, ATOL), (
        f"{name}: max|diff| = {diff:.3e} exceeds max({RTOL:g} * {scale:.3e}, {ATOL:g})"
    )


def _assert_reference_accurate(ref: dict) -> None:
    for key, err in ref["ref_error"].items():
        if key == "pp":
            continue
        scale = _scale(ref, key)
        budget = REF_ERROR_FRACTION * max(RTOL * scale, ATOL)
        assert err <= budget, f"reference too coarse for {key}: {err:.3e} > {budget:.3e}"


def _check_expectation(e: gs.Expectation, ref: dict) -> None:
    _assert_close("nll", e.nll, ref["nll"])
    _assert_close("kl", e.kl, ref["kl"])
    _assert_close("grad", e.grad, ref["grad"])
    _assert_close("mean_shift", e.mean_shift, ref["mean_shift"])
    _assert_close("em_means", e.em_means, ref["em_means"], _scale(ref, "em_means"))
    _assert_close("em_weights", e.em_weights, ref["em_weights"])
    _assert_close("hessian", e.hessian, ref["hessian"])


def _check_honest(e: gs.Expectation, ref: dict) -> None:
    """Each reported error estimate bounds the actual error, up to rounding and up to the
    reference's own error estimate."""
    report = e.quadrature
    assert report is not None and report.converged
    for key, est in report.errors.items():
        got = np.asarray(getattr(e, key), dtype=float)
        actual = float(np.max(np.abs(got - ref[key])))
        floor = HONEST_FLOOR * max(1.0, _scale(ref, key))
        slack = floor + ref["ref_error"][key]
        assert actual <= est + slack, (
            f"quadrature.errors[{key!r}] = {est:.3e} but the actual error is {actual:.3e} "
            f"(rule {report.rule}, level {report.level}, {report.nodes} nodes, radius "
            f"{report.tried[-1]['radius']}, smallest mass {np.min(e.em_weights):.3e})"
        )


_RESULTS: dict[str, tuple[dict, gs.Expectation]] = {}


def _results(name: str, p: Problem) -> tuple[dict, gs.Expectation]:
    """The reference and gmmscape's Expectation for ``p``, computed once per name."""
    if name not in _RESULTS:
        ref = reference(p)
        _assert_reference_accurate(ref)
        model, truth = p.mixtures()
        _RESULTS[name] = (ref, gs.population(truth).expect(model, hessian=True))
    return _RESULTS[name]


# --------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------


def _random_cases(d: int, seeds, spreads) -> dict[str, Problem]:
    return {
        f"random-{d}d-seed{seed}-spread{spread:g}": random_problem(seed, d, spread)
        for seed in seeds
        for spread in spreads
    }


FAST_CASES: dict[str, Problem] = {
    **HAND_1D,
    **_random_cases(1, [1], [2.0]),
    **_random_cases(1, [2], [6.0]),
    **_random_cases(1, [3], [12.0]),
    **_random_cases(1, [4], [20.0]),
    **HAND_2D,
    **_random_cases(2, [11], [5.0]),
}

SLOW_CASES: dict[str, Problem] = {
    **_random_cases(1, range(100, 120), [1.0, 4.0, 10.0, 20.0]),
    **_random_cases(2, range(200, 206), [3.0, 8.0]),
    **_random_cases(2, range(300, 303), [20.0]),
}

# --------------------------------------------------------------------------------------
# Fast tests
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(FAST_CASES))
def test_matches_reference(name):
    ref, e = _results(name, FAST_CASES[name])
    _check_expectation(e, ref)


@pytest.mark.parametrize("name", list(FAST_CASES))
def test_error_estimates_are_honest(name):
    ref, e = _results(name, FAST_CASES[name])
    _check_honest(e, ref)


def test_source_methods_match_quad():
    """kl, nll, grad, hessian, em_step and gradient_em_step agree with the reference."""
    p = HAND_1D["overfit-3-vs-2"]
    ref = reference(p)
    model, truth = p.mixtures()
    pop = gs.population(truth)
    _assert_close("kl()", pop.kl(model), ref["kl"])
    _assert_close("nll()", pop.nll(model), ref["nll"])
    _assert_close("grad()", pop.grad(model), ref["grad"])
    _assert_close("hessian()", pop.hessian(model), ref["hessian"])
    fixed = pop.em_step(model)
    _assert_close("em_step means", fixed.means, ref["em_means"])
    _assert_close("em_step weights", fixed.weights, p.pi)
    free = pop.em_step(model, update_weights=True)
    _assert_close("em_step(update_weights) weights", free.weights, ref["em_weights"])
    eta = 0.7
    step = pop.gradient_em_step(model, eta)
    _assert_close("gradient_em_step", step.means, p.mu + eta * ref["mean_shift"])
    assert float(step.sigma) == p.s


def test_reference_is_rotation_invariant():
    """Test of the test: the 2-D reference of a collinear problem equals the 1-D one."""
    p1 = HAND_1D["overfit-3-vs-2"]
    angle = 0.7
    u = np.array([np.cos(angle), np.sin(angle)])
    offset = np.array([0.4, -0.9])
    p2 = Problem(
        offset + p1.mu * u,
        p1.pi,
        p1.s,
        offset + p1.beta * u,
        p1.pistar,
        p1.sstar,
    )
    r1, r2 = reference(p1), reference(p2)
    _assert_close(
        "nll 2-D vs 1-D",
        r2["nll"],
        r1["nll"] + 0.5 * np.log(2 * np.pi * p1.s**2) + (0.5 * p1.sstar**2 / p1.s**2),
    )
    _assert_close(
        "kl 2-D vs 1-D",
        r2["kl"],
        r1["kl"] + np.log(p1.s / p1.sstar) + (0.5 * p1.sstar**2 / p1.s**2 - 0.5),
    )
    _assert_close("grad 2-D vs 1-D", r2["grad"], r1["grad"] * u)
    _assert_close("em 2-D vs 1-D", r2["em_means"], offset + (r1["em_means"] - 0.0) * u)


# --------------------------------------------------------------------------------------
# d >> r: the reduction to the span and the closed-form orthogonal terms
# --------------------------------------------------------------------------------------


def _embed(p: Problem, d: int, seed: int) -> tuple[Problem, np.ndarray, np.ndarray]:
    """Embed a 2-D problem in d dimensions: x = c + Q z with Q (d, 2) orthonormal."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(d, p.d)))
    c = rng.normal(size=d)
    big = Problem(c + p.mu @ q.T, p.pi, p.s, c + p.beta @ q.T, p.pistar, p.sstar)
    return big, q, c


def _embedded_reference(p: Problem, q: np.ndarray, c: np.ndarray, d: int) -> dict:
    ref = reference(p)
    k, r = p.k, p.d
    s2, t2 = p.s**2, p.sstar**2
    n_perp = d - r
    nll_perp = n_perp * (0.5 * np.log(2 * np.pi * s2) + 0.5 * t2 / s2)
    kl_perp = n_perp * (np.log(p.s / p.sstar) + 0.5 * t2 / s2 - 0.5)
    out = {
        "nll": ref["nll"] + nll_perp,
        "kl": ref["kl"] + kl_perp,
        "span": {"nll": ref["nll"], "kl": ref["kl"], "nll_perp": nll_perp, "kl_perp": kl_perp},
        "grad": ref["grad"] @ q.T,
        "mean_shift": ref["mean_shift"] @ q.T,
        "em_means": c + ref["em_means"] @ q.T,
        "em_weights": ref["em_weights"],
    }
    # On directions u orthogonal to the span, g_i . u = w / s^2 with w ~ N(0, t2)
    # independent of psi: H_ij(u, u) = t2 / s^4 (E[psi_i psi_j] - delta_ij E[psi_i])
    # + delta_ij E[psi_i] / s^2, and mixed span/orthogonal terms vanish.
    mass = ref["em_weights"]
    perp = t2 / s2**2 * (ref["pp"] - np.diag(mass)) + np.diag(mass) / s2
    h_span = np.einsum("ua,iajb,vb->iujv", q, ref["hessian"].reshape(k, r, k, r), q)
    p_perp = np.eye(d) - q @ q.T
    out["hessian"] = (h_span + perp[:, None, :, None] * p_perp[None, :, None, :]).reshape(
        k * d, k * d
    )
    out["perp_block"] = perp
    out["ref_error"] = ref["ref_error"]
    out["em_scale"] = float(max(np.max(np.abs(out["em_means"])), np.max(np.abs(c + p.mu @ q.T))))
    return out


BIG_PROBLEMS = {
    # k = 2 model means and k* = 1 true center: r = 2.
    "k2-kstar1": Problem(
        np.array([[1.0, 0.5], [-0.8, -1.2]]),
        np.array([0.35, 0.65]),
        1.2,
        np.array([[0.0, 0.0]]),
        np.array([1.0]),
        1.0,
    ),
    # k = 1, k* = 2: r = 2; sigma equal, so the orthogonal KL term vanishes.
    "k1-kstar2": Problem(
        np.array([[0.7, 1.5]]),
        np.array([1.0]),
        1.0,
        np.array([[-2.0, 0.0], [2.0, 0.5]]),
        np.array([0.4, 0.6]),
        1.0,
    ),
}


@pytest.mark.parametrize("name", sorted(BIG_PROBLEMS))
def test_high_dimension_matches_rotated_reference(name):
    p = BIG_PROBLEMS[name]
    big, q, c = _embed(p, BIG_D, seed=5)
    ref = _embedded_reference(p, q, c, BIG_D)
    model, truth = big.mixtures()
    e = gs.population(truth).expect(model, hessian=True)
    assert e.quadrature.r == 2
    _check_expectation(e, ref)
    # Tighter than relative to the d-dimensional totals: the span parts on their own.
    span = ref["span"]
    _assert_close("nll minus orthogonal part", e.nll - span["nll_perp"], span["nll"])
    _assert_close("kl minus orthogonal part", e.kl - span["kl_perp"], span["kl"])
    # The orthogonal block on its own: u^T H_ij u for a unit u orthogonal to the span.
    rng = np.random.default_rng(7)
    u = rng.normal(size=BIG_D)
    u -= q @ (q.T @ u)
    u /= np.linalg.norm(u)
    h4 = e.hessian.reshape(p.k, BIG_D, p.k, BIG_D)
    block = np.einsum("a,iajb,b->ij", u, h4, u)
    _assert_close("orthogonal Hessian block", block, ref["perp_block"])
    mixed = np.einsum("a,iajb,bc->ijc", u, h4, q)
    assert np.max(np.abs(mixed)) <= ATOL, "span/orthogonal Hessian cross terms must vanish"


# --------------------------------------------------------------------------------------
# Slow tests
# --------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SLOW_CASES))
def test_matches_reference_slow(name):
    ref, e = _results(name, SLOW_CASES[name])
    _check_expectation(e, ref)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SLOW_CASES))
def test_error_estimates_are_honest_slow(name):
    ref, e = _results(name, SLOW_CASES[name])
    _check_honest(e, ref)


def random_span2_problem(seed: int) -> Problem:
    """A random 2-D problem with k + k* = 3 (so r = 2), unequal weights and sigmas."""
    rng = np.random.default_rng([seed, 2024])
    k = int(rng.integers(1, 3))
    kstar = 3 - k
    return Problem(
        rng.uniform(-3.0, 3.0, size=(k, 2)),
        rng.dirichlet(np.full(k, 2.0)),
        float(rng.uniform(0.7, 1.5)),
        rng.uniform(-3.0, 3.0, size=(kstar, 2)),
        rng.dirichlet(np.full(kstar, 2.0)),
        float(rng.choice([0.8, 1.0, 1.3])),
    )


@pytest.mark.slow
@pytest.mark.parametrize("d", [200, 1000])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_high_dimension_random(d, seed):
    """Random r = 2 problems (k + k* = 3) embedded in d dimensions."""
    p = random_span2_problem(seed)
    big, q, c = _embed(p, d, seed=seed)
    ref = _embedded_reference(p, q, c, d)
    _assert_reference_accurate(ref)
    model, truth = big.mixtures()
    _check_expectation(gs.population(truth).expect(model, hessian=True), ref)
