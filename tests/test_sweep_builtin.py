"""The ``stream-error`` experiment type against scipy.integrate and sampling theory."""

import numpy as np
import pytest
from scipy import integrate, stats

from gmmscape.sweep.builtin import (
    StreamErrorParams,
    plot_stream_error,
    run_stream_error,
    stream_error_problem,
)


def kl_1d(truth_means, model_means, sigma):
    """KL(truth || model) of 1-D equal-weight mixtures by adaptive quadrature."""
    t, m = np.ravel(truth_means), np.ravel(model_means)

    def p(x):
        return np.mean(stats.norm.pdf(x, t, sigma))

    def q(x):
        return np.mean(stats.norm.pdf(x, m, sigma))

    lo, hi = min(t.min(), m.min()) - 12 * sigma, max(t.max(), m.max()) + 12 * sigma
    val, _ = integrate.quad(
        lambda x: p(x) * np.log(p(x) / q(x)), lo, hi, limit=400, epsabs=1e-13, epsrel=1e-12
    )
    return val


def test_problem_geometry():
    p = StreamErrorParams(n=10, k=3, d=2, separation=2.5, perturbation=0.0, seed=1)
    truth, model = stream_error_problem(p)
    np.testing.assert_allclose(truth.means, [[-2.5, 0], [0, 0], [2.5, 0]])
    np.testing.assert_allclose(model.means, truth.means)  # no perturbation
    p2 = StreamErrorParams(n=10, k=3, d=2, perturbation=0.5, seed=1)
    truth2, model2 = stream_error_problem(p2)
    noise = (np.asarray(model2.means) - np.asarray(truth2.means)) / 0.5
    np.testing.assert_allclose(noise, np.random.default_rng(1).standard_normal((3, 2)))


@pytest.fixture(scope="module")
def cells():
    """Twelve seeds at two sizes in 1-D (shared across tests: compiles once)."""
    out = []
    for n in (1000, 16000):
        for seed in range(12):
            p = StreamErrorParams(n=n, k=2, d=1, separation=3.0, sigma=1.0, seed=seed)
            out.append((p.model_dump(), run_stream_error(p)))
    return out


def test_population_kl_matches_scipy_quad(cells):
    for params, res in cells[:4]:
        p = StreamErrorParams(**params)
        truth, model = stream_error_problem(p)
        ref = kl_1d(truth.means, model.means, p.sigma)
        assert res["kl_population"] == pytest.approx(ref, rel=1e-8, abs=1e-12)
        assert res["quadrature"]["converged"]


def test_errors_are_consistent_with_the_reported_standard_errors(cells):
    z = np.array([r["kl_z"] for _, r in cells])
    gz = np.array([r["grad_z_at_max"] for _, r in cells])
    for _, r in cells:
        assert r["kl_error"] == pytest.approx(r["kl_stream"] - r["kl_population"], abs=1e-15)
    # each z is a standardized sample-mean error: |z| below 4.5 for all 24 cells and
    # the mean of z^2 within the 99.9% range of chi^2_24 / 24
    assert np.all(np.abs(z) < 4.5)
    lo, hi = stats.chi2.ppf([0.0005, 0.9995], df=z.size) / z.size
    assert lo < np.mean(z**2) < hi
    # the largest of k*d = 2 gradient errors: |z| of the worst entry stays moderate
    assert np.all(gz < 5)


def test_errors_shrink_like_one_over_root_n(cells):
    se = {n: np.mean([r["kl_se"] for p, r in cells if p["n"] == n]) for n in (1000, 16000)}
    # reported standard errors scale as n^(-1/2): ratio sqrt(16) = 4 up to sampling noise
    assert se[1000] / se[16000] == pytest.approx(4.0, rel=0.15)


def test_plot_draws_both_figures(cells):
    figs = plot_stream_error(cells)
    assert set(figs) == {"error_vs_n", "z_scores"}
    ax = figs["error_vs_n"].axes[0]
    # one error line and one s.e. line for the single problem, plus the n^(-1/2) guide
    assert len(ax.lines) == 3
    import matplotlib.pyplot as plt

    for f in figs.values():
        plt.close(f)
