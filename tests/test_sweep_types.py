"""Test-only sweep experiment types (no tests here): importable by spawned and Dask workers.

The sweep tests register them with ``registry.MODULES["sweep-test-square"] =
"test_sweep_types"``; workers import this module by name (pytest puts ``tests/`` on
``sys.path``, and spawned processes inherit it).
"""

import math
import os
import time
import warnings

from pydantic import BaseModel, ConfigDict

from gmmscape.experiments.registry import ExperimentType


class SquareParams(BaseModel):
    """x, a seed, and switches that make the cell slow, raise, or kill its process."""

    model_config = ConfigDict(extra="forbid")

    x: float
    seed: int
    sleep: float = 0.0
    fail: bool = False
    crash: bool = False
    nonfinite: bool = False


def run_square(p: SquareParams) -> dict:
    """``y = x**2 + seed`` after sleeping ``p.sleep`` seconds."""
    time.sleep(p.sleep)
    if p.fail:
        raise ValueError(f"deliberate failure at x={p.x}")
    if p.crash:
        os._exit(3)
    if p.nonfinite:
        warnings.warn("deliberate warning", UserWarning, stacklevel=1)
        warnings.warn("deliberate warning", UserWarning, stacklevel=1)
        return {"y": float("nan"), "x": p.x, "tail": [1.0, float("-inf")], "d": {"e": math.inf}}
    return {"y": p.x * p.x + p.seed, "x": p.x}


def plot_square(rows):
    """One scatter of y against x."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([p["x"] for p, _ in rows], [r["y"] for _, r in rows], "o")
    return {"y_vs_x": fig}


def plot_broken(rows):
    """A plot function that raises."""
    raise RuntimeError("this plot is broken")


SWEEP_EXPERIMENTS = (
    ExperimentType("sweep-test-square", SquareParams, run_square, plot_square, "x squared"),
    ExperimentType("sweep-test-broken-plot", SquareParams, run_square, plot_broken, "bad plot"),
)


def run_bad_result(p: SquareParams) -> dict:
    """A result that is not JSON-serializable."""
    return {"value": object()}


SWEEP_EXPERIMENTS = (
    *SWEEP_EXPERIMENTS,
    ExperimentType("sweep-test-bad-result", SquareParams, run_bad_result, None, "bad result"),
)
