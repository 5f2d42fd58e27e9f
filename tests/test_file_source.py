"""Fitting from files streamed in blocks (gmmscape.files): Parquet, .npy and CSV.

References: the in-memory fit of the same array (the same initialization: a file of at
most DASK_INIT_ROWS rows initializes from all of them), the Dask fit of the same array
(the same initializing subsample), ``partial_fit`` on the same row blocks, and NumPy's
column moments.
"""

from __future__ import annotations

import warnings

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from gmmscape.cli import app
from gmmscape.estimator import GaussianMixture, tables
from gmmscape.estimator._gaussian_mixture import DASK_INIT_ROWS

#: float64 agreement of a streamed fit with the in-memory fit (summation order only).
TOL64 = 1e-10


def _data(n=3000, d=3, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(0.0, 1.0, (n // 2, d))
    b = rng.normal(3.0, 0.6, (n - n // 2, d)) @ np.triu(np.ones((d, d))) * 0.5
    X = np.concatenate([a, b])
    return X[rng.permutation(n)] + 10.0  # an offset: the moments pass must centre


def _write(X, path, row_group=700):
    fmt = path.suffix
    if fmt == ".parquet":
        pq.write_table(
            pa.table({f"c{j}": X[:, j] for j in range(X.shape[1])}), path, row_group_size=row_group
        )
    elif fmt == ".npy":
        np.save(path, X)
    else:
        header = ",".join(f"c{j}" for j in range(X.shape[1]))
        np.savetxt(path, X, delimiter=",", header=header, comments="", fmt="%.17g")
    return path


def _close(a, b, tol):
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=0, atol=tol)


@pytest.mark.parametrize("suffix", [".parquet", ".npy", ".csv"])
@pytest.mark.parametrize("cov", ["full", "diag"])
def test_file_fit_equals_in_memory_fit(tmp_path, suffix, cov):
    X = _data()
    table = tables.files(_write(X, tmp_path / f"x{suffix}"), block_rows=500)
    kw = dict(covariance_type=cov, random_state=1, tol=1e-9, max_iter=200)
    ref = GaussianMixture(2, **kw).fit(X)
    got = GaussianMixture(2, **kw).fit(table)
    assert ref.converged_ and got.converged_ and got.n_iter_ == ref.n_iter_
    _close(got, ref, TOL64)
    assert got.lower_bound_ == pytest.approx(ref.lower_bound_, abs=TOL64)
    assert got.n_features_in_ == 3
    n_blocks = sum(1 for _ in table.blocks())
    assert n_blocks >= 3  # several row groups / blocks were summed


def test_float32_parquet_stays_float32(tmp_path):
    X = _data().astype(np.float32)
    table = tables.files(_write(X, tmp_path / "x.parquet"), block_rows=400)
    assert table.dtype == np.float32
    got = GaussianMixture(2, random_state=0).fit(table)
    ref = GaussianMixture(2, random_state=0).fit(X)
    assert got.means_.dtype == np.float32
    np.testing.assert_allclose(got.means_, ref.means_, atol=1e-3)


def test_subsample_init_equals_dask_fit(tmp_path):
    """Above DASK_INIT_ROWS rows both paths initialize from the same random rows."""
    import dask
    import dask.array as da

    X = _data(n=DASK_INIT_ROWS + 5000, d=2, seed=3)
    table = tables.files(_write(X, tmp_path / "x.npy"), block_rows=4096)
    kw = dict(random_state=5, tol=1e-9, max_iter=200)
    with dask.config.set(scheduler="synchronous"):
        ref = GaussianMixture(2, **kw).fit(da.from_array(X, chunks=(6000, 2)))
    got = GaussianMixture(2, **kw).fit(table)
    assert got.n_iter_ == ref.n_iter_
    _close(got, ref, TOL64)


@pytest.mark.parametrize("suffix", [".parquet", ".npy"])
def test_to_dask_on_the_local_scheduler_equals_in_memory(tmp_path, suffix):
    import dask

    X = _data(n=2000)
    table = tables.files(_write(X, tmp_path / f"x{suffix}", row_group=300), block_rows=450)
    darr = table.to_dask()
    assert darr.shape == X.shape and len(darr.chunks[0]) == 5
    np.testing.assert_array_equal(darr.compute(scheduler="synchronous"), X)
    kw = dict(random_state=2, tol=1e-9, max_iter=200)
    with dask.config.set(scheduler="threads"):
        got = GaussianMixture(2, **kw).fit(darr)
    _close(got, GaussianMixture(2, **kw).fit(X), TOL64)


def test_summary_matches_numpy(tmp_path):
    X = _data(n=1234, d=4)
    X[3, 1] = X[50, 2] = np.nan
    table = tables.files(_write(X, tmp_path / "x.parquet", row_group=100), block_rows=77)
    take = np.array([0, 76, 77, 500, 1233])
    sm = table.summary(take)
    assert sm.n == 1234 and sm.n_nan == 2 and sm.n_inf == 0
    np.testing.assert_allclose(sm.mean, np.nanmean(X, 0), rtol=1e-13)
    np.testing.assert_allclose(sm.var, np.nanvar(X, 0), rtol=1e-11)
    np.testing.assert_array_equal(sm.lo, np.nanmin(X, 0))
    np.testing.assert_array_equal(sm.hi, np.nanmax(X, 0))
    np.testing.assert_array_equal(sm.rows, X[take])


def test_columns_select_by_name_and_position(tmp_path):
    X = _data(n=600, d=4)
    path = _write(X, tmp_path / "x.csv")
    table = tables.files(path, columns=["c2", 0], block_rows=100)
    assert table.columns == ["c2", "c0"] and table.shape == (600, 2)
    np.testing.assert_array_equal(np.concatenate(list(table.blocks())), X[:, [2, 0]])
    with pytest.raises(ValueError, match=r"x\.csv: unknown column 'zz'"):
        tables.files(path, columns=["zz"])


def test_online_pass_equals_partial_fit_on_the_same_blocks(tmp_path):
    X = _data(n=4000)
    table = tables.files(_write(X, tmp_path / "x.parquet", row_group=1000), block_rows=1000)
    got, ref = GaussianMixture(2, random_state=0), GaussianMixture(2, random_state=0)
    for block in table.blocks():
        got.partial_fit(block)
    for lo in range(0, 4000, 1000):
        ref.partial_fit(X[lo : lo + 1000])
    assert got.n_iter_ == 4
    _close(got, ref, 1e-12)


def test_missing_values_batch_error_and_online_fit(tmp_path):
    X = _data(n=3000)
    X[::7, 1] = np.nan
    path = _write(X, tmp_path / "x.parquet")
    with pytest.raises(ValueError, match=r"x\.parquet: the file holds 429 missing"):
        GaussianMixture(2).fit(tables.files(path))
    with pytest.raises(ValueError, match="fit it online"):
        GaussianMixture(2, missing="em").fit(tables.files(path))
    got = GaussianMixture(2, missing="em", random_state=0)
    for block in tables.files(path, block_rows=1000).blocks():
        got.partial_fit(block)
    ref = GaussianMixture(2, missing="em", random_state=0)
    for lo in range(0, 3000, 1000):
        ref.partial_fit(X[lo : lo + 1000])
    _close(got, ref, 1e-12)


def test_bad_files_are_errors_naming_the_file(tmp_path):
    cases = {}
    (tmp_path / "words.csv").write_text("a,b\n1,2\n3,zebra\n")
    cases["words.csv"] = "zebra"
    (tmp_path / "ragged.csv").write_text("1,2\n3\n")
    cases["ragged.csv"] = "columns"
    (tmp_path / "junk.parquet").write_bytes(b"not parquet at all")
    cases["junk.parquet"] = "not a readable Parquet file"
    pq.write_table(pa.table({"s": ["a", "b"]}), tmp_path / "text.parquet")
    cases["text.parquet"] = "non-numeric type"
    np.save(tmp_path / "c.npy", np.ones(3, complex))
    cases["c.npy"] = "dtype complex128"
    (tmp_path / "x.json").write_text("{}")
    cases["x.json"] = "unknown data format"
    cases["absent.npy"] = "no such file"
    for name, what in cases.items():
        with pytest.raises(ValueError, match=what) as info:
            table = tables.files(tmp_path / name)
            GaussianMixture(1).fit(table)
        assert name in str(info.value)
    with pytest.raises(ValueError, match="block_rows"):
        tables.files(tmp_path / "c.npy", block_rows=0)
    with pytest.raises(ValueError, match="sample_weight is not available"):
        X = _data(n=100)
        GaussianMixture(1).fit(tables.files(_write(X, tmp_path / "y.npy")), sample_weight=X[:, 0])


def test_refine_over_a_file_equals_in_memory(tmp_path):
    X = _data(n=1500)
    table = tables.files(_write(X, tmp_path / "x.npy"), block_rows=400)
    kw = dict(random_state=0, tol=1e-8, max_iter=100, refine=True, refine_candidates=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = GaussianMixture(3, **kw).fit(X)
        got = GaussianMixture(3, **kw).fit(table)
    assert [m["kind"] for m in got.refine_moves_] == [m["kind"] for m in ref.refine_moves_]
    _close(got, ref, 1e-8)


# ---- the CLI ---------------------------------------------------------------------------
def _cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_cli_streamed_fit_equals_in_memory_fit(tmp_path):
    import json

    X = _data(n=2000)
    data = _write(X, tmp_path / "x.parquet", row_group=300)
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    r1 = _cli("fit", data, "-k", 2, "--tol", 1e-9, "--out", a, "--stream", "off")
    r2 = _cli("fit", data, "-k", 2, "--tol", 1e-9, "--out", b, "--stream", "on",
              "--block-rows", 512)  # fmt: skip
    assert r1.exit_code == 0 and r2.exit_code == 0, r2.output
    ma, mb = (json.loads(p.read_text())["fitted"] for p in (a, b))
    np.testing.assert_allclose(ma["means_"], mb["means_"], rtol=0, atol=TOL64)
    import re

    o1, o2 = (" ".join(r.output.split()) for r in (r1, r2))
    ll = re.search(r"mean log-likelihood (-?[0-9.]+)", o1).group(1)
    assert f"mean log-likelihood {ll}" in o2  # the scoring pass over the file
    assert "rows/s" in o2  # the progress bar


def test_cli_online_fit_and_columns(tmp_path):
    X = _data(n=3000, d=3)
    data = _write(X, tmp_path / "x.csv")
    out = tmp_path / "m.json"
    r = _cli("fit", data, "-k", 2, "--online", "--block-rows", 500, "--columns", "c0,c2",
             "--out", out)  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "one online EM pass" in r.output and "2 features" in r.output
    from gmmscape.estimator import load_model

    gm = load_model(out)
    assert gm.provenance_["selection"]["index"] == [0, 2]
    ref = GaussianMixture(2, random_state=0)
    for block in tables.files(data, columns=[0, 2], block_rows=500).blocks():
        ref.partial_fit(block)
    np.testing.assert_allclose(gm.means_, ref.means_, rtol=0, atol=1e-12)


def test_cli_stream_errors_name_the_option_or_file(tmp_path):
    X = _data(n=200)
    data = _write(X, tmp_path / "x.npy")
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2\n3,x\n")
    cases = [
        (["--stream", "maybe"], "--stream must be one of auto, on, off"),
        (["--online", "--stream", "off"], "--online streams DATA"),
        (["--online", "--standardize"], "--standardize reads DATA into memory"),
        (["--block-rows", "0", "--stream", "on"], "--block-rows must be a positive"),
    ]
    for extra, msg in cases:
        r = _cli("fit", data, "-k", 2, "--out", tmp_path / "m.json", *extra)
        assert r.exit_code == 2 and "error:" in r.output and msg in " ".join(r.output.split())
    r = _cli("fit", bad, "-k", 1, "--stream", "on", "--out", tmp_path / "m.json")
    assert r.exit_code == 2 and "error:" in r.output and "bad.csv" in r.output


@pytest.mark.slow
def test_memory_is_bounded_by_blocks_not_the_file(tmp_path):
    """Peak RSS of a streamed fit of a 256 MB float32 file grows by far less than the file.

    A fresh process measures ``ru_maxrss`` after a warm-up fit of a small file (JAX,
    pyarrow and the compiled kernels loaded), then fits the large file by batch EM; the
    growth must stay under a quarter of the file's 256 MB (blocks are 8 MB).
    """
    import subprocess
    import sys

    n, d = 8_000_000, 8
    path = tmp_path / "big.parquet"
    schema = pa.schema([(f"x{j}", pa.float32()) for j in range(d)])
    with pq.ParquetWriter(path, schema) as w:
        for i in range(n // 2**20 + 1):
            m = min(2**20, n - i * 2**20)
            x = np.random.default_rng(i).standard_normal((m, d)).astype(np.float32)
            x[: m // 2] += 4.0
            w.write_table(pa.table({f"x{j}": x[:, j] for j in range(d)}, schema=schema))
    small = tmp_path / "small.parquet"
    pq.write_table(pq.read_table(path).slice(0, 50_000), small)
    code = f"""
import resource, warnings
import gmmscape
warnings.simplefilter("ignore")
kw = dict(max_iter=2, tol=0.0, random_state=0)
gmmscape.GaussianMixture(2, **kw).fit(gmmscape.files({str(small)!r}, block_rows=2**18))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
gm = gmmscape.GaussianMixture(2, **kw).fit(gmmscape.files({str(path)!r}, block_rows=2**18))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(before, after, gm.weights_.min())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, after, wmin = out.stdout.split()
    growth_mb = (int(after) - int(before)) / 1024
    assert growth_mb < 64, growth_mb
    assert float(wmin) > 0.4  # it fitted the two halves
