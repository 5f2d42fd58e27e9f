"""``gmmscape landscape``, ``separation``, ``bifurcation``, ``random-init``: seed B's atlas."""

from __future__ import annotations

import json
import re
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from gmmscape.cli._app import app, console, split_list
from gmmscape.cli._output import check_out as _check_out
from gmmscape.cli._output import fail
from gmmscape.cli._output import writing_into as _writing

#: Library argument names -> the options that set them, for error messages.
_OPTIONS = {
    "k": "--k",
    "ks": "--ks",
    "deltas": "--deltas",
    "n_grid": "--grid",
    "n_starts": "--starts",
    "max_iter": "--max-iter",
    "newton_iter": "--newton-iter",
    "max_rounds": "--max-rounds",
    "warn_fraction": "--warn-failed",
    "schemes": "--schemes",
    "scheme": "--scheme",
    "method": "--method",
    "family": "--family",
    "delta": "--delta",
    "sigma": "--sigma",
    "d": "--d",
    "k_star": "--k-star",
}

#: Start schemes (gmmscape.landscape.starts.SCHEMES; tests/test_cli_startup.py checks).
SCHEMES_HELP = "gaussian, uniform, data, kmeans++"


def _fail(exc: ValueError) -> None:
    """``error: ...`` with the library's argument name replaced by the command's option."""
    msg = re.sub(
        r"^(\w+)(?= must| is empty|: )",
        lambda m: _OPTIONS.get(m.group(1), m.group(1)),
        str(exc),
    )
    fail(msg)


@contextmanager
def _quiet_study_warnings():
    """The studies' warnings are kept in their results, which the commands print."""
    from gmmscape.landscape.studies import StudyWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StudyWarning)
        yield


def _print_warnings(messages) -> None:
    for m in messages:
        console.print(f"[yellow]warning:[/] {escape(m)}", highlight=False)


def _warn_fraction(value: float) -> float:
    if not 0.0 <= value <= 1.0:
        _fail(ValueError(f"--warn-failed must be a fraction in [0, 1]; got {value}."))
    return value


_WARN_HELP = "Warn when failed or unconverged starts exceed this share of the starts."


@app.command()
def landscape(
    truth: Annotated[
        str, typer.Option(help="True centers as JSON, e.g. '[[-1.5], [1.5], [15]]'.")
    ] = "[[-1.5], [1.5], [15.0]]",
    k: Annotated[int, typer.Option("-k", "--k", "--components", help="Number of model means.")] = 3,
    sigma: Annotated[float, typer.Option(help="Common standard deviation.")] = 1.0,
    starts: Annotated[int, typer.Option(help="Number of starts.")] = 1000,
    schemes: Annotated[
        list[str],
        typer.Option(help=f"Start schemes, comma-separated; any of {SCHEMES_HELP}."),
    ] = ("gaussian,uniform,data,kmeans++",),
    method: Annotated[str, typer.Option(help="em, gradient-em or newton.")] = "em",
    seed: Annotated[int, typer.Option(help="Seed of the starts.")] = 0,
    max_iter: Annotated[int, typer.Option(help="EM steps of the batch phase.")] = 50,
    newton_iter: Annotated[int, typer.Option(help="Newton iterations of each polish.")] = 100,
    warn_failed: Annotated[float, typer.Option(help=_WARN_HELP)] = 0.05,
    out: Annotated[Path, typer.Option(help="Folder for the JSON and figures.")] = Path(
        "landscape-output"
    ),
) -> None:
    """Find, certify and classify the critical points of a population landscape."""
    from rich.progress import Progress

    import gmmscape as gs
    from gmmscape.landscape import explore, plots

    _check_out(out)
    _warn_fraction(warn_failed)
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
                max_iter=max_iter,
                newton_iter=newton_iter,
                progress=say,
            )
    except (ValueError, TypeError, json.JSONDecodeError) as exc:
        _fail(
            ValueError(
                f"--truth {truth!r}: {exc}" if isinstance(exc, json.JSONDecodeError) else str(exc)
            )
        )
    console.print(atlas.table())
    if atlas.failures:
        console.print(f"[yellow]{atlas.n_failed} start(s) failed:[/]")
        for f in atlas.failures:
            console.print(
                f"  {f['count']} start(s): {escape(str(f['reason']))} (|grad| = {f['grad_norm']})"
            )
    if atlas.n_failed > warn_failed * atlas.n_starts:
        _print_warnings(
            [
                f"{atlas.n_failed} of {atlas.n_starts} starts failed; the critical points "
                "they were heading for may be missing from the table. Add starts "
                "(--starts) or Newton iterations (--newton-iter)."
            ]
        )
    if atlas.batch_unconverged:
        console.print(
            f"{atlas.batch_unconverged} of {atlas.n_starts} starts hit --max-iter "
            f"{max_iter} in the EM phase; Newton polished them (counted as failed above "
            "if it could not).",
            highlight=False,
        )
    s = atlas.seconds
    console.print(
        f"{atlas.n_starts:,} starts in {s['total']:.1f} s ({1e3 * s['per_start']:.2f} ms per "
        f"start): batch {s['batch']:.1f} s, polish {s['polish']:.1f} s, certify "
        f"{s['certify']:.1f} s."
    )
    with _writing(out):
        paths = [atlas.write_json(out / "atlas.json")]
        d = t.d
        if d == 1:
            paths += plots.save(plots.plot_atlas_1d(atlas), out / "atlas_1d")
            if k == 2:
                paths += plots.save(plots.plot_heatmap_2est(atlas), out / "heatmap")
        elif d == 2:
            paths += plots.save(plots.plot_groups_2d(atlas), out / "groups_2d")
    console.print("Wrote " + escape(", ".join(str(p) for p in paths)))


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
    max_iter: Annotated[int, typer.Option(help="EM steps of each batch phase.")] = 50,
    newton_iter: Annotated[int, typer.Option(help="Newton iterations of each polish.")] = 100,
    warn_failed: Annotated[float, typer.Option(help=_WARN_HELP)] = 0.05,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("landscape-output"),
) -> None:
    """Sweep the separation: spurious minima, their structure and approximation errors."""
    from rich.progress import Progress
    from rich.table import Table

    from gmmscape._files import write_json
    from gmmscape.landscape import plots
    from gmmscape.landscape.studies import separation_study

    _check_out(out)
    _warn_fraction(warn_failed)
    try:
        with Progress(console=console, transient=True) as prog, _quiet_study_warnings():
            task = prog.add_task("landscapes", total=None)
            res = separation_study(
                family,
                k_star,
                d,
                split_list(ks, int, "--ks"),
                split_list(deltas, float, "--deltas"),
                n_starts=starts,
                seed=seed,
                max_iter=max_iter,
                newton_iter=newton_iter,
                warn_fraction=warn_failed,
                progress=lambda i, n: prog.update(task, completed=i, total=n),
            )
    except ValueError as exc:
        _fail(exc)
    table = Table(title=f"Separation study: {escape(family)}, k* = {k_star}, d = {d}")
    for col in (
        "k",
        "delta",
        "points",
        "minima",
        "spurious",
        "non-overlapping",
        "max err/sigma",
        "failed",
        "EM unconverged",
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
    console.print("Wrote " + escape(", ".join(str(p) for p in paths)))


@app.command()
def bifurcation(
    family: Annotated[str, typer.Option(help="line or jin.")] = "line",
    deltas: Annotated[list[str], typer.Option(help="Separations delta, comma-separated.")] = (
        "1,1.5,2,2.5,3,3.5,4,5,6",
    ),
    grid: Annotated[int, typer.Option(help="Grid values per axis of the starts.")] = 12,
    newton_iter: Annotated[int, typer.Option(help="Newton iterations of each polish.")] = 100,
    max_rounds: Annotated[
        int,
        typer.Option(
            help="Search rounds per separation (more starts, continuation from both "
            "neighbours) until its global minimum is found."
        ),
    ] = 4,
    warn_failed: Annotated[float, typer.Option(help=_WARN_HELP)] = 0.05,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("landscape-output"),
) -> None:
    """Every critical point of the 1-D three-center landscape against the separation.

    Exits with status 1 when some separation's global minimum was not found.
    """
    from rich.progress import Progress
    from rich.table import Table

    from gmmscape._files import write_json
    from gmmscape.experiments.output import format_number
    from gmmscape.landscape import plots
    from gmmscape.landscape.studies import bifurcation_study

    _check_out(out)
    _warn_fraction(warn_failed)
    try:
        with Progress(console=console, transient=True) as prog, _quiet_study_warnings():
            task = prog.add_task("separations", total=None)
            res = bifurcation_study(
                split_list(deltas, float, "--deltas"),
                family,
                n_grid=grid,
                newton_iter=newton_iter,
                max_rounds=max_rounds,
                warn_fraction=warn_failed,
                progress=lambda i, n: prog.update(task, completed=i, total=n),
            )
    except ValueError as exc:
        _fail(exc)
    table = Table(title=f"Critical points of the 1-D three-center landscape ({escape(family)})")
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
    search = Table(title="Search per separation")
    for col in ("delta", "starts", "rounds", "failed", "global minimum"):
        search.add_column(col, justify="right")
    for i, delta in enumerate(res.deltas):
        search.add_row(
            f"{delta:g}",
            str(res.n_starts[i]),
            str(res.rounds[i]),
            f"[red]{res.n_failed[i]}[/]" if res.n_failed[i] else "0",
            "found" if res.global_found[i] else "[red]NOT FOUND[/]",
        )
    console.print(search)
    _print_warnings(res.warnings)
    with _writing(out):
        paths = plots.save(plots.plot_bifurcation(res), out / "bifurcation")
        paths.append(write_json(res, out / "bifurcation.json"))
    console.print("Wrote " + escape(", ".join(str(p) for p in paths)))
    if not res.complete:
        missing = [f"{x:g}" for x, ok in zip(res.deltas, res.global_found, strict=True) if not ok]
        console.print(
            f"[red]incomplete:[/] no global minimum found at delta = {', '.join(missing)}.",
            highlight=False,
        )
        raise typer.Exit(code=1)


@app.command("random-init")
def random_init(
    ks: Annotated[list[str], typer.Option(help="Model sizes k = k*, comma-separated.")] = (
        "3,5,8,12,16,20",
    ),
    delta: Annotated[float, typer.Option(help="Separation of the line truth.")] = 10.0,
    starts: Annotated[int, typer.Option(help="Starts per k.")] = 200,
    scheme: Annotated[str, typer.Option(help=f"Start scheme: one of {SCHEMES_HELP}.")] = "data",
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    max_iter: Annotated[int, typer.Option(help="EM steps per start.")] = 500,
    warn_failed: Annotated[float, typer.Option(help=_WARN_HELP)] = 0.05,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("landscape-output"),
) -> None:
    """Probability that EM from random starts ends at a bad critical point, for k = k*.

    Starts whose EM has not converged after --max-iter steps are not classified; they
    are counted, and bracket the bad share over all starts.
    """
    from rich.progress import Progress
    from rich.table import Table

    from gmmscape._files import write_json
    from gmmscape.landscape import plots
    from gmmscape.landscape.studies import random_init_study

    _check_out(out)
    _warn_fraction(warn_failed)
    try:
        with Progress(console=console, transient=True) as prog, _quiet_study_warnings():
            task = prog.add_task("k", total=None)
            res = random_init_study(
                split_list(ks, int, "--ks"),
                delta=delta,
                n_starts=starts,
                scheme=scheme,
                seed=seed,
                max_iter=max_iter,
                warn_fraction=warn_failed,
                progress=lambda i, n: prog.update(task, completed=i, total=n),
            )
    except ValueError as exc:
        _fail(exc)
    table = Table(title="EM from random starts: probability of a bad end point")
    for col in (
        "k = k*",
        "bad (converged)",
        "95% CI",
        "unconverged",
        "bad, all starts",
        "seconds",
    ):
        table.add_column(col, justify="right")
    for k, p, ci, u, b, s in zip(
        res.ks, res.bad_fraction, res.ci, res.unconverged, res.bad_bounds, res.seconds, strict=True
    ):
        table.add_row(
            str(k),
            "-" if p is None else f"{p:.3f}",
            "-" if ci is None else f"\\[{ci[0]:.3f}, {ci[1]:.3f}]",
            f"[red]{u}[/]" if u else "0",
            f"{b[0]:.3f}" if b[0] == b[1] else f"{b[0]:.3f} to {b[1]:.3f}",
            f"{s:.1f}",
        )
    console.print(table)
    console.print(
        f"Unconverged: EM's largest step still above {res.tol:g} after --max-iter {max_iter} "
        "steps; not classified. 'bad, all starts' brackets the share over all starts.",
        highlight=False,
    )
    _print_warnings(res.warnings)
    with _writing(out):
        paths = plots.save(plots.plot_random_init(res), out / "random_init")
        paths.append(write_json(res, out / "random_init.json"))
    console.print("Wrote " + escape(", ".join(str(p) for p in paths)))
