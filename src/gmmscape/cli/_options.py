"""Options that several commands share, written once (``typer`` annotations)."""

from __future__ import annotations

from typing import Annotated

import typer

#: ``--columns``: the columns to fit (``fit``, ``select``).
Columns = Annotated[
    list[str] | None,
    typer.Option(help="Columns to fit, by name or 0-based index, comma-separated (default: all)."),
]
#: ``--drop``: the columns to leave out (``fit``, ``select``).
Drop = Annotated[
    list[str] | None,
    typer.Option(help="Columns to leave out, by name or index, comma-separated (default: none)."),
]
