"""gmmscape.GaussianMixture against scikit-learn on raw real data, as users have it.

Three measurements, each against scikit-learn in the same run:

1. **Score table.** The datasets scikit-learn ships, unscaled (breast cancer k = 2, wine
   k = 3, digits k = 10 with its three constant columns, iris k = 3), for the four
   covariance types. *Same init*: scikit-learn's initial weights, means and precisions
   (its ``max_iter=0`` fit with ``random_state=0``) given to both estimators as
   ``weights_init``, ``means_init``, ``precisions_init``. *Default init*: both with
   ``init_params="kmeans"`` and the same ``random_state`` (seeds 0..S-1). The figure is
   the relative difference of the final ``score(X)``, ``(gmmscape - sklearn) / |sklearn|``
   (positive: gmmscape's fit is better), and the number of seeds where gmmscape is worse
   by more than 1e-6 relative.
2. **Cross-validation and grid search** on raw digits: ``cross_val_score`` (5 folds) of
   ``GaussianMixture(10, covariance_type=c, random_state=0)`` for every ``c``, fold by
   fold, and ``GridSearchCV`` over ``n_components`` x ``covariance_type``.
3. **Offset invariance.** Two well-separated blobs in d = 2, plus an offset (float64:
   1e3, 1e6, 1e9, 1.7e9; float32: 1e2, 1e3, 1e4), fitted by every path (the compiled
   loop, small chunks, host threads, Dask) from the same shifted start; the score and the
   labels are compared with those of the same points centred in float64 (``Z - offset``)
   fitted the same way.

Run: ``.venv/bin/python benchmarks/estimator_realdata.py`` (about 10 minutes on 2 cores)
or ``--quick`` (breast cancer and iris, 2 seeds, about 2 minutes). Results:
``benchmarks/results/estimator_realdata.{json,md}`` (``*_quick.*`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import platform
import time
import warnings
from importlib import metadata
from pathlib import Path

import numpy as np
from sklearn import datasets
from sklearn.mixture import GaussianMixture as SKGaussianMixture
from sklearn.model_selection import GridSearchCV, cross_val_score

from gmmscape import GaussianMixture
from gmmscape._files import write_bytes, write_json

RESULTS = Path(__file__).resolve().parent / "results"
COV_TYPES = ("full", "tied", "diag", "spherical")
DATASETS = {
    "breast_cancer": (datasets.load_breast_cancer, 2),
    "wine": (datasets.load_wine, 3),
    "digits": (datasets.load_digits, 10),
    "iris": (datasets.load_iris, 3),
}


def rel(a: float, b: float) -> float:
    """``(a - b) / |b|``."""
    return float((a - b) / abs(b))


def sklearn_init(X, k, cov_type, seed):
    """scikit-learn's initial parameters: its fit with ``max_iter=0``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk = SKGaussianMixture(k, covariance_type=cov_type, max_iter=0, random_state=seed)
        sk.fit(X)
    return {
        "weights_init": sk.weights_,
        "means_init": sk.means_,
        "precisions_init": sk.precisions_,
    }


def score_pair(X, k, cov_type, seed, init=None):
    """Final ``score(X)`` of scikit-learn and gmmscape from one start (``init`` or kmeans)."""
    kw = {"covariance_type": cov_type, "random_state": seed, **(init or {})}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk = SKGaussianMixture(k, **kw).fit(X)
        gm = GaussianMixture(k, **kw).fit(X)
    return sk.score(X), gm.score(X)


def score_table(names, seeds):
    rows = []
    for name in names:
        loader, k = DATASETS[name]
        X = loader().data
        for ct in COV_TYPES:
            s_sk, s_gm = score_pair(X, k, ct, 0, sklearn_init(X, k, ct, 0))
            diffs = []
            for seed in seeds:
                a, b = score_pair(X, k, ct, seed)
                diffs.append(rel(b, a))
            row = {
                "dataset": name,
                "covariance_type": ct,
                "same_init_sklearn": s_sk,
                "same_init_gmmscape": s_gm,
                "same_init_rel_diff": rel(s_gm, s_sk),
                "default_init_rel_diffs": diffs,
                "default_init_max_abs_rel_diff": float(np.max(np.abs(diffs))),
                "default_init_gmmscape_worse": int(np.sum(np.asarray(diffs) < -1e-6)),
            }
            rows.append(row)
            print(
                f"{name:14s} {ct:9s} same init {row['same_init_rel_diff']:+.2e}  default "
                f"init max |diff| {row['default_init_max_abs_rel_diff']:.2e}, worse in "
                f"{row['default_init_gmmscape_worse']}/{len(seeds)}",
                flush=True,
            )
    return rows


def cv_and_grid(quick: bool):
    X = datasets.load_digits().data
    out = {"cross_val_score": [], "grid": {}}
    for ct in COV_TYPES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a = cross_val_score(SKGaussianMixture(10, covariance_type=ct, random_state=0), X, cv=5)
            b = cross_val_score(GaussianMixture(10, covariance_type=ct, random_state=0), X, cv=5)
        d = [rel(y, x) for x, y in zip(a, b, strict=True)]
        out["cross_val_score"].append(
            {"covariance_type": ct, "sklearn": a.tolist(), "gmmscape": b.tolist(), "rel": d}
        )
        print(f"digits cv {ct:9s} max |rel diff| {np.max(np.abs(d)):.2e}", flush=True)
    grid = {"n_components": [5, 10] if quick else [5, 10, 15], "covariance_type": COV_TYPES}
    for label, est in (
        ("sklearn", SKGaussianMixture(random_state=0)),
        ("gmmscape", GaussianMixture(random_state=0)),
    ):
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gs = GridSearchCV(est, grid, cv=5).fit(X)
        out["grid"][label] = {
            "best_params": gs.best_params_,
            "best_score": float(gs.best_score_),
            "mean_test_scores": [float(v) for v in gs.cv_results_["mean_test_score"]],
            "seconds": time.perf_counter() - t0,
        }
        print(f"digits grid {label}: {gs.best_params_} {gs.best_score_:.6f}", flush=True)
    return out


def blobs(seed=0, n=2000):
    rng = np.random.default_rng(seed)
    h = n // 2
    return np.vstack([rng.normal(0.0, 1.0, (h, 2)), rng.normal(6.0, 1.0, (n - h, 2))])


PATHS = {
    "compiled": {"n_threads": 1},
    "chunked": {"n_threads": 1, "chunk_size": 128},
    "threaded": {"n_threads": 2, "chunk_size": 128},
    "dask": {},
}


def fit_path(Z, path, cov_type, dtype, means_init):
    kw = {"covariance_type": cov_type, "means_init": means_init, "dtype": dtype}
    kw.update({k: v for k, v in PATHS[path].items()})
    gm = GaussianMixture(2, **kw)
    if path == "dask":
        import dask.array as da

        Zd = da.from_array(Z, chunks=500)
        gm.fit(Zd)
        return gm, float(gm.score(Zd)), np.asarray(gm.predict(Zd).compute())
    gm.fit(Z)
    return gm, gm.score(Z), gm.predict(Z)


def offsets():
    X = blobs()
    start = np.array([[1.0, 1.0], [5.0, 5.0]])
    rows = []
    for dtype, offs in (("float64", (1e3, 1e6, 1e9, 1.7e9)), ("float32", (1e2, 1e3, 1e4))):
        for off in offs:
            Z = (X + off).astype(dtype)
            Zc = Z.astype(np.float64) - off  # the same points, centred in float64
            for ct in COV_TYPES:
                _, s_ref, lab_ref = fit_path(Zc, "compiled", ct, "float64", start)
                for path in PATHS:
                    _, s, lab = fit_path(Z, path, ct, dtype, start + off)
                    rows.append(
                        {
                            "dtype": dtype,
                            "offset": off,
                            "covariance_type": ct,
                            "path": path,
                            "score_rel_err": abs(rel(s, s_ref)),
                            "label_agreement": float(np.mean(lab == lab_ref)),
                        }
                    )
            worst = max(r["score_rel_err"] for r in rows if r["offset"] == off)
            agree = min(r["label_agreement"] for r in rows if r["offset"] == off)
            print(f"offset {off:g} {dtype}: max rel err {worst:.2e}, labels {agree:.4f}")
    return rows


def markdown(res) -> str:
    lines = [
        "# gmmscape vs scikit-learn on raw real data",
        "",
        f"Machine: {res['machine']}; gmmscape {res['versions']['gmmscape']}, scikit-learn "
        f"{res['versions']['scikit-learn']}, JAX {res['versions']['jax']}.",
        "",
        "## Final score, relative difference (gmmscape - sklearn) / |sklearn|",
        "",
        f"Default init: seeds 0..{len(res['seeds']) - 1}; 'worse' counts seeds where gmmscape"
        " is below scikit-learn by more than 1e-6 relative.",
        "",
        "| dataset | covariance | sklearn score | same init | default init max abs | worse |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in res["scores"]:
        lines.append(
            f"| {r['dataset']} | {r['covariance_type']} | {r['same_init_sklearn']:.6f} | "
            f"{r['same_init_rel_diff']:+.1e} | {r['default_init_max_abs_rel_diff']:.1e} | "
            f"{r['default_init_gmmscape_worse']}/{len(res['seeds'])} |"
        )
    cv = res["cv"]
    lines += [
        "",
        "## Raw digits (3 constant columns): cross_val_score, 5 folds",
        "",
        "| covariance | sklearn folds | max abs rel diff |",
        "|---|---|---:|",
    ]
    for r in cv["cross_val_score"]:
        folds = ", ".join(f"{v:.3f}" for v in r["sklearn"])
        lines.append(f"| {r['covariance_type']} | {folds} | {np.max(np.abs(r['rel'])):.1e} |")
    g = cv["grid"]
    lines += [
        "",
        f"GridSearchCV best_params_: scikit-learn {g['sklearn']['best_params']} "
        f"(best_score_ {g['sklearn']['best_score']:.6f}); gmmscape "
        f"{g['gmmscape']['best_params']} (best_score_ {g['gmmscape']['best_score']:.6f}).",
        "",
        "## Offset invariance (score relative error, label agreement; worst over paths)",
        "",
        "| dtype | offset | covariance | max score rel err | min label agreement |",
        "|---|---:|---|---:|---:|",
    ]
    keys = sorted(
        {(r["dtype"], r["offset"], r["covariance_type"]) for r in res["offsets"]},
        key=lambda t: (t[0], t[1], COV_TYPES.index(t[2])),
    )
    for key in keys:
        sel = [r for r in res["offsets"] if (r["dtype"], r["offset"], r["covariance_type"]) == key]
        lines.append(
            f"| {key[0]} | {key[1]:g} | {key[2]} | "
            f"{max(r['score_rel_err'] for r in sel):.1e} | "
            f"{min(r['label_agreement'] for r in sel):.4f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seeds", type=int, default=None, help="default-init seeds (5; quick 2)")
    args = ap.parse_args()
    seeds = list(range(args.seeds or (2 if args.quick else 5)))
    names = ("breast_cancer", "iris") if args.quick else tuple(DATASETS)
    t0 = time.perf_counter()
    res = {
        "machine": f"{platform.machine()}, {platform.python_version()}",
        "versions": {p: metadata.version(p) for p in ("gmmscape", "scikit-learn", "jax", "numpy")},
        "seeds": seeds,
        "scores": score_table(names, seeds),
        "cv": cv_and_grid(args.quick),
        "offsets": offsets(),
    }
    res["seconds"] = time.perf_counter() - t0
    stem = "estimator_realdata" + ("_quick" if args.quick else "")
    write_json(res, RESULTS / f"{stem}.json")
    md = markdown(res)
    write_bytes(RESULTS / f"{stem}.md", md.encode())
    print(md)


if __name__ == "__main__":
    main()
