"""Seed A's bad regions: components far from the data stay trapped for ``~exp(R^2/8)`` steps.

Xu, Fazel and Du (NeurIPS 2024) show regions where population gradient EM, learning
``N(0, I_d)``, is stuck for an exponential number of steps. The mechanism
(docs/reference.md section 2): a component at distance ``R`` from the truth's mean wins the
responsibility only of points beyond about ``R / 2``, a mass ``P(z > R/2) ~ e^{-R^2/8}``,
so its drift toward the data, and its escape, take about ``e^{c R^2}`` steps with
``c -> 1/8``.

Heuristic with the prefactor (two balanced components in 1-D, the other one at 0): the
far mean ``mu`` moves by ``eta E[psi (x - mu)] ~ -eta e^{-mu^2/8} / sqrt(2 pi)`` per step
(``psi`` switches on at ``x = mu / 2``, where ``x - mu ~ -mu / 2``), so the time to go from
``R`` to ``R / 2`` is ``sqrt(2 pi) / eta * int e^{m^2/8} dm ~ 4 sqrt(2 pi) e^{R^2/8} /
(eta R)``. Hence ``log T = a + R^2 / 8 - log R``: a fit of ``log T = a + c R^2`` over a
finite range of ``R`` gives ``c`` a little below 1/8, and the fit of
``log(T R) = a + c R^2`` removes the prefactor. Both are reported.

**Escape time** (the definition used everywhere here): the first step ``t >= 1`` at which
every far component ``i`` satisfies ``||mu_i(t) - m*|| <= R / 2`` (``escape_fraction``
times its starting distance ``R``), ``m*`` the truth's mean. Runs not escaped after
``max_steps`` are censored: their escape time is only known to exceed the cap; they are
reported as such and left out of the fit.

Configurations (``mode``):

``one``
    Component 0 at ``R e_1``; the other ``n - 1`` near the truth's mean (i.i.d.
    ``N(0, near_scale^2)`` offsets, seeded).
``several``
    ``n_far`` components at distance ``R`` in directions ``+e_1, -e_1, +e_2, -e_2, ...``;
    the others near the mean.
``dimension``
    Mode ``one`` in dimension ``d`` with ``R = c_scale sqrt(d)`` for each ``d`` in
    ``dims``: the escape time grows like ``exp(c_scale^2 d / 8)``, exponential in ``d``.
    The population dynamics live in the span of the means (the orthogonal directions of
    ``N(0, I_d)`` are independent noise), so only ``R`` matters, which the run confirms.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass

import numpy as np

from gmmscape._validation import check_positive, check_positive_int
from gmmscape.core.mixture import Mixture
from gmmscape.core.sources import QuadratureWarning, population
from gmmscape.dynamics.fixed import fixed_population
from gmmscape.dynamics.runner import escape_steps
from gmmscape.experiments.output import finite_json

#: Configurations of the trapped start.
MODES = ("one", "several", "dimension")
#: The heuristic exponent of the escape time, ``log T ~ R^2 / 8``.
HEURISTIC_C = 1.0 / 8.0


def trap_start(
    R: float,
    n_components: int,
    d: int,
    *,
    mode: str = "one",
    n_far: int = 1,
    near_scale: float = 0.1,
    seed: int = 0,
) -> tuple[np.ndarray, list[int]]:
    """A trapped starting configuration.

    Parameters
    ----------
    R : float
        Distance of the far component(s) from the truth's mean 0.
    n_components, d : int
    mode : {"one", "several", "dimension"}
    n_far : int, default 1
        Far components in mode ``several`` (at most ``2 d`` and less than ``n``).
    near_scale : float, default 0.1
        Standard deviation of the near components' offsets.
    seed : int, default 0

    Returns
    -------
    means : ndarray of shape (n_components, d)
    far : list of int
        Indices of the far components.
    """
    n_far = n_far if mode == "several" else 1
    if n_far >= n_components or n_far > 2 * d:
        raise ValueError(
            f"n_far must be < n_components={n_components} and <= 2 d = {2 * d}; got {n_far}."
        )
    rng = np.random.default_rng(seed)
    means = near_scale * rng.standard_normal((n_components, d))
    for i in range(n_far):
        means[i] = 0.0
        means[i, i // 2] = R * (1 if i % 2 == 0 else -1)
    return means, list(range(n_far))


def heuristic_steps(R, eta: float) -> np.ndarray:
    """The prefactor heuristic ``4 sqrt(2 pi) e^{R^2/8} / (eta R)`` (two balanced components).

    Parameters
    ----------
    R : array_like of shape (m,)
    eta : float

    Returns
    -------
    ndarray of shape (m,)
    """
    R = np.asarray(R, dtype=np.float64)
    return 4 * np.sqrt(2 * np.pi) * np.exp(R**2 / 8) / (eta * R)


def fit_escape(R, steps) -> dict:
    """Least-squares fits of ``log T = a + c R^2`` and ``log(T R) = a + c R^2``.

    Parameters
    ----------
    R : array_like of shape (m,)
    steps : array_like of shape (m,)
        Uncensored escape steps (> 0).

    Returns
    -------
    dict
        ``c``, ``c_se``, ``a``, ``a_se`` for the plain fit and ``c_corrected``,
        ``c_corrected_se``, ``a_corrected`` for the fit with the ``1/R`` prefactor, and
        ``n_points``. Standard errors from the residuals (``None`` with fewer than 3
        points).
    """
    R = np.asarray(R, dtype=np.float64)
    y = np.log(np.asarray(steps, dtype=np.float64))
    if len(R) < 2:
        raise ValueError(f"need escape times at 2 or more distances to fit; got {len(R)}.")
    out = {"n_points": len(R)}
    for name, yy in (("", y), ("_corrected", y + np.log(R))):
        x = np.stack([np.ones_like(R), R**2], axis=1)
        coef, *_ = np.linalg.lstsq(x, yy, rcond=None)
        out[f"a{name}"] = float(coef[0])
        out[f"c{name}"] = float(coef[1])
        if len(R) > 2:
            resid = yy - x @ coef
            cov = float(resid @ resid) / (len(R) - 2) * np.linalg.inv(x.T @ x)
            out[f"a{name}_se"] = float(np.sqrt(cov[0, 0]))
            out[f"c{name}_se"] = float(np.sqrt(cov[1, 1]))
        else:
            out[f"a{name}_se"] = out[f"c{name}_se"] = None
    return out


@dataclass
class TrapResult:
    """Escape times over a range of distances, with the fit (JSON via ``to_json``).

    Attributes
    ----------
    config : dict
        Every argument, including the seed.
    definition : str
        The escape-time definition used.
    R : list of float, shape (m,)
    dims : list of int, shape (m,)
        Dimension of each run (all equal to ``d`` except in mode ``dimension``).
    steps : list of int, shape (m,)
        Escape steps (the cap where censored).
    censored : list of bool, shape (m,)
    heuristic : list of float, shape (m,)
        :func:`heuristic_steps` at each ``R``.
    far_mass : list of float, shape (m,)
        Responsibility mass ``E[psi_i]`` of the (first) far component at the start.
    fit : dict or None
        :func:`fit_escape` over the uncensored runs.
    comparison : str
        The fitted ``c`` against the heuristic 1/8.
    quadrature : list of dict
        Node set of each run and the check of its mean shift at the start against the
        adaptive population source.
    seconds : float
    """

    config: dict
    definition: str
    R: list
    dims: list
    steps: list
    censored: list
    heuristic: list
    far_mass: list
    fit: dict | None
    comparison: str
    quadrature: list
    seconds: float

    def to_json(self) -> dict:
        """The result as a JSON-ready dict."""
        return finite_json(asdict(self))


DEFINITION = (
    "escape step = first t >= 1 with ||mu_i(t) - m*|| <= {frac} R for every far component i "
    "(m* = truth's mean, R = starting distance); runs past max_steps = {cap} are censored"
)


def trap(
    R_values=(3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0),
    *,
    n_components: int = 2,
    d: int = 1,
    mode: str = "one",
    n_far: int = 2,
    dims=(4, 16, 36, 64, 100),
    c_scale: float = 1.0,
    eta: float = 1.0,
    near_scale: float = 0.1,
    escape_fraction: float = 0.5,
    max_steps: int = 10**6,
    seed: int = 0,
    progress=None,
) -> TrapResult:
    """Measure escape times of gradient EM from trapped starts over a range of distances.

    Parameters
    ----------
    R_values : sequence of float, default 3..10
        Distances of the far component(s) (modes ``one`` and ``several``).
    n_components : int, default 2
        ``n >= 2``.
    d : int, default 1
        Dimension (modes ``one`` and ``several``).
    mode : {"one", "several", "dimension"}
    n_far : int, default 2
        Far components in mode ``several``.
    dims : sequence of int
        Dimensions of mode ``dimension``, with ``R = c_scale sqrt(d)``.
    c_scale : float, default 1.0
    eta : float, default 1.0
        Step size.
    near_scale : float, default 0.1
        Spread of the near components around the truth's mean.
    escape_fraction : float, default 0.5
        Escape radius as a fraction of ``R``.
    max_steps : int, default 10^6
        Step cap (censoring).
    seed : int, default 0
        Seed of the near components' offsets.
    progress : callable, optional
        ``progress(done_steps, max_steps)``.

    Returns
    -------
    TrapResult
    """
    n_components = check_positive_int(n_components, "n_components", minimum=2)
    d = check_positive_int(d, "d")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}; got {mode!r}.")
    eta = check_positive(eta, "eta")
    max_steps = check_positive_int(max_steps, "max_steps")
    near_scale = check_positive(near_scale, "near_scale")
    escape_fraction = float(escape_fraction)
    if not 0 < escape_fraction < 1:
        raise ValueError(f"escape_fraction must be in (0, 1); got {escape_fraction}.")
    if mode == "dimension":
        dims = [check_positive_int(x, "dims") for x in dims]
        c_scale = check_positive(c_scale, "c_scale")
        runs = [(c_scale * np.sqrt(x), x) for x in dims]
    else:
        R_list = [check_positive(x, "R_values") for x in np.atleast_1d(R_values)]
        runs = [(x, d) for x in R_list]
    if not runs:
        raise ValueError("R_values (or dims) must not be empty.")
    t0 = time.perf_counter()
    weights = np.full(n_components, 1.0 / n_components)
    # runs that share a dimension share one span (the far directions and the same
    # near offsets), hence one node set, built at the largest R
    steps = np.zeros(len(runs), dtype=np.int64)
    censored = np.zeros(len(runs), dtype=bool)
    far_mass = np.zeros(len(runs))
    quad = []
    for dim in sorted({x for _, x in runs}):
        idx = [i for i, (_, x) in enumerate(runs) if x == dim]
        starts = []
        for i in idx:
            means, far = trap_start(
                runs[i][0], n_components, dim, mode=mode, n_far=n_far,
                near_scale=near_scale, seed=seed,
            )  # fmt: skip
            starts.append(means)
        big = int(np.argmax([runs[i][0] for i in idx]))
        truth = Mixture(np.zeros((1, dim)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", QuadratureWarning)
            fp, info = fixed_population(truth, starts[big])
        coords = np.stack([np.asarray(fp.to_frame(m)) for m in starts])
        quad.append({"d": dim, **info, "start_check": _start_check(fp, coords[big], weights)})
        for j, i in enumerate(idx):
            far_mass[i] = float(fp.stats(coords[j]).r0[far[0]] / fp.stats(coords[j]).w)
        # one compiled while-loop per distance: a vmapped batch would run every member
        # for the longest escape time (exp(R^2/8) apart), so the runs go one by one
        for j, i in enumerate(idx):
            esc = escape_steps(
                fp, coords[j : j + 1], eta=eta, component=far,
                radius=escape_fraction * runs[i][0], max_steps=max_steps, progress=progress,
            )  # fmt: skip
            if esc.diverged.any():
                raise FloatingPointError(f"a trap run diverged with eta={eta:g}; lower eta.")
            steps[i] = esc.steps[0]
            censored[i] = esc.censored[0]
    R_arr = np.array([x for x, _ in runs])
    ok = ~censored
    fit = fit_escape(R_arr[ok], steps[ok]) if ok.sum() >= 2 else None
    return TrapResult(
        config={
            "R_values": R_arr.tolist(),
            "n_components": n_components,
            "d": d,
            "mode": mode,
            "n_far": n_far if mode == "several" else 1,
            "dims": [x for _, x in runs],
            "c_scale": c_scale,
            "eta": eta,
            "near_scale": near_scale,
            "escape_fraction": escape_fraction,
            "max_steps": max_steps,
            "seed": seed,
        },
        definition=DEFINITION.format(frac=escape_fraction, cap=max_steps),
        R=R_arr.tolist(),
        dims=[x for _, x in runs],
        steps=steps.tolist(),
        censored=censored.tolist(),
        heuristic=heuristic_steps(R_arr, eta).tolist(),
        far_mass=far_mass.tolist(),
        fit=fit,
        comparison=compare(fit, int(censored.sum())),
        quadrature=quad,
        seconds=time.perf_counter() - t0,
    )


def _start_check(fp, means_r, weights) -> dict:
    """The fixed nodes' mean shift and mass at the trap start against the adaptive source."""
    model = Mixture(np.asarray(fp.lift(means_r)), weights)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", QuadratureWarning)
        e = population(Mixture(np.zeros((1, fp.d)))).expect(model)
    shift = np.asarray(fp.mean_shift(means_r)) @ np.asarray(fp.basis).T
    mass = np.asarray(fp.stats(means_r).r0) / float(fp.stats(means_r).w)
    return {
        "max_rel_error_mean_shift": float(
            np.max(np.abs(shift - e.mean_shift) / np.maximum(np.abs(e.mean_shift), 1e-300))
        ),
        "max_rel_error_mass": float(
            np.max(np.abs(mass - e.em_weights) / np.maximum(e.em_weights, 1e-300))
        ),
    }


def compare(fit: dict | None, n_censored: int) -> str:
    """A sentence comparing the fitted exponent with the heuristic ``c = 1/8``.

    Parameters
    ----------
    fit : dict or None
        From :func:`fit_escape`.
    n_censored : int

    Returns
    -------
    str
    """
    if fit is None:
        return "Fewer than two uncensored escapes: no fit (raise max_steps or lower R)."

    def fmt(c, se):
        return f"{c:.4f}" + ("" if se is None else f" +- {se:.4f}")

    text = (
        f"log T = a + c R^2 fits c = {fmt(fit['c'], fit['c_se'])}; with the 1/R prefactor "
        f"removed (log(T R) = a + c R^2), c = {fmt(fit['c_corrected'], fit['c_corrected_se'])}. "
        f"Heuristic: c = 1/8 = 0.125, so the escape time is exponential in R^2"
    )
    se = fit["c_corrected_se"]
    if se is not None:
        z = (fit["c_corrected"] - HEURISTIC_C) / max(se, 1e-12)
        text += f" (corrected fit {z:+.1f} standard errors from 1/8)"
    text += "."
    if n_censored:
        text += f" {n_censored} run(s) censored at the step cap and left out of the fit."
    return text
