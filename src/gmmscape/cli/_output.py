"""Helpers the study commands share: refuse a bad ``--out`` early, report write failures.

A command checks its ``--out`` folder before it computes anything (:func:`check_out`), and
writes its outputs inside :func:`writing_into`, which turns a failure to write (a file in
the way, permission, a full disk) into one ``error:`` line and exit status 2. Every file
is written through :func:`gmmscape._files.write_bytes`, which removes its
temporary file when the write fails, so nothing partial is left behind.
"""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.markup import escape

from gmmscape.cli._app import console


def fail(message: str) -> None:
    """Print ``error: MESSAGE`` (escaped) and exit with status 2.

    Parameters
    ----------
    message : str
    """
    console.print(f"[bold red]error:[/] {escape(str(message))}", highlight=False)
    raise typer.Exit(code=2)


def check_out(out: Path, option: str = "--out") -> None:
    """Exit with an error if ``out`` cannot be a folder (a file, or under a file).

    Parameters
    ----------
    out : Path
    option : str, default "--out"
        The option's name, for the message.
    """
    for parent in (out, *out.parents):
        if parent.exists():
            if not parent.is_dir():
                where = "is a file" if parent == out else f"is under the file {parent}"
                fail(f"{option} {out} {where}; give a folder for the outputs.")
            return


@contextmanager
def writing_into(out: Path, option: str = "--out"):
    """Turn an ``OSError`` while writing the outputs into one ``error:`` line.

    A folder that did not exist before is removed again when writing fails, so a failed
    command leaves no partial output behind.

    Parameters
    ----------
    out : Path
    option : str, default "--out"
    """
    new = [p for p in (out, *out.parents) if not p.exists()]
    try:
        yield
    except OSError as exc:
        if new:
            shutil.rmtree(new[-1], ignore_errors=True)
        fail(f"cannot write the outputs into {option} {out}: {exc}")
