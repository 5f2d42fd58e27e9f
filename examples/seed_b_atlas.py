"""Seed B: every local minimum of Jin et al.'s three-center problem, certified and classified.

Centers -R, R and 10R in 1-D, k = 3 estimates: dense starts, Newton polish, Hessian and
higher-order certificates, and the one-fits-many / many-fit-one structure of each point
(docs/seed-b.md). Writes the atlas as JSON and its 1-D landscape figure.

    python examples/seed_b_atlas.py [--small] [--out DIR]
"""

import argparse
from pathlib import Path

import gmmscape as gs
from gmmscape.landscape import explore, plots

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--small", action="store_true", help="40 starts instead of 1000")
parser.add_argument("--out", type=Path, default=Path("example-output"))
args = parser.parse_args()

truth = gs.Mixture([[-1.5], [1.5], [15.0]])
atlas = explore(truth, k=3, n_starts=40 if args.small else 1000, seed=0)
for p in atlas.points:
    lo, hi = p.ci
    print(
        f"{p.kind:30s} {p.signature:12s} loss gap {p.gap:8.4f}  basin {p.fraction:.2f} "
        f"[{lo:.2f}, {hi:.2f}]  |grad| {p.grad_norm:.1e}"
    )
paths = plots.save(plots.plot_atlas_1d(atlas), args.out / "seed_b_atlas")
print("wrote", *paths, atlas.write_json(args.out / "seed_b_atlas.json"))
