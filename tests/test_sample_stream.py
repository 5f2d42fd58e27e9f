"""Sample and stream sources against direct numpy/scipy computations and the population.

- (a) a large stream or sample lands within a few standard errors of the population value;
- (b) the reported standard errors equal the standard error of a weighted mean computed
  here from per-point values (``scipy.stats`` log-densities);
- (c) every sample statistic equals a direct numpy computation on a small dataset, and the
  Hessian also equals finite differences of the numpy NLL;
- (d) streams are reproducible from ``(seed, chunk_size)`` and equal the sample source
  built from the points of their documented draw contract;
- (e) integer sample weights act like repeated rows.

Nothing here compares gmmscape with its own earlier output.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from scipy import special, stats

import gmmscape as gs
from gmmscape.core.stats import draw

#: Allowed distance of a Monte-Carlo estimate from the population value, in standard errors.
N_SE = 4.0
#: Norm-wise relative tolerance between gmmscape and the same sums in numpy.
EXACT_RTOL = 1e-12
EXACT_ATOL = 1e-14
#: Relative tolerance on standard errors (same sums, different order).
SE_RTOL = 1e-9
#: Step and tolerance of the finite-difference derivatives of the numpy NLL.
FD_STEP = 2e-4
FD_GRAD_RTOL = 1e-8
FD_HESS_RTOL = 1e-6
#: A stream and the sample of its points sum the same numbers in different orders.
STREAM_RTOL = 1e-12


# --------------------------------------------------------------------------------------
# Direct numpy/scipy computations
# --------------------------------------------------------------------------------------


def _log_components(X, mu, pi, s):
    """``log pi_i + log N(x; mu_i, s^2 I)`` by scipy.stats, shape (n, k)."""
    with np.errstate(divide="ignore"):
        logw = np.log(np.asarray(pi, dtype=float))
    lp = stats.norm.logpdf(X[:, None, :], loc=np.asarray(mu)[None], scale=s).sum(axis=-1)
    return logw[None, :] + lp


def per_point(X, mu, pi, s, truth=None):
    """Per-point log-density, responsibilities, KL integrand and gradient terms."""
    mu = np.asarray(mu, dtype=float)
    lc = _log_components(X, mu, pi, s)
    l = special.logsumexp(lc, axis=1)
    psi = np.exp(lc - l[:, None])
    diff = X[:, None, :] - mu[None]
    out = {"l": l, "psi": psi, "diff": diff, "grad": -psi[:, :, None] * diff / s**2}
    if truth is not None:
        lt = special.logsumexp(
            _log_components(X, np.asarray(truth.means), np.asarray(truth.weights), truth.sigma),
            axis=1,
        )
        out["lr"] = lt - l
    return out


def numpy_nll(X, w, mu, pi, s):
    return -np.sum(w * special.logsumexp(_log_components(X, mu, pi, s), axis=1)) / np.sum(w)


def numpy_expect(X, w, mu, pi, s, truth=None):
    """Every statistic of the weighted empirical measure, straight from the definitions."""
    mu = np.asarray(mu, dtype=float)
    k, d = mu.shape
    pt = per_point(X, mu, pi, s, truth)
    psi, diff = pt["psi"], pt["diff"]
    W = np.sum(w)
    mass = w @ psi
    out = {
        "nll": -(w @ pt["l"]) / W,
        "mean_shift": np.einsum("n,nk,nkd->kd", w, psi, diff) / W,
        "em_weights": mass / W,
        "em_means": np.einsum("n,nk,nd->kd", w, psi, X) / mass[:, None],
    }
    out["grad"] = -out["mean_shift"] / s**2
    if truth is not None:
        out["kl"] = (w @ pt["lr"]) / W
    # Per-point Hessian of -log p: psi_i psi_j g_i g_j^T - delta_ij psi_i (g_i g_i^T - I/s^2).
    g = diff / s**2
    v = (psi[:, :, None] * g).reshape(len(X), k * d)
    h = np.einsum("n,na,nb->ab", w, v, v).reshape(k, d, k, d)
    for i in range(k):
        h[i, :, i, :] -= np.einsum("n,n,na,nb->ab", w, psi[:, i], g[:, i], g[:, i])
        h[i, :, i, :] += mass[i] * np.eye(d) / s**2
    out["hessian"] = h.reshape(k * d, k * d) / W
    return out


def weighted_mean_se(values, w):
    """Standard error of ``sum w a / sum w`` by linearisation: sqrt(sum w^2 (a - m)^2) / W."""
    values = np.asarray(values, dtype=float)
    W = np.sum(w)
    m = np.tensordot(w, values, axes=1) / W
    return np.sqrt(np.tensordot(w**2, (values - m) ** 2, axes=1)) / W


def numpy_se(X, w, mu, pi, s, truth=None):
    pt = per_point(X, mu, pi, s, truth)
    out = {"nll": weighted_mean_se(-pt["l"], w), "grad": weighted_mean_se(pt["grad"], w)}
    if truth is not None:
        out["kl"] = weighted_mean_se(pt["lr"], w)
    return out


def stream_points(truth: gs.Mixture, n: int, seed: int, chunk_size: int) -> np.ndarray:
    """The points of ``gs.stream(truth, n, seed, chunk_size=chunk_size)`` (its contract)."""
    key = jax.random.key(seed)
    n_chunks = -(-n // chunk_size)
    chunks = [
        np.asarray(draw(jax.random.fold_in(key, i), truth, chunk_size)) for i in range(n_chunks)
    ]
    return np.concatenate(chunks)[:n]


def _assert_close(name, got, ref, rtol=EXACT_RTOL, atol=EXACT_ATOL):
    got, ref = np.asarray(got, dtype=float), np.asarray(ref, dtype=float)
    assert got.shape == ref.shape, f"{name}: shape {got.shape} != {ref.shape}"
    diff = float(np.max(np.abs(got - ref)))
    scale = float(np.max(np.abs(ref)))
    assert diff <= max(rtol * scale, atol), f"{name}: max|diff| {diff:.3e} (scale {scale:.3e})"


# --------------------------------------------------------------------------------------
# Problems
# --------------------------------------------------------------------------------------

TRUTH_1D = gs.Mixture(means=[[-2.0], [2.0]], weights=[0.4, 0.6], sigma=1.0)
MODEL_1D = gs.Mixture(means=[[-1.0], [0.5], [3.0]], weights=[0.2, 0.3, 0.5], sigma=1.3)

TRUTH_2D = gs.Mixture(means=[[-2.0, 0.0], [2.0, 1.0], [0.0, 3.0]], sigma=0.8)
MODEL_2D = gs.Mixture(means=[[-1.5, 0.5], [1.0, 2.0]], weights=[0.45, 0.55], sigma=1.1)

TRUTH_3D = gs.Mixture(means=[[0.0, 0.0, 0.0]], sigma=1.0)
MODEL_3D = gs.Mixture(means=[[0.4, -0.2, 0.1], [-0.3, 0.5, 0.0]], weights=[0.3, 0.7], sigma=1.0)


def _small_data(seed: int, n: int, d: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=2.0, size=(3, d))
    return centers[rng.integers(0, 3, size=n)] + rng.normal(size=(n, d))


# --------------------------------------------------------------------------------------
# (a) Monte-Carlo sources converge to the population
# --------------------------------------------------------------------------------------


def _assert_within_se(e: gs.Expectation, pop: gs.Expectation) -> None:
    for key in ("nll", "kl"):
        z = abs(getattr(e, key) - getattr(pop, key)) / e.se[key]
        assert z <= N_SE, f"{key}: {z:.2f} standard errors from the population value"
    se = np.asarray(e.se["grad"])
    assert se.shape == pop.grad.shape and np.all(se > 0)
    z = np.abs(e.grad - pop.grad) / se
    assert np.all(z <= N_SE), f"grad: {z.max():.2f} standard errors from the population value"


@pytest.mark.parametrize(
    ("truth", "model", "n", "seed"),
    [(TRUTH_1D, MODEL_1D, 1_000_000, 11), (TRUTH_2D, MODEL_2D, 500_000, 12)],
    ids=["1d-k3-kstar2", "2d-k2-kstar3"],
)
def test_stream_converges_to_population(truth, model, n, seed):
    pop = gs.population(truth).expect(model)
    e = gs.stream(truth, n=n, seed=seed, chunk_size=2**16).expect(model)
    _assert_within_se(e, pop)
    # The standard errors shrink like 1/sqrt(n): they are not vacuous.
    assert e.se["nll"] < 5.0 / np.sqrt(n)


def test_sample_converges_to_population():
    X = TRUTH_3D.sample(200_000, seed=13)
    e = gs.sample(X, truth=TRUTH_3D).expect(MODEL_3D)
    pop = gs.population(TRUTH_3D).expect(MODEL_3D)
    _assert_within_se(e, pop)


def test_sample_from_wrong_truth_is_detected():
    """The N_SE criterion has power: a shifted truth is many standard errors away."""
    shifted = gs.Mixture(means=[[0.05, 0.0, 0.0]], sigma=1.0)
    X = shifted.sample(200_000, seed=14)
    e = gs.sample(X, truth=shifted).expect(MODEL_3D)
    pop = gs.population(TRUTH_3D).expect(MODEL_3D)
    z = np.abs(e.grad - pop.grad) / e.se["grad"]
    assert z.max() > 3 * N_SE


# --------------------------------------------------------------------------------------
# (b) standard errors
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_sample_se_matches_numpy(weighted):
    X = _small_data(21, 2000, 2)
    rng = np.random.default_rng(22)
    w = rng.uniform(0.1, 3.0, size=len(X)) if weighted else np.ones(len(X))
    e = gs.sample(X, weights=w if weighted else None, truth=TRUTH_2D).expect(MODEL_2D)
    m = MODEL_2D
    ref = numpy_se(X, w, np.asarray(m.means), np.asarray(m.weights), float(m.sigma), TRUTH_2D)
    for key in ("nll", "kl", "grad"):
        _assert_close(f"se[{key}]", e.se[key], ref[key], rtol=SE_RTOL, atol=0.0)


def test_stream_se_matches_numpy():
    n, seed, chunk = 3000, 23, 1024
    e = gs.stream(TRUTH_1D, n=n, seed=seed, chunk_size=chunk).expect(MODEL_1D)
    X = stream_points(TRUTH_1D, n, seed, chunk)
    m = MODEL_1D
    ref = numpy_se(
        X, np.ones(n), np.asarray(m.means), np.asarray(m.weights), float(m.sigma), TRUTH_1D
    )
    for key in ("nll", "kl", "grad"):
        _assert_close(f"se[{key}]", e.se[key], ref[key], rtol=SE_RTOL, atol=0.0)


# --------------------------------------------------------------------------------------
# (c) sample statistics from the definitions
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_size", [None, 64])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_sample_matches_numpy(weighted, chunk_size):
    X = _small_data(31, 500, 2)
    rng = np.random.default_rng(32)
    w = rng.uniform(0.0, 5.0, size=len(X)) if weighted else np.ones(len(X))
    model = gs.Mixture(
        means=[[-1.0, 0.5], [1.5, -0.5], [0.0, 2.0]], weights=[0.5, 0.2, 0.3], sigma=1.4
    )
    src = gs.sample(X, weights=w if weighted else None, truth=TRUTH_2D, chunk_size=chunk_size)
    e = src.expect(model, hessian=True)
    mu, pi, s = np.asarray(model.means), np.asarray(model.weights), float(model.sigma)
    ref = numpy_expect(X, w, mu, pi, s, TRUTH_2D)
    for key in ("nll", "kl", "grad", "mean_shift", "em_means", "em_weights", "hessian"):
        _assert_close(key, getattr(e, key), ref[key])
    _assert_close("nll()", src.nll(model), ref["nll"])
    _assert_close("kl()", src.kl(model), ref["kl"])
    _assert_close("grad()", src.grad(model), ref["grad"])
    _assert_close("hessian()", src.hessian(model), ref["hessian"])
    fixed = src.em_step(model)
    _assert_close("em_step means", fixed.means, ref["em_means"])
    _assert_close("em_step weights", fixed.weights, pi)
    free = src.em_step(model, update_weights=True)
    _assert_close("em_step(update_weights) means", free.means, ref["em_means"])
    _assert_close("em_step(update_weights) weights", free.weights, ref["em_weights"])
    eta = 0.3
    step = src.gradient_em_step(model, eta)
    _assert_close("gradient_em_step", step.means, mu + eta * ref["mean_shift"])


def test_sample_derivatives_match_finite_differences():
    """grad and Hessian equal central differences of the numpy NLL (not of gmmscape)."""
    X = _small_data(41, 400, 2)
    w = np.random.default_rng(42).uniform(0.5, 2.0, size=len(X))
    mu = np.array([[-1.0, 0.5], [1.5, -0.5]])
    pi, s = np.array([0.35, 0.65]), 0.9
    e = gs.sample(X, weights=w).expect(gs.Mixture(mu, weights=pi, sigma=s), hessian=True)
    p = mu.size
    h = FD_STEP

    def f(theta):
        return numpy_nll(X, w, theta.reshape(mu.shape), pi, s)

    theta = mu.ravel()
    eye = np.eye(p)
    fd_grad = np.array(
        [(f(theta + h * eye[a]) - f(theta - h * eye[a])) / (2 * h) for a in range(p)]
    )
    _assert_close("grad vs FD", e.grad.ravel(), fd_grad, rtol=FD_GRAD_RTOL)
    fd_hess = np.empty((p, p))
    for a in range(p):
        for b in range(p):
            fd_hess[a, b] = (
                f(theta + h * eye[a] + h * eye[b])
                - f(theta + h * eye[a] - h * eye[b])
                - f(theta - h * eye[a] + h * eye[b])
                + f(theta - h * eye[a] - h * eye[b])
            ) / (4 * h * h)
    _assert_close("hessian vs FD", e.hessian, fd_hess, rtol=FD_HESS_RTOL)
    assert e.kl is None and "kl" not in e.se
    with pytest.raises(ValueError, match="truth"):
        gs.sample(X).kl(gs.Mixture(mu, weights=pi, sigma=s))


# --------------------------------------------------------------------------------------
# (d) streams: reproducibility and the draw contract
# --------------------------------------------------------------------------------------


def _fields(e: gs.Expectation) -> dict:
    out = {
        "nll": e.nll,
        "kl": e.kl,
        "grad": e.grad,
        "em_means": e.em_means,
        "em_weights": e.em_weights,
        "mean_shift": e.mean_shift,
        "hessian": e.hessian,
    }
    out.update({f"se_{key}": val for key, val in e.se.items()})
    return out


def test_stream_is_reproducible():
    args = {"n": 5000, "seed": 3, "chunk_size": 1024}
    a = gs.stream(TRUTH_2D, **args).expect(MODEL_2D, hessian=True)
    b = gs.stream(TRUTH_2D, **args).expect(MODEL_2D, hessian=True)
    for key, val in _fields(a).items():
        assert np.array_equal(val, _fields(b)[key]), f"{key} differs between identical streams"
    c = gs.stream(TRUTH_2D, **{**args, "seed": 4}).expect(MODEL_2D, hessian=True)
    assert c.nll != a.nll
    assert not np.array_equal(c.grad, a.grad)


@pytest.mark.parametrize(("n", "chunk_size"), [(4096, 1024), (3000, 1024), (700, 1024)])
def test_stream_equals_sample_of_its_points(n, chunk_size):
    seed = 17
    X = stream_points(TRUTH_2D, n, seed, chunk_size)
    assert X.shape == (n, 2)
    e_stream = gs.stream(TRUTH_2D, n=n, seed=seed, chunk_size=chunk_size).expect(
        MODEL_2D, hessian=True
    )
    e_sample = gs.sample(X, truth=TRUTH_2D).expect(MODEL_2D, hessian=True)
    ref = _fields(e_sample)
    for key, val in _fields(e_stream).items():
        _assert_close(key, val, ref[key], rtol=STREAM_RTOL)
    # And both equal the definitions.
    m = MODEL_2D
    direct = numpy_expect(
        X, np.ones(n), np.asarray(m.means), np.asarray(m.weights), float(m.sigma), TRUTH_2D
    )
    for key in ("nll", "kl", "grad", "em_means", "em_weights", "hessian"):
        _assert_close(f"stream {key} vs numpy", getattr(e_stream, key), direct[key])


# --------------------------------------------------------------------------------------
# (e) sample weights
# --------------------------------------------------------------------------------------


def test_integer_weights_equal_repeated_rows():
    X = _small_data(51, 300, 2)
    counts = np.random.default_rng(52).integers(0, 4, size=len(X))  # zeros included
    model = MODEL_2D
    a = gs.sample(X, weights=counts, truth=TRUTH_2D).expect(model, hessian=True)
    b = gs.sample(np.repeat(X, counts, axis=0), truth=TRUTH_2D).expect(model, hessian=True)
    for key in ("nll", "kl", "grad", "em_means", "em_weights", "mean_shift", "hessian"):
        _assert_close(key, getattr(a, key), getattr(b, key))


def test_weights_are_scale_free():
    """Weights of any scale give the same results, standard errors included."""
    X = _small_data(61, 300, 2)
    w = np.random.default_rng(62).uniform(0.2, 3.0, size=len(X))
    a = gs.sample(X, weights=w, truth=TRUTH_2D).expect(MODEL_2D, hessian=True)
    b = gs.sample(X, weights=7.5 * w, truth=TRUTH_2D).expect(MODEL_2D, hessian=True)
    ref = _fields(a)
    for key, val in _fields(b).items():
        _assert_close(key, val, ref[key])
