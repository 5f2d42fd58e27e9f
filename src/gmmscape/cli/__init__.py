"""The ``gmmscape`` command line: parses arguments, calls one function, prints its result.

Each command lives in its own module of this package and registers itself on the shared
typer ``app`` (``gmmscape.cli._app``) when imported below.
"""

from __future__ import annotations

from gmmscape.cli import (
    demo,  # noqa: F401  (registers `gmmscape demo`)
    fit,  # noqa: F401  (registers `gmmscape fit`, `predict`, `impute`)
    landscape,  # noqa: F401  (registers `landscape`, `separation`, `bifurcation`, `random-init`)
    overparam,  # noqa: F401  (registers `overparam`, `trap`, `overparam-samples`)
    select,  # noqa: F401  (registers `gmmscape select`)
    sweep,  # noqa: F401  (registers `gmmscape sweep`, `gmmscape report`)
)
from gmmscape.cli._app import app

__all__ = ["app", "main"]


def main() -> None:
    """Entry point of the ``gmmscape`` script.

    Anticipated failures are reported by each command as one ``error: ...`` line (exit
    status 2). An unexpected exception (a bug) is reported the same way, naming its type,
    unless ``gmmscape --debug ...`` asks for the traceback.
    """
    from gmmscape.cli._app import DEBUG

    try:
        app()
    except Exception as exc:
        if DEBUG["on"]:
            raise
        from rich.markup import escape

        from gmmscape.cli._app import console

        console.print(
            f"[bold red]error:[/] unexpected {type(exc).__name__}: {escape(str(exc))} "
            "(run the command again with `gmmscape --debug ...` for the traceback, and "
            "please report it)",
            highlight=False,
        )
        raise SystemExit(2) from None
