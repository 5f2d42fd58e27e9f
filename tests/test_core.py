"""Core invariants: derivatives against finite differences, KL facts, symmetry, EM ascent,
log-domain numerics and input checks."""

import itertools

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gmmscape as gs
from gmmscape.core.stats import responsibilities

#: Central finite differences with step FD_STEP have error ~ FD_STEP^2 * third derivative.
FD_STEP = 1e-5
FD_RTOL = 1e-6
#: Exact identities hold to rounding.
EXACT_ATOL = 1e-13


def _fd_grad(f, means, h=FD_STEP):
    means = np.asarray(means, dtype=float)
    g = np.zeros_like(means)
    for idx in itertools.product(*map(range, means.shape)):
        e = np.zeros_like(means)
        e[idx] = h
        g[idx] = (f(means + e) - f(means - e)) / (2 * h)
    return g


def _population_cases():
    truth1 = gs.Mixture([[-2.0], [2.0]], weights=[0.3, 0.7], sigma=1.0)
    model1 = gs.Mixture([[-1.0], [0.5], [3.0]], weights=[0.2, 0.3, 0.5], sigma=1.2)
    truth2 = gs.Mixture([[0.0, 0.0], [3.0, 1.0]], sigma=0.8)
    model2 = gs.Mixture([[0.5, -0.5], [2.0, 2.0]], sigma=1.0)
    # d = 5 with a span of dimension 2: the orthogonal directions enter in closed form.
    truth5 = gs.Mixture([[0.0] * 5, [2.0, 1.0, 0.0, 0.0, 0.0]], sigma=1.0)
    model5 = gs.Mixture([[0.5, 0.0, 0.0, 0.0, 0.0], [1.0, 2.0, 0.0, 0.0, 0.0]], sigma=1.1)
    return [(truth1, model1), (truth2, model2), (truth5, model5)]


@pytest.mark.parametrize(("truth", "model"), _population_cases())
def test_population_gradient_matches_finite_differences(truth, model):
    pop = gs.population(truth)

    def f(m):
        return pop.nll(model.replace(means=m))

    np.testing.assert_allclose(
        pop.grad(model), _fd_grad(f, model.means), rtol=FD_RTOL, atol=FD_RTOL
    )


@pytest.mark.parametrize(("truth", "model"), _population_cases())
def test_population_hessian_matches_finite_differences_of_gradient(truth, model):
    pop = gs.population(truth)
    k, d = model.means.shape
    means = np.asarray(model.means)
    h = pop.hessian(model)
    assert h.shape == (k * d, k * d)
    fd = np.zeros_like(h)
    for col, idx in enumerate(itertools.product(range(k), range(d))):
        e = np.zeros_like(means)
        e[idx] = FD_STEP
        gp = pop.grad(model.replace(means=means + e))
        gm = pop.grad(model.replace(means=means - e))
        fd[:, col] = ((gp - gm) / (2 * FD_STEP)).ravel()
    np.testing.assert_allclose(h, fd, rtol=FD_RTOL, atol=FD_RTOL)
    np.testing.assert_allclose(h, h.T, atol=EXACT_ATOL)


def test_sample_gradient_and_hessian_match_finite_differences():
    truth = gs.Mixture([[-1.0, 0.0], [1.5, 1.0]], sigma=1.0)
    model = gs.Mixture([[-0.5, 0.3], [1.0, 0.0], [2.0, 2.0]], weights=[0.5, 0.3, 0.2])
    X = truth.sample(500, seed=3)
    w = np.random.default_rng(0).uniform(0.5, 2.0, size=500)
    smp = gs.sample(X, weights=w)

    def f(m):
        return smp.nll(model.replace(means=m))

    np.testing.assert_allclose(smp.grad(model), _fd_grad(f, model.means), rtol=1e-7, atol=1e-8)
    hess = smp.hessian(model)
    means = np.asarray(model.means)
    for col, idx in enumerate(itertools.product(range(3), range(2))):
        e = np.zeros_like(means)
        e[idx] = FD_STEP
        fd = smp.grad(model.replace(means=means + e)) - smp.grad(model.replace(means=means - e))
        np.testing.assert_allclose(hess[:, col], fd.ravel() / (2 * FD_STEP), rtol=1e-6, atol=1e-7)


def test_kl_is_zero_at_truth_and_positive_elsewhere():
    truth = gs.Mixture([[-2.0, 0.0], [2.0, 1.0], [0.0, 3.0]], weights=[0.2, 0.3, 0.5])
    pop = gs.population(truth)
    e = pop.expect(truth)
    assert abs(e.kl) < EXACT_ATOL
    np.testing.assert_allclose(e.grad, 0.0, atol=1e-12)
    rng = np.random.default_rng(1)
    for _ in range(5):
        model = gs.Mixture(rng.normal(scale=2.0, size=(3, 2)), weights=[0.2, 0.3, 0.5])
        assert pop.kl(model) > 1e-6
    # nll - kl is the entropy of the truth, whatever the model
    ent = [pop.nll(m) - pop.kl(m) for m in (truth, gs.Mixture([[0.0, 0.0]]))]
    assert abs(ent[0] - ent[1]) < 1e-11


def test_single_gaussian_closed_forms():
    # truth N(b, s*^2 I), model N(m, s^2 I): KL and nll in closed form, in d = 7.
    d, s_true, s_model = 7, 0.7, 1.3
    b = np.arange(d, dtype=float) / 3
    m = b + np.linspace(-1, 1, d)
    pop = gs.population(gs.Mixture([b], sigma=s_true))
    model = gs.Mixture([m], sigma=s_model)
    e = pop.expect(model, hessian=True)
    sq = float(np.sum((m - b) ** 2))
    kl = d * (np.log(s_model / s_true) + s_true**2 / (2 * s_model**2) - 0.5) + sq / (2 * s_model**2)
    assert e.kl == pytest.approx(kl, rel=1e-12)
    np.testing.assert_allclose(e.grad[0], (m - b) / s_model**2, rtol=1e-12)
    np.testing.assert_allclose(e.hessian, np.eye(d) / s_model**2, atol=1e-12)
    np.testing.assert_allclose(e.em_means[0], b, atol=1e-12)


def test_permutation_invariance():
    truth = gs.Mixture([[-2.0, 0.0], [2.0, 1.0]], sigma=1.0)
    means = np.array([[-1.0, 0.5], [0.5, 0.0], [3.0, 1.0]])
    weights = np.array([0.2, 0.3, 0.5])
    perm = np.array([2, 0, 1])
    pop = gs.population(truth)
    a = pop.expect(gs.Mixture(means, weights=weights), hessian=True)
    b = pop.expect(gs.Mixture(means[perm], weights=weights[perm]), hessian=True)
    assert a.nll == pytest.approx(b.nll, rel=1e-13)
    np.testing.assert_allclose(a.grad[perm], b.grad, atol=1e-13)
    np.testing.assert_allclose(a.em_means[perm], b.em_means, atol=1e-12)
    ha = a.hessian.reshape(3, 2, 3, 2)[perm][:, :, perm]
    np.testing.assert_allclose(ha, b.hessian.reshape(3, 2, 3, 2), atol=1e-12)


def test_gradient_em_is_a_gradient_step_with_step_eta_sigma2():
    truth = gs.Mixture([[0.0, 0.0]], sigma=1.0)
    model = gs.Mixture([[1.0, 0.5], [-0.5, 0.2]], weights=[0.4, 0.6], sigma=1.5)
    for src in (gs.population(truth), gs.sample(truth.sample(200, seed=1))):
        eta = 0.3
        new = src.gradient_em_step(model, eta)
        expected = np.asarray(model.means) - eta * 1.5**2 * src.grad(model)
        np.testing.assert_allclose(new.means, expected, atol=1e-12)
        np.testing.assert_allclose(new.weights, model.weights)


def test_em_step_weight_update_and_fixed_weights():
    truth = gs.Mixture([[-2.0], [2.0]], weights=[0.3, 0.7])
    model = gs.Mixture([[-1.0], [1.0]])
    pop = gs.population(truth)
    fixed = pop.em_step(model)
    np.testing.assert_allclose(fixed.weights, [0.5, 0.5])
    free = pop.em_step(model, update_weights=True)
    assert float(np.sum(free.weights)) == pytest.approx(1.0, abs=1e-14)
    # the weight update is the responsibility mass, which follows the truth's imbalance
    assert free.weights[1] > free.weights[0]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    k=st.integers(1, 4),
    d=st.integers(1, 3),
    update_weights=st.booleans(),
)
def test_em_step_never_decreases_sample_likelihood(seed, k, d, update_weights):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(60, d)) * rng.uniform(0.5, 3.0) + rng.normal(size=d)
    w = rng.uniform(0.1, 2.0, size=60)
    weights = rng.dirichlet(np.ones(k))
    model = gs.Mixture(rng.normal(scale=2.0, size=(k, d)), weights=weights, sigma=1.0)
    smp = gs.sample(X, weights=w)
    before = smp.nll(model)
    after = smp.nll(smp.em_step(model, update_weights=update_weights))
    assert after <= before + 1e-12 * max(1.0, abs(before))


def test_far_component_gets_exactly_zero_responsibility():
    model = gs.Mixture([[0.0], [50.0]], sigma=1.0)
    x = jnp.asarray([[0.0], [-3.0], [1.0]])
    psi = np.asarray(responsibilities(x, model))
    assert np.all(psi[:, 1] == 0.0)
    assert np.all(np.isfinite(psi))
    truth = gs.Mixture([[0.0]], sigma=1.0)
    for src in (gs.population(truth), gs.sample(truth.sample(100, seed=0))):
        e = src.expect(model, hessian=True)
        assert all(np.isfinite(v).all() for v in (e.nll, e.grad, e.hessian, e.em_means))
        new = src.em_step(model)
        assert np.asarray(new.means)[1, 0] == 50.0  # empty component keeps its mean


def test_float64_is_the_default():
    m = gs.Mixture([[0.0], [1.0]])
    assert m.means.dtype == jnp.float64
    e = gs.population(gs.Mixture([[0.0]])).expect(m)
    assert e.grad.dtype == np.float64


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: gs.Mixture([[np.nan]]), "means holds 1 non-finite"),
        (lambda: gs.Mixture([-2.0, 2.0]), "means must have 2 dimension"),
        (lambda: gs.Mixture(np.zeros((0, 2))), "means is empty"),
        (lambda: gs.Mixture([[0.0], [1.0]], weights=[0.5, 0.6]), "weights must sum to 1"),
        (lambda: gs.Mixture([[0.0], [1.0]], weights=[1.5, -0.5]), "weights must be non-negative"),
        (lambda: gs.Mixture([[0.0], [1.0]], weights=[1.0]), r"weights must have shape \(2,\)"),
        (lambda: gs.Mixture([[0.0]], sigma=0.0), "sigma must be a finite number > 0"),
        (lambda: gs.Mixture([[0.0]], sigma=-1.0), "sigma must be a finite number > 0"),
        (lambda: gs.Mixture([[0.0]], sigma=np.inf), "sigma must be a finite number > 0"),
        (lambda: gs.sample(np.zeros((0, 2))), "X is empty"),
        (lambda: gs.sample([[0.0, np.inf]]), "X holds 1 non-finite"),
        (lambda: gs.sample([1.0, 2.0]), "X must have 2 dimension"),
        (lambda: gs.sample([["a", "b"]]), "X must be numeric"),
        (lambda: gs.sample(np.zeros((3, 1)), weights=[1.0, 1.0]), r"weights must have shape"),
        (lambda: gs.sample(np.zeros((2, 1)), weights=[1.0, -1.0]), "weights must be non-neg"),
        (lambda: gs.sample(np.zeros((2, 1)), weights=[0.0, 0.0]), "must not all be zero"),
        (lambda: gs.stream(gs.Mixture([[0.0]]), n=0, seed=0), "n must be an integer >= 1"),
        (lambda: gs.population(gs.Mixture([[0.0]]), rule="simpson"), "rule must be"),
        (lambda: gs.population("truth"), "truth must be a gmmscape.Mixture"),
    ],
)
def test_bad_input_names_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_model_checks_at_source_boundary():
    pop = gs.population(gs.Mixture([[0.0, 0.0]]))
    with pytest.raises(ValueError, match="model has dimension d=1"):
        pop.nll(gs.Mixture([[0.0]]))
    with pytest.raises(ValueError, match=r"model must be a gmmscape\.Mixture"):
        pop.nll(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="eta must be a finite number > 0"):
        pop.gradient_em_step(gs.Mixture([[0.0, 1.0]]), eta=0.0)
    with pytest.raises(ValueError, match="kl needs a known truth"):
        gs.sample(np.zeros((3, 2))).kl(gs.Mixture([[0.0, 1.0]]))


def test_mixture_is_a_pytree_that_survives_jit():
    import jax

    m = gs.Mixture([[0.0, 1.0], [2.0, 3.0]], weights=[0.25, 0.75], sigma=2.0)
    leaves, tree = jax.tree_util.tree_flatten(m)
    back = jax.tree_util.tree_unflatten(tree, leaves)
    np.testing.assert_array_equal(back.means, m.means)
    moved = jax.jit(lambda mix: gs.Mixture._raw(mix.means * 2, mix.weights, mix.sigma))(m)
    assert isinstance(moved, gs.Mixture)
    np.testing.assert_array_equal(moved.means, 2 * np.asarray(m.means))
    np.testing.assert_array_equal(moved.weights, m.weights)


def test_gauss_hermite_high_levels_stay_finite():
    # numpy's hermegauss returns NaN weights at 513 points; the rule must not.
    from gmmscape.core.quadrature import node_set

    z, w = node_set("gauss-hermite", 1, 7).replicates[0]
    assert z.shape[0] > 400 and np.isfinite(w).all()  # weights below 1e-300 are dropped
    assert float(w @ z[:, 0] ** 2) == pytest.approx(1.0, abs=1e-13)
    assert float(w @ z[:, 0] ** 4) == pytest.approx(3.0, abs=1e-12)


def test_unconverged_rule_returns_its_finest_level_with_an_honest_estimate():
    truth = gs.Mixture([[-15.0], [-5.0], [5.0], [15.0]])
    model = gs.Mixture([[-10.0], [10.0]])
    exact = gs.population(truth).expect(model).kl
    with pytest.warns(gs.QuadratureWarning):
        e = gs.population(truth, rule="gauss-hermite", max_nodes=257).expect(model)
    q = e.quadrature
    assert q.level == max(t["level"] for t in q.tried)
    assert abs(e.kl - exact) <= q.errors["kl"]
    assert q.max_relative_error == q.tried[-1]["rel_error"]
