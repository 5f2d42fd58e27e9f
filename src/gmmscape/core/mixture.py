"""Mixture parameters as JAX pytrees.

:class:`Mixture` is the isotropic model of the research half (known, shared ``sigma``);
:class:`Params` holds a mixture of any covariance family of
:mod:`gmmscape.core.families` (the estimator's model), and :class:`Masks` says which of
its parameters an M-step updates.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gmmscape._validation import (
    as_float_array,
    check_positive,
    check_positive_int,
    check_weights,
)
from gmmscape.core.stats import draw, log_density


@jax.tree_util.register_pytree_node_class
class Mixture:
    """An isotropic Gaussian mixture ``sum_i pi_i N(mu_i, sigma^2 I_d)``.

    The constructor validates its arguments; inside JAX transformations the object is
    rebuilt from its leaves without checks, so a ``Mixture`` can be passed through
    ``jit``, ``vmap`` and ``lax.scan``.

    Parameters
    ----------
    means : array_like of shape (k, d)
        One row per component. For 1-D mixtures write ``[[-2.0], [2.0]]``.
    weights : array_like of shape (k,), optional
        Mixing weights, non-negative and summing to one. Uniform if omitted.
    sigma : float, default 1.0
        The common standard deviation of every component (> 0).

    Attributes
    ----------
    means : jax.Array of shape (k, d)
    weights : jax.Array of shape (k,)
    sigma : jax.Array of shape ()
    k : int
        Number of components.
    d : int
        Dimension.

    Examples
    --------
    >>> import gmmscape as gs
    >>> truth = gs.Mixture(means=[[-2.0], [2.0]], sigma=1.0)
    >>> truth.k, truth.d
    (2, 1)
    >>> [float(w) for w in truth.weights]
    [0.5, 0.5]
    """

    __slots__ = ("means", "sigma", "weights")

    def __init__(self, means, weights=None, sigma=1.0):
        mu = as_float_array(means, "means", 2)
        k = mu.shape[0]
        w = np.full(k, 1.0 / k) if weights is None else check_weights(weights, k)
        s = check_positive(sigma, "sigma")
        self.means = jnp.asarray(mu)
        self.weights = jnp.asarray(w)
        self.sigma = jnp.asarray(s, dtype=self.means.dtype)

    # -- pytree protocol -------------------------------------------------------------
    def tree_flatten(self):
        return (self.means, self.weights, self.sigma), None

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls._raw(*children)

    @classmethod
    def _raw(cls, means, weights, sigma) -> Mixture:
        """Build without validation (for traced values and internal use)."""
        obj = object.__new__(cls)
        obj.means = means
        obj.weights = weights
        obj.sigma = sigma
        return obj

    # -- conveniences ----------------------------------------------------------------
    @property
    def k(self) -> int:
        """Number of components."""
        return int(self.means.shape[0])

    @property
    def d(self) -> int:
        """Dimension of the space."""
        return int(self.means.shape[1])

    @property
    def log_weights(self) -> jax.Array:
        """``log(weights)``, shape (k,); ``-inf`` for a zero weight."""
        return jnp.log(self.weights)

    def replace(self, *, means=None, weights=None, sigma=None) -> Mixture:
        """Return a copy with some parameters replaced (validated).

        Parameters
        ----------
        means : array_like of shape (k, d), optional
        weights : array_like of shape (k,), optional
        sigma : float, optional

        Returns
        -------
        Mixture
        """
        return Mixture(
            means=self.means if means is None else means,
            weights=self.weights if weights is None else weights,
            sigma=float(self.sigma) if sigma is None else sigma,
        )

    def log_pdf(self, X) -> np.ndarray:
        """Log-density of the mixture at the rows of ``X``.

        Parameters
        ----------
        X : array_like of shape (n, d)

        Returns
        -------
        numpy.ndarray of shape (n,)
        """
        x = as_float_array(X, "X", 2)
        if x.shape[1] != self.d:
            raise ValueError(f"X must have {self.d} columns (the mixture's d); got {x.shape[1]}.")
        return np.asarray(log_density(jnp.asarray(x), self))

    def sample(self, n: int, seed: int) -> np.ndarray:
        """Draw ``n`` points from the mixture.

        Parameters
        ----------
        n : int
            Number of points (>= 1).
        seed : int
            Seed of the JAX random key.

        Returns
        -------
        numpy.ndarray of shape (n, d)
        """
        n = check_positive_int(n, "n")
        return np.asarray(draw(jax.random.key(int(seed)), self, n))

    def __repr__(self) -> str:
        mu = np.array2string(np.asarray(self.means), precision=4, separator=", ")
        w = np.array2string(np.asarray(self.weights), precision=4, separator=", ")
        return f"Mixture(means={mu}, weights={w}, sigma={float(self.sigma):.6g})"


class Params(NamedTuple):
    """Parameters of a mixture of any covariance family.

    The shapes of ``covariances`` and ``precisions_cholesky`` are the family's
    (:attr:`gmmscape.core.families.Family.cov_shape`): (k, d, d) full-like, (d, d)
    tied-like, (k, d) diag-like, (k,) spherical, () isotropic.

    Attributes
    ----------
    weights : array of shape (k,)
    means : array of shape (k, d)
    covariances : array
    precisions_cholesky : array
        The precision factor ``P`` (precision ``P P^T``); log-determinants come from its
        diagonal.
    """

    weights: jax.Array
    means: jax.Array
    covariances: jax.Array
    precisions_cholesky: jax.Array


class Masks(NamedTuple):
    """Which parameters an M-step updates, per component (1.0 update, 0.0 keep).

    Freezing a parameter sets its mask to zero; the partial EM of the estimator's
    ``refine`` updates only the components of one move.

    Attributes
    ----------
    weights, means, covariances : arrays of shape (k,)
    """

    weights: jax.Array
    means: jax.Array
    covariances: jax.Array
