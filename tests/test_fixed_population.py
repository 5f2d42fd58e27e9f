"""The fixed-node population (jittable steps) against the adaptive population source."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gmmscape
from gmmscape.dynamics.fixed import fixed_population, standard_nodes


def _check(fp, truth, means_r, weights, rtol=1e-9):
    """Every quantity on the fixed nodes equals the adaptive source at ``means_r``."""
    model = gmmscape.Mixture(np.asarray(fp.lift(means_r)), weights)
    ref = gmmscape.population(truth).expect(model, hessian=True)
    np.testing.assert_allclose(float(fp.kl(means_r)), ref.kl, rtol=rtol, atol=1e-12)
    np.testing.assert_allclose(float(fp.nll(means_r)), ref.nll, rtol=rtol)
    grad = np.asarray(fp.grad(means_r)) @ np.asarray(fp.basis).T
    np.testing.assert_allclose(grad, ref.grad, rtol=rtol, atol=1e-11)
    em = np.asarray(fp.lift(fp.em_means(means_r)))
    np.testing.assert_allclose(em, ref.em_means, rtol=rtol, atol=1e-11)
    h, _ = fp.hessian(means_r)
    k, r = means_r.shape
    b = np.asarray(fp.basis)
    hb = np.asarray(ref.hessian).reshape(k, fp.d, k, fp.d)
    h_r = np.einsum("iajb,ax,by->ixjy", hb, b, b).reshape(k * r, k * r)
    np.testing.assert_allclose(np.asarray(h), h_r, rtol=1e-8, atol=1e-10)


def test_fixed_matches_adaptive_along_a_gradient_em_run():
    truth = gmmscape.Mixture([[0.0, 0.0, 0.0]])
    means0 = np.array([[1.5, -0.5, 0.2], [-1.0, 0.8, 0.0]])
    weights = np.array([0.3, 0.7])
    fp, info = fixed_population(truth, means0, model_weights=weights)
    assert info["r"] == 2 and fp.d == 3
    m = fp.to_frame(means0)
    _check(fp, truth, m, weights)
    step = jax.jit(lambda mu: fp.gradient_em_means(mu, 0.8))
    for _ in range(30):
        m = step(m)
    _check(fp, truth, m, weights)


def test_fixed_matches_adaptive_for_a_separated_truth():
    truth = gmmscape.Mixture([[-3.0, 0.0], [0.0, 0.5], [4.0, 0.0]])
    means0 = np.array([[-2.0, 0.3], [2.0, 0.0]])
    fp, _ = fixed_population(truth, means0)
    m = fp.to_frame(means0)
    for _ in range(10):
        m = fp.em_means(m)
    _check(fp, truth, m, np.array([0.5, 0.5]))


def test_vmap_over_starts_equals_a_loop():
    truth = gmmscape.Mixture([[0.0]])
    fp, _ = fixed_population(truth, [[1.0], [-2.0]])
    starts = jnp.array([[[1.0], [-2.0]], [[0.5], [0.1]], [[3.0], [2.0]]])
    batched = jax.vmap(fp.kl)(starts)
    looped = [float(fp.kl(s)) for s in starts]
    np.testing.assert_allclose(np.asarray(batched), looped, rtol=1e-13)


def test_standard_nodes_integrate_gaussian_moments():
    for rule, level in (("gauss-hermite", 2), ("sparse-grid", 3), ("trapezoid", 2)):
        z, wz = standard_nodes(rule, 3, level)
        assert wz.sum() == pytest.approx(1.0)
        np.testing.assert_allclose(wz @ (z**2), np.ones(3), rtol=1e-10)
        np.testing.assert_allclose(wz @ (z[:, 0] ** 4), 3.0, rtol=1e-10)


def test_bad_input():
    truth = gmmscape.Mixture([[0.0, 0.0]])
    with pytest.raises(ValueError, match="means0"):
        fixed_population(truth, [[0.0, 0.0, 1.0]])
    with pytest.raises(ValueError, match="model_weights"):
        fixed_population(truth, [[0.0, 1.0], [1.0, 0.0]], model_weights=[0.2, 0.2])
    with pytest.raises(ValueError, match="level"):
        fixed_population(truth, [[0.0, 1.0]], level=2)
