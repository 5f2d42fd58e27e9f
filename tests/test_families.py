"""The covariance families of gmmscape.core.families against naive NumPy/SciPy references,
and the estimator tied to the research half's sources (issue 15, items 1 and 6)."""

import warnings

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import multivariate_normal
from sklearn.exceptions import ConvergenceWarning

import gmmscape as gs
from gmmscape import GaussianMixture
from gmmscape.core import families
from gmmscape.core.stats import batched_family_stats, family_stats, normalize_log

K_, D_ = 3, 4
RNG = np.random.default_rng(7)
X = RNG.standard_normal((50, D_)) * np.array([1.0, 3.0, 0.5, 2.0]) + 1.5
MEANS = RNG.standard_normal((K_, D_))
WR = RNG.dirichlet(np.ones(K_), size=len(X)) * RNG.uniform(0.5, 2.0, (len(X), 1))
#: The families of distinct storage and M-step tested here; mclust's models reuse their
#: functions and are tested against mclust (tests/test_mclust_agreement.py).
BASE = ("full", "tied", "diag", "spherical", "isotropic")


def random_covariances(name):
    """Covariances of family ``name`` and the same as (k, d, d) matrices."""
    fam = families.get(name)
    if name == "full":
        a = RNG.standard_normal((K_, D_, D_))
        cov = a @ np.swapaxes(a, 1, 2) + D_ * np.eye(D_)
        return cov, cov
    if name == "tied":
        a = RNG.standard_normal((D_, D_))
        cov = a @ a.T + D_ * np.eye(D_)
        return cov, np.broadcast_to(cov, (K_, D_, D_))
    shape = fam.cov_shape(K_, D_)
    v = RNG.uniform(0.5, 3.0, shape)
    per_feature = v if name == "diag" else np.broadcast_to(np.reshape(v, (-1, 1)), (K_, D_))
    return v, per_feature[:, :, None] * np.eye(D_)


def naive_scatter(name, means):
    """Weighted covariances about ``means`` from their definition, as (k, d, d)."""
    nk = WR.sum(0)
    diff = X[:, None, :] - means[None]
    per = np.einsum("nk,nka,nkb->kab", WR, diff, diff) / nk[:, None, None]
    if name == "full":
        return per
    if name == "tied":
        return np.einsum("kab,k->ab", per, nk) / WR.sum()
    var = np.diagonal(per, axis1=1, axis2=2)
    if name == "diag":
        return var
    if name == "spherical":
        return var.mean(1)
    return np.sum(var.mean(1) * nk) / WR.sum()  # isotropic: pooled


@pytest.mark.parametrize("name", BASE)
def test_family_log_density_against_scipy(name):
    fam = families.get(name)
    cov, full = random_covariances(name)
    floor = np.asarray(1e-9) if fam.scalar_variances else np.full(D_, 1e-9)
    cov_used, pf, n_bad = fam.factor(jnp.asarray(cov), floor)
    assert int(n_bad) == 0
    np.testing.assert_allclose(cov_used, cov, rtol=1e-14)
    got = np.asarray(fam.log_gauss(jnp.asarray(X), jnp.asarray(MEANS), pf))
    ref = np.stack(
        [multivariate_normal(m, c).logpdf(X) for m, c in zip(MEANS, full, strict=True)], 1
    )
    np.testing.assert_allclose(got, ref, rtol=1e-12)
    # the precisions and scikit-learn's precision factor from them
    prec = fam.precisions(np.asarray(pf))
    np.testing.assert_allclose(prec, np.linalg.inv(cov) if fam.matrix else 1 / cov, rtol=1e-10)
    cov2, upper = fam.from_precisions(prec)
    np.testing.assert_allclose(cov2, cov, rtol=1e-10)
    np.testing.assert_allclose(fam.precisions(upper), prec, rtol=1e-10)


@pytest.mark.parametrize("name", BASE)
def test_family_moments_and_scatter_against_naive_sums(name):
    fam = families.get(name)
    nk, s1, s2 = (np.asarray(a) for a in fam.moments(jnp.asarray(X), jnp.asarray(WR)))
    np.testing.assert_allclose(nk, WR.sum(0), rtol=1e-13)
    np.testing.assert_allclose(s1, WR.T @ X, rtol=1e-13)
    if name == "full":
        ref = np.einsum("nk,na,nb->kab", WR, X, X)
    elif name == "tied":
        ref = np.einsum("n,na,nb->ab", WR.sum(1), X, X)
    else:
        ref = WR.T @ X**2
    np.testing.assert_allclose(s2, ref, rtol=1e-13)
    # the M-step scatter about the weighted means equals the covariance's definition
    means = s1 / nk[:, None]
    got = fam.scatter(jnp.asarray(nk), jnp.asarray(s1), jnp.asarray(s2), WR.sum(), means, nk)
    np.testing.assert_allclose(got, naive_scatter(name, means), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", BASE)
def test_family_parameter_count_and_sampling(name):
    fam = families.get(name)
    cov, full = random_covariances(name)
    # free parameters: the distinct entries of the covariances the family can express
    distinct = {
        "full": K_ * D_ * (D_ + 1) // 2,
        "tied": D_ * (D_ + 1) // 2,
        "diag": K_ * D_,
        "spherical": K_,
        "isotropic": 1,
    }[name]
    assert fam.n_cov_params(K_, D_) == distinct
    # draws have the component's covariance (Monte Carlo, 5 standard errors per entry)
    rng = np.random.default_rng(0)
    n = 40_000
    z = fam.sample_noise(rng, fam.component(cov, 1), n, D_)
    emp = z.T @ z / n
    c = full[1]
    se = np.sqrt((c**2 + np.outer(np.diag(c), np.diag(c))) / n)
    assert np.all(np.abs(emp - c) < 5 * se)


def test_collapsed_covariance_is_floored_only_when_collapsed():
    fam = families.get("full")
    cov = np.stack([np.eye(2), np.array([[1.0, 1.0], [1.0, 1.0]])])  # the second is singular
    floor = np.full(2, 1e-6)
    used, pf, n_bad = fam.factor(jnp.asarray(cov), floor)
    assert int(n_bad) == 1
    np.testing.assert_array_equal(used[0], cov[0])
    np.testing.assert_allclose(used[1], cov[1] + np.diag(floor), rtol=1e-15)
    np.testing.assert_allclose(
        np.asarray(pf[1]) @ np.asarray(pf[1]).T, np.linalg.inv(used[1]), rtol=1e-6
    )


def test_normalize_log_handles_far_and_empty_rows():
    lw = jnp.asarray(
        [[0.0, -1e4, np.log(3.0)], [-np.inf, -np.inf, -np.inf], [-800.0, -801.0, -2e3]]
    )
    l, r = normalize_log(lw)
    np.testing.assert_allclose(l[0], np.log(4.0), rtol=1e-15)
    np.testing.assert_allclose(r[0], [0.25, 0.0, 0.75], rtol=1e-15)
    assert l[1] == -np.inf and np.all(np.asarray(r[1]) == 0.0)
    np.testing.assert_allclose(
        r[2, :2], [1 / (1 + np.exp(-1.0)), np.exp(-1.0) / (1 + np.exp(-1.0))]
    )


def test_unknown_family_is_named():
    with pytest.raises(ValueError, match="unknown covariance family 'XYZ'"):
        families.get("XYZ")


@pytest.mark.parametrize("update_weights", [False, True])
def test_estimator_equals_the_sample_sources_em_step(update_weights):
    # the estimator with spherical covariances frozen at sigma^2 is the seeds' isotropic
    # model: t of its iterations equal t EM steps of gs.sample(X) from the same start
    rng = np.random.default_rng(3)
    Xs = np.vstack([rng.standard_normal((200, 2)) + c for c in ([0, 0], [4, 0], [0, 4])])
    m0 = np.array([[0.5, 0.5], [3.0, 1.0], [1.0, 3.0]])
    w0 = np.array([0.2, 0.3, 0.5])
    sigma, t = 1.3, 6
    freeze = ("covariances",) if update_weights else ("weights", "covariances")
    gm = GaussianMixture(
        3, covariance_type="spherical", weights_init=w0, means_init=m0,
        precisions_init=np.full(3, sigma**-2), freeze=freeze, tol=0.0, max_iter=t,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit(Xs)
    src = gs.sample(Xs)
    model = gs.Mixture(m0, weights=w0, sigma=sigma)
    for _ in range(t):
        model = src.em_step(model, update_weights=update_weights)
    np.testing.assert_allclose(gm.means_, np.asarray(model.means), rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(gm.weights_, np.asarray(model.weights), rtol=1e-11)
    np.testing.assert_allclose(gm.covariances_, sigma**2, rtol=1e-14)


def test_one_chunking_rule():
    from gmmscape.core.chunks import chunk_length, next_pow2, padded_length

    assert [next_pow2(n) for n in (0, 1, 2, 3, 5, 256, 257)] == [1, 1, 2, 4, 8, 256, 512]
    # the largest power of two within the budget, clamped
    assert chunk_length(3, 100) == 32 and 32 * 3 <= 100 < 64 * 3
    assert chunk_length(10**9, 100) == 1
    assert chunk_length(1, 2**30, lo=256, hi=2**16) == 2**16
    assert chunk_length(10**6, 2**20, lo=256) == 256
    assert padded_length(150, 4096, lo=256) == 256
    assert padded_length(1000, 4096, lo=256) == 1024
    assert padded_length(5000, 4096, lo=256) == 4096


def test_chunk_layout_pads_only_small_data_and_caps_the_rows():
    from gmmscape.core import chunks

    # small data: one chunk padded to a rung of the row ladder (iris, faithful, digits)
    assert chunks.chunk_layout(150, 8, 4) == (256, 1)
    assert chunks.chunk_layout(272, 12, 2) == (288, 1)
    assert chunks.chunk_layout(1797, 12, 64) == (1920, 1)
    # the ladder: 8 equal steps per octave, padding below 12.5%, nearby sizes share
    ladder = [chunks.row_bucket(n) for n in range(1, 20_000)]
    small = chunks.MIN_ROWS
    assert all(r == small for r in ladder[:small])
    assert all(n <= r < n * 1.125 for n, r in enumerate(ladder[small:], small + 1))
    assert sorted(set(ladder))[:10] == [256, 288, 320, 352, 384, 416, 448, 480, 512, 576]
    assert all(r % 32 == 0 for r in ladder)
    assert chunks.row_bucket(1437) == chunks.row_bucket(1438)  # 5-fold CV of digits
    # many rows: chunks of at most MAX_ROWS, never one chunk padded by up to half
    rows, n_chunks = chunks.chunk_layout(100_000, 8, 5)
    assert rows == chunks.MAX_ROWS and n_chunks == 98
    assert rows * n_chunks - 100_000 < rows
    # large k d: the element budget sets shorter chunks, as before
    assert chunks.chunk_layout(10**6, 16, 16) == (1024, 977)
    assert chunks.chunk_layout(10**6, 64, 64) == (chunks.MIN_ROWS, 3907)
    # a chunk size given by the user is kept
    assert chunks.chunk_layout(100_000, 8, 5, chunk_size=4096) == (4096, 25)


@pytest.mark.parametrize("name", ["full", "tied", "diag", "spherical"])
def test_statistics_jit_equals_eager_and_vmap_equals_loop(name):
    import jax

    from gmmscape.estimator import _kernels as K

    fam = families.get(name)
    floor = np.asarray(1e-9) if fam.scalar_variances else np.full(D_, 1e-9)
    starts = []
    for i in range(3):  # three parameter sets: a batch of starts
        cov, _ = random_covariances(name)
        c, pf, _ = fam.factor(jnp.asarray(cov), floor)
        w = RNG.dirichlet(np.ones(K_))
        starts.append(K.Params(jnp.asarray(w), jnp.asarray(MEANS + i), c, pf))
    batch = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *starts)
    xc, wc = jnp.asarray(X)[None], jnp.ones((1, len(X)))
    vmapped = batched_family_stats(xc, wc, batch, family=name)  # jitted, vmapped
    with jax.disable_jit():
        for i, p in enumerate(starts):
            eager = family_stats(jnp.asarray(X), jnp.ones(len(X)), p, name)
            for f in ("w", "ll", "r0", "r1", "s2"):
                a, b = getattr(eager, f), getattr(vmapped, f)
                np.testing.assert_allclose(b[i], a, rtol=1e-12, atol=1e-12)
