"""Figures of landscapes and studies (matplotlib, Agg backend; PNG + SVG via :func:`save`).

:func:`save` is :func:`gmmscape.experiments.output.save_figure`.
"""

from __future__ import annotations

import numpy as np

from gmmscape.experiments.output import format_number, integer_ticks, legend_below
from gmmscape.experiments.output import pyplot as _plt
from gmmscape.experiments.output import save_figure as save  # noqa: F401 (re-exported)

KIND_STYLE = {
    "strict minimum": ("o", "tab:green"),
    "degenerate minimum (quartic)": ("D", "tab:olive"),
    "saddle": ("x", "tab:red"),
    "degenerate saddle": ("X", "tab:orange"),
    "maximum": ("^", "tab:purple"),
    "degenerate (undetermined)": ("s", "tab:gray"),
}


def _population_kl(truth_means, sigma, k):
    """A jitted KL on the full space of a 1-D or 2-D truth (r = d)."""
    import jax

    from gmmscape.core.mixture import Mixture
    from gmmscape.landscape._problem import make_problem

    truth = Mixture(truth_means, sigma=sigma)
    prob = make_problem(truth, k, frame="full")
    fp = prob.polish
    return prob, jax.jit(jax.vmap(fp.kl))


def plot_atlas_1d(atlas, n_path: int = 121):
    """Loss along straight paths from the global minimum to every other critical point.

    Left: ``KL`` along ``mu(t) = (1 - t) mu_global + t mu_point`` (estimates matched by
    Hungarian), ``t`` in [-0.25, 1.25], one curve per critical point, with the points
    marked by kind. Right: the truth's density with the estimates of each minimum.

    Parameters
    ----------
    atlas : Atlas
        Of a 1-D truth.
    n_path : int, default 121

    Returns
    -------
    matplotlib.figure.Figure
    """
    from scipy.optimize import linear_sum_assignment

    plt = _plt()
    prob, kl = _population_kl(atlas.truth_means, atlas.sigma, atlas.k)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    pts = atlas.points
    gmin = next((p for p in pts if p.is_minimum and p.gap <= 1e-8), pts[0])
    g = np.asarray(gmin.means)
    ts = np.linspace(-0.25, 1.25, n_path)
    for i, p in enumerate(pts):
        m = np.asarray(p.means)
        if p is gmin:
            continue
        cost = np.sum((g[:, None] - m[None]) ** 2, axis=-1)
        _, cols = linear_sum_assignment(cost)
        m = m[cols]
        path = (1 - ts)[:, None, None] * g[None] + ts[:, None, None] * m[None]
        vals = np.asarray(kl(np.asarray(prob.to_frame(path))))
        ax1.plot(ts, vals, lw=1, label=f"#{i} {p.kind}")
        mk, col = KIND_STYLE.get(p.kind, ("s", "k"))
        ax1.plot([1.0], [p.kl], mk, color=col, ms=8)
    mk, col = KIND_STYLE[gmin.kind] if gmin.kind in KIND_STYLE else ("o", "k")
    ax1.plot([0.0], [gmin.kl], mk, color=col, ms=9)
    ax1.set_xlabel("path parameter t (dimensionless; 0: global minimum, 1: critical point)")
    ax1.set_ylabel("KL(truth || model) (nats)")
    ax1.set_title("Loss along straight paths between critical points")
    beta = np.asarray(atlas.truth_means)[:, 0]
    x = np.linspace(beta.min() - 4 * atlas.sigma, beta.max() + 4 * atlas.sigma, 600)
    dens = np.mean(np.exp(-0.5 * ((x[:, None] - beta[None]) / atlas.sigma) ** 2), axis=1)
    dens /= np.sqrt(2 * np.pi) * atlas.sigma
    ax2.fill_between(x, dens, color="0.85", label="truth density")
    minima = [p for p in pts if p.is_minimum]
    for j, p in enumerate(minima):
        mu = np.asarray(p.means)[:, 0]
        y = dens.max() * (1.1 + 0.12 * j)
        ax2.plot(mu, np.full_like(mu, y), "v", ms=9, label=f"{p.kind} ({p.signature})")
    ax2.plot(beta, np.zeros_like(beta), "k|", ms=15, mew=2, label="true centers")
    ax2.set_xlabel("x (data units)")
    ax2.set_ylabel("density of the truth (per data unit)")
    ax2.set_title("Estimates of each local minimum (triangles)")
    # below the axes, so that they cover neither the curves, the density nor the estimates
    legend_below(ax1, fontsize=7)
    legend_below(ax2, fontsize=7)
    fig.tight_layout()
    return fig


def plot_heatmap_2est(atlas, n_grid: int = 161):
    """Heat map of KL over two estimates of a 1-D truth, with the critical points marked.

    Parameters
    ----------
    atlas : Atlas
        Of a 1-D truth with ``k = 2``.
    n_grid : int, default 161

    Returns
    -------
    matplotlib.figure.Figure
    """
    if atlas.k != 2 or len(atlas.truth_means[0]) != 1:
        raise ValueError("plot_heatmap_2est needs an atlas of a 1-D truth with k = 2.")
    plt = _plt()
    prob, kl = _population_kl(atlas.truth_means, atlas.sigma, 2)
    beta = np.asarray(atlas.truth_means)[:, 0]
    lo, hi = beta.min() - 3 * atlas.sigma, beta.max() + 3 * atlas.sigma
    g = np.linspace(lo, hi, n_grid)
    a, b = np.meshgrid(g, g, indexing="xy")
    grid = np.stack([a.ravel(), b.ravel()], axis=1)[:, :, None]
    vals = np.asarray(kl(np.asarray(prob.to_frame(grid)))).reshape(a.shape)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    im = ax.contourf(a, b, np.log10(vals + 1e-6), levels=40, cmap="viridis")
    fig.colorbar(im, ax=ax, label="log10(KL + 1e-6) (KL in nats)")
    seen = set()
    for p in atlas.points:
        mu = np.asarray(p.means)[:, 0]
        mk, col = KIND_STYLE.get(p.kind, ("s", "k"))
        for x, y in ((mu[0], mu[1]), (mu[1], mu[0])):
            ax.plot(
                x, y, mk, color=col, ms=10, mec="white", label=None if p.kind in seen else p.kind
            )
            seen.add(p.kind)
    ax.set_xlabel("mu_1 (data units)")
    ax.set_ylabel("mu_2 (data units)")
    ax.set_title("Population KL over two estimates (both orderings shown)")
    legend_below(ax, ncol=3)
    fig.tight_layout()
    return fig


def plot_groups_2d(atlas, which=None):
    """True centers, estimates and their groups for 2-D truths, one panel per point.

    Parameters
    ----------
    atlas : Atlas
        Of a 2-D truth.
    which : list of int, optional
        Indices of the points to draw (default: every minimum, at most 6).

    Returns
    -------
    matplotlib.figure.Figure
    """
    if len(atlas.truth_means[0]) != 2:
        raise ValueError("plot_groups_2d needs an atlas of a 2-D truth.")
    plt = _plt()
    if which is None:
        which = [i for i, p in enumerate(atlas.points) if p.is_minimum][:6]
    n = max(1, len(which))
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 4.2), squeeze=False)
    beta = np.asarray(atlas.truth_means)
    colors = plt.get_cmap("tab10")
    for ax, i in zip(axes[0], which, strict=False):
        p = atlas.points[i]
        mu = np.asarray(p.means)
        for c in beta:
            ax.add_patch(plt.Circle(c, atlas.sigma, color="0.9", zorder=0))
        for gi, grp in enumerate(p.groups):
            col = colors(gi % 10)
            ax.plot(*beta[grp["centers"]].T, "o", color=col, ms=10, mfc="none", mew=2)
            ax.plot(
                *mu[grp["estimates"]].T,
                "x",
                color=col,
                ms=10,
                mew=2,
                label=f"{grp['kind']} ({grp['error']:.2f} sigma)",
            )
        ax.set_aspect("equal")
        ax.set_xlabel("x_1 (data units)")
        ax.set_ylabel("x_2 (data units)")
        lo, hi = p.ci
        ax.set_title(
            f"#{i} {p.kind}\nKL gap {format_number(p.gap, '.3g')} nats\nbasin "
            f"{p.fraction:.2f} of starts (95% CI {lo:.2f}-{hi:.2f})",
            fontsize=9,
        )
        legend_below(ax, ncol=1, fontsize=7)
    fig.tight_layout()
    return fig


def plot_separation(result):
    """Spurious minima, structure and approximation error against the separation.

    Parameters
    ----------
    result : SeparationResult

    Returns
    -------
    matplotlib.figure.Figure
    """
    return plot_separation_rows(
        [({"k": r["k"], "k_star": result.k_star, "delta": r["delta"]}, r) for r in result.rows],
        title=f"{result.family} family, k* = {result.k_star}, d = {result.d}",
    )


def plot_separation_rows(rows, title: str = "separation sweep"):
    """Draw separation results from ``(params, result)`` rows (one curve per k, k*).

    Parameters
    ----------
    rows : sequence of (dict, dict)
        Params need ``k``, ``k_star``, ``delta``; results :func:`atlas_summary` numbers.
    title : str

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    curves: dict = {}
    for params, res in rows:
        key = (params.get("k_star"), params["k"])
        curves.setdefault(key, []).append((params["delta"], res))
    for (ks, k), pts in sorted(curves.items(), key=lambda kv: str(kv[0])):
        pts.sort(key=lambda x: x[0])
        dl = np.array([x[0] for x in pts])
        ns = np.array([x[1]["n_spurious"] for x in pts])
        err = np.array(
            [np.nan if x[1]["max_error_minima"] is None else x[1]["max_error_minima"] for x in pts]
        )
        ok = np.array([x[1]["all_minima_non_overlapping"] for x in pts])
        (line,) = ax1.plot(dl, ns, "-", label=f"k = {k}, k* = {ks}")
        ax1.plot(dl[ok], ns[ok], "o", color=line.get_color())
        ax1.plot(dl[~ok], ns[~ok], "x", color="red", ms=10, mew=2)
        ax2.semilogy(
            dl, np.maximum(err, 1e-12), "o-", color=line.get_color(), label=f"k = {k}, k* = {ks}"
        )
    ax1.set_xlabel("separation delta (units of sigma)")
    ax1.set_ylabel("distinct spurious local minima (count)")
    integer_ticks(ax1.yaxis)
    ax1.set_title("o: all minima non-overlapping;\nred x: an overlapping minimum", fontsize=10)
    ax2.set_xlabel("separation delta (units of sigma)")
    ax2.set_ylabel("largest approximation error\nof the minima (units of sigma)")
    ax2.set_title(title)
    legend_below(ax1)
    legend_below(ax2)
    fig.tight_layout()
    return fig


def plot_bifurcation(result):
    """Bifurcation diagram: every critical point's estimates and KL against the separation.

    Parameters
    ----------
    result : BifurcationResult

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8))
    seen = set()
    for p in result.points:
        mk, col = KIND_STYLE.get(p["kind"], ("s", "k"))
        lab = None if p["kind"] in seen else p["kind"]
        seen.add(p["kind"])
        mu = np.asarray(p["means"]) / p["delta"]
        ax1.plot(np.full(3, p["delta"]), mu, mk, color=col, ms=4, label=lab)
        ax2.semilogy(p["delta"], max(p["kl"], 1e-16), mk, color=col, ms=5, label=lab)
    ax1.set_xlabel("separation delta (units of sigma)")
    ax1.set_ylabel("estimates / delta (dimensionless, sorted)")
    ax1.set_title(f"Critical points of the 1-D three-center landscape ({result.family})")
    ax2.set_xlabel("separation delta (units of sigma)")
    ax2.set_ylabel("KL at the critical point (nats)")
    ax2.set_title("Loss of every critical point")
    legend_below(ax1, ncol=3, fontsize=7)
    legend_below(ax2, ncol=3, fontsize=7)
    fig.tight_layout()
    return fig


def plot_random_init(result):
    """Probability of a bad end point from random starts against k = k*, with 95% CIs.

    Parameters
    ----------
    result : RandomInitResult

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    k = np.asarray(result.ks)
    have = np.array([p is not None for p in result.bad_fraction], dtype=bool)
    if have.any():
        p = np.array([x for x in result.bad_fraction if x is not None], dtype=float)
        ci = np.array([c for c in result.ci if c is not None], dtype=float)
        ax.errorbar(
            k[have],
            p,
            yerr=[p - ci[:, 0], ci[:, 1] - p],
            fmt="o-",
            capsize=3,
            label="converged starts (95% CI)",
        )
    bounds = np.asarray(getattr(result, "bad_bounds", None) or [], dtype=float)
    if bounds.size and np.any(np.asarray(result.unconverged) > 0):
        ax.fill_between(
            k, bounds[:, 0], bounds[:, 1], alpha=0.2, label="all starts, unconverged either way"
        )
    ax.set_xlabel("k = k* (components)")
    integer_ticks(ax.xaxis)
    ax.set_ylabel("P(EM ends at a bad critical point)\n(fraction of starts)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(
        f"{result.family} truth, delta = {result.delta:g} sigma, {result.n_starts} "
        f"'{result.scheme}' starts per k"
    )
    legend_below(ax)
    fig.tight_layout()
    return fig


def plot_summary_rows(rows):
    """Minima and spurious minima of many ``landscape`` sweep rows.

    Parameters
    ----------
    rows : sequence of (dict, dict)

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    x = np.arange(len(rows))
    ax.bar(x - 0.2, [r["n_minima"] for _, r in rows], 0.4, label="minima")
    ax.bar(x + 0.2, [r["n_spurious"] for _, r in rows], 0.4, label="spurious minima")
    # each cell is named by the parameters that tell the cells apart (k and seed if none)
    keys = [key for key in rows[0][0] if len({repr(p.get(key)) for p, _ in rows}) > 1]
    keys = keys or ["k", "seed"]
    names = [", ".join(f"{key}={p.get(key)}" for key in keys) for p, _ in rows]
    ax.set_xticks(x, names, rotation=45, ha="right", fontsize=7)
    ax.set_xlabel(f"sweep cell ({', '.join(keys)})")
    ax.set_ylabel("local minima found (count)")
    integer_ticks(ax.yaxis)
    legend_below(ax)
    fig.tight_layout()
    return fig
