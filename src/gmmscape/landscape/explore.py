"""Explore a population likelihood landscape: many starts, polish, dedup, certify, classify.

:func:`explore` is the entry point (docs/reference.md section 3; Chen, Song, Xi and Zhang,
"Local Minima Structures in Gaussian Mixture Models", IEEE TIT 2024). Pipeline:

1. **Starts** from documented schemes (:mod:`gmmscape.landscape.starts`) or given by the
   user, projected onto the problem's frame (:mod:`gmmscape.landscape._problem`).
2. **Batch phase**: population EM (or gradient EM) from every start at once, vmapped and
   jitted on a cheap node set, until the largest step is below ``batch_tol`` or
   ``max_iter`` steps (``method="newton"`` skips it).
3. **Clusters**: end points are grouped, up to a permutation of the estimates, by leader
   clustering in the max-norm with radius ``cluster_tol * sigma`` (estimates sorted by
   their projection on a fixed generic direction). Each cluster's leader, and the member
   farthest from it, are polished; if those two reach different critical points every
   member of that cluster is polished. Every start is thus assigned to the polished
   critical point of its cluster.
4. **Polish**: damped Newton (:func:`gmmscape.landscape.solvers.newton_polish`) on the
   accurate node set to ``|grad| <= 1e-12``; a polished point counts as converged when
   ``|grad| <= grad_tol`` (default 1e-9) and every estimate keeps responsibility mass
   above :data:`MIN_MASS`. Starts that fail are counted and listed, never dropped.
5. **Dedup**: polished points equal up to a permutation of the estimates (Hungarian
   matching, largest matched distance at most ``dedup_tol * sigma``) are one point; its
   basin fraction is the share of all starts that reached it, with a 95% Wilson interval.
   For frames with ``r >= 3`` (where accurate nodes are costly) step 4 first runs on
   the batch nodes, the results are merged (tolerance ``10 * dedup_tol``), and one point
   per merged result is polished again on the accurate nodes.
6. **Certify** (:mod:`gmmscape.landscape.certify`) and **classify**
   (:mod:`gmmscape.landscape.structure`) each point.
"""

from __future__ import annotations

import time

import jax.numpy as jnp
import numpy as np
from scipy.optimize import linear_sum_assignment

from gmmscape._validation import as_float_array, check_positive, check_positive_int
from gmmscape.core.mixture import Mixture
from gmmscape.landscape._problem import Problem, make_problem
from gmmscape.landscape.atlas import Atlas, CriticalPoint, wilson
from gmmscape.landscape.certify import certify
from gmmscape.landscape.solvers import newton_polish, run_batch
from gmmscape.landscape.starts import SCHEMES, make_starts
from gmmscape.landscape.structure import groups, is_non_overlapping, signature

#: Polished points with an estimate whose responsibility mass is below this failed (the
#: estimate ran off to infinity, where the gradient vanishes without a critical point).
MIN_MASS = 1e-8
#: True centers closer than this (units of sigma) are coincident.
COINCIDENT_TOL = 1e-6
METHODS = ("em", "gradient-em", "newton")
#: Frames of this dimension or more polish in two stages: Newton on the cheap batch nodes
#: for every cluster, then on the accurate nodes for one point per distinct result.
TWO_STAGE_R = 3


def check_truth(truth) -> Mixture:
    """Check that ``truth`` is an equal-weight mixture with distinct centers.

    Parameters
    ----------
    truth : Mixture

    Returns
    -------
    Mixture
    """
    if not isinstance(truth, Mixture):
        raise ValueError(f"truth must be a gmmscape.Mixture; got {type(truth).__name__}.")
    w = np.asarray(truth.weights)
    if not np.allclose(w, 1.0 / truth.k, rtol=0, atol=1e-12):
        raise ValueError(f"truth must have equal weights (the paper's setting); got {w}.")
    beta = np.asarray(truth.means)
    if truth.k > 1:
        dist = np.linalg.norm(beta[:, None] - beta[None], axis=-1)
        dist[np.diag_indices(truth.k)] = np.inf
        i, j = np.unravel_index(np.argmin(dist), dist.shape)
        if dist[i, j] < COINCIDENT_TOL * float(truth.sigma):
            raise ValueError(
                f"truth has coincident centers {min(i, j)} and {max(i, j)} "
                f"(distance {dist[i, j]:.3g}); merge them into one center."
            )
    return truth


def _direction(r: int) -> np.ndarray:
    u = np.sqrt(np.arange(2, r + 2, dtype=float)) % 1.0 + 0.5
    return u / np.linalg.norm(u)


def canonical(points: np.ndarray) -> np.ndarray:
    """Sort the estimates of each point by their projection on a fixed generic direction.

    Parameters
    ----------
    points : ndarray of shape (n, k, r)

    Returns
    -------
    ndarray of shape (n, k, r)
    """
    order = np.argsort(points @ _direction(points.shape[-1]), axis=1, kind="stable")
    return np.take_along_axis(points, order[..., None], axis=1)


def perm_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Largest matched distance between two sets of estimates, matched by Hungarian.

    The matching minimizes the sum of squared distances (scipy's
    ``linear_sum_assignment``).

    Parameters
    ----------
    a, b : ndarray of shape (k, r)

    Returns
    -------
    float
    """
    cost = np.sum((a[:, None, :] - b[None, :, :]) ** 2, axis=-1)
    rows, cols = linear_sum_assignment(cost)
    return float(np.sqrt(cost[rows, cols].max()))


def leader_clusters(points: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Leader clustering of canonical points in the max-norm.

    Parameters
    ----------
    points : ndarray of shape (n, k, r)
    radius : float

    Returns
    -------
    leaders : ndarray of shape (c,)
        Index of each cluster's leader.
    labels : ndarray of shape (n,)
    """
    flat = canonical(points).reshape(points.shape[0], -1)
    leaders: list[int] = []
    lead = np.empty((0, flat.shape[1]))
    labels = np.empty(flat.shape[0], dtype=int)
    for i, x in enumerate(flat):
        if lead.shape[0]:
            dist = np.max(np.abs(lead - x), axis=1)
            j = int(np.argmin(dist))
            if dist[j] <= radius:
                labels[i] = j
                continue
        labels[i] = len(leaders)
        leaders.append(i)
        lead = np.vstack([lead, x])
    return np.asarray(leaders, dtype=int), labels


def merge_points(points: np.ndarray, tol: float) -> np.ndarray:
    """Label points equal up to a permutation of the estimates (within ``tol``).

    Parameters
    ----------
    points : ndarray of shape (n, k, r)
    tol : float

    Returns
    -------
    labels : ndarray of shape (n,)
        Labels ``0..u-1`` in order of first appearance.
    """
    reps: list[np.ndarray] = []
    labels = np.empty(points.shape[0], dtype=int)
    for i, p in enumerate(points):
        for j, q in enumerate(reps):
            if perm_distance(p, q) <= tol:
                labels[i] = j
                break
        else:
            labels[i] = len(reps)
            reps.append(p)
    return labels


def explore(
    truth: Mixture,
    k: int,
    *,
    n_starts: int = 1000,
    schemes=SCHEMES,
    starts=None,
    method: str = "em",
    eta: float = 1.0,
    max_iter: int = 50,
    batch_tol: float = 1e-8,
    grad_tol: float = 1e-9,
    newton_iter: int = 100,
    cluster_tol: float = 0.05,
    dedup_tol: float = 1e-3,
    frame: str = "auto",
    diameter: float | None = None,
    seed: int = 0,
    progress=None,
) -> Atlas:
    """Map the landscape of the population NLL of a ``k``-mean model fitted to ``truth``.

    Parameters
    ----------
    truth : Mixture
        Equal-weight isotropic truth, ``k*`` distinct centers in dimension ``d``; the model
        has ``k`` equal weights and the truth's sigma.
    k : int
        Number of model means (>= 1).
    n_starts : int, default 1000
        Number of starts drawn from ``schemes`` (ignored when ``starts`` is given).
    schemes : sequence of str, default all of :data:`gmmscape.landscape.starts.SCHEMES`
    starts : array_like of shape (n, k, d), optional
        User-given starts.
    method : {"em", "gradient-em", "newton"}, default "em"
        The batch phase (``"newton"``: none, polish straight from the starts).
    eta : float, default 1.0
        Gradient-EM step size.
    max_iter : int, default 50
        Steps of the batch phase (Newton finishes what EM leaves; EM near a
        many-fit-one group converges only sub-linearly).
    batch_tol : float, default 1e-8
        The batch phase stops when every step is below this.
    grad_tol : float, default 1e-9
        Gradient norm below which a polished point is a critical point.
    newton_iter : int, default 100
        Newton iterations of the polish.
    cluster_tol, dedup_tol : float
        Clustering radius of end points and dedup tolerance of polished points (units of
        sigma).
    frame : {"auto", "span", "full"}, default "auto"
        See :mod:`gmmscape.landscape._problem`.
    diameter : float, optional
        Length that sets the quadrature steps (default: from the truth and the starts);
        see :func:`gmmscape.landscape._problem.make_problem`.
    seed : int, default 0
        Seed of the starts and of the certification's random directions.
    progress : callable, optional
        ``progress(stage: str, done: int, total: int)``.

    Returns
    -------
    Atlas
    """
    truth = check_truth(truth)
    k = check_positive_int(k, "k")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}.")
    check_positive(eta, "eta")
    check_positive(grad_tol, "grad_tol")
    max_iter = check_positive_int(max_iter, "max_iter")
    say = progress or (lambda *a: None)
    sigma = float(truth.sigma)
    t0 = time.perf_counter()
    if starts is None:
        n_starts = check_positive_int(n_starts, "n_starts")
        start_pts, _ = make_starts(truth, k, n_starts, schemes, seed)
        used_schemes = list(schemes)
    else:
        start_pts = as_float_array(starts, "starts", ndim=3)
        if start_pts.shape[1:] != (k, truth.d):
            raise ValueError(
                f"starts must have shape (n, {k}, {truth.d}) (n starts of k means in d "
                f"dimensions); got {start_pts.shape}."
            )
        used_schemes = ["user"]
    n = start_pts.shape[0]
    spread = np.max(np.abs(start_pts - np.asarray(truth.means).mean(axis=0)))
    extent = max(0.0, 2 * spread - float(np.ptp(np.asarray(truth.means), axis=0).max()))
    prob = make_problem(truth, k, frame=frame, extent=min(extent, 10 * sigma), diameter=diameter)
    s_r = prob.to_frame(start_pts)
    t_setup = time.perf_counter()
    if method == "newton":
        ends, unconverged = s_r, 0
    else:
        say("batch", 0, n)
        ends, last, _ = run_batch(
            prob.batch,
            s_r,
            method=method,
            eta=eta,
            max_iter=max_iter,
            tol=batch_tol,
            progress=lambda m: say("batch", m, n),
        )
        unconverged = int(np.sum(~(last <= batch_tol)))
    t_batch = time.perf_counter()
    finite = np.all(np.isfinite(ends), axis=(1, 2))
    ends = np.where(finite[:, None, None], ends, s_r)
    leaders, labels = leader_clusters(ends, cluster_tol * sigma)
    polished: dict[int, tuple] = {}
    two_stage = prob.r >= TWO_STAGE_R
    stage_a = prob.batch if two_stage else prob.polish

    def polish(idx):
        idx = [i for i in idx if i not in polished]
        if not idx:
            return
        out = newton_polish(stage_a, ends[idx], max_iter=newton_iter)
        for j, i in enumerate(idx):
            polished[i] = tuple(o[j] for o in out)

    first = list(leaders)
    far = []
    flat = canonical(ends).reshape(n, -1)
    for c, lead in enumerate(leaders):
        members = np.flatnonzero(labels == c)
        if members.size > 1:
            dist = np.max(np.abs(flat[members] - flat[lead]), axis=1)
            far.append(int(members[np.argmax(dist)]))
    say("polish", 0, len(first) + len(far))
    polish(first + far)
    tol = dedup_tol * sigma
    for c, lead in enumerate(leaders):
        members = np.flatnonzero(labels == c)
        if members.size > 1:
            far_i = int(members[np.argmax(np.max(np.abs(flat[members] - flat[lead]), axis=1))])
            if perm_distance(polished[lead][0], polished[far_i][0]) > tol:
                polish(list(members))
    # each start -> the polished point of itself (if polished) or of its cluster leader
    owner = np.array([i if i in polished else leaders[labels[i]] for i in range(n)])
    owner[~finite] = -1
    if two_stage:
        owner, polished = _second_stage(prob, owner, polished, 10 * dedup_tol * sigma, newton_iter)
    t_polish = time.perf_counter()
    keys = sorted(set(owner[owner >= 0].tolist()))
    ok_keys, failures_raw = [], []
    for i in keys:
        _, gn, _, mass = polished[i]
        if not np.isfinite(gn) or gn > grad_tol:
            failures_raw.append((i, "gradient norm above grad_tol"))
        elif np.min(mass) < MIN_MASS:
            failures_raw.append((i, "an estimate has no responsibility mass (ran away)"))
        else:
            ok_keys.append(i)
    pts = np.stack([polished[i][0] for i in ok_keys]) if ok_keys else np.zeros((0, k, prob.r))
    merged = merge_points(pts, tol) if len(ok_keys) else np.zeros(0, dtype=int)
    counts = np.zeros(int(merged.max()) + 1 if merged.size else 0, dtype=int)
    rep_of: dict[int, int] = {}
    for key, lab in zip(ok_keys, merged, strict=True):
        counts[lab] += int(np.sum(owner == key))
        best = rep_of.get(lab)
        if best is None or polished[key][1] < polished[best][1]:
            rep_of[lab] = key
    n_failed = int(np.sum(~finite))
    failures = []
    if (~finite).any():
        failures.append(
            {
                "means": None,
                "grad_norm": None,
                "reason": "non-finite batch iterate",
                "count": int(np.sum(~finite)),
            }
        )
    for i, reason in failures_raw:
        c = int(np.sum(owner == i))
        n_failed += c
        failures.append(
            {
                "means": prob.lift(polished[i][0]).tolist(),
                "grad_norm": float(polished[i][1]),
                "reason": reason,
                "count": c,
            }
        )
    say("certify", 0, len(rep_of))
    points = []
    for lab in range(len(counts)):
        key = rep_of[lab]
        points.append(_point(prob, polished[key], int(counts[lab]), n, seed))
        say("certify", lab + 1, len(rep_of))
    # gap to the global minimum: the best minimum found (the best point if none is one)
    best = min((p.kl for p in points if p.is_minimum), default=None)
    if best is None:
        best = min((p.kl for p in points), default=0.0)
    for p in points:
        p.gap = float(p.kl - best)
    points.sort(key=lambda p: (p.kl, p.index))
    t_end = time.perf_counter()
    return Atlas(
        truth_means=np.asarray(truth.means).tolist(),
        sigma=sigma,
        k=k,
        n_starts=n,
        schemes=used_schemes,
        method=method,
        seed=int(seed),
        points=points,
        n_failed=n_failed,
        failures=failures,
        grad_tol=float(grad_tol),
        batch_unconverged=unconverged,
        quadrature=prob.info,
        seconds={
            "setup": t_setup - t0,
            "batch": t_batch - t_setup,
            "polish": t_polish - t_batch,
            "certify": t_end - t_polish,
            "total": t_end - t0,
            "per_start": (t_end - t0) / n,
        },
    )


def _second_stage(prob: Problem, owner, polished, tol, newton_iter):
    """Merge the batch-node critical points, polish one of each on the accurate nodes."""
    keys = sorted(set(owner[owner >= 0].tolist()))
    if not keys:
        return owner, {}
    pts = np.stack([polished[i][0] for i in keys])
    labels = merge_points(pts, tol)
    reps = []
    for lab in range(int(labels.max()) + 1):
        members = [keys[j] for j in np.flatnonzero(labels == lab)]
        reps.append(min(members, key=lambda i: polished[i][1]))
    out = newton_polish(prob.polish, pts[[keys.index(i) for i in reps]], max_iter=newton_iter)
    new_polished = {lab: tuple(o[lab] for o in out) for lab in range(len(reps))}
    lab_of = dict(zip(keys, labels.tolist(), strict=True))
    new_owner = np.array([lab_of[o] if o >= 0 else -1 for o in owner])
    return new_owner, new_polished


def _point(prob: Problem, polished: tuple, count: int, n: int, seed: int) -> CriticalPoint:
    m_r, gn, _, _ = polished
    cert = certify(prob.polish, m_r, seed=seed)
    means = prob.lift(m_r)
    gs = groups(means, np.asarray(prob.truth.means), prob.sigma)
    lo, hi = wilson(count, n)
    return CriticalPoint(
        means=means.tolist(),
        kl=float(prob.polish.kl(jnp.asarray(m_r))),
        gap=float("nan"),
        grad_norm=float(gn),
        kind=cert.kind,
        index=cert.index,
        eigenvalues=cert.eigenvalues,
        n_null=cert.n_null,
        null_tests=cert.null_tests,
        groups=gs,
        signature=signature(gs),
        non_overlapping=is_non_overlapping(gs),
        max_error=max(g["error"] for g in gs),
        count=count,
        fraction=count / n,
        ci=[lo, hi],
    )
