"""Peak memory of ``GaussianMixture.fit`` against N and the chunk size.

Each configuration runs in a fresh subprocess (so peaks do not mix): draw N points in d
dimensions, fit k full-covariance components for 3 EM iterations (tol = 0) with a given
``chunk_size`` once to compile every shape, reset the kernel's peak-RSS counter
(``/proc/self/clear_refs``, Linux), fit again and report the peak resident memory during
that fit (``VmHWM``) minus the resident memory just before it. The largest per-chunk
intermediate is ``rows x k x d`` floats. What a fit must hold beyond it is one centered,
chunked working copy of the data (``data`` in the table); ``init_params="kmeans"`` (the
default) also runs scikit-learn's KMeans, which makes its own centered copy of X.

    .venv/bin/python benchmarks/estimator_memory.py [--quick]

Writes benchmarks/results/estimator_memory.{json,md} (``_quick`` in quick mode).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import sys, time
import numpy as np
import gmmscape
from gmmscape import GaussianMixture
n, d, k, chunk = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
init = sys.argv[5]
rng = np.random.default_rng(0)
X = rng.standard_normal((n, d)) + rng.integers(0, k, n)[:, None] * 3.0
means = X[rng.choice(n, k, replace=False)]
kw = dict(chunk_size=chunk) if chunk > 0 else {}
kw["init_params"] = init


def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024  # KiB -> MiB


GaussianMixture(k, max_iter=3, tol=0, means_init=means, **kw).fit(X)  # compile every shape
open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current RSS
before = status("VmRSS")
t0 = time.perf_counter()
gm = GaussianMixture(k, max_iter=3, tol=0, means_init=means, **kw).fit(X)
sec = time.perf_counter() - t0
print(before, status("VmHWM"), sec, gm.lower_bound_)
"""


def measure(n: int, d: int, k: int, chunk: int, init: str = "kmeans") -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(n), str(d), str(k), str(chunk), init],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    before, after = float(out[0]), float(out[1])
    return {
        "n": n,
        "d": d,
        "k": k,
        "chunk_size": chunk or None,
        "init_params": init,
        "data_mib": round(n * d * 8 / 2**20, 1),
        "rss_before_fit_mib": round(before, 1),
        "peak_mib": round(after, 1),
        "fit_extra_mib": round(after - before, 1),
        "extra_over_data": round((after - before) / (n * d * 8 / 2**20), 2),
        "fit_seconds": float(out[2]),
        "lower_bound": float(out[3]),
        "intermediate_mib": round((chunk or n) * k * d * 8 / 2**20, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    d, k = 16, 16
    sizes = (200_000,) if args.quick else (500_000, 2_000_000)
    chunks = (1024, 16_384) if args.quick else (1024, 16_384, 131_072)
    rows = [measure(n, d, k, c) for n in sizes for c in chunks]
    rows += [measure(n, d, k, chunks[1], "random_from_data") for n in sizes]
    suffix = "_quick" if args.quick else ""
    res_dir = Path(__file__).parent / "results"
    payload = {"rows": rows, "loadavg": os.getloadavg(), "cpus": os.cpu_count()}
    (res_dir / f"estimator_memory{suffix}.json").write_text(json.dumps(payload, indent=2))
    lines = [
        "# GaussianMixture.fit: extra peak memory against chunk_size (full, d = k = 16)",
        "",
        "| N | init | chunk_size | data (MiB) | rows x k x d intermediate (MiB) "
        "| extra peak during fit (MiB) | extra / data | RSS before fit (MiB) | fit s (3 iter) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n']:,} | {r['init_params']} | {r['chunk_size']} | {r['data_mib']} | "
            f"{r['intermediate_mib']} | {r['fit_extra_mib']} | {r['extra_over_data']} | "
            f"{r['rss_before_fit_mib']} | {r['fit_seconds']:.2f} |"
        )
    lines.append(f"\nLoad average while measuring: {payload['loadavg']}.")
    (res_dir / f"estimator_memory{suffix}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
