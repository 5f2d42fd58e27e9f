"""Seed A: a component far from the data is trapped for about exp(c R^2) steps.

One component at distance R from N(0, 1), the other at the truth's mean; escape steps
measured inside a compiled while-loop and fitted by log T = a + c R^2 (docs/seed-a.md).

    python examples/seed_a_trap.py [--small] [--out DIR]
"""

import argparse
from pathlib import Path

from gmmscape._files import write_json
from gmmscape.experiments.overparam import plot_trap
from gmmscape.experiments.trap import trap

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--small", action="store_true", help="R up to 6 instead of 10")
parser.add_argument("--out", type=Path, default=Path("example-output"))
args = parser.parse_args()

R = (3.0, 4.0, 5.0, 6.0) if args.small else tuple(float(r) for r in range(3, 11))
res = trap(R_values=R, max_steps=10**6)
for r, steps, cens in zip(res.R, res.steps, res.censored, strict=True):
    print(f"R = {r:4.1f}: {steps:>8} steps" + (" (censored)" if cens else ""))
print(res.comparison)
print("wrote", *plot_trap(res, args.out, "seed_a_trap"), write_json(res, args.out / "trap.json"))
