"""Studies of the landscape: separation sweeps, the 1-D three-center atlas, random starts.

Each study is a function returning a JSON-serializable result (a dataclass), has a CLI
command (``gmmscape separation``, ``gmmscape bifurcation``, ``gmmscape random-init``) and
a figure (:mod:`gmmscape.landscape.plots`). Two sweep types are registered
(:data:`SWEEP_EXPERIMENTS`): ``"landscape"`` (one atlas of a given truth) and
``"separation"`` (one cell of a separation sweep).

Truth families (``truth_family``), sigma = 1, minimum pairwise separation ``delta``:

- ``"line"``: ``k*`` centers ``delta`` apart on the first axis, centered at 0;
- ``"simplex"``: the vertices of a regular simplex with edge ``delta`` (needs
  ``d >= k* - 1``);
- ``"random"``: ``k*`` standard normal points (from ``seed``) rescaled so that their
  smallest pairwise distance is ``delta``;
- ``"jin"``: the 1-D example of Jin et al. (NeurIPS 2016), centers ``-delta/2, delta/2,
  5 delta`` (two close, one far; ``k* = 3``, ``d = 1``).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from gmmscape._validation import check_positive, check_positive_int
from gmmscape.core.mixture import Mixture
from gmmscape.experiments.params import LandscapeParams, SeparationParams
from gmmscape.experiments.registry import ExperimentType
from gmmscape.landscape.atlas import Atlas, wilson
from gmmscape.landscape.explore import check_truth, explore
from gmmscape.landscape.solvers import run_batch
from gmmscape.landscape.starts import make_starts
from gmmscape.landscape.structure import groups

FAMILIES = ("line", "simplex", "random", "jin")
#: Default separations of the bifurcation study.
BIFURCATION_DELTAS = (1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0)


def truth_family(family: str, k_star: int, d: int, delta: float, seed: int = 0) -> Mixture:
    """A truth of ``k_star`` equal-weight centers with minimum separation ``delta``.

    Parameters
    ----------
    family : {"line", "simplex", "random", "jin"}
    k_star : int
    d : int
    delta : float
        Minimum pairwise distance, units of sigma = 1.
    seed : int, default 0
        Seed of the ``"random"`` family.

    Returns
    -------
    Mixture
    """
    k_star = check_positive_int(k_star, "k_star")
    d = check_positive_int(d, "d")
    delta = check_positive(delta, "delta")
    if family == "line":
        c = np.zeros((k_star, d))
        c[:, 0] = delta * (np.arange(k_star) - (k_star - 1) / 2)
    elif family == "simplex":
        if d < k_star - 1:
            raise ValueError(f"d must be >= k_star - 1 = {k_star - 1} for a simplex; got {d}.")
        e = np.eye(k_star) * delta / np.sqrt(2)
        e = e - e.mean(axis=0)
        _, _, vt = np.linalg.svd(e)
        c = np.zeros((k_star, d))
        proj = e @ vt[: max(k_star - 1, 1)].T
        c[:, : proj.shape[1]] = proj
    elif family == "random":
        rng = np.random.default_rng(seed)
        c = rng.standard_normal((k_star, d))
        if k_star > 1:
            dist = np.linalg.norm(c[:, None] - c[None], axis=-1)
            dist[np.diag_indices(k_star)] = np.inf
            c = c * delta / dist.min()
    elif family == "jin":
        if (k_star, d) != (3, 1):
            raise ValueError(f"family 'jin' has k_star = 3 and d = 1; got {k_star}, {d}.")
        c = np.array([[-delta / 2], [delta / 2], [5 * delta]])
    else:
        raise ValueError(f"family must be one of {FAMILIES}; got {family!r}.")
    return Mixture(c, sigma=1.0)


def atlas_summary(atlas: Atlas) -> dict:
    """Key numbers of an atlas (JSON-serializable).

    Parameters
    ----------
    atlas : Atlas

    Returns
    -------
    dict
        Numbers that do not exist (e.g. the smallest spurious gap when there is no
        spurious minimum) are ``None``, so the dict is strict JSON.
    """
    minima = atlas.minima
    bad, (lo, hi) = atlas.bad_fraction()
    return {
        "n_points": len(atlas.points),
        "n_minima": len(minima),
        "n_spurious": len(atlas.spurious_minima),
        "n_saddles": sum(1 for p in atlas.points if "saddle" in p.kind),
        "n_undetermined": sum(1 for p in atlas.points if "undetermined" in p.kind),
        "all_minima_non_overlapping": all(p.non_overlapping for p in minima),
        "max_error_minima": max((p.max_error for p in minima), default=None),
        "spurious_signatures": sorted({p.signature for p in atlas.spurious_minima}),
        "spurious_gap_min": min((p.gap for p in atlas.spurious_minima), default=None),
        "bad_fraction": bad,
        "bad_ci": [lo, hi],
        "n_failed": atlas.n_failed,
        "max_grad_norm": max((p.grad_norm for p in atlas.points), default=None),
        "seconds": atlas.seconds["total"],
    }


# -- separation -----------------------------------------------------------------------


@dataclasses.dataclass
class SeparationResult:
    """A separation sweep.

    Attributes
    ----------
    family : str
    k_star, d : int
    ks : list of int
    deltas : list of float
    rows : list of dict
        One per ``(k, delta)``: ``k``, ``delta`` and :func:`atlas_summary`'s numbers.
    threshold : dict
        Per ``k`` (as a string): the smallest delta from which on every larger delta had
        only non-overlapping minima (None if the largest did not).
    n_starts, seed : int
    seconds : float
    """

    family: str
    k_star: int
    d: int
    ks: list
    deltas: list
    rows: list
    threshold: dict
    n_starts: int
    seed: int
    seconds: float


def separation_study(
    family: str = "line",
    k_star: int = 3,
    d: int = 1,
    ks=(2, 3, 4),
    deltas=(1.0, 2.0, 3.0, 4.0, 6.0, 8.0),
    *,
    n_starts: int = 200,
    seed: int = 0,
    progress=None,
) -> SeparationResult:
    """Sweep the separation of a truth family and map each landscape.

    Parameters
    ----------
    family : str, default "line"
    k_star, d : int
    ks : sequence of int
        Model sizes (k < k*, k = k*, k > k*).
    deltas : sequence of float
        Minimum separations (units of sigma).
    n_starts : int, default 200
    seed : int, default 0
    progress : callable, optional
        ``progress(done, total)``.

    Returns
    -------
    SeparationResult
    """
    t0 = time.perf_counter()
    deltas = sorted(float(x) for x in deltas)
    ks = [check_positive_int(k, "ks") for k in ks]
    # one quadrature resolution for the whole sweep: compiled shapes are reused
    big = truth_family(family, k_star, d, deltas[-1], seed)
    beta = np.asarray(big.means)
    diameter = float(np.linalg.norm(beta.max(axis=0) - beta.min(axis=0))) + 2.0
    rows = []
    total = len(ks) * len(deltas)
    for k in ks:
        for delta in deltas:
            truth = truth_family(family, k_star, d, delta, seed)
            atlas = explore(truth, k, n_starts=n_starts, seed=seed, diameter=diameter)
            rows.append({"k": k, "delta": delta, **atlas_summary(atlas)})
            if progress is not None:
                progress(len(rows), total)
    threshold = {}
    for k in ks:
        ok = [r["all_minima_non_overlapping"] for r in rows if r["k"] == k]
        th = None
        for i in range(len(deltas) - 1, -1, -1):
            if not ok[i]:
                break
            th = deltas[i]
        threshold[str(k)] = th
    return SeparationResult(
        family=family,
        k_star=k_star,
        d=d,
        ks=ks,
        deltas=deltas,
        rows=rows,
        threshold=threshold,
        n_starts=n_starts,
        seed=seed,
        seconds=time.perf_counter() - t0,
    )


# -- 1-D three-center atlas (bifurcation diagram) ---------------------------------------


@dataclasses.dataclass
class BifurcationResult:
    """Every critical point of the 1-D three-center problem as the separation varies.

    Attributes
    ----------
    family : str
    deltas : list of float
    points : list of dict
        One per critical point and delta: ``delta``, ``means`` (sorted, length 3),
        ``kl``, ``kind``, ``index``, ``signature``, ``grad_norm``.
    n_starts : list of int
        Starts used at each delta (grid plus continuation).
    n_failed : list of int
    seconds : float
    """

    family: str
    deltas: list
    points: list
    n_starts: list
    n_failed: list
    seconds: float


def _grid_starts(lo: float, hi: float, n_grid: int) -> np.ndarray:
    g = np.linspace(lo, hi, n_grid)
    i, j, l = np.meshgrid(g, g, g, indexing="ij")
    trip = np.stack([i.ravel(), j.ravel(), l.ravel()], axis=1)
    keep = (trip[:, 0] <= trip[:, 1]) & (trip[:, 1] <= trip[:, 2])
    return trip[keep][:, :, None]


def bifurcation_study(
    deltas=BIFURCATION_DELTAS,
    family: str = "line",
    *,
    n_grid: int = 12,
    seed: int = 0,
    progress=None,
) -> BifurcationResult:
    """Find every critical point of the 1-D, k = k* = 3 landscape along a separation path.

    At each ``delta`` the starts are a dense grid of ordered triples over the truth's range
    widened by sigma (``n_grid`` values per axis, ``C(n_grid + 2, 3)`` starts) plus the
    critical points found at the previous ``delta``, rescaled (continuation); each start is
    polished with Newton directly (``method="newton"``), which converges to saddles and
    maxima as well as minima.

    Parameters
    ----------
    deltas : sequence of float
    family : {"line", "jin"}, default "line"
    n_grid : int, default 12
    seed : int, default 0
    progress : callable, optional
        ``progress(done, total)``.

    Returns
    -------
    BifurcationResult
    """
    t0 = time.perf_counter()
    deltas = sorted(float(x) for x in deltas)
    big = truth_family(family, 3, 1, deltas[-1])
    diameter = float(np.ptp(np.asarray(big.means))) + 4.0
    points, n_starts, n_failed = [], [], []
    prev = None
    for i, delta in enumerate(deltas):
        truth = truth_family(family, 3, 1, delta)
        beta = np.asarray(truth.means)[:, 0]
        starts = _grid_starts(beta.min() - 1.0, beta.max() + 1.0, n_grid)
        if prev is not None:
            starts = np.concatenate([starts, prev * delta / deltas[i - 1]])
        atlas = explore(truth, 3, starts=starts, method="newton", diameter=diameter, seed=seed)
        found = []
        for p in atlas.points:
            mu = np.sort(np.asarray(p.means)[:, 0])
            found.append(mu[:, None])
            points.append(
                {
                    "delta": delta,
                    "means": mu.tolist(),
                    "kl": p.kl,
                    "kind": p.kind,
                    "index": p.index,
                    "signature": p.signature,
                    "grad_norm": p.grad_norm,
                }
            )
        prev = np.stack(found) if found else None
        n_starts.append(int(starts.shape[0]))
        n_failed.append(atlas.n_failed)
        if progress is not None:
            progress(i + 1, len(deltas))
    return BifurcationResult(
        family=family,
        deltas=deltas,
        points=points,
        n_starts=n_starts,
        n_failed=n_failed,
        seconds=time.perf_counter() - t0,
    )


# -- random initialization (Jin et al.) -------------------------------------------------


@dataclasses.dataclass
class RandomInitResult:
    """Probability that EM from random starts ends at a bad critical point, per k = k*.

    Attributes
    ----------
    family : str
    d : int
    delta : float
    ks : list of int
    scheme : str
    n_starts : int
    bad_fraction : list of float
    ci : list of list of float
        95% Wilson intervals.
    unconverged : list of int
        Starts whose EM had not converged after ``max_iter`` steps (classified anyway by
        the structure of their last iterate).
    seconds : list of float
    seed : int
    """

    family: str
    d: int
    delta: float
    ks: list
    scheme: str
    n_starts: int
    bad_fraction: list
    ci: list
    unconverged: list
    seconds: list
    seed: int


def random_init_study(
    ks=(3, 5, 8, 12, 16, 20),
    *,
    family: str = "line",
    d: int = 1,
    delta: float = 10.0,
    n_starts: int = 200,
    scheme: str = "data",
    max_iter: int = 500,
    seed: int = 0,
    progress=None,
) -> RandomInitResult:
    """Run EM from random starts for growing k = k* and count the bad end points.

    An end point is *good* when every group of its structure is a correct fit
    (:func:`gmmscape.landscape.structure.groups`) with error below 1 sigma, i.e. it is in
    the global minimum's basin; anything else (a one-fits-many or many-fit-one group) is
    *bad*. Jin et al. (NeurIPS 2016) prove the bad probability is at least
    ``1 - exp(-Omega(k))``. Only the vmapped batch phase runs (no polish).

    Parameters
    ----------
    ks : sequence of int
    family : str, default "line"
    d : int, default 1
    delta : float, default 10
        Minimum separation (well separated).
    n_starts : int, default 200
    scheme : str, default "data"
        A start scheme (Jin et al. draw the starts from the data).
    max_iter : int, default 500
    seed : int, default 0
    progress : callable, optional
        ``progress(done, total)``.

    Returns
    -------
    RandomInitResult
    """
    from gmmscape.landscape._problem import make_problem

    ks = [check_positive_int(k, "ks") for k in ks]
    bad_frac, cis, unconv, secs = [], [], [], []
    for i, k in enumerate(ks):
        t0 = time.perf_counter()
        truth = check_truth(truth_family(family, k, d, delta, seed))
        prob = make_problem(truth, k)
        starts, _ = make_starts(truth, k, n_starts, (scheme,), seed + k)
        ends, last, _ = run_batch(prob.batch, prob.to_frame(starts), max_iter=max_iter)
        beta = np.asarray(truth.means)
        bad = 0
        for e in prob.lift(ends):
            gs = groups(e, beta)
            good = all(g["kind"] == "correct fit" and g["error"] < 1.0 for g in gs)
            bad += 0 if good else 1
        bad_frac.append(bad / n_starts)
        cis.append(list(wilson(bad, n_starts)))
        unconv.append(int(np.sum(~(last <= 1e-8))))
        secs.append(time.perf_counter() - t0)
        if progress is not None:
            progress(i + 1, len(ks))
    return RandomInitResult(
        family=family,
        d=d,
        delta=delta,
        ks=ks,
        scheme=scheme,
        n_starts=n_starts,
        bad_fraction=bad_frac,
        ci=cis,
        unconverged=unconv,
        seconds=secs,
        seed=seed,
    )


# -- demo ----------------------------------------------------------------------------------


def quick_atlas(seed: int = 0, out=None) -> dict:
    """A short tour for ``gmmscape demo`` (about 15 s).

    Maps the 1-D three-center problem of Jin et al. (centers -1.5, 1.5, 15: a spurious
    minimum with one estimate between the close pair and two on the far center) with 300
    starts, and runs a short separation study (the same family, centers -delta/2, delta/2,
    5 delta, k = k* = 3, four separations, 40 starts each), where the spurious minimum
    appears as delta grows.

    Parameters
    ----------
    seed : int, default 0
    out : path-like, optional
        Folder for ``landscape_atlas.{png,svg,json}`` and
        ``landscape_separation.{png,svg,json}``.

    Returns
    -------
    dict
        ``atlas`` (Atlas), ``separation`` (SeparationResult) and ``paths`` (written files).
    """
    from pathlib import Path

    from gmmscape.experiments.output import write_json
    from gmmscape.landscape import plots

    truth = truth_family("jin", 3, 1, 3.0)
    atlas = explore(truth, 3, n_starts=300, seed=seed)
    sep = separation_study(
        "jin", 3, 1, ks=(3,), deltas=(1.0, 2.0, 3.0, 4.0), n_starts=40, seed=seed
    )
    paths = []
    if out is not None:
        out = Path(out)
        paths += plots.save(plots.plot_atlas_1d(atlas), out / "landscape_atlas")
        paths += plots.save(plots.plot_separation(sep), out / "landscape_separation")
        paths.append(atlas.write_json(out / "landscape_atlas.json"))
        paths.append(write_json(sep, out / "landscape_separation.json"))
    return {"atlas": atlas, "separation": sep, "paths": paths}


# -- sweep types ---------------------------------------------------------------------------


def _run_landscape(p: LandscapeParams) -> dict:
    truth = Mixture(p.truth_means, sigma=p.sigma)
    atlas = explore(truth, p.k, n_starts=p.n_starts, method=p.method, seed=p.seed)
    return atlas_summary(atlas)


def _run_separation(p: SeparationParams) -> dict:
    truth = truth_family(p.family, p.k_star, p.d, p.delta, p.seed)
    atlas = explore(truth, p.k, n_starts=p.n_starts, seed=p.seed)
    return atlas_summary(atlas)


def _plot_landscape(rows) -> dict:
    from gmmscape.landscape import plots

    return {"landscape_summary": plots.plot_summary_rows(rows)}


def _plot_separation(rows) -> dict:
    from gmmscape.landscape import plots

    return {"separation": plots.plot_separation_rows(rows)}


SWEEP_EXPERIMENTS = (
    ExperimentType(
        name="landscape",
        params=LandscapeParams,
        run=_run_landscape,
        plot=_plot_landscape,
        description="Landscape atlas of one truth: critical points, minima, basins.",
        captions={
            "landscape_summary": "Number of local minima and of spurious local minima "
            "found in each cell's atlas (one pair of bars per cell: k and seed).",
        },
    ),
    ExperimentType(
        name="separation",
        params=SeparationParams,
        run=_run_separation,
        plot=_plot_separation,
        description="One separation of a truth family: spurious minima and their structure.",
        captions={
            "separation": "Left: distinct spurious local minima against the separation delta "
            "of the true centers (red crosses: a minimum that is not non-overlapping). "
            "Right: the largest approximation error of the minima, in units of sigma.",
        },
    ),
)
