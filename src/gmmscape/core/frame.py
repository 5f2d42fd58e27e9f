"""Coordinates in which a source measures: the identity, or the span of means and centers.

For an isotropic model and an isotropic truth, every integrand depends on a point ``x``
only through its projection on the affine span ``S`` of the model means and the true
centers (docs/reference.md section 1). The part of ``x`` orthogonal to ``S`` is independent
Gaussian noise of variance ``sigma*^2`` per direction. A :class:`Frame` records the origin
and an orthonormal basis of ``S``; statistics are summed in its ``r`` coordinates and the
results lifted back to ``d`` dimensions, with the exact contribution of the orthogonal
noise added in closed form.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gmmscape.core.mixture import Mixture

#: Singular values below this fraction of the largest (or of 1) count as zero when the
#: span of the means and centers is computed.
SPAN_RTOL = 1e-12


class Frame(NamedTuple):
    """Affine coordinates ``x = origin + basis @ z`` plus orthogonal Gaussian noise.

    Attributes
    ----------
    origin : array of shape (d,)
    basis : array of shape (d, r), or None for the identity (``r = d``)
    perp_var : float
        Variance per direction of the noise orthogonal to the basis (0 if none).
    d : int
        Ambient dimension.
    """

    origin: jax.Array | None
    basis: jax.Array | None
    perp_var: float
    d: int

    @property
    def r(self) -> int:
        """Number of coordinates."""
        return self.d if self.basis is None else int(self.basis.shape[1])

    @property
    def n_perp(self) -> int:
        """Number of directions orthogonal to the basis."""
        return self.d - self.r


def identity_frame(d: int) -> Frame:
    """The frame of a sample: ``r = d``, no orthogonal noise.

    Parameters
    ----------
    d : int

    Returns
    -------
    Frame
    """
    return Frame(origin=None, basis=None, perp_var=0.0, d=d)


def span_frame(model: Mixture, truth: Mixture) -> Frame:
    """The frame of the affine span of ``model.means`` and ``truth.means``.

    The origin is the truth's mean; the basis comes from an SVD of the offsets, with the
    rank fixed by :data:`SPAN_RTOL`. A span of dimension 0 (every mean on one point) gets
    one coordinate, so that integrals are never empty.

    Parameters
    ----------
    model : Mixture with k components in dimension d
    truth : Mixture with k* components in dimension d

    Returns
    -------
    Frame
        ``r <= min(d, k + k* - 1)`` coordinates.
    """
    mu = np.asarray(model.means)
    beta = np.asarray(truth.means)
    origin = np.asarray(truth.weights) @ beta
    offsets = np.vstack([mu - origin, beta - origin])
    # the thin SVD: the full one would build a (d, d) matrix, O(d^2) memory and O(d^3) time
    _, s, vt = np.linalg.svd(offsets, full_matrices=False)
    scale = max(1.0, float(s[0]) if s.size else 0.0)
    r = max(1, int(np.sum(s > SPAN_RTOL * scale)))
    basis = vt[:r].T
    return Frame(
        origin=jnp.asarray(origin),
        basis=jnp.asarray(basis),
        perp_var=float(truth.sigma) ** 2,
        d=mu.shape[1],
    )


def to_frame(frame: Frame, model: Mixture) -> Mixture:
    """Express ``model`` in the frame's coordinates.

    Parameters
    ----------
    frame : Frame
    model : Mixture in dimension d

    Returns
    -------
    Mixture in dimension r
    """
    if frame.basis is None:
        return model
    a = (model.means - frame.origin) @ frame.basis
    return Mixture._raw(a, model.weights, model.sigma)


def lift_points(frame: Frame, a: jax.Array) -> jax.Array:
    """Map points from frame coordinates back to the ambient space.

    Parameters
    ----------
    frame : Frame
    a : array of shape (k, r)

    Returns
    -------
    array of shape (k, d)
    """
    if frame.basis is None:
        return a
    return frame.origin + a @ frame.basis.T


def lift_vectors(frame: Frame, v: jax.Array) -> jax.Array:
    """Map directions (gradients, steps) from frame coordinates to the ambient space.

    Parameters
    ----------
    frame : Frame
    v : array of shape (k, r)

    Returns
    -------
    array of shape (k, d)
    """
    return v if frame.basis is None else v @ frame.basis.T


def lift_hessian(frame: Frame, h: jax.Array, perp_block: jax.Array) -> jax.Array:
    """Lift a Hessian in frame coordinates and add the orthogonal directions.

    Parameters
    ----------
    frame : Frame
    h : array of shape (k*r, k*r)
        The Hessian restricted to the frame's directions.
    perp_block : array of shape (k, k)
        ``M`` such that the Hessian on orthogonal directions is ``M kron P_perp``.

    Returns
    -------
    array of shape (k*d, k*d)
    """
    if frame.basis is None:
        return h
    q = frame.basis
    k = perp_block.shape[0]
    d, r = q.shape
    h4 = h.reshape(k, r, k, r)
    full = jnp.einsum("ua,iajb,vb->iujv", q, h4, q)
    p_perp = jnp.eye(d, dtype=q.dtype) - q @ q.T
    full = full + perp_block[:, None, :, None] * p_perp[None, :, None, :]
    return full.reshape(k * d, k * d)
