"""Landscape studies: truth families, separation, bifurcation and random starts."""

import itertools
import json

import numpy as np
import pytest
from typer.testing import CliRunner

import gmmscape as gs
from gmmscape.landscape.studies import (
    StudyWarning,
    bifurcation_study,
    random_init_study,
    separation_study,
    truth_family,
)


def _pair_dists(c):
    return [np.linalg.norm(a - b) for a, b in itertools.combinations(np.asarray(c), 2)]


@pytest.mark.parametrize(
    ("family", "k_star", "d"), [("line", 4, 2), ("simplex", 4, 5), ("random", 5, 3), ("jin", 3, 1)]
)
def test_families_have_minimum_separation_delta(family, k_star, d):
    t = truth_family(family, k_star, d, 2.5, seed=3)
    assert t.k == k_star and t.d == d
    assert min(_pair_dists(t.means)) == pytest.approx(2.5, rel=1e-12)
    if family == "simplex":  # every edge of a regular simplex has the same length
        np.testing.assert_allclose(_pair_dists(t.means), 2.5, rtol=1e-12)


def test_family_bad_input():
    with pytest.raises(ValueError, match="family"):
        truth_family("circle", 3, 2, 1.0)
    with pytest.raises(ValueError, match="d must be >= k_star - 1"):
        truth_family("simplex", 4, 2, 1.0)
    with pytest.raises(ValueError, match="delta"):
        truth_family("line", 3, 1, -1.0)


def test_random_init_fractions_and_intervals():
    res = random_init_study(ks=(3,), n_starts=24, delta=8.0, seed=0)
    (p,) = res.bad_fraction
    (ci,) = res.ci
    assert 0.0 <= ci[0] <= p <= ci[1] <= 1.0
    assert res.unconverged[0] <= 24


@pytest.mark.slow
def test_separation_two_centers_never_spurious_and_structure_holds():
    """k = k* = 2 has no spurious minimum (docs/reference.md section 3) at any separation."""
    res = separation_study("line", 2, 1, ks=(2,), deltas=(3.0, 6.0), n_starts=60)
    for row in res.rows:
        assert row["n_spurious"] == 0 and row["n_failed"] == 0
        assert row["all_minima_non_overlapping"]
        assert row["max_grad_norm"] <= 1e-9


@pytest.mark.slow
def test_bifurcation_points_are_mirror_symmetric_and_include_the_truth():
    """The line truth is symmetric about 0, so the set of critical points is too."""
    res = bifurcation_study((2.0, 4.0), "line", n_grid=8)
    for delta in res.deltas:
        pts = [np.asarray(p["means"]) for p in res.points if p["delta"] == delta]
        assert any(np.allclose(m, [-delta, 0.0, delta], atol=1e-6) for m in pts)
        for m in pts:
            mirror = np.sort(-m)
            assert any(np.allclose(mirror, q, atol=1e-5) for q in pts), (delta, m)
    for p in res.points:
        assert p["grad_norm"] <= 1e-9


@pytest.mark.slow
def test_cli_studies_write_outputs(tmp_path):
    from gmmscape.cli import app

    r = CliRunner().invoke(
        app, ["random-init", "--ks", "3,4", "--starts", "20", "--out", str(tmp_path)]
    )
    assert r.exit_code == 0, r.output
    data = json.loads((tmp_path / "random_init.json").read_text())
    assert data["ks"] == [3, 4] and len(data["ci"]) == 2
    r = CliRunner().invoke(
        app,
        ["separation", "--ks", "3", "--deltas", "2,4", "--starts", "20", "--out", str(tmp_path)],
    )
    assert r.exit_code == 0, r.output
    assert (tmp_path / "separation.svg").stat().st_size > 0
    r = CliRunner().invoke(
        app, ["bifurcation", "--deltas", "2,3", "--grid", "6", "--out", str(tmp_path)]
    )
    assert r.exit_code == 0, r.output
    assert (tmp_path / "bifurcation.png").stat().st_size > 0


@pytest.mark.slow
def test_two_dimensional_triangle_atlas_and_group_figure(tmp_path):
    """Equilateral truth in 2-D: the global minimum is the truth (KL = 0), 120-degree
    rotations map critical points to critical points, and the group figure is drawn."""
    from gmmscape.landscape import explore, plots

    truth = truth_family("simplex", 3, 2, 5.0)
    atlas = explore(truth, 3, n_starts=80, seed=2)
    glob = atlas.minima[0]
    assert glob.gap == 0.0 and abs(glob.kl) < 1e-9 and glob.signature == "1:1 x3"
    c, s = np.cos(2 * np.pi / 3), np.sin(2 * np.pi / 3)
    rot = np.array([[c, -s], [s, c]])
    center = np.asarray(truth.means).mean(axis=0)
    for p in atlas.minima:
        # the rotated point is a critical point: the adaptive population gradient vanishes
        m = (np.asarray(p.means) - center) @ rot.T + center
        assert np.linalg.norm(gs.population(truth).grad(gs.Mixture(m))) < 1e-7
    paths = plots.save(plots.plot_groups_2d(atlas), tmp_path / "groups")
    assert all(p.stat().st_size > 0 for p in paths)


# -- incomplete results are said, not hidden ------------------------------------------


@pytest.mark.slow
def test_bifurcation_says_when_a_global_minimum_was_not_found():
    """With one round the coarse grid misses the truth at delta = 2 (the issue's case)."""
    with pytest.warns(StudyWarning, match=r"delta = 2: the global minimum .* was not found"):
        res = bifurcation_study((2.0, 4.0), "line", n_grid=4, max_rounds=1)
    assert res.global_found == [False, True] and not res.complete
    assert res.rounds == [1, 1]
    assert not any(abs(p["kl"]) < 1e-8 for p in res.points if p["delta"] == 2.0)
    assert any("not found" in w for w in res.warnings)
    assert [sum(f["count"] for f in fs) for fs in res.failures] == res.n_failed


def test_bifurcation_keeps_searching_until_each_delta_has_its_global_minimum():
    with pytest.warns(StudyWarning, match="starts failed") as caught:
        res = bifurcation_study((2.0, 4.0), "line", n_grid=4)
    assert all("starts failed" in str(w.message) for w in caught)  # no missing minimum
    assert res.global_found == [True, True] and res.complete
    assert res.rounds == [2, 1]  # delta = 2 needed a second round
    for delta in res.deltas:  # the global minimum is the truth (k = k*): KL 0 there
        best = min((p for p in res.points if p["delta"] == delta), key=lambda p: p["kl"])
        np.testing.assert_allclose(best["means"], [-delta, 0.0, delta], atol=1e-6)
        assert best["kind"] == "strict minimum" and abs(best["kl"]) < 1e-8


def test_random_init_sets_unconverged_starts_apart_and_brackets_the_bad_share():
    with pytest.warns(StudyWarning, match=r"k = 5: \d+ of 20 starts did not converge"):
        res = random_init_study(ks=(5,), n_starts=20, max_iter=500, seed=0)
    (u,), (lo, hi) = res.unconverged, res.bad_bounds[0]
    assert u > 0 and res.max_iter == 500
    assert hi - lo == pytest.approx(u / 20)
    assert lo <= res.bad_last_iterate[0] <= hi
    n_conv = 20 - u
    assert res.bad_fraction[0] == pytest.approx(lo * 20 / n_conv)
    assert res.warnings and "--max-iter" in res.warnings[0]


def test_random_init_with_no_converged_start_reports_none(tmp_path):
    from gmmscape._files import write_json
    from gmmscape.landscape import plots

    with pytest.warns(StudyWarning):
        res = random_init_study(ks=(3,), n_starts=6, max_iter=1)
    assert res.unconverged == [6] and res.bad_fraction == [None] and res.ci == [None]
    assert res.bad_bounds == [[0.0, 1.0]]
    plots.save(plots.plot_random_init(res), tmp_path / "ri")
    data = json.loads(write_json(res, tmp_path / "ri.json").read_text())
    assert data["bad_fraction"] == [None]


def test_separation_passes_its_iteration_caps_and_warns_on_failures():
    """One EM step and one Newton iteration: every start is unconverged and fails."""
    with pytest.warns(StudyWarning, match="k = 3, delta = 4: 12 of 12 starts failed"):
        res = separation_study(
            "line", 3, 1, ks=(3,), deltas=(4.0,), n_starts=12, max_iter=1, newton_iter=1
        )
    (row,) = res.rows
    assert (res.max_iter, res.newton_iter) == (1, 1)
    assert row["batch_unconverged"] == 12 and row["n_failed"] == 12
    assert res.warnings and "gradient norm above grad_tol" in res.warnings[0]


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda: bifurcation_study((), "line"), "deltas is empty"),
        (lambda: bifurcation_study((2.0,), "simplex"), "family must be 'line' or 'jin'"),
        (lambda: bifurcation_study((2.0,), n_grid=1), "n_grid"),
        (lambda: bifurcation_study((2.0,), max_rounds=0), "max_rounds"),
        (lambda: bifurcation_study((2.0,), warn_fraction=1.5), "warn_fraction"),
        (lambda: random_init_study(ks=(3,), max_iter=0), "max_iter"),
        (lambda: random_init_study(ks=()), "ks is empty"),
        (lambda: separation_study(ks=(3,), deltas=()), "deltas is empty"),
        (lambda: separation_study(ks=(3,), deltas=(2.0,), newton_iter=0), "newton_iter"),
    ],
)
def test_study_bad_input(call, fragment):
    with pytest.raises(ValueError, match=fragment):
        call()


def test_cli_bifurcation_prints_the_search_and_exits_1_when_incomplete(tmp_path):
    from gmmscape.cli import app

    args = ["bifurcation", "--deltas", "2,4", "--grid", "4", "--max-rounds", "1"]
    r = CliRunner().invoke(app, [*args, "--out", str(tmp_path)])
    assert r.exit_code == 1, r.output
    out = " ".join(r.output.split())
    assert "NOT FOUND" in out and "incomplete: no global minimum found at delta = 2" in out
    assert "starts failed" in out  # the failed starts are said, with their reasons
    data = json.loads((tmp_path / "bifurcation.json").read_text())
    assert data["global_found"] == [False, True] and data["n_failed"] == [2, 2]


def test_cli_random_init_has_max_iter_and_warns(tmp_path):
    from gmmscape.cli import app

    args = ["random-init", "--ks", "3", "--starts", "6", "--max-iter", "1"]
    r = CliRunner().invoke(app, [*args, "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    out = " ".join(r.output.split())
    assert "warning: k = 3: 6 of 6 starts did not converge in max_iter = 1" in out
    data = json.loads((tmp_path / "random_init.json").read_text())
    assert data["unconverged"] == [6] and data["max_iter"] == 1


def test_a_landscape_sweep_cell_warns_when_many_starts_fail():
    """Newton straight from random starts with k = 5 > k* = 3: half of them run away;
    the sweep runner stores the warning with the cell's row."""
    from gmmscape.landscape.studies import LandscapeParams, _run_landscape

    p = LandscapeParams(truth_means=[[-3.0], [0.0], [3.0]], k=5, n_starts=20, method="newton")
    with pytest.warns(StudyWarning, match=r"\d+ of 20 starts failed"):
        row = _run_landscape(p)
    assert row["n_failed"] > 1 and "batch_unconverged" in row
