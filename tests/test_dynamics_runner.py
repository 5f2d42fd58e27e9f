"""Compiled runs of population / stream EM and gradient EM against derived facts.

Facts (docs/reference.md section 2, derived in gmmscape.experiments.overparam's docstring): for
two balanced components ``mu_1 = -mu_2 = theta`` fitting N(0, 1), ``psi_1 =
sigmoid(2 theta x)`` and gradient EM is ``theta <- theta - (eta / 2) theta^3 + O(theta^5)``,
so ``1 / theta_t^2 = eta t + 1 / theta_0^2 + O(log t)`` and ``L = theta^4 / 4 + O(theta^6)``.
"""

import numpy as np
import pytest
from scipy import integrate, special

import gmmscape as gs
from gmmscape.dynamics.fixed import fixed_population
from gmmscape.dynamics.runner import escape_steps, log_steps, run_population, run_stream

TRUTH_1D = gs.Mixture([[0.0]])


@pytest.fixture(scope="module")
def fp_1d():
    fp, _ = fixed_population(TRUTH_1D, [[1.0], [-1.0]])
    return fp


def _quad_step(theta, eta):
    """One gradient-EM step of the symmetric pair, by scipy quad (independent reference)."""

    def f(x):
        return special.expit(2 * theta * x) * (x - theta) * np.exp(-0.5 * x * x)

    shift = integrate.quad(f, -np.inf, np.inf, epsabs=1e-14, epsrel=1e-13)[0]
    return theta + eta * shift / np.sqrt(2 * np.pi)


def test_first_steps_match_quadrature_reference(fp_1d):
    eta, theta = 0.7, 1.0
    tr = run_population(fp_1d, [[[1.0], [-1.0]]], steps=5, eta=eta, record=np.arange(6))
    for t in range(1, 6):
        theta = _quad_step(theta, eta)
        assert tr.max_dist[0, t] == pytest.approx(theta, rel=1e-11)


def test_symmetric_pair_follows_the_cubic_recursion(fp_1d):
    eta, steps = 1.0, 20_000
    tr = run_population(fp_1d, [[[1.0], [-1.0]]], steps=steps, eta=eta)
    t = tr.steps[-1]
    theta = tr.max_dist[0, -1]
    # eta t theta_t^2 = 1 - (1/theta_0^2 + O(log t)) / (eta t): ~1e-3 here
    assert abs(eta * t * theta**2 - 1) < 5e-3
    # KL = theta^4 / 4 (1 + O(theta^2))
    assert tr.kl[0, -1] / (theta**4 / 4) == pytest.approx(1.0, abs=10 * theta**2)
    # symmetric start stays symmetric: mu_1 + mu_2 = 0
    assert abs(tr.final_means[0].sum()) < 1e-12
    # the distance decreases at every step (no increase counted)
    assert tr.n_up_max[0] == 0 and not tr.diverged[0]


def test_global_minimizer_is_the_truths_mean():
    fp, _ = fixed_population(gs.Mixture([[0.0, 0.0]]), [[1.0, 0.2], [-0.3, 0.5], [0.1, -1.0]])
    zero = np.zeros((3, 2))
    assert abs(float(fp.kl(zero))) < 1e-14
    assert np.abs(np.asarray(fp.grad(zero))).max() < 1e-14
    pop = gs.population(gs.Mixture([[0.0, 0.0]]))
    assert pop.kl(gs.Mixture(zero)) == pytest.approx(0.0, abs=1e-14)
    assert float(fp.kl(np.array([[0.1, 0.0], [0.0, 0.0], [0.0, 0.0]]))) > 0


def test_gradient_em_with_unit_step_and_one_component_is_em():
    fp, _ = fixed_population(gs.Mixture([[0.0, 0.0]]), [[1.0, 2.0]])
    start = np.asarray(fp.to_frame(np.array([[1.0, 2.0]])))[None]
    a = run_population(fp, start, steps=3, eta=1.0, record=np.arange(4))
    b = run_population(fp, start, steps=3, method="em", record=np.arange(4))
    np.testing.assert_allclose(a.max_dist, b.max_dist, rtol=1e-13, atol=1e-15)
    assert a.max_dist[0, 1] == pytest.approx(0.0, abs=1e-12)  # one EM step lands on E[x] = 0


def test_em_equals_gradient_em_with_eta_two_for_the_balanced_pair(fp_1d):
    # E[psi_1] = 1/2 exactly by symmetry, so EM theta' = 2 E[psi_1 x] = theta + 2 shift
    start = [[[0.8], [-0.8]]]
    a = run_population(fp_1d, start, steps=50, eta=2.0, record_points=10)
    b = run_population(fp_1d, start, steps=50, method="em", record_points=10)
    np.testing.assert_allclose(a.max_dist, b.max_dist, rtol=1e-12)


def test_vmap_equals_loop(fp_1d):
    starts = np.array([[[1.0], [-1.0]], [[0.5], [-1.5]], [[2.0], [0.3]]])
    batch = run_population(fp_1d, starts, steps=300, eta=0.9, record_points=20)
    for b in range(3):
        one = run_population(fp_1d, starts[b : b + 1], steps=300, eta=0.9, record_points=20)
        np.testing.assert_allclose(batch.kl[b], one.kl[0], rtol=1e-12, atol=1e-18)
        assert batch.n_up_max[b] == one.n_up_max[0]


def test_increase_counters_match_a_step_by_step_count():
    fp, _ = fixed_population(TRUTH_1D, [[1.0], [-1.0]], model_weights=[0.3, 0.7])
    start = np.array([[[0.0426], [0.82]], [[1.0], [-1.0]]])
    tr = run_population(fp, start, steps=60, eta=1.0, record=np.arange(61))
    for b in range(2):
        diffs = np.diff(tr.max_dist[b])
        assert tr.n_up_max[b] == np.sum(diffs > 0)
        assert tr.largest_up_max[b] == pytest.approx(max(diffs.max(), 0.0), abs=1e-15)
        dsq = np.diff(tr.sq_dist[b])
        assert tr.n_up_sq[b] == np.sum(dsq > 0)
    assert tr.n_up_max[0] > 0  # this start is non-monotone in max_i |mu_i|


def test_divergence_is_flagged_with_its_step(fp_1d):
    tr = run_population(fp_1d, [[[1.0], [-1.0]]], steps=50, eta=1e4, record_points=10)
    assert tr.diverged[0] and tr.diverged_step[0] == 1
    assert np.isfinite(tr.final_means).all()


@pytest.mark.parametrize("in_memory", [False, True])
def test_stream_fixed_dataset_equals_stream_source_steps(in_memory):
    # Redrawn every step or drawn once and held: the same points as gs.stream's source.
    start = np.array([[0.7], [-0.4]])
    tr = run_stream(
        TRUTH_1D, start, n=3000, seeds=[5], steps=3, eta=1.3, chunk_size=1024,
        record=np.arange(4), in_memory=in_memory,
    )  # fmt: skip
    src = gs.stream(TRUTH_1D, 3000, 5, chunk_size=1024)
    model = gs.Mixture(start)
    for t in range(1, 4):
        model = src.gradient_em_step(model, 1.3)
        assert tr.max_dist[0, t] == pytest.approx(np.abs(np.asarray(model.means)).max(), rel=1e-12)
    assert np.isnan(tr.kl).all()  # no population nodes given
    fresh = run_stream(
        TRUTH_1D, start, n=3000, seeds=[5], steps=3, eta=1.3, chunk_size=1024, fresh=True,
        record=np.arange(4),
    )  # fmt: skip
    assert fresh.max_dist[0, 3] != pytest.approx(tr.max_dist[0, 3], rel=1e-6)
    with pytest.raises(ValueError, match="in_memory"):
        run_stream(TRUTH_1D, start, n=100, seeds=[5], steps=3, eta=1.3, fresh=True, in_memory=True)


def test_escape_matches_a_python_loop_and_grows_with_r():
    truth = gs.Mixture([[0.0]])
    fp, _ = fixed_population(truth, [[5.0], [0.05]])
    starts = np.array([[[r], [0.05]] for r in (3.0, 4.0, 5.0)])
    esc = escape_steps(
        fp, starts, eta=1.0, component=0, radius=starts[:, 0, 0] / 2, max_steps=10**4
    )
    assert not esc.censored.any()
    assert esc.steps[0] < esc.steps[1] < esc.steps[2]
    pop = gs.population(truth)
    model, t = gs.Mixture(starts[0]), 0
    while abs(float(model.means[0, 0])) > 1.5:
        model, t = pop.gradient_em_step(model, 1.0), t + 1
    assert esc.steps[0] == t
    capped = escape_steps(fp, starts[2:], eta=1.0, component=0, radius=2.5, max_steps=5)
    assert capped.censored[0] and capped.steps[0] == 5


def test_log_steps_and_bad_input(fp_1d):
    s = log_steps(10**6, 50)
    assert s[0] == 0 and s[-1] == 10**6 and np.all(np.diff(s) > 0)
    with pytest.raises(ValueError, match="eta"):
        run_population(fp_1d, [[[1.0], [-1.0]]], steps=10, eta=0.0)
    with pytest.raises(ValueError, match="steps"):
        run_population(fp_1d, [[[1.0], [-1.0]]], steps=0, eta=1.0)
    with pytest.raises(ValueError, match="non-finite"):
        run_population(fp_1d, [[[np.nan], [-1.0]]], steps=10, eta=1.0)
    with pytest.raises(ValueError, match="method"):
        run_population(fp_1d, [[[1.0], [-1.0]]], steps=10, eta=1.0, method="newton")
    with pytest.raises(ValueError, match="component"):
        escape_steps(fp_1d, [[[3.0], [0.0]]], eta=1.0, component=2, radius=1.0, max_steps=10)
