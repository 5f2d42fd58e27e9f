"""Model selection speed: ``gmmscape.select`` vs R's ``mclustBIC`` vs a scikit-learn loop.

Issue 16, item 5. Three datasets, each the full grid mclust fits by default:

* ``faithful`` (R's datasets, 272 x 2): 14 models x G = 1..9;
* ``wreath`` (mclust, 1000 x 2): 14 models x G = 1..16;
* ``synthetic`` (N = 1e5, d = 5, drawn here with seed 0 from a 4-component mixture with
  random full covariances): 14 models x G = 1..9; mclust and gmmscape both build their
  hierarchical-clustering start on a subsample of 2000 rows and run EM on all rows.

Peers, in the same run, each in its own fresh process:

* ``gmmscape``: ``gmmscape.select(X, G)`` with its defaults (hc start, mclust's stopping
  rule, no regularization, the fits on threads side by side: ``n_jobs`` = usable cores),
  timed inside the process, imports excluded (``jax`` imported and
  ``gmmscape.GaussianMixture`` touched first, as ``library(mclust)`` is outside R's
  clock): ``cold`` with an empty
  compilation cache (``GMMSCAPE_CACHE_DIR`` a fresh folder: every program compiles),
  ``warm`` (a second process on that folder: programs load from the persistent cache)
  and ``again`` (the same call a second time in the warm process: what a session that
  selects more than once pays);
* ``mclust``: ``system.time(mclustBIC(x, G = G))`` in ``Rscript`` (mclust 6.0, its defaults:
  tol 1e-5 relative), when ``Rscript`` and mclust are installed;
* ``sklearn``: ``GaussianMixture(k, covariance_type=t).fit(X).bic(X)`` for its four types
  (spherical, diag, tied, full = VII, VVI, EEE, VVV) and the same G, scikit-learn's
  defaults (k-means start, tol 1e-3); four of the fourteen models, so not the same work.

The children run with Python's bytecode cache on (``PYTHONDONTWRITEBYTECODE`` removed
from their environment), as an installed package runs; with it set, each fresh process
recompiles the gmmscape modules that ``select`` imports (about 0.3 s on faithful).

The table gives the wall seconds and the ratio mclust / gmmscape; the machine's load
average is recorded. The selected (model, G) of gmmscape and mclust are recorded too.

The warm process and mclust each run ``--repeat`` times (default 3, in turn); the table
gives the medians (the single runs are in the JSON). The cold process runs once.

Run: ``.venv/bin/python benchmarks/mclust_speed.py [--datasets faithful,wreath,synthetic]
[--n 100000] [--repeat 3]``. Results: ``benchmarks/results/mclust_speed.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
FIXTURES = HERE.parent / "tests" / "fixtures" / "mclust"
GRIDS = {"faithful": 9, "wreath": 16, "synthetic": 9}

GMMSCAPE_CHILD = r"""
import json, sys, time
import numpy as np
X = np.load(sys.argv[1]); G = int(sys.argv[2])
import gmmscape
import jax  # the engine, imported by the first fit: like library(mclust), not timed
gmmscape.GaussianMixture  # the estimator's imports (scikit-learn, SciPy), not timed
t = time.perf_counter()
res = gmmscape.select(X, range(1, G + 1))
sec = time.perf_counter() - t
t = time.perf_counter()
gmmscape.select(X, range(1, G + 1))
again = time.perf_counter() - t
slow = {m: round(float(res.seconds[i].sum()), 3) for i, m in enumerate(res.models)}
print(json.dumps({"seconds": sec, "again": again, "best": [res.best_model, res.best_k],
                  "n_na": int(np.isnan(res.bic).sum()), "per_model": slow,
                  "top3": [list(t[:2]) + [t[2]] for t in res.top(3)]}))
"""

SKLEARN_CHILD = r"""
import json, sys, time, warnings
import numpy as np
from sklearn.mixture import GaussianMixture
X = np.load(sys.argv[1]); G = int(sys.argv[2])
warnings.simplefilter("ignore")
t = time.perf_counter()
best = None
for cov in ("spherical", "diag", "tied", "full"):
    for k in range(1, G + 1):
        b = GaussianMixture(k, covariance_type=cov, random_state=0).fit(X).bic(X)
        if best is None or b < best[0]:
            best = (b, cov, k)
print(json.dumps({"seconds": time.perf_counter() - t, "best": [best[1], best[2]]}))
"""

R_CHILD = r"""
suppressMessages(library(mclust))
args <- commandArgs(trailingOnly = TRUE)
x <- as.matrix(read.csv(args[1], header = FALSE))
G <- as.integer(args[2])
set.seed(0)
t <- system.time(bic <- mclustBIC(x, G = 1:G, verbose = FALSE))[["elapsed"]]
top <- pickBIC(bic, 3)
cat(sprintf('{"seconds": %.6f, "best": "%s", "n_na": %d}\n', t, names(top)[1],
            sum(is.na(bic))))
"""


def load(name: str, n: int) -> np.ndarray:
    """The dataset ``name`` (the fixtures hold faithful and wreath)."""
    if name in ("faithful", "wreath"):
        return np.asarray(json.loads((FIXTURES / f"{name}_select.json").read_text())["X"])
    rng = np.random.default_rng(0)
    k, d = 4, 5
    means = rng.normal(0.0, 4.0, (k, d))
    a = rng.normal(size=(k, d, d))
    covs = a @ a.transpose(0, 2, 1) / d + 0.3 * np.eye(d)
    z = rng.choice(k, n, p=[0.4, 0.3, 0.2, 0.1])
    chol = np.linalg.cholesky(covs)
    return means[z] + np.einsum("nij,nj->ni", chol[z], rng.standard_normal((n, d)))


def run(cmd, env=None, timeout=3600) -> dict:
    # Python's bytecode cache on, as for an installed package (a PYTHONDONTWRITEBYTECODE
    # set around the benchmark made every child recompile the modules it imports)
    env = {k: v for k, v in (os.environ if env is None else env).items()
           if k != "PYTHONDONTWRITEBYTECODE"}  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="faithful,wreath,synthetic")
    ap.add_argument("--n", type=int, default=100_000, help="rows of the synthetic set")
    ap.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="warm gmmscape processes and mclust runs per dataset (median)",
    )
    ap.add_argument("--out", default=str(RESULTS / "mclust_speed"))
    args = ap.parse_args()
    have_r = shutil.which("Rscript") is not None
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "g.py").write_text(GMMSCAPE_CHILD)
        (tmp / "s.py").write_text(SKLEARN_CHILD)
        (tmp / "m.R").write_text(R_CHILD)
        for name in args.datasets.split(","):
            X = load(name, args.n)
            G = GRIDS[name]
            npy, csv = tmp / f"{name}.npy", tmp / f"{name}.csv"
            np.save(npy, X)
            np.savetxt(csv, X, delimiter=",", fmt="%.17g")
            row = {"dataset": name, "n": int(X.shape[0]), "d": int(X.shape[1]), "G": G,
                   "load_before": os.getloadavg()[0]}  # fmt: skip
            env = {**os.environ, "GMMSCAPE_CACHE_DIR": str(tmp / f"cache-{name}")}
            py = sys.executable
            for mode in ("cold", "warm"):
                runs = [run([py, str(tmp / "g.py"), str(npy), str(G)], env=env)
                        for _ in range(1 if mode == "cold" else args.repeat)]  # fmt: skip
                r = runs[0]
                row[f"gmmscape_{mode}_runs"] = [q["seconds"] for q in runs]
                row[f"gmmscape_{mode}_again_runs"] = [q["again"] for q in runs]
                row[f"gmmscape_{mode}"] = float(np.median(row[f"gmmscape_{mode}_runs"]))
                row[f"gmmscape_{mode}_again"] = float(np.median(row[f"gmmscape_{mode}_again_runs"]))
                row["gmmscape_best"] = f"{r['best'][0]},{r['best'][1]}"
                row["gmmscape_na"] = r["n_na"]
                row[f"gmmscape_{mode}_per_model"] = r["per_model"]
                print(name, mode, row[f"gmmscape_{mode}_runs"], r["best"], flush=True)
            one = {**os.environ, "OMP_NUM_THREADS": "1"}
            r = run([py, str(tmp / "s.py"), str(npy), str(G)], env=one)
            row["sklearn"], row["sklearn_best"] = r["seconds"], f"{r['best'][0]},{r['best'][1]}"
            print(name, "sklearn", f"{r['seconds']:.1f} s", flush=True)
            if have_r:
                runs = [run(["Rscript", str(tmp / "m.R"), str(csv), str(G)])
                        for _ in range(args.repeat)]  # fmt: skip
                r = runs[0]
                row["mclust_runs"] = [q["seconds"] for q in runs]
                row["mclust"] = float(np.median(row["mclust_runs"]))
                row["mclust_best"], row["mclust_na"] = r["best"], r["n_na"]
                row["mclust_over_gmmscape_warm"] = row["mclust"] / row["gmmscape_warm"]
                row["mclust_over_gmmscape_cold"] = row["mclust"] / row["gmmscape_cold"]
                row["mclust_over_gmmscape_again"] = row["mclust"] / row["gmmscape_warm_again"]
                print(name, "mclust", row["mclust_runs"], r["best"], flush=True)
            row["load_after"] = os.getloadavg()[0]
            rows.append(row)
    meta = {"python": sys.version.split()[0], "platform": platform.platform(),
            "cpus": os.cpu_count(), "rscript": have_r}  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = [
        "| dataset | n x d | grid | gmmscape cold (s) | gmmscape warm (s) | gmmscape again "
        "(s) | mclust (s) | mclust / gmmscape warm | mclust / gmmscape again | sklearn 4 "
        "types (s) | best: gmmscape / mclust / sklearn | load |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    nan = float("nan")
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['n']} x {r['d']} | 14 x {r['G']} | {r['gmmscape_cold']:.1f} "
            f"| {r['gmmscape_warm']:.2f} | {r['gmmscape_warm_again']:.2f} | "
            f"{r.get('mclust', nan):.2f} | {r.get('mclust_over_gmmscape_warm', nan):.2f} | "
            f"{r.get('mclust_over_gmmscape_again', nan):.2f} | {r['sklearn']:.1f} | "
            f"{r['gmmscape_best']} / {r.get('mclust_best', '-')} / {r['sklearn_best']} | "
            f"{r['load_before']:.1f}-{r['load_after']:.1f} |"
        )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
