"""Figures and tables people read: captions, labelled axes, integer ticks, clean numbers."""

from __future__ import annotations

import re
from types import SimpleNamespace

import matplotlib
import numpy as np
import pytest

from gmmscape.experiments.output import (
    finite_json,
    format_error,
    format_number,
    html_table,
    pyplot,
)

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


@pytest.fixture(scope="module")
def two_center_atlas():
    """The atlas of test_landscape.py::test_two_centers_have_no_spurious_minimum."""
    import gmmscape as gs
    from gmmscape.landscape import explore

    return explore(gs.Mixture([[-3.0], [3.0]]), 2, n_starts=60, seed=0)


def test_atlas_figures_put_their_legends_below_the_panels(two_center_atlas):
    from gmmscape.landscape import plots

    atlas = two_center_atlas
    fig = plots.plot_atlas_1d(atlas)
    check_figure(fig)
    legends = [(ax, ax.get_legend()) for ax in fig.axes if ax.get_legend() is not None]
    assert legends  # the density panel's, and the paths' when there is more than one point
    for ax, legend in legends:  # entirely below the axes
        assert legend.get_window_extent().y1 <= ax.get_window_extent().y0 + 1
    check_figure(plots.plot_heatmap_2est(atlas, n_grid=21))


def test_atlas_table_prints_no_negative_zero(two_center_atlas):
    """The table of the atlas, with a mean moved to -1e-4: printed as 0.000, unsigned."""
    import dataclasses

    from rich.console import Console

    atlas = two_center_atlas
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

    for name in sorted(registry.MODULES):
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


# --------------------------------------------------------------------------------------
# Every figure the project draws: labelled axes with units, legends off the data, integer
# ticks on integer axes, no negative zero. Each is drawn from stand-in results of the
# shape its study returns (drawing is what is tested here; the numbers are the studies').
# --------------------------------------------------------------------------------------

#: An axis label ends with its unit, or with what it counts, in parentheses.
UNIT = re.compile(r"\((?:[^()]|\([^()]*\))+\)$")
#: A number printed as zero with a sign: "-0", "-0.000", "−0.0" (matplotlib's minus).
NEGATIVE_ZERO = re.compile(r"[-\u2212]0(?:\.0*)?(?![\d.]*[1-9])(?![\d])")


@pytest.fixture(autouse=True)
def _close_figures():
    """Close this test's figures (pyplot keeps every figure open until it is closed)."""
    yield
    pyplot().close("all")


def _drawn_ticklabels(axis):
    """The tick labels matplotlib draws: those of ticks inside the view limits."""
    lo, hi = sorted(axis.get_view_interval())
    ticks = axis.get_major_ticks() + axis.get_minor_ticks()
    return [t.label1 for t in ticks if lo <= t.get_loc() <= hi and t.label1.get_visible()]


def _data_axes(fig):
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def check_figure(fig, integer_x=(), integer_y=()):
    """Assert the figure's conventions; ``integer_x`` / ``integer_y``: indices of the axes
    (colorbars left out) whose x / y values are integers."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    page = fig.bbox
    axes = _data_axes(fig)
    assert axes, "no axes"
    for i, ax in enumerate(axes):
        for name, label in (("x", ax.get_xlabel()), ("y", ax.get_ylabel())):
            label = " ".join(label.split())
            assert label, f"axes {i} ({ax.get_title()!r}): no {name} label"
            assert UNIT.search(label), f"axes {i}: {name} label {label!r} gives no unit"
        legend = ax.get_legend()
        if legend is not None:
            box = legend.get_window_extent(renderer)
            assert legend._loc != 0, f"axes {i}: legend placed by loc='best'"
            for j, other in enumerate(fig.axes):
                assert not box.overlaps(other.bbox), f"axes {i}: legend covers axes {j}"
            for text in (ax.xaxis.label, *_drawn_ticklabels(ax.xaxis)):
                if text.get_text():
                    assert not box.overlaps(text.get_window_extent(renderer)), (
                        f"axes {i}: legend covers {text.get_text()!r}"
                    )
            assert page.x0 <= box.x0 and box.x1 <= page.x1 + 1, f"axes {i}: legend cut off"
            assert page.y0 <= box.y0 + 1, f"axes {i}: legend cut off at the bottom"
    # titles and axis labels lie inside the figure and off every other axes and its texts
    boxes = {}
    for j, ax in enumerate(fig.axes):
        ticks = [*_drawn_ticklabels(ax.xaxis), *_drawn_ticklabels(ax.yaxis)]
        own = [ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label]
        boxes[j] = [t.get_window_extent(renderer) for t in own + ticks
                    if t.get_visible() and t.get_text()] + [ax.bbox]  # fmt: skip
        for t in own:
            if t.get_visible() and t.get_text():
                box = t.get_window_extent(renderer)
                inside = page.x0 - 1 <= box.x0 and box.x1 <= page.x1 + 1
                inside = inside and page.y0 - 1 <= box.y0 and box.y1 <= page.y1 + 1
                assert inside, f"{t.get_text()!r} is cut off at the figure's edge"
    for j, ax in enumerate(fig.axes):
        own = [ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label]
        for t in own:
            if not (t.get_visible() and t.get_text()):
                continue
            box = t.get_window_extent(renderer)
            for m, others in boxes.items():
                if m != j:
                    assert not any(box.overlaps(o) for o in others), (
                        f"{t.get_text()!r} of axes {j} overlaps axes {m} or its texts"
                    )
    for ax in fig.axes:
        if ax.get_label() == "<colorbar>":
            label = ax.get_ylabel() or ax.get_xlabel()
            assert label and UNIT.search(label), f"colorbar label {label!r} gives no unit"
    for i in integer_x:
        assert _is_integer_locator(axes[i].xaxis), f"axes {i}: x ticks off the integers"
    for i in integer_y:
        assert _is_integer_locator(axes[i].yaxis), f"axes {i}: y ticks off the integers"
    texts = [t.get_text() for t in fig.findobj(matplotlib.text.Text)]
    for text in texts:
        assert not NEGATIVE_ZERO.search(text), f"negative zero in {text!r}"


def test_the_figure_check_catches_what_it_should():
    from gmmscape.experiments.output import legend_below, pyplot

    fig, ax = pyplot().subplots()
    ax.plot([0, 1, 2], [0.0, 1.0, 2.0], label="a line")
    ax.set_xlabel("x")
    ax.set_ylabel("y (nats)")
    with pytest.raises(AssertionError, match="gives no unit"):
        check_figure(fig)
    ax.set_xlabel("x (data units)")
    ax.legend(loc="upper left")  # on the line
    with pytest.raises(AssertionError, match="covers axes 0"):
        check_figure(fig)
    legend_below(ax)
    with pytest.raises(AssertionError, match="legend cut off"):
        check_figure(fig)  # below the figure until the layout makes room for it
    fig.tight_layout()
    check_figure(fig)
    with pytest.raises(AssertionError, match="x ticks off the integers"):
        check_figure(fig, integer_x=[0])
    ax.set_title("a mean of -0.000 and of \u22120")
    fig.tight_layout()
    with pytest.raises(AssertionError, match="negative zero"):
        check_figure(fig)
    ax.set_title("-0.001, -0.5, -10 and -1e-07 are not zero")
    check_figure(fig)
    pyplot().close(fig)
    fig, (ax1, ax2) = pyplot().subplots(1, 2, figsize=(6, 3))
    for ax in (ax1, ax2):
        ax.set_xlabel("x (data units)")
        ax.set_ylabel("a long label on the y axis (nats)")
    ax1.set_title("a title wider than its own panel runs on", loc="left")
    ax2.set_title("into the next one", loc="left")
    fig.tight_layout()
    with pytest.raises(AssertionError, match="overlaps axes 1"):
        check_figure(fig)
    pyplot().close(fig)


def _captured(monkeypatch, module):
    """Figures that ``module``'s ``save_figure`` would have saved (and closed)."""
    figs = []
    monkeypatch.setattr(module, "save_figure", lambda fig, stem: figs.append(fig) or [])
    return figs


def _power_law_run(alpha, n_restarts=2, seed=0):
    rng = np.random.default_rng(seed)
    steps = np.unique(np.geomspace(1, 20_000, 60).astype(int))
    noise = 1 + 0.01 * rng.standard_normal((n_restarts, len(steps)))
    kl = 0.2 * steps.astype(float) ** (-alpha) * noise
    return {"steps": steps.tolist(), "kl": kl.tolist(), "max_dist": np.sqrt(kl).tolist(),
            "sq_dist": (0.5 * kl).tolist()}  # fmt: skip


def test_demo_figure(monkeypatch):
    from gmmscape.experiments import demo

    figs = _captured(monkeypatch, demo)
    n = np.array([1e3, 1e4, 1e5])
    res = SimpleNamespace(
        sizes=n.tolist(), population_kl=0.5, sample_kl=(0.5 + 1 / np.sqrt(n)).tolist(),
        sample_kl_se=(1 / np.sqrt(n)).tolist(), grad_error=(2 / np.sqrt(n)).tolist(),
        grad_se=(2 / np.sqrt(n)).tolist(),
        em_kl={"population": np.geomspace(0.5, 1e-9, 40).tolist(),
               "n=1,000": np.geomspace(0.5, 1e-3, 40).tolist(),
               "n=100,000": np.geomspace(0.5, 1e-5, 40).tolist()},
    )  # fmt: skip
    demo.plot_demo(res, "unused")
    check_figure(figs[0], integer_x=[1])


def test_seed_a_figures(monkeypatch):
    from gmmscape.experiments import overparam as op

    figs = _captured(monkeypatch, op)
    runs = {"n=2": _power_law_run(1.0), "n=5": _power_law_run(0.5, seed=1)}
    wruns = {"w=0.5,0.5": _power_law_run(1.0, seed=2), "w=0.2,0.8": _power_law_run(2, seed=3)}
    study = op.StudyResult(
        config={"steps": 20_000}, runs=runs, weight_runs=wruns,
        table=[{"max_sqrt_t_loss": 0.3}], seconds=1.0,
    )  # fmt: skip
    op.plot_study(study, "unused")
    check_figure(figs.pop())
    R = np.arange(3.0, 9.0)
    heuristic = 4 * np.sqrt(2 * np.pi) * np.exp(R**2 / 8) / R
    trap = SimpleNamespace(
        R=R.tolist(), steps=heuristic.astype(int).tolist(), censored=[False] * 5 + [True],
        heuristic=heuristic.tolist(), fit={"a": 1.0, "c": 0.125}, config={"mode": "distance"},
    )  # fmt: skip
    op.plot_trap(trap, "unused")
    check_figure(figs.pop())
    trap.config = {"mode": "dimension", "c_scale": 1.5}
    op.plot_trap(trap, "unused")
    check_figure(figs.pop())
    sizes = np.array([1e3, 1e4, 1e5])
    err = (np.pi * sizes[:, None]) ** -0.25 * np.array([[0.9, 1.1]])
    samples = SimpleNamespace(
        sizes=sizes.tolist(), errors=err.tolist(), slope=-0.25, slope_se=0.01,
        predicted=err.tolist(), theory_rms=((np.pi * sizes) ** -0.25).tolist(),
    )  # fmt: skip
    op.plot_samples(samples, "unused")
    check_figure(figs.pop())


def test_sweep_figures_of_seed_a():
    from gmmscape.experiments import registry

    rows = [({"n_components": n}, {"alpha_loss": a, "alpha_loss_err": 0.02})
            for n, a in ((2, 1.0), (3, 0.6), (5, 0.5))]  # fmt: skip
    fig = registry.get("overparam").plot(rows)["overparam_alpha"]
    check_figure(fig, integer_x=[0])
    rows = [({}, {"R": r, "steps": int(10 * np.exp(r**2 / 8)), "censored": r > 7})
            for r in (3.0, 4.0, 5.0, 6.0, 8.0)]  # fmt: skip
    check_figure(registry.get("trap").plot(rows)["trap_escape"])


def test_recovery_figures_show_wilson_intervals_and_have_a_caption():
    from gmmscape.experiments import registry, tour
    from gmmscape.experiments.recovery import wilson_fractions
    from gmmscape.landscape.atlas import wilson

    rows = []
    for k, sep, method, n_ok in ((3, 4.0, "sklearn", 2), (5, 4.0, "sklearn", 1),
                                 (3, 4.0, "gmmscape", 2), (5, 4.0, "gmmscape", 1),
                                 (3, 8.0, "gmmscape", 3), (5, 8.0, "gmmscape", 0)):  # fmt: skip
        for seed in range(3):
            params = {"k": k, "d": 2, "separation": sep, "method": method, "seed": seed}
            rows.append((params, {"recovered": seed < n_ok}))
    exp = registry.get("recovery")
    fig = exp.plot(rows)["recovery"]
    check_figure(fig, integer_x=[0])
    ax = fig.axes[0]
    assert len(ax.containers) == 3  # one line with error bars per method and separation
    assert len(exp.captions["recovery"].split()) >= 12
    # the bars are the Wilson interval of each fraction (1 of 3 at k = 5)
    frac, yerr = wilson_fractions([1], 3)
    lo, hi = wilson(1, 3)
    assert frac[0] - yerr[0, 0] == pytest.approx(lo) and frac[0] + yerr[1, 0] == pytest.approx(hi)
    fig = tour.plot_recovery_bars(["scikit-learn", "gmmscape", "gmmscape + refine"],
                                  [8, 8, 10], 10, {"k": 8, "d": 2, "separation": 6.0})  # fmt: skip
    check_figure(fig)


def test_stream_error_figures():
    from gmmscape.sweep.builtin import plot_stream_error

    rng = np.random.default_rng(0)
    rows = []
    for d in (1, 2):
        for n in (1000, 10_000, 100_000):
            for seed in range(4):
                se = 1 / np.sqrt(n)
                z = rng.standard_normal()
                params = {"k": 2, "d": d, "separation": 3.0, "perturbation": 1.0, "n": n,
                          "seed": seed}  # fmt: skip
                rows.append((params, {"kl_error": z * se, "kl_se": se, "kl_z": z,
                                      "grad_error_max": 2 * se, "grad_se_at_max": se}))  # fmt: skip
    figs = plot_stream_error(rows)
    check_figure(figs["error_vs_n"])
    check_figure(figs["z_scores"])
    assert "95% CI" in figs["z_scores"].axes[0].get_title()


def test_landscape_study_figures():
    from gmmscape.landscape import plots

    rows = [({"k": 3, "k_star": 3, "delta": d}, {"n_spurious": n, "max_error_minima": 0.1,
              "all_minima_non_overlapping": n < 3})
            for d, n in ((1.0, 0), (2.0, 1), (3.0, 3))]  # fmt: skip
    check_figure(plots.plot_separation_rows(rows), integer_y=[0])
    # no spurious minimum anywhere: one tick at 0, not ticks at 0.015
    zero = [(p, {**r, "n_spurious": 0}) for p, r in rows]
    check_figure(plots.plot_separation_rows(zero), integer_y=[0])
    res = SimpleNamespace(
        ks=[3, 5, 8], bad_fraction=[0.1, 0.3, 0.5], ci=[[0, 0.2], [0.2, 0.4], [0.4, 0.6]],
        family="line", delta=10.0, n_starts=20, scheme="data", unconverged=[0, 1, 0],
        bad_bounds=[[0.1, 0.15], [0.3, 0.35], [0.5, 0.52]],
    )  # fmt: skip
    check_figure(plots.plot_random_init(res), integer_x=[0])
    rows = [({"k": 3, "seed": 0, "method": m}, {"n_minima": 2, "n_spurious": 1})
            for m in ("em", "gradient-em")]  # fmt: skip
    fig = plots.plot_summary_rows(rows)
    check_figure(fig, integer_y=[0])
    # the cells are told apart by what differs between them
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == [
        "method=em", "method=gradient-em"]  # fmt: skip
    points = [{"kind": kind, "delta": d, "means": [-d, 0.0, d], "kl": kl}
              for d in (2.0, 4.0)
              for kind, kl in (("strict minimum", 0.0), ("saddle", 0.1))]  # fmt: skip
    check_figure(plots.plot_bifurcation(SimpleNamespace(points=points, family="line")))


def test_two_dimensional_atlas_groups_figure():
    from gmmscape.landscape import plots

    point = SimpleNamespace(
        means=np.array([[-3.0, 0.0], [3.1, 0.1], [2.9, -0.1]]), kind="strict minimum",
        gap=-1e-17, fraction=0.4, ci=(0.3, 0.5), is_minimum=True,
        groups=[{"centers": [0], "estimates": [0], "kind": "one-fits-one", "error": 0.01},
                {"centers": [1], "estimates": [1, 2], "kind": "many-fit-one", "error": 0.1}],
    )  # fmt: skip
    atlas = SimpleNamespace(truth_means=[[-3.0, 0.0], [3.0, 0.0]], sigma=1.0, points=[point])
    fig = plots.plot_groups_2d(atlas)
    check_figure(fig)
    assert "95% CI" in fig.axes[0].get_title()


def test_model_selection_figure():
    from gmmscape.experiments.selection import plot_selection

    models = ("EII", "VVV", "EEE")
    ks = [1, 2, 3, 4]
    values = np.array([[-2500.0, -2400.0, -2350.0, np.nan], [-2480.0, -2320.0, -2330.0, -2340.0],
                       [-2490.0, -2330.0, -2314.3, -2320.0]])  # fmt: skip
    for conv, v in (("mclust", values), ("sklearn", -values)):
        fig = plot_selection(models, ks, v, convention=conv, best=("EEE", 3), title="faithful")
        check_figure(fig, integer_x=[0])
        assert len(fig.axes[0].get_legend().get_texts()) == 4
    with pytest.raises(ValueError, match="values must have shape"):
        plot_selection(models, ks, values[:2])
