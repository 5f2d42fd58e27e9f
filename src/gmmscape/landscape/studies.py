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

No study presents an incomplete result as complete: failed starts (Newton did not reach
``grad_tol``, an estimate ran away) and unconverged starts (EM hit ``max_iter``) are
counted and stored in every result, the iteration caps are parameters, and a
:class:`StudyWarning` is raised, and kept in the result's ``warnings``, when they exceed
``warn_fraction`` of the starts, or when the bifurcation study cannot find a global
minimum.
"""

from __future__ import annotations

import dataclasses
import time
import warnings

import numpy as np

from gmmscape._validation import check_positive, check_positive_int
from gmmscape.core.mixture import Mixture
from gmmscape.experiments.params import LandscapeParams, SeparationParams
from gmmscape.experiments.registry import ExperimentType
from gmmscape.landscape.atlas import Atlas, wilson
from gmmscape.landscape.explore import check_truth, explore
from gmmscape.landscape.solvers import run_batch
from gmmscape.landscape.starts import SCHEMES, make_starts
from gmmscape.landscape.structure import groups

FAMILIES = ("line", "simplex", "random", "jin")
#: Default separations of the bifurcation study.
BIFURCATION_DELTAS = (1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0)
#: Default share of failed or unconverged starts above which a study warns.
WARN_FRACTION = 0.05
#: A critical point with KL below this is the global minimum when k = k* (the truth).
GLOBAL_KL_TOL = 1e-8
#: EM steps below this count as converged in the random-initialization study.
RANDOM_INIT_TOL = 1e-8


class StudyWarning(UserWarning):
    """A study's result is less complete than asked: failed, unconverged or missing."""


def _warn(messages: list, text: str) -> None:
    messages.append(text)
    warnings.warn(text, StudyWarning, stacklevel=3)


def _check_fraction(value, name: str) -> float:
    value = check_positive(value, name) if value != 0 else 0.0
    if value > 1:
        raise ValueError(f"{name} must be a fraction in [0, 1]; got {value}.")
    return float(value)


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
        "batch_unconverged": atlas.batch_unconverged,
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
    max_iter, newton_iter : int
        The iteration caps of the batch phase and of the Newton polish.
    warnings : list of str
        Landscapes whose failed starts exceeded ``warn_fraction`` of the starts.
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
    max_iter: int = 50
    newton_iter: int = 100
    warnings: list = dataclasses.field(default_factory=list)


def separation_study(
    family: str = "line",
    k_star: int = 3,
    d: int = 1,
    ks=(2, 3, 4),
    deltas=(1.0, 2.0, 3.0, 4.0, 6.0, 8.0),
    *,
    n_starts: int = 200,
    seed: int = 0,
    max_iter: int = 50,
    newton_iter: int = 100,
    warn_fraction: float = WARN_FRACTION,
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
    max_iter : int, default 50
        EM steps of each atlas's batch phase (see :func:`explore`).
    newton_iter : int, default 100
        Newton iterations of each polish.
    warn_fraction : float, default WARN_FRACTION
        Warn (:class:`StudyWarning`) for a landscape whose failed starts exceed this
        share of its starts.
    progress : callable, optional
        ``progress(done, total)``.

    Returns
    -------
    SeparationResult
    """
    t0 = time.perf_counter()
    deltas = sorted(float(x) for x in deltas)
    if not deltas:
        raise ValueError("deltas is empty; give at least one separation.")
    ks = [check_positive_int(k, "ks") for k in ks]
    if not ks:
        raise ValueError("ks is empty; give at least one model size.")
    max_iter = check_positive_int(max_iter, "max_iter")
    newton_iter = check_positive_int(newton_iter, "newton_iter")
    warn_fraction = _check_fraction(warn_fraction, "warn_fraction")
    messages: list = []
    # one quadrature resolution for the whole sweep: compiled shapes are reused
    big = truth_family(family, k_star, d, deltas[-1], seed)
    beta = np.asarray(big.means)
    diameter = float(np.linalg.norm(beta.max(axis=0) - beta.min(axis=0))) + 2.0
    rows = []
    total = len(ks) * len(deltas)
    for k in ks:
        for delta in deltas:
            truth = truth_family(family, k_star, d, delta, seed)
            atlas = explore(
                truth,
                k,
                n_starts=n_starts,
                seed=seed,
                diameter=diameter,
                max_iter=max_iter,
                newton_iter=newton_iter,
            )
            rows.append({"k": k, "delta": delta, **atlas_summary(atlas)})
            if atlas.n_failed > warn_fraction * atlas.n_starts:
                _warn(
                    messages,
                    f"k = {k}, delta = {delta:g}: {atlas.n_failed} of {atlas.n_starts} "
                    f"starts failed ({_reasons(atlas.failures)}); each is counted in "
                    "n_failed. If critical points may be missing, add starts (--starts) or "
                    "iterations (--newton-iter, --max-iter).",
                )
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
        max_iter=max_iter,
        newton_iter=newton_iter,
        warnings=messages,
    )


def _reasons(failures: list) -> str:
    counts: dict[str, int] = {}
    for f in failures:
        counts[f["reason"]] = counts.get(f["reason"], 0) + f["count"]
    return "; ".join(f"{n}: {r}" for r, n in counts.items()) or "no reason recorded"


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
        Starts used at each delta (grid, continuation and the extra rounds' starts).
    n_failed : list of int
        Starts at each delta whose Newton polish failed (counted, not dropped).
    seconds : float
    global_found : list of bool
        Whether the global minimum (KL 0 at the true centers, since k = k*) is among the
        points found at each delta.
    rounds : list of int
        Search rounds run at each delta (1: the first pass was enough).
    failures : list of list of dict
        Per delta: the reasons and counts of the failed starts (see :class:`Atlas`).
    newton_iter, max_rounds : int
    warnings : list of str
        Deltas whose failed starts exceeded ``warn_fraction``, and deltas whose global
        minimum was not found after ``max_rounds`` rounds.
    """

    family: str
    deltas: list
    points: list
    n_starts: list
    n_failed: list
    seconds: float
    global_found: list = dataclasses.field(default_factory=list)
    rounds: list = dataclasses.field(default_factory=list)
    failures: list = dataclasses.field(default_factory=list)
    newton_iter: int = 100
    max_rounds: int = 4
    warnings: list = dataclasses.field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True if the global minimum was found at every delta."""
        return all(self.global_found)


def _grid_starts(lo: float, hi: float, n_grid: int) -> np.ndarray:
    g = np.linspace(lo, hi, n_grid)
    i, j, l = np.meshgrid(g, g, g, indexing="ij")
    trip = np.stack([i.ravel(), j.ravel(), l.ravel()], axis=1)
    keep = (trip[:, 0] <= trip[:, 1]) & (trip[:, 1] <= trip[:, 2])
    return trip[keep][:, :, None]


def _has_global(atlas: Atlas) -> bool:
    return any(p.is_minimum and p.kl <= GLOBAL_KL_TOL for p in atlas.points)


def bifurcation_study(
    deltas=BIFURCATION_DELTAS,
    family: str = "line",
    *,
    n_grid: int = 12,
    seed: int = 0,
    newton_iter: int = 100,
    max_rounds: int = 4,
    warn_fraction: float = WARN_FRACTION,
    progress=None,
) -> BifurcationResult:
    """Find every critical point of the 1-D, k = k* = 3 landscape along a separation path.

    At each ``delta`` the starts are a dense grid of ordered triples over the truth's range
    widened by sigma (``n_grid`` values per axis, ``C(n_grid + 2, 3)`` starts) plus the
    critical points found at the previous ``delta``, rescaled (continuation); each start is
    polished with Newton directly (``method="newton"``), which converges to saddles and
    maxima as well as minima.

    Since ``k = k*``, the global minimum is known: the true centers, KL = 0. A delta whose
    points do not include it is searched again, for up to ``max_rounds`` rounds in all:
    each round adds the points found at both neighbouring deltas (rescaled), a grid with
    ``n_grid + 4 * round`` values per axis and ``50 * 2**round`` random starts from every
    start scheme. A delta still without its global minimum is reported
    (``global_found``, ``warnings`` and a :class:`StudyWarning`), never silently left out.

    Parameters
    ----------
    deltas : sequence of float
    family : {"line", "jin"}, default "line"
    n_grid : int, default 12
    seed : int, default 0
    newton_iter : int, default 100
        Newton iterations of each polish.
    max_rounds : int, default 4
        Search rounds per delta, the first pass included.
    warn_fraction : float, default WARN_FRACTION
        Warn when the failed starts at a delta exceed this share of its starts.
    progress : callable, optional
        ``progress(done, total)``; ``total`` grows when deltas are searched again.

    Returns
    -------
    BifurcationResult
    """
    t0 = time.perf_counter()
    deltas = sorted(float(x) for x in deltas)
    if not deltas:
        raise ValueError("deltas is empty; give at least one separation.")
    if family not in ("line", "jin"):
        raise ValueError(f"family must be 'line' or 'jin' (three centers in 1-D); got {family!r}.")
    n_grid = check_positive_int(n_grid, "n_grid", minimum=2)
    newton_iter = check_positive_int(newton_iter, "newton_iter")
    max_rounds = check_positive_int(max_rounds, "max_rounds")
    warn_fraction = _check_fraction(warn_fraction, "warn_fraction")
    big = truth_family(family, 3, 1, deltas[-1])
    diameter = float(np.ptp(np.asarray(big.means))) + 4.0
    m = len(deltas)
    truths = [truth_family(family, 3, 1, delta) for delta in deltas]
    starts: list = [None] * m
    atlases: list = [None] * m
    rounds = [0] * m
    done, total = 0, m

    def found(i) -> np.ndarray | None:
        pts = [np.sort(np.asarray(p.means)[:, 0])[:, None] for p in atlases[i].points]
        return np.stack(pts) if pts else None

    def search(i, new) -> None:
        nonlocal done
        starts[i] = new if starts[i] is None else np.concatenate([starts[i], new])
        atlases[i] = explore(
            truths[i],
            3,
            starts=starts[i],
            method="newton",
            diameter=diameter,
            seed=seed,
            newton_iter=newton_iter,
        )
        rounds[i] += 1
        done += 1
        if progress is not None:
            progress(done, total)

    for i, delta in enumerate(deltas):  # the first pass: grid and forward continuation
        beta = np.asarray(truths[i].means)[:, 0]
        new = _grid_starts(beta.min() - 1.0, beta.max() + 1.0, n_grid)
        prev = found(i - 1) if i > 0 else None
        if prev is not None:
            new = np.concatenate([new, prev * delta / deltas[i - 1]])
        search(i, new)
    for r in range(1, max_rounds):
        missing = [i for i in range(m) if not _has_global(atlases[i])]
        if not missing:
            break
        total += len(missing)
        for i in missing:
            delta = deltas[i]
            beta = np.asarray(truths[i].means)[:, 0]
            parts = [_grid_starts(beta.min() - 1.0, beta.max() + 1.0, n_grid + 4 * r)]
            for j in (i - 1, i + 1):
                if 0 <= j < m and (nb := found(j)) is not None:
                    parts.append(nb * delta / deltas[j])
            rand, _ = make_starts(truths[i], 3, 50 * 2**r, SCHEMES, seed + r)
            parts.append(rand)
            search(i, np.concatenate(parts))
    points, messages = [], []
    for i, delta in enumerate(deltas):
        a = atlases[i]
        for p in a.points:
            points.append(
                {
                    "delta": delta,
                    "means": np.sort(np.asarray(p.means)[:, 0]).tolist(),
                    "kl": p.kl,
                    "kind": p.kind,
                    "index": p.index,
                    "signature": p.signature,
                    "grad_norm": p.grad_norm,
                }
            )
        if a.n_failed > warn_fraction * a.n_starts:
            _warn(
                messages,
                f"delta = {delta:g}: {a.n_failed} of {a.n_starts} starts failed "
                f"({_reasons(a.failures)}); each is counted in n_failed and listed in "
                "failures. If critical points may be missing, add starts (--grid) or "
                "Newton iterations (--newton-iter).",
            )
        if not _has_global(a):
            _warn(
                messages,
                f"delta = {delta:g}: the global minimum (the true centers, KL = 0) was not "
                f"found from {a.n_starts} starts in {rounds[i]} rounds; this delta's points "
                "are incomplete. Raise max_rounds (--max-rounds) or n_grid (--grid).",
            )
    return BifurcationResult(
        family=family,
        deltas=deltas,
        points=points,
        n_starts=[int(a.n_starts) for a in atlases],
        n_failed=[int(a.n_failed) for a in atlases],
        seconds=time.perf_counter() - t0,
        global_found=[_has_global(a) for a in atlases],
        rounds=rounds,
        failures=[a.failures for a in atlases],
        newton_iter=newton_iter,
        max_rounds=max_rounds,
        warnings=messages,
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
    bad_fraction : list of float or None
        Per k: the share of bad end points among the starts whose EM converged (largest
        step below ``tol`` within ``max_iter`` steps); None if none converged.
        Unconverged starts are not classified.
    ci : list of list of float or None
        95% Wilson intervals of ``bad_fraction`` (over the converged starts).
    unconverged : list of int
        Starts whose EM had not converged after ``max_iter`` steps.
    seconds : list of float
    seed : int
    bad_bounds : list of list of float
        Per k: the bad share over *all* starts whatever the unconverged ones would reach,
        ``[bad / n_starts, (bad + unconverged) / n_starts]``.
    bad_last_iterate : list of float
        Per k: the bad share over all starts when unconverged starts are classified by
        their last iterate (what the study reported before it set them apart).
    max_iter : int
    tol : float
    warnings : list of str
        Values of k whose unconverged starts exceeded ``warn_fraction``.
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
    bad_bounds: list = dataclasses.field(default_factory=list)
    bad_last_iterate: list = dataclasses.field(default_factory=list)
    max_iter: int = 500
    tol: float = RANDOM_INIT_TOL
    warnings: list = dataclasses.field(default_factory=list)


def random_init_study(
    ks=(3, 5, 8, 12, 16, 20),
    *,
    family: str = "line",
    d: int = 1,
    delta: float = 10.0,
    n_starts: int = 200,
    scheme: str = "data",
    max_iter: int = 500,
    tol: float = RANDOM_INIT_TOL,
    warn_fraction: float = WARN_FRACTION,
    seed: int = 0,
    progress=None,
) -> RandomInitResult:
    """Run EM from random starts for growing k = k* and count the bad end points.

    An end point is *good* when every group of its structure is a correct fit
    (:func:`gmmscape.landscape.structure.groups`) with error below 1 sigma, i.e. it is in
    the global minimum's basin; anything else (a one-fits-many or many-fit-one group) is
    *bad*. Jin et al. (NeurIPS 2016) prove the bad probability is at least
    ``1 - exp(-Omega(k))``. Only the vmapped batch phase runs (no polish).

    Starts whose EM has not converged after ``max_iter`` steps are not classified: they
    are counted (``unconverged``), left out of ``bad_fraction``, bracketed by
    ``bad_bounds``, and above ``warn_fraction`` of the starts a :class:`StudyWarning`
    says so.

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
        EM steps per start.
    tol : float, default RANDOM_INIT_TOL
        A start has converged when its largest coordinate step is below this.
    warn_fraction : float, default WARN_FRACTION
    seed : int, default 0
    progress : callable, optional
        ``progress(done, total)``.

    Returns
    -------
    RandomInitResult
    """
    from gmmscape.landscape._problem import make_problem

    ks = [check_positive_int(k, "ks") for k in ks]
    if not ks:
        raise ValueError("ks is empty; give at least one k.")
    n_starts = check_positive_int(n_starts, "n_starts")
    max_iter = check_positive_int(max_iter, "max_iter")
    tol = check_positive(tol, "tol")
    warn_fraction = _check_fraction(warn_fraction, "warn_fraction")
    bad_frac, cis, unconv, secs, bounds, last_it, messages = [], [], [], [], [], [], []
    for i, k in enumerate(ks):
        t0 = time.perf_counter()
        truth = check_truth(truth_family(family, k, d, delta, seed))
        prob = make_problem(truth, k)
        starts, _ = make_starts(truth, k, n_starts, (scheme,), seed + k)
        ends, last, _ = run_batch(prob.batch, prob.to_frame(starts), max_iter=max_iter, tol=tol)
        converged = last <= tol
        beta = np.asarray(truth.means)
        bad = np.zeros(n_starts, dtype=bool)
        for j, e in enumerate(prob.lift(ends)):
            gs = groups(e, beta)
            bad[j] = not all(g["kind"] == "correct fit" and g["error"] < 1.0 for g in gs)
        n_conv, n_unconv = int(converged.sum()), int((~converged).sum())
        bad_conv = int((bad & converged).sum())
        bad_frac.append(bad_conv / n_conv if n_conv else None)
        cis.append(list(wilson(bad_conv, n_conv)) if n_conv else None)
        unconv.append(n_unconv)
        bounds.append([bad_conv / n_starts, (bad_conv + n_unconv) / n_starts])
        last_it.append(float(bad.mean()))
        if n_unconv > warn_fraction * n_starts:
            _warn(
                messages,
                f"k = {k}: {n_unconv} of {n_starts} starts did not converge in max_iter = "
                f"{max_iter} EM steps (largest step above {tol:g}); they are not classified "
                f"(bad share over all starts between {bounds[-1][0]:.3f} and "
                f"{bounds[-1][1]:.3f}). Raise max_iter (--max-iter).",
            )
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
        bad_bounds=bounds,
        bad_last_iterate=last_it,
        max_iter=max_iter,
        tol=tol,
        warnings=messages,
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

    from gmmscape._files import write_json
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


def _warn_failed(atlas: Atlas) -> None:
    """A sweep cell's warning (stored with its row) when too many starts failed."""
    if atlas.n_failed > WARN_FRACTION * atlas.n_starts:
        warnings.warn(
            f"{atlas.n_failed} of {atlas.n_starts} starts failed "
            f"({_reasons(atlas.failures)}); critical points may be missing.",
            StudyWarning,
            stacklevel=3,
        )


def _run_landscape(p: LandscapeParams) -> dict:
    truth = Mixture(p.truth_means, sigma=p.sigma)
    atlas = explore(truth, p.k, n_starts=p.n_starts, method=p.method, seed=p.seed)
    _warn_failed(atlas)
    return atlas_summary(atlas)


def _run_separation(p: SeparationParams) -> dict:
    truth = truth_family(p.family, p.k_star, p.d, p.delta, p.seed)
    atlas = explore(truth, p.k, n_starts=p.n_starts, seed=p.seed)
    _warn_failed(atlas)
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
