"""The typer application and console shared by every command module.

Command modules import only typer, rich's console and this module at import time;
everything else (JAX, matplotlib, scipy, rich tables and progress bars) is imported inside
the command that needs it, so ``gmmscape --help`` and the light commands start fast
(tests/test_cli.py checks which modules ``import gmmscape.cli`` loads).
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(
    help="gmmscape: population, sample and streaming EM for Gaussian mixture models.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()


def _print_version(value: bool) -> None:
    """Print the package version and exit when ``--version`` is given."""
    if value:
        from gmmscape import __version__

        console.print(f"gmmscape {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print gmmscape's version and exit.",
            callback=_print_version,
            is_eager=True,
        ),
    ] = False,
) -> None:
    """gmmscape: population, sample and streaming EM for Gaussian mixture models."""
