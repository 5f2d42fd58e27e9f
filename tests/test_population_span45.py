"""Population expectations in spans of dimension r = 4, 5, in high d, and with k = 50.

The reference is tests/projection_reference.py (numpy and scipy only): the Gaussian
expectations reduced exactly to the span of each mixture's mean differences and
integrated there with adaptive ``scipy.integrate.cubature``. The reduction itself is
checked here against plain Monte Carlo in all coordinates with a confidence interval.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.special import logsumexp

import gmmscape as gs
from gmmscape.core.sources import QuadratureWarning
from projection_reference import SPAN45_CASES, population_reference, span_problem

#: Relative accuracy promised at the default settings for these spans (issue 18, item 7).
RTOL_PROMISE = 1e-8
#: An error estimate is honest if actual <= estimate + reference error + this floor times
#: the quantity's scale (two accurate results cannot agree better than rounding).
HONEST_FLOOR = 1e-13
KEYS = ("nll", "kl", "grad", "mean_shift", "em_means", "em_weights")


def _scale(ref: dict, key: str, mu: np.ndarray) -> float:
    if key == "em_means":  # points: the scale of the coordinates, model means included
        return float(max(np.max(np.abs(ref[key])), np.max(np.abs(mu))))
    return float(np.max(np.abs(ref[key])))


def _check(problem, promise=RTOL_PROMISE):
    mu, pi, s, beta, pistar, sstar = problem
    ref = population_reference(*problem)
    model = gs.Mixture(mu, weights=pi, sigma=s)
    truth = gs.Mixture(beta, weights=pistar, sigma=sstar)
    with warnings.catch_warnings():
        warnings.simplefilter("error", QuadratureWarning)
        e = gs.population(truth).expect(model)
    q = e.quadrature
    assert q.converged and q.r == mu.shape[1]
    for key in KEYS:
        scale = _scale(ref, key, mu)
        actual = float(np.max(np.abs(np.asarray(getattr(e, key)) - ref[key])))
        assert ref["ref_error"][key] <= 0.1 * promise * scale, f"reference too coarse: {key}"
        assert actual <= promise * scale, f"{key}: error {actual:.2e} vs scale {scale:.2e}"
        slack = ref["ref_error"][key] + HONEST_FLOOR * max(1.0, scale)
        assert actual <= q.errors[key] + slack, (
            f"{key}: estimate {q.errors[key]:.2e} < actual {actual:.2e}"
        )
    return e


def test_r4_matches_reference_to_the_promise():
    _check(span_problem(*SPAN45_CASES[0]))


@pytest.mark.slow
@pytest.mark.parametrize(("seed", "k", "kstar", "spread", "s"), SPAN45_CASES[1:])
def test_r45_matches_reference_to_the_promise(seed, k, kstar, spread, s):
    _check(span_problem(seed, k, kstar, spread, s))


def _monte_carlo(problem, n: int, seed: int):
    """Plain Monte Carlo in all d coordinates: KL and E[psi_i (x - mu_i)], with SEs."""
    mu, pi, s, beta, pistar, sstar = problem
    rng = np.random.default_rng(seed)
    labels = rng.choice(len(beta), size=n, p=pistar)
    x = beta[labels] + sstar * rng.normal(size=(n, mu.shape[1]))

    def log_comp(means, w, sd):
        sq = np.sum((x[:, None, :] - means[None]) ** 2, axis=-1)
        return np.log(w) - 0.5 * sq / sd**2 - 0.5 * x.shape[1] * np.log(2 * np.pi * sd**2)

    lc = log_comp(mu, pi, s)
    lp = logsumexp(lc, axis=1)
    lr = logsumexp(log_comp(beta, pistar, sstar), axis=1) - lp
    psi = np.exp(lc - lp[:, None])
    shift = psi[:, :, None] * (x[:, None, :] - mu[None])
    se = lambda v: v.std(axis=0, ddof=1) / np.sqrt(n)  # noqa: E731
    return lr.mean(), se(lr), shift.mean(axis=0), se(shift)


def test_reference_reduction_agrees_with_monte_carlo_in_all_coordinates():
    problem = span_problem(3, k=3, kstar=3, spread=5.0)
    ref = population_reference(*problem)
    kl, kl_se, shift, shift_se = _monte_carlo(problem, 200_000, seed=0)
    assert abs(kl - ref["kl"]) <= 5 * kl_se
    assert np.all(np.abs(shift - ref["mean_shift"]) <= 5 * shift_se + 1e-12)


def test_report_says_when_a_wide_model_span_misses_the_tolerance():
    """k = 5 (a 4-dimensional span of model differences) at a small node budget: the
    result is not presented as converged, and the warning names its figure."""
    mu, pi, s, beta, _, sstar = span_problem(8, k=5, kstar=1, spread=2.0)
    model, truth = gs.Mixture(mu, weights=pi, sigma=s), gs.Mixture(beta, sigma=sstar)
    with pytest.warns(QuadratureWarning, match="did not reach"):
        e = gs.population(truth, max_nodes=2**14).expect(model)
    q = e.quadrature
    assert q.reduced == (4, 0) and not q.converged
    assert q.max_relative_error == max(q.relative_errors.values()) > 1e-10


def _embedded(d: int, seed: int = 4):
    """The same r = 3 geometry (2 true centers, 2 model means) in d dimensions."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(d, 3)))
    beta = np.array([[-2.0, 0.0, 0.0], [2.0, 0.5, 0.0]])
    mu = np.array([[-1.5, 0.3, 0.4], [1.0, -0.2, 0.1]])
    truth = gs.Mixture(beta @ basis.T, weights=[0.4, 0.6], sigma=1.0)
    model = gs.Mixture(mu @ basis.T, weights=[0.3, 0.7], sigma=1.1)
    return truth, model, basis


def test_cost_and_accuracy_do_not_depend_on_d():
    results = {}
    for d in (3, 200):
        truth, model, basis = _embedded(d)
        e = gs.population(truth).expect(model, hessian=True)
        results[d] = (e, basis)
    (e3, q3), (e200, q200) = results[3], results[200]
    assert e3.quadrature.converged and e200.quadrature.converged
    # the same rule, levels and node counts: the work is the same
    strip = [{k: v for k, v in t.items() if k != "rel_error"} for t in e3.quadrature.tried]
    assert strip == [
        {k: v for k, v in t.items() if k != "rel_error"} for t in e200.quadrature.tried
    ]
    assert e3.quadrature.reduced == e200.quadrature.reduced
    # the 197 orthogonal directions add their closed-form terms (model sigma 1.1, true 1)
    perp_nll = 197 * (0.5 * np.log(2 * np.pi * 1.21) + 0.5 / 1.21)
    perp_kl = 197 * (np.log(1.1) + 0.5 / 1.21 - 0.5)
    np.testing.assert_allclose(e200.nll - perp_nll, e3.nll, rtol=1e-12)
    np.testing.assert_allclose(e200.kl - perp_kl, e3.kl, rtol=1e-12)
    for key in ("grad", "em_means", "mean_shift"):  # in the span's coordinates
        a3 = np.asarray(getattr(e3, key)) @ q3
        a200 = np.asarray(getattr(e200, key)) @ q200
        np.testing.assert_allclose(a200, a3, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(e200.em_weights, e3.em_weights, rtol=1e-12)


@pytest.mark.slow
def test_fifty_components_in_the_plane_finish_and_match_monte_carlo():
    """k = k* = 50 in d = 2 (issue 18: did not finish in 200 s; 31 s here)."""
    rng = np.random.default_rng(0)
    beta = rng.uniform(-15.0, 15.0, size=(50, 2))
    mu = beta + rng.normal(scale=0.5, size=(50, 2))
    problem = (mu, np.full(50, 0.02), 1.0, beta, np.full(50, 0.02), 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", QuadratureWarning)
        e = gs.population(gs.Mixture(beta, sigma=1.0)).expect(gs.Mixture(mu, sigma=1.0))
    assert e.quadrature.converged and e.quadrature.max_relative_error <= 1e-10
    kl, kl_se, shift, shift_se = _monte_carlo(problem, 400_000, seed=1)
    assert abs(e.kl - kl) <= 5 * kl_se
    assert np.all(np.abs(e.mean_shift - shift) <= 5 * shift_se + 1e-12)
