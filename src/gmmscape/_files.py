"""Writing files atomically: bytes and JSON.

A file is written to a temporary name beside it and renamed into place, so that no file
is ever left half-written. This module imports nothing of gmmscape: every layer (the
estimator's model files, the experiments' results, the sweep reports, the CLI) writes
through it.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (a temporary file renamed into place).

    If writing fails (a full disk, a folder named ``path``) the temporary file is
    removed and the error raised; ``path`` is then untouched.

    Parameters
    ----------
    path : str or Path
    data : bytes

    Returns
    -------
    Path
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_bytes(data)
        tmp.replace(path)
    except BaseException:  # a full disk, a folder in the way, Ctrl-C: leave nothing behind
        tmp.unlink(missing_ok=True)
        raise
    return path


def _plain(obj):
    """Dataclasses, arrays and numpy scalars as plain JSON values."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if hasattr(obj, "tolist"):  # numpy and jax arrays and scalars
        return _plain(obj.tolist())
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(result, path: str | Path) -> Path:
    """Write a result (a dataclass, dict or list) as JSON, atomically.

    Arrays become nested lists; non-finite floats are written as ``NaN`` and ``Infinity``,
    which Python's :mod:`json` reads back.

    Parameters
    ----------
    result : dataclass instance, dict or list
    path : str or Path

    Returns
    -------
    Path
    """
    text = json.dumps(_plain(result), indent=2, allow_nan=True)
    return write_bytes(path, text.encode())
