"""Seed A with finite samples: final error of sample gradient EM vs N, against N^(-1/4).

Runs :func:`gmmscape.experiments.overparam.sample_study` (n = 2 balanced components,
d = 1, eta = 2, a fixed dataset of N points per seed from the stream source, drawn once
and held in memory, ``16 sqrt(N) / eta`` steps) and records the errors, the fitted slope
of log RMS error vs log N with its bootstrap standard error, and the wall time per size.

The cost of one size is ``seeds * N * 8 sqrt(N)`` point evaluations, growing like
``N^1.5``; at about 1e8 point evaluations per second on the 2-core CPU machine, N = 10^6
costs about 80 s per seed and N = 10^7 about 42 min per seed. The default run covers
N = 10^3 .. 3 10^5 with 12 seeds (about 5 min); ``--max-n 1e6`` adds N = 10^6 with 4
seeds, ``--max-n 1e7`` also N = 10^7 with 2 seeds, run one seed at a time. The JSON is
rewritten after every stage (slope refitted over all sizes so far), so a stopped run keeps
what it finished.

Run ``.venv/bin/python benchmarks/overparam_samples.py [--max-n 1e7]`` (``--quick``:
N <= 10^4); results go to ``benchmarks/results/overparam_samples{,_quick}.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import jax

from gmmscape.experiments.overparam import (
    dataset_moments,
    rms_slope,
    sample_study,
    slope_comparison,
)

RESULTS = Path(__file__).resolve().parent / "results"
STAGES = RESULTS / "overparam_samples_stages"
# Larger sizes: seeds per size, each seed run (and saved) on its own.
LARGE = {10**6: 4, 10**7: 2}


def markdown(out: dict) -> str:
    """The results as a Markdown table (one row per size and run) and the fitted slope."""
    lines = [
        "| N | seeds | steps | RMS error | min | max | max final change | seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m in out["stages"]:
        for n, st, e, ch, sec in zip(
            m["sizes"], m["steps"], m["errors"], m["final_change"], m["seconds"], strict=True
        ):
            rms = math.sqrt(sum(x * x for x in e) / len(e))
            lines.append(
                f"| {n} | {len(e)} | {st} | {rms:.3e} | {min(e):.1e} | {max(e):.1e} "
                f"| {max(ch):.1e} | {sec:.0f} |"
            )
    lines += ["", out["comparison"]]
    return "\n".join(lines) + "\n"


def save(out: dict, stem: str) -> None:
    """Refit the slope over every size so far and write the JSON and Markdown atomically."""
    per_size: dict[int, list[float]] = {}
    for m in out["stages"]:
        for n, e in zip(m["sizes"], m["errors"], strict=True):
            per_size.setdefault(int(n), []).extend(e)
    sizes = sorted(per_size)
    out["sizes"] = sizes
    out["seeds_per_size"] = [len(per_size[n]) for n in sizes]
    out["slope"], out["slope_se"] = rms_slope(sizes, [per_size[n] for n in sizes])
    out["comparison"] = slope_comparison(out["slope"], out["slope_se"])
    out["machine"]["loadavg_end"] = os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    for ext, text in (("json", json.dumps(out, indent=2, default=float)), ("md", markdown(out))):
        tmp = RESULTS / f".{stem}.{ext}.tmp"
        tmp.write_text(text)
        tmp.replace(RESULTS / f"{stem}.{ext}")


def first_seed(n: int, j: int, regime: str) -> int:
    """The first data seed ``10^6 + 1000 j + s`` (s = 0, 1, ...) whose dataset is in ``regime``.

    The regime (``split``: top sample variance above 1, ``merge``: below) is a property
    of the data alone, read before any run.
    """
    seed = 10**6 + 1000 * j
    while dataset_moments(n, seed)["split"] != (regime == "split"):
        seed += 1
    return seed


def one_dataset(n: int, regime: str) -> None:
    """Run the first dataset of ``regime`` at size ``n`` and save it as its own stage file."""
    j = list(LARGE).index(n)
    seed = first_seed(n, j, regime)
    r = sample_study((n,), seeds=1, seed=seed)
    stage = {**r.__dict__, "regime": regime, "data_seed": seed, "loadavg": os.getloadavg()}
    STAGES.mkdir(parents=True, exist_ok=True)
    path = STAGES / f"N{n:.0e}_{regime}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(stage, indent=2, default=float))
    tmp.replace(path)
    print(f"N={n:.0e} {regime} seed {seed}: error {r.errors[0][0]:.4e}, predicted "
          f"{r.predicted[0][0]:.4e}, {r.seconds[0]:.0f} s; wrote {path.name}")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--max-n", type=float, default=3e5)
    ap.add_argument("--seeds", type=int, default=12)
    ap.add_argument("--size", type=float, help="run one dataset of this size (with --regime)")
    ap.add_argument("--regime", choices=("split", "merge"))
    args = ap.parse_args()
    if args.size:
        if args.regime is None or int(args.size) not in LARGE:
            ap.error(f"--size takes one of {list(LARGE)} and needs --regime")
        one_dataset(int(args.size), args.regime)
        return
    sizes = [10**3, 10**4] if args.quick else [10**3, 3000, 10**4, 30_000, 10**5, 300_000]
    stem = "overparam_samples" + ("_quick" if args.quick else "")
    t0 = time.perf_counter()
    out = {
        "stages": [],
        "machine": {
            "device": str(jax.devices()[0]),
            "cpu_count": os.cpu_count(),
            "loadavg_start": os.getloadavg(),
        },
    }
    main_sizes = tuple(n for n in sizes if n <= args.max_n)
    res = sample_study(main_sizes, seeds=4 if args.quick else args.seeds)
    out["stages"].append(res.__dict__)
    save(out, stem)
    print(res.comparison, flush=True)
    for j, (big, n_seeds) in enumerate(LARGE.items()):
        if args.quick or args.max_n < big:
            continue
        for s in range(n_seeds):
            # Data seeds 10^6 + 1000 j + s: disjoint from the main study's.
            r = sample_study((big,), seeds=1, seed=10**6 + 1000 * j + s)
            out["stages"].append(r.__dict__)
            out["seconds"] = time.perf_counter() - t0
            save(out, stem)
            print(f"N={big:.0e} seed {s}: error {r.errors[0][0]:.3e} in {r.seconds[0]:.0f} s")
            print(out["comparison"], flush=True)
    out["seconds"] = time.perf_counter() - t0
    save(out, stem)
    print(f"wrote {RESULTS / stem}.json in {out['seconds']:.0f} s")


if __name__ == "__main__":
    main()
