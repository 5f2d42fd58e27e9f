"""Small data in fresh processes: gmmscape vs scikit-learn, empty / warm / no compilation cache.

Every measurement is a new Python process that runs one case and reports its own CPU
seconds (``resource.getrusage`` user + system, the import included) and wall time. Cases:

* ``import``: ``from gmmscape import GaussianMixture`` (``from sklearn.mixture import
  GaussianMixture`` for scikit-learn), nothing else;
* ``iris``: ``GaussianMixture(3, random_state=0).fit(X).score(X)`` on iris;
* ``bic``: ``[GaussianMixture(k, random_state=0).fit(X).bic(X) for k in range(1, 11)]`` on
  raw ``load_digits().data`` (1797 x 64);
* ``grid``: ``GridSearchCV(GaussianMixture(), {"n_components": [1, ..., 6],
  "covariance_type": ["full", "diag", "spherical", "tied"]}, cv=3).fit(X)`` on raw iris
  (72 fits and a refit);
* ``cv``: ``cross_val_score(GaussianMixture(5, random_state=0), X, cv=5)`` on raw digits.

For gmmscape each case runs with ``GMMSCAPE_CACHE_DIR`` set to a fresh temporary directory
(``empty``: the first process finds it empty), then ``--reps`` more times on the same
directory (``warm``), then once with ``GMMSCAPE_COMPILATION_CACHE=0`` (``off``: it
compiles everything, as the empty cache does); scikit-learn runs ``--reps`` times. Each
gmmscape child also counts the programs JAX traces
(``/jax/core/compile/jaxpr_trace_duration`` events: one per traced program), the backend
compiles (``backend_compile_duration``) and the loads from the persistent cache
(``/jax/compilation_cache/cache_hits``); XLA compiles = backend compiles - cache hits.

Two thread settings, in the same run and interleaved case by case:

* ``1thread``: the process pinned to one core (``os.sched_setaffinity``, as ``taskset -c``)
  and ``OMP_NUM_THREADS = OPENBLAS_NUM_THREADS = MKL_NUM_THREADS = 1``: the single-threaded
  CPU seconds. The pinning is what keeps XLA on one thread: its Eigen pool ignores those
  variables (and, in jax 0.10, ``--xla_cpu_multi_thread_eigen=false``) and otherwise
  spends about a third more CPU seconds than wall seconds on the digits fits;
  scikit-learn's KMeans would otherwise spin OpenMP threads;
* ``2thread``: those variables unset (both cores; the wall time is the figure).

The table gives medians (the empty cache is a single run by nature) and the ratio
gmmscape / scikit-learn of CPU seconds (1 thread) and of wall time (2 threads).
``os.getloadavg()`` is recorded with every child.

Run: ``.venv/bin/python benchmarks/small_data.py [--reps 3] [--cases iris,bic,...]
[--modes 1thread,2thread]``. Results: ``benchmarks/results/small_data.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
CASES = ("import", "iris", "bic", "grid", "cv")
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

CHILD = r"""
import json, os, resource, time
t0 = time.perf_counter()
lib, case = {lib!r}, {case!r}
counts = {{"traced": 0, "backend_compiles": 0, "cache_hits": 0}}
if lib == "gmmscape" and case != "import":  # the import case must not load JAX itself
    import jax.monitoring as mon

    def _dur(name, secs, **kw):
        if name == "/jax/core/compile/jaxpr_trace_duration":
            counts["traced"] += 1
        elif name == "/jax/core/compile/backend_compile_duration":
            counts["backend_compiles"] += 1

    def _ev(name, **kw):
        if name == "/jax/compilation_cache/cache_hits":
            counts["cache_hits"] += 1

    mon.register_event_duration_secs_listener(_dur)
    mon.register_event_listener(_ev)
if lib == "gmmscape":
    from gmmscape import GaussianMixture
else:
    from sklearn.mixture import GaussianMixture
out = None
if case != "import":
    import warnings

    warnings.simplefilter("ignore")
    from sklearn.datasets import load_digits, load_iris

    if case == "iris":
        X = load_iris().data
        out = float(GaussianMixture(3, random_state=0).fit(X).score(X))
    elif case == "bic":
        X = load_digits().data
        out = [float(GaussianMixture(k, random_state=0).fit(X).bic(X)) for k in range(1, 11)]
    elif case == "grid":
        from sklearn.model_selection import GridSearchCV

        X = load_iris().data
        grid = {{
            "n_components": [1, 2, 3, 4, 5, 6],
            "covariance_type": ["full", "diag", "spherical", "tied"],
        }}
        gs = GridSearchCV(GaussianMixture(), grid, cv=3).fit(X)
        out = [gs.best_params_, float(gs.best_score_)]
    elif case == "cv":
        from sklearn.model_selection import cross_val_score

        X = load_digits().data
        out = [float(s) for s in cross_val_score(GaussianMixture(5, random_state=0), X, cv=5)]
r = resource.getrusage(resource.RUSAGE_SELF)
counts["xla_compiles"] = counts["backend_compiles"] - counts["cache_hits"]
print(json.dumps({{"cpu_s": r.ru_utime + r.ru_stime, "wall_s": time.perf_counter() - t0,
                   "result": out, **(counts if lib == "gmmscape" else {{}})}}))
"""


def child(lib: str, case: str, mode: str, env_extra: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    env.pop("GMMSCAPE_COMPILATION_CACHE", None)
    env.pop("GMMSCAPE_CACHE_DIR", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # bytecode cache on, as an installed package
    if mode == "1thread":
        env.update(dict.fromkeys(THREAD_VARS, "1"))
    env.update(env_extra)
    load = os.getloadavg()
    one_core = {min(os.sched_getaffinity(0))}
    out = subprocess.run(
        [sys.executable, "-c", CHILD.format(lib=lib, case=case)],
        env=env,
        preexec_fn=(lambda: os.sched_setaffinity(0, one_core)) if mode == "1thread" else None,
        capture_output=True,
        text=True,
    )
    if out.returncode:
        return {"error": out.stderr.strip().splitlines()[-1:], "loadavg": list(load)}
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["loadavg"] = list(load)
    return res


def run_case(case: str, mode: str, reps: int) -> dict:
    res: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        env = {"GMMSCAPE_CACHE_DIR": tmp}
        res["gmmscape_empty"] = [child("gmmscape", case, mode, env)]
        res["gmmscape_warm"] = [child("gmmscape", case, mode, env) for _ in range(reps)]
    off = {"GMMSCAPE_COMPILATION_CACHE": "0"}
    res["gmmscape_off"] = [child("gmmscape", case, mode, off)]
    res["sklearn"] = [child("sklearn", case, mode, {}) for _ in range(reps)]
    return res


def med(runs: list, key: str) -> float:
    vals = [r[key] for r in runs if key in r]
    return statistics.median(vals) if vals else float("nan")


def summary(results: dict) -> list[dict]:
    rows = []
    for case, by_mode in results.items():
        for mode, r in by_mode.items():
            key = "cpu_s" if mode == "1thread" else "wall_s"
            sk = med(r["sklearn"], key)
            row = {"case": case, "mode": mode, "figure": key, "sklearn": sk}
            for v in ("empty", "warm", "off"):
                g = med(r[f"gmmscape_{v}"], key)
                row[v] = g
                row[f"{v}_ratio"] = g / sk
                row[f"{v}_traced"] = med(r[f"gmmscape_{v}"], "traced")
                row[f"{v}_compiled"] = med(r[f"gmmscape_{v}"], "xla_compiles")
            loads = [x["loadavg"][0] for runs in r.values() for x in runs]
            row["load"] = [min(loads), max(loads)]
            rows.append(row)
    return rows


def to_markdown(meta: dict, rows: list[dict]) -> str:
    lines = [
        "# Small data in fresh processes: gmmscape vs scikit-learn",
        "",
        f"Machine: {meta['machine']}. Medians of {meta['reps']} runs (the empty cache: one "
        "run, and so is the cache off). 1thread: CPU seconds (user + sys, import included) "
        "on one core (affinity) with OMP/OPENBLAS/MKL_NUM_THREADS=1; 2thread: wall seconds "
        "with those unset. Ratio = gmmscape / scikit-learn. Programs: traced / compiled by "
        "XLA (not loaded from the persistent cache) per gmmscape process.",
        "",
        "| case | threads | figure | scikit-learn | gmmscape empty cache | warm cache | "
        "cache off | ratio empty | ratio warm | ratio off | programs empty | programs warm "
        "| load (1 min) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['mode']} | {r['figure']} | {r['sklearn']:.2f} | "
            f"{r['empty']:.2f} | {r['warm']:.2f} | {r['off']:.2f} | {r['empty_ratio']:.1f}x | "
            f"**{r['warm_ratio']:.1f}x** | {r['off_ratio']:.1f}x | "
            f"{r['empty_traced']:.0f} / {r['empty_compiled']:.0f} | "
            f"{r['warm_traced']:.0f} / {r['warm_compiled']:.0f} | "
            f"{r['load'][0]:.1f}-{r['load'][1]:.1f} |"
        )
    lines += ["", f"Total run time {meta['seconds']:.0f} s."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3, help="runs per warm / off / sklearn figure")
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated subset")
    ap.add_argument("--modes", default="1thread,2thread", help="1thread, 2thread or both")
    ap.add_argument("--name", default="small_data", help="results file stem")
    args = ap.parse_args()
    import jax
    import sklearn

    t0 = time.perf_counter()
    meta = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "jax": jax.__version__,
            "sklearn": sklearn.__version__,
        },
        "reps": args.reps,
        "seconds": 0.0,
    }
    results: dict = {}
    for case in args.cases.split(","):
        for mode in args.modes.split(","):
            results.setdefault(case, {})[mode] = run_case(case, mode, args.reps)
            meta["seconds"] = time.perf_counter() - t0
            rows = summary(results)
            RESULTS.mkdir(exist_ok=True)
            data = {"meta": meta, "summary": rows, "runs": results}
            (RESULTS / f"{args.name}.json").write_text(json.dumps(data, indent=2) + "\n")
            (RESULTS / f"{args.name}.md").write_text(to_markdown(meta, rows))
            r = rows[-1]
            print(
                f"{case:6s} {mode}: {r['figure']} sklearn {r['sklearn']:.2f}, gmmscape empty "
                f"{r['empty']:.2f} ({r['empty_ratio']:.1f}x), warm {r['warm']:.2f} "
                f"({r['warm_ratio']:.1f}x), off {r['off']:.2f} ({r['off_ratio']:.1f}x); "
                f"programs traced/compiled empty {r['empty_traced']:.0f}/"
                f"{r['empty_compiled']:.0f}, warm {r['warm_traced']:.0f}/"
                f"{r['warm_compiled']:.0f}; load {r['load'][0]:.1f}-{r['load'][1]:.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
