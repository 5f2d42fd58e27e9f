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
import os
import time
from pathlib import Path

import jax
import numpy as np

from gmmscape.experiments.overparam import (
    dataset_moments,
    prediction_deviation,
    prediction_summary,
    rms_slope,
    sample_study,
    slope_comparison,
)

RESULTS = Path(__file__).resolve().parent / "results"
STAGES = RESULTS / "overparam_samples_stages"
# Larger sizes: seeds per size, each seed run (and saved) on its own.
LARGE = {10**6: 4, 10**7: 2}


def datasets(out: dict) -> list[dict]:
    """Every dataset run so far, one record each, with its leading-order prediction.

    Stages come from this run (``out["stages"]``, seeds drawn in order) and from the
    one-dataset stage files of ``--size N --regime R`` (first seed of a regime).
    """
    stages = [(m, "in order") for m in out["stages"]]
    stages += [(json.loads(p.read_text()), "regime") for p in sorted(STAGES.glob("*.json"))]
    recs = []
    for m, how in stages:
        seed0 = m["config"]["seed"]
        for j, n in enumerate(m["sizes"]):
            for s, err in enumerate(m["errors"][j]):
                seed = seed0 + 1000 * j + s
                mom = dataset_moments(int(n), seed)
                recs.append(
                    {
                        "n": int(n),
                        "seed": seed,
                        "how": how,
                        "error": err,
                        "predicted": mom["predicted"],
                        "regime": "split" if mom["split"] else "merge",
                        "lambda_minus_1": mom["lam"] - 1.0,
                        "final_change": m["final_change"][j][s],
                        "steps": m["steps"][j],
                        "stage_seconds": m["seconds"][j],
                    }
                )
    unique = {(r["n"], r["seed"]): r for r in recs}
    return sorted(unique.values(), key=lambda r: (r["n"], r["seed"]))


def stratified_slope(recs: list[dict], n_boot: int = 400, seed: int = 0) -> tuple[float, float]:
    """Slope of log stratified RMS error vs log N, with a bootstrap within each regime.

    The stratified RMS weighs the split and merge regimes 1/2 each (their probabilities),
    so a size with few datasets is not thrown off by how many happened to split.
    """
    sizes = sorted(
        n
        for n in {r["n"] for r in recs}
        if {r["regime"] for r in recs if r["n"] == n} == {"split", "merge"}
    )
    if len(sizes) < 2:
        return float("nan"), float("nan")
    groups = {
        (n, g): np.array([r["error"] for r in recs if r["n"] == n and r["regime"] == g])
        for n in sizes
        for g in ("split", "merge")
    }

    def slope(gs):
        y = [
            0.5
            * np.log(0.5 * np.mean(gs[(n, "split")] ** 2) + 0.5 * np.mean(gs[(n, "merge")] ** 2))
            for n in sizes
        ]
        return float(np.polyfit(np.log(sizes), y, 1)[0])

    rng = np.random.default_rng(seed)
    boots = [
        slope({key: e[rng.integers(0, len(e), len(e))] for key, e in groups.items()})
        for _ in range(n_boot)
    ]
    return slope(groups), float(np.std(boots))


def summarize(out: dict) -> None:
    """Fill ``out`` with the per-dataset records, the slope and the comparisons."""
    recs = datasets(out)
    out["datasets"] = recs
    in_order: dict[int, list[float]] = {}
    for r in recs:
        if r["how"] == "in order":
            in_order.setdefault(r["n"], []).append(r["error"])
    # the slope over sizes with at least 4 datasets drawn in seed order (an unbiased RMS)
    sizes = sorted(n for n, e in in_order.items() if len(e) >= 4)
    out["slope_sizes"] = sizes
    out["slope"], out["slope_se"] = rms_slope(sizes, [in_order[n] for n in sizes])
    for r in recs:  # |error - predicted| in units of N^(-1/4)
        r["deviation"] = float(
            prediction_deviation([[r["error"]]], [[r["predicted"]]], [r["n"]])[0]
        )
    dev = np.array([r["deviation"] for r in recs])
    out["deviation_median"] = float(np.median(dev))
    out["deviation_below_0.05"] = float(np.mean(dev <= 0.05))
    strat = {}
    for n in sorted({r["n"] for r in recs}):
        by = {g: [r["error"] for r in recs if r["n"] == n and r["regime"] == g]
              for g in ("split", "merge")}  # fmt: skip
        if by["split"] and by["merge"]:
            # each regime has probability 1/2 (lambda - 1 is symmetric to leading order)
            ms = 0.5 * np.mean(np.square(by["split"])) + 0.5 * np.mean(np.square(by["merge"]))
            strat[n] = {
                "rms": float(np.sqrt(ms)),
                "theory": float((np.pi * n) ** -0.25),
                "n_split": len(by["split"]),
                "n_merge": len(by["merge"]),
            }
    out["stratified_rms"] = strat
    out["stratified_slope"], out["stratified_slope_se"] = stratified_slope(recs)
    out["comparison"] = (
        slope_comparison(out["slope"], out["slope_se"])
        + f" (sizes {sizes[0]:.0e} to {sizes[-1]:.0e}, datasets in seed order.) "
        + prediction_summary(
            [[r["error"]] for r in recs], [[r["predicted"]] for r in recs], [r["n"] for r in recs]
        )
    )


def markdown(out: dict) -> str:
    """The results as Markdown: a row per size, then every dataset, then the comparison."""
    recs = out["datasets"]
    lines = [
        "| N | datasets | steps | RMS error | (pi N)^(-1/4) | median |err - pred| N^(1/4) "
        "| max final change | seconds (all datasets of the stage) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n in sorted({r["n"] for r in recs}):
        rs = [r for r in recs if r["n"] == n]
        e = np.array([r["error"] for r in rs])
        rel = np.median([r["deviation"] for r in rs])
        secs = sorted({r["stage_seconds"] for r in rs})
        lines.append(
            f"| {n:.0e} | {len(rs)} | {rs[0]['steps']} | {np.sqrt(np.mean(e**2)):.3e} "
            f"| {(np.pi * n) ** -0.25:.3e} | {rel:.1e} "
            f"| {max(r['final_change'] for r in rs):.1e} | {' + '.join(f'{x:.0f}' for x in secs)} |"
        )
    big = [r for r in recs if r["n"] >= 10**6]
    lines += [
        "",
        "Datasets at N >= 1e6 (`regime`: the first seed whose sample variance is above / "
        "below 1, chosen from the data before the run):",
        "",
        "| N | seed | drawn | regime | lambda - 1 | final error | predicted optimum "
        "| deviation / N^(-1/4) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in big:
        lines.append(
            f"| {r['n']:.0e} | {r['seed']} | {r['how']} | {r['regime']} "
            f"| {r['lambda_minus_1']:+.2e} | {r['error']:.4e} | {r['predicted']:.4e} "
            f"| {r['deviation']:.1e} |"
        )
    lines += [
        "",
        "RMS error stratified by regime (each regime has probability 1/2, so the RMS is "
        "sqrt((mean split err^2 + mean merge err^2) / 2)), against the leading-order "
        "(pi N)^(-1/4):",
        "",
        "| N | split / merge datasets | stratified RMS | (pi N)^(-1/4) | ratio |",
        "|---|---|---|---|---|",
    ]
    for n, v in out["stratified_rms"].items():
        lines.append(
            f"| {int(n):.0e} | {v['n_split']} / {v['n_merge']} | {v['rms']:.3e} "
            f"| {v['theory']:.3e} | {v['rms'] / v['theory']:.2f} |"
        )
    lines += [
        "",
        f"Slope of log stratified RMS vs log N over every size: {out['stratified_slope']:.3f} "
        f"+- {out['stratified_slope_se']:.3f} (bootstrap within regimes).",
        "",
        out["comparison"],
    ]
    return "\n".join(lines) + "\n"


def figure(out: dict, stem: str) -> None:
    """Error vs N: every dataset, its predicted optimum, the RMS and (pi N)^(-1/4)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gmmscape.experiments.output import save_figure

    recs = out["datasets"]
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    for regime, color in (("split", "C0"), ("merge", "C1")):
        rs = [r for r in recs if r["regime"] == regime]
        ax.loglog([r["n"] for r in rs], [r["error"] for r in rs], "o", color=color,
                  alpha=0.6, label=f"final error ({regime} datasets)")  # fmt: skip
    ax.loglog([r["n"] for r in recs], [r["predicted"] for r in recs], "x", color="k", ms=4,
              label="each dataset's predicted optimum")  # fmt: skip
    st = out["stratified_rms"]
    ns = np.array(sorted(int(n) for n in st), dtype=float)
    ax.loglog(ns, [st[str(int(n))]["rms"] for n in ns], "-",  # JSON keys are strings
              color="C2", label="RMS (stratified by regime)")  # fmt: skip
    ax.loglog(ns, (np.pi * ns) ** -0.25, ":", color="k", label="(pi N)^(-1/4)")
    ax.set_xlabel("sample size N")
    ax.set_ylabel("final max_i |mu_i|")
    ax.set_title(f"Sample gradient EM, n = 2, d = 1: slope {out['slope']:.3f} +- "
                 f"{out['slope_se']:.3f}")  # fmt: skip
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, RESULTS / stem)
    plt.close(fig)


def save(out: dict, stem: str) -> None:
    """Summarize every dataset so far and write the JSON, Markdown and figure atomically."""
    summarize(out)
    out["machine"]["loadavg_end"] = os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    for ext, text in (("json", json.dumps(out, indent=2, default=float)), ("md", markdown(out))):
        tmp = RESULTS / f".{stem}.{ext}.tmp"
        tmp.write_text(text)
        tmp.replace(RESULTS / f"{stem}.{ext}")
    figure(json.loads((RESULTS / f"{stem}.json").read_text()), stem)


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
    ap.add_argument(
        "--summarize", action="store_true", help="rebuild the summary from saved stages"
    )
    args = ap.parse_args()
    if args.summarize:
        stem = "overparam_samples"
        out = json.loads((RESULTS / f"{stem}.json").read_text())
        save(out, stem)
        print(out["comparison"])
        return
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
