"""Sources: the measures that every statistic is an expectation over.

The one engine (README "Layout"): the sources are the only code that knows where points
come from.

A source only supplies weighted points in batches; :func:`gmmscape.core.stats.batch_stats`
sums the statistics and :mod:`gmmscape.core.updates` turns the sums into results. The
methods of :class:`Source` are written once for all sources.

``sample(X)``
    The points of a dataset with optional sample weights, read in chunks.
``stream(truth, n, seed)``
    ``n`` points drawn from a known truth chunk by chunk, never all held in memory.
``population(truth)``
    The exact infinite-sample limit: quadrature under the truth in the span of the model
    means and the true centers.
"""

from __future__ import annotations

import os
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from gmmscape._validation import (
    as_float_array,
    check_positive,
    check_positive_int,
)
from gmmscape.core import quadrature, updates
from gmmscape.core.chunks import chunk_layout, chunk_length, padded_length, to_chunks
from gmmscape.core.frame import (
    Frame,
    identity_frame,
    lift_hessian,
    lift_points,
    lift_vectors,
    span_frame,
    to_frame,
)
from gmmscape.core.mixture import Mixture, Params
from gmmscape.core.stats import (
    Stats,
    add_stats,
    batch_stats,
    batched_family_stats,
    draw,
    family_stats,
)

#: Default relative and absolute tolerances of population quadrature.
POPULATION_RTOL = 1e-10
POPULATION_ATOL = 1e-12
#: Default largest number of quadrature nodes per true component.
POPULATION_MAX_NODES = 2**22
#: Points summed by one compiled call are capped near this many ``k * r`` products.
_CHUNK_BUDGET = 2**22


class QuadratureWarning(UserWarning):
    """A population expectation did not reach its tolerance within the node budget."""


@dataclass(frozen=True)
class QuadratureReport:
    """How a population expectation was integrated, and how accurate it is.

    Attributes
    ----------
    rule : str
        The rule whose result was returned.
    r : int
        Dimension of the span of the model means and the true centers.
    level : int
        Refinement level of the returned result.
    nodes : int
        Nodes per true component at that level (over all replicates; for reduced rules,
        the model side plus the truth side).
    errors : dict of str to float
        Estimated largest absolute error of each returned quantity: the change from the
        previous level for deterministic rules, three replicate standard errors for
        randomized ones.
    converged : bool
        Whether every error estimate met ``atol + rtol * max|value|``.
    seconds : float
        Wall time of the whole integration, all levels and rules included.
    max_relative_error : float
        The returned result's largest error estimate relative to its quantity's scale
        (the largest of ``relative_errors``).
    tried : list of dict
        One entry per (rule, level) evaluated: rule, level, nodes, trapezoid radius
        (None for other rules) and the largest relative error estimate.
    relative_errors : dict of str to float
        Each quantity's error estimate relative to its scale, ``errors[key] /
        max(max|value|, atol / rtol)``: a warning's figure is one of these, and names it.
    worst : str or None
        The quantity with the largest relative error estimate.
    reduced : tuple of (int, int) or None
        For ``rule="auto"``: the dimensions ``(q, q*)`` of the spans of the model's and
        the truth's mean differences, on which ``rule`` ran (times an exact degree-3 rule
        on the other ``r - q`` directions); ``KL`` is ``E[log p*] - E[log p]`` from the
        two. None when a rule was asked for by name (it ran on all ``r`` coordinates).
    """

    rule: str
    r: int
    level: int
    nodes: int
    errors: dict
    converged: bool
    seconds: float
    max_relative_error: float
    tried: list = field(default_factory=list)
    relative_errors: dict = field(default_factory=dict)
    worst: str | None = None
    reduced: tuple | None = None


@dataclass(frozen=True)
class Expectation:
    """Every statistic of a model under a source, from one pass over its points.

    Attributes
    ----------
    nll : float
        Mean negative log-likelihood.
    kl : float or None
        ``KL(truth || model)`` (estimated for samples); None if the truth is unknown.
    grad : numpy.ndarray of shape (k, d)
        ``d nll / d means``.
    hessian : numpy.ndarray of shape (k*d, k*d) or None
        ``d^2 nll / d means^2`` (row-major over ``(k, d)``), if requested.
    em_means : numpy.ndarray of shape (k, d)
        Means after one EM step.
    em_weights : numpy.ndarray of shape (k,)
        Responsibility masses ``E[psi_i]``, the EM update of the weights.
    mean_shift : numpy.ndarray of shape (k, d)
        ``E[psi_i (x - mu_i)]``, the direction of gradient EM.
    se : dict of str to float or ndarray, or None
        Standard errors of ``nll``, ``kl`` and ``grad`` for sample and stream sources.
    quadrature : QuadratureReport or None
        For the population source.
    """

    nll: float
    kl: float | None
    grad: np.ndarray
    hessian: np.ndarray | None
    em_means: np.ndarray
    em_weights: np.ndarray
    mean_shift: np.ndarray
    se: dict | None = None
    quadrature: QuadratureReport | None = None


def _finalize(
    stats: Stats, model_r: Mixture, frame: Frame, ref_sigma, hessian: bool
) -> dict[str, jax.Array]:
    """Turn summed statistics into lifted results (one implementation for all sources)."""
    out = {
        "nll": updates.nll(stats, model_r, frame),
        "grad": lift_vectors(frame, updates.grad(stats, model_r)),
        "em_means": lift_points(frame, updates.em_means(stats, model_r)),
        "em_weights": updates.em_weights(stats),
        "mean_shift": lift_vectors(frame, updates.mean_shift(stats, model_r)),
    }
    if stats.lr is not None:
        out["kl"] = updates.kl(stats, model_r, frame, ref_sigma)
    if hessian:
        h, perp = updates.hessian(stats, model_r, frame)
        out["hessian"] = lift_hessian(frame, h, perp)
    return out


def _mean_se(w, w2, s1_w2, s2_w2, mean):
    """Standard error of a weighted mean from chunk-summable moments."""
    var = (s2_w2 - 2 * mean * s1_w2 + mean**2 * w2) / w**2
    return np.sqrt(np.maximum(var, 0.0))


def _chunk_size(k: int, r: int, hessian: bool) -> int:
    per_point = k * r * (1 + (k * r if hessian else 0)) + k
    return chunk_length(per_point, _CHUNK_BUDGET, lo=256, hi=2**16)


def _sum_points(points, weights, model_r, ref_r, hessian, chunk=None) -> Stats:
    """Sum statistics over host arrays ``points`` (m, r) and ``weights`` (m,) in chunks.

    Chunks are padded with zero-weight rows to a power of two, so a handful of compiled
    shapes serve every call.
    """
    m, r = points.shape
    chunk = chunk or _chunk_size(model_r.k, r, hessian)
    total = None
    for start in range(0, m, chunk):
        x = points[start : start + chunk]
        w = weights[start : start + chunk]
        size = padded_length(x.shape[0], chunk, lo=256)
        if x.shape[0] < size:
            pad = size - x.shape[0]
            x = np.concatenate([x, np.zeros((pad, r), dtype=x.dtype)])
            w = np.concatenate([w, np.zeros(pad, dtype=w.dtype)])
        s = batch_stats(jnp.asarray(x), jnp.asarray(w), model_r, ref_r, hessian=hessian)
        total = add_stats(total, s)
    return total


class Source:
    """A measure over points: the base of :func:`sample`, :func:`stream`, :func:`population`.

    Subclasses implement :meth:`expect`; every other method is defined once here in terms
    of it.
    """

    d: int
    truth: Mixture | None

    def _check_model(self, model) -> None:
        if not isinstance(model, Mixture):
            raise ValueError(f"model must be a gmmscape.Mixture; got {type(model).__name__}.")
        if model.d != self.d:
            raise ValueError(
                f"model has dimension d={model.d} but the source's points have d={self.d}."
            )

    def expect(self, model: Mixture, *, hessian: bool = False) -> Expectation:
        """All statistics of ``model`` under this source.

        Parameters
        ----------
        model : Mixture with k components in dimension d
        hessian : bool, default False
            Also compute the (k*d, k*d) Hessian.

        Returns
        -------
        Expectation
        """
        raise NotImplementedError

    def family_stats(self, params: Params, family: str) -> Stats:
        """The E-step statistics of a mixture of any covariance family under this source.

        The estimator's half of the source (the one engine, README "Layout"): the same points (a
        sample, a stream, quadrature nodes of the truth) summed by
        :func:`gmmscape.core.stats.family_stats`; :func:`gmmscape.core.updates.m_step`
        turns them into an EM step.

        Parameters
        ----------
        params : Params
            One mixture of ``family`` with k components in dimension d.
        family : str
            A family of :data:`gmmscape.core.families.FAMILIES`.

        Returns
        -------
        Stats
            ``w, ll, r0 (k,), r1 (k, d), s2`` summed over the source's weighted points.
        """
        raise NotImplementedError

    def _check_params(self, params) -> None:
        if not isinstance(params, Params):
            raise ValueError(
                f"params must be a gmmscape.core.mixture.Params; got {type(params).__name__}."
            )
        d = int(np.shape(params.means)[-1])
        if d != self.d:
            raise ValueError(
                f"params have dimension d={d} but the source's points have d={self.d}."
            )

    def nll(self, model: Mixture) -> float:
        """Mean negative log-likelihood ``-E[log p_model(x)]``.

        Parameters
        ----------
        model : Mixture

        Returns
        -------
        float
        """
        return self.expect(model).nll

    def kl(self, model: Mixture) -> float:
        """``KL(truth || model) = E_truth[log p_truth(x) - log p_model(x)]``.

        Parameters
        ----------
        model : Mixture

        Returns
        -------
        float
            Exact for the population source; a Monte-Carlo estimate for samples and
            streams.

        Raises
        ------
        ValueError
            If the source has no known truth.
        """
        if self.truth is None:
            raise ValueError(
                "kl needs a known truth: this sample has none; pass truth=Mixture(...) "
                "to gmmscape.sample."
            )
        return self.expect(model).kl

    def grad(self, model: Mixture) -> np.ndarray:
        """Gradient of the mean NLL with respect to the means.

        Parameters
        ----------
        model : Mixture

        Returns
        -------
        numpy.ndarray of shape (k, d)
        """
        return self.expect(model).grad

    def hessian(self, model: Mixture) -> np.ndarray:
        """Hessian of the mean NLL with respect to the means.

        Parameters
        ----------
        model : Mixture

        Returns
        -------
        numpy.ndarray of shape (k*d, k*d)
            Row ``i*d + a`` is the derivative with respect to ``means[i, a]``.
        """
        return self.expect(model, hessian=True).hessian

    def em_step(self, model: Mixture, *, update_weights: bool = False) -> Mixture:
        """One EM step: ``mu_i <- E[psi_i x] / E[psi_i]``.

        Parameters
        ----------
        model : Mixture
        update_weights : bool, default False
            Also set ``pi_i <- E[psi_i]``; otherwise the weights stay fixed.

        Returns
        -------
        Mixture
            A component with zero responsibility mass keeps its mean.
        """
        e = self.expect(model)
        w = e.em_weights / e.em_weights.sum() if update_weights else model.weights
        return Mixture(e.em_means, weights=w, sigma=float(model.sigma))

    def gradient_em_step(self, model: Mixture, eta: float) -> Mixture:
        """One gradient EM step: ``mu_i <- mu_i + eta E[psi_i (x - mu_i)]``.

        Parameters
        ----------
        model : Mixture
        eta : float
            Step size (> 0).

        Returns
        -------
        Mixture
            Weights and sigma unchanged.
        """
        eta = check_positive(eta, "eta")
        e = self.expect(model)
        means = np.asarray(model.means) + eta * e.mean_shift
        if not np.isfinite(means).all():
            raise FloatingPointError(
                f"gradient EM step with eta={eta:g} produced non-finite means; lower eta."
            )
        return Mixture(means, weights=model.weights, sigma=float(model.sigma))


def _to_numpy(out: dict) -> dict:
    return {key: np.asarray(val) for key, val in out.items()}


def _expectation_from(out: dict, se=None, quadrature=None) -> Expectation:
    return Expectation(
        nll=float(out["nll"]),
        kl=float(out["kl"]) if "kl" in out else None,
        grad=out["grad"],
        hessian=out.get("hessian"),
        em_means=out["em_means"],
        em_weights=out["em_weights"],
        mean_shift=out["mean_shift"],
        se=se,
        quadrature=quadrature,
    )


class SampleSource(Source):
    """The empirical measure of a dataset (see :func:`sample`)."""

    def __init__(self, X, weights=None, truth: Mixture | None = None, chunk_size=None):
        x = as_float_array(X, "X", 2)
        n, d = x.shape
        if weights is None:
            w = np.ones(n)
        else:
            w = as_float_array(weights, "weights", 1)
            if w.shape != (n,):
                raise ValueError(
                    f"weights must have shape ({n},), one per row of X; got {w.shape}."
                )
            if (w < 0).any():
                raise ValueError(f"weights must be non-negative; got min {w.min():.6g}.")
            if w.sum() <= 0:
                raise ValueError("weights must not all be zero.")
        if truth is not None:
            if not isinstance(truth, Mixture):
                raise ValueError(f"truth must be a gmmscape.Mixture; got {type(truth).__name__}.")
            if truth.d != d:
                raise ValueError(f"truth has dimension d={truth.d} but X has d={d} columns.")
        self.X, self.weights, self.truth, self.d = x, w, truth, d
        self.chunk_size = (
            None if chunk_size is None else check_positive_int(chunk_size, "chunk_size")
        )

    @property
    def n(self) -> int:
        """Number of points."""
        return self.X.shape[0]

    def _stats(self, model: Mixture, hessian: bool) -> Stats:
        return _sum_points(self.X, self.weights, model, self.truth, hessian, self.chunk_size)

    def expect(self, model: Mixture, *, hessian: bool = False) -> Expectation:
        self._check_model(model)
        stats = self._stats(model, hessian)
        frame = identity_frame(self.d)
        ref_sigma = None if self.truth is None else self.truth.sigma
        out = _to_numpy(_finalize(stats, model, frame, ref_sigma, hessian))
        return _expectation_from(out, se=_sample_se(stats, model))

    def family_stats(self, params: Params, family: str) -> Stats:
        self._check_params(params)
        k = int(np.shape(params.means)[0])
        if getattr(self, "_chunks_k", None) != k:  # laid out once per number of components
            self._chunks = Chunks.from_arrays(self.X, self.weights, k=k, chunk_size=self.chunk_size)
            self._chunks_k = k
        return _first(sum_parts(self._chunks.stat_parts(_one(params), family)))

    def __repr__(self) -> str:
        return f"SampleSource(n={self.n}, d={self.d}, truth={'known' if self.truth else 'none'})"


def _sample_se(stats: Stats, model: Mixture) -> dict:
    """Standard errors of nll, kl and grad from the chunk-summed second moments."""
    w, w2 = float(stats.w), float(stats.w2)
    se = {
        "nll": float(_mean_se(w, w2, float(stats.ll_w2), float(stats.ll_sq), float(stats.ll) / w))
    }
    if stats.lr is not None:
        se["kl"] = float(
            _mean_se(w, w2, float(stats.lr_w2), float(stats.lr_sq), float(stats.lr) / w)
        )
    shift = np.asarray(updates.mean_shift(stats, model))
    s2 = float(model.sigma) ** 2
    se["grad"] = _mean_se(w, w2, np.asarray(stats.pg_w2), np.asarray(stats.pg_sq), shift) / s2
    return se


def keep_fields(stats: Stats, fields: tuple[str, ...] | None) -> Stats:
    """``stats`` with every field not in ``fields`` set to ``None`` (``None``: keep all).

    Inside a compiled loop this lets XLA drop the work of the statistics nobody reads.
    """
    if fields is None:
        return stats
    return Stats(**{f: (getattr(stats, f) if f in fields else None) for f in Stats._fields})


def _stream_chunk(key, i, n, truth, chunk):
    """Chunk ``i`` of the stream of ``key``: points ``(chunk, d)`` and weights ``(chunk,)``."""
    x = draw(jax.random.fold_in(key, i), truth, chunk)
    idx = i * chunk + jnp.arange(chunk)
    return x, (idx < n).astype(x.dtype)


@partial(jax.jit, static_argnames=("n_chunks", "chunk"))
def stream_points(key, n, truth, *, n_chunks, chunk):
    """Every chunk of a stream at once (the points :func:`_stream_stats` draws one by one).

    Returns
    -------
    x : array of shape (n_chunks, chunk, d)
    w : array of shape (n_chunks, chunk)
        1 for the first ``n`` points, 0 for the padding.
    """
    return jax.vmap(lambda i: _stream_chunk(key, i, n, truth, chunk))(jnp.arange(n_chunks))


def chunked_stats(x, w, model, ref=None, *, hessian=False, fields=None) -> Stats:
    """Sum the statistics of points held as chunks ``x`` (C, m, d), ``w`` (C, m) in a loop.

    Traceable (call it under ``jit``); ``fields`` as in :func:`keep_fields`.
    """

    def one(i):
        return keep_fields(batch_stats(x[i], w[i], model, ref, hessian=hessian), fields)

    return jax.lax.fori_loop(1, x.shape[0], lambda i, acc: add_stats(acc, one(i)), one(0))


@partial(jax.jit, static_argnames=("chunk", "hessian", "fields"))
def _stream_stats(key, n, n_chunks, truth, model, *, chunk, hessian, fields=None) -> Stats:
    """Draw ``n_chunks`` chunks of ``chunk`` points from ``truth`` and sum their statistics.

    Chunk ``i`` uses ``fold_in(key, i)``; points past ``n`` get weight 0. Only one chunk is
    alive at a time inside the compiled loop. ``fields`` as in :func:`keep_fields`.
    """

    def one(i):
        x, w = _stream_chunk(key, i, n, truth, chunk)
        return keep_fields(batch_stats(x, w, model, truth, hessian=hessian), fields)

    first = one(0)
    return jax.lax.fori_loop(1, n_chunks, lambda i, acc: add_stats(acc, one(i)), first)


@partial(jax.jit, static_argnames=("chunk", "family"))
def _stream_family_stats(key, n, n_chunks, truth, params, *, chunk, family) -> Stats:
    """:func:`_stream_stats` for a mixture of any family (the same points, drawn anew)."""

    def one(i):
        x, w = _stream_chunk(key, i, n, truth, chunk)
        return family_stats(x, w, params, family)

    return jax.lax.fori_loop(1, n_chunks, lambda i, acc: add_stats(acc, one(i)), one(0))


class StreamSource(Source):
    """``n`` points drawn from a known truth, chunk by chunk (see :func:`stream`)."""

    def __init__(self, truth: Mixture, n: int, seed: int, chunk_size: int = 2**16):
        if not isinstance(truth, Mixture):
            raise ValueError(f"truth must be a gmmscape.Mixture; got {type(truth).__name__}.")
        self.truth = truth
        self.d = truth.d
        self.n = check_positive_int(n, "n")
        self.seed = int(seed)
        self.chunk_size = check_positive_int(chunk_size, "chunk_size")

    def expect(self, model: Mixture, *, hessian: bool = False) -> Expectation:
        self._check_model(model)
        n_chunks = -(-self.n // self.chunk_size)
        stats = _stream_stats(
            jax.random.key(self.seed),
            self.n,
            n_chunks,
            self.truth,
            model,
            chunk=self.chunk_size,
            hessian=hessian,
        )
        frame = identity_frame(self.d)
        out = _to_numpy(_finalize(stats, model, frame, self.truth.sigma, hessian))
        return _expectation_from(out, se=_sample_se(stats, model))

    def family_stats(self, params: Params, family: str) -> Stats:
        self._check_params(params)
        params = Params(*(jnp.asarray(a, self.truth.means.dtype) for a in params))
        n_chunks = -(-self.n // self.chunk_size)
        key = jax.random.key(self.seed)
        return _stream_family_stats(
            key, self.n, n_chunks, self.truth, params, chunk=self.chunk_size, family=family
        )

    def __repr__(self) -> str:
        return (
            f"StreamSource(n={self.n}, d={self.d}, seed={self.seed}, chunk_size={self.chunk_size})"
        )


class PopulationSource(Source):
    """Exact expectations under a known truth (see :func:`population`)."""

    def __init__(
        self,
        truth: Mixture,
        rule: str = "auto",
        rtol: float = POPULATION_RTOL,
        atol: float = POPULATION_ATOL,
        max_nodes: int = POPULATION_MAX_NODES,
        seed: int = 0,
    ):
        if not isinstance(truth, Mixture):
            raise ValueError(f"truth must be a gmmscape.Mixture; got {type(truth).__name__}.")
        if rule != "auto" and rule not in quadrature.RULES:
            raise ValueError(f"rule must be 'auto' or one of {quadrature.RULES}; got {rule!r}.")
        self.truth = truth
        self.d = truth.d
        self.rule = rule
        self.rtol = check_positive(rtol, "rtol")
        self.atol = check_positive(atol, "atol")
        self.max_nodes = check_positive_int(max_nodes, "max_nodes")
        self.seed = int(seed)

    def frame(self, model: Mixture) -> Frame:
        """The coordinates of the span of ``model.means`` and the true centers.

        Parameters
        ----------
        model : Mixture

        Returns
        -------
        Frame
        """
        self._check_model(model)
        return span_frame(model, self.truth)

    @staticmethod
    def _points(z, wz, truth_r) -> tuple[np.ndarray, np.ndarray]:
        """Nodes ``z`` (m, r) of N(0, I_r) placed around every true center: (m k*, r) points."""
        s = float(truth_r.sigma)
        centers = np.asarray(truth_r.means)
        pis = np.asarray(truth_r.weights)
        keep = pis > 0
        pts = (centers[keep][:, None, :] + s * z[None, :, :]).reshape(-1, z.shape[1])
        wts = (pis[keep][:, None] * wz[None, :]).reshape(-1)
        return pts, wts

    def _stats_nodes(self, z, wz, model_r, truth_r, hessian) -> Stats:
        """Sum statistics over ``truth``: nodes ``z`` of N(0, I_r) around each true center."""
        pts, wts = self._points(z, wz, truth_r)
        return _sum_points(pts, wts, model_r, truth_r, hessian)

    def _stats_split(self, z, wz, zt, wzt, model_r, truth_r, hessian) -> Stats:
        """Statistics with the model's terms on nodes ``z`` and ``E[log p*]`` on nodes ``zt``.

        ``KL = E[log p*] - E[log p]``: the two expectations are integrated separately,
        each on nodes adapted to its own mixture (:func:`gmmscape.core.quadrature.embed`).
        """
        st = _sum_points(*self._points(z, wz, truth_r), model_r, None, hessian)
        tr = _sum_points(*self._points(zt, wzt, truth_r), truth_r, None, False)
        zero = jnp.zeros((), dtype=st.ll.dtype)
        return st._replace(lr=tr.ll * (st.w / tr.w) - st.ll, lr_w2=zero, lr_sq=zero)

    def _evaluate(self, nodes, model_r, truth_r, frame, hessian):
        """Results and, for randomized rules, replicate spreads.

        ``nodes`` is a :class:`~gmmscape.core.quadrature.NodeSet`, or a pair of them
        (model side, truth side) for the reduced rules.
        """
        reps = []
        pooled = None
        split = isinstance(nodes, tuple)
        main = nodes[0] if split else nodes
        for i, (z, wz) in enumerate(main.replicates):
            if split:
                other = nodes[1].replicates
                zt, wzt = other[i % len(other)]
                st = self._stats_split(z, wz, zt, wzt, model_r, truth_r, hessian)
            else:
                st = self._stats_nodes(z, wz, model_r, truth_r, hessian)
            pooled = add_stats(pooled, st)
            if main.randomized:
                reps.append(_to_numpy(_finalize(st, model_r, frame, truth_r.sigma, hessian)))
        out = _to_numpy(_finalize(pooled, model_r, frame, truth_r.sigma, hessian))
        spread = None
        if reps:
            spread = {
                key: quadrature.REPLICATE_Z
                * float(np.max(np.std([rep[key] for rep in reps], axis=0, ddof=1)))
                / np.sqrt(len(reps))
                for key in out
            }
        return out, spread

    def _bases(self, model_r, truth_r):
        """Bases of the spans of the model's and the truth's mean differences (frame coords)."""
        m = np.asarray(model_r.means)[np.asarray(model_r.weights) > 0]
        t = np.asarray(truth_r.means)[np.asarray(truth_r.weights) > 0]
        return quadrature.subspace(m) + quadrature.subspace(t)

    def _level_nodes(self, rule, r, level, radius, bases):
        """The node set(s) of one level: full ``r``-dimensional, or reduced (a pair)."""
        if bases is None:
            return quadrature.node_set(rule, r, level, self.seed, radius)
        m_in, m_out, t_in, t_out = bases
        return tuple(
            quadrature.embed(
                quadrature.reduced_node_set(rule, inside.shape[1], level, self.seed, radius),
                inside,
                outside,
            )
            for inside, outside in ((m_in, m_out), (t_in, t_out))
        )

    def _level_count(self, rule, r, level, radius, bases) -> int:
        if bases is None:
            return quadrature.node_count(rule, r, level, radius)
        # the budget bounds each of the two integrals (model side, truth side)
        return max(
            quadrature.reduced_node_count(rule, bases[i].shape[1], r, level, radius) for i in (0, 2)
        )

    def _accuracy(self, out: dict, errors: dict) -> tuple[bool, float]:
        """Whether every error meets the tolerance, and the largest relative error."""
        ok = all(
            err <= self.atol + self.rtol * float(np.max(np.abs(out[key])))
            for key, err in errors.items()
        )
        return bool(ok), max(self._relative(out, errors).values(), default=0.0)

    def _relative(self, out: dict, errors: dict) -> dict:
        """Each quantity's error estimate relative to its scale (floored at atol / rtol)."""
        return {
            key: float(err / max(float(np.max(np.abs(out[key]))), self.atol / self.rtol))
            for key, err in errors.items()
        }

    def expect(self, model: Mixture, *, hessian: bool = False) -> Expectation:
        t0 = time.perf_counter()
        frame = self.frame(model)
        model_r = to_frame(frame, model)
        truth_r = to_frame(frame, self.truth)
        r = frame.r
        if self.rule == "auto":
            bases = self._bases(model_r, truth_r)
            reduced = (bases[0].shape[1], bases[2].shape[1])
            rules = quadrature.reduced_rules(max(reduced))
        else:
            bases, reduced = None, None
            rules = (self.rule,)
        tried: list[dict] = []
        best = None  # (worst, rule, level, nodes, out, errors, converged)
        for rule in rules:
            prev = latest = None
            level = 0
            radius = quadrature.TRAPEZOID_RADIUS
            while self._level_count(rule, r, level, radius, bases) <= self.max_nodes:
                nodes = self._level_nodes(rule, r, level, radius, bases)
                size = sum(n.size for n in nodes) if bases is not None else nodes.size
                out, spread = self._evaluate(nodes, model_r, truth_r, frame, hessian)
                if rule == "trapezoid":
                    mass = out["em_weights"][out["em_weights"] > updates.EMPTY_MASS]
                    wanted = quadrature.tail_radius(float(mass.min()), self.rtol)
                    if wanted > radius:
                        radius, prev, level = wanted, None, max(level - 1, 0)
                        continue
                if spread is not None:
                    errors = spread
                elif prev is not None:
                    errors = {key: float(np.max(np.abs(out[key] - prev[key]))) for key in out}
                else:
                    errors = None
                if errors is not None:
                    ok, worst = self._accuracy(out, errors)
                    tried.append(
                        {
                            "rule": rule,
                            "level": level,
                            "nodes": size,
                            "radius": radius if rule == "trapezoid" else None,
                            "rel_error": worst,
                        }
                    )
                    # a rule's candidate is its finest level: two coarse levels can agree
                    # by chance, so a smaller estimate at a coarser level is not trusted
                    latest = (worst, rule, level, size, out, errors, ok)
                    if ok:
                        break
                prev = out
                level += 1
            if latest is not None and (best is None or latest[0] < best[0]):
                best = latest
            if best is not None and best[6]:
                break
        if best is None:
            raise ValueError(
                f"max_nodes={self.max_nodes} is too small for any rule to give an error "
                f"estimate in r={r} dimensions; raise it."
            )
        worst, rule, level, size, out, errors, ok = best
        relative = self._relative(out, errors)
        worst_key = max(relative, key=relative.get) if relative else None
        report = QuadratureReport(
            rule=rule,
            r=r,
            level=level,
            nodes=size,
            errors=errors,
            converged=ok,
            seconds=time.perf_counter() - t0,
            max_relative_error=worst,
            tried=tried,
            relative_errors=relative,
            worst=worst_key,
            reduced=reduced,
        )
        if not ok:
            listed = ", ".join(f"{key} {rel:.2g}" for key, rel in relative.items())
            warnings.warn(
                f"population quadrature did not reach rtol={self.rtol:g}, atol={self.atol:g} "
                f"within max_nodes={self.max_nodes} (r={r}); best rule {rule!r} level {level} "
                f"has relative error estimate {worst:.3g}, on {worst_key!r} (absolute "
                f"{errors[worst_key]:.3g}); per quantity (report.relative_errors): {listed}.",
                QuadratureWarning,
                stacklevel=3,
            )
        return _expectation_from(out, quadrature=report)

    def family_stats(self, params: Params, family: str) -> Stats:
        """The E-step statistics of a mixture of any family under the truth, by quadrature.

        A model with free covariances is not reduced to a span (its responsibilities
        depend on every coordinate): the tensor Gauss-Hermite rule of
        :mod:`gmmscape.core.quadrature` in all ``d`` coordinates is placed around every
        true center, refined level by level until two levels agree to ``rtol`` / ``atol``
        in every normalized statistic (mean log-likelihood, responsibility masses, first
        and second moments), within ``max_nodes`` nodes per true center; a
        :class:`QuadratureWarning` says so when they do not. Suited to small ``d`` (the
        node count is ``(2^(level+2)+1)^d``).

        Parameters
        ----------
        params : Params
            One mixture of ``family`` with k components in dimension d.
        family : str

        Returns
        -------
        Stats
            Sums over nodes whose weights add up to one (``w = 1``).
        """
        self._check_params(params)
        k = int(np.shape(params.means)[0])
        prev = stats = None
        level, gap = 0, np.inf
        while quadrature.node_count("gauss-hermite", self.d, level) <= self.max_nodes:
            ((z, wz),) = quadrature.node_set("gauss-hermite", self.d, level).replicates
            pts, wts = self._points(np.asarray(z), np.asarray(wz), self.truth)
            chunks = Chunks.from_arrays(pts, wts, k=k)
            stats = _first(sum_parts(chunks.stat_parts(_one(params), family)))
            flat = np.concatenate(
                [np.ravel(np.asarray(getattr(stats, f)) / float(stats.w)) for f in _FAMILY_FIELDS]
            )
            if prev is not None:
                gap = float(np.max(np.abs(flat - prev)))
                if gap <= self.atol + self.rtol * float(np.max(np.abs(flat))):
                    return stats
            prev, level = flat, level + 1
        if stats is None:
            raise ValueError(
                f"max_nodes={self.max_nodes} is too small for a Gauss-Hermite rule in d={self.d} "
                "dimensions; raise it."
            )
        warnings.warn(
            f"population quadrature of a {family!r} mixture did not reach rtol={self.rtol:g}, "
            f"atol={self.atol:g} within max_nodes={self.max_nodes} (d={self.d}); the last two "
            f"levels differ by {gap:.3g}.",
            QuadratureWarning,
            stacklevel=2,
        )
        return stats

    def __repr__(self) -> str:
        return f"PopulationSource(truth={self.truth!r}, rule={self.rule!r})"


#: The statistics of a family fit compared between quadrature levels.
_FAMILY_FIELDS = ("ll", "r0", "r1", "s2")


# --------------------------------------------------------------------------------------
# the statistics of a mixture of any covariance family (the estimator's model)
# --------------------------------------------------------------------------------------
@partial(jax.jit, donate_argnums=0)
def set_chunk(buf: jax.Array, i, x: jax.Array) -> jax.Array:
    """``buf`` with chunk ``i`` set to ``x``, in place (the buffer is donated).

    Parameters
    ----------
    buf : array of shape (n_chunks, m, d)
    i : int
    x : array of shape (m, d)

    Returns
    -------
    array of shape (n_chunks, m, d)
    """
    return buf.at[i].set(x)


def device_chunks(X: np.ndarray, w: np.ndarray, rows: int, n_chunks: int, offset=None):
    """As :func:`gmmscape.core.chunks.to_chunks`, but written chunk by chunk into one
    JAX array.

    The device array is filled in place (a donated buffer), so the only copy of the data
    made is the result itself, and the peak is that copy plus one chunk.

    Parameters
    ----------
    X : array of shape (n, d)
    w : array of shape (n,)
    rows, n_chunks : int
    offset : array of shape (d,), optional

    Returns
    -------
    xc : jax array of shape (n_chunks, rows, d)
    wc : jax array of shape (n_chunks, rows)
    """
    n, d = X.shape
    if n_chunks == 1:
        # device_put, not jnp.asarray: that compiles a program per shape
        return tuple(map(jax.device_put, to_chunks(X, w, rows, 1, offset)))
    xc = jnp.zeros((n_chunks, rows, d), X.dtype)
    for i in range(n_chunks):
        lo, hi = i * rows, min(n, (i + 1) * rows)
        xi = np.zeros((rows, d), X.dtype)
        if hi > lo:
            xi[: hi - lo] = X[lo:hi] if offset is None else X[lo:hi] - offset
        # wait for each in-place write: queuing many donated updates at once has hung
        # the CPU runtime (a race seen about once in four fits)
        xc = set_chunk(xc, i, xi).block_until_ready()
    wp = np.zeros(rows * n_chunks, X.dtype)
    wp[:n] = w
    return xc, jax.device_put(wp.reshape(n_chunks, rows))


#: Fewest elements of one pass (rows x k x d x starts) for which :class:`Chunks` sums its
#: statistics on host threads by default: a smaller pass costs about as much as the
#: host's own work per iteration. N = 1e5, d = 2, float64, ms per iteration in the
#: compiled loop / on two host threads: k = 4 (8e5 elements) diag 2.7 / 3.9, full 1.5 /
#: 4.5; k = 16 (3.2e6) diag 8.1 / 6.4, full 8.7 / 8.2.
THREAD_MIN_ELEMENTS = 2**21


def stat_threads(n_threads: int | None, n_chunks: int, elements: int | None = None) -> int:
    """Host threads for the statistics of :class:`Chunks`.

    ``n_threads`` (default: the usable cores, or none for a pass of fewer than
    :data:`THREAD_MIN_ELEMENTS` elements), at most one per four chunks (below that the
    host loop costs more than the threads save); 1 means one compiled loop.

    Parameters
    ----------
    n_threads : int or None
    n_chunks : int
    elements : int, optional
        Elements of one pass (rows x k x d x starts), for the default; None: no bound.

    Returns
    -------
    int
    """
    if n_threads is None:
        if elements is not None and elements < THREAD_MIN_ELEMENTS:
            return 1
        n_threads = (
            len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        )
    t = min(int(n_threads or 1), n_chunks // 4)
    return t if t >= 2 else 1


def sum_parts(parts):
    """The leaf-wise sum of a sequence of pytrees of the same structure (partial stats)."""
    return jax.tree_util.tree_map(lambda *a: sum(a[1:], a[0]), *parts)


class Chunks:
    """Weighted points held in memory as fixed-size device chunks: what a sample supplies.

    The statistics of a batch of mixtures are summed over the chunks by one compiled
    loop (:func:`gmmscape.core.stats.batched_family_stats`), or, with ``threads > 1``, by
    host threads each summing its own range of chunks of the one buffer (JAX releases
    the GIL, and a compiled chunk loop runs its small operations on one core). The
    arrays can also be passed into a compiled loop (:attr:`traceable`).

    Parameters
    ----------
    xc : array of shape (n_chunks, m, d)
    wc : array of shape (n_chunks, m)
        Point weights; padding rows have weight 0.
    threads : int, default 1
    """

    #: The points can enter a compiled loop (as :attr:`xc`, :attr:`wc`).
    traceable = True

    def __init__(self, xc, wc, threads: int = 1):
        self.xc, self.wc, self.threads = xc, wc, int(threads)

    @classmethod
    def from_arrays(cls, X, w, *, k: int, n_batch: int = 1, chunk_size=None, offset=None,
                    n_threads: int | None = 1) -> Chunks:  # fmt: skip
        """Lay ``X - offset`` and ``w`` out by the one chunking rule
        (:func:`gmmscape.core.chunks.chunk_layout`) on the device.

        Parameters
        ----------
        X : ndarray of shape (n, d)
        w : ndarray of shape (n,)
        k : int
            Components the statistics are computed for.
        n_batch : int, default 1
            Mixtures evaluated together.
        chunk_size : int, optional
            Rows per chunk (default: the rule's).
        offset : ndarray of shape (d,), optional
        n_threads : int or None, default 1
            See :func:`stat_threads`.

        Returns
        -------
        Chunks
        """
        n, d = X.shape
        rows, n_chunks = chunk_layout(n, k, d, n_batch, chunk_size)
        xc, wc = device_chunks(X, w, rows, n_chunks, offset)
        return cls(xc, wc, stat_threads(n_threads, n_chunks, rows * n_chunks * k * d * n_batch))

    @property
    def n_rows(self) -> int:
        """Rows held, padding included."""
        return int(np.size(self.wc))

    def describe(self) -> str:
        """How the statistics are summed, for verbose output."""
        return "vmapped" if self.threads <= 1 else f"vmapped, statistics on {self.threads} threads"

    def stat_parts(self, params: Params, family: str, pool=None) -> tuple:
        """Statistics of a batch of mixtures as partial sums that add up to the total.

        Parameters
        ----------
        params : Params with a leading batch axis b
        family : str
        pool : ThreadPoolExecutor, optional
            Threads to use (default: a pool made for the call when ``threads > 1``).

        Returns
        -------
        tuple of Stats, each with a leading batch axis b
        """
        if self.threads <= 1:
            return (batched_family_stats(self.xc, self.wc, params, family=family),)
        bounds = np.linspace(0, self.wc.shape[0], self.threads + 1).astype(int)

        def part(g):
            lo, hi = jnp.int32(bounds[g]), jnp.int32(bounds[g + 1])
            st = batched_family_stats(self.xc, self.wc, params, lo, hi, family=family)
            return jax.block_until_ready(st)

        if pool is None:
            with ThreadPoolExecutor(self.threads) as own:
                return tuple(own.map(part, range(self.threads)))
        return tuple(pool.map(part, range(self.threads)))

    def reduce(self, fn, *args):
        """Sum ``fn(xc, wc, *args)`` (a compiled chunk-scanning function) over the points."""
        return fn(self.xc, self.wc, *args)


def _block_chunks(xb, wb, src):
    xb = np.asarray(xb, dtype=src.dtype)
    wb = np.asarray(wb, dtype=src.dtype)
    rows, n_chunks = chunk_layout(xb.shape[0], src.k, xb.shape[1], 1, src.chunk_size)
    return (jax.device_put(a) for a in to_chunks(xb, wb, rows, n_chunks, src.offset))


def _block_stats(xb, wb, payload, src):
    params, family = payload
    xc, wc = _block_chunks(xb, wb, src)
    st = batched_family_stats(xc, wc, params, family=family)
    return jax.tree_util.tree_map(np.asarray, st)


def _block_generic(xb, wb, payload, src):
    fn, args = payload
    return jax.tree_util.tree_map(np.asarray, fn(*_block_chunks(xb, wb, src), *args))


def _tree_add(a, b):
    return jax.tree_util.tree_map(np.add, a, b)


class DaskChunks:
    """Weighted points as the blocks of Dask arrays: statistics reduced on the cluster.

    Each block is laid out in chunks by the one chunking rule where it is, its
    statistics are computed there, and the partial sums are added by a tree reduction
    run by the scheduler; only the sums travel.

    Parameters
    ----------
    x : dask array of shape (n, d)
        One block along the columns.
    w : dask array of shape (n,)
        Blocked like the rows of ``x``.
    offset : ndarray of shape (d,)
        Subtracted from every row.
    dtype : numpy dtype
    k : int
        Components the statistics are computed for.
    chunk_size : int, optional
    """

    traceable = False
    threads = 1

    def __init__(self, x, w, *, offset, dtype, k: int, chunk_size=None):
        self.x, self.w, self.offset, self.dtype = x, w, offset, dtype
        self.k, self.chunk_size = int(k), chunk_size

    @property
    def n_rows(self) -> int:
        """Rows of the data."""
        return int(self.x.shape[0])

    def describe(self) -> str:
        """How the statistics are summed, for verbose output."""
        return "statistics on Dask"

    def _reduce(self, block_fn, payload):
        import dask

        payload = jax.tree_util.tree_map(
            lambda a: np.asarray(a) if isinstance(a, jax.Array) else a, payload
        )
        xs = self.x.to_delayed().ravel()
        ws = self.w.to_delayed().ravel()
        parts = [
            dask.delayed(block_fn)(xb, wb, payload, self) for xb, wb in zip(xs, ws, strict=True)
        ]
        add = dask.delayed(_tree_add)
        while len(parts) > 1:  # a tree reduction, executed by the scheduler
            parts = [
                add(parts[i], parts[i + 1]) if i + 1 < len(parts) else parts[i]
                for i in range(0, len(parts), 2)
            ]
        (total,) = dask.compute(parts[0])
        return jax.tree_util.tree_map(jax.device_put, total)

    def stat_parts(self, params: Params, family: str, pool=None) -> tuple:
        """The statistics of a batch of mixtures, summed on the cluster (one part).

        Parameters
        ----------
        params : Params with a leading batch axis b
        family : str
        pool : ignored

        Returns
        -------
        tuple of one Stats with a leading batch axis b
        """
        return (self._reduce(_block_stats, (params, family)),)

    def reduce(self, fn, *args):
        """Sum ``fn(xc, wc, *args)`` over the blocks, on the cluster."""
        return self._reduce(_block_generic, (fn, args))


class BlockChunks(DaskChunks):
    """Weighted points streamed from the host in blocks of rows: one pass per call.

    Where the blocks come from (a file read block by block,
    :func:`gmmscape.estimator.tables.files`) is the caller's: ``blocks()`` is called once
    per pass and yields arrays of rows. Each block is laid out in chunks by the one
    chunking rule (:func:`gmmscape.core.chunks.chunk_layout`), summed by
    :func:`gmmscape.core.stats.batched_family_stats` (the same block functions as
    :class:`DaskChunks`, whose ``stat_parts`` and ``reduce`` it inherits), and the block
    sums are added on the host in one pass. Memory holds what the blocks hold.

    Parameters
    ----------
    blocks : callable
        ``blocks()`` iterates over arrays of shape (n_i, d), rows of weight 1.
    n_rows : int
        Rows in all (``sum n_i``).
    offset : ndarray of shape (d,)
        Subtracted from every row.
    dtype : numpy dtype
    k : int
        Components the statistics are computed for.
    chunk_size : int, optional
    label : str, default "blocks"
        What the blocks are, for verbose output.
    """

    def __init__(self, blocks, n_rows: int, *, offset, dtype, k: int, chunk_size=None,
                 label: str = "blocks"):  # fmt: skip
        self.blocks, self._n_rows, self.offset, self.dtype = blocks, int(n_rows), offset, dtype
        self.k, self.chunk_size, self.label = int(k), chunk_size, label

    @property
    def n_rows(self) -> int:
        """Rows in all."""
        return self._n_rows

    def describe(self) -> str:
        """How the statistics are summed, for verbose output."""
        return f"statistics streamed from {self.label}"

    def _reduce(self, block_fn, payload):
        total = None
        for xb in self.blocks():
            part = block_fn(xb, np.ones(xb.shape[0], self.dtype), payload, self)
            total = part if total is None else _tree_add(total, part)
        return jax.tree_util.tree_map(jax.device_put, total)


def _one(params: Params) -> Params:
    return jax.tree_util.tree_map(lambda a: jax.device_put(np.asarray(a)[None]), params)


def _first(stats: Stats) -> Stats:
    return jax.tree_util.tree_map(lambda a: a[0], stats)


def sample(X, weights=None, *, truth: Mixture | None = None, chunk_size: int | None = None):
    """The empirical measure of a dataset.

    Parameters
    ----------
    X : array_like of shape (n, d)
        Data points, finite.
    weights : array_like of shape (n,), optional
        Non-negative sample weights (not all zero). Uniform if omitted. They are relative
        weights: multiplying them by a constant changes nothing, standard errors
        included (which therefore follow Kish's effective sample size
        ``(sum w)^2 / sum w^2``, not a frequency count).
    truth : Mixture, optional
        The distribution the data came from, if known; enables :meth:`Source.kl`.
    chunk_size : int, optional
        Points per compiled batch; by default chosen from ``k`` and ``d`` so that a batch
        holds about 4 million numbers.

    Returns
    -------
    SampleSource
    """
    return SampleSource(X, weights=weights, truth=truth, chunk_size=chunk_size)


def stream(truth: Mixture, n: int, seed: int, *, chunk_size: int = 2**16) -> StreamSource:
    """``n`` points drawn from ``truth``, generated chunk by chunk and never all in memory.

    Chunk ``i`` is drawn from ``jax.random.fold_in(jax.random.key(seed), i)``, so results
    are reproducible from ``(seed, chunk_size)``: the same pair gives the same points, on
    every call and every machine with the same JAX version. A different ``chunk_size``
    gives a different (equally valid) sample.

    Parameters
    ----------
    truth : Mixture
        The distribution to draw from.
    n : int
        Number of points (>= 1).
    seed : int
        Seed of the random key; there is no default, so results never hide a fixed seed.
    chunk_size : int, default 65536
        Points per chunk; peak memory is a few chunks.

    Returns
    -------
    StreamSource
    """
    return StreamSource(truth, n, seed, chunk_size=chunk_size)


def population(
    truth: Mixture,
    *,
    rule: str = "auto",
    rtol: float = POPULATION_RTOL,
    atol: float = POPULATION_ATOL,
    max_nodes: int = POPULATION_MAX_NODES,
    seed: int = 0,
) -> PopulationSource:
    """Exact expectations under ``truth``, the infinite-sample limit.

    Each call reduces the problem to the affine span of the model means and the true
    centers (dimension ``r <= k + k* - 1``, whatever ``d``), adds the orthogonal directions
    in closed form, and integrates over ``N(0, sigma*^2 I_r)`` around each true center with
    a rule chosen by ``r`` (:func:`gmmscape.core.quadrature.auto_rules`), refining its
    level until the error estimate meets ``atol + rtol * max|value|`` for every returned
    quantity. :meth:`PopulationSource.expect` reports the rule, level, node count and
    error estimates in :class:`QuadratureReport`; a result short of the tolerance warns
    with :class:`QuadratureWarning`.

    Parameters
    ----------
    truth : Mixture
        The true isotropic mixture.
    rule : {"auto", "trapezoid", "gauss-hermite", "sparse-grid", "rqmc", "monte-carlo"}
    rtol, atol : float
        Relative and absolute tolerances (defaults 1e-10 and 1e-12).
    max_nodes : int, default 2**22
        Largest number of nodes per true component (for ``rule="auto"``, of each of the
        two reduced integrals, see :class:`QuadratureReport`).
    seed : int, default 0
        Seed of the randomized rules (``rqmc``, ``monte-carlo``).

    Returns
    -------
    PopulationSource
    """
    return PopulationSource(truth, rule=rule, rtol=rtol, atol=atol, max_nodes=max_nodes, seed=seed)
