"""Checks made once, at the public boundary, with messages that name the argument."""

from __future__ import annotations

import numbers

import numpy as np

#: How far weights may sum from one before they are rejected.
WEIGHT_SUM_TOL = 1e-8


def as_float_array(value, name: str, ndim: int, dtype=np.float64) -> np.ndarray:
    """Convert ``value`` to a finite float array with ``ndim`` dimensions.

    Parameters
    ----------
    value : array_like
        The user's input.
    name : str
        The argument's name, used in error messages.
    ndim : int
        The required number of dimensions.
    dtype : numpy dtype, default float64
        The dtype of the returned array.

    Returns
    -------
    numpy.ndarray
        A copy of ``value`` as ``dtype``.

    Raises
    ------
    ValueError
        If ``value`` is not numeric, has the wrong number of dimensions, is empty or
        holds NaN or inf.
    """
    try:
        arr = np.array(value, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric; could not convert it: {exc}") from None
    if arr.ndim != ndim:
        hint = ""
        if name.endswith("means") and arr.ndim == 1:
            hint = " For 1-D mixtures write one row per component, e.g. [[-2.0], [2.0]]."
        raise ValueError(f"{name} must have {ndim} dimension(s); got shape {arr.shape}.{hint}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}).")
    bad = ~np.isfinite(arr)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{name} holds {int(bad.sum())} non-finite value(s) (NaN or inf); "
            f"the first is at index {where}."
        )
    return arr


def check_weights(weights, k: int, name: str = "weights") -> np.ndarray:
    """Validate mixing weights: shape ``(k,)``, non-negative, summing to one.

    Parameters
    ----------
    weights : array_like of shape (k,)
        Candidate weights.
    k : int
        The number of components.
    name : str, default "weights"
        The argument's name, used in error messages.

    Returns
    -------
    numpy.ndarray of shape (k,)
        The weights, renormalized to sum exactly to one.
    """
    w = as_float_array(weights, name, 1)
    if w.shape != (k,):
        raise ValueError(f"{name} must have shape ({k},), one per component; got {w.shape}.")
    if (w < 0).any():
        raise ValueError(f"{name} must be non-negative; got min {w.min():.6g}.")
    total = float(w.sum())
    if abs(total - 1.0) > WEIGHT_SUM_TOL:
        raise ValueError(
            f"{name} must sum to 1 (within {WEIGHT_SUM_TOL:g}); they sum to {total:.12g}."
        )
    return w / total


def check_positive(value, name: str, *, allow_inf: bool = False) -> float:
    """Return ``value`` as a float after checking that it is finite and > 0.

    Parameters
    ----------
    value : float
        Candidate value.
    name : str
        The argument's name, used in error messages.
    allow_inf : bool, default False
        Accept ``inf``.

    Returns
    -------
    float
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real | np.ndarray | np.generic):
        raise ValueError(f"{name} must be a positive number; got {value!r}.")
    v = float(np.asarray(value))
    if np.isnan(v) or (np.isinf(v) and not allow_inf) or v <= 0:
        raise ValueError(f"{name} must be a finite number > 0; got {v!r}.")
    return v


def check_positive_int(value, name: str, minimum: int = 1) -> int:
    """Return ``value`` as an int after checking ``value >= minimum``.

    Parameters
    ----------
    value : int
        Candidate value.
    name : str
        The argument's name, used in error messages.
    minimum : int, default 1
        The smallest value accepted.

    Returns
    -------
    int
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value}.")
    return int(value)
