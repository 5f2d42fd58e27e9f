"""One registry of experiment types, shared by sweeps, reports and the CLI.

An experiment type is what a sweep cell runs: a validated set of parameters (a pydantic
model that forbids unknown keys), a function from those parameters to a JSON-serializable
result, and optionally a function that draws figures from many stored
``(params, result)`` rows. Modules that define experiment types list them in a module-level
tuple ``SWEEP_EXPERIMENTS``; the registry imports a module only when one of its types is
asked for, so ``import gmmscape`` stays light.

Adding a type: define it in its module, append it to that module's ``SWEEP_EXPERIMENTS``
and add its name and module to :data:`MODULES` below.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

#: Experiment type name -> the module whose ``SWEEP_EXPERIMENTS`` defines it.
MODULES: dict[str, str] = {
    "landscape": "gmmscape.landscape.studies",
    "overparam": "gmmscape.experiments.overparam",
    "recovery": "gmmscape.experiments.recovery",
    "separation": "gmmscape.landscape.studies",
    "trap": "gmmscape.experiments.overparam",
    "stream-error": "gmmscape.sweep.builtin",
}

#: Experiment type name -> ``"module:Class"`` of its parameters model, in a module that
#: imports no JAX, so that validating a spec stays light. The model must be the same class
#: as the type's ``ExperimentType.params`` (tests/test_sweep_spec.py checks it). Types not
#: listed here load their parameters from their module in :data:`MODULES`.
PARAMS: dict[str, str] = {
    "landscape": "gmmscape.experiments.params:LandscapeParams",
    "overparam": "gmmscape.experiments.params:OverparamParams",
    "recovery": "gmmscape.experiments.params:RecoveryParams",
    "separation": "gmmscape.experiments.params:SeparationParams",
    "trap": "gmmscape.experiments.params:TrapParams",
    "stream-error": "gmmscape.sweep.builtin:StreamErrorParams",
}


@dataclass(frozen=True)
class ExperimentType:
    """An experiment that a sweep cell can run.

    Attributes
    ----------
    name : str
        The type's name in spec files and the results store.
    params : type[pydantic.BaseModel]
        One cell's parameters, including ``seed: int``. Configure it with
        ``model_config = ConfigDict(extra="forbid")`` so an unknown key is an error.
    run : callable
        ``run(params) -> dict``: the cell's result, JSON-serializable (numbers, strings,
        lists, dicts; no arrays or pickles). Raising marks the cell as failed.
    plot : callable or None
        ``plot(rows) -> dict[str, matplotlib.figure.Figure]``: figures (by a short file
        stem) drawn from a list of ``(params: dict, result: dict)`` rows of this type.
    description : str
        One line for reports and ``--help``.
    captions : dict of str to str
        What each figure of ``plot`` shows, by its stem: the sweep report prints it under
        the figure (a figure without one is captioned by its stem).
    """

    name: str
    params: type[BaseModel]
    run: Callable[[BaseModel], dict[str, Any]]
    plot: Callable[[Sequence[tuple[dict, dict]]], dict[str, Any]] | None = None
    description: str = ""
    captions: dict[str, str] = field(default_factory=dict)


def names() -> list[str]:
    """Names of every registered experiment type, sorted.

    Returns
    -------
    list of str
    """
    return sorted(MODULES)


def get(name: str) -> ExperimentType:
    """The experiment type called ``name``.

    Parameters
    ----------
    name : str

    Returns
    -------
    ExperimentType

    Raises
    ------
    ValueError
        If no type of that name is registered (the message lists the known names).
    """
    if name not in MODULES:
        raise ValueError(f"unknown experiment type {name!r}; known types: {', '.join(names())}.")
    module = importlib.import_module(MODULES[name])
    for exp in getattr(module, "SWEEP_EXPERIMENTS", ()):
        if exp.name == name:
            return exp
    raise RuntimeError(
        f"module {MODULES[name]} is registered for experiment type {name!r} but its "
        "SWEEP_EXPERIMENTS does not define it."
    )


def params(name: str) -> type[BaseModel]:
    """The parameters model of the experiment type ``name``, imported as lightly as possible.

    Parameters
    ----------
    name : str

    Returns
    -------
    type[pydantic.BaseModel]
        The class :func:`get` would return as ``get(name).params``; for the types in
        :data:`PARAMS` it is imported from that light module, without the module that
        runs the type.

    Raises
    ------
    ValueError
        If no type of that name is registered (the message lists the known names).
    """
    if name not in MODULES:
        raise ValueError(f"unknown experiment type {name!r}; known types: {', '.join(names())}.")
    if name in PARAMS:
        module, cls = PARAMS[name].split(":")
        return getattr(importlib.import_module(module), cls)
    return get(name).params
