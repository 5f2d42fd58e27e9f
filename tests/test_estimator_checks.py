"""scikit-learn's own estimator checks on gmmscape.GaussianMixture."""

import pytest
from sklearn.utils import estimator_checks as ec
from sklearn.utils.estimator_checks import check_estimator

from gmmscape import GaussianMixture

FAST_CHECKS = (
    ec.check_fit_idempotent,
    ec.check_n_features_in,
    ec.check_estimators_nan_inf,
    ec.check_fit2d_1sample,
    ec.check_estimators_empty_data_messages,
    ec.check_fit2d_predict1d,
    ec.check_dict_unchanged,
    ec.check_estimators_pickle,
    ec.check_methods_subset_invariance,
    ec.check_get_params_invariance,
    ec.check_dont_overwrite_parameters,
)


@pytest.mark.parametrize("check", FAST_CHECKS, ids=lambda c: c.__name__)
def test_representative_sklearn_checks(check):
    check("GaussianMixture", GaussianMixture(n_init=2, max_iter=5))


@pytest.mark.slow
@pytest.mark.parametrize(
    "estimator",
    [GaussianMixture(), GaussianMixture(n_init=2, max_iter=5)],
    ids=["default", "sklearn-test-params"],
)
def test_check_estimator_passes_every_check(estimator):
    results = check_estimator(estimator, on_fail=None)
    failed = [r["check_name"] for r in results if r["status"] == "failed"]
    assert not failed, failed
    assert sum(r["status"] == "passed" for r in results) >= 40
