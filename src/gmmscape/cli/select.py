"""``gmmscape select``: BIC / ICL over covariance models and numbers of components."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from gmmscape.cli._app import app, console, split_list
from gmmscape.cli._options import Columns, Drop
from gmmscape.cli._output import check_out, fail, writing_into
from gmmscape.cli.fit import _COV

#: mclust's 14 models (gmmscape.estimator.select.MODELS; tests/test_cli_select.py checks).
MODELS_HELP = "EII,VII,EEI,VEI,EVI,VVI,EEE,VEE,EVE,VVE,EEV,VEV,EVV,VVV"
#: Initializations (GaussianMixture's init_params).
INITS = ("hc", "hc_eii", "kmeans", "k-means++", "random", "random_from_data")


def _fmt(v: float, spec: str = ".2f") -> str:
    return "NA" if v != v else format(v, spec)


@app.command()
def select(
    data: Annotated[Path, typer.Argument(help="CSV, .npy or Parquet file, one row per point.")],
    ks: Annotated[list[str], typer.Option(help="Numbers of components k, comma-separated.")] = (
        "1,2,3,4,5,6,7,8,9",
    ),
    models: Annotated[
        list[str] | None,
        typer.Option(
            help="Covariance models, comma-separated: mclust's names or full, tied, diag, "
            f"spherical. (default: all 14 of mclust, {MODELS_HELP})",
            show_default=False,
        ),
    ] = None,
    criterion: Annotated[str, typer.Option(help="bic or icl: what picks the best.")] = "bic",
    convention: Annotated[
        str,
        typer.Option(
            help="mclust (2 log L - p log n, higher is better) or sklearn (its negative, "
            "GaussianMixture.bic(), lower is better): the sign printed and plotted."
        ),
    ] = "mclust",
    init: Annotated[str, typer.Option(help=f"Initialization: {', '.join(INITS)}.")] = "hc",
    max_iter: Annotated[int, typer.Option(help="Largest number of EM iterations.")] = 1000,
    tol: Annotated[
        float,
        typer.Option(
            help="Stop when the total log-likelihood L moves less than tol (1 + |L|) "
            "(mclust's rule; with --tol-type absolute: the mean moves less than tol)."
        ),
    ] = 1e-5,
    tol_type: Annotated[
        str, typer.Option(help="relative (mclust's rule) or absolute (scikit-learn's).")
    ] = "relative",
    reg_covar: Annotated[float, typer.Option(help="Added to covariance diagonals.")] = 0.0,
    seed: Annotated[int, typer.Option(help="Random state of random initializations.")] = 0,
    jobs: Annotated[
        int | None,
        typer.Option(
            help="Fits run side by side on this many threads (default: the usable cores).",
            show_default=False,
        ),
    ] = None,
    columns: Columns = None,
    drop: Drop = None,
    out: Annotated[Path, typer.Option(help="Folder for the table (JSON, CSV) and figure.")] = Path(
        "select-output"
    ),
) -> None:
    """Fit every (model, k), print the BIC (or ICL) table and the best three, as mclust."""
    import csv
    import io

    from rich.table import Table

    from gmmscape._files import write_bytes
    from gmmscape.experiments.output import finite_json
    from gmmscape.experiments.selection import plot_selection

    k_list = split_list(ks, int, "--ks")
    model_list = split_list(models, str, "--models") or MODELS_HELP.split(",")
    bad = [m for m in model_list if m not in _COV]
    if bad:
        fail(f"--models: {', '.join(bad)} not among {', '.join(_COV)}.")
    if criterion not in ("bic", "icl"):
        fail(f"--criterion must be bic or icl; got {criterion!r}.")
    if convention not in ("mclust", "sklearn"):
        fail(f"--convention must be mclust or sklearn; got {convention!r}.")
    if init not in INITS:
        fail(f"--init must be one of {', '.join(INITS)}; got {init!r}.")
    if tol_type not in ("relative", "absolute"):
        fail(f"--tol-type must be relative or absolute; got {tol_type!r}.")
    if jobs is not None and jobs < 1:
        fail(f"--jobs must be a positive integer; got {jobs}.")
    check_out(out)

    import gmmscape
    from gmmscape.estimator._io import read_table, select_columns

    try:
        X, names = read_table(data)
        X, names, _ = select_columns(
            X, names, split_list(columns, str, "--columns"), split_list(drop, str, "--drop")
        )
        with console.status("fitting ...") as status:

            def progress(model, k, row):
                status.update(f"fitted {model}, k = {k}")

            res = gmmscape.select(
                X, k_list, model_list, criterion=criterion, init_params=init,
                tol=tol, tol_type=tol_type, max_iter=max_iter, reg_covar=reg_covar,
                random_state=seed, progress=progress, n_jobs=jobs,
            )  # fmt: skip
    except ValueError as exc:
        fail(str(exc))
    values = res.values(convention=convention)
    sign = "higher" if convention == "mclust" else "lower"
    table = Table(
        title=f"{criterion.upper()}, {sign} is better ({X.shape[0]:,} points)", title_justify="left"
    )
    table.add_column("model \\ k")
    for k in res.n_components:
        table.add_column(str(k), justify="right")
    for i, m in enumerate(res.models):
        table.add_row(m, *(_fmt(values[i, j], ".1f") for j in range(len(res.n_components))))
    console.print(table)
    console.print(escape(res.summary()))
    for row in res.rows():
        if row["reason"]:
            console.print(f"[yellow]NA[/] {row['model']}, k = {row['k']}: {escape(row['reason'])}")
    if res.best_model is not None:
        console.print(
            f"Best by {criterion.upper()}: [bold]{res.best_model}, k = {res.best_k}[/] "
            f"({res.seconds_total:.1f} s for {len(res.models) * len(res.n_components)} fits)."
        )
    buf = io.StringIO()
    rows = res.rows()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    import json

    payload = {**finite_json(res.to_dict()), "data": str(data), "features": names}
    with writing_into(out):
        paths = [
            write_bytes(out / "select.json", json.dumps(payload, indent=1).encode()),
            write_bytes(out / "select.csv", buf.getvalue().encode()),
            *plot_selection(
                res.models, res.n_components, values, out / f"select_{criterion}",
                criterion=criterion, convention=convention,
                best=None if res.best_model is None else (res.best_model, res.best_k),
                title=f"{data.name}: {criterion.upper()} of every model",
            ),
        ]  # fmt: skip
    console.print(f"Wrote {escape(', '.join(str(p) for p in paths))}.")
