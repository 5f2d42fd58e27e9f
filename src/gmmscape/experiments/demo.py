"""``gmmscape demo``: population EM against sample EM on one small problem.

The demo answers a question a newcomer has first: how far is what a finite sample says
from the infinite-sample truth that the papers study? For a 2-D truth with three centers
and a three-component model started badly it measures

1. the error of the sample KL and gradient against the exact population values, for
   samples of growing size, next to the sampling standard error the sample reports;
2. EM trajectories (the KL after each step) under the population and under samples of
   two sizes, from the same start.

Results go to ``OUT/demo.json`` and ``OUT/demo.png`` / ``OUT/demo.svg``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gmmscape.core.mixture import Mixture
from gmmscape.core.sources import population, sample, stream
from gmmscape.experiments.output import integer_ticks, legend_below, pyplot, save_figure

__all__ = ["DemoResult", "plot_demo", "run_demo"]

#: The demo's problem: three true centers in 2-D and a start with two estimates on one.
DEMO_TRUTH = ([[-3.0, 0.0], [3.0, 0.0], [0.0, 4.0]], 1.0)
DEMO_START = [[-2.0, 0.5], [-1.0, -0.5], [2.0, 2.0]]


@dataclass
class DemoResult:
    """Numbers behind the demo (all JSON-serializable).

    Attributes
    ----------
    truth_means, start_means : list of list of float
        Shapes (3, 2).
    sizes : list of int
        Sample sizes of the convergence study, shape (n_sizes,).
    population_kl : float
        Exact KL of the start.
    sample_kl, sample_kl_se : list of float
        Sample KL estimates and their standard errors, shape (n_sizes,).
    grad_error, grad_se : list of float
        Largest gradient error against the population and the matching standard error.
    em_steps : int
    em_kl : dict of str to list of float
        Population KL after each EM step, for the population and each sample size.
    final_means : dict of str to list of list of float
    quadrature : dict
        Rule, r, nodes and error estimates of the population start.
    seconds : float
    """

    truth_means: list
    start_means: list
    sizes: list
    population_kl: float
    sample_kl: list
    sample_kl_se: list
    grad_error: list
    grad_se: list
    em_steps: int
    em_kl: dict
    final_means: dict
    quadrature: dict
    seconds: float


def run_demo(quick: bool = False, seed: int = 0, progress=None) -> DemoResult:
    """Run the demo's computations.

    Parameters
    ----------
    quick : bool, default False
        Smaller samples and fewer EM steps (a few seconds).
    seed : int, default 0
        Seed of every sample and stream.
    progress : callable, optional
        Called with a short text before each stage.

    Returns
    -------
    DemoResult
    """
    say = progress or (lambda _msg: None)
    t0 = time.perf_counter()
    means, sigma = DEMO_TRUTH
    truth = Mixture(means, sigma=sigma)
    start = Mixture(DEMO_START, sigma=sigma)
    pop = population(truth)
    say("population expectations at the start")
    e_pop = pop.expect(start)
    sizes = [10**2, 10**3, 10**4, 10**5] + ([] if quick else [10**6, 10**7])
    kl_est, kl_se, g_err, g_se = [], [], [], []
    for n in sizes:
        say(f"stream of {n:,} points")
        e = stream(truth, n=n, seed=seed).expect(start)
        kl_est.append(e.kl)
        kl_se.append(e.se["kl"])
        i = np.unravel_index(np.argmax(np.abs(e.grad - e_pop.grad)), e.grad.shape)
        g_err.append(float(np.abs(e.grad - e_pop.grad)[i]))
        g_se.append(float(e.se["grad"][i]))
    steps = 15 if quick else 40
    runs = {"population": pop}
    for n in (10**3, 10**5):
        runs[f"n={n:,}"] = sample(truth.sample(n, seed=seed + n), truth=truth)
    em_kl, final = {}, {}
    for name, src in runs.items():
        say(f"{steps} EM steps, {name}")
        model, trace = start, [pop.kl(start)]
        for _ in range(steps):
            model = src.em_step(model)
            trace.append(pop.kl(model))
        em_kl[name] = trace
        final[name] = np.asarray(model.means).round(6).tolist()
    q = e_pop.quadrature
    return DemoResult(
        truth_means=means,
        start_means=DEMO_START,
        sizes=sizes,
        population_kl=e_pop.kl,
        sample_kl=kl_est,
        sample_kl_se=kl_se,
        grad_error=g_err,
        grad_se=g_se,
        em_steps=steps,
        em_kl=em_kl,
        final_means=final,
        quadrature={"rule": q.rule, "r": q.r, "nodes": q.nodes, "errors": q.errors},
        seconds=time.perf_counter() - t0,
    )


def plot_demo(result: DemoResult, out: Path) -> list[Path]:
    """Draw the demo's two panels and save them as PNG and SVG.

    Parameters
    ----------
    result : DemoResult
    out : Path
        Folder to write ``demo.png`` and ``demo.svg`` into.

    Returns
    -------
    list of Path
    """
    fig, (ax1, ax2) = pyplot().subplots(1, 2, figsize=(11, 4.2))
    n = np.array(result.sizes, dtype=float)
    kl_err = np.abs(np.array(result.sample_kl) - result.population_kl)
    ax1.loglog(n, kl_err, "o-", label="|sample KL - population KL|")
    ax1.loglog(n, result.sample_kl_se, "k--", label="reported standard error (KL)")
    ax1.loglog(n, result.grad_error, "s-", label="largest gradient error")
    ax1.loglog(n, result.grad_se, ":", color="gray", label="its standard error")
    ax1.set_xlabel("sample size n (points)")
    ax1.set_ylabel(
        "error against the exact population value\n(KL: nats; gradient: nats per data unit)"
    )
    ax1.set_title("Samples converge to the population at rate n^(-1/2)")
    for name, trace in result.em_kl.items():
        ax2.semilogy(np.maximum(trace, 1e-16), label=name)
    ax2.set_xlabel("EM step (iterations)")
    integer_ticks(ax2.xaxis)
    ax2.set_ylabel("KL(truth || model), exact (nats)")
    ax2.set_title("EM from one start: population vs samples")
    legend_below(ax1)
    legend_below(ax2, ncol=3)
    fig.tight_layout()
    return save_figure(fig, Path(out) / "demo")
