"""Missing values (``missing="em"``) against independent references.

* a plain NumPy E/M step (row by row on the observed coordinates, ``numpy.linalg``);
* the observed-data log-likelihood never decreases under EM (hypothesis, random patterns);
* ``score_samples`` against scipy.stats' marginal mixture density;
* ``impute`` against the closed-form conditional Gaussian and a Monte Carlo check;
* (slow) MCAR removal from a known mixture at N = 1e5: the truth within Monte Carlo
  error, and better than complete-case analysis and mean imputation.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hst
from scipy.stats import multivariate_normal

from gmmscape import GaussianMixture

#: Agreement of the JAX E/M step with the NumPy reference (float64).
EXACT = 1e-10


def _mixture(rng, k=3, d=3):
    a = rng.normal(size=(k, d, d)) * 0.5
    cov = a @ np.swapaxes(a, 1, 2) + 0.5 * np.eye(d)
    means = rng.normal(size=(k, d)) * 2.5
    weights = rng.dirichlet(np.full(k, 4.0))
    return weights, means, cov


def _draw(rng, n, weights, means, cov):
    z = rng.choice(len(weights), size=n, p=weights)
    x = np.stack([rng.multivariate_normal(means[j], cov[j]) for j in z])
    return x, z


def _holes(rng, X, rate):
    """MCAR holes, keeping at least one observed entry per row."""
    X = X.copy()
    miss = rng.uniform(size=X.shape) < rate
    miss[miss.all(axis=1), 0] = False
    X[miss] = np.nan
    return X


def _family_cov(ct, cov):
    """The family's covariance storage of full matrices ``cov`` (k, d, d)."""
    if ct == "full":
        return cov
    if ct == "tied":
        return cov.mean(axis=0)
    if ct in ("diag", "EEI"):
        dg = np.diagonal(cov, axis1=1, axis2=2)
        return dg if ct == "diag" else np.broadcast_to(dg.mean(0), dg.shape).copy()
    tr = np.trace(cov, axis1=1, axis2=2) / cov.shape[1]
    return tr if ct == "spherical" else np.full_like(tr, tr.mean())


def _as_full(ct, c, k, d):
    if ct == "tied":
        return np.broadcast_to(c, (k, d, d))
    if c.ndim == 3:
        return c
    if c.ndim == 2:
        return np.stack([np.diag(v) for v in c])
    return c[:, None, None] * np.eye(d)


def _numpy_em_step(X, w, weights, means, cov_full, ct, reg):
    """One EM step with missing values, row by row in NumPy (the reference).

    Returns the observed-data mean log-likelihood at the input parameters and the
    updated weights, means and covariances (in ``ct``'s closed-form M-step).
    """
    n, d = X.shape
    k = len(weights)
    nk, s1, s2 = np.zeros(k), np.zeros((k, d)), np.zeros((k, d, d))
    ll = 0.0
    for i in range(n):
        o = ~np.isnan(X[i])
        m = ~o
        logp = np.empty(k)
        xh = np.empty((k, d))
        qs = np.zeros((k, d, d))
        for j in range(k):
            S = cov_full[j]
            soo = S[np.ix_(o, o)]
            diff = X[i, o] - means[j, o]
            sol = np.linalg.solve(soo, diff)
            _, logdet = np.linalg.slogdet(soo)
            logp[j] = np.log(weights[j]) - 0.5 * (o.sum() * np.log(2 * np.pi) + logdet + diff @ sol)
            xh[j, o] = X[i, o]
            xh[j, m] = means[j, m] + S[np.ix_(m, o)] @ sol
            qs[j][np.ix_(m, m)] = S[np.ix_(m, m)] - S[np.ix_(m, o)] @ np.linalg.solve(
                soo, S[np.ix_(o, m)]
            )
        top = logp.max()
        lse = top + np.log(np.exp(logp - top).sum())
        r = np.exp(logp - lse)
        ll += w[i] * lse
        for j in range(k):
            nk[j] += w[i] * r[j]
            s1[j] += w[i] * r[j] * xh[j]
            s2[j] += w[i] * r[j] * (np.outer(xh[j], xh[j]) + qs[j])
    W = w.sum()
    new_w = nk / nk.sum()
    mu = s1 / nk[:, None]
    scat = s2 - nk[:, None, None] * np.einsum("ka,kb->kab", mu, mu)  # W_k
    if ct == "full":
        cov = scat / nk[:, None, None] + reg * np.eye(d)
    elif ct == "tied":
        cov = scat.sum(0) / W + reg * np.eye(d)
    elif ct == "diag":
        cov = np.diagonal(scat, axis1=1, axis2=2) / nk[:, None] + reg
    elif ct == "spherical":
        cov = np.trace(scat, axis1=1, axis2=2) / (d * nk) + reg
    elif ct == "EEI":
        cov = np.broadcast_to(np.diagonal(scat, axis1=1, axis2=2).sum(0) / W + reg, (k, d))
    else:  # EII
        cov = np.full(k, np.trace(scat.sum(0)) / (d * W) + reg)
    return ll / W, new_w, mu, cov


def _precisions(ct, c):
    if ct == "tied" or c.ndim == 3:
        return np.linalg.inv(c)
    return 1.0 / c


SLOW = pytest.mark.slow


@pytest.mark.parametrize(
    "ct",
    ["full", "diag", *(pytest.param(c, marks=SLOW) for c in ("tied", "spherical", "EEI", "EII"))],
)
def test_one_em_step_equals_numpy_reference(ct):
    rng = np.random.default_rng(1)
    k, d, n = 3, 4, 40
    weights, means, cov = _mixture(rng, k, d)
    X = _holes(rng, _draw(rng, n, weights, means, cov)[0], 0.35)
    w = rng.uniform(0.2, 2.0, size=n)
    c0 = _family_cov(ct, cov)
    reg = 1e-6
    gm = GaussianMixture(
        k, covariance_type=ct, missing="em", max_iter=1, tol=0.0, reg_covar=reg,
        weights_init=weights, means_init=means, precisions_init=_precisions(ct, c0),
    )  # fmt: skip
    with pytest.warns(Warning):  # one iteration does not converge
        gm.fit(X, sample_weight=w)
    ll, new_w, mu, new_c = _numpy_em_step(X, w, weights, means, _as_full(ct, c0, k, d), ct, reg)
    np.testing.assert_allclose(gm.lower_bounds_[0], ll, rtol=0, atol=EXACT)
    np.testing.assert_allclose(gm.weights_, new_w, rtol=0, atol=EXACT)
    np.testing.assert_allclose(gm.means_, mu, rtol=0, atol=EXACT)
    np.testing.assert_allclose(gm.covariances_, new_c, rtol=0, atol=EXACT)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=hst.integers(0, 2**31 - 1), rate=hst.floats(0.05, 0.6))
def test_observed_loglik_never_decreases(seed, rate):
    rng = np.random.default_rng(seed)
    weights, means, cov = _mixture(rng, 2, 3)
    X = _holes(rng, _draw(rng, 60, weights, means, cov)[0], rate)
    gm = GaussianMixture(2, missing="em", max_iter=25, tol=0.0, chunk_size=8, random_state=0)
    with pytest.warns(Warning):
        gm.fit(X)
    lb = np.asarray(gm.lower_bounds_)
    assert np.all(np.diff(lb) >= -1e-9 * np.abs(lb[1:])), np.diff(lb).min()


@pytest.mark.parametrize("ct", ["full", pytest.param("diag", marks=SLOW)])
def test_score_samples_is_scipy_marginal_density(ct):
    rng = np.random.default_rng(2)
    k, d = 3, 4
    weights, means, cov = _mixture(rng, k, d)
    X = _draw(rng, 300, weights, means, cov)[0]
    gm = GaussianMixture(k, covariance_type=ct, random_state=0).fit(X)
    gm.set_params(missing="em")
    Xm = _holes(rng, X[:50], 0.4)
    cf = _as_full(ct, gm.covariances_, k, d)
    ref = np.empty(len(Xm))
    parts = np.empty((len(Xm), k))
    for i, x in enumerate(Xm):
        o = ~np.isnan(x)
        for j in range(k):
            parts[i, j] = gm.weights_[j] * multivariate_normal(
                gm.means_[j, o], cf[j][np.ix_(o, o)]
            ).pdf(x[o])
        ref[i] = np.log(parts[i].sum())
    np.testing.assert_allclose(gm.score_samples(Xm), ref, rtol=1e-10)
    np.testing.assert_allclose(gm.predict_proba(Xm), parts / parts.sum(1)[:, None], atol=1e-10)
    np.testing.assert_array_equal(gm.predict(Xm), parts.argmax(1))
    assert gm.score(Xm) == pytest.approx(ref.mean(), rel=1e-10)


def test_impute_is_the_conditional_gaussian():
    rng = np.random.default_rng(3)
    d = 3
    _, means, cov = _mixture(rng, 1, d)
    X = _draw(rng, 500, np.ones(1), means, cov)[0]
    gm = GaussianMixture(1, random_state=0).fit(X)
    mu, S = gm.means_[0], gm.covariances_[0]
    row = np.array([[0.3, np.nan, np.nan]])
    o, m = np.array([0]), np.array([1, 2])
    cond_mean = mu[m] + S[np.ix_(m, o)] @ np.linalg.solve(S[np.ix_(o, o)], row[0, o] - mu[o])
    cond_cov = S[np.ix_(m, m)] - S[np.ix_(m, o)] @ np.linalg.solve(S[np.ix_(o, o)], S[np.ix_(o, m)])
    out = gm.impute(row)
    assert out[0, 0] == 0.3
    np.testing.assert_allclose(out[0, m], cond_mean, rtol=1e-10)
    n_draws = 4000
    draws = gm.impute(row, n_draws=n_draws, random_state=0)[:, 0]
    assert np.all(draws[:, 0] == 0.3)
    # Monte Carlo: the draws' mean within 4.5 standard errors, covariance within 10%
    se = np.sqrt(np.diag(cond_cov) / n_draws)
    assert np.all(np.abs(draws[:, m].mean(0) - cond_mean) < 4.5 * se)
    np.testing.assert_allclose(np.cov(draws[:, m].T), cond_cov, rtol=0.1, atol=0.02)
    np.testing.assert_array_equal(gm.impute(X[:5]), X[:5])  # complete rows unchanged


def test_mixture_imputation_weights_components_by_responsibility():
    rng = np.random.default_rng(4)
    k = 2
    X = _draw(rng, 400, *_mixture(rng, k, 2))[0]
    gm = GaussianMixture(k, random_state=0).fit(X)
    mu, S = gm.means_, gm.covariances_
    parts = np.array(
        [gm.weights_[j] * multivariate_normal(mu[j, 1], S[j, 1, 1]).pdf(0.7) for j in range(k)]
    )
    cond = mu[:, 0] + S[:, 0, 1] / S[:, 1, 1] * (0.7 - mu[:, 1])
    out = gm.impute(np.array([[np.nan, 0.7]]))
    np.testing.assert_allclose(out[0, 0], parts @ cond / parts.sum(), rtol=1e-10)


def test_complete_data_takes_the_usual_path():
    rng = np.random.default_rng(5)
    X = _draw(rng, 200, *_mixture(rng, 2, 3))[0]
    a = GaussianMixture(2, random_state=0).fit(X)
    b = GaussianMixture(2, random_state=0, missing="em").fit(X)
    np.testing.assert_array_equal(a.means_, b.means_)
    np.testing.assert_array_equal(a.covariances_, b.covariances_)
    np.testing.assert_array_equal(a.score_samples(X), b.score_samples(X))


def test_nan_is_refused_by_default_and_empty_rows_are_named():
    X = np.random.default_rng(6).normal(size=(30, 3))
    X[4, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        GaussianMixture(2).fit(X)
    X[[7, 11]] = np.nan
    with pytest.raises(ValueError, match=r"every entry missing.*row\(s\) 7, 11"):
        GaussianMixture(2, missing="em").fit(X)
    gm = GaussianMixture(2, missing="em", random_state=0).fit(np.delete(X, [7, 11], axis=0))
    with pytest.raises(ValueError, match=r"row\(s\) 7, 11"):
        gm.score_samples(X)
    with pytest.raises(ValueError, match="refine"):
        GaussianMixture(2, missing="em", refine=True).fit(X[:5].repeat(3, 0))


def _family_run(ct):
    """Missing-data EM of family ``ct``: the log-likelihood rises, and rows of weight 0
    change nothing (the same fit, from the same start, without them)."""
    rng = np.random.default_rng(7)
    X = _holes(rng, _draw(rng, 80, *_mixture(rng, 2, 3))[0], 0.3)
    w = np.ones(len(X))
    w[:16] = 0.0
    kw = dict(covariance_type=ct, missing="em", max_iter=6, tol=0.0, random_state=0)
    with pytest.warns(Warning):
        start = GaussianMixture(2, **kw).fit(X, sample_weight=w)
    lb = np.asarray(start.lower_bounds_)
    assert np.all(np.diff(lb) >= -1e-9 * np.abs(lb[1:])), ct
    init = dict(
        weights_init=start.weights_, means_init=start.means_, precisions_init=start.precisions_
    )
    with pytest.warns(Warning):
        a = GaussianMixture(2, **kw, **init).fit(X, sample_weight=w)
    with pytest.warns(Warning):
        b = GaussianMixture(2, **kw, **init).fit(X[16:])
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(a.covariances_, b.covariances_, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("ct", ["full", pytest.param("VEI", marks=SLOW)])
def test_families_fit_with_holes_and_weights(ct):
    _family_run(ct)


@pytest.mark.slow
def test_every_family_fits_with_holes_and_weights():
    from gmmscape.estimator._gaussian_mixture import COVARIANCE_TYPES

    for ct in COVARIANCE_TYPES:
        _family_run(ct)


# --------------------------------------------------------------------------------------
# MCAR at N = 1e5 (slow): the truth within Monte Carlo error, beating the naive methods
# --------------------------------------------------------------------------------------
def _match_error(means_hat, cov_hat, means, cov):
    """Largest mean error (in units of the true standard deviations) and largest
    relative covariance error, components matched by their means."""
    from itertools import permutations

    k = len(means)
    best = min(permutations(range(k)), key=lambda p: np.sum((means_hat[list(p)] - means) ** 2))
    p = list(best)
    sd = np.sqrt(np.diagonal(cov, axis1=1, axis2=2))
    mean_err = np.max(np.abs(means_hat[p] - means) / sd)
    cov_err = np.max(
        np.linalg.norm(cov_hat[p] - cov, axis=(1, 2)) / np.linalg.norm(cov, axis=(1, 2))
    )
    return mean_err, cov_err


@pytest.mark.slow
@pytest.mark.parametrize("rate", [0.1, 0.3])
def test_mcar_recovers_the_truth_and_beats_naive_methods(rate):
    rng = np.random.default_rng(8)
    k, d, n = 3, 4, 100_000
    weights = np.array([0.5, 0.3, 0.2])
    means = np.array([[0, 0, 0, 0], [3, 3, 0, 0], [0, 3, 3, -2.0]])
    cov = np.stack([np.eye(d) + 0.4 * (np.ones((d, d)) - np.eye(d)) * s for s in (1, -0.5, 0.5)])
    X, _ = _draw(rng, n, weights, means, cov)
    Xm = _holes(rng, X, rate)
    fit = dict(random_state=0, n_init=2, tol=1e-6, max_iter=500)
    em = GaussianMixture(k, missing="em", **fit).fit(Xm)
    cc = GaussianMixture(k, **fit).fit(Xm[~np.isnan(Xm).any(1)])
    filled = np.where(np.isnan(Xm), np.nanmean(Xm, axis=0), Xm)
    mi = GaussianMixture(k, **fit).fit(filled)
    e_em = _match_error(em.means_, em.covariances_, means, cov)
    e_cc = _match_error(cc.means_, cc.covariances_, means, cov)
    e_mi = _match_error(mi.means_, mi.covariances_, means, cov)
    # Monte Carlo error of a mean: sd / sqrt(n pi_k (1 - rate)); 5 standard errors for
    # the largest of 12 coordinates
    assert e_em[0] < 5.0 / np.sqrt(n * weights.min() * (1 - rate))
    # covariance entries: relative standard error about sqrt(2 / (n pi_k (1 - rate)^2))
    assert e_em[1] < 6.0 * np.sqrt(2.0 / (n * weights.min() * (1 - rate) ** 2))
    # one draw: the covariances beat complete cases and mean imputation (biased); the
    # means' efficiency against complete cases is checked over draws (next test), since
    # both are unbiased and one draw's largest error can go either way
    assert e_em[1] < e_cc[1]
    assert e_em[0] < e_mi[0] and e_em[1] < e_mi[1]


@pytest.mark.slow
def test_mcar_means_are_more_efficient_than_complete_cases_over_draws():
    # 30% MCAR in d = 4: complete cases keep 0.7^4 = 24% of the rows, so their squared
    # mean error is about 4.2 times a full-data fit's; EM uses every observed entry
    from itertools import permutations

    k, d, n, rate, draws = 3, 4, 20_000, 0.3, 8
    weights = np.array([0.5, 0.3, 0.2])
    means = np.array([[0, 0, 0, 0], [3, 3, 0, 0], [0, 3, 3, -2.0]])
    cov = np.stack([np.eye(d) + 0.4 * (np.ones((d, d)) - np.eye(d)) * s for s in (1, -0.5, 0.5)])
    sd = np.sqrt(np.diagonal(cov, axis1=1, axis2=2))

    def sse(gm):  # squared standardized mean errors, components matched
        p = min(permutations(range(k)), key=lambda p: np.sum((gm.means_[list(p)] - means) ** 2))
        return float(np.sum(((gm.means_[list(p)] - means) / sd) ** 2))

    em, cc = [], []
    for seed in range(draws):
        rng = np.random.default_rng(100 + seed)
        X, _ = _draw(rng, n, weights, means, cov)
        Xm = _holes(rng, X, rate)
        fit = dict(random_state=0, n_init=2, tol=1e-6, max_iter=500)
        em.append(sse(GaussianMixture(k, missing="em", **fit).fit(Xm)))
        cc.append(sse(GaussianMixture(k, **fit).fit(Xm[~np.isnan(Xm).any(1)])))
    full = sum(d / (n * w) for w in weights)  # expected SSE of a fit without holes
    # EM: between a full-data fit and the 70% of entries it sees (1/0.7 = 1.4), with the
    # Monte Carlo spread of a mean of 8 chi-square(12) draws (+-14%) on top
    assert np.mean(em) < 2.5 * full
    assert np.mean(em) < 0.6 * np.mean(cc)
    assert np.sum(np.array(em) < np.array(cc)) >= 6
