"""gmmscape.select's batched grid (one program per model) against fits one at a time.

Reference: each (model, k) fitted on its own by :class:`GaussianMixture` with select's
settings, its log-likelihood from ``score``, its responsibilities from
``predict_proba`` (the per-fit path, which does not go through the batch).
"""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

import gmmscape
from gmmscape.estimator import _grid
from gmmscape.estimator._gaussian_mixture import CollapseWarning

FIXTURES = Path(__file__).parent / "fixtures" / "mclust"
SETTINGS = dict(init_params="hc", tol=1e-5, tol_type="relative", max_iter=1000, reg_covar=0.0)
#: log-likelihoods of the batch and of a fit alone differ by the rounding of differently
#: blocked sums (padded components), relative to the total
LL_RTOL = 1e-9


def faithful() -> np.ndarray:
    return np.asarray(json.loads((FIXTURES / "faithful_select.json").read_text())["X"], float)


def direct(X, model, k, w=None, **extra):
    """One fit on its own: (estimator or None, collapsed, loglik, sum log max z)."""
    gm = gmmscape.GaussianMixture(k, covariance_type=model, **{**SETTINGS, **extra})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gm.fit(X, sample_weight=w)
    if any(issubclass(c.category, CollapseWarning) for c in caught):
        return gm, True, np.nan, np.nan
    ones = np.ones(len(X)) if w is None else w
    ll = float(gm.score_samples(X) @ ones)
    zlog = float(np.log(gm.predict_proba(X).max(axis=1)) @ ones)
    return gm, False, ll, zlog


def check_against_direct(res, X, w=None, whole=True, **extra):
    ks = list(res.n_components)
    assert _grid.batchable(X, ks, {**SETTINGS, **extra}) == whole
    n_eff = len(X) if w is None else w.sum()
    for i, model in enumerate(res.models):
        for j, k in enumerate(res.n_components):
            gm, collapsed, ll, zlog = direct(X, model, k, w, **extra)
            where = (model, k)
            if collapsed:
                assert np.isnan(res.loglik[i, j]), where
                assert "singular covariance" in res.reasons[i, j], where
                continue
            assert res.reasons[i, j] == "", where
            np.testing.assert_allclose(res.loglik[i, j], ll, rtol=LL_RTOL, err_msg=str(where))
            bic = 2 * ll - res.n_parameters[i, j] * np.log(n_eff)
            np.testing.assert_allclose(res.bic[i, j], bic, rtol=LL_RTOL, err_msg=str(where))
            np.testing.assert_allclose(
                res.icl[i, j], bic + 2 * zlog, rtol=LL_RTOL, err_msg=str(where)
            )
            assert res.n_iter[i, j] == gm.n_iter_, where
            assert res.converged[i, j] == gm.converged_, where


def test_batched_grid_equals_fits_one_by_one_on_coupled_and_free_models():
    # VEI and EVE couple the components in their M-steps (a common shape or orientation
    # iterated with the volumes), VVV does not; padded components must not enter them
    X = faithful()
    res = gmmscape.select(X, [1, 2, 3, 5], ["VEI", "EVE", "VVV"])
    check_against_direct(res, X)
    assert res.best_ is not None
    best = gmmscape.GaussianMixture(res.best_k, covariance_type=res.best_model, **SETTINGS).fit(X)
    np.testing.assert_allclose(res.best_.means_, best.means_, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(res.best_.covariances_, best.covariances_, rtol=1e-7, atol=1e-9)
    np.testing.assert_array_equal(res.best_.predict(X), best.predict(X))
    assert res.best_.n_iter_ == best.n_iter_ and res.best_.n_features_in_ == 2


def test_batched_grid_with_sample_weights_and_float32():
    rng = np.random.default_rng(3)
    X = faithful()
    w = rng.uniform(0.5, 2.0, len(X))
    res = gmmscape.select(X, [1, 3, 4], ["VII", "EEE"], sample_weight=w)
    check_against_direct(res, X, w)
    res32 = gmmscape.select(X.astype(np.float32), [2, 3], ["VVI"])
    assert res32.best_.means_.dtype == np.float32
    gm = gmmscape.GaussianMixture(3, covariance_type="VVI", **SETTINGS).fit(X.astype(np.float32))
    ll = float(gm.score_samples(X.astype(np.float32)).astype(np.float64).sum())
    np.testing.assert_allclose(res32.loglik[0, 1], ll, rtol=1e-5)


def test_collapsed_fits_are_the_same_failures_as_alone():
    # four distinct points, each doubled: k = 4 puts a component on each pair (singular
    # covariance); k = 1, 2 are fine. Coupled and free families alike.
    X = np.repeat(np.array([[0.0, 0.0], [1.0, 0.2], [0.3, 1.0], [2.0, 2.0]]), 2, axis=0)
    models = ["VVV", "VEV", "EVE", "VEI", "EEE"]
    res = gmmscape.select(X, [1, 2, 4], models)
    check_against_direct(res, X)
    off = gmmscape.select(X, [1, 2, 4], models, batch=False)
    np.testing.assert_array_equal(res.reasons, off.reasons)


def test_what_is_not_batched_is_fitted_alone():
    X = faithful()[:60]
    assert not _grid.batchable(X, [1, 2], {**SETTINGS, "init_params": "kmeans"})
    assert not _grid.batchable(X, [1, 2], {**SETTINGS, "n_init": 2})
    assert not _grid.batchable(X, [1, 2], {**SETTINGS, "refine": True})
    assert not _grid.batchable(X, [1, 2], {**SETTINGS, "verbose": 1})
    assert not _grid.batchable(X, [1, 80], SETTINGS)  # more components than rows
    big = np.zeros((200_000, 5))
    assert not _grid.batchable(big, list(range(1, 10)), SETTINGS)  # padding would cost
    # k-means starts go through GaussianMixture.fit, one (model, k) at a time
    res = gmmscape.select(X, [1, 2], ["VII"], init_params="kmeans", random_state=0)
    gm = gmmscape.GaussianMixture(
        2, covariance_type="VII", **{**SETTINGS, "init_params": "kmeans"}, random_state=0
    ).fit(X)
    np.testing.assert_allclose(res.loglik[0, 1], gm.score(X) * len(X), rtol=1e-12)


def test_k_above_the_rows_is_reported_and_the_rest_batched():
    X = faithful()[:5]
    calls = []
    res = gmmscape.select(
        X, [1, 2, 6], ["EII", "VVV", "VII"], progress=lambda m, k, r: calls.append((m, k))
    )
    assert res.reasons[0, 2] == "k = 6 exceeds the 5 rows" and np.isnan(res.bic[0, 2])
    assert np.isfinite(res.bic[0, :2]).all()
    # one call per (model, k), every cell included
    assert sorted(calls) == sorted((m, k) for m in ("EII", "VVV", "VII") for k in (1, 2, 6))


@pytest.mark.slow
def test_full_faithful_grid_equals_fits_one_by_one():
    X = faithful()
    check_against_direct(gmmscape.select(X, range(1, 10)), X)


def test_larger_data_runs_batches_of_one_equal_to_fits_one_by_one():
    # too large for one padded batch of k = 2, 3; each (model, k) is then a batch of one
    rng = np.random.default_rng(5)
    X = np.concatenate([rng.normal(0.0, 1.0, (60_000, 5)), rng.normal(4.0, 0.5, (40_000, 5))])
    assert not _grid.batchable(X, [2, 3], SETTINGS)
    assert _grid.batchable(X, [2], SETTINGS) and _grid.batchable(X, [3], SETTINGS)
    res = gmmscape.select(X, [2, 3], ["EII", "VVV"])
    check_against_direct(res, X, whole=False)


def test_threads_do_not_change_the_table():
    X = faithful()
    models = ["EII", "VEV", "EVE", "VVI"]
    one = gmmscape.select(X, [1, 2, 3, 4], models, n_jobs=1)
    two = gmmscape.select(X, [1, 2, 3, 4], models, n_jobs=2)
    for name in ("loglik", "bic", "icl", "n_iter", "converged", "reasons"):
        np.testing.assert_array_equal(getattr(one, name), getattr(two, name), err_msg=name)
    assert (one.best_model, one.best_k) == (two.best_model, two.best_k)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_bad_n_jobs_is_refused(bad):
    with pytest.raises(ValueError, match="n_jobs must be a positive integer"):
        gmmscape.select(faithful(), [1, 2], ["EII"], n_jobs=bad)


def test_models_stored_alike_share_one_program():
    from gmmscape.estimator import _kernels as K
    from gmmscape.estimator.select import MODELS

    groups = K.model_groups(MODELS)
    assert groups["EII"] == ("EII", "VII")
    assert groups["VEI"] == ("EEI", "VEI", "EVI", "VVI")
    assert groups["EEE"] == ("EEE",)
    assert groups["VVV"] == ("VEE", "EVE", "VVE", "EEV", "VEV", "EVV", "VVV")
    # shapes no other test compiles: 300 x 3 (padded to 320 rows), k = 1, 3
    X = np.random.default_rng(11).normal(size=(300, 3)) * [1.0, 3.0, 0.5]
    models = ["EEI", "VEI", "VVI", "EVE", "VEV"]
    before = K.fit_from_labels._cache_size()
    res = gmmscape.select(X, [1, 3], models)
    assert K.fit_from_labels._cache_size() - before == 2  # diagonal and full storage
    check_against_direct(res, X)


def test_batches_of_one_pad_only_where_a_program_is_shared():
    from gmmscape.estimator import _kernels as K

    n, d, grid = 30_000, 5, [5, 6, 9]
    assert _grid.padded_components([9], grid, n, d) == 9  # its bucket (12) holds no other k
    assert _grid.padded_components([5], grid, n, d) == 6  # 5 and 6 share one program
    assert _grid.padded_components([6], grid, n, d) == 6
    assert _grid.padded_components(grid, grid, n, d) == 9  # one batch: its largest k
    rng = np.random.default_rng(8)
    X = rng.normal(size=(n, d)) + 3.0 * (rng.random((n, 1)) < 0.4)
    assert not _grid.batchable(X, grid, SETTINGS)
    before = K.fit_from_labels._cache_size()
    res = gmmscape.select(X, grid, ["VVI"])
    # programs for 6 and 9 components: the warm-up runs are the same programs
    assert K.fit_from_labels._cache_size() - before == 2
    check_against_direct(res, X, whole=False)
