"""Reading data files and saving / loading fitted :class:`GaussianMixture` models.

Data: CSV (an optional header row of column names), ``.npy`` and Parquet, read into a
float64 array of shape (n_samples, n_features) with errors that name the file, the row
and the column of a bad cell. Models: JSON holding the constructor parameters and the
fitted arrays as decimal floats that round-trip exactly, so a loaded model predicts
exactly as the saved one. Files are written atomically.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gmmscape.experiments.demo import write_json

FORMAT = "gmmscape.GaussianMixture"
FORMAT_VERSION = 1
_FITTED = ("weights_", "means_", "covariances_", "precisions_cholesky_")


def _float(cell: str):
    try:
        return float(cell)
    except ValueError:
        return None


def read_csv(path: Path) -> np.ndarray:
    """Read a numeric CSV file; a first row that is entirely non-numeric is a header.

    Parameters
    ----------
    path : Path

    Returns
    -------
    ndarray of shape (n_samples, n_features)

    Raises
    ------
    ValueError
        On a non-numeric cell (naming its row and column), ragged rows or no data rows.
    """
    with open(path, newline="") as fh:
        rows = [r for r in csv.reader(fh) if r and any(c.strip() for c in r)]
    if not rows:
        raise ValueError(f"{path}: the file holds no data rows.")
    header = None
    if all(_float(c) is None for c in rows[0]):
        header, rows = rows[0], rows[1:]
    if not rows:
        raise ValueError(f"{path}: the file holds a header but no data rows.")
    width = len(rows[0])
    out = np.empty((len(rows), width))
    line0 = 2 if header else 1
    for i, row in enumerate(rows):
        if len(row) != width:
            raise ValueError(
                f"{path}: row {i + line0} has {len(row)} cells, expected {width} like the first."
            )
        for j, cell in enumerate(row):
            v = _float(cell)
            if v is None:
                name = f" ({header[j]!r})" if header else ""
                raise ValueError(
                    f"{path}: non-numeric cell {cell!r} at line {i + line0}, column "
                    f"{j + 1}{name}; every cell must be a number."
                )
            out[i, j] = v
    return out


def read_data(path) -> np.ndarray:
    """Read a data matrix from a CSV, ``.npy`` or Parquet file.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    ndarray of shape (n_samples, n_features)
        A 1-D file becomes one feature.

    Raises
    ------
    ValueError
        On an unknown suffix, a missing file or non-numeric content.
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: no such file.")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".txt"):
        X = read_csv(path)
    elif suffix == ".npy":
        X = np.load(path, allow_pickle=False)
        if not np.issubdtype(X.dtype, np.number):
            raise ValueError(f"{path}: the array has non-numeric dtype {X.dtype}.")
    elif suffix in (".parquet", ".pq"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        cols = []
        for name, col in zip(table.column_names, table.columns, strict=True):
            t = col.type
            if not (pa.types.is_integer(t) or pa.types.is_floating(t)):
                raise ValueError(f"{path}: column {name!r} has non-numeric type {t}.")
            cols.append(col.to_numpy(zero_copy_only=False).astype(np.float64))
        if not cols:
            raise ValueError(f"{path}: the table has no columns.")
        X = np.column_stack(cols)
    else:
        raise ValueError(f"{path}: unknown data format {suffix!r}; use .csv, .npy or .parquet.")
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise ValueError(f"{path}: expected a 2-D table (n_samples, n_features); got {X.shape}.")
    return X


@dataclass
class SavedModel:
    """The JSON layout of a saved model."""

    format: str
    version: int
    params: dict
    fitted: dict


def _plain(v):
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, type):
        return np.dtype(v).name
    return v


def save_model(gm, path) -> Path:
    """Write a fitted model to JSON (atomically).

    Parameters
    ----------
    gm : GaussianMixture
        Fitted.
    path : str or Path

    Returns
    -------
    Path
    """
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(gm)
    params = {k: _plain(v) for k, v in gm.get_params().items()}
    if not isinstance(params.get("random_state"), int | type(None)):
        params["random_state"] = None
    fitted = {name: np.asarray(getattr(gm, name)).tolist() for name in _FITTED}
    fitted.update(
        dtype=np.dtype(gm._compute_dtype_).name,
        n_features_in_=int(gm.n_features_in_),
        converged_=bool(gm.converged_),
        n_iter_=int(gm.n_iter_),
        lower_bound_=float(gm.lower_bound_),
        lower_bounds_=[float(v) for v in gm.lower_bounds_],
        refine_moves_=gm.refine_moves_,
        n_collapsed_=int(gm.n_collapsed_),
    )
    return write_json(SavedModel(FORMAT, FORMAT_VERSION, params, fitted), Path(path))


def load_model(path):
    """Load a model written by :func:`save_model`.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    GaussianMixture
        Fitted, predicting exactly as the saved model.
    """
    import json

    from gmmscape.estimator._gaussian_mixture import GaussianMixture

    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read a model: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path}: not a saved {FORMAT} model.")
    params = data["params"]
    for key in ("weights_init", "means_init", "precisions_init"):
        if params.get(key) is not None:
            params[key] = np.asarray(params[key])
    params["freeze"] = tuple(params.get("freeze", ()))
    gm = GaussianMixture(**params)
    f = data["fitted"]
    dt = np.dtype(f["dtype"]).type
    for name in _FITTED:
        setattr(gm, name, np.asarray(f[name], dtype=dt))
    gm._compute_dtype_ = dt
    gm._set_precisions()
    for name in ("n_features_in_", "converged_", "n_iter_", "lower_bound_", "lower_bounds_"):
        setattr(gm, name, f[name])
    gm.refine_moves_ = f.get("refine_moves_", [])
    gm.n_collapsed_ = f.get("n_collapsed_", 0)
    return gm
