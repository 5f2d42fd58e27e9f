"""``gmmscape demo``: the newcomer's tour of both seeds and the estimator."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from gmmscape.cli._app import app, console


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for report.html, figures and JSON.")] = Path(
        "demo-output"
    ),
    quick: Annotated[bool, typer.Option(help="Smaller samples and fewer seeds.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of every random choice.")] = 0,
) -> None:
    """Reproduce both papers' headline results and the estimator's, then write a report."""
    from rich.table import Table

    from gmmscape.experiments.output import format_number
    from gmmscape.experiments.tour import run_tour

    with console.status("starting") as status:
        result = run_tour(out, quick=quick, seed=seed, progress=lambda m: status.update(m))
    for s in result.sections:
        console.rule(f"[bold]{s.title}")
        for line in s.summary:
            console.print(line)
        if s.table is not None:
            header, rows = s.table
            table = Table()
            for col in header:
                table.add_column(col, justify="right")
            for row in rows:
                table.add_row(
                    *(format_number(v, ".4g") if isinstance(v, float) else str(v) for v in row)
                )
            console.print(table)
    n_figures = sum(len(s.figures) for s in result.sections)
    console.print(
        f"Wrote {escape(str(result.report))} with {n_figures} figure "
        f"files and {len(result.sections)} JSON files in {result.seconds:.0f} s."
    )
