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
#: Set by ``gmmscape --debug``: an unexpected error shows its traceback (see ``main``).
DEBUG = {"on": False}


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
    debug: Annotated[
        bool,
        typer.Option(
            "--debug", help="Show the traceback of an unexpected error (default: one line)."
        ),
    ] = False,
) -> None:
    """gmmscape: population, sample and streaming EM for Gaussian mixture models."""
    DEBUG["on"] = debug


def split_list(values: str | list[str] | None, convert, option: str) -> list:
    """The items of a list option, in the one list convention of every command.

    A list option takes comma-separated values, and repeating the option appends to the
    list: ``--ks 2,3,4`` and ``--ks 2 --ks 3,4`` both give ``[2, 3, 4]``.

    Parameters
    ----------
    values : str or list of str or None
        What typer parsed: one string, or one string per occurrence of the option.
    convert : callable
        Applied to each item, e.g. ``int`` or ``float``.
    option : str
        The option's name, for the error message, e.g. ``"--ks"``.

    Returns
    -------
    list
        The converted items, in order; empty when ``values`` is None or empty.

    Raises
    ------
    typer.Exit
        With status 2, after one line ``error: ...`` naming the option and the items, if
        an item does not convert (the convention of every command's bad input).
    """
    if values is None:
        return []
    texts = [values] if isinstance(values, str) else list(values)
    items = [x.strip() for text in texts for x in text.split(",") if x.strip()]
    try:
        return [convert(x) for x in items]
    except ValueError:
        from rich.markup import escape

        kind = getattr(convert, "__name__", "value")
        msg = f"{option} takes comma-separated values of type {kind}; got {', '.join(texts)!r}."
        console.print(f"[bold red]error:[/] {escape(msg)}", highlight=False)
        raise typer.Exit(code=2) from None
