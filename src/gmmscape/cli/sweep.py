"""``gmmscape sweep run|status`` and ``gmmscape report``: sweeps and their reports."""

from __future__ import annotations

import signal
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from gmmscape.cli._app import app, console

sweep_app = typer.Typer(
    help="Run experiment types over grids of parameters and seeds; resumable.",
    no_args_is_help=True,
)
app.add_typer(sweep_app, name="sweep")

#: Failed cells printed as they happen before the CLI only counts them.
MAX_PRINTED_FAILURES = 10


def _fail(message: str, code: int = 2):
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


@contextmanager
def _sigterm_as_interrupt():
    """Treat SIGTERM (a batch scheduler's stop) like Ctrl-C while the sweep runs."""

    def handler(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@sweep_app.command("run")
def run(
    specs: Annotated[list[Path], typer.Argument(help="Spec TOML files.", show_default=False)],
    db: Annotated[Path, typer.Option(help="The SQLite results database.")] = Path("results.db"),
    workers: Annotated[
        int, typer.Option(help="Local worker processes; 1 runs cells in this process.")
    ] = 1,
    scheduler: Annotated[
        str | None, typer.Option(help="Address of a running Dask scheduler, tcp://HOST:PORT.")
    ] = None,
    dask_local: Annotated[
        int | None, typer.Option(help="Start a Dask LocalCluster with this many workers.")
    ] = None,
    retry_failed: Annotated[bool, typer.Option(help="Run failed cells again.")] = False,
    dry_run: Annotated[
        bool, typer.Option(help="Validate the specs and count the cells; run nothing.")
    ] = False,
) -> None:
    """Run every cell of SPECS not yet in DB; rerunning the same command resumes."""
    from gmmscape.sweep.spec import SpecError, load_spec
    from gmmscape.sweep.store import ResultsStore, StoreError

    if scheduler is not None and dask_local is not None:
        _fail("give --scheduler (an existing Dask cluster) or --dask-local N, not both.")
    if workers < 1:
        _fail(f"--workers must be >= 1; got {workers}.")
    if dask_local is not None and dask_local < 1:
        _fail(f"--dask-local must be >= 1; got {dask_local}.")
    try:
        loaded = [load_spec(p) for p in specs]
    except SpecError as exc:
        _fail(str(exc))
    for s in loaded:
        console.print(
            f"spec [bold]{s.name}[/] ({s.source}): experiment {s.experiment}, "
            f"{len(s.cells)} cells ({len(s.seeds)} seeds)",
            highlight=False,
        )
    if dry_run:
        if db.exists():
            from gmmscape.sweep.runner import plan

            try:
                with ResultsStore(db, readonly=True) as store:
                    _, summary = plan(loaded, store)
            except StoreError as exc:
                _fail(str(exc))
            console.print(
                f"{summary.total} cells: {summary.skipped_done} done, "
                f"{summary.skipped_failed} failed, {summary.to_run} to run."
            )
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from gmmscape.sweep.runner import run_sweep

    try:
        store = ResultsStore(db)
    except StoreError as exc:
        _fail(str(exc))
    if scheduler is not None:
        where = f"the Dask cluster at {scheduler}"
    elif dask_local is not None:
        where = f"a Dask LocalCluster of {dask_local} workers"
    else:
        where = "this process" if workers == 1 else f"{workers} worker processes"
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("[red]{task.fields[failed]} failed"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
    )
    state = {"task": None, "failed": 0}

    def on_plan(summary) -> None:
        console.print(
            f"{summary.total} cells: {summary.skipped_done} already done, "
            f"{summary.skipped_failed} failed before (skipped; --retry-failed reruns them), "
            f"[bold]{summary.to_run} to run[/] on {where}.",
            highlight=False,
        )
        state["task"] = progress.add_task("cells", total=summary.to_run, failed=0)

    def on_result(cell, outcome) -> None:
        if outcome.status == "failed":
            state["failed"] += 1
            if state["failed"] <= MAX_PRINTED_FAILURES:
                progress.console.print(
                    f"[red]failed[/] {cell.experiment} {cell.params}: {outcome.error}",
                    highlight=False,
                )
        progress.update(state["task"], advance=1, failed=state["failed"])

    try:
        with store, progress, _sigterm_as_interrupt():
            summary = run_sweep(
                loaded,
                store,
                workers=workers,
                scheduler=scheduler,
                dask_local=dask_local,
                retry_failed=retry_failed,
                on_plan=on_plan,
                on_result=on_result,
            )
    except (StoreError, ValueError, OSError) as exc:
        _fail(str(exc))
    stored = summary.done + summary.failed
    if summary.interrupted:
        console.print(
            f"[yellow]Interrupted.[/] {stored} cells stored in this run ({summary.failed} "
            f"failed), {summary.remaining} not run; every stored row is complete. Rerun the "
            "same command to resume.",
            highlight=False,
        )
        raise typer.Exit(130)
    if summary.to_run == 0:
        console.print(
            f"Nothing to run: every cell is already in {db}"
            + (
                " (failed ones too: --retry-failed runs them again)."
                if summary.skipped_failed
                else "."
            ),
            highlight=False,
        )
        return
    console.print(
        f"Finished in {summary.seconds:.1f} s on {summary.backend}: {summary.done} done, "
        f"{summary.failed} failed in this run; results in {db}.",
        highlight=False,
    )
    if summary.failed:
        console.print(
            "Failed cells keep their error and traceback in the database; fix the cause and "
            "rerun with --retry-failed.",
            highlight=False,
        )
        raise typer.Exit(1)


@sweep_app.command("status")
def status(
    db: Annotated[Path, typer.Argument(help="The SQLite results database.")],
) -> None:
    """Print done / failed / remaining cells per spec in DB."""
    from rich import box
    from rich.table import Table

    from gmmscape.sweep.store import ResultsStore, StoreError

    try:
        with ResultsStore(db, readonly=True) as store:
            rows = store.spec_status()
            total = store.count()
            failures = store.failure_summary()
    except StoreError as exc:
        _fail(str(exc))
    table = Table(
        title=f"{db}: {total} stored cells",
        box=box.SIMPLE_HEAD,
        padding=(0, 1, 0, 0),
        pad_edge=False,
    )
    cols = ("spec", "experiment", "cells", "done", "failed", "remaining", "time left")
    for col in cols:
        if col in ("spec", "experiment"):
            table.add_column(col, justify="left", no_wrap=True)
        else:
            table.add_column(col, justify="right", min_width=len(col))
    names = [s.name for s in rows]
    for s in rows:
        per = s.mean_seconds
        left = "" if per is None or not s.remaining else _duration(per * s.remaining)
        # an edited spec keeps its name: tell its versions apart by their hash
        label = s.name if names.count(s.name) == 1 else f"{s.name} @{s.spec_hash[:6]}"
        table.add_row(
            label,
            s.experiment,
            str(s.cells),
            str(s.done),
            f"[red]{s.failed}[/]" if s.failed else "0",
            str(s.remaining),
            left,
        )
    console.print(table)
    if any(s.remaining for s in rows):
        console.print(
            "time left: remaining cells times the mean time of a done cell, for one worker.",
            highlight=False,
        )
    for exp, err, n in failures:
        console.print(f"[red]{n} failed[/] {exp}: {err}", highlight=False)


def _duration(seconds: float) -> str:
    """``seconds`` as a short human duration, e.g. ``"3 h 05 min"``."""
    m = round(seconds / 60)
    if m < 1:
        return f"{seconds:.0f} s"
    return f"{m // 60} h {m % 60:02d} min" if m >= 60 else f"{m} min"


@app.command("report")
def report(
    db: Annotated[Path, typer.Argument(help="The SQLite results database.")],
    out: Annotated[Path, typer.Option(help="Folder for the report.")] = Path("report"),
) -> None:
    """Write an HTML report (figures, tables, specs), CSV and figure files from DB."""
    from gmmscape.sweep import StoreError
    from gmmscape.sweep.report import write_report

    try:
        with console.status("drawing figures"):
            manifest = write_report(db, out)
    except StoreError as exc:
        _fail(str(exc))
    for exp, info in manifest.experiments.items():
        console.print(
            f"{exp}: {info['rows_done']} done, {info['rows_failed']} failed rows, "
            f"{len(info['figures'])} figures, {info['csv']}",
            highlight=False,
        )
        for note in info["notes"]:
            console.print(f"  [yellow]note:[/] {note.splitlines()[0]}", highlight=False)
    console.print(f"Wrote {out / 'report.html'}.", highlight=False)
