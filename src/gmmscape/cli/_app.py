"""The typer application and console shared by every command module."""

from __future__ import annotations

import typer
from rich.console import Console

app = typer.Typer(
    help="gmmscape: population, sample and streaming EM for Gaussian mixture models.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()


@app.callback()
def _root() -> None:
    """gmmscape: population, sample and streaming EM for Gaussian mixture models."""
