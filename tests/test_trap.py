"""Traps: escape-time mechanics, the quadrature at the trap start, the R^2 fit."""

import numpy as np
import pytest

from gmmscape.experiments.trap import fit_escape, heuristic_steps, trap, trap_start


def test_fit_escape_recovers_c_from_synthetic_times():
    rng = np.random.default_rng(1)
    R = np.linspace(3, 10, 8)
    c_hits = 0
    for _ in range(100):
        steps = np.exp(1.0 + 0.125 * R**2 + 0.05 * rng.standard_normal(8))
        f = fit_escape(R, steps)
        c_hits += abs(f["c"] - 0.125) <= 2 * f["c_se"]
    assert c_hits >= 85
    exact = fit_escape(R, 4 * np.exp(R**2 / 8) / R)
    assert exact["c_corrected"] == pytest.approx(0.125, abs=1e-12)


def test_escape_grows_with_r_and_follows_the_heuristic():
    res = trap((3.0, 4.0, 5.0, 6.0), max_steps=10**4)
    steps = np.array(res.steps)
    assert not any(res.censored) and np.all(np.diff(steps) > 0)
    # the fixed nodes at the trap start agree with the adaptive source
    chk = res.quadrature[0]["start_check"]
    assert chk["max_rel_error_mean_shift"] < 1e-8 and chk["max_rel_error_mass"] < 1e-8
    # far mass at the start ~ P(z > R/2): within a factor 2 (the switch is smooth)
    from scipy.stats import norm

    ratio = np.array(res.far_mass) / norm.sf(np.array(res.R) / 2)
    assert np.all((ratio > 0.5) & (ratio < 2.0))
    # the asymptotic heuristic is within a factor 2 once R >= 5
    ratio = steps[2:] / heuristic_steps(res.R, 1.0)[2:]
    assert np.all((ratio > 0.5) & (ratio < 2.0))
    assert res.fit is not None and res.fit["c"] > 0
    assert "1/8" in res.comparison


def test_censoring_and_modes():
    res = trap((3.0, 7.0), max_steps=50)
    assert res.censored == [False, True] and res.steps[1] == 50
    assert res.fit is None and "Fewer than two" in res.comparison
    means, far = trap_start(4.0, 4, 2, mode="several", n_far=3)
    assert far == [0, 1, 2]
    np.testing.assert_allclose(np.linalg.norm(means[:3], axis=1), 4.0)
    sev = trap((3.0, 4.0), n_components=3, mode="several", n_far=2, max_steps=10**4)
    assert sev.steps[0] < sev.steps[1]
    dim = trap(mode="dimension", dims=(4, 9), c_scale=1.5, max_steps=10**4)
    assert dim.R == pytest.approx([3.0, 4.5]) and dim.steps[0] < dim.steps[1]


def test_bad_input():
    with pytest.raises(ValueError, match="n_components"):
        trap((3.0,), n_components=1)
    with pytest.raises(ValueError, match="mode"):
        trap((3.0,), mode="sideways")
    with pytest.raises(ValueError, match="eta"):
        trap((3.0,), eta=-1.0)
    with pytest.raises(ValueError, match="escape_fraction"):
        trap((3.0,), escape_fraction=1.5)
    with pytest.raises(ValueError, match="n_far"):
        trap_start(3.0, 2, 1, mode="several", n_far=2)
