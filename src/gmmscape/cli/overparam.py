"""``gmmscape overparam``, ``gmmscape trap`` and ``gmmscape overparam-samples`` (seed A)."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from gmmscape.cli._app import app, console, split_list
from gmmscape.cli._output import check_out, fail, writing_into

#: The default weight sets of ``overparam --weights``, as its help states them; equal to
#: gmmscape.experiments.overparam.DEFAULT_WEIGHT_SETS (tests/test_cli_startup.py checks).
WEIGHT_SETS_HELP = "0.5,0.5 and 0.3,0.7 and 0.1,0.9"


@contextmanager
def _bar():
    """A rich progress bar; yields ``update(label, done, total)``."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as prog:
        tasks: dict = {}

        def update(label, done, total):
            if label not in tasks:
                tasks[label] = prog.add_task(label, total=total)
            prog.update(tasks[label], completed=done, total=total)

        yield update


def _fail(exc: Exception) -> None:
    fail(str(exc))


def _fmt(v, spec=".3f"):
    from gmmscape.experiments.output import format_number

    return "-" if v is None else format_number(v, spec)


@app.command()
def overparam(
    n: Annotated[list[str], typer.Option(help="Numbers of components n, comma-separated.")] = (
        "2,5,10",
    ),
    d: Annotated[int, typer.Option(help="Dimension.")] = 1,
    eta: Annotated[float, typer.Option(help="Step size of gradient EM.")] = 1.0,
    steps: Annotated[int, typer.Option(help="Steps per run.")] = 10**5,
    restarts: Annotated[int, typer.Option(help="Random starts per configuration.")] = 4,
    init_scale: Annotated[float, typer.Option(help="Std. dev. of the random starts.")] = 1.0,
    weights: Annotated[
        list[str] | None,
        typer.Option(
            help="A weight set of the weights panel, comma-separated; repeat the option for "
            "more sets, e.g. --weights 0.3,0.7 --weights 0.1,0.9. "
            f"(default: {WEIGHT_SETS_HELP})",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the random starts.")] = 0,
    out: Annotated[Path, typer.Option(help="Folder for figures and JSON.")] = Path(
        "overparam-output"
    ),
) -> None:
    """Seed A: population gradient EM learning N(0, I_d); loss rate vs the O(1/sqrt(t)) bound."""
    from rich.table import Table

    from gmmscape._files import write_json
    from gmmscape.experiments.overparam import (
        DEFAULT_WEIGHT_SETS,
        DivergenceError,
        overparam_study,
        plot_study,
    )

    check_out(out)
    ns = split_list(n, int, "--n")
    wsets = (
        DEFAULT_WEIGHT_SETS
        if not weights
        else [tuple(split_list(w, float, "--weights")) for w in weights]
    )
    try:
        with _bar() as update:
            result = overparam_study(
                ns=tuple(ns), d=d, steps=steps, restarts=restarts, eta=eta,
                init_scale=init_scale, weight_sets=wsets, seed=seed, progress=update,
            )  # fmt: skip
    except (ValueError, DivergenceError) as exc:
        _fail(exc)
    table = Table(title=f"Population gradient EM, d = {d}, eta = {eta:g}, {steps:,} steps")
    for col in (
        "run", "alpha (L_t)", "+-", "alpha (max||mu||)", "max sqrt(t) L_t",
        "sqrt(t)L_t eventually decreasing", "final KL", "non-monotone runs",
    ):  # fmt: skip
        table.add_column(col, justify="right")
    for row in result.table:
        table.add_row(
            row["label"],
            _fmt(row["alpha_loss"]),
            _fmt(row["alpha_loss_err"]),
            _fmt(row["alpha_max_dist"]),
            _fmt(row["max_sqrt_t_loss"], ".3g"),
            str(row["eventually_nonincreasing"]),
            _fmt(row["final_kl_median"], ".2e"),
            f"{row['nonmonotone_runs']}/{row['restarts']}",
        )
    console.print(table)
    console.print(result.table[0]["explanation"])
    with writing_into(out):
        paths = plot_study(result, out)
        path = write_json(result, out / "overparam.json")
    console.print(
        f"Wrote {escape(', '.join(str(p) for p in [*paths, path]))} in {result.seconds:.1f} s."
    )


@app.command()
def trap(
    r: Annotated[
        list[str],
        typer.Option("--r", help="Distances R of the far component(s), comma-separated."),
    ] = ("3,4,5,6,7,8,9,10",),
    n: Annotated[int, typer.Option(help="Number of components.")] = 2,
    d: Annotated[int, typer.Option(help="Dimension (modes one and several).")] = 1,
    mode: Annotated[
        str,
        typer.Option(
            help="one (one far component), several (--n-far of them) or dimension "
            "(R = c sqrt(d) over --dims)."
        ),
    ] = "one",
    n_far: Annotated[int, typer.Option(help="Far components (mode several).")] = 2,
    dims: Annotated[
        list[str],
        typer.Option(help="Dimensions of mode dimension (R = c sqrt(d)), comma-separated."),
    ] = ("4,16,36,64,100",),
    c_scale: Annotated[float, typer.Option(help="c in R = c sqrt(d).")] = 1.0,
    eta: Annotated[float, typer.Option(help="Step size.")] = 1.0,
    max_steps: Annotated[int, typer.Option(help="Step cap (censoring).")] = 10**6,
    seed: Annotated[int, typer.Option(help="Seed of the near components.")] = 0,
    out: Annotated[Path, typer.Option(help="Folder for figures and JSON.")] = Path("trap-output"),
) -> None:
    """Seed A: escape time of gradient EM from a component at distance R; fit log T = a + c R^2."""
    from rich.table import Table

    from gmmscape._files import write_json
    from gmmscape.experiments.overparam import plot_trap
    from gmmscape.experiments.trap import trap as run_trap

    check_out(out)
    kwargs = {
        "R_values": tuple(split_list(r, float, "--r")),
        "dims": tuple(split_list(dims, int, "--dims")),
    }
    try:
        with _bar() as update:
            result = run_trap(
                n_components=n, d=d, mode=mode, n_far=n_far, c_scale=c_scale, eta=eta,
                max_steps=max_steps, seed=seed,
                progress=lambda a, b: update("steps of the current escape run", a, b), **kwargs,
            )  # fmt: skip
    except (ValueError, FloatingPointError) as exc:
        _fail(exc)
    table = Table(title=f"Escape times ({result.definition})")
    for col in ("R", "d", "escape step", "censored", "heuristic", "far mass at start"):
        table.add_column(col, justify="right")
    for i in range(len(result.R)):
        table.add_row(
            f"{result.R[i]:.3g}",
            str(result.dims[i]),
            f"{result.steps[i]:,}",
            str(result.censored[i]),
            f"{result.heuristic[i]:.3g}",
            f"{result.far_mass[i]:.2e}",
        )
    console.print(table)
    console.print(result.comparison)
    with writing_into(out):
        paths = plot_trap(result, out)
        path = write_json(result, out / "trap.json")
    console.print(
        f"Wrote {escape(', '.join(str(p) for p in [*paths, path]))} in {result.seconds:.1f} s."
    )


@app.command("overparam-samples")
def overparam_samples(
    sizes: Annotated[
        list[str], typer.Option("--sizes", "--size", help="Sample sizes N, comma-separated.")
    ] = ("1000,10000,100000",),
    seeds: Annotated[int, typer.Option(help="Datasets per size.")] = 6,
    eta: Annotated[float, typer.Option(help="Step size.")] = 2.0,
    steps_factor: Annotated[float, typer.Option(help="Steps = factor sqrt(N) / eta.")] = 16.0,
    seed: Annotated[int, typer.Option(help="First data seed.")] = 0,
    out: Annotated[Path, typer.Option(help="Folder for figures and JSON.")] = Path(
        "overparam-output"
    ),
) -> None:
    """Seed A with finite samples: final error of sample gradient EM vs N, against N^(-1/4)."""
    from rich.table import Table

    from gmmscape._files import write_json
    from gmmscape.experiments.overparam import (
        DivergenceError,
        plot_samples,
        prediction_deviation,
        sample_study,
    )

    check_out(out)
    try:
        with _bar() as update:
            result = sample_study(
                tuple(split_list(sizes, int, "--sizes")), seeds=seeds, eta=eta,
                steps_factor=steps_factor, seed=seed, progress=update,
            )  # fmt: skip
    except (ValueError, DivergenceError) as exc:
        _fail(exc)
    table = Table(
        title="Sample gradient EM (n = 2, d = 1) on a fixed dataset of N points",
        caption="off pred.: median |error - predicted optimum| N^(1/4) over the seeds",
    )
    cols = ("N", "steps", "RMS error", "(pi N)^-1/4", "min", "max", "off pred.", "s")
    for col in cols:
        table.add_column(col, justify="right")
    for i, size in enumerate(result.sizes):
        e = result.errors[i]
        rms = (sum(x * x for x in e) / len(e)) ** 0.5
        rel = sorted(prediction_deviation([e], [result.predicted[i]], [size]))
        table.add_row(
            f"{size:,}",
            f"{result.steps[i]:,}",
            f"{rms:.3e}",
            f"{result.theory_rms[i]:.3e}",
            f"{min(e):.2e}",
            f"{max(e):.2e}",
            f"{rel[len(rel) // 2]:.1e}",
            f"{result.seconds[i]:.1f}",
        )
    console.print(table)
    console.print(result.comparison)
    with writing_into(out):
        paths = plot_samples(result, out)
        path = write_json(result, out / "overparam_samples.json")
    console.print(f"Wrote {escape(', '.join(str(p) for p in [*paths, path]))}.")
