"""``gmmscape sweep run|status`` and ``gmmscape report``: sweeps and their reports."""

from __future__ import annotations

import signal
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from gmmscape.cli._app import app, console
from gmmscape.cli._output import check_out, writing_into

sweep_app = typer.Typer(
    help="Run experiment types over grids of parameters and seeds; resumable.",
    no_args_is_help=True,
)
app.add_typer(sweep_app, name="sweep")

#: Failed cells printed as they happen before the CLI only counts them.
MAX_PRINTED_FAILURES = 10


def _fail(message: str, code: int = 2):
    """Print ``error: MESSAGE`` (escaped: it holds paths and spec text) and exit."""
    console.print(f"[bold red]error:[/] {escape(str(message))}", highlight=False)
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
    max_cells: Annotated[
        int,
        typer.Option(
            help="The most cells one spec may expand to; a larger spec is refused before "
            "any cell is built."
        ),
    ] = 100_000,
) -> None:
    """Run every cell of SPECS not yet in DB; rerunning the same command resumes.

    Several runs may share one DB: each claims the cells it computes, so none is
    computed twice, and each reports what it did and what it left to the others.
    """
    from gmmscape.sweep.spec import SpecError, load_spec
    from gmmscape.sweep.store import ResultsStore, StoreError

    if scheduler is not None and dask_local is not None:
        _fail("give --scheduler (an existing Dask cluster) or --dask-local N, not both.")
    if workers < 1:
        _fail(f"--workers must be >= 1; got {workers}.")
    if dask_local is not None and dask_local < 1:
        _fail(f"--dask-local must be >= 1; got {dask_local}.")
    if max_cells < 1:
        _fail(f"--max-cells must be >= 1; got {max_cells}.")
    try:
        loaded = [load_spec(p, max_cells=max_cells) for p in specs]
    except SpecError as exc:
        _fail(str(exc))
    for s in loaded:
        console.print(
            f"spec [bold]{escape(s.name)}[/] ({escape(s.source)}): experiment "
            f"{escape(s.experiment)}, {len(s.cells)} cells ({len(s.seeds)} seeds)",
            highlight=False,
        )
    if dry_run:
        if db.exists() and db.is_file() and db.stat().st_size == 0:
            console.print(f"{escape(str(db))} is empty (0 bytes): nothing stored yet.")
        elif db.exists():
            from gmmscape.sweep.runner import plan

            try:
                with ResultsStore(db, readonly=True) as store:
                    _, summary = plan(loaded, store)
            except StoreError as exc:
                _fail(str(exc))
            corrupt = f" ({summary.corrupt} of them corrupt rows)" if summary.corrupt else ""
            console.print(
                f"{summary.total} cells: {summary.skipped_done} done, "
                f"{summary.skipped_failed} failed, {summary.to_run} to run{corrupt}."
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
        corrupt = (
            f" ({summary.corrupt} with a corrupt row, recomputed and replaced)"
            if summary.corrupt
            else ""
        )
        console.print(
            f"{summary.total} cells: {summary.skipped_done} already done, "
            f"{summary.skipped_failed} failed before (skipped; --retry-failed reruns them), "
            f"[bold]{summary.to_run} to run[/]{corrupt} on {escape(where)}.",
            highlight=False,
        )
        state["task"] = progress.add_task("cells", total=summary.to_run, failed=0)

    def on_result(cell, outcome) -> None:
        if outcome.status == "failed":
            state["failed"] += 1
            if state["failed"] <= MAX_PRINTED_FAILURES:
                progress.console.print(
                    f"[red]failed[/] {escape(cell.experiment)} {escape(str(cell.params))}: "
                    f"{escape(str(outcome.error))}",
                    highlight=False,
                )
        progress.update(state["task"], advance=1, failed=state["failed"])

    def on_skip(cell, reason) -> None:
        progress.update(state["task"], advance=1)

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
                on_skip=on_skip,
            )
    except (StoreError, ValueError, OSError) as exc:
        _fail(str(exc))
    except sqlite3.Error as exc:
        _fail(f"results database {db}: {type(exc).__name__}: {exc}")
    stored = summary.done + summary.failed
    others = ""
    if summary.claimed_elsewhere or summary.stored_elsewhere:
        others = (
            f" {summary.claimed_elsewhere + summary.stored_elsewhere} cells were left to "
            f"another sweep run on this database ({summary.claimed_elsewhere} claimed by it "
            f"while running, {summary.stored_elsewhere} stored by it before this run got to "
            "them); `gmmscape sweep status` shows its progress."
        )
    if summary.interrupted:
        console.print(
            f"[yellow]Interrupted.[/] {stored} cells stored in this run ({summary.failed} "
            f"failed), {summary.remaining} not run; every stored row is complete."
            f"{escape(others)} Rerun the same command to resume.",
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
        f"Finished in {summary.seconds:.1f} s on {escape(summary.backend)}: "
        f"{summary.done} done, {summary.failed} failed in this run; "
        f"results in {escape(str(db))}.{escape(others)}",
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
            corrupt = store.corrupt_rows()
            runs = store.active_runs()
    except StoreError as exc:
        _fail(str(exc))
    except sqlite3.Error as exc:
        _fail(f"results database {db}: {type(exc).__name__}: {exc}")
    table = Table(
        title=f"{escape(str(db))}: {total} stored cells",
        box=box.SIMPLE_HEAD,
        padding=(0, 1, 0, 0),
        pad_edge=False,
    )
    cols = ("spec", "experiment", "cells", "done", "failed", "corrupt", "remaining", "time left")
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
            escape(label),
            escape(s.experiment),
            str(s.cells),
            str(s.done),
            f"[red]{s.failed}[/]" if s.failed else "0",
            f"[red]{s.corrupt}[/]" if s.corrupt else "0",
            str(s.remaining),
            left,
        )
    console.print(table)
    for r in runs:
        console.print(
            f"[yellow]running:[/] a sweep run (pid {r.pid} on {escape(r.host)}, started "
            f"{escape(r.started)}, heartbeat {r.heartbeat_age:.0f} s ago) holds {r.claimed} "
            "claimed cells.",
            highlight=False,
        )
    if corrupt:
        console.print(
            f"[red]{len(corrupt)} corrupt rows[/] (payloads that cannot be decoded; not "
            "counted as done or failed; the next `sweep run` of their spec recomputes them):",
            highlight=False,
        )
        for r in corrupt[:MAX_PRINTED_FAILURES]:
            console.print(
                f"  {escape(r['experiment'])} cell {escape(r['cell_key'])}: {escape(r['problem'])}",
                highlight=False,
            )
        if len(corrupt) > MAX_PRINTED_FAILURES:
            console.print(f"  ... and {len(corrupt) - MAX_PRINTED_FAILURES} more", highlight=False)
    if any(s.remaining for s in rows):
        console.print(
            "time left: remaining cells times the mean time of a done cell, for one worker.",
            highlight=False,
        )
    for exp, err, n in failures:
        console.print(f"[red]{n} failed[/] {escape(exp)}: {escape(err)}", highlight=False)


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

    check_out(out)
    try:
        with console.status("drawing figures"), writing_into(out):
            manifest = write_report(db, out)
    except StoreError as exc:
        _fail(str(exc))
    except sqlite3.Error as exc:
        _fail(f"results database {db}: {type(exc).__name__}: {exc}")
    for exp, info in manifest.experiments.items():
        bad = f", [red]{info['rows_corrupt']} corrupt[/]" if info["rows_corrupt"] else ""
        console.print(
            f"{escape(exp)}: {info['rows_done']} done, {info['rows_failed']} failed{bad} rows, "
            f"{len(info['figures'])} figures, {escape(info['csv'])}",
            highlight=False,
        )
        for note in info["notes"]:
            console.print(f"  [yellow]note:[/] {escape(note.splitlines()[0])}", highlight=False)
        for row in info["corrupt"][:MAX_PRINTED_FAILURES]:
            console.print(
                f"  [red]corrupt[/] cell {escape(row['cell_key'])}: {escape(row['problem'])}",
                highlight=False,
            )
    console.print(f"Wrote {escape(str(out / 'report.html'))}.", highlight=False)
