"""The one chunking rule: how many items (points or starts) one compiled chunk holds.

Every loop over data in chunks (the sample and stream sources, the estimator's E-step,
the landscape's batches of starts) sizes its chunks here: a power of two, so that few
distinct shapes are compiled, as large as a budget of array elements allows; small data
are one chunk padded to a rung of :func:`row_bucket`.
"""

from __future__ import annotations

import math

import numpy as np

#: Elements of one chunk's largest intermediate (rows x k x d) in a fit of a covariance
#: family (:func:`chunk_layout`, ``chunk_size`` None): 1024 rows at d = k = 16, which ran
#: a pass 7% (full) to 8% (diag) faster than 4096 rows (N = 2.5e5, one thread;
#: benchmarks/results/estimator_profile.md has the same trend at N = 1e6).
CHUNK_BUDGET = 2**18
#: Most rows of a chunk (:func:`chunk_layout`, ``chunk_size`` None): where ``k d`` is small
#: the budget alone would give long chunks, whose kernels XLA splits over its threads at
#: a cost in CPU time and whose intermediates leave the cache. 1024-row chunks instead of
#: the budget's 4096-32768 ran an iteration 0-20% faster at N = 1e6 (d = 2 and 16, k = 4
#: and 16) and model selection on N = 1e5, d = 5 26% faster.
MAX_ROWS = 1024
#: Data of at most :data:`SINGLE_CHUNK_ROWS` rows whose largest intermediate (n x k x d
#: per start) holds at most this many elements are not chunked: one chunk padded to a
#: rung of :func:`row_bucket` (32 MB in float64), so the E-step compiles no loop and the
#: fits of a (k, d) on inputs of nearby sizes run the same programs.
SINGLE_CHUNK = 2**22
#: More rows than this are always chunked into chunks of at most :data:`MAX_ROWS` rows
#: (one chunk padded to the next power of two spent 31% of every pass at N = 1e5 on
#: padding rows), where the arithmetic, not the compiling, is what costs.
SINGLE_CHUNK_ROWS = 2**14
#: Fewest rows a chunk is padded to: every input of up to this many rows (a small data
#: set, a cross-validation fold, a batch to predict) runs the same compiled programs.
MIN_ROWS = 256


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


#: Rungs per octave of the row ladder of unchunked data (:func:`row_bucket`).
ROW_RUNGS = 8


def row_bucket(n: int) -> int:
    """The rows one unchunked input of ``n`` points is padded to: :data:`MIN_ROWS` for
    ``n <= MIN_ROWS``, else the next rung of a ladder of :data:`ROW_RUNGS` equal steps
    per octave (``2^j (1 + i / 8)``: 288, 320, ..., 512, 576, ...), so that padding adds
    at most 12.5% to every pass while inputs of nearby sizes (cross-validation folds)
    still share their compiled programs. On faithful (272 rows) 288 rows instead of the
    next power of two, 512, took 37% off an EM iteration.

    Parameters
    ----------
    n : int

    Returns
    -------
    int
        A multiple of ``MIN_ROWS / ROW_RUNGS`` (32), ``>= n``.
    """
    n = int(n)
    if n <= MIN_ROWS:
        return MIN_ROWS
    step = (next_pow2(n) // 2) // ROW_RUNGS
    return -(-n // step) * step


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


def chunk_layout(n: int, k: int, d: int, n_batch: int = 1, chunk_size: int | None = None):
    """Rows per chunk and number of chunks for ``n`` points.

    Inputs of at most :data:`SINGLE_CHUNK_ROWS` rows whose ``(n, k, d)`` intermediate
    holds at most :data:`SINGLE_CHUNK` elements per start are one chunk padded to a
    rung of :func:`row_bucket`, at least :data:`MIN_ROWS` rows (few distinct compiled
    shapes);
    larger ones are cut into chunks of at most
    :data:`MAX_ROWS` rows whose ``(rows, k, d)`` intermediates hold at most
    :data:`CHUNK_BUDGET` elements per start.

    Parameters
    ----------
    n, k, d : int
        Points, components, features.
    n_batch : int, default 1
        Starts evaluated together (vmapped).
    chunk_size : int, optional
        Rows per chunk chosen by the user.

    Returns
    -------
    rows : int
    n_chunks : int
    """
    if chunk_size is None:
        if n <= SINGLE_CHUNK_ROWS and n * k * d * n_batch <= SINGLE_CHUNK:  # small data
            return row_bucket(n), 1
        rows = chunk_length(k * d * n_batch, CHUNK_BUDGET, lo=MIN_ROWS, hi=MAX_ROWS)
    else:
        rows = int(chunk_size)
    if n <= rows:
        rows = padded_length(n, max(rows, MIN_ROWS), MIN_ROWS) if chunk_size is None else rows
        return rows, 1
    return rows, math.ceil(n / rows)


def to_chunks(X: np.ndarray, w: np.ndarray, rows: int, n_chunks: int, offset=None):
    """Pad ``X - offset`` (n, d) and ``w`` (n,) with zero rows; reshape to (n_chunks, rows, ...).

    The result is the only copy made: ``X - offset`` is written straight into it.

    Parameters
    ----------
    X : array of shape (n, d)
    w : array of shape (n,)
    rows, n_chunks : int
    offset : array of shape (d,), optional
        Subtracted from every row (default none).

    Returns
    -------
    xc : array of shape (n_chunks, rows, d)
    wc : array of shape (n_chunks, rows)
    """
    n, d = X.shape
    total = rows * n_chunks
    xp = np.zeros((total, d), X.dtype)
    if offset is None:
        xp[:n] = X
    else:
        np.subtract(X, np.asarray(offset, X.dtype), out=xp[:n])
    wp = np.zeros(total, X.dtype)
    wp[:n] = w
    return xp.reshape(n_chunks, rows, d), wp.reshape(n_chunks, rows)
