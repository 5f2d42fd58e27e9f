"""Seed A: over-parameterized gradient EM learning ``N(0, I_d)``, its rate, measured.

Xu, Fazel and Du, "Toward Global Convergence of Gradient EM for Over-Parameterized
Gaussian Mixture Models" (NeurIPS 2024, arXiv 2407.00490) fit a model with ``n >= 2``
components, known fixed weights and identity covariance to a single Gaussian
``N(0, I_d)`` by population gradient EM. They prove global convergence of the KL loss at
rate ``O(1/sqrt(t))``, note that the convergence is sub-linear and not monotone in the
distance of the means to the truth, and show regions that trap gradient EM for
exponentially many steps (:mod:`gmmscape.experiments.trap`).

:func:`overparam` runs population gradient EM (or EM, or gradient EM on streamed samples)
from one or many starts in one compiled, vmapped loop, records the loss, the distances
and the gradient norm on log-spaced steps, counts increases of the distance, fits the
tail exponent of the loss and of the distances, and measures ``sqrt(t) L_t`` against the
proven bound. :func:`overparam_study` draws the paper's three panels (loss for
``n = 2, 5, 10``; distance; mixing weights); :func:`sample_study` measures the final
error of sample gradient EM against the sample size ``N``; :func:`quick_study` is the
short version for ``gmmscape demo``.

Derived facts used to check the code (tests/test_overparam.py): for ``n = 2`` balanced
components ``mu_1 = -mu_2 = theta`` in 1-D, ``psi_1(x) = sigmoid(2 theta x)`` and
Stein's identity give ``E[psi_1 (x - theta)] = -theta^3 / 2 + O(theta^5)``, so gradient EM
with step ``eta`` is ``theta <- theta - (eta / 2) theta^3``: ``eta t theta_t^2 -> 1``,
``theta_t ~ (eta t)^(-1/2)`` and ``L_t = theta_t^4 / 4 + O(theta^6) ~ (2 eta t)^(-2)``.
(docs/reference.md writes ``theta - eta theta^3``; the factor 1/2 is the weight ``pi_i = 1/2``
in ``E[psi_i (x - mu_i)]``.)
"""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import jax
import numpy as np

from gmmscape._validation import (
    as_float_array,
    check_positive,
    check_positive_int,
    check_weights,
)
from gmmscape.core.mixture import Mixture
from gmmscape.core.sources import QuadratureWarning, _stream_chunk, population
from gmmscape.dynamics import rates
from gmmscape.dynamics.fixed import fixed_population
from gmmscape.dynamics.runner import Trajectory, run_population, run_stream
from gmmscape.experiments.output import (
    count_log_ticks,
    finite_json,
    integer_ticks,
    legend_below,
    save_figure,
)
from gmmscape.experiments.params import OverparamParams, TrapParams
from gmmscape.experiments.registry import ExperimentType
from gmmscape.experiments.trap import fit_escape, trap

#: Node budget of the fixed sparse grid used for spans of dimension 4 and more.
SPARSE_NODE_BUDGET = 2**15
#: Sources that :func:`overparam` knows.
SOURCES = ("population", "sample", "stream")


class DivergenceError(FloatingPointError):
    """A run left the divergence ball or became non-finite (step size too large).

    Attributes
    ----------
    step : int
        The first step whose result diverged.
    restart : int
        The restart it happened in.
    """

    def __init__(self, message: str, step: int, restart: int):
        super().__init__(message)
        self.step = step
        self.restart = restart


@dataclass
class OverparamResult:
    """One configuration's runs, fits and bound checks (JSON-serializable via ``to_json``).

    Attributes
    ----------
    config : dict
        Every argument of the run, including the seed and the starting means (B, k, d).
    quadrature : dict
        Rule, level, nodes and ``r`` of the fixed node set; ``end_check``: the relative
        difference between the fixed-node KL and the adaptive population source at the
        first restart's end point (population runs, ``r <= 5``); ``level_check`` (sparse
        grids, ``r >= 4``): the relative change of the KL from the grid's level to the
        next, at the first restart's start and end, an estimate of the KL's error.
    steps : list of int, length T
    kl, max_dist, sq_dist, grad_norm : list of list of float, shape (B, T)
        Recorded ``L_t``, ``max_i ||mu_i||``, ``sum_i pi_i ||mu_i||^2`` and the gradient
        norm (``None`` where not available: sample runs in a span smaller than ``d``).
    nonmonotone : dict
        Per restart: ``n_up_max`` / ``largest_up_max`` (increases of ``max_i ||mu_i||``)
        and ``n_up_sq`` / ``largest_up_sq`` (of ``sum_i pi_i ||mu_i||^2``), counted over
        every step.
    fits : dict
        Per restart, tail fits (:class:`gmmscape.dynamics.rates.PowerFit` as dicts) of
        ``loss``, ``max_dist`` and ``sq_dist``.
    bound : list of dict
        Per restart, :func:`gmmscape.dynamics.rates.sqrt_t_bound` of the loss.
    summary : dict
        Means and spreads over restarts of the fitted exponents and the bound constant.
    explanation : str
        How the measured exponent compares with the proven ``O(1/sqrt(t))`` bound.
    final_means : list, shape (B, k, d)
    seconds : float
    """

    config: dict
    quadrature: dict
    steps: list
    kl: list
    max_dist: list
    sq_dist: list
    grad_norm: list
    nonmonotone: dict
    fits: dict
    bound: list
    summary: dict
    explanation: str
    final_means: list
    seconds: float
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        """The result as a JSON-ready dict (NaN becomes ``None``)."""
        return finite_json(asdict(self))


def random_starts(n_components: int, d: int, restarts: int, scale: float, seed: int):
    """Starting means drawn i.i.d. from ``N(0, scale^2)``, seeded.

    Parameters
    ----------
    n_components, d, restarts : int
    scale : float
    seed : int

    Returns
    -------
    ndarray of shape (restarts, n_components, d)
    """
    rng = np.random.default_rng(seed)
    return scale * rng.standard_normal((restarts, n_components, d))


def span_coordinates(means: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-restart orthonormal bases of the span of the means (the truth's mean is 0).

    Parameters
    ----------
    means : ndarray of shape (B, k, d)

    Returns
    -------
    coords : ndarray of shape (B, k, r)
    bases : ndarray of shape (B, d, r)
        Orthonormal columns; ``means[b] = coords[b] @ bases[b].T``.
    r : int
        The largest rank over restarts (at least 1); smaller spans are padded with
        further orthonormal directions, which changes nothing in the dynamics.
    """
    _, s, vt = np.linalg.svd(means, full_matrices=True)
    scale = np.maximum(1.0, s[:, :1])
    r = max(1, int(np.max(np.sum(s > 1e-12 * scale, axis=1))))
    bases = np.transpose(vt[:, :r, :], (0, 2, 1))
    coords = np.einsum("bkd,bdr->bkr", means, bases)
    return coords, bases, r


def _validate(n_components, d, weights, eta, steps, means0, method, source):
    n_components = check_positive_int(n_components, "n_components", minimum=2)
    d = check_positive_int(d, "d")
    steps = check_positive_int(steps, "steps")
    if method not in ("gradient_em", "em"):
        raise ValueError(f"method must be 'gradient_em' or 'em'; got {method!r}.")
    eta = 1.0 if method == "em" and eta is None else check_positive(eta, "eta")
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}; got {source!r}.")
    w = (
        np.full(n_components, 1.0 / n_components)
        if weights is None
        else check_weights(weights, n_components, "weights")
    )
    if means0 is not None:
        m = np.asarray(means0, dtype=np.float64) if np.ndim(means0) == 3 else None
        means0 = m if m is not None else as_float_array(means0, "means0", 2)[None]
        if not np.isfinite(means0).all():
            raise ValueError("means0 holds non-finite values (NaN or inf).")
        if means0.shape[1:] != (n_components, d):
            raise ValueError(
                f"means0 must have shape ({n_components}, {d}) or (B, {n_components}, {d}); "
                f"got {means0.shape}."
            )
    return n_components, d, w, eta, steps, means0


def _node_set(truth, start, weights, r, rtol, rule, level):
    """A fixed node set for the starts: adaptive for r <= 3, a budgeted sparse grid above."""
    if rule is None and r >= 4:
        from gmmscape.core import quadrature

        rule = "sparse-grid"
        level = max(
            lv for lv in range(1, 12) if quadrature.node_count(rule, r, lv) <= SPARSE_NODE_BUDGET
        )
    kw = {"rule": rule, "level": level} if rule is not None else {}
    if rtol is not None:
        kw["rtol"] = rtol
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", QuadratureWarning)
        return fixed_population(truth, start, model_weights=weights, **kw)


def overparam(
    n_components: int = 2,
    d: int = 1,
    *,
    weights=None,
    eta: float | None = 1.0,
    steps: int = 10_000,
    means0=None,
    init_scale: float = 1.0,
    restarts: int = 1,
    seed: int = 0,
    method: str = "gradient_em",
    source: str = "population",
    n_samples: int | None = None,
    record_points: int = 100,
    rtol: float | None = None,
    rule: str | None = None,
    level: int | None = None,
    check: bool = True,
    progress=None,
) -> OverparamResult:
    """Run gradient EM (or EM) for an ``n``-component model learning ``N(0, I_d)``.

    Parameters
    ----------
    n_components : int, default 2
        ``n >= 2`` components.
    d : int, default 1
        Dimension.
    weights : array_like of shape (n,), optional
        Known fixed mixing weights, summing to 1 (uniform by default).
    eta : float, default 1.0
        Step size of gradient EM (> 0); unused by ``method="em"``.
    steps : int, default 10000
        Number of steps (up to 10^6 and beyond).
    means0 : array_like of shape (n, d) or (B, n, d), optional
        Starting means; default ``restarts`` draws from ``N(0, init_scale^2 I)``.
    init_scale : float, default 1.0
    restarts : int, default 1
        Number of random starts (ignored when ``means0`` is given); all run as one batch.
    seed : int, default 0
        Seed of the random starts and of the data (sample sources).
    method : {"gradient_em", "em"}
    source : {"population", "sample", "stream"}
        ``population``: exact expectations (fixed quadrature nodes in the span of the
        means); ``sample``: a fixed dataset of ``n_samples`` points (the stream of seed
        ``seed + b`` for restart ``b``, redrawn each step, never held in memory);
        ``stream``: a fresh batch of ``n_samples`` points every step.
    n_samples : int, optional
        Points per step for the sample sources.
    record_points : int, default 100
        Roughly how many log-spaced steps to record.
    rtol : float, optional
        Tolerance of the node choice (``r <= 3``; default 1e-10).
    rule, level : optional
        A fixed quadrature rule and level (default: adaptive for ``r <= 3``, the largest
        sparse grid with at most :data:`SPARSE_NODE_BUDGET` nodes for ``r >= 4``).
    check : bool, default True
        Compare the fixed-node KL with the adaptive population source at the first
        restart's end point (population runs with ``r <= 5``).
    progress : callable, optional
        ``progress(done_steps, total_steps)``.

    Returns
    -------
    OverparamResult

    Raises
    ------
    ValueError
        For bad arguments (the message names the argument).
    DivergenceError
        If a restart diverges (its means leave a ball of radius
        ``100 + 10 max ||mu(0)||`` or turn non-finite); the message gives the step.
    """
    n_components, d, w, eta, steps, means0 = _validate(
        n_components, d, weights, eta, steps, means0, method, source
    )
    init_scale = check_positive(init_scale, "init_scale")
    restarts = check_positive_int(restarts, "restarts")
    record_points = check_positive_int(record_points, "record_points", minimum=8)
    if means0 is None:
        means0 = random_starts(n_components, d, restarts, init_scale, seed)
    t0 = time.perf_counter()
    truth = Mixture(np.zeros((1, d)))
    coords, bases, r = span_coordinates(means0)
    spread = [np.ptp(m, axis=0).max() + np.abs(m).max() for m in means0]
    ranks = np.linalg.matrix_rank(means0, tol=1e-9)
    b_star = int(np.argmax(np.where(np.atleast_1d(ranks) == r, spread, -np.inf)))
    quad: dict = {}
    fp = None
    if source == "population" or (source != "population" and r == d and d <= 3):
        fp, info = _node_set(truth, means0[b_star], w, r, rtol, rule, level)
        if fp.r != r:
            raise RuntimeError(f"node set has r={fp.r}, expected {r}.")
        quad = {k: (float(v) if isinstance(v, np.floating) else v) for k, v in info.items()}
    if source == "population":
        traj = run_population(
            fp, coords, steps=steps, eta=eta, method=method, record_points=record_points,
            progress=progress,
        )  # fmt: skip
        final = np.einsum("bkr,bdr->bkd", traj.final_means, bases)
    else:
        if n_samples is None:
            raise ValueError(f"source={source!r} needs n_samples (points per step).")
        n_samples = check_positive_int(n_samples, "n_samples")
        # a frame covering all of R^d maps ambient means by a rotation: KL is unchanged
        fp_full = fp if fp is not None and r == d else None
        traj = run_stream(
            truth, means0, n=n_samples, seeds=seed + np.arange(means0.shape[0]), steps=steps,
            eta=eta, method=method, fresh=(source == "stream"), weights=w, fp=fp_full,
            record_points=record_points, progress=progress,
        )  # fmt: skip
        final = traj.final_means
    _raise_if_diverged(traj, eta)
    if check and source == "population" and r <= 5:
        quad["end_check"] = _end_check(fp, traj.final_means[0], w)
    if check and source == "population" and quad.get("rule") == "sparse-grid":
        quad["level_check"] = {
            "start": _level_check(fp, quad["level"], coords[0]),
            "end": _level_check(fp, quad["level"], traj.final_means[0]),
        }
    result = _analyse(traj, w)
    config = {
        "n_components": n_components,
        "d": d,
        "weights": w.tolist(),
        "eta": eta,
        "steps": steps,
        "init_scale": init_scale,
        "restarts": int(means0.shape[0]),
        "seed": seed,
        "method": method,
        "source": source,
        "n_samples": n_samples,
        "record_points": record_points,
        "r": r,
        "means0": means0.tolist(),
        "divergence_radius": traj.blowup,
    }
    return OverparamResult(
        config=config,
        quadrature=finite_json(quad),
        steps=traj.steps.tolist(),
        kl=finite_json(traj.kl),
        max_dist=finite_json(traj.max_dist),
        sq_dist=finite_json(traj.sq_dist),
        grad_norm=finite_json(traj.grad_norm),
        nonmonotone={
            "n_up_max": traj.n_up_max.tolist(),
            "largest_up_max": traj.largest_up_max.tolist(),
            "n_up_sq": traj.n_up_sq.tolist(),
            "largest_up_sq": traj.largest_up_sq.tolist(),
        },
        fits=finite_json(result["fits"]),
        bound=finite_json(result["bound"]),
        summary=finite_json(result["summary"]),
        explanation=result["explanation"],
        final_means=final.tolist(),
        seconds=time.perf_counter() - t0,
        extra={"run_seconds": traj.seconds},
    )


def _end_check(fp, means_r, weights) -> dict:
    """Relative difference of the fixed-node KL and the adaptive source at ``means_r``."""
    model = Mixture(np.asarray(fp.lift(means_r)), weights)
    rtol = 1e-10 if fp.r <= 3 else 1e-6
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", QuadratureWarning)
        e = population(Mixture(np.zeros((1, fp.d))), rtol=rtol).expect(model)
    kl_fixed = float(fp.kl(means_r))
    return {
        "kl_fixed": kl_fixed,
        "kl_adaptive": float(e.kl),
        "relative_difference": abs(kl_fixed - e.kl) / max(abs(e.kl), 1e-300),
        "adaptive_error_estimate": float(e.quadrature.max_relative_error),
    }


def _level_check(fp, level: int, means_r) -> float:
    """Relative KL change from the sparse grid's ``level`` to ``level + 1`` at ``means_r``.

    Sparse grids converge fast for these analytic integrands, so the change estimates the
    error of the coarser level (the one used).
    """
    import dataclasses

    import jax.numpy as jnp

    from gmmscape.dynamics.fixed import standard_nodes

    z, wz = standard_nodes("sparse-grid", fp.r, level + 1)
    finer = dataclasses.replace(fp, z=jnp.asarray(z), wz=jnp.asarray(wz))
    a, b = float(fp.kl(means_r)), float(finer.kl(means_r))
    return abs(a - b) / max(abs(b), 1e-300)


def _raise_if_diverged(traj: Trajectory, eta: float) -> None:
    if traj.diverged.any():
        b = int(np.argmax(traj.diverged))
        step = int(traj.diverged_step[b])
        raise DivergenceError(
            f"gradient EM diverged at step {step} (restart {b}) with eta={eta:g}: the means "
            f"left the ball of radius {traj.blowup:g} around the truth or became non-finite. "
            "Lower eta.",
            step=step,
            restart=b,
        )


def _analyse(traj: Trajectory, weights) -> dict:
    """Tail fits, the sqrt(t) bound and the explanation, per restart and summarized."""
    t = traj.steps
    fits: dict = {"loss": [], "max_dist": [], "sq_dist": []}
    bound = []
    for b in range(traj.kl.shape[0]):
        for key, arr in (("loss", traj.kl), ("max_dist", traj.max_dist), ("sq_dist", traj.sq_dist)):
            try:
                fits[key].append(rates.fit_tail_exponent(t, arr[b]).to_dict())
            except ValueError:
                fits[key].append(None)
        try:
            bound.append(rates.sqrt_t_bound(t, traj.kl[b]))
        except ValueError:
            bound.append(None)
    summary: dict = {}
    for key in fits:
        alphas = np.array([f["alpha"] for f in fits[key] if f is not None])
        errs = np.array([f["alpha_err"] for f in fits[key] if f is not None])
        if len(alphas):
            summary[f"alpha_{key}"] = float(np.mean(alphas))
            summary[f"alpha_{key}_spread"] = float(np.std(alphas))
            summary[f"alpha_{key}_err"] = float(np.sqrt(np.mean(errs**2)))
    bounds = [bd for bd in bound if bd is not None]
    if bounds:
        summary["max_sqrt_t_loss"] = float(max(bd["max_sqrt_t_loss"] for bd in bounds))
        summary["eventually_nonincreasing"] = all(bd["eventually_nonincreasing"] for bd in bounds)
    summary["final_kl_median"] = float(np.nanmedian(traj.kl[:, -1]))
    summary["final_max_dist_median"] = float(np.median(traj.max_dist[:, -1]))
    summary["nonmonotone_runs"] = int(np.sum(traj.n_up_max > 0))
    return {"fits": fits, "bound": bound, "summary": summary, "explanation": explain(summary)}


def explain(summary: dict) -> str:
    """A sentence comparing the measured loss exponent with the proven ``t^(-1/2)``.

    Parameters
    ----------
    summary : dict
        As in :attr:`OverparamResult.summary`.

    Returns
    -------
    str
    """
    if "alpha_loss" not in summary:
        return "No loss exponent could be fitted (no exact loss was recorded)."
    a, err = summary["alpha_loss"], max(summary["alpha_loss_err"], summary["alpha_loss_spread"])
    text = f"Measured tail exponent of the loss: alpha = {a:.3f} +- {err:.3f} (L_t ~ t^-alpha). "
    if a - 2 * err > 0.5:
        text += (
            "The proven bound L_t = O(1/sqrt(t)) is alpha = 1/2: the loss decays faster, "
            "so the bound holds with room to spare and is not tight here (for n = 2 "
            "balanced components the derived rate is t^-2). "
        )
    elif a + 2 * err < 0.5:
        text += (
            "This is slower than the proven O(1/sqrt(t)) over the fitted window: the run "
            "has not reached its asymptotic regime, or the bound's constant is large. "
        )
    else:
        text += "This is consistent with the proven exponent 1/2. "
    if "max_sqrt_t_loss" in summary:
        text += (
            f"max_t sqrt(t) L_t = {summary['max_sqrt_t_loss']:.3g}: the smallest constant C "
            f"with L_t <= C / sqrt(t) on the recorded steps; sqrt(t) L_t is "
            + ("" if summary.get("eventually_nonincreasing") else "not ")
            + "non-increasing over the last decade of steps."
        )
    return text


# -- the paper's three panels ---------------------------------------------------------

#: Mixing weights of the third panel (n = 2).
DEFAULT_WEIGHT_SETS = ((0.5, 0.5), (0.3, 0.7), (0.1, 0.9))


@dataclass
class StudyResult:
    """Runs behind the paper's three panels (JSON via ``to_json``).

    Attributes
    ----------
    config : dict
    runs : dict of str to dict
        ``"n=<n>"`` -> :meth:`OverparamResult.to_json` (uniform weights).
    weight_runs : dict of str to dict
        ``"w=<w1>,<w2>,..."`` -> the same for each weight set.
    table : list of dict
        One row per run: label, fitted exponents with uncertainties, the bound constant.
    seconds : float
    """

    config: dict
    runs: dict
    weight_runs: dict
    table: list
    seconds: float


def _row(label: str, res: OverparamResult) -> dict:
    s = res.summary
    return {
        "label": label,
        "alpha_loss": s.get("alpha_loss"),
        "alpha_loss_err": max(s.get("alpha_loss_err") or 0.0, s.get("alpha_loss_spread") or 0.0),
        "alpha_max_dist": s.get("alpha_max_dist"),
        "alpha_max_dist_err": max(
            s.get("alpha_max_dist_err") or 0.0, s.get("alpha_max_dist_spread") or 0.0
        ),
        "max_sqrt_t_loss": s.get("max_sqrt_t_loss"),
        "eventually_nonincreasing": s.get("eventually_nonincreasing"),
        "final_kl_median": s.get("final_kl_median"),
        "nonmonotone_runs": s.get("nonmonotone_runs"),
        "restarts": res.config["restarts"],
        "explanation": res.explanation,
    }


def overparam_study(
    ns=(2, 5, 10),
    d: int = 1,
    *,
    steps: int = 10**5,
    restarts: int = 4,
    eta: float = 1.0,
    init_scale: float = 1.0,
    weight_sets=DEFAULT_WEIGHT_SETS,
    seed: int = 0,
    progress=None,
) -> StudyResult:
    """Population gradient EM for each ``n`` in ``ns`` and for each weight set.

    Parameters
    ----------
    ns : sequence of int, default (2, 5, 10)
    d : int, default 1
    steps : int, default 10^5
    restarts : int, default 4
        Random starts per configuration (one vmapped batch each).
    eta, init_scale, seed
        As in :func:`overparam`.
    weight_sets : sequence of sequences of float
        Mixing weights of the third panel; the number of components is each set's length.
    progress : callable, optional
        ``progress(label, done_steps, total_steps)``.

    Returns
    -------
    StudyResult
    """
    t0 = time.perf_counter()
    runs, wruns, table = {}, {}, []
    jobs = [(f"n={n}", int(n), None) for n in ns]
    jobs += [("w=" + ",".join(f"{x:g}" for x in ws), len(ws), list(ws)) for ws in weight_sets]
    for label, n, ws in jobs:
        cb = None if progress is None else (lambda a, b, lab=label: progress(lab, a, b))
        res = overparam(
            n, d, weights=ws, eta=eta, steps=steps, init_scale=init_scale, restarts=restarts,
            seed=seed, progress=cb,
        )  # fmt: skip
        (wruns if ws is not None else runs)[label] = res.to_json()
        table.append(_row(label, res))
    return StudyResult(
        config={
            "ns": [int(n) for n in ns],
            "d": d,
            "steps": steps,
            "restarts": restarts,
            "eta": eta,
            "init_scale": init_scale,
            "weight_sets": [list(w) for w in weight_sets],
            "seed": seed,
        },
        runs=runs,
        weight_runs=wruns,
        table=table,
        seconds=time.perf_counter() - t0,
    )


def _median_curve(res: dict, key: str) -> np.ndarray:
    arr = np.array(res[key], dtype=float)
    return np.nanmedian(arr, axis=0)


#: The tail-fit lines are drawn at this fraction of the fitted curve, so that they run
#: beside the measured curve instead of hiding under it (the figures' titles say so).
FIT_LINE_SHIFT = 0.3


def _fit_line(ax, t, fit: dict | None, color, scale: float = FIT_LINE_SHIFT):
    if not fit:
        return
    tt = np.geomspace(fit["t_min"], fit["t_max"], 20)
    y = scale * np.exp(fit["log_c"]) * tt ** (-fit["alpha"])
    ax.plot(tt, y, "--", color="k", lw=1.2, zorder=3)


def _median_fit(res: dict, key: str):
    t = np.array(res["steps"], dtype=float)
    y = _median_curve(res, key)
    try:
        return rates.fit_tail_exponent(t, y).to_dict()
    except ValueError:
        return None


def plot_study(result: StudyResult, out: Path, stem: str = "overparam") -> list[Path]:
    """Draw the three panels (loss vs steps for each n, distance, weights) as PNG and SVG.

    Parameters
    ----------
    result : StudyResult
    out : Path
        Folder for ``<stem>.png`` and ``<stem>.svg``.
    stem : str, default "overparam"

    Returns
    -------
    list of Path
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    ax1, ax2, ax3 = axes
    for i, (label, res) in enumerate(result.runs.items()):
        c = colors[i % len(colors)]
        t = np.array(res["steps"], dtype=float)
        y = _median_curve(res, "kl")
        fit = _median_fit(res, "kl")
        lab = label + (f": slope -{fit['alpha']:.2f}" if fit else "")
        ax1.loglog(t[1:], y[1:], color=c, label=lab)
        _fit_line(ax1, t, fit, c)
        ax2.loglog(
            t[1:], _median_curve(res, "max_dist")[1:], color=c, label=f"{label} max ||mu_i||"
        )
        ax2.loglog(t[1:], _median_curve(res, "sq_dist")[1:], ":", color=c,
                   label=f"{label} sum pi_i ||mu_i||^2")  # fmt: skip
    consts = [r["max_sqrt_t_loss"] for r in result.table if r.get("max_sqrt_t_loss")]
    if consts:
        tt = np.array([1.0, float(result.config["steps"])])
        c = max(consts)
        ax1.loglog(tt, c / np.sqrt(tt), "k:", label=f"{c:.2g} / sqrt(t): the O(1/sqrt(t)) bound")
    ax1.set_title("Loss vs iterations, median of restarts\n(dashed: tail fit x 0.3)")
    ax1.set_xlabel("iteration t (gradient EM steps)")
    ax1.set_ylabel("KL loss L_t (nats)")
    ax2.set_title("Parametric distance to the truth")
    ax2.set_xlabel("iteration t (gradient EM steps)")
    ax2.set_ylabel("distance of the means to the truth\n(solid: data units; dotted: squared units)")
    for i, (label, res) in enumerate(result.weight_runs.items()):
        c = colors[i % len(colors)]
        t = np.array(res["steps"], dtype=float)
        fit = _median_fit(res, "kl")
        lab = label + (f": slope -{fit['alpha']:.2f}" if fit else "")
        ax3.loglog(t[1:], _median_curve(res, "kl")[1:], color=c, label=lab)
        _fit_line(ax3, t, fit, c)
    ax3.set_title("Effect of the mixing weights\n(dashed: tail fit x 0.3)")
    ax3.set_xlabel("iteration t (gradient EM steps)")
    ax3.set_ylabel("KL loss L_t (nats)")
    legend_below(ax1, ncol=1)
    legend_below(ax2, ncol=2, fontsize=7)
    legend_below(ax3, ncol=1)
    fig.tight_layout()
    return save_figure(fig, Path(out) / stem)


# -- finite samples -------------------------------------------------------------------


@dataclass
class SampleStudyResult:
    """Final parametric error of sample gradient EM against the sample size.

    Attributes
    ----------
    config : dict
    sizes : list of int, shape (m,)
    steps : list of int, shape (m,)
        Steps run at each size: ``ceil(steps_factor sqrt(N) / eta)``.
    errors : list of list of float, shape (m, seeds)
        Final ``max_i ||mu_i||`` (the truth's mean is 0) per size and seed.
    final_change : list of list of float, shape (m, seeds)
        Relative change of ``max_i ||mu_i||`` over the last recorded tenth of the run
        (small: the run has settled).
    slope, slope_se : float
        Least-squares fit of ``log RMS_error(N) = a + slope log N`` (RMS over seeds) and
        its standard error from 400 bootstrap resamples of the seeds at each size.
    theory_slope : float
        -1/4, the two-component rate ``(d/N)^(1/4)`` (Dwivedi et al., AoS 2020).
    comparison : str
    seconds : list of float, shape (m,)
        Wall time per size.
    predicted : list of list of float, shape (m, seeds), or None
        For two components: each dataset's leading-order sample optimum error
        (:func:`predicted_error`), an independent check of where the run ended.
    theory_rms : list of float, shape (m,), or None
        For two components in 1-D: ``(pi N)^(-1/4)``, the leading-order RMS error.
    """

    config: dict
    sizes: list
    steps: list
    errors: list
    final_change: list
    slope: float
    slope_se: float
    theory_slope: float
    comparison: str
    seconds: list
    predicted: list | None = None
    theory_rms: list | None = None


@partial(jax.jit, static_argnames=("n", "chunk"))
def _chunk_points(key, i, n, truth, chunk):
    return _stream_chunk(key, i, n, truth, chunk)


def dataset_moments(n: int, seed: int, *, d: int = 1, chunk_size: int = 2**16) -> dict:
    """The moments of one stream dataset that fix its two-component sample optimum.

    For ``n`` points from ``N(0, I_d)`` (the dataset :func:`sample_study` uses for
    ``seed``), the sample likelihood of means ``xbar +- theta v`` is, to fourth order in
    ``theta``, ``theta^2 (lambda - 1) / 2 - theta^4 m4 / 12`` plus a constant, where
    ``lambda`` is the largest eigenvalue of the sample covariance, ``v`` its eigenvector
    and ``m4`` the sample's fourth moment along ``v``. Its maximizer is
    ``theta^2 = 3 max(0, lambda - 1) / m4``: the means split when ``lambda > 1`` and
    merge otherwise, and the error ``max_i ||mu_i||`` of that optimum is
    ``sqrt(||xbar||^2 + theta^2 + 2 theta |xbar . v|)``. Since ``lambda - 1 ~ N(0, 2/n)``
    in 1-D, ``E[theta^2] ~ 1 / sqrt(pi n)``: an RMS error of ``(pi n)^(-1/4)``.

    Parameters
    ----------
    n : int
        Points in the dataset.
    seed : int
        Its stream seed.
    d : int, default 1
    chunk_size : int, default 65536
        As passed to the run (the stream's chunks define its points).

    Returns
    -------
    dict
        ``mean`` (list, shape (d,)), ``lam``, ``m4``, ``split`` (``lam > 1``) and
        ``predicted`` (the optimum's error).
    """
    truth = Mixture(np.zeros((1, d)))
    chunk = min(chunk_size, n)
    key = jax.random.key(int(seed))
    chunks = range(-(-n // chunk))
    s1, s2 = np.zeros(d), np.zeros((d, d))
    for i in chunks:
        x, w = (np.asarray(a) for a in _chunk_points(key, i, n, truth, chunk))
        s1 += w @ x
        s2 += (x * w[:, None]).T @ x
    mean = s1 / n
    lam, vecs = np.linalg.eigh(s2 / n - np.outer(mean, mean))
    v = vecs[:, -1]
    m4 = 0.0
    for i in chunks:
        x, w = (np.asarray(a) for a in _chunk_points(key, i, n, truth, chunk))
        m4 += w @ (((x - mean) @ v) ** 4)
    m4 /= n
    theta = np.sqrt(3.0 * max(0.0, lam[-1] - 1.0) / m4)
    err = np.sqrt(mean @ mean + theta**2 + 2 * theta * abs(mean @ v))
    return {
        "mean": mean.tolist(),
        "lam": float(lam[-1]),
        "m4": float(m4),
        "split": bool(lam[-1] > 1.0),
        "predicted": float(err),
    }


def predicted_error(n: int, seed: int, *, d: int = 1, chunk_size: int = 2**16) -> float:
    """Leading-order final error of the balanced two-component fit on one stream dataset.

    ``dataset_moments(n, seed, d=d, chunk_size=chunk_size)["predicted"]``; see
    :func:`dataset_moments`.

    Returns
    -------
    float
    """
    return dataset_moments(n, seed, d=d, chunk_size=chunk_size)["predicted"]


def sample_study(
    sizes=(10**3, 10**4, 10**5),
    *,
    seeds: int = 4,
    n_components: int = 2,
    d: int = 1,
    eta: float = 2.0,
    steps_factor: float = 16.0,
    init: float = 1.0,
    seed: int = 0,
    progress=None,
) -> SampleStudyResult:
    """Run sample gradient EM on a fixed dataset of ``N`` points for each ``N`` and seed.

    The dataset of seed ``s`` is the stream ``gmmscape.stream(N(0, I_d), N, s)``, drawn once
    and held when all seeds' points fit in 1 GiB, otherwise redrawn chunk by chunk each step
    (the same points either way; see :func:`~gmmscape.dynamics.runner.run_stream`).
    Sample gradient EM converges to the sample's critical point sub-linearly, in about
    ``sqrt(N)`` steps (the curvature there is ``~ N^(-1/2)``), so each size runs
    ``ceil(steps_factor sqrt(N) / eta)`` steps: the population part of the error is then
    ``(eta t)^(-1/2) <= N^(-1/4) / sqrt(steps_factor)``, below the statistical error and
    with the same scaling. The start is
    ``mu_i = init * (+-1, 0, ...)`` alternating.

    Parameters
    ----------
    sizes : sequence of int
        Sample sizes ``N``.
    seeds : int, default 4
        Datasets per size (vmapped as restarts).
    n_components, d : int
    eta : float, default 2.0
        Step size (for balanced weights 1/2, ``eta = 2`` moves the common mode like EM).
    steps_factor : float, default 16.0
    init : float, default 1.0
    seed : int, default 0
        First data seed; size ``N_j`` uses seeds ``seed + 1000 j + (0..seeds-1)``.
    progress : callable, optional
        ``progress(label, done, total)``.

    Returns
    -------
    SampleStudyResult
    """
    seeds = check_positive_int(seeds, "seeds")
    eta = check_positive(eta, "eta")
    steps_factor = check_positive(steps_factor, "steps_factor")
    sizes = [check_positive_int(int(n), "sizes") for n in sizes]
    n_components = check_positive_int(n_components, "n_components", minimum=2)
    d = check_positive_int(d, "d")
    start = np.zeros((n_components, d))
    start[:, 0] = init * np.where(np.arange(n_components) % 2 == 0, 1.0, -1.0)
    truth = Mixture(np.zeros((1, d)))
    errors, changes, steps_list, secs, predicted = [], [], [], [], []
    for j, n in enumerate(sizes):
        steps = int(np.ceil(steps_factor * np.sqrt(n) / eta))
        cb = None if progress is None else (lambda a, b, n=n: progress(f"N={n:,}", a, b))
        traj = run_stream(
            truth, start, n=n, seeds=seed + 1000 * j + np.arange(seeds), steps=steps,
            eta=eta, chunk_size=2**16, record_points=40, progress=cb,
        )  # fmt: skip
        _raise_if_diverged(traj, eta)
        err = traj.max_dist[:, -1]
        i10 = int(np.searchsorted(traj.steps, 0.9 * steps, side="right")) - 1
        changes.append((np.abs(err - traj.max_dist[:, i10]) / err).tolist())
        errors.append(err.tolist())
        steps_list.append(steps)
        secs.append(traj.seconds)
        if n_components == 2:
            data_seeds = seed + 1000 * j + np.arange(seeds)
            predicted.append([predicted_error(n, int(s), d=d) for s in data_seeds])
    slope, slope_se = rms_slope(sizes, errors, seed)
    comparison = slope_comparison(slope, slope_se)
    if predicted:
        comparison += " " + prediction_summary(errors, predicted, sizes)
    return SampleStudyResult(
        config={
            "sizes": sizes,
            "seeds": seeds,
            "n_components": n_components,
            "d": d,
            "eta": eta,
            "steps_factor": steps_factor,
            "init": init,
            "seed": seed,
            "source": "stream (fixed dataset of N points per seed, drawn once and held when "
            "it fits in 1 GiB, else redrawn each step)",
        },
        sizes=sizes,
        steps=steps_list,
        errors=errors,
        final_change=changes,
        slope=finite_json(slope),
        slope_se=finite_json(slope_se),
        theory_slope=-0.25,
        comparison=comparison,
        seconds=secs,
        predicted=predicted or None,
        theory_rms=[float((np.pi * n) ** -0.25) for n in sizes] if n_components == 2 else None,
    )


def prediction_deviation(errors, predicted, sizes) -> np.ndarray:
    """``|error - predicted| N^(1/4)``: each final error's distance from its dataset's
    leading-order optimum, in units of the statistical scale ``N^(-1/4)``.

    Parameters
    ----------
    errors, predicted : sequences of sequences of float, shape (m, seeds_j)
    sizes : sequence of int, shape (m,)

    Returns
    -------
    ndarray, all datasets flattened
    """
    return np.concatenate(
        [
            np.abs(np.asarray(e, float) - np.asarray(p, float)) * float(n) ** 0.25
            for e, p, n in zip(errors, predicted, sizes, strict=True)
        ]
    )


def prediction_summary(errors, predicted, sizes) -> str:
    """A sentence comparing final errors with their per-dataset leading-order predictions.

    Parameters
    ----------
    errors, predicted : sequences of sequences of float, shape (m, seeds_j)
    sizes : sequence of int, shape (m,)

    Returns
    -------
    str
    """
    dev = prediction_deviation(errors, predicted, sizes)
    return (
        "Each dataset's final error against its leading-order sample optimum "
        "(dataset_moments: from the sample's variance and fourth moment), in units of "
        f"N^(-1/4): median deviation {np.median(dev):.1e}, below 0.05 for "
        f"{np.mean(dev <= 0.05):.0%} of the {len(dev)} datasets (the others sit near the "
        "split/merge boundary, sample variance ~ 1, where gradient EM converges "
        "sub-linearly)."
    )


def slope_comparison(slope: float, slope_se: float) -> str:
    """A sentence setting a fitted error-vs-N slope beside the theory's -1/4.

    Parameters
    ----------
    slope, slope_se : float
        As returned by :func:`rms_slope` (NaN: fewer than two sizes).

    Returns
    -------
    str
    """
    if not np.isfinite(slope):
        return "One sample size only: no slope."
    z = (slope + 0.25) / max(slope_se, 1e-12)
    return (
        f"Fitted slope of log RMS error (over seeds) vs log N: {slope:.3f} +- {slope_se:.3f} "
        f"(bootstrap over seeds); the two-component theory gives -1/4 ({z:+.1f} standard "
        "errors away), against -1/2 for a well-specified model. Per dataset the error is "
        "either ~N^(-1/4) (sample variance above 1: the sample optimum splits the means) "
        "or ~N^(-1/2) (below 1: the means merge), hence the RMS."
    )


def rms_slope(sizes, errors, seed: int = 0, n_boot: int = 400) -> tuple[float, float]:
    """Slope of ``log RMS(error)`` against ``log N`` and its bootstrap standard error.

    Parameters
    ----------
    sizes : sequence of int, shape (m,)
        Sample sizes ``N``.
    errors : sequence of sequences of float, shape (m, seeds_j)
        Final errors per size; sizes may have different numbers of seeds.
    seed : int, default 0
        Seed of the bootstrap.
    n_boot : int, default 400
        Bootstrap resamples (the seeds of each size are resampled with replacement).

    Returns
    -------
    slope, slope_se : float
        NaN for fewer than two sizes.
    """
    if len(sizes) < 2:
        return float("nan"), float("nan")
    x = np.log(np.asarray(sizes, dtype=np.float64))
    errs = [np.asarray(e, dtype=np.float64) for e in errors]

    def slope(es):
        return float(np.polyfit(x, [0.5 * np.log(np.mean(e**2)) for e in es], 1)[0])

    rng = np.random.default_rng(seed)
    boots = [slope([e[rng.integers(0, len(e), len(e))] for e in errs]) for _ in range(n_boot)]
    return slope(errs), float(np.std(boots))


def plot_samples(result: SampleStudyResult, out: Path, stem: str = "overparam_samples"):
    """Error vs ``N`` (log-log) with the fitted slope and ``N^(-1/4)``; PNG and SVG.

    Parameters
    ----------
    result : SampleStudyResult
    out : Path
    stem : str

    Returns
    -------
    list of Path
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.4))
    n = np.array(result.sizes, dtype=float)
    err = np.array(result.errors)
    for j in range(err.shape[1]):
        ax.loglog(n, err[:, j], "o", color="C0", alpha=0.5)
    gm = np.sqrt(np.mean(err**2, axis=1))
    ax.loglog(n, gm, "-", color="C0", label="RMS over seeds")
    if result.slope is not None and len(n) >= 2:
        ax.loglog(n, gm[0] * (n / n[0]) ** result.slope, "--", color="C1",
                  label=f"fit: slope {result.slope:.3f} +- {result.slope_se:.3f}")  # fmt: skip
    if result.predicted is not None:
        pred = np.array(result.predicted)
        for j in range(pred.shape[1]):
            ax.loglog(n, pred[:, j], "x", color="C3", ms=4,
                      label="each dataset's predicted optimum" if j == 0 else None)  # fmt: skip
    if result.theory_rms is not None:
        ax.loglog(n, result.theory_rms, "-.", color="C2", label="(pi N)^(-1/4), leading order")
    ax.loglog(n, gm[0] * (n / n[0]) ** -0.25, ":", color="k", label="N^(-1/4) (theory, n=2)")
    ax.loglog(n, gm[0] * (n / n[0]) ** -0.5, ":", color="gray", label="N^(-1/2)")
    ax.set_xlabel("sample size N (points)")
    ax.set_ylabel("final max_i ||mu_i - 0|| (data units)")
    ax.set_title("Sample gradient EM: parametric error vs N")
    legend_below(ax)
    fig.tight_layout()
    return save_figure(fig, Path(out) / stem)


def plot_trap(result, out: Path, stem: str = "trap") -> list[Path]:
    """Escape steps vs ``R`` (log scale) with the fit and the heuristic; PNG and SVG.

    Parameters
    ----------
    result : gmmscape.experiments.trap.TrapResult
    out : Path
    stem : str

    Returns
    -------
    list of Path
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.4))
    R = np.array(result.R)
    steps = np.array(result.steps, dtype=float)
    cens = np.array(result.censored, dtype=bool)
    ax.semilogy(R[~cens], steps[~cens], "o", label="escape step (measured)")
    if cens.any():
        ax.semilogy(R[cens], steps[cens], "^", color="r", label="censored at the cap")
    rr = np.linspace(R.min(), R.max(), 100)
    ax.semilogy(rr, np.exp(np.interp(rr, R, np.log(result.heuristic))), ":", color="gray",
                label="heuristic 4 sqrt(2 pi) e^{R^2/8} / (eta R)")  # fmt: skip
    if result.fit:
        f = result.fit
        ax.semilogy(rr, np.exp(f["a"] + f["c"] * rr**2), "--",
                    label=f"fit log T = a + c R^2, c = {f['c']:.4f}")  # fmt: skip
    xlabel = "R, distance of the far component (data units)"
    if result.config["mode"] == "dimension":
        xlabel = f"R = {result.config['c_scale']:g} sqrt(d) (data units)"
    ax.set_xlabel(xlabel)
    ax.set_ylabel("steps to escape (gradient EM steps)")
    count_log_ticks(ax.yaxis)
    ax.set_title(f"Traps: escape time vs R (mode {result.config['mode']})")
    legend_below(ax, ncol=1)
    fig.tight_layout()
    return save_figure(fig, Path(out) / stem)


# -- the short version for `gmmscape demo` ----------------------------------------------


@dataclass
class QuickStudyResult:
    """The short seed-A study: panels for n = 2, 5 and a short trap sweep.

    Attributes
    ----------
    study : StudyResult
    trap : gmmscape.experiments.trap.TrapResult
    seconds : float
    """

    study: StudyResult
    trap: object
    seconds: float


def quick_study(seed: int = 0, progress=None) -> QuickStudyResult:
    """A ~15 s version of seed A for ``gmmscape demo``: rates for n = 2, 5 and traps to R = 8.

    Parameters
    ----------
    seed : int, default 0
    progress : callable, optional
        ``progress(message)``.

    Returns
    -------
    QuickStudyResult
    """
    t0 = time.perf_counter()
    say = progress or (lambda _m: None)
    say("seed A: gradient EM rates for n = 2, 5")
    study = overparam_study(
        ns=(2, 5), d=1, steps=20_000, restarts=2, weight_sets=((0.5, 0.5), (0.2, 0.8)),
        seed=seed,
    )  # fmt: skip
    say("seed A: trap escape times")
    tr = trap(R_values=(3.0, 4.0, 5.0, 6.0, 7.0, 8.0), max_steps=10**5, seed=seed)
    return QuickStudyResult(study=study, trap=tr, seconds=time.perf_counter() - t0)


def plot_quick_study(result: QuickStudyResult, out: Path) -> list[Path]:
    """Figures of :func:`quick_study`: ``seedA_rates.*`` and ``seedA_trap.*``.

    Parameters
    ----------
    result : QuickStudyResult
    out : Path

    Returns
    -------
    list of Path
    """
    return plot_study(result.study, out, "seedA_rates") + plot_trap(result.trap, out, "seedA_trap")


# -- sweep types ---------------------------------------------------------------------


def _sweep_run(params: OverparamParams) -> dict:
    res = overparam(
        params.n_components, params.d, weights=params.weights, eta=params.eta,
        steps=params.steps, init_scale=params.init_scale, restarts=params.restarts,
        method=params.method, seed=params.seed,
    )  # fmt: skip
    return finite_json({**_row(f"n={params.n_components}", res), "seconds": res.seconds})


def _sweep_plot(rows) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2))
    n = [p["n_components"] for p, _ in rows]
    a = [r.get("alpha_loss") for _, r in rows]
    e = [r.get("alpha_loss_err") or 0.0 for _, r in rows]
    ok = [i for i, v in enumerate(a) if v is not None]
    ax.errorbar([n[i] for i in ok], [a[i] for i in ok], yerr=[e[i] for i in ok], fmt="o",
                label="fitted alpha +- its standard error")  # fmt: skip
    ax.axhline(0.5, color="gray", ls=":", label="proven bound: alpha = 1/2")
    ax.set_xlabel("n (components)")
    integer_ticks(ax.xaxis)
    ax.set_ylabel("fitted tail exponent alpha of L_t\n(dimensionless, +- standard error)")
    legend_below(ax)
    fig.tight_layout()
    return {"overparam_alpha": fig}


def _trap_run(params: TrapParams) -> dict:
    res = trap(
        (params.R,), n_components=params.n_components, d=params.d,
        mode=params.mode, n_far=params.n_far,
        eta=params.eta, max_steps=params.max_steps, seed=params.seed,
    )  # fmt: skip
    return finite_json({
        "R": params.R, "steps": res.steps[0], "censored": res.censored[0],
        "far_mass": res.far_mass[0], "heuristic": res.heuristic[0], "seconds": res.seconds,
    })  # fmt: skip


def _trap_plot(rows) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2))
    R = np.array([r["R"] for _, r in rows], dtype=float)
    s = np.array([r["steps"] for _, r in rows], dtype=float)
    c = np.array([bool(r["censored"]) for _, r in rows])
    ax.semilogy(R[~c], s[~c], "o", label="escape steps")
    if c.any():
        ax.semilogy(R[c], s[c], "^", color="r", label="censored")
    if (~c).sum() >= 2 and len(np.unique(R[~c])) >= 2:
        f = fit_escape(R[~c], s[~c])
        rr = np.linspace(R.min(), R.max(), 50)
        ax.semilogy(rr, np.exp(f["a"] + f["c"] * rr**2), "--", label=f"c = {f['c']:.4f}")
    ax.set_xlabel("R, distance of the far component (data units)")
    ax.set_ylabel("steps to escape (gradient EM steps)")
    count_log_ticks(ax.yaxis)
    legend_below(ax, ncol=3)
    fig.tight_layout()
    return {"trap_escape": fig}


SWEEP_EXPERIMENTS = (
    ExperimentType(
        name="overparam",
        params=OverparamParams,
        run=_sweep_run,
        plot=_sweep_plot,
        description="Seed A: tail exponent of the KL loss of population gradient EM.",
        captions={
            "overparam_alpha": "Fitted tail exponent alpha of the KL loss L_t ~ t^-alpha of "
            "population gradient EM against the number of components n, with its standard "
            "error; the dotted line is the proven bound's alpha = 1/2.",
        },
    ),
    ExperimentType(
        name="trap",
        params=TrapParams,
        run=_trap_run,
        plot=_trap_plot,
        description="Seed A: escape time of gradient EM from a far component at distance R.",
        captions={
            "trap_escape": "Steps gradient EM takes to pull a component at distance R back "
            "to the data, against R (log scale); censored runs (stopped at the step cap) "
            "as red triangles, and the fit log T = a + c R^2.",
        },
    ),
)
