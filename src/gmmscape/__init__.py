"""gmmscape: population, sample and streaming EM for Gaussian mixture models.

Importing gmmscape turns on JAX's 64-bit mode (``jax_enable_x64``), because population
expectations, landscapes and certificates need float64. This is a process-wide JAX
setting; it is documented in docs/numerics.md. Arrays that you create as float32 stay
float32.

It also turns on JAX's persistent compilation cache (``~/.cache/gmmscape/jax``), so a
second process reuses the compiled programs of the first; ``GMMSCAPE_COMPILATION_CACHE=0``
turns it off (see :mod:`gmmscape._compilation_cache`).
"""

import jax as _jax

_jax.config.update("jax_enable_x64", True)

from gmmscape._compilation_cache import enable_compilation_cache  # noqa: E402

enable_compilation_cache(_jax)

from gmmscape.core.frame import Frame  # noqa: E402
from gmmscape.core.mixture import Mixture  # noqa: E402
from gmmscape.core.sources import (  # noqa: E402
    Expectation,
    PopulationSource,
    QuadratureReport,
    QuadratureWarning,
    SampleSource,
    Source,
    StreamSource,
    population,
    sample,
    stream,
)
from gmmscape.estimator import GaussianMixture  # noqa: E402
from gmmscape.experiments.overparam import overparam  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "Expectation",
    "Frame",
    "GaussianMixture",
    "Mixture",
    "PopulationSource",
    "QuadratureReport",
    "QuadratureWarning",
    "SampleSource",
    "Source",
    "StreamSource",
    "__version__",
    "overparam",
    "population",
    "sample",
    "stream",
]
