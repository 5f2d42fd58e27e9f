"""The Atlas: every critical point found, certified and classified, as a table and JSON."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from gmmscape.landscape.certify import MINIMUM_KINDS

#: Normal quantile of the 95% Wilson intervals.
WILSON_Z = 1.959963984540054


def wilson(successes: int, n: int, z: float = WILSON_Z) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion.

    Parameters
    ----------
    successes : int
    n : int
        Number of trials (>= 1).
    z : float, default 1.96

    Returns
    -------
    (low, high) : tuple of float
    """
    if n <= 0:
        raise ValueError(f"n must be >= 1; got {n}.")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if successes == 0 else max(0.0, centre - half)  # exactly 0 and 1 at the ends
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return lo, hi


@dataclasses.dataclass
class CriticalPoint:
    """One distinct critical point (up to permuting the estimates).

    Attributes
    ----------
    means : list of list of float
        Shape (k, d), ambient coordinates.
    kl : float
        ``KL(truth || model)`` (the NLL minus the truth's entropy).
    gap : float
        ``kl`` minus the smallest ``kl`` among the minima found (the global minimum; the
        smallest ``kl`` of any point when no minimum was found).
    grad_norm : float
        Final gradient norm after polishing.
    kind : str
        See :mod:`gmmscape.landscape.certify`.
    index : int
        Number of negative Hessian eigenvalues.
    eigenvalues : list of float
        Hessian spectrum in R^d, length k d.
    n_null : int
    null_tests : list of dict
    groups : list of dict
        See :func:`gmmscape.landscape.structure.groups`.
    signature : str
    non_overlapping : bool
    max_error : float
        Largest group approximation error, units of sigma.
    count : int
        Number of starts that reached it.
    fraction : float
        ``count / n_starts``.
    ci : list of float
        95% Wilson interval of ``fraction``.
    """

    means: list
    kl: float
    gap: float
    grad_norm: float
    kind: str
    index: int
    eigenvalues: list
    n_null: int
    null_tests: list
    groups: list
    signature: str
    non_overlapping: bool
    max_error: float
    count: int
    fraction: float
    ci: list

    @property
    def is_minimum(self) -> bool:
        """Whether the point is certified a (strict or quartic-degenerate) local minimum."""
        return self.kind in MINIMUM_KINDS


@dataclasses.dataclass
class Atlas:
    """The landscape of one problem: configuration, critical points and failures.

    Attributes
    ----------
    truth_means : list of list of float
        Shape (k*, d).
    sigma : float
    k : int
    n_starts : int
    schemes : list of str
    method : str
    seed : int
    points : list of CriticalPoint
        Sorted by ``kl``.
    n_failed : int
        Starts whose polished end point did not reach ``grad_tol`` or had an estimate
        with (numerically) no responsibility mass: counted, never dropped.
    failures : list of dict
        One per distinct failed end point: ``means``, ``grad_norm``, ``reason``,
        ``count``.
    grad_tol : float
    batch_unconverged : int
        Starts whose EM phase hit ``max_iter`` (Newton then polished them).
    quadrature : dict
        Frame and node sets (see :func:`gmmscape.landscape._problem.make_problem`).
    seconds : dict
        Wall time of each phase.
    """

    truth_means: list
    sigma: float
    k: int
    n_starts: int
    schemes: list
    method: str
    seed: int
    points: list
    n_failed: int
    failures: list
    grad_tol: float
    batch_unconverged: int
    quadrature: dict
    seconds: dict

    @property
    def k_star(self) -> int:
        """Number of true centers."""
        return len(self.truth_means)

    @property
    def minima(self) -> list[CriticalPoint]:
        """Certified local minima, by ``kl``."""
        return [p for p in self.points if p.is_minimum]

    @property
    def spurious_minima(self) -> list[CriticalPoint]:
        """Local minima other than the global one (``gap`` above 1e-8)."""
        return [p for p in self.minima if p.gap > 1e-8]

    @property
    def failed_fraction(self) -> float:
        """Fraction of starts that failed."""
        return self.n_failed / self.n_starts

    def bad_fraction(self) -> tuple[float, tuple[float, float]]:
        """Fraction of starts that ended anywhere but the global minimum, with its CI.

        Returns
        -------
        (fraction, (low, high))
        """
        good = sum(p.count for p in self.minima if p.gap <= 1e-8)
        bad = self.n_starts - good
        return bad / self.n_starts, wilson(bad, self.n_starts)

    def to_dict(self) -> dict:
        """The atlas as a JSON-serializable dict."""
        return dataclasses.asdict(self)

    def write_json(self, path) -> Path:
        """Write the atlas as JSON atomically.

        Parameters
        ----------
        path : str or Path

        Returns
        -------
        Path
        """
        from gmmscape._files import write_json

        return write_json(self, Path(path))

    def table(self, max_rows: int = 40):
        """A rich table: one row per critical point.

        Parameters
        ----------
        max_rows : int, default 40

        Returns
        -------
        rich.table.Table
        """
        from rich.table import Table

        from gmmscape.experiments.output import format_number as fmt

        d = len(self.truth_means[0])
        t = Table(
            title=(
                f"Landscape atlas: k = {self.k}, k* = {self.k_star}, d = {d}, "
                f"{self.n_starts:,} starts, {len(self.points)} critical points, "
                f"{len(self.minima)} minima, {self.n_failed} failed starts"
            )
        )
        for col in ("#", "kind", "index", "KL gap", "min |eig|", "|grad|", "structure"):
            t.add_column(col, justify="left" if col in ("kind", "structure") else "right")
        t.add_column("max err/sigma", justify="right")
        t.add_column("basin (95% CI)", justify="right")
        t.add_column("means", justify="left")
        for i, p in enumerate(self.points[:max_rows]):
            eig = np.abs(np.asarray(p.eigenvalues))
            mu = np.asarray(p.means)
            means = (
                ", ".join(fmt(x, ".3f") for x in mu[:, 0])
                if mu.shape[1] == 1
                else "; ".join("(" + ", ".join(fmt(x, ".2f") for x in row[:3]) + ")" for row in mu)
            )
            t.add_row(
                str(i),
                p.kind,
                str(p.index),
                f"{p.gap:.3e}",
                f"{eig.min():.1e}",
                f"{p.grad_norm:.1e}",
                p.signature + ("" if p.non_overlapping else " (OVERLAP)"),
                f"{p.max_error:.3f}",
                f"{p.fraction:.3f} [{p.ci[0]:.3f}, {p.ci[1]:.3f}]",
                means,
            )
        return t
