"""The group structure of a critical point (Chen, Song, Xi and Zhang, IEEE TIT 2024).

Rule that builds the groups: draw a bipartite graph between the ``k`` estimates and the
``k*`` true centers with one edge from every estimate to its nearest true center and one
edge from every true center to its nearest estimate (ties go to the lower index). The
groups are the connected components ``(I, S)``: ``I`` the estimates, ``S`` the true
centers of a component. Every estimate and every center has an edge, so the ``I``'s
partition the estimates and the ``S``'s the centers. Labels:

- ``|I| = 1, |S| = 1``: "correct fit";
- ``|I| = 1, |S| >= 2``: "one-fits-many";
- ``|I| >= 2, |S| = 1``: "many-fit-one";
- ``|I| >= 2, |S| >= 2``: "overlapping" (ruled out at local minima by the paper's theorem
  under its separation condition).

Approximation error (units of sigma): for a one-fits-many group (or correct fit) the
distance from the estimate to the mean of its true centers; for a many-fit-one group the
largest distance from an estimate to the true center.
"""

from __future__ import annotations

import numpy as np

GROUP_KINDS = ("correct fit", "one-fits-many", "many-fit-one", "overlapping")


def groups(means, centers, sigma: float = 1.0) -> list[dict]:
    """The groups of estimates and true centers, with labels and errors.

    Parameters
    ----------
    means : array_like of shape (k, d)
        Estimates.
    centers : array_like of shape (k*, d)
        True centers.
    sigma : float, default 1.0

    Returns
    -------
    list of dict
        One per group, sorted by the smallest true-center index: ``estimates`` (list of
        int), ``centers`` (list of int), ``kind`` and ``error`` (float, units of sigma).
    """
    mu = np.asarray(means, dtype=float)
    beta = np.asarray(centers, dtype=float)
    k, ks = mu.shape[0], beta.shape[0]
    dist = np.linalg.norm(mu[:, None, :] - beta[None, :, :], axis=-1)
    parent = list(range(k + ks))

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    def union(a, b):
        parent[find(a)] = find(b)

    for i in range(k):
        union(i, k + int(np.argmin(dist[i])))
    for j in range(ks):
        union(k + j, int(np.argmin(dist[:, j])))
    comps: dict[int, tuple[list, list]] = {}
    for node in range(k + ks):
        est, cen = comps.setdefault(find(node), ([], []))
        (est if node < k else cen).append(node if node < k else node - k)
    out = []
    for est, cen in comps.values():
        if len(est) == 1 and len(cen) == 1:
            kind = "correct fit"
        elif len(est) == 1:
            kind = "one-fits-many"
        elif len(cen) == 1:
            kind = "many-fit-one"
        else:
            kind = "overlapping"
        if len(est) == 1:
            err = float(np.linalg.norm(mu[est[0]] - beta[cen].mean(axis=0)))
        elif len(cen) == 1:
            err = float(np.max(np.linalg.norm(mu[est] - beta[cen[0]], axis=1)))
        else:
            err = float(np.max(dist[np.ix_(est, cen)].min(axis=1)))
        out.append(
            {"estimates": sorted(est), "centers": sorted(cen), "kind": kind, "error": err / sigma}
        )
    return sorted(out, key=lambda g: g["centers"][0])


def signature(gs: list[dict]) -> str:
    """A short, order-free name of a structure, e.g. ``"1:1 x1 + 1:2 + 2:1"``.

    Each group is written ``|I|:|S|``; equal groups are counted.

    Parameters
    ----------
    gs : list of dict
        Output of :func:`groups`.

    Returns
    -------
    str
    """
    sizes = sorted((len(g["estimates"]), len(g["centers"])) for g in gs)
    parts = []
    for key in sorted(set(sizes), key=lambda s: (s[0], s[1])):
        n = sizes.count(key)
        parts.append(f"{key[0]}:{key[1]}" + (f" x{n}" if n > 1 else ""))
    return " + ".join(parts)


def is_non_overlapping(gs: list[dict]) -> bool:
    """Whether no group has two or more estimates on two or more true centers."""
    return all(g["kind"] != "overlapping" for g in gs)
