"""Landscape studies: truth families, separation, bifurcation and random starts."""

import itertools
import json

import numpy as np
import pytest
from typer.testing import CliRunner

import gmmscape as gs
from gmmscape.landscape.studies import (
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
