"""mclust's covariance models against R's mclust 6.0 (issue 16, items 1 and 4).

The references are fixture files written by ``tests/fixtures/mclust/make_fixtures.R``
(R is not needed here): for each dataset, model and G = 1..5, the hierarchical-clustering
partition mclust's ``mclustBIC`` starts EM from, the log-likelihood EM reaches from it
(tolerance 1e-11 relative, so that both programs stop at the same fixed point), its
``nMclustParams`` and BIC; and one M-step of every model (mclust's ``mstep``) from the
same soft responsibilities.
"""

import json
import warnings
from functools import cache
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from gmmscape import GaussianMixture
from gmmscape.core import families

FIXTURES = Path(__file__).parent / "fixtures" / "mclust"
DATASETS = ("faithful", "iris", "diabetes")
MODELS = families.MCLUST_MODELS
#: Models whose M-step is an inner iteration (to sqrt(eps) here and in mclust).
ITERATIVE = ("VEI", "VEE", "EVE", "VEV")
#: mclust's VVE M-step stops short of the maximum (see test_vve_improves_on_mclust).
SHORT_IN_MCLUST = ("VVE",)
#: The log-likelihood agreement the issue asks for, relative.
LL_RTOL = 1e-6


@cache
def fixture(name: str) -> dict:
    """The fixture of one dataset."""
    return json.loads((FIXTURES / f"{name}.json").read_text())


def as_matrices(fam, cov, k, d):
    """Covariances of ``fam``'s storage as (k, d, d) matrices."""
    cov = np.asarray(cov)
    if fam.matrix:
        return np.broadcast_to(cov, (k, d, d)) if fam.shared else cov
    per = np.broadcast_to(cov.reshape(k, -1), (k, d))
    return per[:, :, None] * np.eye(d)


def q_value(x, z, means, cov):
    """The M-step objective ``-sum_k N_k log|Sigma_k| + tr(W_k Sigma_k^-1)``, naive."""
    diff = x[:, None, :] - means[None]
    w = np.einsum("nk,nka,nkb->kab", z, diff, diff)
    nk = z.sum(0)
    return -sum(
        nk[i] * np.linalg.slogdet(cov[i])[1] + np.trace(w[i] @ np.linalg.inv(cov[i]))
        for i in range(len(nk))
    )


def fit_from_partition(x, part, model, g, tol=1e-13, tol_type="absolute"):
    """EM from the M-step of a hard partition (labels 1..g), as mclust's ``me``."""
    resp = np.eye(g)[np.asarray(part) - 1]
    start = GaussianMixture(g, covariance_type=model, reg_covar=0.0)
    start._initialize(x, resp)  # scikit-learn's protocol: the M-step of resp
    gm = GaussianMixture(
        g, covariance_type=model, reg_covar=0.0, tol=tol, tol_type=tol_type, max_iter=20_000,
        weights_init=start.weights_, means_init=start.means_,
        precisions_init=start.precisions_,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        return gm.fit(x)


def test_parameter_counts_equal_nmclustparams():
    for name in DATASETS:
        f = fixture(name)
        d = len(f["X"][0])
        for fit in f["fits"]:
            if fit["model"] not in MODELS:
                continue
            g = fit["G"]
            n_cov = families.get(fit["model"]).n_cov_params(g, d)
            assert n_cov + g * d + g - 1 == fit["npar"], (name, fit["model"], g)


def test_covariance_types_are_the_free_families():
    from gmmscape.estimator._gaussian_mixture import COVARIANCE_TYPES

    assert set(COVARIANCE_TYPES) == set(families.FAMILIES) - {"isotropic"}
    assert set(MODELS) <= set(COVARIANCE_TYPES) and len(MODELS) == 14


def test_scikit_learn_names_are_mclust_models():
    for sk, mc in (("spherical", "VII"), ("diag", "VVI"), ("tied", "EEE"), ("full", "VVV")):
        a, b = families.get(sk), families.get(mc)
        assert (a.cov_shape(3, 4), a.scatter, a.log_gauss) == (
            b.cov_shape(3, 4),
            b.scatter,
            b.log_gauss,
        )
        assert a.n_cov_params(3, 4) == b.n_cov_params(3, 4)


@pytest.mark.parametrize(
    "name", ["iris", *(pytest.param(n, marks=pytest.mark.slow) for n in ("faithful", "diabetes"))]
)
def test_m_step_equals_mclust_mstep(name):
    f = fixture(name)
    x, z = np.asarray(f["X"], float), np.asarray(f["mstep_z"], float)
    (n, d), k = x.shape, z.shape[1]
    for model in MODELS:
        fam = families.get(model)
        nk, s1, s2 = fam.moments(jnp.asarray(x), jnp.asarray(z))
        means = s1 / nk[:, None]
        cov = fam.scatter(nk, s1, s2, jnp.asarray(float(n)), means, nk)
        got = as_matrices(fam, cov, k, d)
        ref = np.asarray(f["mstep_covariances"][model])
        scale = np.abs(ref).max()
        mu = np.asarray(means)
        if model in SHORT_IN_MCLUST:
            assert q_value(x, z, mu, got) > q_value(x, z, mu, ref), model
        elif model in ITERATIVE:
            # mclust's inner loops stop earlier (VEE to 5e-4 relative on diabetes), so
            # ours must be close and at least as good a maximum
            np.testing.assert_allclose(got, ref, rtol=0, atol=1e-3 * scale, err_msg=model)
            q_got, q_ref = q_value(x, z, mu, got), q_value(x, z, mu, ref)
            assert q_got >= q_ref - 1e-10 * abs(q_ref), model
        else:
            np.testing.assert_allclose(got, ref, rtol=0, atol=1e-10 * scale, err_msg=model)


def _em_cases(fast):
    cases = []
    for name in DATASETS:
        for fit in fixture(name)["fits"]:
            # mclust's NA (a covariance became singular; gmmscape floors it instead)
            if fit["loglik"] is None or fit["model"] not in MODELS:
                continue
            if fit["model"] in SHORT_IN_MCLUST:
                continue
            quick = name == "faithful" and fit["G"] == 2 and fit["model"] in fast
            marks = () if quick else (pytest.mark.slow,)
            cases.append(pytest.param(name, fit["model"], fit["G"], marks=marks))
    return cases


@pytest.mark.parametrize("name, model, g", _em_cases(fast=("EVI", "VEV", "EVV")))
def test_em_from_mclust_hc_partition_matches_mclust(name, model, g):
    f = fixture(name)
    ref = next(r for r in f["fits"] if r["model"] == model and r["G"] == g)
    x = np.asarray(f["X"], float)
    gm = fit_from_partition(x, f["hc_partitions"][g - 1], model, g)
    ll = gm.score(x) * len(x)
    assert abs(ll - ref["loglik"]) <= LL_RTOL * abs(ref["loglik"])
    assert gm._n_parameters() == ref["npar"]
    # mclust's BIC is 2 logL - p log n (higher is better); scikit-learn's is its negative
    np.testing.assert_allclose(-gm.bic(x), ref["bic"], rtol=LL_RTOL)
    # the weights along the likelihood's flattest directions (iris, EVI, G = 4) differ by
    # 1.2e-4 between the two stopping points
    np.testing.assert_allclose(gm.weights_, ref["weights"], rtol=0, atol=1e-3)


@pytest.mark.parametrize(
    "name, models",
    [
        ("faithful", ("EVI", "VEV", "EVV")),  # the fast fits' programs
        pytest.param("faithful", MODELS, marks=pytest.mark.slow),
        pytest.param("iris", MODELS, marks=pytest.mark.slow),
        pytest.param("diabetes", MODELS, marks=pytest.mark.slow),
    ],
)
def test_relative_rule_stops_where_mclust_stops(name, models):
    # tol_type="relative", tol=1e-5 is mclust's default rule: from mclust's hc partition
    # EM takes mclust's number of iterations (me()'s info) and its last E-step's
    # log-likelihood (lower_bound_, the one mclust reports) is mclust's. The models whose
    # M-step is an inner iteration may cross the threshold one step apart (diabetes,
    # VEE, G = 4: 32 and 33); VVE's M-step differs from mclust's (test below).
    f = fixture(name)
    x = np.asarray(f["X"], float)
    checked = 0
    for ref in f["fits"]:
        m, g = ref["model"], ref["G"]
        if m not in models or m in SHORT_IN_MCLUST or g == 1:
            continue
        if ref["loglik_default_control"] is None:
            continue
        gm = fit_from_partition(x, f["hc_partitions"][g - 1], m, g, 1e-5, "relative")
        # (EVV's count is written as a one-element list)
        want = int(np.ravel(ref["n_iter_default_control"])[0])
        ll = gm.lower_bound_ * len(x)
        rel = abs(ll - ref["loglik_default_control"]) / abs(ref["loglik_default_control"])
        if m in ITERATIVE:
            assert abs(gm.n_iter_ - want) <= 1, (m, g)
            assert rel < (1e-6 if gm.n_iter_ == want else 2e-5), (m, g)
        else:
            assert gm.n_iter_ == want, (m, g)
            assert rel < 1e-9, (m, g)
        checked += 1
    assert checked >= 4 * len([m for m in models if m not in SHORT_IN_MCLUST]) - 2


@pytest.mark.slow
@pytest.mark.parametrize("name, g", [("iris", 3), ("diabetes", 3), ("iris", 5)])
def test_vve_improves_on_mclust(name, g):
    # mclust's VVE fit is not where its EM would stop with an exact M-step: one EM step
    # of ours from mclust's final parameters raises the log-likelihood (by 0.45, 2.7 and
    # 0.76 on these), and the result keeps one orientation (the covariances commute)
    f = fixture(name)
    ref = next(r for r in f["fits"] if r["model"] == "VVE" and r["G"] == g)
    x = np.asarray(f["X"], float)
    cov = np.asarray(ref["covariances"])
    gm = GaussianMixture(
        g, covariance_type="VVE", reg_covar=0.0, max_iter=1,
        weights_init=ref["weights"], means_init=ref["means"],
        precisions_init=np.linalg.inv(cov),
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit(x)
    assert gm.score(x) * len(x) > ref["loglik"] + 0.1
    c = gm.covariances_
    for i in range(1, g):
        np.testing.assert_allclose(
            c[0] @ c[i], c[i] @ c[0], rtol=0, atol=1e-12 * np.abs(c).max() ** 2
        )


@pytest.mark.parametrize(
    "model",
    [
        pytest.param(m, marks=() if m == "EEV" else (pytest.mark.slow,))
        for m in MODELS
        if m not in ("VII", "VVI", "EEE", "VVV")  # scikit-learn's four, tested there
    ],
)
def test_model_works_with_weights_chunks_float32_and_files(model, tmp_path):
    from gmmscape.estimator import load_model, save_model

    f = fixture("iris")
    x = np.asarray(f["X"], float)
    part = np.asarray(f["hc_partitions"][2])
    rng = np.random.default_rng(0)
    counts = rng.integers(1, 4, len(x))
    start = GaussianMixture(3, covariance_type=model, reg_covar=0.0)
    start._initialize(x, np.eye(3)[part - 1])
    kw = dict(
        covariance_type=model, reg_covar=1e-6, tol=1e-10, max_iter=300,
        weights_init=start.weights_, means_init=start.means_,
        precisions_init=start.precisions_,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        # integer sample weights are repeated rows (the reference), in chunks of 32
        ref = GaussianMixture(3, **kw).fit(np.repeat(x, counts, axis=0))
        gm = GaussianMixture(3, chunk_size=32, **kw).fit(x, sample_weight=counts)
        g32 = GaussianMixture(3, dtype="float32", **kw).fit(x, sample_weight=counts)
    np.testing.assert_allclose(gm.means_, ref.means_, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(gm.covariances_, ref.covariances_, rtol=1e-7, atol=1e-9)
    assert g32.means_.dtype == np.float32
    # float32 stops elsewhere on slow models (EVE: 2.5e-4 relative after 300 steps)
    np.testing.assert_allclose(g32.means_, ref.means_, rtol=1e-3, atol=1e-3)
    # the model file keeps the model name and predicts the same
    path = save_model(gm, tmp_path / "m.json")
    back = load_model(path)
    assert back.covariance_type == model
    np.testing.assert_array_equal(back.predict(x), gm.predict(x))
    np.testing.assert_allclose(back.score_samples(x), gm.score_samples(x), rtol=1e-12)
    xs, ys = gm.sample(20)
    assert xs.shape == (20, 4) and ys.shape == (20,)


#: One model kept and one not in the fast suite; the others in make test-slow.
_RESCALE_SLOW = ("EVE", "VVE", "VEV", "EVV", "VVV", "EEI", "VEI", "EVI")


@pytest.mark.parametrize(
    "model", ["VEE", "EEV", *(pytest.param(m, marks=pytest.mark.slow) for m in _RESCALE_SLOW)]
)
def test_rescalable_means_the_m_step_keeps_rescaled_members(model):
    # covariances of the model, rescaled per feature (S Sigma_k S) and fed to the
    # model's own M-step as exact scatter: a model whose constraint survives rescaling
    # returns them unchanged; the others must project them elsewhere
    fam = families.get(model)
    X = np.asarray(fixture("iris")["X"], np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm = GaussianMixture(3, covariance_type=model, random_state=0, reg_covar=0.0).fit(X)
    s = np.array([0.5, 3.0, 1.0, 7.0])
    nk = len(X) * gm.weights_
    mu = gm.means_ * s
    if fam.matrix:
        cov = gm.covariances_ * np.outer(s, s)
        s2 = nk[:, None, None] * (cov + mu[:, :, None] * mu[:, None, :])
    else:
        cov = gm.covariances_ * s**2
        s2 = nk[:, None] * (cov + mu**2)
    got = np.asarray(
        fam.scatter(jnp.asarray(nk), jnp.asarray(nk[:, None] * mu), jnp.asarray(s2),
                    nk.sum(), jnp.asarray(mu), jnp.asarray(nk))
    )  # fmt: skip
    kept = np.allclose(got, cov, rtol=1e-6, atol=1e-9 * np.abs(cov).max())
    assert kept == fam.rescalable
