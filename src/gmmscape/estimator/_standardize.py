"""Fit on standardized columns, return the model in the data's own units.

k-means initialization and ``reg_covar`` are not scale-invariant: on unscaled columns
(raw wine: variances from 0.01 to 1e5) the large columns dominate the start. Fitting on
``z = (x - m) / s`` and mapping the fitted mixture back through ``x = m + s z`` gives a
model of the original data that predicts exactly as the standardized one:
``mu_x = m + s mu_z``, ``Sigma_x = S Sigma_z S`` and precision factor ``S^-1 P_z`` with
``S = diag(s)`` (still triangular), log-likelihoods lower by ``sum log s``.
"""

from __future__ import annotations

import numpy as np

from gmmscape._lazy import LazyModule

families = LazyModule("gmmscape.core.families")


def fit_standardized(gm, X: np.ndarray):
    """Fit ``gm`` on the standardized columns of ``X``; express it in ``X``'s units.

    Parameters
    ----------
    gm : GaussianMixture
        Unfitted; its covariance family must be ``rescalable`` (not spherical, EII,
        EEV, VEV, EVE or VVE).
    X : ndarray of shape (n_samples, n_features)

    Returns
    -------
    GaussianMixture
        ``gm``, fitted, with ``means_``, ``covariances_``, ``precisions_cholesky_``,
        ``precisions_``, ``lower_bound_`` and ``lower_bounds_`` in the units of ``X``.

    Raises
    ------
    ValueError
        For a family that a per-feature rescaling does not keep.
    """
    fam = families.get(gm.covariance_type)
    if not fam.rescalable:
        why = (
            "a variance per component cannot carry per-feature scales"
            if fam.scalar_variances
            else "its equal shapes or orientations are not kept when columns are rescaled"
        )
        raise ValueError(
            f"--standardize cannot fit covariance_type={gm.covariance_type!r} in the data's "
            f"units: {why}; use diag, tied, full or another model whose constraint a "
            "per-feature rescaling keeps."
        )
    X = np.asarray(X, dtype=np.float64)
    m = np.nanmean(X, axis=0)  # NaN: missing entries (missing="em")
    s = np.nanstd(X, axis=0)
    s = np.where(s > 0, s, 1.0)  # a constant column stays as it is (reg_covar keeps it)
    gm.fit((X - m) / s)
    dt = gm.means_.dtype
    gm.means_ = (m + s * gm.means_).astype(dt)
    if fam.matrix:  # Sigma -> S Sigma S and P -> S^-1 P, S = diag(s)
        gm.covariances_ = (gm.covariances_ * np.outer(s, s)).astype(dt)
        gm.precisions_cholesky_ = (gm.precisions_cholesky_ / s[:, None]).astype(dt)
    else:
        gm.covariances_ = (gm.covariances_ * s**2).astype(dt)
        gm.precisions_cholesky_ = (gm.precisions_cholesky_ / s).astype(dt)
    gm._set_precisions()
    jac = float(np.sum(np.log(s)))
    gm.lower_bound_ = gm.lower_bound_ - jac
    gm.lower_bounds_ = [v - jac for v in gm.lower_bounds_]
    return gm
