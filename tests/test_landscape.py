"""Landscape atlas: checks against derived facts (docs/reference.md section 3), not own outputs."""

import json

import jax.numpy as jnp
import numpy as np
import pytest
from typer.testing import CliRunner

import gmmscape as gs
from gmmscape.landscape import certify, explore, groups, signature, wilson
from gmmscape.landscape._problem import make_problem
from gmmscape.landscape.certify import spectrum
from gmmscape.landscape.explore import merge_points, perm_distance
from gmmscape.landscape.solvers import newton_polish, run_batch


@pytest.fixture(scope="module")
def jin_atlas():
    """Jin et al.'s 1-D example: centers -R, R, 10R with R = 1.5."""
    truth = gs.Mixture([[-1.5], [1.5], [15.0]])
    return explore(truth, 3, n_starts=120, seed=1)


def test_jin_bad_configuration_is_a_quartic_local_minimum(jin_atlas):
    a = jin_atlas
    assert a.n_failed == 0
    glob = [p for p in a.minima if p.gap <= 1e-8]
    assert len(glob) == 1 and glob[0].signature == "1:1 x3"
    # the global minimum of k = k* is the truth itself: KL = 0
    assert abs(glob[0].kl) < 1e-9
    np.testing.assert_allclose(
        np.sort(np.asarray(glob[0].means)[:, 0]), [-1.5, 1.5, 15.0], atol=1e-6
    )
    bad = [p for p in a.spurious_minima if p.signature == "1:2 + 2:1"]
    assert len(bad) == 1
    p = bad[0]
    mu = np.sort(np.asarray(p.means)[:, 0])
    # one estimate between the close pair, two on the far center
    assert -1.5 < mu[0] < 1.5 and abs(mu[1] - 15) < 0.1 and abs(mu[2] - 15) < 0.1
    assert p.kind == "degenerate minimum (quartic)"
    # the many-fit-one split is flat to second order: exactly one null eigenvalue
    assert p.n_null == 1 and p.grad_norm <= 1e-9
    assert [t["verdict"] for t in p.null_tests] == ["quartic+"]
    kinds = {g["kind"] for g in p.groups}
    assert kinds == {"one-fits-many", "many-fit-one"} and p.non_overlapping
    # basins: fractions sum to one with failures, each inside its own Wilson interval
    assert sum(q.count for q in a.points) + a.n_failed == a.n_starts
    for q in a.points:
        assert q.ci[0] <= q.fraction <= q.ci[1]


def test_two_centers_have_no_spurious_minimum():
    truth = gs.Mixture([[-3.0], [3.0]])
    a = explore(truth, 2, n_starts=60, seed=0)
    assert len(a.minima) == 1 and a.spurious_minima == []
    assert a.minima[0].signature == "1:1 x2" and a.minima[0].kind == "strict minimum"
    for p in a.points:
        if not p.is_minimum:
            assert "saddle" in p.kind or p.kind == "maximum"


def test_quartic_coefficient_of_the_split_matches_theory():
    """Truth N(0, 1), means (t, -t)/sqrt(2)... : KL = theta^4 / 4, so a4 = 1/16 along v."""
    truth = gs.Mixture([[0.0]])
    prob = make_problem(truth, 2)
    cert = certify(prob.polish, np.zeros((2, 1)))
    assert cert.kind == "degenerate minimum (quartic)"
    assert cert.n_null == 1
    (test,) = cert.null_tests
    assert test["a4"] == pytest.approx(1 / 16, rel=2e-3)
    assert abs(test["a3"]) < 1e-8


def test_spectrum_matches_adaptive_population_and_finite_differences():
    """Frame Hessian plus the orthogonal block = the adaptive source's d x d Hessian."""
    truth = gs.Mixture([[-2.0, 0.0, 0.0, 0.0], [2.0, 0.0, 0.0, 0.0]])
    prob = make_problem(truth, 2)
    assert prob.info["frame"] == "span" and prob.r == 1
    m_r = np.array([[-1.3], [2.4]])
    w, _, (pw, _) = spectrum(prob.polish, m_r)
    full = np.sort(np.concatenate([w, np.repeat(pw, prob.d - prob.r)]))
    model = gs.Mixture(prob.lift(m_r))
    h_ref = gs.population(truth, rtol=1e-8).hessian(model)
    np.testing.assert_allclose(full, np.linalg.eigvalsh(h_ref), atol=1e-9)
    # the frame Hessian against central differences of the frame gradient
    h, _ = prob.polish.hessian(jnp.asarray(m_r))
    eps = 1e-5
    fd = np.zeros((2, 2))
    for j in range(2):
        e = np.zeros((2, 1))
        e[j] = eps
        gp = np.asarray(prob.polish.grad(jnp.asarray(m_r + e))).ravel()
        gm = np.asarray(prob.polish.grad(jnp.asarray(m_r - e))).ravel()
        fd[:, j] = (gp - gm) / (2 * eps)
    np.testing.assert_allclose(np.asarray(h), fd, atol=1e-8)


def test_em_and_newton_keep_symmetric_configurations_symmetric():
    """Truth symmetric about 0 and estimates (-a, 0, a): every iterate stays symmetric."""
    truth = gs.Mixture([[-2.0], [2.0]])
    prob = make_problem(truth, 3)
    starts = np.array([[[-0.7], [0.0], [0.7]], [[-3.0], [0.0], [3.0]]])
    ends, _, _ = run_batch(prob.batch, prob.to_frame(starts), max_iter=50)
    ends = prob.lift(ends)[:, :, 0]
    np.testing.assert_allclose(ends[:, 0], -ends[:, 2], atol=1e-12)
    np.testing.assert_allclose(ends[:, 1], 0.0, atol=1e-12)
    m, gn, _, _ = newton_polish(prob.polish, prob.to_frame(prob.lift(ends[:, :, None])))
    m = prob.lift(m)[:, :, 0]
    assert np.all(gn < 1e-10)
    np.testing.assert_allclose(m[:, 0], -m[:, 2], atol=1e-10)


def test_dedup_identifies_permuted_copies():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 2))
    b = a[[2, 0, 3, 1]] + 1e-6
    assert perm_distance(a, b) < 2e-6
    labels = merge_points(np.stack([a, b, a + 1.0]), 1e-3)
    assert labels.tolist() == [0, 0, 1]
    truth = gs.Mixture([[-3.0], [3.0]])
    starts = np.array([[[-2.5], [2.0]], [[2.0], [-2.5]]])
    atl = explore(truth, 2, starts=starts)
    assert len(atl.points) == 1 and atl.points[0].count == 2


def test_structure_labels_from_hand_built_configurations():
    beta = np.array([[-1.0], [1.0], [10.0]])
    g = groups([[0.0], [9.9], [10.1]], beta)
    assert [x["kind"] for x in g] == ["one-fits-many", "many-fit-one"]
    assert g[0]["error"] == pytest.approx(0.0) and g[1]["error"] == pytest.approx(0.1)
    assert signature(g) == "1:2 + 2:1"
    g = groups([[-1.0], [1.0], [10.0]], beta)
    assert signature(g) == "1:1 x3" and all(x["kind"] == "correct fit" for x in g)
    # e1 is nearest to both -1 and 1, e2 far out is nearest to -1: two on two, overlapping
    g = groups([[-0.1], [-5.0], [10.0]], beta)
    assert [x["kind"] for x in g] == ["overlapping", "correct fit"]
    assert g[0]["estimates"] == [0, 1] and g[0]["centers"] == [0, 1]


def test_wilson_interval_solves_its_defining_quadratic():
    for s, n in ((0, 10), (3, 10), (50, 100), (100, 100)):
        lo, hi = wilson(s, n)
        z = 1.959963984540054
        ph = s / n
        for p in (lo, hi):
            if 0 < p < 1:
                assert (ph - p) ** 2 == pytest.approx(z * z * p * (1 - p) / n, rel=1e-9)
        assert lo <= ph <= hi


def test_escaped_estimates_are_counted_as_failures():
    truth = gs.Mixture([[-2.0], [2.0]])
    starts = np.array([[[-2.0], [80.0]], [[-2.2], [2.1]], [[-1.0], [90.0]]])
    a = explore(truth, 2, starts=starts, max_iter=50)
    assert a.n_failed == 2 and sum(p.count for p in a.points) == 1
    assert a.failures and "mass" in a.failures[0]["reason"]


def test_bad_input():
    truth = gs.Mixture([[-2.0], [2.0]])
    with pytest.raises(ValueError, match="k must"):
        explore(truth, 0)
    with pytest.raises(ValueError, match="n_starts"):
        explore(truth, 2, n_starts=0)
    with pytest.raises(ValueError, match="coincident"):
        explore(gs.Mixture([[1.0], [1.0]]), 2)
    with pytest.raises(ValueError, match="non-finite"):
        explore(truth, 2, starts=[[[0.0], [np.nan]]])
    with pytest.raises(ValueError, match="starts must have shape"):
        explore(truth, 2, starts=np.zeros((3, 2, 2)))
    with pytest.raises(ValueError, match="equal weights"):
        explore(gs.Mixture([[-2.0], [2.0]], weights=[0.3, 0.7]), 2)
    with pytest.raises(ValueError, match="method"):
        explore(truth, 2, method="lbfgs")
    with pytest.raises(ValueError, match="scheme"):
        explore(truth, 2, schemes=("bogus",))


def test_kl_of_atlas_points_matches_adaptive_population(jin_atlas):
    truth = gs.Mixture(jin_atlas.truth_means)
    pop = gs.population(truth)
    for p in jin_atlas.points:
        assert p.kl == pytest.approx(pop.kl(gs.Mixture(p.means)), abs=1e-10)
        g = pop.grad(gs.Mixture(p.means))
        assert np.linalg.norm(g) < 1e-8


def test_cli_landscape_writes_atlas(tmp_path):
    from gmmscape.cli import app

    res = CliRunner().invoke(
        app,
        [
            "landscape",
            "--truth",
            "[[-3], [3]]",
            "--k",
            "2",
            "--starts",
            "20",
            "--out",
            str(tmp_path),
        ],
    )
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "atlas.json").read_text())
    assert data["k"] == 2 and len(data["points"]) >= 1
    for name in ("atlas_1d.png", "atlas_1d.svg", "heatmap.png", "heatmap.svg"):
        assert (tmp_path / name).stat().st_size > 0
    bad = CliRunner().invoke(app, ["landscape", "--k", "0", "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "k must" in bad.output


def test_sweep_types_registered():
    from pydantic import ValidationError

    from gmmscape.experiments import registry

    exp = registry.get("separation")
    p = exp.params(delta=3.0, seed=1)
    assert p.k == 3
    with pytest.raises(ValidationError):
        exp.params(delta=3.0, seed=1, bogus=1)
    assert registry.get("landscape").params(truth_means=[[0.0]], k=1).seed == 0
