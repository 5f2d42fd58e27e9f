"""``gmmscape fit`` and ``gmmscape predict``: fit a Gaussian mixture to a data file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from gmmscape.cli._app import app, console

#: GaussianMixture's covariance types, listed here so that --help imports no estimator
#: (tests/test_cli_dialect.py checks that they equal the estimator's COVARIANCE_TYPES).
_COV = (
    "full", "tied", "diag", "spherical", "EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE",
    "VEE", "EVE", "VVE", "EEV", "VEV", "EVV", "VVV",
)  # fmt: skip


#: Values of ``--missing`` (GaussianMixture's ``missing``).
_MISSING = ("error", "em")


def _fail(exc: Exception) -> None:
    console.print(f"[bold red]error:[/] {escape(str(exc))}")
    raise typer.Exit(code=2)


def _check_out_file(out: Path) -> None:
    """Refuse, before any work, an ``--out`` that cannot be a file."""
    if out.is_dir():
        _fail(ValueError(f"--out {out} is a directory; give a file name (e.g. {out}/model.json)."))
    for parent in out.parents:
        if parent.exists() and not parent.is_dir():
            _fail(ValueError(f"--out {out} is under the file {parent}; choose another path."))


@app.command()
def fit(
    data: Annotated[Path, typer.Argument(help="CSV, .npy or Parquet file, one row per point.")],
    k: Annotated[int, typer.Option("-k", "--k", "--components", help="Number of components.")],
    covariance: Annotated[
        str,
        typer.Option(
            help="full, tied, diag, spherical, or one of mclust's models EII, VII, EEI, VEI, "
            "EVI, VVI, EEE, VEE, EVE, VVE, EEV, VEV, EVV, VVV."
        ),
    ] = "full",
    out: Annotated[Path, typer.Option(help="Where to write the model (JSON).")] = Path(
        "model.json"
    ),
    n_init: Annotated[int, typer.Option(help="Initializations (run as one batch).")] = 1,
    max_iter: Annotated[int, typer.Option(help="Largest number of EM iterations.")] = 100,
    tol: Annotated[float, typer.Option(help="Stop when the log-likelihood moves less.")] = 1e-3,
    reg_covar: Annotated[float, typer.Option(help="Added to covariance diagonals.")] = 1e-6,
    refine: Annotated[bool, typer.Option(help="Split-and-merge moves after EM.")] = False,
    seed: Annotated[int, typer.Option(help="Random state of the initialization.")] = 0,
    columns: Annotated[
        list[str] | None,
        typer.Option(
            help="Columns to fit, by name or 0-based index, comma-separated (default: all)."
        ),
    ] = None,
    drop: Annotated[
        list[str] | None,
        typer.Option(
            help="Columns to leave out, by name or index, comma-separated (default: none)."
        ),
    ] = None,
    standardize: Annotated[
        bool,
        typer.Option(
            help="Fit on standardized columns (k-means and reg_covar then see every column "
            "at the same scale); the model is written in the data's units."
        ),
    ] = False,
    missing: Annotated[
        str,
        typer.Option(
            help="error: refuse missing entries (empty, NA, ? or NaN cells); em: fit them "
            "by exact EM on the observed coordinates (missing at random)."
        ),
    ] = "error",
) -> None:
    """Fit a Gaussian mixture by EM, print a summary and the trace, write the model."""
    import warnings

    import numpy as np
    from rich.table import Table

    from gmmscape.cli._app import split_list
    from gmmscape.estimator import GaussianMixture
    from gmmscape.estimator._io import read_table, save_model, select_columns
    from gmmscape.estimator._standardize import fit_standardized

    if covariance not in _COV:
        _fail(ValueError(f"--covariance must be one of {', '.join(_COV)}; got {covariance!r}."))
    if missing not in _MISSING:
        _fail(ValueError(f"--missing must be one of {', '.join(_MISSING)}; got {missing!r}."))
    _check_out_file(out)
    try:
        X, names = read_table(data)
        n_source = X.shape[1]
        X, names, index = select_columns(
            X, names, split_list(columns, str, "--columns"), split_list(drop, str, "--drop")
        )
        gm = GaussianMixture(
            k,
            covariance_type=covariance,
            n_init=n_init,
            max_iter=max_iter,
            tol=tol,
            reg_covar=reg_covar,
            refine=refine,
            random_state=seed,
            missing=missing,
        )
        holes = int(np.isnan(X).sum())
        if holes and missing == "error":
            raise ValueError(
                f"{data} has {holes:,} missing entries (empty, NA, ? or NaN cells); fit them "
                "with --missing em, or remove those rows."
            )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if standardize:
                fit_standardized(gm, X)
            else:
                gm.fit(X)
    except ValueError as exc:
        _fail(exc)
    for w in caught:
        console.print(f"[yellow]warning:[/] {escape(str(w.message))}")
    n, d = X.shape
    state = "converged" if gm.converged_ else "did NOT converge"
    console.print(
        f"[bold]{escape(str(data))}[/]: {n:,} points, {d} features. {k} components ({covariance}), "
        f"{state} after {gm.n_iter_} iterations; mean log-likelihood {gm.score(X):.6f}, "
        f"BIC {gm.bic(X):.1f}."
    )
    table = Table(title="Components")
    table.add_column("k", justify="right")
    table.add_column("weight", justify="right")
    table.add_column("mean" + (" (first 4 features)" if d > 4 else ""))
    for i, (w, m) in enumerate(zip(gm.weights_, gm.means_, strict=True)):
        table.add_row(str(i), f"{w:.4f}", ", ".join(f"{v:.4g}" for v in m[:4]))
    console.print(table)
    trace = Table(title="Convergence trace")
    trace.add_column("iteration", justify="right")
    trace.add_column("mean log-likelihood", justify="right")
    trace.add_column("change", justify="right")
    prev = None
    for it, lb in enumerate(gm.lower_bounds_, start=1):
        trace.add_row(str(it), f"{lb:.8f}", "" if prev is None else f"{lb - prev:.3e}")
        prev = lb
    console.print(trace)
    for mv in gm.refine_moves_:
        console.print(
            f"refine: merged {mv['merge']}, split {mv['split']}: log-likelihood "
            f"{mv['loglik_before']:.6f} -> {mv['loglik_after']:.6f}"
        )
    try:
        selection = None
        if index != list(range(n_source)):
            selection = {"index": index, "n_source_features": n_source}
        path = save_model(gm, out, feature_names=names, source=str(data), selection=selection)
    except OSError as exc:
        _fail(ValueError(f"cannot write the model to --out {out}: {exc.strerror or exc}."))
    console.print(f"Wrote {escape(str(path))}.")


@app.command()
def predict(
    model: Annotated[Path, typer.Argument(help="A model written by `gmmscape fit`.")],
    data: Annotated[Path, typer.Argument(help="CSV, .npy or Parquet file.")],
    out: Annotated[
        Path | None,
        typer.Option(help="Write labels (and probabilities) as CSV here (default: stdout)."),
    ] = None,
    proba: Annotated[bool, typer.Option(help="Also give component probabilities.")] = False,
) -> None:
    """Assign each row of DATA to its most likely component of a saved model."""
    import numpy as np

    from gmmscape.estimator._io import load_model, read_data

    if out is not None:
        _check_out_file(out)
    try:
        gm = load_model(model)
        X = read_data(data)
        sel = getattr(gm, "provenance_", {}).get("selection")
        if sel and X.shape[1] == sel["n_source_features"] != gm.n_features_in_:
            X = X[:, sel["index"]]  # the columns fit selected from a file of this width
        labels = gm.predict(X)
        probs = gm.predict_proba(X) if proba else None
    except ValueError as exc:
        _fail(exc)
    cols = [labels[:, None].astype(float)] + ([] if probs is None else [probs])
    header = "label" + (
        "" if probs is None else "," + ",".join(f"p{j}" for j in range(gm.n_components))
    )
    fmt = ["%d"] + ["%.17g"] * (0 if probs is None else gm.n_components)
    if out is None:  # plain CSV on stdout, the same as the file (no per-row rendering)
        import sys

        np.savetxt(sys.stdout, np.hstack(cols), delimiter=",", header=header, comments="", fmt=fmt)
        return
    tmp = out.with_suffix(out.suffix + ".tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        np.savetxt(tmp, np.hstack(cols), delimiter=",", header=header, comments="", fmt=fmt)
        tmp.replace(out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        _fail(ValueError(f"cannot write the labels to --out {out}: {exc.strerror or exc}."))
    console.print(f"Wrote {len(labels):,} labels to {escape(str(out))}.")


@app.command()
def impute(
    model: Annotated[Path, typer.Argument(help="A model written by `gmmscape fit`.")],
    data: Annotated[Path, typer.Argument(help="CSV, .npy or Parquet file with missing entries.")],
    out: Annotated[
        Path | None,
        typer.Option(
            help="Where to write the completed table, in DATA's format (default: DATA's "
            "name with _imputed before the suffix)."
        ),
    ] = None,
) -> None:
    """Fill the missing entries of DATA with their conditional means under a saved model.

    Missing entries are empty, NA, N/A, ? or NaN cells (NaN in .npy and Parquet). Each
    becomes E[x_missing | x_observed] under the mixture; observed entries are written
    unchanged, in DATA's format (CSV with a header row, .npy or Parquet).
    """
    import numpy as np

    from gmmscape.estimator._io import load_model, read_table, write_table

    out = data.with_name(f"{data.stem}_imputed{data.suffix}") if out is None else out
    _check_out_file(out)
    if out.resolve() == data.resolve():
        _fail(ValueError(f"--out {out} is DATA itself; choose another file."))
    if out.suffix.lower() != data.suffix.lower():
        _fail(
            ValueError(f"--out {out} must keep DATA's format ({data.suffix}); got {out.suffix!r}.")
        )
    try:
        gm = load_model(model)
        X, names = read_table(data)
        sel = getattr(gm, "provenance_", {}).get("selection")
        cols = list(range(X.shape[1]))
        if sel and X.shape[1] == sel["n_source_features"] != gm.n_features_in_:
            cols = sel["index"]  # the columns fit selected from a file of this width
        filled = X.copy()
        filled[:, cols] = gm.impute(X[:, cols])
    except ValueError as exc:
        _fail(exc)
    n_filled = int(np.isnan(X[:, cols]).sum())
    try:
        path = write_table(filled, names, out)
    except OSError as exc:
        _fail(ValueError(f"cannot write the table to --out {out}: {exc.strerror or exc}."))
    console.print(f"Filled {n_filled:,} missing entries; wrote {escape(str(path))}.")
