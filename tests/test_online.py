"""Online (stepwise) EM, ``GaussianMixture.partial_fit``, against independent references.

* the stepwise recursion of Cappé & Moulines (2009) written out in NumPy/scipy for two
  chunks (responsibilities from scipy.stats, the closed-form M-step), equal to 1e-10;
* the first chunk's step equals one batch EM step on that chunk, with missing values;
* over a stream, the per-sample log-likelihood approaches batch EM's on the same data.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from gmmscape import GaussianMixture

EXACT = 1e-10


def _stream(seed, n, d=3):
    rng = np.random.default_rng(seed)
    means = np.array([[0.0] * d, [3.0] * d, [0.0, 3.0, -3.0][:d]])
    z = rng.choice(3, size=n, p=[0.5, 0.3, 0.2])
    return means[z] + rng.normal(size=(n, d)) * np.array([1.0, 0.7, 1.2])[z][:, None]


def _stats(X, w, weights, means, cov):
    """Weighted responsibilities' statistics per unit weight (scipy densities)."""
    dens = np.stack(
        [weights[j] * multivariate_normal(means[j], cov[j]).pdf(X) for j in range(len(weights))],
        axis=1,
    )
    r = dens / dens.sum(1, keepdims=True)
    wr = w[:, None] * r
    W = w.sum()
    return wr.sum(0) / W, wr.T @ X / W, np.einsum("nk,na,nb->kab", wr, X, X) / W


def _m_step(nk, s1, s2, reg):
    mu = s1 / nk[:, None]
    cov = s2 / nk[:, None, None] - np.einsum("ka,kb->kab", mu, mu) + reg * np.eye(s1.shape[1])
    return nk / nk.sum(), mu, cov


def test_two_steps_equal_the_stepwise_recursion():
    rng = np.random.default_rng(0)
    X = _stream(1, 600)
    A, B = X[:300], X[300:]
    wa, wb = rng.uniform(0.5, 2, 300), rng.uniform(0.5, 2, 300)
    weights = np.array([0.4, 0.35, 0.25])
    means = np.array([[0.5, 0, 0], [2.5, 3, 3], [0, 2, -2.0]])
    cov = np.stack([np.eye(3) * s for s in (1.0, 0.8, 1.5)])
    reg, decay, offset = 1e-6, 0.7, 3.0
    gm = GaussianMixture(
        3, weights_init=weights, means_init=means, precisions_init=np.linalg.inv(cov),
        reg_covar=reg, learning_decay=decay, learning_offset=offset,
    )  # fmt: skip
    gm.partial_fit(A, sample_weight=wa).partial_fit(B, sample_weight=wb)
    s = _stats(A, wa, weights, means, cov)
    p1 = _m_step(*s, reg)
    gamma = (1 + offset) ** -decay
    s = tuple((1 - gamma) * a + gamma * b for a, b in zip(s, _stats(B, wb, *p1), strict=True))
    w2, m2, c2 = _m_step(*s, reg)
    np.testing.assert_allclose(gm.weights_, w2, rtol=0, atol=EXACT)
    np.testing.assert_allclose(gm.means_, m2, rtol=0, atol=EXACT)
    np.testing.assert_allclose(gm.covariances_, c2, rtol=0, atol=EXACT)
    assert gm.n_iter_ == 2 and len(gm.lower_bounds_) == 2


@pytest.mark.parametrize("ct", ["diag", pytest.param("VEV", marks=pytest.mark.slow)])
def test_first_chunk_step_is_a_batch_em_step_with_missing_values(ct):
    X = _stream(2, 400)
    X[np.random.default_rng(3).uniform(size=X.shape) < 0.2] = np.nan
    X = X[~np.isnan(X).all(1)]
    w = np.random.default_rng(4).uniform(0.5, 2, len(X))
    start = GaussianMixture(3, covariance_type=ct, missing="em", max_iter=3, random_state=0)
    with pytest.warns(Warning):
        start.fit(X)
    init = dict(
        weights_init=start.weights_, means_init=start.means_, precisions_init=start.precisions_
    )
    on = GaussianMixture(3, covariance_type=ct, missing="em", **init).partial_fit(X, None, w)
    with pytest.warns(Warning):
        batch = GaussianMixture(3, covariance_type=ct, missing="em", max_iter=1, **init).fit(
            X, sample_weight=w
        )
    np.testing.assert_allclose(on.means_, batch.means_, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(on.covariances_, batch.covariances_, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(on.weights_, batch.weights_, rtol=1e-10, atol=1e-10)


def test_one_pass_over_a_stream_approaches_batch_em():
    chunks = [_stream(10 + i, 2000) for i in range(40)]
    X = np.vstack(chunks)
    batch = GaussianMixture(3, random_state=0, tol=1e-8, max_iter=500).fit(X)
    on = GaussianMixture(3, random_state=0)
    for c in chunks:
        on.partial_fit(c)
    gap = batch.score(X) - on.score(X)
    # the excess loss of stepwise EM after 40 steps of 2000 points (gamma_40 = 0.11: an
    # average over ~10 chunks) is a few parameters / (2 * 2e4) ~ 1e-3 at most
    assert -1e-9 < gap < 2e-3, gap


def test_partial_fit_checks_and_resets():
    X = _stream(5, 300)
    gm = GaussianMixture(2, random_state=0).partial_fit(X)
    with pytest.raises(ValueError, match="features"):
        gm.partial_fit(X[:, :2])
    with pytest.raises(ValueError, match="NaN"):
        gm.partial_fit(np.where(X > 2.5, np.nan, X))
    with pytest.raises(ValueError, match="n_samples >= n_components"):
        GaussianMixture(4).partial_fit(X[:3])
    with pytest.raises(ValueError, match="learning_decay"):
        GaussianMixture(2, learning_decay=0.5).partial_fit(X)
    gm.fit(X)
    assert not hasattr(gm, "_online")
    gm.partial_fit(X)  # continues from the fitted parameters
    assert gm.n_iter_ == 1


def test_sklearn_partial_fit_checks():
    from sklearn.utils import estimator_checks as ec

    ec.check_estimators_partial_fit_n_features("GaussianMixture", GaussianMixture(2))
