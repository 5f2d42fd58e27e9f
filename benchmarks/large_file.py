"""Fitting a Parquet file larger than memory: peak RSS and rows/s (issue 17 item 4).

The file: ``--rows`` rows (default 2e8) of ``--cols`` float32 columns (default 8, so 6.4
GB at full size) drawn from a fixed 4-component full-covariance mixture, written in row
groups of ``--row-group`` rows (each row group generated, written and dropped: the file is
never whole in memory), under a temporary directory (``--dir``) that is deleted at the end
unless ``--keep``. Free disk is checked first.

Each measured phase runs in a fresh Python process, which reports its wall time and its
peak resident set size (``ru_maxrss``; JAX, pyarrow and the interpreter included):

* ``numpy``: one plain pass over the file, pyarrow ``iter_batches`` of ``--block-rows``
  rows to a NumPy (m, d) array and a column sum: the floor of reading the file.
* ``batch``: ``GaussianMixture(4, max_iter=--iters, tol=0).fit(gmmscape.files(path))``:
  one pass for the column moments and the initializing subsample (20,000 rows), then one
  pass per EM iteration (exact batch EM, statistics summed over the blocks).
* ``online``: ``partial_fit`` on each block of ``files(path).blocks()``: one pass of
  stepwise EM.

Throughput is rows read per second (passes x rows / wall time; the wall time includes
start-up and JAX compilation). Run:

    .venv/bin/python benchmarks/large_file.py                  # 2e8 rows (6.4 GB)
    .venv/bin/python benchmarks/large_file.py --rows 20000000  # 2e7 rows (640 MB)

Results: ``benchmarks/results/large_file.{json,md}`` (``large_file_<rows>.*`` for a
non-default ``--rows``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
K = 4


def truth(d: int):
    rng = np.random.default_rng(2024)
    means = rng.normal(size=(K, d)) * 3.0
    a = rng.normal(size=(K, d, d)) * 0.4
    cov = a @ np.swapaxes(a, 1, 2) + 0.3 * np.eye(d)
    return np.array([0.4, 0.3, 0.2, 0.1]), means, np.linalg.cholesky(cov)


def write_file(path: Path, rows: int, cols: int, group: int) -> float:
    """Write the file row group by row group; return the seconds it took."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    weights, means, roots = truth(cols)
    schema = pa.schema([(f"x{j}", pa.float32()) for j in range(cols)])
    t0 = time.perf_counter()
    with pq.ParquetWriter(path, schema, compression="snappy") as w:
        for i, lo in enumerate(range(0, rows, group)):
            m = min(group, rows - lo)
            rng = np.random.default_rng([7, i])
            z = rng.choice(K, size=m, p=weights)
            x = rng.standard_normal((m, cols)).astype(np.float32)
            out = np.empty((m, cols), np.float32)
            for c in range(K):
                sel = z == c
                out[sel] = x[sel] @ roots[c].T.astype(np.float32) + means[c].astype(np.float32)
            w.write_table(pa.table({f"x{j}": out[:, j] for j in range(cols)}, schema=schema))
    return time.perf_counter() - t0


def phase(name: str, path: str, block_rows: int, iters: int) -> dict:
    """One measured phase, in this (fresh) process."""
    import resource

    t0 = time.perf_counter()
    out = {"phase": name}
    if name == "numpy":
        import pyarrow.parquet as pq

        total, n = 0.0, 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=block_rows):
            x = np.column_stack([c.to_numpy() for c in batch.columns])
            total = total + x.sum(axis=0, dtype=np.float64)
            n += x.shape[0]
        out.update(passes=1, rows=n)
    else:
        import gmmscape

        passes = [0]

        def progress(done, total):
            passes[0] += done == 0

        table = gmmscape.files(path, block_rows=block_rows, progress=progress)
        gm = gmmscape.GaussianMixture(K, random_state=0)
        if name == "batch":
            gm.set_params(max_iter=iters, tol=0.0)
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # max_iter reached: "did not converge"
                gm.fit(table)
            out.update(lower_bounds=gm.lower_bounds_, n_iter=gm.n_iter_)
        else:
            for block in table.blocks():
                gm.partial_fit(block)
            out.update(n_blocks=gm.n_iter_, last_block_loglik=gm.lower_bound_)
        out.update(passes=passes[0], rows=table.shape[0], weights=gm.weights_.tolist())
    out["seconds"] = time.perf_counter() - t0
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["rows_per_s"] = out["passes"] * out["rows"] / out["seconds"]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=float, default=2e8)
    ap.add_argument("--cols", type=int, default=8)
    ap.add_argument("--iters", type=int, default=3, help="EM iterations of the batch fit")
    ap.add_argument("--block-rows", type=int, default=2**20)
    ap.add_argument("--row-group", type=int, default=2**20)
    ap.add_argument("--dir", default=None, help="where the file goes (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the file")
    ap.add_argument("--phase", help=argparse.SUPPRESS)
    ap.add_argument("--path", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.phase:  # a measured child process
        print(json.dumps(phase(a.phase, a.path, a.block_rows, a.iters)))
        return
    rows = int(a.rows)
    need = rows * a.cols * 4
    root = Path(tempfile.mkdtemp(prefix="gmmscape-large-", dir=a.dir))
    free = shutil.disk_usage(root).free
    if free < 1.3 * need:
        shutil.rmtree(root)
        sys.exit(
            f"error: {root} has {free / 1e9:.1f} GB free; the file needs ~{need / 1e9:.1f} GB."
        )
    path = root / "large.parquet"
    results = {"rows": rows, "cols": a.cols, "k": K, "block_rows": a.block_rows,
               "row_group": a.row_group, "iters": a.iters}  # fmt: skip
    try:
        print(f"writing {rows:,} x {a.cols} float32 to {path} ...", flush=True)
        results["write_seconds"] = write_file(path, rows, a.cols, a.row_group)
        results["file_bytes"] = path.stat().st_size
        for name in ("numpy", "batch", "online"):
            cmd = [sys.executable, __file__, "--phase", name, "--path", str(path),
                   "--block-rows", str(a.block_rows), "--iters", str(a.iters)]  # fmt: skip
            res = subprocess.run(cmd, capture_output=True, text=True, check=True)
            results[name] = json.loads(res.stdout.strip().splitlines()[-1])
            r = results[name]
            print(
                f"{name}: {r['seconds']:.1f} s, {r['passes']} pass(es), "
                f"{r['rows_per_s']:,.0f} rows/s, peak RSS {r['peak_rss_mb']:.0f} MB",
                flush=True,
            )
    finally:
        if a.keep:
            print(f"kept {path}")
        else:
            shutil.rmtree(root)
    RESULTS.mkdir(exist_ok=True)
    stem = "large_file" if rows == int(2e8) else f"large_file_{rows}"
    (RESULTS / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
    floor = results["numpy"]["rows_per_s"]
    lines = [
        f"# Fitting a {rows:,} x {a.cols} float32 Parquet file "
        f"({results['file_bytes'] / 1e9:.2f} GB on disk, snappy)",
        "",
        "| phase | passes | seconds | rows/s | vs numpy pass | peak RSS (MB) |",
        "|---|---|---|---|---|---|",
    ]
    for name in ("numpy", "batch", "online"):
        r = results[name]
        lines.append(
            f"| {name} | {r['passes']} | {r['seconds']:.1f} | {r['rows_per_s']:,.0f} | "
            f"{r['rows_per_s'] / floor:.2f} | {r['peak_rss_mb']:.0f} |"
        )
    lines += ["", f"k = {K} (full), batch EM: {a.iters} iterations, blocks of {a.block_rows:,} "
              f"rows; writing the file took {results['write_seconds']:.0f} s."]  # fmt: skip
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
