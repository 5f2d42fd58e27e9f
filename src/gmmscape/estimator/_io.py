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

from gmmscape._files import write_json
from gmmscape._lazy import LazyModule

families = LazyModule("gmmscape.core.families")  # JAX is loaded when a model is read

FORMAT = "gmmscape.GaussianMixture"
FORMAT_VERSION = 1
_FITTED = ("weights_", "means_", "covariances_", "precisions_cholesky_")


#: CSV cells read as a missing value (NaN), besides any spelling of ``nan``.
MISSING_CELLS = ("", "NA", "N/A", "?")


def _float(cell: str):
    if cell.strip() in MISSING_CELLS:
        return float("nan")
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

    Empty cells and ``NA``, ``N/A``, ``?`` or ``nan`` read as NaN (a missing value, see
    ``GaussianMixture(missing="em")``).

    Raises
    ------
    ValueError
        On a non-numeric cell (naming its row and column), ragged rows or no data rows.
    """
    return _read_csv(path)[0]


def _read_csv(path: Path) -> tuple[np.ndarray, list[str] | None]:
    """:func:`read_csv`, also returning the header's column names (None without one)."""
    with open(path, newline="") as fh:
        rows = [r for r in csv.reader(fh) if r and any(c.strip() for c in r)]
    if not rows:
        raise ValueError(f"{path}: the file holds no data rows.")
    header = None
    named = [c for c in rows[0] if c.strip() not in MISSING_CELLS]
    if named and all(_float(c) is None for c in named):
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
    return out, header


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
    return read_table(path)[0]


def read_table(path) -> tuple[np.ndarray, list[str]]:
    """Read a data matrix and its column names from a CSV, ``.npy`` or Parquet file.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
    names : list of str, length n_features
        The CSV header's or Parquet table's column names; ``x0, x1, ...`` where the file
        has none.

    Raises
    ------
    ValueError
        As :func:`read_data`.
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: no such file.")
    if path.is_dir():
        raise ValueError(f"{path}: is a directory, not a data file.")
    try:
        X, names = _read_data(path)
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the file: {exc.strerror or exc}.") from None
    return X, names or [f"x{j}" for j in range(X.shape[1])]


def _read_data(path: Path) -> tuple[np.ndarray, list[str] | None]:
    suffix = path.suffix.lower()
    names = None
    if suffix in (".csv", ".txt"):
        X, names = _read_csv(path)
    elif suffix == ".npy":
        try:
            X = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise ValueError(f"{path}: not a readable .npy array: {exc}") from None
        if not np.issubdtype(X.dtype, np.number) or np.issubdtype(X.dtype, np.complexfloating):
            raise ValueError(
                f"{path}: the array has dtype {X.dtype}; a Gaussian mixture is fitted to real "
                "numbers (split complex data into real and imaginary columns)."
            )
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
        names = [str(n) for n in table.column_names]
    else:
        raise ValueError(f"{path}: unknown data format {suffix!r}; use .csv, .npy or .parquet.")
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise ValueError(f"{path}: expected a 2-D table (n_samples, n_features); got {X.shape}.")
    return X, names


def write_table(X: np.ndarray, names: list[str], path) -> Path:
    """Write a table in the format its suffix names (CSV with a header row, ``.npy`` or
    Parquet with the column names), atomically.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    names : list of str, length n_features
    path : str or Path
        Suffix ``.csv``/``.txt``, ``.npy`` or ``.parquet``/``.pq``.

    Returns
    -------
    Path
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".txt", ".npy", ".parquet", ".pq"):
        raise ValueError(f"{path}: unknown data format {suffix!r}; use .csv, .npy or .parquet.")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        if suffix == ".npy":
            with open(tmp, "wb") as fh:
                np.save(fh, X)
        else:
            import pyarrow as pa

            table = pa.table({n: X[:, j] for j, n in enumerate(names)})
            if suffix in (".parquet", ".pq"):
                import pyarrow.parquet as pq

                pq.write_table(table, tmp)
            else:  # the shortest text that reads back the same number: 2.8, not 2.79999...
                import pyarrow.csv as pcsv

                with open(tmp, "wb") as fh:
                    fh.write((",".join(names) + "\n").encode())
                    opts = pcsv.WriteOptions(include_header=False, quoting_style="none")
                    pcsv.write_csv(table, fh, opts)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def select_columns(X, names, columns=(), drop=()):
    """Keep ``columns`` of ``X`` (all by default), less those in ``drop``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    names : list of str, length n_features
    columns, drop : sequence of str
        Column names, or 0-based indices written as integers.

    Returns
    -------
    X : ndarray of shape (n_samples, n_kept)
    names : list of str
    index : list of int
        The kept columns' positions in the input.

    Raises
    ------
    ValueError
        On an unknown column (listing the known names) or when nothing is left.
    """

    def position(c):
        c = str(c).strip()
        if c in names:
            return names.index(c)
        if c.lstrip("-").isdigit() and -len(names) <= int(c) < len(names):
            return int(c) % len(names)
        raise ValueError(f"unknown column {c!r}; the columns are {names}.")

    index = [position(c) for c in columns] if columns else list(range(len(names)))
    gone = {position(c) for c in drop}
    index = [j for j in dict.fromkeys(index) if j not in gone]
    if not index:
        raise ValueError("--columns/--drop leave no column to fit.")
    if index == list(range(len(names))):
        return X, list(names), index  # no selection: the data as read, not a copy
    return X[:, index], [names[j] for j in index], index


@dataclass
class SavedModel:
    """The JSON layout of a saved model."""

    format: str
    version: int
    params: dict
    fitted: dict
    provenance: dict | None = None


def _plain(v):
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, type):
        return np.dtype(v).name
    return v


def save_model(gm, path, feature_names=None, source=None, selection=None) -> Path:
    """Write a fitted model to JSON (atomically), with where it came from.

    Besides the parameters and fitted arrays, the file records a ``provenance`` section:
    the gmmscape version that wrote it, the feature names and the data source.

    Parameters
    ----------
    gm : GaussianMixture
        Fitted.
    path : str or Path
    feature_names : list of str, optional
        One per feature (default ``x0, x1, ...``).
    source : str, optional
        Where the training data came from (e.g. the file given to ``gmmscape fit``).
    selection : dict, optional
        ``{"index": [...], "n_source_features": int}``: the columns of the source that
        were fitted (``gmmscape fit --columns/--drop``), so that ``predict`` on a file of
        the source's width selects the same ones.

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
    d = int(gm.n_features_in_)
    names = [f"x{j}" for j in range(d)] if feature_names is None else list(map(str, feature_names))
    if len(names) != d:
        raise ValueError(f"feature_names has {len(names)} names for {d} features.")
    from gmmscape import __version__

    provenance = {"gmmscape_version": __version__, "feature_names": names, "source": source}
    if selection is not None:
        provenance["selection"] = selection
    model = SavedModel(FORMAT, FORMAT_VERSION, params, fitted, provenance)
    return write_json(model, Path(path))


#: Keys every saved model's ``fitted`` section holds, with their JSON types.
_FITTED_SCALARS = {
    "dtype": str,
    "n_features_in_": int,
    "converged_": bool,
    "n_iter_": int,
    "lower_bound_": (int, float),
    "lower_bounds_": list,
}


def _cov_shapes(ct: str, k: int, d: int) -> tuple:
    return families.get(ct).cov_shape(k, d)


def _check_array(path, name, value, shape, dtype) -> np.ndarray:
    try:
        a = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError):
        raise ValueError(f"{path}: fitted.{name} is not an array of numbers.") from None
    if a.shape != shape:
        raise ValueError(f"{path}: fitted.{name} must have shape {shape}; got {a.shape}.")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{path}: fitted.{name} holds NaN or inf.")
    return a


def _check_model(path: Path, data) -> tuple[dict, dict, dict]:
    """Validate a saved model's JSON against the schema; return (params, arrays, scalars).

    Checks the format and its version, the keys and types of ``params`` and ``fitted``,
    the dtype, every array's shape (from ``n_components``, ``n_features_in_`` and the
    covariance type), finite values, weights in [0, 1] summing to one, positive-definite
    covariances and non-singular precision factors. Errors name the field.
    """
    from gmmscape.estimator._gaussian_mixture import GaussianMixture

    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path}: not a saved {FORMAT} model (no 'format': {FORMAT!r}).")
    if data.get("version") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: model format version {data.get('version')!r}; this gmmscape reads "
            f"version {FORMAT_VERSION}."
        )
    params, fitted = data.get("params"), data.get("fitted")
    for name, part in (("params", params), ("fitted", fitted)):
        if not isinstance(part, dict):
            raise ValueError(f"{path}: '{name}' must be a JSON object; got {type(part).__name__}.")
    known = set(GaussianMixture().get_params())
    extra = sorted(set(params) - known)
    if extra:
        raise ValueError(f"{path}: unknown parameter(s) {extra} in 'params'.")
    params = dict(params)
    for key in ("weights_init", "means_init", "precisions_init"):
        if params.get(key) is not None:
            params[key] = np.asarray(params[key])
    params["freeze"] = tuple(params.get("freeze", ()))
    try:
        GaussianMixture(**params)._validate_params()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: invalid 'params': {exc}") from None
    missing = [n for n in (*_FITTED, *_FITTED_SCALARS) if n not in fitted]
    if missing:
        raise ValueError(f"{path}: 'fitted' lacks {missing}.")
    for name, typ in _FITTED_SCALARS.items():
        v = fitted[name]
        if not isinstance(v, typ) or (typ is int and isinstance(v, bool)):
            raise ValueError(f"{path}: fitted.{name} has the wrong type ({type(v).__name__}).")
    if fitted["dtype"] not in ("float32", "float64"):
        raise ValueError(
            f"{path}: fitted.dtype must be 'float32' or 'float64'; got {fitted['dtype']!r}."
        )
    dt = np.dtype(fitted["dtype"]).type
    k, d = int(params.get("n_components", 1)), fitted["n_features_in_"]
    ct = params.get("covariance_type", "full")
    if d < 1:
        raise ValueError(f"{path}: fitted.n_features_in_ must be >= 1; got {d}.")
    cov_shape = _cov_shapes(ct, k, d)
    arrays = {
        "weights_": _check_array(path, "weights_", fitted["weights_"], (k,), dt),
        "means_": _check_array(path, "means_", fitted["means_"], (k, d), dt),
        "covariances_": _check_array(path, "covariances_", fitted["covariances_"], cov_shape, dt),
        "precisions_cholesky_": _check_array(
            path, "precisions_cholesky_", fitted["precisions_cholesky_"], cov_shape, dt
        ),
    }
    w = arrays["weights_"]
    tol = 1e-6 if dt == np.float64 else 1e-4
    if (w < 0).any() or (w > 1).any() or abs(float(np.sum(w, dtype=np.float64)) - 1.0) > tol:
        raise ValueError(
            f"{path}: fitted.weights_ must lie in [0, 1] and sum to 1; got sum "
            f"{float(np.sum(w, dtype=np.float64)):.8g}, min {float(w.min()):.3g}."
        )
    cov, pc = arrays["covariances_"], arrays["precisions_cholesky_"]
    fam = families.get(ct)
    if not fam.matrix:
        for name, a in (("covariances_", cov), ("precisions_cholesky_", pc)):
            if (a <= 0).any():
                raise ValueError(f"{path}: fitted.{name} must be positive.")
    else:
        mats = (cov[None], pc[None]) if fam.shared else (cov, pc)
        for i, (c, p) in enumerate(zip(*mats, strict=True)):
            c64, p64 = c.astype(np.float64), p.astype(np.float64)
            if not np.allclose(c64, c64.T, rtol=1e-6, atol=0) or np.linalg.eigvalsh(c64)[0] <= 0:
                raise ValueError(
                    f"{path}: fitted.covariances_[{i}] must be symmetric positive definite."
                )
            sv = np.linalg.svd(p64, compute_uv=False)
            if not sv[-1] > 1e3 * np.finfo(dt).eps * sv[0]:
                raise ValueError(
                    f"{path}: fitted.precisions_cholesky_[{i}] is singular (smallest singular "
                    f"value {sv[-1]:.3g}); the precision would not be positive definite."
                )
    prov = data.get("provenance")
    if prov is not None:
        names = prov.get("feature_names") if isinstance(prov, dict) else None
        if not isinstance(names, list) or len(names) != d:
            raise ValueError(
                f"{path}: provenance.feature_names must list {d} names (one per feature)."
            )
        sel = prov.get("selection")
        if sel is not None:
            ok = isinstance(sel, dict) and isinstance(sel.get("n_source_features"), int)
            idx = sel.get("index") if ok else None
            if not (
                isinstance(idx, list)
                and len(idx) == d
                and all(isinstance(j, int) and 0 <= j < sel["n_source_features"] for j in idx)
            ):
                raise ValueError(
                    f"{path}: provenance.selection must give {d} column indices below "
                    "its n_source_features."
                )
    scalars = {n: fitted[n] for n in _FITTED_SCALARS if n != "dtype"}
    scalars["provenance_"] = prov or {}
    scalars["dtype"] = dt
    scalars["refine_moves_"] = fitted.get("refine_moves_", [])
    scalars["n_collapsed_"] = fitted.get("n_collapsed_", 0)
    return params, arrays, scalars


def load_model(path):
    """Load a model written by :func:`save_model`, validated against its schema.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    GaussianMixture
        Fitted, predicting exactly as the saved model.

    Raises
    ------
    ValueError
        If the file cannot be read, is not a model, has another format version, or any
        field is missing, of the wrong type or shape, not finite, or inconsistent
        (weights not summing to one, a covariance not positive definite, a singular
        precision factor); the message names the field.
    """
    import json

    from gmmscape.estimator._gaussian_mixture import GaussianMixture

    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a directory, not a model file.")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read a model: {exc}") from None
    params, arrays, scalars = _check_model(path, data)
    gm = GaussianMixture(**params)
    for name, a in arrays.items():
        setattr(gm, name, a)
    gm._compute_dtype_ = scalars.pop("dtype")
    gm._set_precisions()
    for name, v in scalars.items():
        setattr(gm, name, v)
    return gm
