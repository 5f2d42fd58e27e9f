"""Sweeps: run an experiment type over a grid of parameters and seeds, crash-safely.

- :mod:`~gmmscape.sweep.spec`: TOML specs, validated and expanded into cells.
- :mod:`~gmmscape.sweep.store`: the SQLite results store, one atomic row per cell.
- :mod:`~gmmscape.sweep.runner`: local processes or a Dask cluster, one writer.
- :mod:`~gmmscape.sweep.report`: figures, tables and CSV from the stored rows.
- :mod:`~gmmscape.sweep.builtin`: the ``stream-error`` experiment type.

See docs/sweeps.md for the user guide.
"""

from gmmscape.sweep.runner import SweepSummary, run_sweep
from gmmscape.sweep.spec import Cell, Spec, SpecError, load_spec, parse_spec
from gmmscape.sweep.store import Outcome, ResultsStore, SpecStatus, StoreError

__all__ = [
    "Cell",
    "Outcome",
    "ResultsStore",
    "Spec",
    "SpecError",
    "SpecStatus",
    "StoreError",
    "SweepSummary",
    "load_spec",
    "parse_spec",
    "run_sweep",
]
