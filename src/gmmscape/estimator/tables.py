"""Tables on disk streamed in blocks of rows: Parquet, ``.npy`` and CSV files larger than
memory.

:func:`files` opens one as a :class:`FileTable`. ``GaussianMixture.fit`` fits it by exact
batch EM, one pass over the file per iteration: the table's :meth:`FileTable.blocks` feed
the core's block source (:class:`gmmscape.core.sources.BlockChunks`), which sums the
statistics block by block, so the file formats stay out of the core. Iterating the blocks
into ``GaussianMixture.partial_fit`` is one pass of online EM, and
:meth:`FileTable.to_dask` gives the same rows as a Dask array for a cluster.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from gmmscape._validation import check_positive_int

#: Rows per block read from a file when ``block_rows`` is not given (8 MiB of float32
#: in 8 columns).
FILE_BLOCK_ROWS = 2**18
#: CSV cells read as a missing value (NaN), as by ``gmmscape.estimator._io.read_csv``.
CSV_MISSING = ("", "NA", "N/A", "?", "nan", "NaN", "NAN")
_FILE_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".npy": "npy", ".csv": "csv",
                 ".txt": "csv"}  # fmt: skip


@dataclass(frozen=True)
class FileSummary:
    """What one pass over a :class:`FileTable` learns: the moments and a row subsample.

    Attributes
    ----------
    n : int
        Rows read.
    mean, var : ndarray of shape (d,), float64
        Column means and (population) variances over the finite entries.
    lo, hi : ndarray of shape (d,), float64
        Column minima and maxima over the finite entries.
    n_nan, n_inf : int
        NaN (missing) and infinite entries.
    rows : ndarray of shape (m, d)
        The rows ``take`` asked for, in increasing order, in the file's dtype.
    """

    n: int
    mean: np.ndarray
    var: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    n_nan: int
    n_inf: int
    rows: np.ndarray


def _csv_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _ahead(blocks):
    """``blocks`` (an iterator) read one block ahead by a background thread: the file is
    read (pyarrow and NumPy release the GIL) while the previous block is summed."""
    with ThreadPoolExecutor(1) as pool:
        fut = pool.submit(next, blocks, None)
        while (block := fut.result()) is not None:
            fut = pool.submit(next, blocks, None)
            yield block


class FileTable:
    """A numeric table in a Parquet, ``.npy`` or CSV file, read in blocks of rows (see
    :func:`files`); never held whole in memory.

    Attributes
    ----------
    path : Path
    format : {"parquet", "npy", "csv"}
    columns : list of str
        Names of the selected columns (``x0, x1, ...`` where the file has none).
    index : list of int
        Their positions among the file's columns.
    n_source_features : int
        Columns in the file.
    dtype : numpy dtype
        float32 when every selected column is float32 (a float32 ``.npy``), else float64.
    block_rows : int
    progress : callable or None
        Called as ``progress(rows_done, n_rows)`` at the start of every pass (with 0) and
        after every block; ``n_rows`` is None during a CSV file's first pass.
    """

    ndim = 2

    def __init__(self, path, columns=None, block_rows=None, progress=None):
        from pathlib import Path

        self.path = Path(path)
        if not self.path.exists():
            raise ValueError(f"{self.path}: no such file.")
        if self.path.is_dir():
            raise ValueError(f"{self.path}: is a directory, not a data file.")
        suffix = self.path.suffix.lower()
        if suffix not in _FILE_FORMATS:
            raise ValueError(
                f"{self.path}: unknown data format {suffix!r}; use .csv, .npy or .parquet."
            )
        self.format = _FILE_FORMATS[suffix]
        self.block_rows = check_positive_int(
            FILE_BLOCK_ROWS if block_rows is None else block_rows, "block_rows"
        )
        if progress is not None and not callable(progress):
            raise ValueError(f"progress must be callable or None; got {type(progress).__name__}.")
        self.progress = progress
        self._n = None
        try:
            names, dtype = getattr(self, f"_open_{self.format}")()
        except OSError as exc:
            raise ValueError(f"{self.path}: cannot read the file: {exc.strerror or exc}.") from None
        self.n_source_features = len(names)
        self.index = self._select(names, columns)
        self.columns = [names[j] for j in self.index]
        self.dtype = np.dtype(dtype(self.index))

    # -- opening: column names, dtype, row count where the file states it ---------------
    def _open_parquet(self):
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            self._pq = pq.ParquetFile(self.path)
        except (pa.ArrowInvalid, pa.ArrowException) as exc:
            raise ValueError(f"{self.path}: not a readable Parquet file: {exc}") from None
        schema = self._pq.schema_arrow
        for f in schema:
            if not (pa.types.is_integer(f.type) or pa.types.is_floating(f.type)):
                raise ValueError(f"{self.path}: column {f.name!r} has non-numeric type {f.type}.")
        if not len(schema):
            raise ValueError(f"{self.path}: the table has no columns.")
        self._n = int(self._pq.metadata.num_rows)
        types = [f.type for f in schema]

        def dtype(index):
            f32 = all(pa.types.is_float32(types[j]) for j in index)
            return np.float32 if f32 else np.float64

        return [str(f.name) for f in schema], dtype

    def _open_npy(self):
        try:
            a = np.load(self.path, mmap_mode="r", allow_pickle=False)
        except ValueError as exc:
            raise ValueError(f"{self.path}: not a readable .npy array: {exc}") from None
        if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
            raise ValueError(
                f"{self.path}: the array has dtype {a.dtype}; a Gaussian mixture is fitted to "
                "real numbers."
            )
        if a.ndim == 1:
            a = a[:, None]
        if a.ndim != 2:
            raise ValueError(
                f"{self.path}: expected a 2-D table (n_samples, n_features); got {a.shape}."
            )
        self._mm, self._n = a, int(a.shape[0])
        f32 = a.dtype == np.float32
        return [f"x{j}" for j in range(a.shape[1])], lambda index: np.float32 if f32 else np.float64

    def _open_csv(self):
        import csv

        with open(self.path, newline="") as fh:
            first = next((r for r in csv.reader(fh) if r and any(c.strip() for c in r)), None)
        with open(self.path, "rb") as fh:  # bytes per line, for pyarrow's block size
            head = fh.read(1 << 16)
        self._line = max(8, len(head) // max(1, head.count(b"\n")))
        if first is None:
            raise ValueError(f"{self.path}: the file holds no data rows.")
        named = [c for c in first if c.strip() not in CSV_MISSING]
        self._header = bool(named) and not any(_csv_number(c) for c in named)
        names = [c.strip() for c in first] if self._header else [f"x{j}" for j in range(len(first))]
        return names, lambda index: np.float64

    def _select(self, names, columns):
        if columns is None:
            return list(range(len(names)))
        if isinstance(columns, str | int):
            columns = [columns]

        def position(c):
            if isinstance(c, str) and c in names:
                return names.index(c)
            s = str(c).strip()
            if s.lstrip("-").isdigit() and -len(names) <= int(s) < len(names):
                return int(s) % len(names)
            raise ValueError(f"{self.path}: unknown column {c!r}; the columns are {names}.")

        index = list(dict.fromkeys(position(c) for c in columns))
        if not index:
            raise ValueError(f"{self.path}: columns selects no column.")
        return index

    # -- reading ------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        """``(n_rows, n_columns)``; a CSV file's rows are counted by a first pass."""
        if self._n is None:
            self._n = sum(b.shape[0] for b in self._read())
        return (self._n, len(self.index))

    def _read(self):
        """The selected columns, block by block, as arrays of shape (m, d) (no progress)."""
        return getattr(self, f"_read_{self.format}")()

    def _read_parquet(self):
        import pyarrow as pa

        names = [self._pq.schema_arrow.field(j).name for j in self.index]
        try:
            for batch in self._pq.iter_batches(batch_size=self.block_rows, columns=names):
                cols = [c.to_numpy(zero_copy_only=False) for c in batch.columns]
                yield np.column_stack(cols).astype(self.dtype, copy=False)
        except (pa.ArrowInvalid, pa.ArrowException, OSError) as exc:
            raise ValueError(f"{self.path}: cannot read the Parquet data: {exc}") from None

    def _read_npy(self):
        for lo in range(0, self._mm.shape[0], self.block_rows):
            block = self._mm[lo : lo + self.block_rows]
            cols = self.index if self.index != list(range(self._mm.shape[1])) else slice(None)
            yield np.array(block[:, cols], dtype=self.dtype)

    def _read_csv(self):
        import pyarrow as pa
        import pyarrow.csv as pcsv

        # read under neutral names: a header's names may repeat or be empty
        names = [f"c{j}" for j in range(self.n_source_features)]
        read = pcsv.ReadOptions(
            column_names=names,
            skip_rows=1 if self._header else 0,
            block_size=max(1 << 12, self.block_rows * self._line),
        )
        convert = pcsv.ConvertOptions(
            column_types={n: pa.float64() for n in names},
            null_values=list(CSV_MISSING),
            strings_can_be_null=True,
            include_columns=[names[j] for j in self.index],
        )
        try:
            with pcsv.open_csv(self.path, read_options=read, convert_options=convert) as rd:
                for batch in rd:
                    if batch.num_rows:
                        cols = [c.to_numpy(zero_copy_only=False) for c in batch.columns]
                        yield np.column_stack(cols).astype(self.dtype, copy=False)
        except (pa.ArrowInvalid, pa.ArrowException) as exc:
            msg = str(exc).replace("In CSV column #", "in CSV column ")
            raise ValueError(
                f"{self.path}: {msg} (every cell must be a number or empty, NA, N/A, ?)"
            ) from None

    def blocks(self):
        """The selected columns block by block, read one block ahead; calls ``progress``.

        Yields
        ------
        ndarray of shape (m, d)
            ``m <= block_rows`` rows (CSV blocks hold about ``block_rows`` rows), in
            :attr:`dtype`.
        """
        report, total, done = self.progress, self._n, 0
        if report is not None:
            report(0, total)
        for block in _ahead(self._read()):
            done += block.shape[0]
            if report is not None:
                report(done, total)
            yield block
        if self._n is None:
            self._n = done

    def summary(self, take=None) -> FileSummary:
        """One pass: column moments (Chan's pairwise update, in float64) and the rows
        ``take``.

        Parameters
        ----------
        take : array of int of shape (m,), optional
            Increasing row numbers to return (default none).

        Returns
        -------
        FileSummary
        """
        take = np.zeros(0, np.int64) if take is None else np.asarray(take, np.int64)
        d = len(self.index)
        n, mean, m2 = 0, np.zeros(d), np.zeros(d)
        lo, hi = np.full(d, np.inf), np.full(d, -np.inf)
        n_nan = n_inf = 0
        rows, start = [], 0
        for block in self.blocks():
            b = block.astype(np.float64)
            nan = np.isnan(b)
            inf = np.isinf(b)
            n_nan, n_inf = n_nan + int(nan.sum()), n_inf + int(inf.sum())
            if nan.any() or inf.any():  # moments of the finite entries, column by column
                b = np.where(nan | inf, np.nan, b)
                nb = np.sum(~np.isnan(b), axis=0)
                mb = np.where(nb > 0, np.nansum(b, axis=0) / np.maximum(nb, 1), 0.0)
                m2b = np.nansum((b - mb) ** 2, axis=0)
                lo, hi = np.fmin(lo, np.nanmin(b, 0)), np.fmax(hi, np.nanmax(b, 0))
            else:
                nb = np.full(d, b.shape[0])
                mb = b.mean(axis=0)
                m2b = ((b - mb) ** 2).sum(axis=0)
                lo, hi = np.minimum(lo, b.min(0)), np.maximum(hi, b.max(0))
            tot = n + nb
            delta = mb - mean
            frac = np.where(tot > 0, nb / np.maximum(tot, 1), 0.0)
            mean = mean + delta * frac
            m2 = m2 + m2b + delta**2 * n * frac
            n = tot
            stop = start + block.shape[0]
            sel = take[(take >= start) & (take < stop)] - start
            if sel.size:
                rows.append(block[sel])
            start = stop
        if start == 0:
            raise ValueError(f"{self.path}: the file holds no data rows.")
        var = np.where(n > 0, m2 / np.maximum(n, 1), 0.0)
        taken = np.concatenate(rows) if rows else np.zeros((0, d), self.dtype)
        return FileSummary(start, mean, var, lo, hi, n_nan, n_inf, taken)

    def to_dask(self):
        """The table as a Dask array, one task per block (for a fit on a cluster).

        Parquet row groups (of at most ``block_rows`` rows) and ``.npy`` row ranges are
        read by the workers; the file must be where they can open it.

        Returns
        -------
        dask array of shape (n, d)
        """
        import dask
        import dask.array as da

        n, d = self.shape
        if self.format == "csv":
            raise ValueError(
                f"{self.path}: to_dask reads Parquet and .npy files; convert the CSV file to "
                "Parquet first."
            )
        spans = [(lo, min(n, lo + self.block_rows)) for lo in range(0, n, self.block_rows)]
        read = dask.delayed(_read_rows, pure=True)
        parts = [
            da.from_delayed(
                read(str(self.path), self.format, self.index, lo, hi, self.dtype),
                shape=(hi - lo, d),
                dtype=self.dtype,
            )
            for lo, hi in spans
        ]
        return da.concatenate(parts, axis=0)

    def __repr__(self) -> str:
        n = "?" if self._n is None else f"{self._n}"
        return (
            f"FileTable({str(self.path)!r}, format={self.format!r}, rows={n}, "
            f"columns={len(self.index)}, block_rows={self.block_rows})"
        )


def _read_rows(path: str, fmt: str, index, lo: int, hi: int, dtype) -> np.ndarray:
    """Rows ``lo:hi`` of the columns ``index`` of a Parquet or ``.npy`` file (a Dask task)."""
    if fmt == "npy":
        a = np.load(path, mmap_mode="r", allow_pickle=False)
        a = a[:, None] if a.ndim == 1 else a
        return np.array(a[lo:hi][:, index], dtype=dtype)
    import pyarrow.parquet as pq

    f = pq.ParquetFile(path)
    names = [f.schema_arrow.field(j).name for j in index]
    out, start = [], 0
    for g in range(f.num_row_groups):
        size = f.metadata.row_group(g).num_rows
        if start < hi and start + size > lo:
            t = f.read_row_group(g, columns=names)
            a = np.column_stack([c.to_numpy() for c in t.columns])
            out.append(a[max(lo - start, 0) : hi - start])
        start += size
    return np.concatenate(out).astype(dtype, copy=False)


def files(path, columns=None, *, block_rows: int | None = None, progress=None) -> FileTable:
    """The points of a file larger than memory, for ``GaussianMixture.fit``.

    A fit of the result runs exact batch EM with one pass over the file per iteration
    (after one pass for the column moments and an initializing subsample); iterating
    :meth:`FileTable.blocks` into ``GaussianMixture.partial_fit`` is one pass of online
    EM. Memory holds a few blocks.

    Parameters
    ----------
    path : str or Path
        A Parquet file (read by row groups, numeric columns), a ``.npy`` array (memory
        mapped) or a CSV file (streamed by pyarrow; a first row with no number is a
        header; empty, NA, N/A, ? and nan cells are missing values).
    columns : sequence of str or int, optional
        Columns to read, by name or 0-based position (default all).
    block_rows : int, optional
        Rows per block (default :data:`FILE_BLOCK_ROWS`).
    progress : callable, optional
        ``progress(rows_done, n_rows)``, called at the start of each pass and after each
        block.

    Returns
    -------
    FileTable
    """
    return FileTable(path, columns=columns, block_rows=block_rows, progress=progress)
