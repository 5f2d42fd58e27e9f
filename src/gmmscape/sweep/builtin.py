"""The sweep package's own experiment type, ``stream-error``: finite-sample error of a stream.

For a truth with ``k`` centers on a line, ``separation`` apart, in dimension ``d`` (common
standard deviation ``sigma``, equal weights) and a model whose means are the true centers
moved by Gaussian noise of scale ``perturbation`` (drawn from ``seed``), one cell computes

- the exact population KL divergence and gradient (``gmmscape.population(truth)``), and
- their estimates from a stream of ``n`` points (``gmmscape.stream(truth, n, seed)``),

and records the errors of the estimates next to the standard errors that the stream
reports. Over a grid of ``n`` and seeds this is a small finite-sample study: the errors
fall like ``n^(-1/2)`` and ``error / standard error`` is close to standard normal.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from gmmscape.experiments.registry import ExperimentType


class StreamErrorParams(BaseModel):
    """Parameters of one ``stream-error`` cell.

    Attributes
    ----------
    n : int
        Points in the stream (>= 2).
    k : int, default 2
        True centers (= model components).
    d : int, default 1
        Dimension.
    separation : float, default 4.0
        Distance between neighbouring true centers, along the first axis.
    sigma : float, default 1.0
        Standard deviation of every component.
    perturbation : float, default 1.0
        Scale of the Gaussian noise added to the true centers to make the model.
    seed : int
        Seed of the model's noise and of the stream.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    n: int = Field(ge=2)
    k: int = Field(default=2, ge=1)
    d: int = Field(default=1, ge=1)
    separation: float = Field(default=4.0, gt=0)
    sigma: float = Field(default=1.0, gt=0)
    perturbation: float = Field(default=1.0, ge=0)
    seed: int


def stream_error_problem(p: StreamErrorParams):
    """The truth and the model of a cell.

    Parameters
    ----------
    p : StreamErrorParams

    Returns
    -------
    truth, model : gmmscape.Mixture
        Means of shape (k, d).
    """
    import numpy as np

    from gmmscape.core.mixture import Mixture

    centers = np.zeros((p.k, p.d))
    centers[:, 0] = (np.arange(p.k) - (p.k - 1) / 2) * p.separation
    rng = np.random.default_rng(p.seed)
    model_means = centers + p.perturbation * rng.standard_normal((p.k, p.d))
    return Mixture(centers, sigma=p.sigma), Mixture(model_means, sigma=p.sigma)


def run_stream_error(p: StreamErrorParams) -> dict:
    """Run one ``stream-error`` cell.

    Parameters
    ----------
    p : StreamErrorParams

    Returns
    -------
    dict
        ``kl_population``, ``kl_stream``, ``kl_se``, ``kl_error`` (stream minus
        population), ``kl_z`` (error / se); ``grad_error_max`` (largest absolute entry of
        the gradient error, shape (k, d) before the max), ``grad_se_at_max`` (the stream's
        standard error of that entry), ``grad_z_at_max``, ``grad_error_norm`` (Frobenius);
        ``quadrature`` (rule, nodes, error estimates of the population values) and
        ``model_means`` (k lists of d floats).
    """
    import numpy as np

    from gmmscape.core.sources import population, stream

    truth, model = stream_error_problem(p)
    exact = population(truth).expect(model)
    est = stream(truth, p.n, p.seed).expect(model)
    kl_err = float(est.kl - exact.kl)
    g_err = np.asarray(est.grad) - np.asarray(exact.grad)
    i = np.unravel_index(np.argmax(np.abs(g_err)), g_err.shape)
    g_se = float(np.asarray(est.se["grad"])[i])
    q = exact.quadrature
    return {
        "kl_population": float(exact.kl),
        "kl_stream": float(est.kl),
        "kl_se": float(est.se["kl"]),
        "kl_error": kl_err,
        "kl_z": kl_err / float(est.se["kl"]),
        "grad_error_max": float(abs(g_err[i])),
        "grad_se_at_max": g_se,
        "grad_z_at_max": float(abs(g_err[i])) / g_se,
        "grad_error_norm": float(np.linalg.norm(g_err)),
        "quadrature": {
            "rule": q.rule,
            "nodes": int(q.nodes),
            "kl_error_estimate": float(q.errors["kl"]),
            "converged": bool(q.converged),
        },
        "model_means": np.asarray(model.means).tolist(),
    }


def plot_stream_error(rows: Sequence[tuple[dict, dict]]) -> dict:
    """Error against ``n`` (log-log), one line per problem, and the z-score distribution.

    Parameters
    ----------
    rows : sequence of (params, result)
        Stored ``stream-error`` rows.

    Returns
    -------
    dict of str to matplotlib.figure.Figure
        ``"error_vs_n"``: root-mean-square KL and gradient errors over seeds against
        ``n``, with the mean reported standard error and an ``n^(-1/2)`` guide;
        ``"z_scores"``: histogram of ``kl_error / kl_se`` against the standard normal.
    """
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gmmscape.experiments.output import legend_below
    from gmmscape.landscape.atlas import wilson

    groups: dict = defaultdict(lambda: defaultdict(list))
    for params, result in rows:
        label = (
            f"k={params['k']}, d={params['d']}, sep={params['separation']:g}, "
            f"pert={params['perturbation']:g}"
        )
        groups[label][params["n"]].append(result)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, err, se, title, unit in (
        (axes[0], "kl_error", "kl_se", "KL", "nats"),
        (axes[1], "grad_error_max", "grad_se_at_max", "largest gradient entry",
         "nats per data unit"),
    ):  # fmt: skip
        for j, (label, by_n) in enumerate(sorted(groups.items())):
            ns = np.array(sorted(by_n), dtype=float)
            rms = [np.sqrt(np.mean([r[err] ** 2 for r in by_n[n]])) for n in sorted(by_n)]
            ses = [np.mean([r[se] for r in by_n[n]]) for n in sorted(by_n)]
            color = f"C{j % 10}"
            ax.loglog(ns, rms, "o-", color=color, label=f"{label} (rms error)")
            ax.loglog(ns, ses, "--", color=color, alpha=0.6, label="mean reported s.e.")
        all_n = sorted({n for by_n in groups.values() for n in by_n})
        if len(all_n) > 1 and ax.lines:
            y0 = ax.lines[0].get_ydata()[0]
            guide = y0 * np.sqrt(all_n[0] / np.array(all_n, dtype=float))
            ax.loglog(all_n, guide, ":", color="gray", label="slope n^(-1/2)")
        ax.set_xlabel("stream size n (points)")
        ax.set_ylabel(f"error of the {title} estimate\n({unit})")
        ax.set_title(f"Stream vs exact population: {title}")
        legend_below(ax, ncol=1, fontsize=7)
    fig.tight_layout()
    z = np.array([r["kl_z"] for _, r in rows if np.isfinite(r["kl_z"])])
    fig2, ax = plt.subplots(figsize=(5.5, 4))
    if z.size:
        ax.hist(z, bins=max(5, min(40, z.size // 5)), density=True, alpha=0.6, label="cells")
    grid = np.linspace(-4, 4, 200)
    ax.plot(grid, np.exp(-(grid**2) / 2) / np.sqrt(2 * np.pi), "k-", label="N(0, 1)")
    if z.size:
        n_in = int(np.sum(np.abs(z) < 1.96))
        lo, hi = wilson(n_in, z.size)
        within = f"{n_in / z.size:.0%} within +-1.96, 95% CI {lo:.0%}-{hi:.0%}"
    else:
        within = "no finite z"
    ax.set_title(f"KL error / reported s.e. ({z.size} cells; {within})", fontsize=9)
    ax.set_xlabel("z = KL error / reported standard error (dimensionless)")
    ax.set_ylabel("density (per unit of z)")
    legend_below(ax)
    fig2.tight_layout()
    return {"error_vs_n": fig, "z_scores": fig2}


STREAM_ERROR = ExperimentType(
    name="stream-error",
    params=StreamErrorParams,
    run=run_stream_error,
    plot=plot_stream_error,
    description="Error of stream KL and gradient estimates against exact population values.",
    captions={
        "error_vs_n": "Root-mean-square error (over seeds) of the stream estimates of the KL "
        "divergence and of its gradient against the exact population values, with the mean "
        "reported standard error and an n^(-1/2) guide, against the stream size n (log-log).",
        "z_scores": "Histogram of each cell's KL error divided by its reported standard "
        "error, against the standard normal density: standard errors that are honest give "
        "about 95% of the z-scores inside +-1.96.",
    },
)

SWEEP_EXPERIMENTS = (STREAM_ERROR,)
