"""The sources serve both halves: a mixture of any covariance family under a sample, a
stream and the population (quadrature) of an isotropic truth, through the one
``Source.family_stats`` and the one ``core.updates.m_step``."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gmmscape as gs
from gmmscape.core import families
from gmmscape.core.mixture import Masks, Params
from gmmscape.core.sources import stream_points
from gmmscape.core.updates import m_step

TRUTH = gs.Mixture([[-2.0, 0.0], [2.0, 0.5]], weights=[0.4, 0.6], sigma=1.0)
COVS = np.array([[[1.5, 0.3], [0.3, 0.8]], [[0.9, -0.2], [-0.2, 1.2]]])


def full_start():
    fam = families.get("full")
    cov, pf, _ = fam.factor(jnp.asarray(COVS), np.full(2, 1e-12))
    return Params(jnp.asarray([0.5, 0.5]), jnp.asarray([[-1.0, 0.3], [1.5, -0.2]]), cov, pf)


def em_step(stats, params):
    ones = jnp.ones(2)
    new, _ = m_step(stats, params, Masks(ones, ones, ones), 0.0, np.full(2, 1e-12), 1.0, "full",
                    "em")  # fmt: skip
    return np.concatenate([np.ravel(a) for a in (new.weights, new.means, new.covariances)])


def test_population_em_of_a_full_model_equals_stream_em_within_standard_errors():
    # population EM (Gauss-Hermite quadrature in all coordinates) against EM on ten
    # independent 1e5-point streams (1e6 points): the mean of the stream steps is within
    # 5 standard errors of the population step in every coordinate
    params = full_start()
    pop = gs.population(TRUTH).family_stats(params, "full")
    assert float(pop.w) == pytest.approx(1.0, abs=1e-12)
    exact = em_step(pop, params)
    steps = np.array(
        [em_step(gs.stream(TRUTH, 100_000, seed).family_stats(params, "full"), params)
         for seed in range(10)]
    )  # fmt: skip
    mean, se = steps.mean(0), steps.std(0, ddof=1) / np.sqrt(len(steps))
    assert np.all(se < 5e-3)  # the check has power: 1e6 points pin each value to ~1e-3
    np.testing.assert_array_less(np.abs(mean - exact), 5 * se + 1e-12)


def test_sample_and_stream_family_stats_agree_on_the_same_points():
    # the stream's points, held as a sample, give the same statistics (one E-step, two
    # sources)
    params = full_start()
    st = gs.stream(TRUTH, 5000, 3, chunk_size=1024)

    xc, wc = stream_points(jax.random.key(3), 5000, TRUTH, n_chunks=5, chunk=1024)
    keep = np.asarray(wc).ravel() > 0
    X = np.asarray(xc).reshape(-1, 2)[keep]
    a = st.family_stats(params, "full")
    b = gs.sample(X).family_stats(params, "full")
    for f in ("w", "ll", "r0", "r1", "s2"):
        np.testing.assert_allclose(getattr(b, f), getattr(a, f), rtol=1e-10, atol=1e-10)


@pytest.mark.slow
def test_population_log_likelihood_of_a_full_model_equals_scipy_dblquad():
    # E_truth[log p_model(x)] for the full-covariance model, by adaptive 2-D quadrature
    from scipy import integrate
    from scipy.stats import multivariate_normal

    params = full_start()
    means, w = np.asarray(params.means), np.asarray(params.weights)

    def integrand(y, x):
        pt = np.array([x, y])
        truth = sum(
            pi * multivariate_normal(m, np.eye(2)).pdf(pt)
            for pi, m in zip([0.4, 0.6], [[-2.0, 0.0], [2.0, 0.5]], strict=True)
        )
        model = sum(
            wi * multivariate_normal(m, c).pdf(pt) for wi, m, c in zip(w, means, COVS, strict=True)
        )
        return truth * np.log(model)

    ref, err = integrate.dblquad(integrand, -10, 10, -9.5, 10.5, epsabs=1e-11, epsrel=1e-11)
    pop = gs.population(TRUTH).family_stats(params, "full")
    assert float(pop.ll) == pytest.approx(ref, rel=1e-8, abs=10 * err)


def test_family_stats_checks_its_params():
    with pytest.raises(ValueError, match="params must be"):
        gs.sample(np.zeros((4, 2))).family_stats(TRUTH, "full")
    bad = full_start()._replace(means=jnp.zeros((2, 3)))
    with pytest.raises(ValueError, match="dimension d=3"):
        gs.population(TRUTH).family_stats(bad, "full")
