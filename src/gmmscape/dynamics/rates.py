"""Tail exponents of power laws ``y ~ C t^(-alpha)`` and the ``O(1/sqrt(t))`` bound check.

Xu, Fazel and Du (NeurIPS 2024) prove that population gradient EM drives the KL loss
``L_t`` to zero at rate ``O(1/sqrt(t))``. For two balanced components in one dimension the
rate is ``t^-2`` (docs/reference.md section 2), so the bound is an upper bound and the exponent
actually reached is a quantity to measure. :func:`fit_tail_exponent` fits it on a tail
window of a recorded trajectory, with an uncertainty that covers both the scatter of the
points about the line and the drift of the local slope across the window (a
deterministic curve such as ``t^-2 (1 + log(t)/t)`` has no scatter but is not yet a
straight line); :func:`sqrt_t_bound` measures ``sqrt(t) L_t``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

#: Default tail window: the last this-many decades of the recorded steps.
TAIL_DECADES = 1.0
#: Fewest points a fit uses; the window widens toward earlier steps to reach it.
MIN_POINTS = 6


@dataclass(frozen=True)
class PowerFit:
    """A fit ``log y = log C - alpha log t`` on a tail window.

    Attributes
    ----------
    alpha : float
        The fitted exponent (positive for a decaying power law).
    alpha_err : float
        Its uncertainty: ``sqrt(se^2 + drift^2)``.
    se : float
        Least-squares standard error of ``alpha`` from the residuals.
    drift : float
        Half the difference between the exponents fitted on the first and second
        halves of the window (in ``log t``): the systematic part.
    log_c : float
        Fitted ``log C``.
    t_min, t_max : float
        The window.
    n_points : int
        Points in the window.
    """

    alpha: float
    alpha_err: float
    se: float
    drift: float
    log_c: float
    t_min: float
    t_max: float
    n_points: int

    def to_dict(self) -> dict:
        """The fit as a JSON-ready dict."""
        return {key: (int(v) if key == "n_points" else float(v)) for key, v in asdict(self).items()}


def _ols(x, y):
    """Slope, intercept and the slope's standard error of ``y = a + b x``."""
    a_mat = np.stack([np.ones_like(x), x], axis=1)
    coef, *_ = np.linalg.lstsq(a_mat, y, rcond=None)
    resid = y - a_mat @ coef
    dof = max(len(x) - 2, 1)
    s2 = float(resid @ resid) / dof
    sxx = float(np.sum((x - x.mean()) ** 2))
    se = np.sqrt(s2 / sxx) if sxx > 0 else np.inf
    return float(coef[1]), float(coef[0]), float(se)


def fit_tail_exponent(
    t,
    y,
    *,
    window: tuple[float, float] | None = None,
    decades: float = TAIL_DECADES,
    min_points: int = MIN_POINTS,
) -> PowerFit:
    """Fit ``y ~ C t^(-alpha)`` on the tail of a recorded trajectory.

    Parameters
    ----------
    t : array_like of shape (T,)
        Steps (points with ``t <= 0`` are ignored).
    y : array_like of shape (T,)
        Values (points with ``y <= 0`` or non-finite are ignored).
    window : (float, float), optional
        Use exactly the points with ``t_min <= t <= t_max``.
    decades : float, default 1.0
        Without ``window``: the points in the last ``decades`` decades of ``t``, widened
        toward earlier steps until there are ``min_points`` of them.
    min_points : int, default 6

    Returns
    -------
    PowerFit

    Raises
    ------
    ValueError
        If fewer than ``min_points`` usable points (or 4 in an explicit window) remain.
    """
    t = np.asarray(t, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if t.shape != y.shape or t.ndim != 1:
        raise ValueError(f"t and y must be 1-D of equal length; got {t.shape} and {y.shape}.")
    ok = (t > 0) & np.isfinite(y) & (y > 0)
    t, y = t[ok], y[ok]
    if window is not None:
        sel = (t >= window[0]) & (t <= window[1])
        if sel.sum() < 4:
            raise ValueError(f"window {window} holds {int(sel.sum())} usable points; need 4.")
    else:
        if len(t) < min_points:
            raise ValueError(f"need at least {min_points} positive points to fit; got {len(t)}.")
        sel = t >= t.max() / 10**decades
        if sel.sum() < min_points:
            sel = np.zeros_like(sel)
            sel[np.argsort(t)[-min_points:]] = True
    x, v = np.log(t[sel]), np.log(y[sel])
    slope, intercept, se = _ols(x, v)
    mid = 0.5 * (x.min() + x.max())
    lo, hi = x <= mid, x >= mid
    drift = 0.0
    if lo.sum() >= 3 and hi.sum() >= 3:
        drift = 0.5 * abs(_ols(x[lo], v[lo])[0] - _ols(x[hi], v[hi])[0])
    return PowerFit(
        alpha=-slope,
        alpha_err=float(np.hypot(se, drift)),
        se=se,
        drift=float(drift),
        log_c=intercept,
        t_min=float(np.exp(x.min())),
        t_max=float(np.exp(x.max())),
        n_points=int(sel.sum()),
    )


def sqrt_t_bound(t, loss, *, tail_from: float | None = None) -> dict:
    """Measure ``sqrt(t) L_t``, the quantity that the ``O(1/sqrt(t))`` bound keeps finite.

    Parameters
    ----------
    t : array_like of int, shape (T,)
        Recorded steps (``t = 0`` is skipped).
    loss : array_like of shape (T,)
        ``L_t`` at those steps.
    tail_from : float, optional
        Step from which "eventually" is judged (default: the last decade of ``t``).

    Returns
    -------
    dict
        ``max_sqrt_t_loss`` (max over the recorded ``t >= 1`` of ``sqrt(t) L_t``: the
        smallest constant ``C`` with ``L_t <= C / sqrt(t)`` on those steps),
        ``argmax_step``, ``nonincreasing_from`` (the first recorded step after which
        ``sqrt(t) L_t`` never increases on the recorded steps), ``tail_from`` and
        ``eventually_nonincreasing`` (whether ``nonincreasing_from <= tail_from``).
        Monotonicity is judged on the recorded steps only.
    """
    t = np.asarray(t, dtype=np.float64)
    loss = np.asarray(loss, dtype=np.float64)
    keep = (t >= 1) & np.isfinite(loss)
    t, loss = t[keep], loss[keep]
    if len(t) < 2:
        raise ValueError("need at least two recorded steps t >= 1.")
    s = np.sqrt(t) * loss
    i = int(np.argmax(s))
    # last index where s increases; non-increasing from the point after it
    ups = np.nonzero(np.diff(s) > 0)[0]
    start = 0 if len(ups) == 0 else int(ups[-1]) + 1
    tail = float(t.max() / 10**TAIL_DECADES) if tail_from is None else float(tail_from)
    return {
        "max_sqrt_t_loss": float(s[i]),
        "argmax_step": int(t[i]),
        "nonincreasing_from": int(t[start]),
        "tail_from": tail,
        "eventually_nonincreasing": bool(t[start] <= tail),
    }
