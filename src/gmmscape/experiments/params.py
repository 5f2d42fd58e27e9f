"""Parameters of the sweep experiment types, in a module that imports only pydantic.

Each model validates one sweep cell of one experiment type. They live here, apart from
the code that runs the cells, so that validating a spec (``gmmscape sweep run --dry-run``)
imports no JAX: :func:`gmmscape.experiments.registry.params` loads a type's model from the
module named in :data:`gmmscape.experiments.registry.PARAMS`. The modules that run the
types (:mod:`gmmscape.experiments.overparam`, :mod:`gmmscape.landscape.studies`) use these
same classes.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "LandscapeParams",
    "OverparamParams",
    "RecoveryParams",
    "SeparationParams",
    "TrapParams",
]


class OverparamParams(BaseModel):
    """One sweep cell of type ``overparam``: a population gradient-EM configuration."""

    model_config = ConfigDict(extra="forbid")

    n_components: int = Field(2, ge=2)
    d: int = Field(1, ge=1)
    eta: float = Field(1.0, gt=0)
    steps: int = Field(10_000, ge=1)
    init_scale: float = Field(1.0, gt=0)
    restarts: int = Field(4, ge=1)
    weights: list[float] | None = None
    method: Literal["gradient_em", "em"] = "gradient_em"
    seed: int


class TrapParams(BaseModel):
    """One sweep cell of type ``trap``: the escape time from one trapped start."""

    model_config = ConfigDict(extra="forbid")

    R: float = Field(gt=0)
    n_components: int = Field(2, ge=2)
    d: int = Field(1, ge=1)
    mode: Literal["one", "several"] = "one"
    n_far: int = Field(2, ge=1)
    eta: float = Field(1.0, gt=0)
    max_steps: int = Field(10**6, ge=1)
    seed: int


class LandscapeParams(BaseModel):
    """One atlas of a given truth (sweep type ``"landscape"``)."""

    model_config = ConfigDict(extra="forbid")
    truth_means: list[list[float]]
    sigma: float = Field(1.0, gt=0)
    k: int = Field(ge=1)
    n_starts: int = Field(200, ge=1)
    method: Literal["em", "gradient-em", "newton"] = "em"
    seed: int = 0


class SeparationParams(BaseModel):
    """One separation cell (sweep type ``"separation"``)."""

    model_config = ConfigDict(extra="forbid")
    family: Literal["line", "simplex", "random", "jin"] = "line"
    k_star: int = Field(3, ge=1)
    k: int = Field(3, ge=1)
    d: int = Field(1, ge=1)
    delta: float = Field(gt=0)
    n_starts: int = Field(200, ge=1)
    seed: int = 0


class RecoveryParams(BaseModel):
    """One recovery cell.

    Attributes
    ----------
    k : int
        True (and fitted) number of components.
    d : int
        Dimension.
    separation : float
        Smallest distance between true centers, in units of sigma.
    n_samples : int
        Points drawn from the truth.
    method : {"sklearn", "gmmscape"}
    refine : bool
        gmmscape only: split-and-merge refinement.
    covariance_type : {"full", "tied", "diag", "spherical"}
    init_params : {"kmeans", "k-means++", "random", "random_from_data"}
    seed : int
        Seeds the truth, the sample and the fit.
    """

    model_config = ConfigDict(extra="forbid")
    k: int = Field(5, ge=2)
    d: int = Field(2, ge=1)
    separation: float = Field(8.0, gt=0)
    n_samples: int = Field(10_000, ge=10)
    method: Literal["sklearn", "gmmscape"] = "gmmscape"
    refine: bool = False
    covariance_type: Literal["full", "tied", "diag", "spherical"] = "full"
    init_params: Literal["kmeans", "k-means++", "random", "random_from_data"] = "kmeans"
    seed: int = 0
