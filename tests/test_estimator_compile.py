"""Shape-stable compilation of the estimator (issue 15, item 4).

A loop over ``n_components``, cross-validation folds of different sizes and a grid search
must compile a handful of programs, not one per call; padding ``n_components`` up to a
bucket must not change the fit.
"""

import warnings

import jax
import numpy as np
import pytest
from sklearn.datasets import load_iris, load_wine
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SkGM
from sklearn.model_selection import GridSearchCV, cross_val_score

from gmmscape import GaussianMixture
from gmmscape._program_store import WRAPPER_PREFIX
from gmmscape.estimator import _kernels as K

TRACE_EVENT = "/jax/core/compile/jaxpr_trace_duration"
_TRACES = {"on": False, "n": 0}


def _listener(event, duration, fun_name="", **kw):
    # the thin wrapper that calls a program from the store (gmmscape._program_store)
    # traces no code of ours; it is not counted as a program
    if _TRACES["on"] and event == TRACE_EVENT and not fun_name.startswith(WRAPPER_PREFIX):
        _TRACES["n"] += 1


jax.monitoring.register_event_duration_secs_listener(_listener)


def count_traces(fn):
    """Run ``fn()`` and return how many programs JAX traced (a new program each)."""
    _TRACES["on"], _TRACES["n"] = True, 0
    try:
        fn()
    finally:
        _TRACES["on"] = False
    return _TRACES["n"]


def test_component_bucket_ladder():
    ladder = [K.component_bucket(k, n_rows=2048, d=64) for k in range(1, 50)]
    # a bucket holds k, wastes at most half of k more, and the buckets are few
    for k, b in zip(range(1, 50), ladder, strict=True):
        assert k <= b <= max(k, 1.5 * (k - 1))
    assert sorted(set(ladder)) == [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64]
    # large passes over the data are never padded
    assert K.component_bucket(9, n_rows=10**6, d=16) == 9
    assert K.component_bucket(9, n_rows=256, d=64) == 12
    # tiny data (iris: 256 padded rows, 4 features): every k <= 8 shares one program
    assert {K.component_bucket(k, n_rows=256, d=4) for k in range(1, 9)} == {8}
    assert K.component_bucket(9, n_rows=256, d=4) == 12


@pytest.mark.parametrize("ct", ["full", "tied", "diag", "spherical"])
def test_padded_fit_equals_exact_fit_and_sklearn(ct, monkeypatch):
    # k = 5 runs on 6 components (one of weight 0); the same fit on exactly 5, and
    # scikit-learn's from the same start, agree
    X = load_wine().data
    X = (X - X.mean(0)) / X.std(0)
    kw = dict(covariance_type=ct, random_state=0, tol=1e-6, max_iter=300)
    assert K.component_bucket(5, 256, X.shape[1]) == 8  # wine is tiny: 5 runs on 8
    padded = GaussianMixture(5, **kw).fit(X)
    with monkeypatch.context() as m:
        m.setattr(K, "component_bucket", lambda k, n_rows=0, d=1: k)
        exact = GaussianMixture(5, **kw).fit(X)
    sk = SkGM(5, **kw).fit(X)
    assert padded.n_iter_ == exact.n_iter_ == sk.n_iter_
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        a, b, c = (getattr(g, name) for g in (padded, exact, sk))
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(a, c, rtol=1e-6, atol=1e-9, err_msg=name)
    assert padded.score(X) == pytest.approx(sk.score(X), rel=1e-10)
    assert padded.predict_proba(X).shape == (len(X), 5)
    np.testing.assert_allclose(padded.predict_proba(X), sk.predict_proba(X), atol=1e-7)


def test_a_loop_over_k_compiles_once_per_bucket():
    X = load_iris().data
    fit = lambda k: GaussianMixture(k, random_state=0).fit(X).bic(X)  # noqa: E731
    fit(5)  # iris is tiny: compiles the bucket of 8 (and whatever a first fit needs)
    assert count_traces(lambda: [fit(k) for k in (1, 2, 6, 5, 8)]) == 0
    # a new bucket costs at most three programs: initialization, EM, log-density
    assert count_traces(lambda: fit(9)) <= 3
    assert count_traces(lambda: fit(11)) == 0  # 9..12 share a bucket


def test_restarts_are_bucketed_and_equal_separate_fits():
    X = load_iris().data
    assert [K.batch_bucket(b) for b in range(1, 10)] == [1, 2, 4, 4, 8, 8, 8, 8, 16]
    assert K.batch_bucket(3, n_rows=10**6, k=16, d=16) == 3
    GaussianMixture(3, n_init=3, random_state=0).fit(X)  # compiles the batch of 4
    assert count_traces(lambda: GaussianMixture(3, n_init=4, random_state=1).fit(X)) == 0
    # the padded batch keeps the best of the real starts: scikit-learn's restarts agree
    a = GaussianMixture(3, n_init=3, random_state=2, tol=1e-8).fit(X)
    b = SkGM(3, n_init=3, random_state=2, tol=1e-8).fit(X)
    assert a.lower_bound_ == pytest.approx(b.lower_bound_, rel=1e-9)
    np.testing.assert_allclose(np.sort(a.means_, 0), np.sort(b.means_, 0), rtol=1e-6)


def test_cross_validation_and_grid_search_reuse_programs():
    X = load_iris().data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gs = GridSearchCV(GaussianMixture(random_state=0), {"n_components": [2, 3]}, cv=3)
        gs.fit(X)  # folds of 100 rows: compiles buckets 2 and 3
        # folds of other sizes (5 folds: 120 rows, 4: 112 or 113) pad to the same rows
        n = count_traces(lambda: cross_val_score(GaussianMixture(3, random_state=0), X, cv=5))
        n += count_traces(lambda: cross_val_score(GaussianMixture(2, random_state=0), X, cv=4))
    assert n == 0
