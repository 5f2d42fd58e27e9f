"""Tail-exponent fits and the sqrt(t) bound check on synthetic power laws with known answers."""

import numpy as np
import pytest

from gmmscape.dynamics.rates import fit_tail_exponent, sqrt_t_bound


def test_fit_recovers_exponent_of_noisy_power_laws_with_honest_errors():
    t = np.unique(np.round(np.geomspace(1, 1e5, 120)))
    alpha, sigma, hits, n = 1.7, 0.05, 0, 200
    rng = np.random.default_rng(0)
    for _ in range(n):
        y = 3.0 * t**-alpha * np.exp(sigma * rng.standard_normal(t.shape))
        fit = fit_tail_exponent(t, y)
        hits += abs(fit.alpha - alpha) <= 2 * fit.alpha_err
    # 2 standard errors cover ~95%; allow binomial scatter (sd ~ 1.5% of 200)
    assert hits / n > 0.9


def test_fit_is_exact_on_a_pure_power_law_and_reports_its_window():
    t = np.arange(0, 10001)
    y = np.where(t > 0, 0.25 * np.maximum(t, 1) ** -2.0, 1.0)
    fit = fit_tail_exponent(t, y)
    assert fit.alpha == pytest.approx(2.0, abs=1e-10)
    assert np.exp(fit.log_c) == pytest.approx(0.25, rel=1e-8)
    assert fit.t_min == pytest.approx(1000) and fit.t_max == pytest.approx(10000)


def test_drift_covers_a_curved_tail():
    # y = t^-2 (1 + 30 / t): local exponent 2 + 30 / (t + 30), drifting across the window
    t = np.geomspace(1, 1e3, 60)
    fit = fit_tail_exponent(t, t**-2.0 * (1 + 30 / t))
    assert fit.drift > 0
    assert abs(fit.alpha - 2.0) <= 2 * fit.alpha_err


def test_sqrt_t_bound():
    t = np.arange(0, 1001)
    fast = sqrt_t_bound(t, np.where(t > 0, 1.0 / np.maximum(t, 1) ** 2, 5.0))
    assert fast["max_sqrt_t_loss"] == pytest.approx(1.0) and fast["argmax_step"] == 1
    assert fast["eventually_nonincreasing"] and fast["nonincreasing_from"] == 1
    slow = sqrt_t_bound(t, np.where(t > 0, np.maximum(t, 1) ** -0.25, 1.0))
    assert not slow["eventually_nonincreasing"]
    assert slow["max_sqrt_t_loss"] == pytest.approx(1000**0.25)


def test_bad_input():
    with pytest.raises(ValueError, match="at least"):
        fit_tail_exponent([1, 2, 3], [1.0, 0.5, 0.3])
    with pytest.raises(ValueError, match="equal length"):
        fit_tail_exponent([1, 2, 3], [1.0, 0.5])
