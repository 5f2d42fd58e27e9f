"""CPU cost of the first fit in a fresh process: empty vs warm compilation cache.

Each measurement is a new Python process that imports gmmscape, fits
``GaussianMixture(3, random_state=0)`` on iris and scores it, and reports its own CPU
seconds (user + system, import included) and wall time. The processes run with
``GMMSCAPE_CACHE_DIR`` set to a fresh temporary directory: the first finds it empty, the
next ones warm; a last run with ``GMMSCAPE_COMPILATION_CACHE=0`` compiles everything.
scikit-learn's first fit in a fresh process is measured the same way.

Run: ``.venv/bin/python benchmarks/first_fit.py [--warm R]``. Results:
``benchmarks/results/first_fit.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from gmmscape._files import write_json

RESULTS = Path(__file__).resolve().parent / "results"
CHILD = """
import json, resource, time
t0 = time.perf_counter()
from sklearn.datasets import load_iris
X = load_iris().data
if {sk}:
    from sklearn.mixture import GaussianMixture
else:
    from gmmscape import GaussianMixture
GaussianMixture(3, random_state=0).fit(X).score(X)
r = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({{"cpu_s": r.ru_utime + r.ru_stime, "wall_s": time.perf_counter() - t0}}))
"""


def child(env_extra: dict, sklearn: bool = False) -> dict:
    env = {**os.environ, **env_extra}
    out = subprocess.run(
        [sys.executable, "-c", CHILD.format(sk=sklearn)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--warm", type=int, default=3, help="warm-cache runs")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {"GMMSCAPE_CACHE_DIR": tmp}
        res = {
            "load_average": os.getloadavg(),
            "empty_cache": child(env),
            "warm_cache": [child(env) for _ in range(args.warm)],
        }
    res["cache_off"] = child({"GMMSCAPE_COMPILATION_CACHE": "0"})
    res["sklearn"] = child({}, sklearn=True)
    write_json(res, RESULTS / "first_fit.json")
    warm = min(r["cpu_s"] for r in res["warm_cache"])
    print(
        f"first fit on iris, CPU-s (import included): empty cache "
        f"{res['empty_cache']['cpu_s']:.2f}, warm cache {warm:.2f} (best of {args.warm}), "
        f"cache off {res['cache_off']['cpu_s']:.2f}; scikit-learn {res['sklearn']['cpu_s']:.2f}"
    )


if __name__ == "__main__":
    main()
