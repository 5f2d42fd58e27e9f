"""A scikit-learn compatible Gaussian mixture estimator on JAX kernels.

:class:`GaussianMixture` fits full, tied, diagonal and spherical mixtures by EM or gradient
EM, with sample weights, frozen parameters, vmapped restarts, a chunked E-step, Dask input
and split-and-merge refinement (``refine=True``). See docs/estimator.md.
"""

from gmmscape.estimator._gaussian_mixture import CollapseWarning, GaussianMixture
from gmmscape.estimator._io import load_model, read_data, save_model

__all__ = ["CollapseWarning", "GaussianMixture", "load_model", "read_data", "save_model"]
