"""gmmscape.overparam, the studies, the sweep types and the CLI commands of seed A."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import gmmscape as gs
from gmmscape.cli import app
from gmmscape.experiments import registry
from gmmscape.experiments.overparam import DivergenceError, sample_study


def test_overparam_balanced_pair_rates_and_json():
    res = gs.overparam(2, 1, means0=[[1.0], [-1.0]], steps=20_000, eta=1.0)
    fit = res.fits["loss"][0]
    # L_t ~ (2 eta t)^-2 and max |mu| ~ (eta t)^(-1/2): exponents 2 and 1/2
    assert fit["alpha"] == pytest.approx(2.0, abs=max(0.02, 3 * fit["alpha_err"]))
    assert res.fits["max_dist"][0]["alpha"] == pytest.approx(0.5, abs=0.005)
    assert np.exp(fit["log_c"]) == pytest.approx(0.25, rel=0.05)
    assert res.bound[0]["eventually_nonincreasing"]
    assert "1/2" in res.explanation
    assert res.quadrature["end_check"]["relative_difference"] < 1e-5
    data = json.loads(json.dumps(res.to_json(), allow_nan=False))
    assert data["config"]["seed"] == 0 and len(data["steps"]) == len(data["kl"][0])


def test_restarts_run_as_a_batch_in_two_dimensions():
    res = gs.overparam(
        2, 2, steps=200, restarts=3, init_scale=0.7, seed=3, record_points=20, rtol=1e-7
    )
    assert np.array(res.kl).shape == (3, len(res.steps))
    kl = np.array(res.kl)
    assert np.all(kl[:, -1] < kl[:, 0])
    # the end point agrees with the adaptive population source
    means = np.array(res.final_means[0])
    exact = gs.population(gs.Mixture([[0.0, 0.0]])).kl(gs.Mixture(means))
    assert kl[0, -1] == pytest.approx(exact, rel=1e-5)


def test_sample_source_records_exact_kl_of_its_means():
    res = gs.overparam(
        2, 1, means0=[[1.0], [-1.0]], steps=30, eta=2.0, source="sample", n_samples=2000,
        record_points=10,
    )  # fmt: skip
    means = np.array(res.final_means[0])
    exact = gs.population(gs.Mixture([[0.0]])).kl(gs.Mixture(means))
    assert res.kl[0][-1] == pytest.approx(exact, rel=1e-8)


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="n_components"):
        gs.overparam(1, 1)
    with pytest.raises(ValueError, match="eta"):
        gs.overparam(2, 1, eta=0.0)
    with pytest.raises(ValueError, match="steps"):
        gs.overparam(2, 1, steps=0)
    with pytest.raises(ValueError, match="means0"):
        gs.overparam(2, 1, means0=[[np.inf], [0.0]])
    with pytest.raises(ValueError, match="weights"):
        gs.overparam(2, 1, weights=[0.3, 0.3])
    with pytest.raises(ValueError, match="n_samples"):
        gs.overparam(2, 1, source="sample")
    with pytest.raises(DivergenceError, match="step 1") as info:
        gs.overparam(2, 1, means0=[[1.0], [-1.0]], eta=1e4, steps=100)
    assert info.value.step == 1


@pytest.mark.slow
def test_sample_study_small():
    res = sample_study((300, 3000), seeds=3, steps_factor=4.0)
    assert np.all(np.array(res.errors) > 0) and res.theory_slope == -0.25
    assert np.isfinite(res.slope) and res.slope_se > 0


def test_sample_study_ends_at_each_datasets_predicted_optimum():
    # The final error of sample gradient EM against the leading-order sample optimum
    # computed from each dataset's own variance and fourth moment (predicted_error).
    n = 20_000
    res = sample_study((n,), seeds=6, steps_factor=16.0, seed=3)
    err, pred = np.array(res.errors[0]), np.array(res.predicted[0])
    split = pred > 0.5 * n**-0.25  # clearly split datasets converge geometrically
    assert split.any()
    np.testing.assert_allclose(err[split], pred[split], rtol=0.03)
    assert res.theory_rms == [pytest.approx((np.pi * n) ** -0.25)]
    assert "leading-order sample optimum" in res.comparison


def test_sweep_types():
    exp = registry.get("overparam")
    params = exp.params(n_components=2, steps=500, restarts=2, seed=1)
    out = exp.run(params)
    json.dumps(out, allow_nan=False)
    assert out["alpha_loss"] > 0.5
    with pytest.raises(ValueError):
        exp.params(n_components=2, seed=1, colour="red")
    trap_exp = registry.get("trap")
    row = trap_exp.run(trap_exp.params(R=3.0, seed=0, max_steps=1000))
    assert row["steps"] > 1 and not row["censored"]
    figs = trap_exp.plot([({"R": 3.0}, row), ({"R": 4.0}, {**row, "R": 4.0, "steps": 15})])
    assert "trap_escape" in figs


def test_cli_commands_write_results(tmp_path):
    runner = CliRunner()
    r = runner.invoke(
        app,
        ["overparam", "--n", "2", "--steps", "500", "--restarts", "1", "--weights", "0.3,0.7",
         "--out", str(tmp_path)],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    data = json.loads((tmp_path / "overparam.json").read_text())
    assert data["table"][0]["alpha_loss"] > 0.5
    for name in ("overparam.png", "overparam.svg"):
        assert (tmp_path / name).stat().st_size > 0
    r = runner.invoke(app, ["trap", "--r", "3", "--r", "4", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    data = json.loads((tmp_path / "trap.json").read_text())
    assert data["steps"][0] < data["steps"][1] and "escape step" in data["definition"]
    r = runner.invoke(
        app,
        ["overparam-samples", "--size", "300", "--size", "1000", "--seeds", "2", "--out",
         str(tmp_path)],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert (tmp_path / "overparam_samples.png").stat().st_size > 0
    r = runner.invoke(app, ["overparam", "--eta", "-1", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "error:" in r.output and "eta" in r.output


@pytest.mark.slow
def test_quick_study_for_the_demo(tmp_path):
    from gmmscape.experiments.overparam import plot_quick_study, quick_study

    res = quick_study(seed=0)
    paths = plot_quick_study(res, tmp_path)
    assert all(p.stat().st_size > 0 for p in paths)
    assert res.study.table[0]["alpha_loss"] == pytest.approx(2.0, abs=0.05)


@pytest.mark.slow
def test_fixed_nodes_in_a_ten_dimensional_span():
    """n = 10, d = 50: the budgeted sparse grid against the adaptive source at start and end."""
    import warnings

    res = gs.overparam(10, 50, steps=300, init_scale=0.3, seed=0, record_points=10)
    assert res.quadrature["rule"] == "sparse-grid" and res.config["r"] == 10
    truth = gs.Mixture(np.zeros((1, 50)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pop = gs.population(truth, rtol=1e-6)
        end = pop.kl(gs.Mixture(np.array(res.final_means[0])))
        start = pop.kl(gs.Mixture(np.array(res.config["means0"][0])))
    # the reported level-to-level change is an honest error estimate (3x margin),
    # checked against the adaptive source (itself accurate to about 1e-6)
    est = res.quadrature["level_check"]
    assert abs(res.kl[0][-1] - end) <= 3 * est["end"] * end + 2e-6 * end
    assert abs(res.kl[0][0] - start) <= 3 * est["start"] * start + 2e-6 * start
    assert est["end"] < 1e-2
