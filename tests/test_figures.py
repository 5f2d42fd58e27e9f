"""Figures and tables people read: captions, labelled axes, integer ticks, clean numbers."""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib
import numpy as np
import pytest

from gmmscape.experiments.output import finite_json, format_error, format_number, html_table

matplotlib.use("Agg")


@pytest.mark.parametrize(
    ("value", "spec", "text"),
    [
        (-0.0001, ".3f", "0.000"),
        (-0.0, ".6g", "0"),
        (-0.0006, ".3f", "-0.001"),
        (-2.5, ".3f", "-2.500"),
        (-1e-7, ".6g", "-1e-07"),
        (-1e-20, ".2e", "-1.00e-20"),
        (0.25, ".2f", "0.25"),
    ],
)
def test_format_number_drops_the_sign_of_a_rounded_zero(value, spec, text):
    assert format_number(value, spec) == text


def test_finite_json_gives_strict_json_with_python_numbers():
    import json

    value = {
        1: np.array([[1.5, np.inf], [-np.inf, np.nan]]),
        "t": (np.int64(3), np.bool_(True), np.float32(0.5), float("nan"), "x", None),
    }
    expected = {"1": [[1.5, None], [None, None]], "t": [3, True, 0.5, None, "x", None]}
    got = finite_json(value)
    assert got == expected
    assert [type(v) for v in got["t"][:3]] == [int, bool, float]
    assert json.loads(json.dumps(got, allow_nan=False)) == expected


def test_wide_tables_scroll_inside_the_page():
    from gmmscape.experiments.output import PAGE_STYLE

    table_rule = PAGE_STYLE.split("table{")[1].split("}")[0]
    assert "overflow-x:auto" in table_rule and "max-width:100%" in table_rule


def test_tables_and_sentences_print_no_negative_zero_or_zero_error():
    assert "<td>-0</td>" not in html_table(["x"], [[-0.0]])
    assert format_error(0.0).startswith("below 1e-16")
    assert format_error(3e-12) == "3.0e-12"


def test_every_figure_of_the_demo_report_has_a_caption():
    from gmmscape.experiments.tour import CAPTIONS, caption

    stems = ("demo", "seedA_rates", "seedA_trap", "landscape_atlas", "landscape_separation",
             "estimator_recovery")  # fmt: skip
    assert set(stems) == set(CAPTIONS)
    for stem in stems:
        assert caption(stem) != stem and len(caption(stem).split()) >= 15, stem
    assert caption("other") == "other"


def _is_integer_locator(axis) -> bool:
    ticks = [t for t in axis.get_major_locator()() if np.isfinite(t)]
    return all(float(t).is_integer() for t in ticks)


def test_counts_and_numbers_of_means_get_integer_ticks():
    from gmmscape.landscape import plots

    row = {"n_spurious": 1, "max_error_minima": 0.1, "all_minima_non_overlapping": True}
    rows = [({"k": 3, "k_star": 3, "delta": d}, {**row, "n_spurious": n})
            for d, n in ((1.0, 0), (2.0, 1), (3.0, 3))]  # fmt: skip
    fig = plots.plot_separation_rows(rows)
    assert _is_integer_locator(fig.axes[0].yaxis)
    res = SimpleNamespace(
        ks=[3, 5, 8], bad_fraction=[0.1, 0.3, 0.5], ci=[[0, 0.2], [0.2, 0.4], [0.4, 0.6]],
        family="line", delta=10.0, n_starts=20, scheme="data",
    )  # fmt: skip
    fig = plots.plot_random_init(res)
    assert _is_integer_locator(fig.axes[0].xaxis)


def test_atlas_legend_sits_below_the_density_panel():
    import gmmscape as gs
    from gmmscape.landscape import explore, plots

    # the atlas of test_landscape.py::test_two_centers_have_no_spurious_minimum (compiled once)
    atlas = explore(gs.Mixture([[-3.0], [3.0]]), 2, n_starts=60, seed=0)
    fig = plots.plot_atlas_1d(atlas)
    fig.canvas.draw()
    ax = fig.axes[1]
    assert ax.get_ylabel()
    legend = ax.get_legend().get_window_extent()
    assert legend.y1 <= ax.get_window_extent().y0 + 1  # entirely below the axes
    # the table of the same atlas, with a mean moved to -1e-4: printed as 0.000, unsigned
    import dataclasses

    from rich.console import Console

    point = dataclasses.replace(atlas.points[0], means=np.array([[-1e-4], [3.0]]))
    console = Console(width=250, record=True)
    console.print(dataclasses.replace(atlas, points=[point]).table())
    text = console.export_text()
    assert "0.000, 3.000" in text and "-0.000" not in text


def test_demo_command_and_report_with_a_stand_in_section(tmp_path, monkeypatch):
    """The tour's page and the demo command's tables, fast (the real tour is slow)."""
    from typer.testing import CliRunner

    from gmmscape._files import write_json
    from gmmscape.cli import app
    from gmmscape.experiments import tour
    from gmmscape.experiments.output import pyplot, save_figure

    def fake(out, quick, seed, say):
        say("stand-in section")
        fig, ax = pyplot().subplots()
        ax.plot([0, 1], [1, 0])
        return tour.Section(
            title="Stand-in",
            summary=["One sentence."],
            table=(["name", "value"], [["negative zero", -0.0], ["small", -0.00001]]),
            figures=save_figure(fig, out / "seedA_trap"),
            json=write_json({"x": 1}, out / "stand_in.json"),
        )

    monkeypatch.setattr(tour, "SECTIONS", (fake,))
    res = CliRunner().invoke(app, ["demo", "--quick", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "Stand-in" in res.output and "-1e-05" in res.output and " -0 " not in res.output
    page = (tmp_path / "report.html").read_text()
    assert "<td>0</td>" in page and "<td>-0</td>" not in page
    assert tour.CAPTIONS["seedA_trap"].split(":")[0] in page  # the caption, not the stem
    assert "<figcaption class='small'>seedA_trap</figcaption>" not in page


def test_every_sweep_type_that_draws_figures_captions_them():
    from gmmscape.experiments import registry

    # recovery's plot lives in gmmscape.experiments.recovery, changed on another branch
    for name in sorted(set(registry.MODULES) - {"recovery"}):
        exp = registry.get(name)
        if exp.plot is not None:
            assert exp.captions, name
            assert all(len(c.split()) >= 12 for c in exp.captions.values()), name


def test_the_sweep_report_prints_a_types_caption(monkeypatch):
    from gmmscape.experiments import registry
    from gmmscape.sweep import report

    monkeypatch.setitem(registry.MODULES, "stream-error", "gmmscape.sweep.builtin")
    assert report._caption("stream-error", "z_scores").startswith("Histogram of each cell")
    assert report._caption("stream-error", "no_such_figure") == ""
    assert report._caption("not-registered", "x") == ""
