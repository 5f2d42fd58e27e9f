"""``gmmscape fit`` and ``gmmscape predict``: fit a Gaussian mixture to a data file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from gmmscape.cli._app import app, console
from gmmscape.cli._options import Columns, Drop

#: GaussianMixture's covariance types, listed here so that --help imports no estimator
#: (tests/test_cli_dialect.py checks that they equal the estimator's COVARIANCE_TYPES).
_COV = (
    "full", "tied", "diag", "spherical", "EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE",
    "VEE", "EVE", "VVE", "EEV", "VEV", "EVV", "VVV",
)  # fmt: skip


#: Values of ``--missing`` (GaussianMixture's ``missing``).
_MISSING = ("error", "em")
#: Values of ``--stream``.
_STREAM = ("auto", "on", "off")
#: ``--stream auto`` streams files larger than this many bytes.
STREAM_BYTES = 1 << 30
#: ``--block-rows``'s default (``gmmscape.estimator.tables.FILE_BLOCK_ROWS``, not imported
#: by --help).
_BLOCK_ROWS = 2**18


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
    columns: Columns = None,
    drop: Drop = None,
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
    stream: Annotated[
        str,
        typer.Option(
            help="auto: stream DATA in blocks of rows when the file is over 1 GiB, else read "
            "it into memory; on: always stream (one pass over the file per EM iteration, "
            "memory bounded by a few blocks); off: read it into memory."
        ),
    ] = "auto",
    online: Annotated[
        bool,
        typer.Option(
            help="One pass of online (stepwise) EM over DATA's blocks instead of batch EM "
            "(streams the file; --max-iter and --tol do not apply)."
        ),
    ] = False,
    block_rows: Annotated[
        int, typer.Option(help="Rows per block when streaming (one online EM step each).")
    ] = _BLOCK_ROWS,
) -> None:
    """Fit a Gaussian mixture by EM, print a summary and the trace, write the model.

    Large files are streamed (--stream, --online): Parquet by row groups, .npy memory
    mapped, CSV by pyarrow's streaming reader, with a progress bar per pass.
    """
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
    if stream not in _STREAM:
        _fail(ValueError(f"--stream must be one of {', '.join(_STREAM)}; got {stream!r}."))
    if block_rows < 1:
        _fail(ValueError(f"--block-rows must be a positive integer; got {block_rows}."))
    if online and stream == "off":
        _fail(ValueError("--online streams DATA in blocks; it cannot be used with --stream off."))
    streamed = online or stream == "on"
    if stream == "auto" and data.is_file() and data.stat().st_size > STREAM_BYTES:
        streamed = True
    if streamed and standardize:
        _fail(
            ValueError(
                "--standardize reads DATA into memory; it cannot be used with a streamed fit "
                "(--online, --stream on, or a file over 1 GiB with --stream auto)."
            )
        )
    _check_out_file(out)
    try:
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
        cols = split_list(columns, str, "--columns"), split_list(drop, str, "--drop")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if streamed:
                n, d, names, index, n_source, ll = _fit_streamed(gm, data, cols, block_rows, online)
                bic = -2 * ll * n + gm._n_parameters() * np.log(n)
            else:
                X, names = read_table(data)
                n_source = X.shape[1]
                X, names, index = select_columns(X, names, *cols)
                holes = int(np.isnan(X).sum())
                if holes and missing == "error":
                    raise ValueError(
                        f"{data} has {holes:,} missing entries (empty, NA, ? or NaN cells); "
                        "fit them with --missing em, or remove those rows."
                    )
                if standardize:
                    fit_standardized(gm, X)
                else:
                    gm.fit(X)
                n, d = X.shape
                ll, bic = gm.score(X), gm.bic(X)
    except ValueError as exc:
        _fail(exc)
    for w in caught:
        console.print(f"[yellow]warning:[/] {escape(str(w.message))}")
    if online:
        state = f"one online EM pass ({gm.n_iter_} blocks)"
    else:
        converged = "converged" if gm.converged_ else "did NOT converge"
        state = f"{converged} after {gm.n_iter_} iterations"
    console.print(
        f"[bold]{escape(str(data))}[/]: {n:,} points, {d} features. {k} components ({covariance}), "
        f"{state}; mean log-likelihood {ll:.6f}, BIC {bic:.1f}."
    )
    table = Table(title="Components")
    table.add_column("k", justify="right")
    table.add_column("weight", justify="right")
    table.add_column("mean" + (" (first 4 features)" if d > 4 else ""))
    for i, (w, m) in enumerate(zip(gm.weights_, gm.means_, strict=True)):
        table.add_row(str(i), f"{w:.4f}", ", ".join(f"{v:.4g}" for v in m[:4]))
    console.print(table)
    trace = Table(title="Convergence trace")
    trace.add_column("block" if online else "iteration", justify="right")
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


def _progress_bar():
    """A rich progress bar of rows: done/total, rows/s and the time left."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RowsPerSecond(ProgressColumn):
        def render(self, task):
            return Text(f"{task.speed or 0:,.0f} rows/s")

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RowsPerSecond(),
        TimeRemainingColumn(),
        console=console,
    )


def _fit_streamed(gm, data: Path, cols, block_rows: int, online: bool):
    """Fit ``gm`` to DATA streamed in blocks (batch EM, or one pass of online EM), with a
    progress bar per pass; then one pass for the mean log-likelihood.

    Returns ``(n, d, names, index, n_source_features, mean log-likelihood)``.
    """
    import numpy as np

    from gmmscape.estimator._io import select_columns
    from gmmscape.estimator.tables import files

    whole = files(data, block_rows=block_rows)
    _, names, index = select_columns(np.empty((0, len(whole.columns))), whole.columns, *cols)
    bar = _progress_bar()
    phase = {"name": "moments + init", "pass": 0}

    def progress(done, total):
        if done == 0:
            phase["pass"] += 1
            label = phase["name"] if phase["pass"] == 1 else f"EM pass {phase['pass'] - 1}"
            bar.reset(task, total=total, description=label)
        bar.update(task, completed=done)

    table = files(data, columns=index, block_rows=block_rows, progress=progress)
    with bar:
        task = bar.add_task("reading", total=None)
        if online:
            phase["name"] = "online EM"
            for block in table.blocks():
                if gm.missing == "error" and np.isnan(block).any():
                    raise ValueError(
                        f"{data} has missing entries (empty, NA, ? or NaN cells); fit them "
                        "with --missing em, or remove those rows."
                    )
                gm.partial_fit(block)
        else:
            gm.fit(table)
        phase["name"], phase["pass"] = "log-likelihood", 0
        n, total = 0, 0.0
        for block in table.blocks():
            total += float(np.sum(gm.score_samples(block), dtype=np.float64))
            n += block.shape[0]
    return n, len(index), names, index, whole.n_source_features, total / n


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
