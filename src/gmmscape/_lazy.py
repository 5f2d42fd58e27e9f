"""A module imported on first use, so that light entry points do not load JAX."""

from __future__ import annotations

import importlib
from types import ModuleType


class LazyModule:
    """Stands for the module ``name`` and imports it at the first attribute access.

    ``from gmmscape import GaussianMixture`` defines the estimator class without
    importing JAX: the estimator's module refers to JAX and its kernels through these,
    and JAX is loaded by the first fit.

    Parameters
    ----------
    name : str
        Absolute module name, e.g. ``"jax.numpy"``.
    """

    __slots__ = ("_module", "_name")

    def __init__(self, name: str):
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_module", None)

    def _load(self) -> ModuleType:
        if self._module is None:
            object.__setattr__(self, "_module", importlib.import_module(self._name))
        return self._module

    def __getattr__(self, attr: str):
        return getattr(self._load(), attr)

    def __repr__(self) -> str:
        state = "loaded" if self._module is not None else "not loaded yet"
        return f"<lazy module {self._name!r} ({state})>"
