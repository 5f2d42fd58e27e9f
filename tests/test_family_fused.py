"""The fused E-step and moments of the covariance families (``Family.fused_stats``,
issue 15 item 7) against a naive NumPy/SciPy reference in float64, in float64 and
float32, for points near the data's centre and near a component far from it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from gmmscape.core import families
from gmmscape.core.stats import normalize_log

K_, M_ = 3, 60
#: d = 3 uses the full family's quadratic features, d = 34 does not (FEATURES_MAX_D).
DIMS = (3, 34)
#: Distance of the far component from the data's centre, in its standard deviations.
FAR = {"float64": 1e3, "float32": 1e3}
#: The diagonal family's log-density is the expanded quadratic form (as scikit-learn's):
#: at float32 it loses about eps |x|^2 / sigma^2, so its far component is nearer.
FAR_DIAG32 = 30.0


def problem(name, far, d, seed=0):
    """Points, weights and parameters of family ``name``: components 0 and 1 near the
    origin, component 2 ``far`` of its standard deviations away, a third of the points
    around it. Returns x, w, means, precision factor and the (k, d, d) covariances."""
    rng = np.random.default_rng(seed)
    sd = rng.uniform(0.5, 2.0, (K_, d))
    if name == "spherical":
        sd = np.repeat(sd[:, :1], d, axis=1)
    if name in ("full", "tied"):
        a = rng.standard_normal((K_, d, d)) * 0.3 + np.eye(d)
        cov = np.einsum("kab,kcb->kac", a, a) * sd[:, :, None] * sd[:, None, :]
        if name == "tied":
            cov = np.repeat(cov[:1], K_, axis=0)
    else:
        cov = sd[:, :, None] ** 2 * np.eye(d)
    means = rng.standard_normal((K_, d))
    means[2] = far * np.sqrt(np.diagonal(cov[2])) / np.sqrt(d)
    lab = rng.integers(0, K_, M_)
    x = np.stack([rng.multivariate_normal(means[j], cov[j]) for j in lab])
    w = rng.uniform(0.5, 2.0, M_)
    w[-3:] = 0.0  # padding rows
    if name == "full":
        # the upper-triangular factor scikit-learn stores: P P^T = inv(cov)
        pf = families.get("full").from_precisions(np.linalg.inv(cov))[1]
    elif name == "tied":
        pf = families.get("tied").from_precisions(np.linalg.inv(cov[0]))[1]
    else:
        pf = 1.0 / np.sqrt(np.diagonal(cov, axis1=1, axis2=2))
        if name == "spherical":
            pf = pf[:, 0]
    return x, w, means, pf, cov


def reference(x, w, means, cov, weights):
    """log-likelihood per point and the weighted moments, from their definitions."""
    lw = np.stack(
        [multivariate_normal(means[j], cov[j]).logpdf(x) for j in range(K_)], axis=1
    ) + np.log(weights)
    l = logsumexp(lw, axis=1)
    wr = w[:, None] * np.exp(lw - l[:, None])
    nk = wr.sum(0)
    s1 = np.einsum("nk,na->ka", wr, x)
    s2 = np.einsum("nk,na,nb->kab", wr, x, x)
    return l, nk, s1, s2


#: Each distinct fused function once, by the first family that has it (mclust's models
#: share the fused pass of the family they are stored as).
FUSED: dict = {}
for _name, _fam in families.FAMILIES.items():
    if _fam.fused_stats is not None:
        FUSED.setdefault(_fam.fused_stats, _name)


@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", sorted(set(FUSED.values())))
def test_fused_stats_match_naive_reference(name, dtype, d):
    fam = families.get(name)
    diag_pass = name in ("diag", "spherical")  # spherical runs diag's fused pass
    far = FAR_DIAG32 if (diag_pass and dtype == "float32") else FAR[dtype]
    x, w, means, pf, _ = problem(name, far, d)
    weights = np.array([0.3, 0.5, 0.2])
    dt = jnp.dtype(dtype)

    @jax.jit
    def run(x, w, means, pf, log_w):
        return fam.estep_moments(x, w, means, pf, log_w, normalize_log)

    # the reference sees the inputs rounded to dtype: the test measures the arithmetic
    args = [np.asarray(a, dtype).astype(np.float64) for a in (x, w, means, pf)]
    x, w, means, pf = args
    if name == "full":
        cov = np.linalg.inv(np.einsum("kab,kcb->kac", pf, pf))
    elif name == "tied":
        cov = np.repeat(np.linalg.inv(pf @ pf.T)[None], K_, axis=0)
    else:
        var = 1.0 / pf**2
        cov = (var[:, None] if name == "spherical" else var)[:, :, None] * np.eye(d)
    l_ref, nk_ref, s1_ref, s2_ref = reference(x, w, means, cov, weights)
    out = run(*(jnp.asarray(a, dt) for a in (x, w, means, pf, np.log(weights))))
    l, nk, s1, s2 = (np.asarray(a, np.float64) for a in out)
    eps = np.finfo(dtype).eps
    # the expanded quadratic form loses about eps |x|^2_Lambda (d far^2 at the far
    # component), the differences form x P - mu P about eps |x P| |y| (d^1.5 far)
    expanded = diag_pass or (dtype == "float64" and families.features_fit(d))
    l_tol = 20 * eps * d * (far**2 if expanded else far * np.sqrt(d))
    assert np.max(np.abs(l - l_ref)) <= l_tol
    # moments relative to their own scale (responsibilities move with the log-densities)
    r_tol = max(l_tol, 1e3 * eps)
    np.testing.assert_allclose(nk, nk_ref, rtol=r_tol, atol=r_tol * w.sum())
    scale1 = w.sum() * np.max(np.abs(x))
    np.testing.assert_allclose(s1, s1_ref, rtol=r_tol, atol=r_tol * scale1)
    s2_ref_fam = s2_ref if fam.matrix else np.diagonal(s2_ref, axis1=1, axis2=2)
    if fam.shared:
        s2_ref_fam = s2_ref.sum(axis=0)
    np.testing.assert_allclose(s2, s2_ref_fam, rtol=r_tol, atol=r_tol * scale1 * np.max(np.abs(x)))
    # padding rows (w = 0) add nothing; their log-likelihood is still finite
    assert np.all(np.isfinite(l))


def test_fused_stats_equal_composition_in_float64():
    """The fused path and the default composition (log_gauss, normalize, moments) agree;
    the full family's expanded E-step against its differences form near the centre."""
    from dataclasses import replace

    for name, d in [(n, d) for n in sorted(set(FUSED.values())) for d in DIMS]:
        fam = families.get(name)
        x, w, means, pf, _ = problem(name, far=5.0, d=d, seed=1)
        args = tuple(jnp.asarray(a) for a in (x, w, means, pf, np.log([0.2, 0.3, 0.5])))
        got = jax.jit(lambda *a, f=fam: f.estep_moments(*a, normalize_log))(*args)
        plain = replace(fam, fused_stats=None)
        want = jax.jit(lambda *a, f=plain: f.estep_moments(*a, normalize_log))(*args)
        for a, b in zip(got, want, strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-11, atol=1e-11)


def test_expanded_form_only_in_float64_and_features_within_the_chunk_budget():
    assert families.expands_full(np.float64)
    assert not families.expands_full(np.float32)
    assert families.features_fit(16) and families.features_fit(32)
    assert not families.features_fit(33) and not families.features_fit(64)


@pytest.mark.parametrize("name", ["full", "diag"])
def test_posterior_summary_matches_naive_reference(name):
    """``estimator._kernels.posterior_summary`` (select's last pass: log-density and the
    largest responsibility through the E-step's fused arithmetic) against SciPy, chunk
    by chunk, a component 1e3 standard deviations out; a row whose every component has
    log-density -inf gives -inf and z = 0, never NaN."""
    from gmmscape.core.mixture import Params
    from gmmscape.estimator._kernels import posterior_summary

    d = 3
    x, _, means, pf, cov = problem(name, 1e3, d)
    weights = np.array([0.3, 0.5, 0.2])
    lw = np.stack([multivariate_normal(means[j], cov[j]).logpdf(x) for j in range(K_)], 1)
    lw += np.log(weights)
    l_ref = logsumexp(lw, axis=1)
    z_ref = np.exp(lw - l_ref[:, None]).max(axis=1)
    params = Params(jnp.asarray(weights), jnp.asarray(means), jnp.zeros(()), jnp.asarray(pf))
    xc = jnp.asarray(x.reshape(4, M_ // 4, d))
    l, z = (
        np.asarray(a).ravel()
        for a in jax.jit(posterior_summary, static_argnums=2)(xc, params, name)
    )
    # as the fused E-step: the expanded quadratic form at the far component
    tol = 20 * np.finfo(np.float64).eps * d * 1e3**2
    assert np.max(np.abs(l - l_ref)) <= tol
    np.testing.assert_allclose(z, z_ref, atol=tol)
    gone = params._replace(weights=jnp.asarray([0.0, 0.0, 0.0]))
    l0, z0 = jax.jit(posterior_summary, static_argnums=2)(xc, gone, name)
    assert np.all(np.asarray(l0) == -np.inf) and np.all(np.asarray(z0) == 0.0)


@pytest.mark.parametrize("name", ["full", "tied"])
def test_kept_features_give_the_statistics_of_the_points(name, monkeypatch):
    """``scan_family_stats`` from the features built once (``chunk_features``, what a
    compiled fit keeps for all its iterations) equals the pass from the points, which
    the naive reference above checks; no features where the family's E-step has none
    (float32, d > FEATURES_MAX_D, the diagonal families) or beyond the byte budget."""
    from gmmscape.core import stats
    from gmmscape.core.mixture import Params

    d = 3
    x, w, means, pf, _ = problem(name, 5.0, d)
    xc, wc = jnp.asarray(x.reshape(4, M_ // 4, d)), jnp.asarray(w.reshape(4, M_ // 4))
    params = Params(jnp.asarray([0.2, 0.3, 0.5]), jnp.asarray(means), jnp.zeros(()),
                    jnp.asarray(pf))  # fmt: skip
    zc = stats.chunk_features(xc, name)
    assert zc.shape == (4, M_ // 4, d * (d + 3) // 2)
    kept = stats.scan_family_stats(xc, wc, params, name, zc=zc)
    plain = stats.scan_family_stats(xc, wc, params, name)
    for a, b in zip(kept, plain, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, atol=1e-12)
    assert stats.chunk_features(xc.astype(jnp.float32), name) is None
    assert stats.chunk_features(jnp.zeros((2, 4, families.FEATURES_MAX_D + 1)), name) is None
    assert stats.chunk_features(xc, "diag") is None
    monkeypatch.setattr(stats, "FEATURES_CACHE_BYTES", zc.size * zc.dtype.itemsize - 1)
    assert stats.chunk_features(xc, name) is None
