"""``gmmscape landscape``, ``separation``, ``bifurcation``, ``random-init``: seed B's atlas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from gmmscape.cli._app import app, console, split_list

#: Start schemes (gmmscape.landscape.starts.SCHEMES; tests/test_cli_startup.py checks).
SCHEMES_HELP = "gaussian, uniform, data, kmeans++"


def _fail(exc: ValueError) -> None:
    console.print(f"[red]error:[/] {exc}")
    raise typer.Exit(code=2)


@app.command()
def landscape(
    truth: Annotated[
        str, typer.Option(help="True centers as JSON, e.g. '[[-1.5], [1.5], [15]]'.")
    ] = "[[-1.5], [1.5], [15.0]]",
    k: Annotated[int, typer.Option("-k", "--k", help="Number of model means.")] = 3,
    sigma: Annotated[float, typer.Option(help="Common standard deviation.")] = 1.0,
    starts: Annotated[int, typer.Option(help="Number of starts.")] = 1000,
    schemes: Annotated[
        list[str],
        typer.Option(help=f"Start schemes, comma-separated; any of {SCHEMES_HELP}."),
    ] = ("gaussian,uniform,data,kmeans++",),
    method: Annotated[str, typer.Option(help="em, gradient-em or newton.")] = "em",
    seed: Annotated[int, typer.Option(help="Seed of the starts.")] = 0,
    out: Annotated[Path, typer.Option(help="Folder for the JSON and figures.")] = Path(
        "landscape-output"
    ),
) -> None:
    """Find, certify and classify the critical points of a population landscape."""
    from rich.progress import Progress

    import gmmscape as gs
    from gmmscape.landscape import explore, plots

    try:
        t = gs.Mixture(json.loads(truth), sigma=sigma)
        with Progress(console=console, transient=True) as prog:
            task = prog.add_task("starting", total=None)

            def say(stage, done, total):
                prog.update(task, description=stage, completed=done, total=total)

            atlas = explore(
                t,
                k,
                n_starts=starts,
                schemes=split_list(schemes, str, "--schemes"),
                method=method,
                seed=seed,
                progress=say,
            )
    except (ValueError, json.JSONDecodeError) as exc:
        _fail(ValueError(str(exc)))
    console.print(atlas.table())
    if atlas.failures:
        console.print(f"[yellow]{atlas.n_failed} start(s) failed:[/]")
        for f in atlas.failures:
            console.print(f"  {f['count']} start(s): {f['reason']} (|grad| = {f['grad_norm']})")
    s = atlas.seconds
    console.print(
        f"{atlas.n_starts:,} starts in {s['total']:.1f} s ({1e3 * s['per_start']:.2f} ms per "
        f"start): batch {s['batch']:.1f} s, polish {s['polish']:.1f} s, certify "
        f"{s['certify']:.1f} s."
    )
    paths = [atlas.write_json(out / "atlas.json")]
    d = t.d
    if d == 1:
        paths += plots.save(plots.plot_atlas_1d(atlas), out / "atlas_1d")
        if k == 2:
            paths += plots.save(plots.plot_heatmap_2est(atlas), out / "heatmap")
    elif d == 2:
        paths += plots.save(plots.plot_groups_2d(atlas), out / "groups_2d")
    console.print("Wrote " + ", ".join(str(p) for p in paths))


@app.command()
def separation(
    family: Annotated[str, typer.Option(help="line, simplex, random or jin.")] = "line",
    k_star: Annotated[int, typer.Option(help="Number of true centers.")] = 3,
    d: Annotated[int, typer.Option(help="Dimension.")] = 1,
    ks: Annotated[list[str], typer.Option(help="Model sizes k, comma-separated.")] = ("2,3,4",),
    deltas: Annotated[list[str], typer.Option(help="Separations delta, comma-separated.")] = (
        "1,2,3,4,6,8",
    ),
    starts: Annotated[int, typer.Option(help="Starts per landscape.")] = 200,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("landscape-output"),
) -> None:
    """Sweep the separation: spurious minima, their structure and approximation errors."""
    from rich.progress import Progress
    from rich.table import Table

    from gmmscape.experiments.output import write_json
    from gmmscape.landscape import plots
    from gmmscape.landscape.studies import separation_study

    try:
        with Progress(console=console, transient=True) as prog:
            task = prog.add_task("landscapes", total=None)
            res = separation_study(
                family,
                k_star,
                d,
                split_list(ks, int, "--ks"),
                split_list(deltas, float, "--deltas"),
                n_starts=starts,
                seed=seed,
                progress=lambda i, n: prog.update(task, completed=i, total=n),
            )
    except ValueError as exc:
        _fail(exc)
    table = Table(title=f"Separation study: {family}, k* = {k_star}, d = {d}")
    for col in (
        "k",
        "delta",
        "points",
        "minima",
        "spurious",
        "non-overlapping",
        "max err/sigma",
        "failed",
    ):
        table.add_column(col, justify="right")
    for r in res.rows:
        table.add_row(
            str(r["k"]),
            f"{r['delta']:g}",
            str(r["n_points"]),
            str(r["n_minima"]),
            str(r["n_spurious"]),
            "yes" if r["all_minima_non_overlapping"] else "NO",
            "-" if r["max_error_minima"] is None else f"{r['max_error_minima']:.3g}",
            str(r["n_failed"]),
        )
    console.print(table)
    thresholds = Table(
        title="Empirical threshold: the smallest delta from which every larger delta "
        "had only non-overlapping minima"
    )
    thresholds.add_column("k", justify="right")
    thresholds.add_column("threshold delta", justify="right")
    for k_, th in res.threshold.items():
        thresholds.add_row(k_, "none (not reached)" if th is None else f"{th:g}")
    console.print(thresholds)
    paths = plots.save(plots.plot_separation(res), out / "separation")
    paths.append(write_json(res, out / "separation.json"))
    console.print("Wrote " + ", ".join(str(p) for p in paths))


@app.command()
def bifurcation(
    family: Annotated[str, typer.Option(help="line or jin.")] = "line",
    deltas: Annotated[list[str], typer.Option(help="Separations delta, comma-separated.")] = (
        "1,1.5,2,2.5,3,3.5,4,5,6",
    ),
    grid: Annotated[int, typer.Option(help="Grid values per axis of the starts.")] = 12,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("landscape-output"),
) -> None:
    """Every critical point of the 1-D three-center landscape against the separation."""
    from rich.progress import Progress
    from rich.table import Table

    from gmmscape.experiments.output import format_number, write_json
    from gmmscape.landscape import plots
    from gmmscape.landscape.studies import bifurcation_study

    try:
        with Progress(console=console, transient=True) as prog:
            task = prog.add_task("separations", total=None)
            res = bifurcation_study(
                split_list(deltas, float, "--deltas"),
                family,
                n_grid=grid,
                progress=lambda i, n: prog.update(task, completed=i, total=n),
            )
    except ValueError as exc:
        _fail(exc)
    table = Table(title=f"Critical points of the 1-D three-center landscape ({family})")
    for col in ("delta", "kind", "index", "KL", "structure", "means"):
        table.add_column(col)
    for p in res.points:
        table.add_row(
            f"{p['delta']:g}",
            p["kind"],
            str(p["index"]),
            f"{p['kl']:.4g}",
            p["signature"],
            ", ".join(format_number(x, ".3f") for x in p["means"]),
        )
    console.print(table)
    paths = plots.save(plots.plot_bifurcation(res), out / "bifurcation")
    paths.append(write_json(res, out / "bifurcation.json"))
    console.print("Wrote " + ", ".join(str(p) for p in paths))


@app.command("random-init")
def random_init(
    ks: Annotated[list[str], typer.Option(help="Model sizes k = k*, comma-separated.")] = (
        "3,5,8,12,16,20",
    ),
    delta: Annotated[float, typer.Option(help="Separation of the line truth.")] = 10.0,
    starts: Annotated[int, typer.Option(help="Starts per k.")] = 200,
    scheme: Annotated[str, typer.Option(help=f"Start scheme: one of {SCHEMES_HELP}.")] = "data",
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("landscape-output"),
) -> None:
    """Probability that EM from random starts ends at a bad critical point, for k = k*."""
    from rich.progress import Progress
    from rich.table import Table

    from gmmscape.experiments.output import write_json
    from gmmscape.landscape import plots
    from gmmscape.landscape.studies import random_init_study

    try:
        with Progress(console=console, transient=True) as prog:
            task = prog.add_task("k", total=None)
            res = random_init_study(
                split_list(ks, int, "--ks"),
                delta=delta,
                n_starts=starts,
                scheme=scheme,
                seed=seed,
                progress=lambda i, n: prog.update(task, completed=i, total=n),
            )
    except ValueError as exc:
        _fail(exc)
    table = Table(title="EM from random starts: probability of a bad end point")
    for col in ("k = k*", "bad fraction", "95% CI", "unconverged", "seconds"):
        table.add_column(col, justify="right")
    for k, p, ci, u, s in zip(
        res.ks, res.bad_fraction, res.ci, res.unconverged, res.seconds, strict=True
    ):
        table.add_row(str(k), f"{p:.3f}", f"[{ci[0]:.3f}, {ci[1]:.3f}]", str(u), f"{s:.1f}")
    console.print(table)
    paths = plots.save(plots.plot_random_init(res), out / "random_init")
    paths.append(write_json(res, out / "random_init.json"))
    console.print("Wrote " + ", ".join(str(p) for p in paths))
