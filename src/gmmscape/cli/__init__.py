"""The ``gmmscape`` command line: parses arguments, calls one function, prints its result.

Each command lives in its own module of this package and registers itself on the shared
typer ``app`` (``gmmscape.cli._app``) when imported below.
"""

from __future__ import annotations

from gmmscape.cli import (
    demo,  # noqa: F401  (registers `gmmscape demo`)
    fit,  # noqa: F401  (registers `gmmscape fit`, `gmmscape predict`)
    landscape,  # noqa: F401  (registers `landscape`, `separation`, `bifurcation`, `random-init`)
    overparam,  # noqa: F401  (registers `overparam`, `trap`, `overparam-samples`)
    sweep,  # noqa: F401  (registers `gmmscape sweep`, `gmmscape report`)
)
from gmmscape.cli._app import app

__all__ = ["app", "main"]


def main() -> None:
    """Entry point of the ``gmmscape`` script."""
    app()
