"""The one chunking rule: how many items (points or starts) one compiled chunk holds.

Every loop over data in chunks (the sample and stream sources, the estimator's E-step,
the landscape's batches of starts) sizes its chunks here: a power of two, so that few
distinct shapes are compiled, as large as a budget of array elements allows.
"""

from __future__ import annotations


def next_pow2(n: int) -> int:
    """The smallest power of two ``>= n`` (1 for ``n <= 1``).

    Parameters
    ----------
    n : int

    Returns
    -------
    int
    """
    return 1 << max(0, int(n) - 1).bit_length()


def chunk_length(per_item: int, budget: int, lo: int = 1, hi: int | None = None) -> int:
    """Items per chunk: the largest power of two whose chunk holds at most ``budget``
    elements, clamped to ``[lo, hi]``.

    Parameters
    ----------
    per_item : int
        Elements of the largest intermediate per item (e.g. ``k * d`` per point).
    budget : int
        Elements one chunk may hold.
    lo, hi : int, optional
        Bounds on the result (``hi`` default: none).

    Returns
    -------
    int
    """
    fit = max(int(budget) // max(int(per_item), 1), 1)
    size = 1 << (fit.bit_length() - 1)  # largest power of two <= fit
    size = max(size, int(lo))
    return size if hi is None else min(size, int(hi))


def padded_length(n: int, chunk: int, lo: int = 1) -> int:
    """The length a batch of ``n <= chunk`` items is padded to: the next power of two,
    at least ``lo`` and at most ``chunk``.

    Parameters
    ----------
    n : int
        Items in the batch (a short last chunk, or all the data when it fits in one).
    chunk : int
        Full chunk length (:func:`chunk_length`).
    lo : int, default 1

    Returns
    -------
    int
    """
    return min(int(chunk), max(int(lo), next_pow2(n)))
