"""A real data set with entries removed: missing-data EM against IterativeImputer + EM.

scikit-learn's wine data (178 wines, 13 chemical measurements, 3 cultivars), columns
standardized; a fraction of the entries (10%, 30%) removed completely at random with
``numpy.random.default_rng(seed)`` (a row that would lose every entry keeps its first).
Two pipelines, both ``n_components=3``, ``covariance_type="diag"``, ``n_init=5``,
``random_state=0``:

* gmmscape: ``GaussianMixture(missing="em").fit(X_holes)``, holes filled by ``impute``;
* scikit-learn: ``IterativeImputer(random_state=0)`` fills the holes, then
  ``sklearn.mixture.GaussianMixture`` is fitted on the completed table.

Reported (mean over seeds 0-9): the adjusted Rand index of the clusters against the
cultivars, and the RMSE of the filled entries against the removed values (standardized
units). Run: ``.venv/bin/python benchmarks/missing_realdata.py``; results:
``benchmarks/results/missing_realdata.{json,md}`` (docs/missing.md quotes them).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.datasets import load_wine
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import GaussianMixture as SkGM

from gmmscape import GaussianMixture
from gmmscape._files import write_json

RESULTS = Path(__file__).resolve().parent / "results"


def main():
    X, y = load_wine(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    kw = dict(covariance_type="diag", n_init=5, random_state=0)
    rows = []
    for rate in (0.1, 0.3):
        for seed in range(10):
            rng = np.random.default_rng(seed)
            miss = rng.uniform(size=X.shape) < rate
            miss[miss.all(axis=1), 0] = False
            Xm = np.where(miss, np.nan, X)
            gm = GaussianMixture(3, missing="em", **kw).fit(Xm)
            filled = gm.impute(Xm)
            it = IterativeImputer(random_state=0, max_iter=25).fit_transform(Xm)
            sk = SkGM(3, **kw).fit(it)
            rows.append(
                dict(
                    rate=rate, seed=seed,
                    ari_em=adjusted_rand_score(y, gm.predict(Xm)),
                    ari_iterative=adjusted_rand_score(y, sk.predict(it)),
                    rmse_em=float(np.sqrt(np.mean((filled[miss] - X[miss]) ** 2))),
                    rmse_iterative=float(np.sqrt(np.mean((it[miss] - X[miss]) ** 2))),
                )
            )  # fmt: skip
    full = adjusted_rand_score(y, GaussianMixture(3, **kw).fit(X).predict(X))
    lines = [
        "# wine (178 x 13, standardized), MCAR holes, mean over 10 seeds",
        "",
        f"No holes: ARI {full:.3f}.",
        "",
        "| removed | ARI, gmmscape missing='em' | ARI, IterativeImputer + EM | "
        "RMSE of filled entries, gmmscape | RMSE, IterativeImputer |",
        "|---|---|---|---|---|",
    ]
    for rate in (0.1, 0.3):
        sel = [r for r in rows if r["rate"] == rate]
        m = {k: float(np.mean([r[k] for r in sel])) for k in sel[0] if k not in ("rate", "seed")}
        lines.append(
            f"| {rate:.0%} | {m['ari_em']:.3f} | {m['ari_iterative']:.3f} | "
            f"{m['rmse_em']:.3f} | {m['rmse_iterative']:.3f} |"
        )
    RESULTS.mkdir(exist_ok=True)
    write_json({"ari_no_holes": full, "rows": rows}, RESULTS / "missing_realdata.json")
    (RESULTS / "missing_realdata.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
