"""Sweeps: run an experiment type over a grid of parameters and seeds, crash-safely.

- :mod:`~gmmscape.sweep.spec`: TOML specs, validated and expanded into cells.
- :mod:`~gmmscape.sweep.store`: the SQLite results store, one atomic row per cell.
- :mod:`~gmmscape.sweep.runner`: local processes or a Dask cluster, one writer.
- :mod:`~gmmscape.sweep.report`: figures, tables and CSV from the stored rows.
- :mod:`~gmmscape.sweep.builtin`: the ``stream-error`` experiment type.

See docs/sweeps.md for the user guide.
"""

from __future__ import annotations

import importlib as _importlib

#: Public name -> the module that defines it, imported on first access so that
#: ``gmmscape sweep status`` reads the store without loading the runner (numpy, pydantic).
_LAZY = {
    "SweepSummary": "gmmscape.sweep.runner",
    "run_sweep": "gmmscape.sweep.runner",
    "Cell": "gmmscape.sweep.spec",
    "Spec": "gmmscape.sweep.spec",
    "SpecError": "gmmscape.sweep.spec",
    "load_spec": "gmmscape.sweep.spec",
    "parse_spec": "gmmscape.sweep.spec",
    "Outcome": "gmmscape.sweep.store",
    "ResultsStore": "gmmscape.sweep.store",
    "SpecStatus": "gmmscape.sweep.store",
    "StoreError": "gmmscape.sweep.store",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    """Import a public name's module on first access (PEP 562).

    Parameters
    ----------
    name : str
        A name of :data:`__all__`.

    Returns
    -------
    object
        The class or function ``name``.

    Raises
    ------
    AttributeError
        If ``name`` is not a public name of :mod:`gmmscape.sweep`.
    """
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The module's names, the lazily imported ones included."""
    return sorted(set(globals()) | set(__all__))
