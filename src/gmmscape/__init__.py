"""gmmscape: population, sample and streaming EM for Gaussian mixture models.

Importing gmmscape turns on JAX's 64-bit mode (``jax_enable_x64``), because population
expectations, landscapes and certificates need float64. This is a process-wide JAX
setting; it is documented in docs/numerics.md. Arrays that you create as float32 stay
float32.

``import gmmscape`` itself is light: the names below are imported on first use (so the
``gmmscape`` command starts without loading JAX). If JAX is already imported, the flag is
set at once; otherwise gmmscape sets the environment variable ``JAX_ENABLE_X64=1``, which
JAX reads when it is imported, so the flag is on before any gmmscape code runs. Processes
started afterwards inherit that variable.

It also turns on JAX's persistent compilation cache (``~/.cache/gmmscape/jax``), in the
same way, so that a second process reuses the compiled programs of the first;
``GMMSCAPE_COMPILATION_CACHE=0`` turns it off (see :mod:`gmmscape._compilation_cache`).
"""

from __future__ import annotations

import importlib as _importlib
import os as _os
import sys as _sys

__version__ = "0.1.0"


def _enable_x64() -> None:
    """Turn on JAX's 64-bit mode now if JAX is loaded, else when it is imported."""
    jax = _sys.modules.get("jax")
    if jax is not None and hasattr(jax, "config"):
        jax.config.update("jax_enable_x64", True)
    else:
        _os.environ["JAX_ENABLE_X64"] = "1"


_enable_x64()

from gmmscape._compilation_cache import enable_compilation_cache  # noqa: E402

enable_compilation_cache()

#: Public name -> the module that defines it (imported on first access).
_LAZY = {
    "Frame": "gmmscape.core.frame",
    "Mixture": "gmmscape.core.mixture",
    "Expectation": "gmmscape.core.sources",
    "FileTable": "gmmscape.estimator.tables",
    "PopulationSource": "gmmscape.core.sources",
    "QuadratureReport": "gmmscape.core.sources",
    "QuadratureWarning": "gmmscape.core.sources",
    "SampleSource": "gmmscape.core.sources",
    "Source": "gmmscape.core.sources",
    "StreamSource": "gmmscape.core.sources",
    "files": "gmmscape.estimator.tables",
    "population": "gmmscape.core.sources",
    "sample": "gmmscape.core.sources",
    "stream": "gmmscape.core.sources",
    "GaussianMixture": "gmmscape.estimator",
    "overparam": "gmmscape.experiments.overparam",
    "select": "gmmscape.estimator.select",
    "Selection": "gmmscape.estimator.select",
}

__all__ = ["__version__", *sorted(_LAZY)]


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
        If ``name`` is not a public name of gmmscape or one of its subpackages.
    """
    module = _LAZY.get(name)
    if module is None:
        try:  # a subpackage accessed as an attribute, e.g. gmmscape.landscape
            return _importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value  # later accesses skip __getattr__
    return value


def __dir__() -> list[str]:
    """The module's names, the lazily imported ones included."""
    return sorted(set(globals()) | set(__all__))
