"""Seed A with finite samples: final error of sample gradient EM vs N, against N^(-1/4).

Runs :func:`gmmscape.experiments.overparam.sample_study` (n = 2 balanced components,
d = 1, eta = 2, a fixed dataset of N points per seed drawn by the stream source and
redrawn chunk by chunk each step, ``16 sqrt(N) / eta`` steps) and records the errors, the
fitted slope with its bootstrap standard error and the wall time per size.

The cost of one size is ``seeds * N * 8 sqrt(N)`` point evaluations, growing like
``N^1.5``; at about 4e7 point evaluations per second on the 2-core CPU machine, N = 10^6
costs about 3.5 min per seed and N = 10^7 about 1.8 hours per seed. The default run
covers N = 10^3 .. 3 10^5 with 12 seeds (about 8 min); ``--max-n 1e6`` (or ``1e7``) adds
those sizes with 2 seeds each.

Run ``.venv/bin/python benchmarks/overparam_samples.py`` (``--quick``: N <= 10^4);
results go to ``benchmarks/results/overparam_samples{,_quick}.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import jax

from gmmscape.experiments.overparam import sample_study

RESULTS = Path(__file__).resolve().parent / "results"


def markdown(out: dict) -> str:
    """The results as a Markdown table (one row per size) and the fitted slope."""
    lines = ["| N | steps | RMS error | min | max | seconds |", "|---|---|---|---|---|---|"]
    for key in [k for k in out if k == "main" or k.startswith("n_")]:
        m = out[key]
        for n, st, e, sec in zip(m["sizes"], m["steps"], m["errors"], m["seconds"], strict=True):
            rms = math.sqrt(sum(x * x for x in e) / len(e))
            lines.append(f"| {n} | {st} | {rms:.3e} | {min(e):.1e} | {max(e):.1e} | {sec:.0f} |")
    m = out["main"]
    lines += ["", m["comparison"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--max-n", type=float, default=3e5)
    ap.add_argument("--seeds", type=int, default=12)
    args = ap.parse_args()
    sizes = [10**3, 10**4] if args.quick else [10**3, 3000, 10**4, 30_000, 10**5, 300_000]
    t0 = time.perf_counter()
    load0 = os.getloadavg()
    res = sample_study(
        tuple(n for n in sizes if n <= args.max_n), seeds=4 if args.quick else args.seeds
    )
    out = {"main": res.__dict__}
    for big in (10**6, 10**7):
        if args.max_n >= big:
            out[f"n_{big:.0e}"] = sample_study((big,), seeds=2).__dict__
    out["machine"] = {
        "device": str(jax.devices()[0]),
        "cpu_count": os.cpu_count(),
        "loadavg_start": load0,
        "loadavg_end": os.getloadavg(),
    }
    out["seconds"] = time.perf_counter() - t0
    RESULTS.mkdir(exist_ok=True)
    stem = "overparam_samples" + ("_quick" if args.quick else "")
    (RESULTS / f"{stem}.json").write_text(json.dumps(out, indent=2, default=float))
    (RESULTS / f"{stem}.md").write_text(
        markdown(json.loads((RESULTS / f"{stem}.json").read_text()))
    )
    print(res.comparison)
    print(f"wrote {RESULTS / stem}.json in {out['seconds']:.0f} s")


if __name__ == "__main__":
    main()
